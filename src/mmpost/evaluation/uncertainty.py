"""How sure a test score is: a percentile bootstrap over posts (scipy), paired on (truth, prediction)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import bootstrap


def _weighted_f1_from_counts(t: np.ndarray, p: np.ndarray, k: int) -> float:
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(float)
    support = cm.sum(1).astype(float)
    predicted = cm.sum(0).astype(float)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    return float((f1 * support).sum() / max(support.sum(), 1.0))


def weighted_f1_ci(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int, *, level: float = 0.95,
                   n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of weighted F1 over the labelled posts (label id >= 0)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    keep = t >= 0
    t, p = t[keep].astype(np.int64), p[keep].astype(np.int64)
    if len(t) < 2:
        value = _weighted_f1_from_counts(t, p, num_classes) if len(t) else 0.0
        return value, value
    res = bootstrap((t, p), lambda a, b: _weighted_f1_from_counts(a, b, num_classes), paired=True,
                    vectorized=False, n_resamples=n_resamples, confidence_level=level, method="percentile",
                    rng=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    return float(lo), float(hi)
