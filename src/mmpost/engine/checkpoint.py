"""Checkpoints: safetensors weights, written to a temp file and renamed, so a crash mid-write never leaves a
half-written checkpoint in place of a good one. Nothing is ever unpickled: a file that is not safetensors (a
``torch.save`` pickle renamed, a truncated download) is refused with :class:`CheckpointError`, unread."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mmpost.atomic import atomic_write


class CheckpointError(ValueError):
    """A weights file cannot be used; the message names it and says why."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, permissions ...); the file it would have replaced is intact."""


def save_weights(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    try:
        atomic_write(path, lambda p: save_file(tensors, p, metadata=metadata))
    except OSError as e:
        raise CheckpointWriteError(e.errno, f"{path}: could not write the checkpoint ({e.strerror or e}); "
                                            "the previous file there, if any, is intact") from e


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except FileNotFoundError:
        raise
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e}); mmpost reads weights only from "
                              "safetensors and never unpickles a file") from None
