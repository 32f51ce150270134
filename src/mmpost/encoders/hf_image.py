"""Image towers from transformers: any ViT-like model that ``AutoModel`` loads from an HF name or local folder.

Tokens are the patch tokens of the last hidden state (the CLS token left out); pooled is the CLS token's last
hidden state (``pooling: cls``) or the mean of the patch tokens (``pooling: mean``). Preprocessing (size, mean,
std) comes from the model's ``preprocessor_config.json`` when it has one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from torch import Tensor

from mmpost.encoders.base import ImageTower, TowerOutput
from mmpost.encoders.clip_checkpoint import require_single_tower_type
from mmpost.encoders.hf_text import POOLINGS, _weights_digest
from mmpost.encoders.quiet_loading import quiet_transformers
from mmpost.registry import register


def _preprocessing(path: str, image_size: int | None) -> tuple[int, tuple, tuple]:
    size, mean, std = 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    cfg_file = Path(path) / "preprocessor_config.json"
    if cfg_file.exists():
        pre = json.loads(cfg_file.read_text())
        s = pre.get("size", size)
        size = int(s.get("height", s.get("shortest_edge", size)) if isinstance(s, dict) else s)
        mean = tuple(pre.get("image_mean", mean))
        std = tuple(pre.get("image_std", std))
    return image_size or size, mean, std


class HFImageTower(ImageTower):
    def __init__(self, path: str, *, pooling: str = "cls", image_size: int | None = None, fit: str = "crop") -> None:
        super().__init__()
        from transformers import AutoModel
        if pooling not in POOLINGS:
            raise ValueError(f"unknown image pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
        if not Path(path).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise FileNotFoundError(f"image encoder {path!r} is not a local folder and the hub is offline")
        require_single_tower_type(path, "image_encoder", "hf-image")
        with quiet_transformers():
            self.model = AutoModel.from_pretrained(path)
        model_size = getattr(self.model.config, "image_size", None)
        self.image_size, self.mean, self.std = _preprocessing(path, image_size or model_size)
        self.fit = fit
        self.pooling = pooling
        self.dim = int(self.model.config.hidden_size)
        self.identity = f"hf-image:{_weights_digest(path)}:pool={pooling}"

    def forward(self, pixels: Tensor) -> TowerOutput:
        hidden = self.model(pixel_values=pixels).last_hidden_state      # [B, 1 + patches, D]
        patches = hidden[:, 1:]
        pooled = hidden[:, 0] if self.pooling == "cls" else patches.mean(dim=1)
        mask = patches.new_ones(patches.shape[:2], dtype=bool)
        return TowerOutput(tokens=patches, mask=mask, pooled=pooled)


@register("encoder", "hf-image")
def hf_image(*, path: str, pooling: str = "cls", image_size: int | None = None, fit: str = "crop",
             **_: object) -> HFImageTower:
    return HFImageTower(path, pooling=pooling, image_size=image_size, fit=fit)
