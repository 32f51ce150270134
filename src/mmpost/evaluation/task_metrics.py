"""Metrics of one task, single-label or multi-label, and the mean score that early stopping reads.

A multi-label task is scored on the 0/1 decisions ``probability >= 0.5``: micro and macro F1 over labels,
weighted F1 (by label support), exact-match accuracy (subset accuracy), and F1 per label.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from mmpost.evaluation.metrics import classification_metrics, per_class, weighted_f1

THRESHOLD = 0.5


def labelled_rows(labels: np.ndarray) -> np.ndarray:
    """Rows that carry this task's label (a multi-label row of -1 has none)."""
    return (labels >= 0).all(axis=1) if labels.ndim == 2 else labels >= 0


def decisions(probs: np.ndarray, multi_label: bool) -> np.ndarray:
    """Class ids [N] (argmax), or a 0/1 matrix [N, C] (probability >= 0.5) for a multi-label task."""
    return (probs >= THRESHOLD).astype(np.int64) if multi_label else probs.argmax(1)


def task_score(labels: np.ndarray, probs: np.ndarray, multi_label: bool) -> float:
    """Weighted F1 over the labelled rows (multi-label: weighted by each label's support)."""
    rows = labelled_rows(labels)
    pred = decisions(probs, multi_label)[rows]
    if multi_label:
        return float(f1_score(labels[rows], pred, average="weighted", zero_division=0)) if rows.any() else 0.0
    return weighted_f1(labels[rows], pred)


def mean_score(labels: Mapping[str, np.ndarray], probs: Mapping[str, np.ndarray],
               multi_label: Sequence[str] = ()) -> float:
    """The mean over tasks of :func:`task_score`: what early stopping compares across epochs."""
    scores = [task_score(labels[t], probs[t], t in multi_label) for t in probs]
    return float(np.mean(scores)) if scores else 0.0


def multilabel_metrics(labels: np.ndarray, probs: np.ndarray, names: Sequence[str]) -> dict:
    """{"micro_f1", "macro_f1", "weighted_f1", "subset_accuracy", "n", "per_label": {name: f1}}."""
    rows = labelled_rows(labels)
    y, pred = labels[rows], decisions(probs, True)[rows]
    if not rows.any():
        return {"micro_f1": 0.0, "macro_f1": 0.0, "weighted_f1": 0.0, "subset_accuracy": 0.0, "n": 0,
                "per_label": {n: 0.0 for n in names}}
    _, _, f1, _ = precision_recall_fscore_support(y, pred, zero_division=0)
    return {"micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
            "weighted_f1": float(f1_score(y, pred, average="weighted", zero_division=0)),
            "subset_accuracy": float(accuracy_score(y, pred)), "n": int(rows.sum()),
            "per_label": {name: float(f1[i]) for i, name in enumerate(names)}}


def metrics_of(labels: np.ndarray, probs: np.ndarray, names: Sequence[str], multi_label: bool) -> dict:
    """A task's metrics: :func:`~mmpost.evaluation.metrics.classification_metrics` or :func:`multilabel_metrics`."""
    if multi_label:
        return multilabel_metrics(labels, probs, names)
    return classification_metrics(labels, probs.argmax(1), len(names))


def per_class_rows(labels: np.ndarray, probs: np.ndarray, names: Sequence[str], multi_label: bool) -> list[dict]:
    """Precision, recall, F1 and support per class (per label for a multi-label task)."""
    if not multi_label:
        return per_class(labels, probs.argmax(1), names)
    rows = labelled_rows(labels)
    prec, rec, f1, support = precision_recall_fscore_support(labels[rows], decisions(probs, True)[rows],
                                                             zero_division=0)
    return [{"label": n, "precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
             "support": int(support[i])} for i, n in enumerate(names)]
