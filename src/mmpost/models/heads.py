"""Classifier heads: one task or several per model.

``num_classes`` is an ``int`` (one task, named ``"default"``) or a mapping task name → number of classes (one head
per task, in the mapping's order). A multi-label task needs no different head: C outputs, and the loss decides
between sigmoid and softmax.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Union

from torch import Tensor, nn

DEFAULT_TASK = "default"
NumClasses = Union[int, Mapping[str, int]]


def _check_size(task: str, size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"task {task!r}: the number of classes must be a positive integer, got {size!r}")
    return size


def task_sizes(num_classes: NumClasses) -> dict[str, int]:
    """``num_classes`` → {task: classes}, in order: ``{"default": n}`` for an int."""
    if not isinstance(num_classes, Mapping):
        return {DEFAULT_TASK: _check_size(DEFAULT_TASK, num_classes)}
    if not num_classes:
        raise ValueError("num_classes maps no task: give at least one task name and its number of classes")
    for task in num_classes:
        if not isinstance(task, str) or not task or "." in task or hasattr(nn.ModuleDict, task):
            raise ValueError(f"task name {task!r} cannot name a head: use a non-empty name without dots that is "
                             f"not an attribute of torch modules")
    return {task: _check_size(task, size) for task, size in num_classes.items()}


class TaskHeads(nn.ModuleDict):
    """x [B, D] → {task: logits [B, C_task]}: one ``nn.Linear(D→C_task)`` per task, in the given order."""

    def __init__(self, in_dim: int, sizes: Mapping[str, int]) -> None:
        super().__init__({task: nn.Linear(in_dim, size) for task, size in sizes.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        return {task: head(x) for task, head in self.items()}


def build_classifier(in_dim: int, num_classes: NumClasses) -> nn.Module:
    """One task: a plain ``nn.Linear(in_dim→C)`` (its state_dict keys ``weight`` / ``bias``, as every run saved so
    far); several tasks: :class:`TaskHeads` (keys ``<task>.weight`` / ``<task>.bias``)."""
    sizes = task_sizes(num_classes)
    if len(sizes) == 1:
        return nn.Linear(in_dim, next(iter(sizes.values())))
    return TaskHeads(in_dim, sizes)


def task_logits(head_output: Tensor | dict[str, Tensor], tasks: list[str]) -> dict[str, Tensor]:
    """What a classifier built by :func:`build_classifier` (or a head ending in one) returned → {task: logits
    [B, C_task]} for every task, in order."""
    if isinstance(head_output, dict):
        return head_output
    return {tasks[0]: head_output}
