"""Balanced samplers: which rows of a clustered subset to train on this round (ITRp step 3), kind ``"sampler"``.

Clusters of post embeddings are rarely the same size, and a head trained on imbalanced pseudo-labels learns the
majority cluster (DeepCluster makes the same point). Every sampler answers one question::

    rows = get_sampler("under").sample(n_or_x, pseudo_labels, seed=0)   # positions 0..n-1, maybe repeated
    batch_source = subset[rows]

``rows`` are *positions into the subset* (not post ids: index your id array with them), in a random order, and with
repeats for over-sampling. The strategies, as in the ITRp paper (§3.3, Table 5):

* ``"random"``: the imbalanced baseline: every row once, shuffled.
* ``"under"``: randomly drop rows of the larger clusters until every cluster has as many as the smallest
  (imblearn ``RandomUnderSampler``; best for ITRp's text task). A tiny cluster makes a tiny training set:
  check ``last_info.counts_after``.
* ``"over"``: randomly repeat rows of the smaller clusters until every cluster has as many as the largest
  (imblearn ``RandomOverSampler``; best for the image task).
* ``"combine"``: the paper's combination sampling: every cluster is brought to ``n // c`` rows (c = number of
  non-empty clusters), by over-sampling the smaller clusters and under-sampling the larger ones, so the balanced
  set keeps (about) the size of the subset. imblearn's own combinations (SMOTEENN, SMOTETomek) synthesise and clean
  *feature* vectors, which makes no sense for posts that must go back through an encoder, so they are not used.

imblearn resamples an index column (``np.arange(n)[:, None]``), so what comes back are row positions, never features.

**One cluster only.** When every row carries the same pseudo-label there is nothing to balance (and nothing for a
classifier to learn): every sampler returns all rows once, shuffled, issues a :class:`DegenerateClustersWarning`,
and sets ``last_info.degenerate``.
"""
from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmpost.registry import get, register

__all__ = ["DegenerateClustersWarning", "SampleInfo", "Sampler", "RandomSampler", "UnderSampler", "OverSampler",
           "CombineSampler", "class_counts", "get_sampler"]


class DegenerateClustersWarning(UserWarning):
    """All rows share one pseudo-label: nothing was balanced."""


@dataclass
class SampleInfo:
    """What the last ``sample`` call did: strategy name, rows per pseudo-label before and after, and whether the
    pseudo-labels were degenerate (a single cluster)."""

    strategy: str
    counts_before: dict[int, int] = field(default_factory=dict)
    counts_after: dict[int, int] = field(default_factory=dict)
    degenerate: bool = False

    @property
    def n_before(self) -> int:
        return sum(self.counts_before.values())

    @property
    def n_after(self) -> int:
        return sum(self.counts_after.values())


