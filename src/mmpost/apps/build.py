"""Build towers, model and objective from a run config, through the registry."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from torch import nn

from mmpost import registry
from mmpost.config import EncoderConfig
from mmpost.encoders.base import ImageTower, TextTower, set_trainable
from mmpost.objectives.base import LossContext, TaskInfo
from mmpost.objectives.combined import Objective
from mmpost.objectives.spec import Objectives


def build_tower(cfg: EncoderConfig) -> nn.Module:
    kwargs = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("name", "trainable") and v is not None}
    tower = registry.get("encoder", cfg.name)(**kwargs)
    set_trainable(tower, cfg.trainable)
    return tower


def build_model(cfg, text_tower: TextTower, image_tower: ImageTower, num_classes: int | Mapping[str, int]) -> nn.Module:
    """``cfg``: the family's own Config (``cfg.model`` of a loaded run config). ``num_classes``: one task's class
    count, or {task: class count} for several tasks."""
    cls = registry.get("model", cfg.name)
    return cls(text_tower, image_tower, num_classes, cfg)


def build_objective(cfg: Objectives, tasks: Sequence[TaskInfo], towers: tuple | None = None) -> Objective:
    """The enabled losses of the ``objectives`` section, built for the run's tasks (and, given the run's two
    towers, the logit scale of the checkpoint they share, if they are one CLIP or SigLIP checkpoint)."""
    from mmpost.encoders.hf_clip import shared_logit_scale
    context = LossContext(tasks=list(tasks), checkpoint_scale=shared_logit_scale(*towers) if towers else None)
    return Objective.from_configs(cfg.enabled(), context, cfg.weighting)
