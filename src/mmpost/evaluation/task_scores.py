"""One task's scores on a set of posts, from the probabilities a run gave them: what ``mmpost evaluate``,
``report.md`` and the run report show for each task. A single-label task is scored on its most probable label
(with a confusion matrix and a bootstrap interval of weighted F1); a multi-label task on every label at or above
the threshold (:mod:`mmpost.evaluation.multi_label`; no confusion matrix)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmpost.data.dataset import label_ids
from mmpost.data.post import Post
from mmpost.evaluation.metrics import classification_metrics, confusion, per_class
from mmpost.evaluation.multi_label import decisions, gold_matrix, multi_label_metrics, multi_label_per_class
from mmpost.evaluation.predictions import Task, threshold_decision
from mmpost.evaluation.uncertainty import weighted_f1_ci


@dataclass
class TaskScore:
    """``y`` and ``pred``: [N] label ids (-1: no gold) for a single-label task, [N, C] 0/1 for a multi-label one
    (``known`` says which posts have a gold label set)."""

    task: Task
    metrics: dict[str, Any]
    per_class: list[dict[str, Any]]
    confusion: list[list[int]] | None
    y: np.ndarray
    pred: np.ndarray


def score_task(task: Task, posts: Sequence[Post], probs: np.ndarray, *, interval: bool = False) -> TaskScore:
    """Score ``probs`` [N, C] (columns in the order of ``task.labels``) against the posts' gold labels.
    ``interval``: add ``weighted_f1_ci95`` (single-label tasks; a bootstrap, so it takes a moment)."""
    labels = list(task.labels)
    if task.multi_label:
        y, known = gold_matrix(posts, task.name, labels)
        pred = decisions(probs)
        return TaskScore(task, multi_label_metrics(y[known], pred[known]),
                         multi_label_per_class(y[known], pred[known], labels), None, y, pred)
    y = label_ids(posts, task.name, labels)
    pred = decided(task, np.asarray(probs))
    metrics = classification_metrics(y, pred, len(labels))
    if interval:
        metrics["weighted_f1_ci95"] = list(weighted_f1_ci(y, pred, len(labels)))
    return TaskScore(task, metrics, per_class(y, pred, labels), confusion(y, pred, len(labels)), y, pred)


def decided(task: Task, probs: np.ndarray) -> np.ndarray:
    """[N] label ids: the most probable label, or a binary task's operating point (positive at the threshold)."""
    if not len(probs):
        return np.zeros(0, dtype=np.int64)
    if task.threshold is not None and task.positive is not None:
        return threshold_decision(task, probs)
    return probs.argmax(1)


def calibration_scores(task: Task, posts: Sequence[Post], probs: np.ndarray,
                       probs_raw: np.ndarray) -> dict[str, float]:
    """ECE and NLL of the calibrated and the raw probabilities against the posts' gold labels."""
    from mmpost.evaluation.calibration import ece, nll
    if task.multi_label:
        y, known = gold_matrix(posts, task.name, list(task.labels))
        y = np.where(known[:, None], y, -1)
    else:
        y = label_ids(posts, task.name, list(task.labels))
    kw = {"multi_label": task.multi_label}
    return {"ece_raw": ece(probs_raw, y, **kw), "ece": ece(probs, y, **kw),
            "nll_raw": nll(probs_raw, y, **kw), "nll": nll(probs, y, **kw)}


def confusion_file(split: str, task: str, n_tasks: int) -> str:
    """The confusion matrix figure's file name: ``confusion_test.png`` for a one-task run (as runs always
    wrote), ``confusion_test_<task>.png`` for each task of several."""
    return f"confusion_{split}.png" if n_tasks == 1 else f"confusion_{split}_{task}.png"
