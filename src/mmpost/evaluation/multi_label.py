"""Scores of a multi-label task, where a post may carry several labels at once: the same fields as a single-label
task's (``weighted_f1``, ``macro_f1``, ``accuracy``, ``mcc``, ``n``), so that reports and tables read both.

- weighted / macro F1: per label, weighted by its support / averaged over the labels present in the truth;
- micro F1: over every (post, label) decision pooled;
- accuracy: the share of posts whose whole label set is right (exact match);
- MCC: over every (post, label) decision at once.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, precision_recall_fscore_support

from mmpost.data.post import Post
from mmpost.evaluation.predictions import MULTI_LABEL_THRESHOLD


def gold_matrix(posts: Sequence[Post], task: str, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """([N, C] 0/1 gold labels, [N] whether the post has a gold label set for ``task``). A post's gold is a list
    of label names (or one name); an unknown name raises, naming the post."""
    index = {name: k for k, name in enumerate(labels)}
    y = np.zeros((len(posts), len(labels)), dtype=np.int64)
    known = np.zeros(len(posts), dtype=bool)
    for i, post in enumerate(posts):
        value = post.labels.get(task)
        if value is None:
            continue
        names = [value] if isinstance(value, str) else list(value)
        unknown = [n for n in names if n not in index]
        if unknown:
            raise ValueError(f"post {post.id}: field labels.{task}: {unknown} not among {list(labels)}")
        y[i, [index[n] for n in names]] = 1
        known[i] = True
    return y, known


def decisions(probs: np.ndarray) -> np.ndarray:
    """[N, C] 0/1: each label at or above the threshold."""
    return (np.asarray(probs) >= MULTI_LABEL_THRESHOLD).astype(np.int64)


def multi_label_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """``{"weighted_f1", "macro_f1", "micro_f1", "accuracy", "mcc", "n"}`` of [N, C] 0/1 arrays (posts with a
    known gold); per-label F1 is in :func:`multi_label_per_class`."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if len(t) == 0:
        return {"weighted_f1": 0.0, "macro_f1": 0.0, "micro_f1": 0.0, "accuracy": 0.0, "mcc": 0.0, "n": 0}
    present = [k for k in range(t.shape[1]) if t[:, k].any()]
    macro = float(f1_score(t[:, present], p[:, present], average="macro", zero_division=0)) if present else 0.0
    flat_t, flat_p = t.ravel(), p.ravel()
    mcc = float(matthews_corrcoef(flat_t, flat_p)) if len(set(flat_t)) > 1 or len(set(flat_p)) > 1 else 0.0
    return {
        "weighted_f1": float(f1_score(t, p, average="weighted", zero_division=0)),
        "macro_f1": macro,
        "micro_f1": float(f1_score(t, p, average="micro", zero_division=0)),
        "accuracy": float(accuracy_score(t, p)),
        "mcc": mcc,
        "n": int(len(t)),
    }


def multi_label_per_class(y_true: np.ndarray, y_pred: np.ndarray, label_names: Sequence[str]) -> list[dict]:
    """Precision, recall, F1 and support of each label, as :func:`mmpost.evaluation.metrics.per_class` gives."""
    if len(y_true) == 0:
        return [{"label": n, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for n in label_names]
    prec, rec, f1, support = precision_recall_fscore_support(np.asarray(y_true), np.asarray(y_pred),
                                                             zero_division=0)
    return [{"label": name, "precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
             "support": int(support[i])} for i, name in enumerate(label_names)]
