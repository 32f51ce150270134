"""A collated batch of posts, as tensors. Models and objectives read it; the engine moves it to the device."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor


@dataclass
class Batch:
    """B posts. Text and image come either as tower inputs or as precomputed (cached) features.

    index          [B]       row of each post in its dataset
    labels         [B]       class ids of the (first) task (-1 where the post has no label, or where that task is
                             multi-label: read task_labels)
    has_image      [B] bool  False where the post has no usable image (a learned "no image" vector stands in)
    text_ids       [B]       equal ids ⇔ equal texts (retweets): never negatives for each other
    image_ids      [B]       equal ids ⇔ equal images
    text_inputs    dict of [B, L] tensors from the tokenizer (input_ids, attention_mask, ...) or None
    pixels         [B, 3, H, W] float or None
    text_features  [B, D] or [B, L, D] precomputed text features or None
    image_features [B, D] or [B, N, D] precomputed image features or None
    regions        [B, R, Dr] precomputed region features (families that read regions) or None
    region_boxes   [B, R, 4] their boxes, normalised to [0, 1] (x0, y0, x1, y1)
    region_mask    [B, R] bool, True for real regions
    unreadable_images  how many images of this batch failed to decode when it was made (masked in has_image);
                   counted here so the count survives DataLoader worker processes
    task_labels    task name → labels, one entry per task when the dataset has several (or named) tasks: [B] long
                   class ids (-1: no label) for a single-label task; [B, C] float 0/1 for a multi-label task, the
                   whole row -1 where the post has no label. Empty for a dataset given one unnamed label array.
    """

    index: Tensor
    labels: Tensor
    has_image: Tensor
    text_ids: Tensor
    image_ids: Tensor
    text_inputs: dict[str, Tensor] | None = None
    pixels: Tensor | None = None
    text_features: Tensor | None = None
    image_features: Tensor | None = None
    regions: Tensor | None = None
    region_boxes: Tensor | None = None
    region_mask: Tensor | None = None
    unreadable_images: int = 0
    task_labels: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.index.numel())

    def to(self, device: torch.device | str) -> "Batch":
        moved = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Tensor):
                moved[f.name] = v.to(device, non_blocking=True)
            elif isinstance(v, dict):
                moved[f.name] = {k: t.to(device, non_blocking=True) for k, t in v.items()}
        return replace(self, **moved)