def class_counts(pseudo_labels: np.ndarray) -> dict[int, int]:
    """{pseudo-label: number of rows}, sorted by label."""
    values, counts = np.unique(np.asarray(pseudo_labels), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def _n_rows(indices_or_x: Any) -> int:
    if isinstance(indices_or_x, (int, np.integer)):
        return int(indices_or_x)
    arr = np.asarray(indices_or_x)
    if arr.ndim == 0:
        raise ValueError("indices_or_x must be a row count, an index array or a feature matrix")
    return int(arr.shape[0])


class Sampler(ABC):
    """Interface: ``sample(indices_or_x, pseudo_labels, *, seed) -> rows``; ``last_info`` describes the last call.

    indices_or_x: the subset (a feature matrix [n, D] or an index array [n]; only its length is read) or the row
    count n itself. pseudo_labels: [n] int cluster ids. Returns [n'] int64 positions in 0..n-1, shuffled.
    The same seed and inputs give the same rows.
    """

    name: str = ""

    def __init__(self) -> None:
        self.last_info: SampleInfo | None = None

    def sample(self, indices_or_x: Any, pseudo_labels: np.ndarray, *, seed: int) -> np.ndarray:
        n = _n_rows(indices_or_x)
        y = np.asarray(pseudo_labels)
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"pseudo_labels must be [n] with n={n} rows, got shape {y.shape}")
        if n == 0:
            self.last_info = SampleInfo(self.name)
            return np.zeros(0, dtype=np.int64)
        y = y.astype(np.int64)
        before = class_counts(y)
        rng = np.random.RandomState(seed)
        if len(before) < 2:
            warnings.warn(f"all {n} rows share pseudo-label {next(iter(before))}: nothing to balance, returning every "
                          "row once", DegenerateClustersWarning, stacklevel=2)
            rows = np.arange(n, dtype=np.int64)
            degenerate = True
        else:
            rows = np.asarray(self._resample(y, before, rng), dtype=np.int64)
            degenerate = False
        rows = rows[rng.permutation(rows.shape[0])]
        self.last_info = SampleInfo(self.name, before, class_counts(y[rows]), degenerate)
        return rows

    @abstractmethod
    def _resample(self, y: np.ndarray, counts: dict[int, int], rng: np.random.RandomState) -> np.ndarray:
        """[n] labels (at least two distinct) → [n'] row positions (any order)."""


def _imblearn(sampler_cls: Any, rows: np.ndarray, y: np.ndarray, strategy: Any,
              rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """Resample the index column ``rows`` with an imblearn sampler; returns (rows', labels')."""
    resampled, y_res = sampler_cls(sampling_strategy=strategy, random_state=rng).fit_resample(rows[:, None], y)
    return np.asarray(resampled)[:, 0], np.asarray(y_res)


@register("sampler", "random")
class RandomSampler(Sampler):
    """The imbalanced baseline: every row once, in a random order."""

    name = "random"

    def _resample(self, y: np.ndarray, counts: dict[int, int], rng: np.random.RandomState) -> np.ndarray:
        return np.arange(y.shape[0])


@register("sampler", "under")
class UnderSampler(Sampler):
    """Every cluster down to the size of the smallest (no repeats)."""

    name = "under"

    def _resample(self, y: np.ndarray, counts: dict[int, int], rng: np.random.RandomState) -> np.ndarray:
        from imblearn.under_sampling import RandomUnderSampler

        return _imblearn(RandomUnderSampler, np.arange(y.shape[0]), y, "auto", rng)[0]


@register("sampler", "over")
class OverSampler(Sampler):
    """Every cluster up to the size of the largest (smaller clusters' rows repeated at random)."""

    name = "over"

    def _resample(self, y: np.ndarray, counts: dict[int, int], rng: np.random.RandomState) -> np.ndarray:
        from imblearn.over_sampling import RandomOverSampler

        return _imblearn(RandomOverSampler, np.arange(y.shape[0]), y, "auto", rng)[0]


@register("sampler", "combine")
class CombineSampler(Sampler):
    """Every cluster to ``n // c`` rows (c non-empty clusters): over-sample the smaller, under-sample the larger."""

    name = "combine"

    def _resample(self, y: np.ndarray, counts: dict[int, int], rng: np.random.RandomState) -> np.ndarray:
        from imblearn.over_sampling import RandomOverSampler
        from imblearn.under_sampling import RandomUnderSampler

        target = max(1, y.shape[0] // len(counts))
        rows = np.arange(y.shape[0])
        up = {c: target for c, m in counts.items() if m < target}
        if up:
            rows, y = _imblearn(RandomOverSampler, rows, y, up, rng)
        down = {c: target for c, m in counts.items() if m > target}
        if down:
            rows, y = _imblearn(RandomUnderSampler, rows, y, down, rng)
        return rows


def get_sampler(name: str, **options: Any) -> Sampler:
    """A sampler from the registry by name (``"random"``, ``"under"``, ``"over"``, ``"combine"``)."""
    return get("sampler", name)(**options)
