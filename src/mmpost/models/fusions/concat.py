"""``concat`` fusion: ``dropout(ReLU(W [text; image] + b))``."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mmpost.registry import register


@register("fusion", "concat")
class ConcatFusion(nn.Sequential):
    """text [B, E], image [B, E] → fused [B, H]: the concatenation [B, 2E] through Linear(2E→H) → ReLU → dropout.

    A ``Sequential`` of those three layers, so its weights are ``0.weight`` / ``0.bias`` as a plain
    ``nn.Sequential`` fusion's were."""

    def __init__(self, embed_dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__(nn.Linear(2 * embed_dim, hidden), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, text: Tensor, image: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(torch.cat([text, image], dim=-1))
