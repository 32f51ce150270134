"""Scores of one task from label arrays (what training and early stopping read): single-label tasks through
:mod:`mmpost.evaluation.metrics`, multi-label tasks through :mod:`mmpost.evaluation.multi_label`.

Labels are [N] class ids (-1: no label) or, for a multi-label task, [N, C] 0/1 with rows of -1 where a post has
none; probabilities are [N, C].
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mmpost.evaluation.metrics import classification_metrics, per_class, weighted_f1
from mmpost.evaluation.multi_label import decisions, multi_label_metrics, multi_label_per_class


def labelled_rows(labels: np.ndarray) -> np.ndarray:
    """Rows that carry this task's label (a multi-label row of -1 has none)."""
    return (labels >= 0).all(axis=1) if labels.ndim == 2 else labels >= 0


def task_score(labels: np.ndarray, probs: np.ndarray, multi_label: bool) -> float:
    """Weighted F1 over the labelled rows (multi-label: weighted by each label's support)."""
    rows = labelled_rows(labels)
    if multi_label:
        return multi_label_metrics(labels[rows], decisions(probs[rows]))["weighted_f1"]
    return weighted_f1(labels[rows], probs.argmax(1)[rows])


def mean_score(labels: Mapping[str, np.ndarray], probs: Mapping[str, np.ndarray],
               multi_label: Sequence[str] = ()) -> float:
    """The mean over tasks of :func:`task_score`: what early stopping compares across epochs."""
    scores = [task_score(labels[t], probs[t], t in multi_label) for t in probs]
    return float(np.mean(scores)) if scores else 0.0


def metrics_of(labels: np.ndarray, probs: np.ndarray, names: Sequence[str], multi_label: bool) -> dict:
    """A task's metrics (the same fields for both kinds: weighted_f1, macro_f1, accuracy, mcc, n)."""
    if multi_label:
        rows = labelled_rows(labels)
        return multi_label_metrics(labels[rows], decisions(probs[rows]))
    return classification_metrics(labels, probs.argmax(1), len(names))


def per_class_rows(labels: np.ndarray, probs: np.ndarray, names: Sequence[str], multi_label: bool) -> list[dict]:
    """Precision, recall, F1 and support per class (per label for a multi-label task)."""
    if multi_label:
        rows = labelled_rows(labels)
        return multi_label_per_class(labels[rows], decisions(probs[rows]), names)
    return per_class(labels, probs.argmax(1), names)
