"""Classification cross-entropy, with optional class weights ("balanced" as in scikit-learn)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpost.models.output import ModelOutput
from mmpost.registry import register


def balanced_class_weights(label_ids: Sequence[int], num_classes: int) -> Tensor:
    """n / (k * count_c) for each class c; a class absent from the data gets weight 0."""
    counts = torch.bincount(torch.as_tensor(list(label_ids), dtype=torch.long), minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights


def ce_loss(logits: Tensor, labels: Tensor, weight: Tensor | None = None) -> Tensor:
    """logits [B, C], labels [B] → scalar. Weighted mean over the batch when ``weight`` [C] is given."""
    return F.cross_entropy(logits, labels, weight=weight)


@register("objective", "ce")
class CELoss(nn.Module):
    def __init__(self, class_weights: Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, output: ModelOutput, labels: Tensor) -> Tensor:
        return ce_loss(output.logits, labels, self.class_weights)
