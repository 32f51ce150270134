"""Shared fixtures: tiny random towers registered as encoders, and small post sets with real image files."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mmpost import registry  # noqa: E402
from mmpost.encoders.base import ImageTower, TextTower, TowerOutput  # noqa: E402


class TinyTextTower(TextTower):
    """Hashing tokenizer + embedding + one transformer-free mixing layer: fast and random."""

    def __init__(self, dim: int = 16, vocab: int = 512, max_length: int = 16, **_):
        super().__init__()
        self.dim, self.vocab, self.max_length = dim, vocab, max_length
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.mix = nn.Linear(dim, dim)
        self.identity = f"tiny-text:{dim}:{vocab}"

    def _ids(self, text: str) -> list[int]:
        words = text.lower().split()[: self.max_length] or [""]
        return [1 + int(hashlib.md5(w.encode()).hexdigest(), 16) % (self.vocab - 1) for w in words]

    def token_lengths(self, texts):
        return [len(self._ids(t)) for t in texts]

    def tokenize(self, texts):
        ids = [self._ids(t) for t in texts]
        L = max(len(i) for i in ids)
        input_ids = torch.zeros(len(ids), L, dtype=torch.long)
        for r, i in enumerate(ids):
            input_ids[r, : len(i)] = torch.tensor(i)
        return {"input_ids": input_ids, "attention_mask": (input_ids > 0).long()}

    def forward(self, inputs):
        mask = inputs["attention_mask"].bool()
        tokens = torch.tanh(self.mix(self.emb(inputs["input_ids"])))
        m = mask.unsqueeze(-1).float()
        return TowerOutput(tokens, mask, (tokens * m).sum(1) / m.sum(1).clamp(min=1))


class TinyImageTower(ImageTower):
    def __init__(self, dim: int = 8, image_size: int = 32, **_):
        super().__init__()
        self.dim, self.image_size = dim, image_size
        self.mean, self.std, self.fit = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "squash"
        self.conv = nn.Conv2d(3, dim, kernel_size=4, stride=4)
        self.identity = f"tiny-image:{dim}"

    def forward(self, pixels):
        fmap = torch.relu(self.conv(pixels))
        tokens = fmap.flatten(2).transpose(1, 2)
        return TowerOutput(tokens, torch.ones(tokens.shape[:2], dtype=torch.bool), fmap.mean((2, 3)))


if "tiny-text" not in registry.names("encoder"):
    registry.register("encoder", "tiny-text")(lambda **kw: TinyTextTower(**kw))
    registry.register("encoder", "tiny-image")(lambda **kw: TinyImageTower(**kw))

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 180, 60)}


def write_toy_csv(folder, n: int = 60, seed: int = 0, extra_rows: list[str] | None = None) -> str:
    """A CSV of n posts whose label is the image colour named in neither text (so the image matters)."""
    rng = np.random.default_rng(seed)
    img_dir = folder / "imgs"
    img_dir.mkdir(parents=True, exist_ok=True)
    names = list(COLOURS)
    lines = ["post_id,body,picture,mood"]
    for i in range(n):
        c = names[i % 3]
        arr = np.clip(np.array(COLOURS[c])[None, None] + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(img_dir / f"p{i}.png")
        lines.append(f"p{i},a post about thing {i % 7},p{i}.png,{c}")
    lines += extra_rows or []
    path = folder / "posts.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def toy_csv(tmp_path):
    return write_toy_csv(tmp_path)


def tiny_overrides(tmp_path, csv_path: str) -> list[str]:
    return [
        "task=mood", "data.source=manifest", f"data.path={csv_path}",
        "data.columns.id=post_id", "data.columns.text=body", "data.columns.image=picture",
        f"data.columns.image_root={os.path.dirname(csv_path)}/imgs", "data.columns.labels.mood=mood",
        "data.split_fractions=[0.6,0.2,0.2]",
        "text_encoder.name=tiny-text", "text_encoder.trainable=true",
        "image_encoder.name=tiny-image", "image_encoder.trainable=false",
        "model.hidden=16", "model.proj_dim=8", "train.epochs=3", "train.batch_size=8", "train.lr=1e-2",
        f"out_dir={tmp_path}/runs", f"cache_dir={tmp_path}/cache", "progress=false",
    ]


def save_tiny_roberta(folder, *, max_positions: int, type_vocab_size: int = 1) -> str:
    """A tiny random RoBERTa-type model + BPE tokenizer (no token types) saved to ``folder``; returns its path."""
    import json

    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, "c": 5, "a": 6, "t": 7, "Ġ": 8, "ca": 9,
             "cat": 10, "Ġcat": 11}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\nc a\nca t\nĠ cat\n")
    RobertaTokenizerFast(vocab_file=str(folder / "vocab.json"),
                         merges_file=str(folder / "merges.txt")).save_pretrained(folder)
    cfg = RobertaConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=max_positions, pad_token_id=1,
                        type_vocab_size=type_vocab_size)
    torch.manual_seed(0)
    RobertaModel(cfg).save_pretrained(folder)
    return str(folder)
