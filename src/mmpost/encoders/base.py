"""Text and image towers behind one interface.

A tower maps its inputs to a :class:`TowerOutput`: token-level features with a mask, and one pooled vector
per post. The image towers give their final feature map as tokens (EfficientNet-Lite0: the 7×7 grid = 49
tokens of 1,280-d). ``identity`` names the weights and settings, so cached features can be keyed on it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn


@dataclass
class TowerOutput:
    tokens: Tensor   # [B, L, D]
    mask: Tensor     # [B, L] bool, True for real tokens
    pooled: Tensor   # [B, D]


class TextTower(nn.Module):
    dim: int
    identity: str
    max_length: int
    pooled_first: bool = False      # True: tokens[:, 0] is the pooled vector (hf-clip puts it in front)
    extract_batch_size: int | None = None   # the batch that extracts fastest on CPU; None: the caller's

    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        raise NotImplementedError

    def token_lengths(self, texts: list[str]) -> list[int]:
        """Token count per text (for length-sorted batching)."""
        raise NotImplementedError

    def forward(self, inputs: dict[str, Tensor]) -> TowerOutput:
        raise NotImplementedError

    def extract(self, inputs: dict[str, Tensor]) -> TowerOutput:
        """The forward pass of feature extraction (run under inference mode, never trained through). A tower may
        make it faster than ``forward`` — bf16, a folded graph — as long as it stays numerically close."""
        return self(inputs)


class ImageTower(nn.Module):
    dim: int
    identity: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    fit: str
    extract_batch_size: int | None = None   # the batch that extracts fastest (a CNN on CPU: small); None: the caller's
    decode_workers: int = 2                 # threads decoding the next images while the tower runs (0: in turn)
    pooled_first: bool = False              # True: tokens[:, 0] is the pooled vector (hf-clip puts it in front)

    def preprocess_spec(self) -> str:
        return f"size={self.image_size},mean={self.mean},std={self.std},fit={self.fit}"

    def load(self, path: str) -> np.ndarray:
        """Decode and preprocess one image file → float32 [3, H, W] (raises data.images.ImageError)."""
        from mmpost.data.images import load_image_array
        return load_image_array(path, size=self.image_size, mean=self.mean, std=self.std, fit=self.fit)

    def forward(self, pixels: Tensor) -> TowerOutput:
        raise NotImplementedError

    def extract(self, pixels: Tensor) -> TowerOutput:
        """The forward pass of feature extraction (see :meth:`TextTower.extract`)."""
        return self(pixels)


def set_trainable(module: nn.Module, trainable: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(trainable)
