"""``gated-attention`` fusion: learned per-post modality weights (the emoticon paper's attention fusion).

Shapes: B posts, E the input width of each side, H the fused width.

``z_t = W_t text``, ``z_v = W_v image`` [B, H]; ``α = softmax(score([text; image]))`` [B, 2] (text, image) with
``α_image = 0`` for a post without an image; ``fused = n·(α_t z_t + α_v z_v) + b`` with n the modalities present.
The score's last layer starts at zero, so training starts from equal weights, where the fusion is exactly a
linear layer over the concatenation, ``W [text; image] + b = z_t + z_v + b``. ``learned=False`` keeps the weights
equal (no score): that linear layer.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from mmpost.registry import register

Layer = Callable[[Tensor], Tensor]


def modality_weights(text: Tensor, image: Tensor, has_image: Tensor, score: Layer | None) -> Tensor:
    """text, image [B, E], has_image [B] → weights [B, 2] of (text, image): ``softmax(score([text; image]))``, or
    equal without a score; a post without an image puts all its weight on the text."""
    if score is not None:
        no_image = torch.stack([torch.zeros_like(has_image), ~has_image], dim=-1)
        return torch.softmax(score(torch.cat([text, image], dim=-1)).masked_fill(no_image, float("-inf")), dim=-1)
    equal = torch.full((text.shape[0], 2), 0.5, dtype=text.dtype, device=text.device)
    return torch.where(has_image[:, None], equal, torch.tensor([1.0, 0.0], dtype=text.dtype, device=text.device))


def gated_fusion(text: Tensor, image: Tensor, has_image: Tensor, text_in: Layer, image_in: Layer, bias: Tensor,
                 score: Layer | None) -> tuple[Tensor, Tensor]:
    """text, image [B, E], has_image [B] → (fused [B, H], weights [B, 2]). ``text_in`` / ``image_in`` map E → H
    (no bias), ``bias`` [H]; without a ``score`` the fusion is ``text_in(text) + image_in(image) + bias`` (a
    missing image is whatever stand-in the caller put there, as elsewhere)."""
    w = modality_weights(text, image, has_image, score)
    if score is None:
        return text_in(text) + image_in(image) + bias, w
    present = 1.0 + has_image.to(text.dtype)
    return present[:, None] * (w[:, :1] * text_in(text) + w[:, 1:] * image_in(image)) + bias, w


def weight_score(embed_dim: int, hidden: int) -> nn.Sequential:
    """[B, 2E] → [B, 2] modality scores: Linear(2E→H) → Tanh → Linear(H→2), the last layer at zero (equal
    weights at the start)."""
    score = nn.Sequential(nn.Linear(2 * embed_dim, hidden), nn.Tanh(), nn.Linear(hidden, 2))
    nn.init.zeros_(score[-1].weight)
    nn.init.zeros_(score[-1].bias)
    return score


@register("fusion", "gated-attention")
class GatedAttentionFusion(nn.Module):
    """text [B, E], image [B, E], has_image [B] → (fused [B, H], modality weights [B, 2]); see the module
    docstring. ``learned=False``: equal weights, i.e. a linear layer over the concatenation."""

    def __init__(self, embed_dim: int, hidden: int, learned: bool = True) -> None:
        super().__init__()
        self.text_in = nn.Linear(embed_dim, hidden, bias=False)
        self.image_in = nn.Linear(embed_dim, hidden, bias=False)
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.score = weight_score(embed_dim, hidden) if learned else None

    def forward(self, text: Tensor, image: Tensor, has_image: Tensor) -> tuple[Tensor, Tensor]:
        return gated_fusion(text, image, has_image, self.text_in, self.image_in, self.bias, self.score)
