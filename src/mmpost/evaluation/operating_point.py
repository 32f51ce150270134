"""A decision threshold for a binary task, chosen on dev for a precision or a recall target.

A classifier's argmax answers "which label is likelier"; a moderator often needs "flag a post only when we are at
least 90% right" (a precision target) or "catch at least 80% of the harmful posts" (a recall target). Both are a
threshold on the probability of the positive label, picked on dev and then applied as is to new posts: predict the
positive label when ``p(positive) >= threshold``.

The choice is one sort of the dev scores (O(N log N)), so a million posts take well under a second.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

METRICS = ("precision", "recall")
EXAMPLE = "TASK:precision=0.9 or TASK:recall=0.8 (or precision=0.9 for the first task)"
# A rate computed as tp / n is compared with the target with this slack, so 9/10 meets a target of 0.9.
_SLACK = 1e-12


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold chosen on dev: ``metric`` (precision or recall) was asked to reach ``target``; ``reached`` says
    whether it did, and ``dev_precision`` / ``dev_recall`` are what the threshold gives on dev."""

    task: str
    positive: str
    metric: str
    target: float
    threshold: float
    reached: bool
    dev_precision: float
    dev_recall: float

    def to_json(self) -> dict[str, Any]:
        """A plain dict (JSON-ready) of every field."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: Any, where: str = "operating point") -> OperatingPoint:
        """Read back :meth:`to_json`; bad content raises ValueError naming ``where`` and the key."""
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected an object with keys {list(_FIELDS)}, got {type(d).__name__}")
        missing = [k for k in _FIELDS if k not in d]
        unknown = [k for k in d if k not in _FIELDS]
        if missing or unknown:
            raise ValueError(f"{where}: missing keys {missing}, unknown keys {unknown}; expected {list(_FIELDS)}")
        for key in ("task", "positive", "metric"):
            if not isinstance(d[key], str):
                raise ValueError(f"{where}: key {key}: expected a string, got {d[key]!r}")
        if d["metric"] not in METRICS:
            raise ValueError(f"{where}: key metric: expected one of {list(METRICS)}, got {d['metric']!r}")
        if not isinstance(d["reached"], bool):
            raise ValueError(f"{where}: key reached: expected true or false, got {d['reached']!r}")
        target = _number(d, "target", where)
        if not 0.0 < target <= 1.0:
            raise ValueError(f"{where}: key target: expected a number in (0, 1], got {target!r}")
        rates = {k: _number(d, k, where) for k in ("dev_precision", "dev_recall")}
        for key, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{where}: key {key}: expected a number in [0, 1], got {value!r}")
        return cls(task=d["task"], positive=d["positive"], metric=d["metric"], target=target,
                   threshold=_number(d, "threshold", where), reached=d["reached"], **rates)


_FIELDS = tuple(OperatingPoint.__dataclass_fields__)


def _number(d: Mapping[str, Any], key: str, where: str) -> float:
    """``d[key]`` as a finite float (a bool is not a number here)."""
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: key {key}: expected a finite number, got {value!r}")
    return float(value)


def _check_inputs(scores: Any, positive: Any) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` as float64 [N] and ``positive`` as bool [N], checked for shape and finite scores."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive).astype(bool)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"scores and positive must both be [N]; got shapes {s.shape} and {y.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite (a NaN or infinite probability of the positive label)")
    return s, y


def _curve(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct thresholds from the highest down, true positives at each, predicted positives at each), for the
    rule ``score >= threshold``: one stable sort, then cumulative counts at the last row of each distinct score."""
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    tp = np.cumsum(y_sorted, dtype=np.int64)[ends]
    return s_sorted[ends], tp, ends + 1


