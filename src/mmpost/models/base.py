"""What every model family shares: its two towers, the "no image" stand-in, and reading a batch's
features either from the towers or from the cache."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.encoders.base import ImageTower, TextTower


class MultimodalModel(nn.Module):
    def __init__(self, text_tower: TextTower, image_tower: ImageTower) -> None:
        super().__init__()
        self.text_tower = text_tower
        self.image_tower = image_tower
        # a post without an image is represented by this learned vector, so it can still be predicted
        self.no_image = nn.Parameter(0.02 * torch.randn(image_tower.dim))

    def pooled_text(self, batch: Batch) -> Tensor:
        if batch.text_features is not None:
            return batch.text_features
        if batch.text_inputs is None:
            raise ValueError("the batch carries neither text features nor text inputs")
        return self.text_tower(batch.text_inputs).pooled

    def pooled_image(self, batch: Batch) -> Tensor:
        if batch.image_features is not None:
            v = batch.image_features
        elif batch.pixels is not None:
            v = self.image_tower(batch.pixels).pooled
        else:
            v = self.no_image.expand(len(batch), -1)
        return torch.where(batch.has_image[:, None], v, self.no_image.to(v.dtype).expand_as(v))
