"""Temperature scaling (Guo et al., 2017) and the numbers that say how well probabilities are calibrated.

A network trained with cross-entropy is often over-confident: among posts it gives 0.95, far fewer than 95% are
right. Dividing a task's logits by one scalar T > 0, fitted on dev by minimising the negative log-likelihood,
fixes most of that without changing any argmax (so accuracy and F1 stay the same). A multi-label task's
independent sigmoids get one T for all its labels.

Conventions (as in :mod:`mmpost.evaluation.task_metrics`): logits are float [N, C]; single-label labels are [N]
class ids with -1 where a post has no label; multi-label labels are [N, C] 0/1 and a row holding any -1 has no
label. Unlabelled rows are ignored everywhere. Probabilities come back as float64.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from mmpost.evaluation.operating_point import OperatingPoint

CALIBRATION_FILE = "calibration.json"
T_MIN, T_MAX = 0.05, 20.0
N_BINS = 15
P_FLOOR = 1e-12      # probabilities are clipped here before a log


def _labelled(labels: np.ndarray) -> np.ndarray:
    """[N] bool: rows that carry the task's label (a multi-label row with any -1 carries none)."""
    return (labels >= 0).all(axis=1) if labels.ndim == 2 else labels >= 0


def _gold(logits_or_probs: Any, labels: Any, multi_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """The labelled rows of (scores as float64 [n, C], labels), with the shapes checked."""
    x, y = np.asarray(logits_or_probs, dtype=np.float64), np.asarray(labels)
    if x.ndim != 2:
        raise ValueError(f"expected scores of shape [N, C], got {x.shape}")
    want = x.shape if multi_label else x.shape[:1]
    if y.shape != want:
        kind = "multi-label labels [N, C]" if multi_label else "labels [N]"
        raise ValueError(f"expected {kind} of shape {want} for scores {x.shape}, got {y.shape}")
    rows = _labelled(y)
    return x[rows], y[rows].astype(np.int64)


def _nll_of_logits(z: np.ndarray, y: np.ndarray, multi_label: bool) -> float:
    """Mean NLL straight from logits (stable for logits of any size): softmax cross-entropy, or binary
    cross-entropy averaged over every (post, label) for independent sigmoids."""
    if multi_label:
        # -log sigmoid(z) = log(1 + e^-z) and -log(1 - sigmoid(z)) = log(1 + e^z)
        return float(np.mean(np.where(y == 1, np.logaddexp(0.0, -z), np.logaddexp(0.0, z))))
    return float(-np.mean(log_softmax(z, axis=1)[np.arange(len(y)), y]))


def fit_temperature(logits: Any, labels: Any, *, multi_label: bool = False) -> float:
    """The T in [0.05, 20] minimising the NLL of softmax(logits / T) (sigmoid for multi-label) on the labelled rows.

    The NLL is convex in 1/T, hence unimodal in log T, where a bounded Brent search (deterministic) finds it. 1.0
    when fewer than 2 rows are labelled, or when no T does better than 1.0 (e.g. constant logits)."""
    z, y = _gold(logits, labels, multi_label)
    if len(y) < 2:
        return 1.0

    def loss(log_t: float) -> float:
        return _nll_of_logits(z / math.exp(log_t), y, multi_label)

    lo, hi = math.log(T_MIN), math.log(T_MAX)
    res = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-5, "maxiter": 200})
    # Brent stops just inside a bound when the optimum lies beyond it: the bounds themselves are candidates too
    best, best_loss = min(((float(res.x), float(res.fun)), (lo, loss(lo)), (hi, loss(hi))), key=lambda c: c[1])
    if not np.isfinite(best_loss) or not best_loss < loss(0.0) - 1e-12:
        return 1.0
    return float(np.clip(math.exp(best), T_MIN, T_MAX))


def apply_temperature(logits: Any, temperature: float, *, multi_label: bool = False,
                      bias: Any = None) -> np.ndarray:
    """Probabilities [N, C] (float64) of ``logits / temperature + bias``: softmax, or sigmoid per label. ``bias``
    (one value per label; see :mod:`mmpost.evaluation.bias_temperature`) is 0 for plain temperature scaling."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    if bias is not None:
        z = z + np.asarray(bias, dtype=np.float64)
    if multi_label:
        return np.exp(-np.logaddexp(0.0, -z))       # sigmoid without overflow
    return np.exp(log_softmax(z, axis=1))


def _confidence_correct(probs: Any, labels: Any, multi_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """One (confidence, correct) pair per prediction: the top label of each labelled post, or each (post, label)
    decision of a multi-label task, with confidence max(p, 1 - p) and correct = ((p >= 0.5) == gold)."""
    p, y = _gold(probs, labels, multi_label)
    if multi_label:
        p, y = p.ravel(), y.ravel()
        return np.maximum(p, 1.0 - p), (p >= 0.5) == (y == 1)
    if not len(y):
        return np.zeros(0), np.zeros(0, dtype=bool)
    return p.max(axis=1), p.argmax(axis=1) == y


def _bin_sums(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> tuple[np.ndarray, ...]:
    """(count, sum of confidence, number correct) per equal-width bin of [0, 1]; a bin is [lo, hi) except the
    last, [lo, 1], so a confidence of exactly 1.0 is counted."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    k = np.clip(np.floor(confidence * n_bins).astype(np.int64), 0, n_bins - 1)
    return (np.bincount(k, minlength=n_bins), np.bincount(k, weights=confidence, minlength=n_bins),
            np.bincount(k, weights=correct.astype(np.float64), minlength=n_bins))


