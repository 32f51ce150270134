"""Pooling a sequence of token vectors into one vector per post."""
from __future__ import annotations

from torch import Tensor


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """tokens [B, N, D], mask [B, N] (bool or 0/1; true = a real token) → [B, D], the mean over the real tokens;
    a row without any real token gives zeros."""
    m = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * m).sum(1) / m.sum(1).clamp(min=1.0)
