"""``cross-attention`` fusion: a query vector attends over image tokens; the query and what it read are joined."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mmpost.models.head_count import attention_heads
from mmpost.registry import register


@register("fusion", "cross-attention")
class CrossAttentionFusion(nn.Module):
    """query [B, D] (e.g. the text's first token), tokens [B, T, D] (image tokens projected to D) → fused [B, D]:
    ``attended = MultiheadAttention(query, tokens, tokens)`` [B, D], then
    ``dropout(ReLU(Linear(2D→D) [query; attended]))``.

    ``heads`` follows the one head-count rule (:func:`mmpost.models.head_count.attention_heads`); ``dropout``
    applies to the attention weights and after the ReLU. Queries never interact, so one query per post gives
    exactly what the first position of a full query sequence would."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, attention_heads(dim, heads), dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, query: Tensor, tokens: Tensor) -> Tensor:
        attended, _ = self.attention(query[:, None], tokens, tokens, need_weights=False)
        return self.mlp(torch.cat([query, attended[:, 0]], dim=-1))