def ece(probs: Any, labels: Any, *, multi_label: bool = False, n_bins: int = N_BINS) -> float:
    """Top-label expected calibration error: the mean over bins of |accuracy - confidence|, weighted by the bin's
    share of predictions (multi-label: every (post, label) pair is one binary prediction). NaN when no row is
    labelled."""
    confidence, correct = _confidence_correct(probs, labels, multi_label)
    if not len(confidence):
        return float("nan")
    _, conf_sum, correct_sum = _bin_sums(confidence, correct, n_bins)
    return float(np.abs(correct_sum - conf_sum).sum() / len(confidence))


def nll(probs: Any, labels: Any, *, multi_label: bool = False) -> float:
    """Mean negative log-likelihood of the gold labels, probabilities clipped at 1e-12 (multi-label: the mean
    binary cross-entropy over every (post, label)). NaN when no row is labelled."""
    p, y = _gold(probs, labels, multi_label)
    if not len(y):
        return float("nan")
    if multi_label:
        return float(-np.mean(np.log(np.maximum(np.where(y == 1, p, 1.0 - p), P_FLOOR))))
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], P_FLOOR))))


def reliability_bins(probs: Any, labels: Any, *, multi_label: bool = False, n_bins: int = N_BINS) -> list[dict]:
    """Per bin ``{"lo", "hi", "count", "confidence", "accuracy"}``: what a reliability diagram draws (mean
    confidence and accuracy of the predictions in the bin; NaN in an empty bin)."""
    confidence, correct = _confidence_correct(probs, labels, multi_label)
    count, conf_sum, correct_sum = _bin_sums(confidence, correct, n_bins)
    nan = float("nan")
    return [{"lo": b / n_bins, "hi": (b + 1) / n_bins, "count": int(count[b]),
             "confidence": float(conf_sum[b] / count[b]) if count[b] else nan,
             "accuracy": float(correct_sum[b] / count[b]) if count[b] else nan} for b in range(n_bins)]


def calibration_metrics(logits: Any, labels: Any, temperature: float, *,
                        multi_label: bool = False, bias: Any = None) -> dict[str, float]:
    """``{"temperature", "ece_raw", "ece", "nll_raw", "nll"}``: ECE and NLL before (T = 1) and after dividing the
    logits by ``temperature`` (and adding ``bias``)."""
    raw = apply_temperature(logits, 1.0, multi_label=multi_label)
    scaled = apply_temperature(logits, temperature, multi_label=multi_label, bias=bias)
    return {"temperature": float(temperature),
            "ece_raw": ece(raw, labels, multi_label=multi_label), "ece": ece(scaled, labels, multi_label=multi_label),
            "nll_raw": nll(raw, labels, multi_label=multi_label), "nll": nll(scaled, labels, multi_label=multi_label)}


@dataclass(frozen=True)
class Calibration:
    """What a run learns on dev after training: a temperature per task, optionally a bias per label
    (``calibration: temperature+bias``), and per binary task an optional operating point
    (:class:`~mmpost.evaluation.operating_point.OperatingPoint` as a plain dict). Saved as ``calibration.json``
    next to the model."""

    temperatures: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, dict] = field(default_factory=dict)
    biases: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``{"temperatures": {task: T}, "thresholds": {task: operating point}, "biases": {task: [b, ...]}}``
        (JSON-ready; ``biases`` only where there are some)."""
        out: dict[str, Any] = {"temperatures": {t: float(v) for t, v in self.temperatures.items()},
                               "thresholds": {t: dict(op) for t, op in self.thresholds.items()}}
        if self.biases:
            out["biases"] = {t: [float(x) for x in b] for t, b in self.biases.items()}
        return out

    @classmethod
    def from_json(cls, d: Any, source: str = CALIBRATION_FILE) -> Calibration:
        """Read back :meth:`to_json`; bad content raises ValueError naming ``source`` and the key. ``thresholds``
        may be left out."""
        if not isinstance(d, Mapping):
            raise ValueError(f"{source}: expected an object with keys temperatures, thresholds; "
                             f"got {type(d).__name__}")
        unknown = [k for k in d if k not in ("temperatures", "thresholds", "biases")]
        if unknown or "temperatures" not in d:
            raise ValueError(f"{source}: expected keys temperatures (required), thresholds and biases; "
                             f"got {sorted(map(str, d))}")
        biases = d.get("biases", {})
        if not isinstance(biases, Mapping) or not all(
                isinstance(b, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                            and math.isfinite(x) for x in b) for b in biases.values()):
            raise ValueError(f"{source}: key biases: expected {{task: [finite numbers]}}, got {biases!r}")
        temperatures, thresholds = d["temperatures"], d.get("thresholds", {})
        for key, value in (("temperatures", temperatures), ("thresholds", thresholds)):
            if not isinstance(value, Mapping) or not all(isinstance(t, str) for t in value):
                raise ValueError(f"{source}: key {key}: expected an object keyed by task name, got {value!r}")
        for task, t in temperatures.items():
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
                raise ValueError(f"{source}: key temperatures.{task}: expected a finite number > 0, got {t!r}")
        checked = {task: OperatingPoint.from_json(op, where=f"{source}: key thresholds.{task}").to_json()
                   for task, op in thresholds.items()}
        return cls(temperatures={t: float(v) for t, v in temperatures.items()}, thresholds=checked,
                   biases={t: [float(x) for x in b] for t, b in biases.items()})

    @classmethod
    def identity(cls, tasks: Iterable[str]) -> Calibration:
        """Every task at T = 1 and no thresholds: probabilities exactly as the model gives them."""
        return cls(temperatures={t: 1.0 for t in tasks})
