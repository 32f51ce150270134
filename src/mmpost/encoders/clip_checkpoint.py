"""One CLIP or SigLIP checkpoint, loaded once for both towers.

A checkpoint is told apart by its config's ``model_type`` (``clip`` or ``siglip``); anything else fails with a
message that names its type and what is supported. ``text_encoder`` and ``image_encoder`` naming the same path
share one load: the first tower built takes its half and leaves the other half here for the second (at most one
checkpoint waits at a time, so a run that uses only one half does not keep a second model around).

The towers carry a :class:`PairedSpace`: the family, the checkpoint's own logit scale (log) and bias (SigLIP), and a
fingerprint of the weights. Two towers with the same ``PairedSpace`` key came from one checkpoint, so their pooled
vectors live in one space: ITC can contrast them directly, and zero-shot scoring compares them.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from mmpost.encoders.quiet_loading import quiet_transformers

SUPPORTED = ("clip", "siglip")
SIDES = ("text", "image")


class UnsupportedCheckpoint(ValueError):
    """A checkpoint of a type the chosen encoder cannot read."""


@dataclass(frozen=True)
class PairedSpace:
    """What two towers of one checkpoint share: ``family`` (clip | siglip), ``logit_scale`` (the log of the
    checkpoint's scale, as it stores it), ``logit_bias`` (SigLIP's; None for CLIP) and ``key`` (path + weights)."""

    family: str
    logit_scale: float
    logit_bias: float | None
    key: str


@dataclass
class ClipCheckpoint:
    """A loaded checkpoint: the HF model, its processor files' folder and which halves towers have taken."""

    path: str
    model: nn.Module
    space: PairedSpace
    taken: set[str] = field(default_factory=set)


_WAITING: dict[str, ClipCheckpoint] = {}


def checkpoint_type(path: str) -> str:
    """The ``model_type`` of the checkpoint at ``path`` (a folder or a hub name)."""
    from transformers import AutoConfig
    check_reachable(path)
    with quiet_transformers():
        config = AutoConfig.from_pretrained(path)
    return str(getattr(config, "model_type", "") or type(config).__name__)


def check_reachable(path: str) -> None:
    if not Path(path).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise FileNotFoundError(f"checkpoint {path!r} is not a local folder and the hub is offline")


def require_paired_type(path: str, key: str) -> str:
    """``path``'s model type, which must be CLIP or SigLIP; else :class:`UnsupportedCheckpoint` naming it."""
    kind = checkpoint_type(path)
    if kind not in SUPPORTED:
        hint = (f"; a {kind} text or image model goes in {key}.name=hf-text or hf-image" if kind not in
                ("clip_text_model", "clip_vision_model", "siglip_text_model", "siglip_vision_model") else
                "; hf-clip needs the whole checkpoint (both towers and their logit scale), not one tower")
        raise UnsupportedCheckpoint(
            f"{key}.path={path!r} is a {kind!r} checkpoint; hf-clip reads a CLIP or SigLIP checkpoint (model_type "
            f"{' or '.join(SUPPORTED)}){hint}")
    return kind


def require_single_tower_type(path: str, key: str, encoder: str) -> None:
    """For hf-text / hf-image: a CLIP or SigLIP checkpoint is named as such, with the encoder that reads it."""
    kind = checkpoint_type(path)
    if kind in SUPPORTED or kind.startswith(("clip_", "siglip_")):
        raise UnsupportedCheckpoint(
            f"{key}.path={path!r} is a {kind!r} checkpoint, which {encoder} cannot read (it expects one BERT- or "
            f"ViT-like model with a hidden_size); use {key}.name=hf-clip for CLIP and SigLIP checkpoints")


def _key(path: str) -> str:
    p = Path(path).expanduser()
    return str(p.resolve()) if p.exists() else path


def claim(path: str, side: str, key: str) -> tuple[ClipCheckpoint, nn.Module, nn.Module | None]:
    """The checkpoint at ``path`` (loaded, or the one already waiting) and its ``side`` half: the HF sub-model and
    its projection (None where the sub-model projects itself: SigLIP)."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    name = _key(path)
    ck = _WAITING.get(name)
    if ck is None or side in ck.taken:
        ck = load(path, key)
        _WAITING.clear()
        _WAITING[name] = ck
    ck.taken.add(side)
    if ck.taken == set(SIDES):
        _WAITING.pop(name, None)
    return (ck, *half(ck.model, side))


def half(model: nn.Module, side: str) -> tuple[nn.Module, nn.Module | None]:
    """The text half (text model, text projection) or the image half (vision model, visual projection)."""
    if side == "text":
        return model.text_model, getattr(model, "text_projection", None)
    return model.vision_model, getattr(model, "visual_projection", None)


def load(path: str, key: str) -> ClipCheckpoint:
    """Load the checkpoint at ``path`` (``key``: the recipe key that named it, for errors)."""
    from transformers import CLIPModel, SiglipModel
    kind = require_paired_type(path, key)
    with quiet_transformers():
        model = (CLIPModel if kind == "clip" else SiglipModel).from_pretrained(path)
    model.eval()
    bias = getattr(model, "logit_bias", None)
    space = PairedSpace(family=kind, logit_scale=float(model.logit_scale.detach().reshape(-1)[0]),
                        logit_bias=None if bias is None else float(bias.detach().reshape(-1)[0]),
                        key=f"{_key(path)}:{weights_fingerprint(model)}")
    return ClipCheckpoint(path=path, model=model, space=space)


@torch.no_grad()
def weights_fingerprint(module: nn.Module, sample: int = 4096) -> str:
    """A digest of ``module``'s weights: every tensor's name, shape, dtype and a strided sample of its values.
    Two checkpoints with the same architecture (and file sizes) but other weights get other fingerprints."""
    h = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // sample)
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        h.update(flat[::step].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]
