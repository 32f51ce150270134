"""Checkpoints: safetensors weights, written to a temp file and renamed, so a crash mid-write never leaves a
half-written checkpoint in place of a good one. Nothing is ever unpickled."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mmpost.atomic import atomic_write


def save_weights(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(path, lambda p: save_file(tensors, p, metadata=metadata))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(path), device="cpu")
