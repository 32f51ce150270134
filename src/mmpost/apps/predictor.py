"""A trained run, loaded for prediction: ``mmpost.load(RUN_DIR).predict(posts)``."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from mmpost.apps.build import build_model, build_tower
from mmpost.apps.datasets import build_datasets
from mmpost.config import RunConfig, load_config
from mmpost.data.dataset import unwrap
from mmpost.data.post import Post
from mmpost.engine.checkpoint import load_weights


class Predictor:
    def __init__(self, run_dir: str | Path) -> None:
        import json
        self.run_dir = Path(run_dir)
        for needed in ("config.yaml", "labels.json", "model.safetensors"):
            if not (self.run_dir / needed).exists():
                raise FileNotFoundError(f"{self.run_dir} is not a finished mmpost run: {needed} is missing")
        self.config: RunConfig = load_config(self.run_dir / "config.yaml")
        info = json.loads((self.run_dir / "labels.json").read_text())
        self.task: str = info["task"]
        self.labels: list[str] = info["labels"]
        cfg = self.config
        self.text_tower = build_tower(cfg.text_encoder)
        self.image_tower = build_tower(cfg.image_encoder)
        self.model = build_model(cfg.model, self.text_tower, self.image_tower, len(self.labels))
        state = load_weights(self.run_dir / "model.safetensors")
        missing_unexpected = self.model.load_state_dict(state, strict=False)
        if missing_unexpected.unexpected_keys:
            raise ValueError(f"{self.run_dir}: weights do not fit the model: {missing_unexpected.unexpected_keys[:5]}")
        self.model.eval()

    @torch.inference_mode()
    def predict_with_mask(self, posts: Sequence[Post], *, batch_size: int = 128, progress: bool = False,
                          cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities [N, C] (columns in the order of ``self.labels``) and, per post, whether an image
        was used (False: no image, or none readable — the learned "no image" vector stood in).
        ``cache_dir`` replaces the run's feature cache for these posts: a server passes a throwaway folder per
        request, so that serving never grows (nor rescans) the shared cache."""
        cfg = replace(self.config, progress=progress, cache_dir=str(cache_dir) if cache_dir else self.config.cache_dir)
        datasets, _ = build_datasets({"all": posts}, {"all": np.full(len(posts), -1)}, cfg,
                                     self.text_tower, self.image_tower)
        ds = datasets["all"]
        dl = DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), batch_size, False), collate_fn=unwrap)
        out = [self.model(batch).logits.float().softmax(-1).numpy() for batch in dl]
        probs = np.concatenate(out) if out else np.zeros((0, len(self.labels)), dtype=np.float32)
        return probs, ds.has_image.numpy()

    @torch.inference_mode()
    def embed(self, posts: Sequence[Post], *, batch_size: int = 128, progress: bool = False) -> dict[str, np.ndarray]:
        """What a report maps and inspects, per post: ``probs`` [N, C], ``text_embeds`` and ``image_embeds``
        [N, E] (the projected vectors ITC contrasts, before normalisation) and ``has_image`` [N] (False where the
        learned "no image" vector stood in, so that image point means nothing)."""
        cfg = replace(self.config, progress=progress)
        datasets, _ = build_datasets({"all": posts}, {"all": np.full(len(posts), -1)}, cfg,
                                     self.text_tower, self.image_tower)
        ds = datasets["all"]
        dl = DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), batch_size, False), collate_fn=unwrap)
        parts: dict[str, list[np.ndarray]] = {"probs": [], "text_embeds": [], "image_embeds": []}
        for batch in dl:
            out = self.model(batch)
            parts["probs"].append(out.logits.float().softmax(-1).numpy())
            parts["text_embeds"].append(out.text_embeds.float().numpy())
            parts["image_embeds"].append(out.image_embeds.float().numpy())
        result = {k: np.concatenate(v) if v else np.zeros((0, 0), dtype=np.float32) for k, v in parts.items()}
        result["has_image"] = ds.has_image.numpy().astype(bool)
        return result

    def predict_proba(self, posts: Sequence[Post], **kwargs) -> np.ndarray:
        """Class probabilities [N, C], columns in the order of ``self.labels``."""
        return self.predict_with_mask(posts, **kwargs)[0]

    def predict(self, posts: Sequence[Post], **kwargs) -> list[dict[str, float]]:
        """One {label: probability} per post."""
        probs = self.predict_proba(posts, **kwargs)
        return [{label: float(p) for label, p in zip(self.labels, row)} for row in probs]


def load(run_dir: str | Path) -> Predictor:
    return Predictor(run_dir)
