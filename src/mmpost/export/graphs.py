"""The three parts of a run as plain tensor-in, tensor-out modules that ``torch.onnx.export`` can trace.

* text: token ids (and mask, token types) [B, L] → ``pooled`` and ``first`` (the first output token) [B, Dt];
* image: pixels [B, 3, H, W] → ``pooled`` [B, Dv] and ``tokens`` [B, T, Dv];
* head: the model on those features (``text_features`` [B, Dt], ``image_features`` [B, Dv] or [B, T, Dv],
  ``has_image`` [B] bool) → one logits output per task, then ``text_embeds``, ``image_embeds`` [B, E] and
  ``fused`` [B, H].

Each wraps the live module, so a tower fine-tuned with the run is exported with the run's weights.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.encoders.base import ImageTower, TextTower


class TextGraph(nn.Module):
    def __init__(self, tower: TextTower, input_names: list[str]) -> None:
        super().__init__()
        self.tower = tower
        self.input_names = list(input_names)

    def forward(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        out = self.tower(dict(zip(self.input_names, inputs)))
        return out.pooled.float(), out.tokens[:, 0].float()


class ImageGraph(nn.Module):
    """The tower's plain fp32 forward pass, its weights as the file's initializers (what int8 quantization
    rewrites); onnxruntime folds each BatchNorm into its convolution when it loads the file."""

    def __init__(self, tower: ImageTower) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        out = self.tower(pixels)
        return out.pooled.float(), out.tokens.float()


class HeadGraph(nn.Module):
    """The model reading cached features, as the torch path does for a frozen tower."""

    def __init__(self, model: nn.Module, tasks: list[str]) -> None:
        super().__init__()
        self.model = model
        self.tasks = list(tasks)

    def forward(self, text_features: Tensor, image_features: Tensor, has_image: Tensor) -> tuple[Tensor, ...]:
        zeros = torch.zeros(has_image.shape, dtype=torch.long, device=has_image.device)
        batch = Batch(index=zeros, labels=zeros, has_image=has_image, text_ids=zeros, image_ids=zeros,
                      text_features=text_features, image_features=image_features)
        out = self.model(batch)
        return (*(out.task_logits[t] for t in self.tasks), out.text_embeds, out.image_embeds, out.fused)
