"""Image-Text Matching: a 2-way head on the fused pair tells a post's own (image, text) from a made-up one.

Negatives are made in the batch. ``random`` (the strategy of the seed paper): each post with an image
keeps its own text with probability 1 - p, otherwise takes the text of another post whose text differs.
Pass a seeded ``torch.Generator`` at evaluation so the negatives are the same every time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpost.models.output import ItmPairs, ModelOutput
from mmpost.registry import register

STRATEGIES = ("random",)


def random_pairs(has_image: Tensor, text_ids: Tensor | None = None, *, p_negative: float = 0.5,
                 generator: torch.Generator | None = None) -> ItmPairs:
    """One pair per post with an image. has_image [B] bool, text_ids [B] (posts with equal ids share a text).

    A negative takes its text from a uniformly drawn post j != i whose text id differs; a post with no such
    partner stays positive.
    """
    device = has_image.device
    b = has_image.numel()
    ids = text_ids if text_ids is not None else torch.arange(b, device=device)
    image_index = torch.nonzero(has_image, as_tuple=False).flatten()
    if image_index.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return ItmPairs(empty, empty, empty)
    allowed = ids[image_index][:, None] != ids[None, :]             # [P, B]; excludes i itself
    has_partner = allowed.any(dim=1)
    coin = torch.rand(image_index.numel(), generator=generator, device="cpu").to(device) < p_negative
    negative = coin & has_partner
    weights = allowed.float() + (~has_partner).float()[:, None]      # rows with no partner: any column
    partner = torch.multinomial(weights.cpu(), 1, generator=generator).flatten().to(device)
    text_index = torch.where(negative, partner, image_index)
    return ItmPairs(text_index=text_index, image_index=image_index, labels=(~negative).long())


def itm_loss(itm_logits: Tensor, itm_labels: Tensor) -> Tensor:
    """itm_logits [P, 2], itm_labels [P] → mean cross-entropy (0 when there are no pairs)."""
    if itm_labels.numel() == 0:
        return itm_logits.sum() * 0.0
    return F.cross_entropy(itm_logits, itm_labels)


@register("objective", "itm")
class ITMLoss(nn.Module):
    def __init__(self, negatives: str = "random", p_negative: float = 0.5) -> None:
        super().__init__()
        if negatives not in STRATEGIES:
            raise ValueError(f"unknown ITM negative strategy {negatives!r}; choose from {', '.join(STRATEGIES)}")
        self.negatives = negatives
        self.p_negative = p_negative

    def make_pairs(self, has_image: Tensor, text_ids: Tensor | None,
                   generator: torch.Generator | None = None) -> ItmPairs:
        return random_pairs(has_image, text_ids, p_negative=self.p_negative, generator=generator)

    def forward(self, output: ModelOutput) -> Tensor:
        if output.itm_logits is None or output.itm_labels is None:
            raise ValueError("ITM is on but the model output has no itm_logits: pass itm_pairs to the model")
        return itm_loss(output.itm_logits, output.itm_labels)
