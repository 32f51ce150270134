"""What every model family shares: its two towers, the "no image" stand-in, and reading a batch's
features either from the towers or from the cache."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.encoders.base import ImageTower, TextTower, TowerOutput


@dataclass
class FamilyConfig:
    """What every family's nested ``Config`` starts from. A config loader builds
    ``FamilyClass.Config(name=..., **user_keys)``; each family checks its own values in ``__post_init__``."""

    name: str = ""               # the family's registered name (conc, att, mmbt, vilt, lxmert, emoticon)


class MultimodalModel(nn.Module):
    """``text_input`` / ``image_input`` say what a family reads: "pooled" vectors or, for text, the
    "first-token" vector (both can come from the feature cache when the tower is frozen), or "tokens" (text
    tokens always come from the tower; image tokens may be cached)."""

    text_input = "pooled"
    image_input = "pooled"       # or "tokens", "pixels" (always through the tower), "regions" (precomputed files)

    @classmethod
    def inputs(cls, config) -> tuple[str, str]:
        """(text_input, image_input) under a model config; a family whose inputs depend on its config (an HF
        checkpoint that reads pixels or regions) overrides this."""
        return cls.text_input, cls.image_input

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

    def first_text_token(self, batch: Batch) -> Tensor:
        """[B, D]: the text tower's first output token (CLS), cached or computed."""
        if batch.text_features is not None:
            return batch.text_features
        return self.text_output(batch).tokens[:, 0]

    def pooled_image(self, batch: Batch) -> Tensor:
        if batch.image_features is not None:
            v = batch.image_features
        elif batch.pixels is not None:
            v = self.image_tower(batch.pixels).pooled
        else:
            v = self.no_image.expand(len(batch), -1)
        return torch.where(batch.has_image[:, None], v, self.no_image.to(v.dtype).expand_as(v))

    def text_output(self, batch: Batch) -> TowerOutput:
        if batch.text_inputs is None:
            raise ValueError(f"{type(self).__name__} reads text tokens: the batch must carry text inputs")
        return self.text_tower(batch.text_inputs)

    def image_tokens(self, batch: Batch) -> Tensor:
        """[B, T, Dv]; every token of a post without an image is the learned "no image" vector."""
        if batch.image_features is not None and batch.image_features.dim() == 3:
            v = batch.image_features
        elif batch.pixels is not None:
            v = self.image_tower(batch.pixels).tokens
        else:
            raise ValueError(f"{type(self).__name__} reads image tokens: the batch carries none")
        return torch.where(batch.has_image[:, None, None], v, self.no_image.to(v.dtype).expand_as(v))


@torch.no_grad()
def eval_modality_weights(model: nn.Module, batch: Batch) -> Tensor:
    """[B, 2]: how much each post's prediction rests on its text and on its image, from a model whose output has
    ``modality_weights``, computed in eval mode (the model's mode is restored)."""
    was = model.training
    model.eval()
    try:
        w = model(batch).modality_weights
    finally:
        model.train(was)
    if w is None:
        raise ValueError(f"{type(model).__name__} gives no modality weights")
    return w
