"""What every training objective shares: its config, what it is built from, and the hooks the engine calls.

A loss is one file: a subclass of :class:`Loss` with a nested ``Config`` dataclass (``weight``, ``enabled`` and its
own options), registered by name::

    @register("objective", "my_loss")
    class MyLoss(Loss):
        @dataclass
        class Config(LossConfig):
            margin: float = 0.2

        def forward(self, output, batch, collective=None):
            return {"my_loss": ...}          # named, unweighted parts

and switched on in a recipe with ``objectives: {my_loss: {weight: 0.5, margin: 0.3}}``. Each part is logged as
``train_<part>`` / ``dev_<part>`` and enters the total with the loss's weight (:mod:`mmpost.objectives.combined`).

A loss that needs the model to compute something for it (ITM: scores for made-up image-text pairs) asks through
:meth:`Loss.request`; the engine passes the returned keyword arguments to the model and knows nothing of the loss.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.models.output import ModelOutput
from mmpost.objectives.collective import Collective


@dataclass
class LossConfig:
    """Options every loss has. ``weight``: λ in the additive form, β in the convex one. ``enabled: false`` keeps the
    entry in the recipe but turns the loss off (``objectives.itm.enabled=false`` on the command line)."""
    weight: float = 1.0
    enabled: bool = True


@dataclass
class TaskInfo:
    """One classification task as a loss sees it: its name, label names and training label ids (-1: missing; a
    multi-label task: an [N, C] 0/1 array, rows of -1 where missing)."""
    name: str
    labels: list[str]
    train_labels: np.ndarray
    multi_label: bool = False


@dataclass
class LossContext:
    """What a loss may be built from (besides its own config): the run's tasks, first task first, and — when both
    towers are one CLIP or SigLIP checkpoint (hf-clip) — its (log logit scale, logit bias or None)."""
    tasks: list[TaskInfo] = field(default_factory=list)
    checkpoint_scale: tuple[float, float | None] | None = None


@dataclass
class RequestContext:
    """What a loss's :meth:`Loss.request` may use.

    generator        the RNG for anything drawn (seeded; a fixed seed at evaluation)
    collective       the other processes of a data-parallel run (None: one process)
    similarity_scale the logit scale of the run's image-text similarity (ITC's learned one, else 1/0.07)
    embeddings       a no-gradient, eval-mode pass of the model over the batch → (text_embeds, image_embeds)
    """
    generator: torch.Generator | None = None
    collective: Collective | None = None
    similarity_scale: float = 1 / 0.07
    embeddings: Callable[[], tuple[Tensor, Tensor]] | None = None


@dataclass
class ModelRequest:
    """What a loss asks of the model's forward: keyword arguments, and — in data-parallel training — other posts
    (``extra_rows``: dataset rows) the model must also read; the output is cut back to the batch's own posts."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    extra_rows: Tensor | None = None


class Loss(nn.Module):
    """A training objective: named, unweighted parts from the model output and the batch."""

    Config = LossConfig

    def __init__(self, config: LossConfig | None = None, context: LossContext | None = None) -> None:
        super().__init__()
        self.config = config or self.Config()

    def request(self, batch: Batch, context: RequestContext) -> ModelRequest | None:
        """What the model must compute for this loss (default: nothing beyond its usual output)."""
        return None

    def part_weights(self, names: Sequence[str]) -> Mapping[str, float]:
        """Each returned part's weight relative to this loss's ``weight`` (default: 1 each)."""
        return {name: 1.0 for name in names}

    def stats(self) -> dict[str, float]:
        """Numbers to log beside the parts, such as a learned temperature (default: none)."""
        return {}

    def forward(self, output: ModelOutput, batch: Batch,
                collective: Collective | None = None) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError
