"""Classification metrics (scikit-learn), as fractions in [0, 1] (MCC in [-1, 1], 0 = chance)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_recall_fscore_support

from mmpost.registry import register

METRIC_NAMES = ("weighted_f1", "macro_f1", "accuracy", "mcc", "n")


@register("metric", "weighted_f1")
def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if len(y_true) == 0:
        return 0.0
    return float(f1_score(y_true, y_pred, average="weighted", zero_division=0))


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict[str, float]:
    """{"weighted_f1", "macro_f1", "accuracy", "mcc", "n"} over the labelled rows (label id >= 0)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    keep = t >= 0
    t, p = t[keep], p[keep]
    if len(t) == 0:
        return {"weighted_f1": 0.0, "macro_f1": 0.0, "accuracy": 0.0, "mcc": 0.0, "n": 0}
    labels = list(range(num_classes))
    present = sorted(set(t.tolist()))   # macro F1 over the classes present in the truth
    return {
        "weighted_f1": float(f1_score(t, p, labels=labels, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(t, p, labels=present, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(t, p)),
        "mcc": float(matthews_corrcoef(t, p)),   # in [-1, 1]; 0 = chance
        "n": int(len(t)),
    }


def per_class(y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str]) -> list[dict]:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    keep = t >= 0
    prec, rec, f1, support = precision_recall_fscore_support(t[keep], p[keep], labels=list(range(len(label_names))),
                                                             zero_division=0)
    return [{"label": name, "precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
             "support": int(support[i])} for i, name in enumerate(label_names)]


def confusion(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> list[list[int]]:
    from sklearn.metrics import confusion_matrix
    t, p = np.asarray(y_true), np.asarray(y_pred)
    keep = t >= 0
    return confusion_matrix(t[keep], p[keep], labels=list(range(num_classes))).tolist()


def majority_baseline(train_labels: Sequence[int], y_true: Sequence[int], num_classes: int) -> dict[str, float]:
    """Metrics of always predicting the most frequent training class."""
    tr = np.asarray(train_labels)
    tr = tr[tr >= 0]
    majority = int(np.bincount(tr, minlength=num_classes).argmax()) if len(tr) else 0
    return classification_metrics(y_true, np.full(len(y_true), majority), num_classes)
