"""The space ITRp clusters in and trains its head on: pooled ``text ⊕ image`` → relation features.

    space = build_space(cfg, text_pooled, image_pooled, posts)     # fits the alignment (no labels) when needed
    x = space.features(pooled)                 # [N, Dt + Dv] numpy → [N, W] numpy (block weights fitted here)
    x = space.features(pooled, fit=False)      # the same block weights applied to other posts
    z = space.torch_features(t_pooled, v_pooled)   # differentiable: gradients reach the projections and the towers

``relate.features: concat`` is the identity (the paper's ITRp, unchanged). Every other setting goes through an
aligned space: ``relate.align: itc`` learns it from the unlabelled training posts (:mod:`mmpost.relate.alignment`);
``relate.align: checkpoint`` needs an ``hf-clip`` checkpoint encoder.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from mmpost.data.post import Post
from mmpost.relate.alignment import (
    Alignment,
    AlignReport,
    AlignSettings,
    CheckpointAlignment,
    fit_alignment,
    group_ids,
)
from mmpost.relate.config import RelateConfig
from mmpost.relate.interaction import BlockScaler, feature_blocks, needs_alignment, needs_itm, stack_blocks

log = logging.getLogger(__name__)

__all__ = ["RelationSpace", "align_settings", "build_space", "checkpoint_alignment", "has_image_rows",
           "CHECKPOINT_MESSAGE"]

CHECKPOINT_MESSAGE = ("relate.align=checkpoint needs an hf-clip checkpoint encoder: text_encoder and image_encoder "
                      "both `name: hf-clip` with the same `path` (the two halves of one CLIP or SigLIP checkpoint, "
                      "whose own projections make the aligned space); or use relate.align=itc (projections learned "
                      "from the unlabelled posts)")


def has_image_rows(image: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """[N] bool: the image part is not all zero (a post without a readable image gets zeros)."""
    if isinstance(image, Tensor):
        return image.abs().sum(1) > 0
    return np.abs(np.asarray(image)).sum(1) > 0


def align_settings(cfg: RelateConfig) -> AlignSettings:
    """The ``relate.align_*`` keys as :class:`AlignSettings` (ITM on when asked or when the features need it)."""
    return AlignSettings(dim=cfg.align_dim, hidden=cfg.align_hidden, epochs=cfg.align_epochs,
                         patience=cfg.align_patience, holdout=cfg.align_holdout, lr=cfg.align_lr,
                         weight_decay=cfg.align_weight_decay, batch_size=cfg.align_batch_size,
                         itm=cfg.align_itm or needs_itm(cfg.features), seed=cfg.seed)


@dataclass
class RelationSpace:
    """``features`` (a ``relate.features`` value) over pooled features split at ``text_dim``; ``alignment`` for every
    setting but ``concat``; ``weighting``: ``blocks`` or ``none`` (see :mod:`mmpost.relate.interaction`)."""

    features: str
    text_dim: int
    image_dim: int
    alignment: Alignment | CheckpointAlignment | None = None
    weighting: str = "blocks"
    report: AlignReport | None = None
    scaler: BlockScaler | None = field(default=None, repr=False)

    @property
    def is_concat(self) -> bool:
        return self.features == "concat"

    def width(self) -> int:
        if self.is_concat:
            return self.text_dim + self.image_dim
        probe = self._blocks(torch.zeros(2, self.text_dim), torch.zeros(2, self.image_dim))
        return int(sum(b.shape[1] for b in probe.values()))

    def modules(self) -> list[nn.Module]:
        return [self.alignment] if self.alignment is not None else []

    def _blocks(self, text: Tensor, image: Tensor) -> dict[str, Tensor]:
        assert self.alignment is not None
        device = self.alignment.text_mean.device
        text, image = text.to(device), image.to(device)
        t, v = self.alignment.project(text, image)
        match = self.alignment.match_probability(t, v) if needs_itm(self.features) else None
        return feature_blocks(self.features, text=text, image=image, t=t, v=v, has_image=has_image_rows(image),
                              match=match)

    def features_of(self, pooled: np.ndarray, *, scaler: BlockScaler | None = None) -> np.ndarray:
        """[N, Dt + Dv] pooled → [N, W] float32 (no gradient). Block weights: ``scaler`` when given; otherwise
        fitted on these rows (label-free) and kept as :attr:`scaler`, the weights :meth:`torch_features` uses."""
        if self.is_concat:
            return np.ascontiguousarray(pooled, dtype=np.float32)
        assert self.alignment is not None
        was_training = self.alignment.training
        self.alignment.eval()
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(pooled, dtype=np.float32))
            blocks = {n: b.cpu().numpy() for n, b in
                      self._blocks(x[:, :self.text_dim], x[:, self.text_dim:]).items()}
        self.alignment.train(was_training)
        if self.weighting == "none":
            return stack_blocks(blocks)
        if scaler is None:
            scaler = self.scaler = BlockScaler.fit(blocks)
        return scaler.apply(blocks)

    def torch_features(self, text: Tensor, image: Tensor) -> Tensor:
        """[B, Dt], [B, Dv] pooled (with gradients) → [B, W], weighted with the last fitted block weights."""
        if self.is_concat:
            return torch.cat([text.float(), image.float()], dim=1)
        blocks = self._blocks(text, image)
        if self.weighting == "none" or self.scaler is None:
            return torch.cat(list(blocks.values()), dim=1)
        return self.scaler.apply_torch(blocks)


def build_space(cfg: RelateConfig, text: np.ndarray, image: np.ndarray, posts: Sequence[Post], *,
                device: torch.device | str = "cpu", towers: tuple[object, object] | None = None) -> RelationSpace:
    """The relation space of ``cfg.features``: for anything but ``concat``, an alignment trained on the pooled
    features of the unlabelled ``posts`` (their texts and image paths only tell repeats apart; labels are not read),
    or, with ``relate.align: checkpoint``, the projected space of the hf-clip checkpoint both ``towers`` come from."""
    space = RelationSpace(cfg.features, int(text.shape[1]), int(image.shape[1]), weighting=cfg.feature_weighting)
    if not needs_alignment(cfg.features):
        return space
    if cfg.align == "checkpoint":
        space.alignment = checkpoint_alignment(cfg, towers, int(text.shape[1]), int(image.shape[1]))
        return space
    alignment, report = fit_alignment(text, image, has_image=has_image_rows(image),
                                      text_ids=group_ids([p.text for p in posts]),
                                      image_ids=group_ids([tuple(p.images) for p in posts]),
                                      settings=align_settings(cfg), device=device)
    space.alignment, space.report = alignment, report
    return space


def checkpoint_alignment(cfg: RelateConfig, towers: tuple[object, object] | None, text_dim: int,
                         image_dim: int) -> CheckpointAlignment:
    """The identity alignment of one hf-clip checkpoint's two halves; a clear error for any other towers."""
    from mmpost.encoders.hf_clip import shared_logit_scale
    if towers is None or shared_logit_scale(*towers) is None or text_dim != image_dim:
        raise ValueError(CHECKPOINT_MESSAGE)
    if needs_itm(cfg.features):
        raise ValueError(f"relate.features={cfg.features} needs an ITM head, which relate.align=checkpoint does not "
                         "have: use relate.align=itc or features without +itm")
    return CheckpointAlignment(text_dim)
