"""The training objective: the losses named in a recipe's ``objectives:`` section, built from the registry and
weighted additively or convexly.

additive: Σ weight_k · part_k                      (weight = λ)
convex:   (1 − Σ β_aux) · CE + Σ β_aux · aux       (the seed code's form: each auxiliary loss's ``weight`` is its β)

A loss returns named, unweighted parts; every part, the total (``loss``) and each loss's ``stats()`` (such as the
ITC temperature) are reported, so the engine and log.csv pick them up without knowing which losses exist.

With a :class:`~mmpost.objectives.collective.Collective` (data-parallel training), every part is this rank's
scaled share of the global batch's value, so the mean over ranks of each reported value, and of the gradients, is
what one process would get on the whole global batch.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from mmpost import registry
from mmpost.data.batch import Batch
from mmpost.models.output import ModelOutput
from mmpost.objectives.base import Loss, LossConfig, LossContext, ModelRequest, RequestContext, TaskInfo
from mmpost.objectives.collective import Collective

WEIGHTINGS = ("additive", "convex")
MAIN_LOSS = "ce"          # the loss the convex form gives 1 − Σβ


@dataclass
class LossBreakdown:
    total: Tensor
    parts: dict[str, Tensor]        # unweighted parts, by name (ce, itc, itm, ce_<task>, a plugin's own ...)
    stats: dict[str, float]         # other numbers to log (temperature)

    @property
    def temperature(self) -> float | None:
        return self.stats.get("temperature")

    def as_floats(self) -> dict[str, float]:
        out = {"loss": float(self.total.detach())}
        out.update({k: float(v.detach()) for k, v in self.parts.items()})
        out.update(self.stats)
        return out


def loss_weights(weighting: str, configs: Mapping[str, LossConfig]) -> dict[str, float]:
    """Each loss's multiplier: its ``weight`` (additive), or β for auxiliary losses and 1 − Σβ for CE (convex)."""
    if weighting == "additive":
        return {name: float(c.weight) for name, c in configs.items()}
    if weighting == "convex":
        aux = {name: float(c.weight) for name, c in configs.items() if name != MAIN_LOSS}
        if sum(aux.values()) >= 1.0:
            raise ValueError(f"objectives.weighting=convex needs the auxiliary weights (β) to sum below 1, got {aux}")
        return {MAIN_LOSS: 1.0 - sum(aux.values()), **aux} if MAIN_LOSS in configs else aux
    raise ValueError(f"objectives.weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")


def loss_config(name: str, config: LossConfig | Mapping | None) -> LossConfig:
    """A registered loss's config from a dataclass or a plain mapping of its options (None: its defaults)."""
    if config is None or isinstance(config, Mapping):
        return registry.get("objective", name).Config(**dict(config or {}))
    return config


def single_task(num_classes: int, train_labels: Sequence[int] = ()) -> LossContext:
    """The context of a one-task run with classes 0..num_classes-1 (tests, benchmarks, notebooks)."""
    labels = np.asarray(list(train_labels), dtype=np.int64)
    return LossContext(tasks=[TaskInfo("task", [str(c) for c in range(num_classes)], labels)])


class Objective(nn.Module):
    """The enabled losses of a run, in the recipe's order; each is a submodule named after its registry name."""

    def __init__(self, losses: Mapping[str, Loss], weighting: str = "additive") -> None:
        super().__init__()
        if not losses:
            raise ValueError("no objective is enabled: the objectives section needs at least one loss")
        self.weighting = weighting
        self.names = list(losses)
        for name, loss in losses.items():
            self.add_module(name, loss)
        self.weights = loss_weights(weighting, {n: loss.config for n, loss in losses.items()})

    @classmethod
    def from_configs(cls, configs: Mapping[str, LossConfig | Mapping | None], context: LossContext,
                     weighting: str = "additive") -> "Objective":
        """The enabled ones of ``configs`` (name → config or options), built from the registry."""
        resolved = {name: loss_config(name, c) for name, c in configs.items()}
        return cls({name: registry.get("objective", name)(c, context) for name, c in resolved.items() if c.enabled},
                   weighting)

    def losses(self) -> list[tuple[str, Loss]]:
        return [(name, getattr(self, name)) for name in self.names]

    def get(self, name: str) -> Loss | None:
        return getattr(self, name) if name in self.names else None

    def similarity_scale(self) -> float:
        """The image-text logit scale a loss may draw with: the first loss that learns one (ITC), else 1/0.07."""
        for _, loss in self.losses():
            if hasattr(loss, "similarity_scale"):
                return float(loss.similarity_scale)
        return 1.0 / 0.07

    def request(self, batch: Batch, context: RequestContext) -> ModelRequest:
        """Every loss's request, merged; at most one may ask for extra posts."""
        merged = ModelRequest()
        for name, loss in self.losses():
            req = loss.request(batch, context)
            if req is None:
                continue
            clash = set(req.kwargs) & set(merged.kwargs)
            if clash or (req.extra_rows is not None and merged.extra_rows is not None):
                raise ValueError(f"objective {name!r} asks the model for {sorted(clash) or 'extra posts'}, "
                                 "which another objective already asked for")
            merged.kwargs.update(req.kwargs)
            merged.extra_rows = req.extra_rows if req.extra_rows is not None else merged.extra_rows
        return merged

    def forward(self, output: ModelOutput, batch: Batch, collective: Collective | None = None) -> LossBreakdown:
        parts: dict[str, Tensor] = {}
        stats: dict[str, float] = {}
        total: Tensor | float = 0.0
        for name, loss in self.losses():
            found = loss(output, batch, collective)
            for part, factor in loss.part_weights(list(found)).items():
                total = total + (self.weights[name] * factor) * found[part]
            parts.update(found)
            stats.update(loss.stats())
        if not isinstance(total, Tensor):
            total = torch.zeros((), device=output.logits.device)
        return LossBreakdown(total, parts, stats)
