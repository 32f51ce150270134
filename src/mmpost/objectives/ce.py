"""Classification loss, one part per task: cross-entropy (optionally class-weighted, "balanced" as in
scikit-learn) for a single-label task, binary cross-entropy over independent sigmoids for a multi-label one.

A post without a label for a task (-1) takes no part in that task's loss. One task gives one part, ``ce``;
several give ``ce_<task>`` each, weighted by ``task_weights`` (default 1) on top of the loss's ``weight``.

Across processes (a ``collective``), each part is this rank's scaled share of the global batch's weighted mean —
normalised by the class weights summed over all ranks — so the mean over ranks of the value, and of the
gradients, is what one process would get on the whole global batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.models.output import ModelOutput
from mmpost.objectives.base import Loss, LossConfig, LossContext, TaskInfo
from mmpost.objectives.collective import Collective, rank_share
from mmpost.registry import register

CLASS_WEIGHTS = ("balanced", "none")


def balanced_class_weights(label_ids: Sequence[int], num_classes: int) -> Tensor:
    """n / (k * count_c) for each class c; a class absent from the data gets weight 0. Missing labels (-1) are
    not counted."""
    ids = torch.as_tensor(list(label_ids), dtype=torch.long)
    counts = torch.bincount(ids[ids >= 0], minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights


def ce_loss(logits: Tensor, labels: Tensor, weight: Tensor | None = None) -> Tensor:
    """logits [B, C], labels [B] → scalar. Weighted mean over the batch when ``weight`` [C] is given."""
    return F.cross_entropy(logits, labels, weight=weight)


class TaskCE(nn.Module):
    """The loss of one task, with its class weights (a buffer: it follows the model to its device)."""

    def __init__(self, task: TaskInfo, class_weights: str) -> None:
        super().__init__()
        self.multi_label = task.multi_label
        weights = None
        if class_weights == "balanced" and not task.multi_label:
            weights = balanced_class_weights(task.train_labels.tolist(), len(task.labels))
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, logits: Tensor, labels: Tensor, collective: Collective | None = None) -> Tensor:
        if self.multi_label:
            return self._multi_label(logits, labels, collective)
        rows = labels >= 0
        logits, labels = logits[rows], labels[rows]
        w = self.class_weights[labels] if self.class_weights is not None else torch.ones_like(labels, dtype=torch.float)
        if collective is None:
            if float(w.sum()) == 0.0:
                return logits.sum() * 0.0     # no (weighted) labelled row in this batch; stays in the graph
            return ce_loss(logits, labels, self.class_weights)
        w_local = float(w.sum())
        w_global = float(collective.total(w.sum().float()))
        if w_local == 0.0 or w_global == 0.0:
            return logits.sum() * 0.0
        return rank_share(ce_loss(logits, labels, self.class_weights), w_local, w_global, collective.world_size)

    @staticmethod
    def _multi_label(logits: Tensor, labels: Tensor, collective: Collective | None) -> Tensor:
        """logits, labels [B, C]; a row of -1 is a post without this task's labels."""
        rows = (labels >= 0).all(dim=1)
        n_local = int(rows.sum())
        n_global = float(collective.total(rows.sum().float())) if collective is not None else float(n_local)
        if n_local == 0 or n_global == 0:
            return logits.sum() * 0.0
        loss = F.binary_cross_entropy_with_logits(logits[rows], labels[rows].float())
        if collective is None:
            return loss
        return rank_share(loss, n_local, n_global, collective.world_size)


@register("objective", "ce")
class CELoss(Loss):
    """The classification loss of every task of the run (built from the run's tasks and training labels)."""

    @dataclass
    class Config(LossConfig):
        class_weights: str = "balanced"    # balanced (n / (k · count), single-label tasks) | none
        task_weights: dict[str, float] = field(default_factory=dict)   # per task, default 1

        def __post_init__(self) -> None:
            if self.class_weights not in CLASS_WEIGHTS:
                raise ValueError(f"objectives.ce.class_weights must be one of {', '.join(CLASS_WEIGHTS)}, "
                                 f"got {self.class_weights!r}")

    def __init__(self, config: "CELoss.Config | None" = None, context: LossContext | None = None) -> None:
        super().__init__(config, context)
        tasks = (context or LossContext()).tasks
        if not tasks:
            raise ValueError("the ce objective needs the run's tasks (LossContext.tasks)")
        unknown = sorted(set(self.config.task_weights) - {t.name for t in tasks})
        if unknown:
            raise ValueError(f"objectives.ce.task_weights names unknown task(s) {unknown}; "
                             f"tasks: {', '.join(t.name for t in tasks)}")
        self.tasks = [t.name for t in tasks]
        self.per_task = nn.ModuleList(TaskCE(t, self.config.class_weights) for t in tasks)

    @property
    def class_weights(self) -> Tensor | None:
        """The first task's class weights."""
        return self.per_task[0].class_weights

    def part_name(self, task: str) -> str:
        return "ce" if len(self.tasks) == 1 else f"ce_{task}"

    def part_weights(self, names: Sequence[str]) -> dict[str, float]:
        by_part = {self.part_name(t): float(self.config.task_weights.get(t, 1.0)) for t in self.tasks}
        return {name: by_part[name] for name in names}

    def forward(self, output: ModelOutput, batch: Batch, collective: Collective | None = None) -> dict[str, Tensor]:
        if len(self.tasks) == 1:
            return {"ce": self.per_task[0](output.logits, batch.labels, collective)}
        return {self.part_name(t): loss(output.task_logits[t], batch.task_labels[t], collective)
                for t, loss in zip(self.tasks, self.per_task)}