def choose_threshold(scores: Any, positive: Any, *, metric: str, target: float, task: str = "",
                     positive_label: str = "") -> OperatingPoint:
    """The dev threshold for ``metric`` = ``target``; ``scores`` [N] is p(positive), ``positive`` [N] the gold.

    - precision: the LOWEST threshold whose dev precision is >= target (the one that keeps the most recall). When
      no threshold reaches it, the threshold of best precision (ties: the lowest, i.e. the most recall), with
      ``reached=False``.
    - recall: the HIGHEST threshold whose dev recall is >= target (always reached: the lowest score gives 1.0).

    The threshold is always one of the dev scores, so at least one dev post is predicted positive."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    try:
        target = float(target)
    except (TypeError, ValueError):
        raise ValueError(f"target must be a number in (0, 1], got {target!r}") from None
    if not 0.0 < target <= 1.0:       # NaN fails this too
        raise ValueError(f"target must be a number in (0, 1], got {target!r}")
    s, y = _check_inputs(scores, positive)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError(f"choosing a threshold needs at least one positive and one negative dev post; got "
                         f"{n_pos} positive of {len(y)}")
    thresholds, tp, predicted = _curve(s, y)
    precision, recall = tp / predicted, tp / n_pos
    rate = precision if metric == "precision" else recall
    meets = np.flatnonzero(rate >= target - _SLACK)
    reached = len(meets) > 0
    if reached:
        # thresholds run from the highest down: the lowest is the last index, the highest the first
        k = int(meets[-1] if metric == "precision" else meets[0])
    else:
        k = int(np.flatnonzero(precision == precision.max())[-1])
    return OperatingPoint(task=task, positive=positive_label, metric=metric, target=target,
                          threshold=float(thresholds[k]), reached=reached, dev_precision=float(precision[k]),
                          dev_recall=float(recall[k]))


def precision_recall_at(scores: Any, positive: Any, threshold: float) -> tuple[float, float, int]:
    """(precision, recall, number predicted positive) when predicting positive where ``score >= threshold``.

    Precision is 0.0 when nothing is predicted positive, and recall 0.0 when there is no gold positive."""
    s, y = _check_inputs(scores, positive)
    predicted = s >= threshold
    n_pred, tp, n_pos = int(predicted.sum()), int((predicted & y).sum()), int(y.sum())
    return (tp / n_pred if n_pred else 0.0), (tp / n_pos if n_pos else 0.0), n_pred


def parse_operating_point(text: str) -> tuple[str, str, float]:
    """``"TASK:precision=0.9"`` → ``("TASK", "precision", 0.9)``; ``"recall=0.8"`` → ``("", "recall", 0.8)`` (the
    empty task means the first task). A malformed string raises ValueError with an example."""
    task, colon, rest = str(text).strip().rpartition(":")
    metric, equals, value = rest.partition("=")
    metric, task = metric.strip(), task.strip()
    bad = f"operating point {text!r}: expected {EXAMPLE}"
    if not equals or metric not in METRICS or (colon and not task):
        raise ValueError(bad)
    try:
        target = float(value)
    except ValueError:
        raise ValueError(bad) from None
    if not 0.0 < target <= 1.0:       # NaN fails this too
        raise ValueError(f"operating point {text!r}: the target must be in (0, 1], e.g. {EXAMPLE}")
    return task, metric, target


def apply_threshold(probs: Any, labels: Sequence[str], op: OperatingPoint) -> list[str]:
    """Label names for a binary task's probs [N, 2] (columns in the order of ``labels``): ``op.positive`` where
    its probability is >= ``op.threshold``, else the other label."""
    p = np.asarray(probs, dtype=np.float64)
    if len(labels) != 2 or p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"task {op.task}: a threshold applies to a binary task with probs [N, 2]; got "
                         f"{len(labels)} labels and probs of shape {p.shape}")
    if op.positive not in labels:
        raise ValueError(f"task {op.task}: positive label {op.positive!r} not among {list(labels)}")
    k = list(labels).index(op.positive)
    positive, other = labels[k], labels[1 - k]
    return [positive if hit else other for hit in (p[:, k] >= op.threshold).tolist()]
