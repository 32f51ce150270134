"""Bias-corrected temperature scaling (``calibration: temperature+bias``): ``softmax(logits / T + b)`` with one
bias per label, fitted with T on dev by minimising the negative log-likelihood (Alexandari et al., 2020).

Plain temperature scaling cannot undo a shift of the class priors, such as the one class-weighted cross-entropy
builds in on purpose (it trains the model as if the classes were balanced): the per-label bias can. It can move an
argmax, so accuracy and F1 may change slightly; with few dev posts it has more to fit (C − 1 more numbers) and may
overfit. The first label's bias of a softmax task is fixed at 0 (a softmax ignores a common shift).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import minimize

from mmpost.evaluation.calibration import T_MAX, T_MIN, _gold, _nll_of_logits, fit_temperature


def fit_bias_temperature(logits: Any, labels: Any, *, multi_label: bool = False) -> tuple[float, list[float]]:
    """(T, bias per label) minimising the dev NLL of ``logits / T + bias``; starts from plain temperature scaling
    and never ends worse than it. T = 1 and zero biases when fewer than 2 rows are labelled."""
    z, y = _gold(logits, labels, multi_label)
    n_labels = z.shape[1]
    t0 = fit_temperature(logits, labels, multi_label=multi_label)
    if len(y) < 2:
        return t0, [0.0] * n_labels
    free = n_labels if multi_label else n_labels - 1

    def unpack(v: np.ndarray) -> tuple[float, np.ndarray]:
        bias = v[1:] if multi_label else np.concatenate([[0.0], v[1:]])
        return math.exp(v[0]), bias

    def loss(v: np.ndarray) -> float:
        t, bias = unpack(v)
        return _nll_of_logits(z / t + bias, y, multi_label)

    start = np.concatenate([[math.log(t0)], np.zeros(free)])
    res = minimize(loss, start, method="L-BFGS-B",
                   bounds=[(math.log(T_MIN), math.log(T_MAX))] + [(-20.0, 20.0)] * free)
    if not np.isfinite(res.fun) or res.fun > loss(start):
        return t0, [0.0] * n_labels
    t, bias = unpack(res.x)
    return float(t), [float(b) for b in bias]
