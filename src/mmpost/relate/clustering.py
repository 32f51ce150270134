"""Clusterers that turn post embeddings into pseudo-labels (ITRp step 2), registered as kind ``"clusterer"``.

Every clusterer has one method::

    result = get_clusterer("kmeans").fit_predict(x, k=2, seed=0)   # x: [N, D] float32
    result.labels      # [N] int64, every id in 0..k-1 has at least one member
    result.centroids   # [k, D] float32, in the clustering space (after ``normalize``)

Two backends:

* ``"kmeans"``: faiss ``Kmeans`` (about 16× faster than scikit-learn on 5,000 × 2,816 here). faiss trains on at most
  ``max_points_per_centroid × k`` points (256 × k by default) and silently samples the rest away; this clusterer sets
  that cap to ``ceil(N / k)`` so *all* points train the centroids. Pass ``max_points`` to sample on purpose; the
  result's ``sampled`` then says how many points trained the centroids (``None`` means all of them). Starting
  centroids come from faiss's k-means++ seeding by default. Every point is then assigned to its nearest centroid with
  a flat L2 index search.
* ``"gmm"``: scikit-learn ``GaussianMixture`` (``covariance_type="diag"`` by default: a full covariance over
  thousands of dimensions is neither estimable from 5,000 posts nor affordable). Labels are the most probable
  component; ``centroids`` are the component means.

**Normalisation** (``normalize=``, applied before clustering, and kept for :meth:`Clusterer.predict`):

* ``"l2"`` (default): each row is scaled to unit length, so squared Euclidean distance is ``2 − 2·cos`` and k-means
  groups posts by direction, not by how large their activations happen to be. This does *not* re-weight the two
  modalities of a concatenated text ⊕ image embedding; normalise each tower's part before concatenating if that is
  wanted. All-zero rows stay zero.
* ``"standard"``: each column is shifted to mean 0 and scaled to standard deviation 1 (constant columns are left
  unscaled): every dimension counts equally, whatever its raw scale.
* ``"none"``: the raw features.

**Empty clusters.** k-means and GMM can end with a cluster that owns no point: faiss splits empty clusters while it
trains, but the final assignment (or training on a sample) can still leave one empty, and a GMM component can
collapse. DeepCluster hit this repeatedly. An empty pseudo-label breaks the balanced samplers and leaves a head output
untrained, so :func:`fill_empty_clusters` re-seeds every empty cluster with the point farthest from its own centroid
(taken out of a cluster that keeps at least one member), refines with a few Lloyd steps, and repeats up to
``max_reseed`` times. If the data has fewer distinct points than ``k`` (duplicates), no assignment by distance can
fill every cluster; the re-seeded points are then kept in their new clusters by force and a ``RuntimeWarning`` says
so. ``result.reseeded`` counts the re-seeds.

**Identities are arbitrary.** Cluster 0 in one round need not be cluster 0 in the next; :func:`align_to_previous`
relabels a new clustering to agree with the previous one on the same posts.
"""
from __future__ import annotations

import math
import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from mmpost.registry import get, register

__all__ = ["ClusterResult", "Clusterer", "KMeansClusterer", "GMMClusterer", "Normalize", "KMeansInit",
           "normalize_features", "nearest_centroid", "fill_empty_clusters", "align_to_previous", "get_clusterer"]

Normalize = Literal["l2", "standard", "none"]
_NORMALIZE = ("l2", "standard", "none")
KMeansInit = Literal["kmeans++", "random", "afk-mc2"]
_KMEANS_INIT = {"kmeans++": "ClusteringInitMethod_KMEANS_PLUS_PLUS", "random": "ClusteringInitMethod_RANDOM",
                "afk-mc2": "ClusteringInitMethod_AFK_MC2"}


@dataclass
class ClusterResult:
    """What one clustering round produced.

    labels: [N] int64 cluster id of each point, each of 0..k-1 used at least once.
    centroids: [k, D] float32 centroids (k-means) or component means (GMM), in the normalised space.
    reseeded: how many times an empty cluster was re-seeded (0 on well-behaved data).
    seconds: wall time of the whole ``fit_predict`` call (normalisation, training, assignment, re-seeding).
    sampled: how many points trained the centroids when that is fewer than N; ``None`` when all N did.
    inertia: sum of squared distances of each point to its cluster's centroid (the k-means objective).
    info: backend details worth logging (faiss: ``objective``, ``train_splits``; GMM: ``converged``, ``n_iter``,
        ``lower_bound``).
    """

    labels: np.ndarray
    centroids: np.ndarray
    reseeded: int
    seconds: float
    sampled: int | None = None
    inertia: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    def counts(self) -> np.ndarray:
        """[k] number of points in each cluster."""
        return np.bincount(self.labels, minlength=self.k)


# --------------------------------------------------------------------------------------------------- helpers


class _Normalizer:
    """Remembers how the training features were normalised, so new points can be mapped the same way."""

    def __init__(self, how: Normalize):
        if how not in _NORMALIZE:
            raise ValueError(f"normalize must be one of {_NORMALIZE}, got {how!r}")
        self.how = how
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        if self.how == "standard":
            self.mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
            std = x.std(axis=0, dtype=np.float64).astype(np.float32)
            self.scale = np.where(std > 0, std, np.float32(1.0))
        return self.transform(x)

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.how == "l2":
            return normalize_features(x, "l2")
        if self.how == "standard":
            assert self.mean is not None and self.scale is not None, "fit_transform first"
            return np.ascontiguousarray((x - self.mean) / self.scale, dtype=np.float32)
        return np.ascontiguousarray(x, dtype=np.float32)


def normalize_features(x: np.ndarray, how: Normalize = "l2") -> np.ndarray:
    """[N, D] → [N, D] float32 normalised as the module docstring describes (a fresh array; ``x`` is untouched)."""
    x = np.asarray(x, dtype=np.float32)
    if how == "l2":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)
    return _Normalizer(how).fit_transform(x)


def _check_input(x: np.ndarray, k: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be [N, D], got shape {x.shape}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if x.shape[0] < k:
        raise ValueError(f"cannot make k={k} clusters from {x.shape[0]} points")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError("x holds NaN or infinite values")
    return x


def _sq_dists(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[N, D], [k, D] → [N, k] squared Euclidean distances (float64, clipped at 0)."""
    x64 = x.astype(np.float64, copy=False)
    c64 = centroids.astype(np.float64, copy=False)
    d = (x64 * x64).sum(1)[:, None] - 2.0 * x64 @ c64.T + (c64 * c64).sum(1)[None, :]
    return np.maximum(d, 0.0)


def nearest_centroid(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[N, D], [k, D] → [N] int64 index of the nearest centroid (ties go to the lower index)."""
    return _sq_dists(x, centroids).argmin(axis=1).astype(np.int64)


def _inertia(x: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> float:
    diff = x.astype(np.float64) - centroids[labels].astype(np.float64)
    return float((diff * diff).sum())


def _means(x: np.ndarray, labels: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Centroids as member means; a cluster without members keeps its previous centroid."""
    k = previous.shape[0]
    members = np.zeros((k, x.shape[0]), dtype=np.float64)
    members[labels, np.arange(x.shape[0])] = 1.0
    sums = members @ x.astype(np.float64, copy=False)
    counts = np.bincount(labels, minlength=k)
    out = previous.astype(np.float64).copy()
    filled = counts > 0
    out[filled] = sums[filled] / counts[filled, None]
    return out.astype(np.float32)


def _force_fill(x: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Give every empty cluster one member: the point farthest from its own centroid, taken from a cluster that keeps
    at least one member. Returns (labels, centroids, number of clusters filled); inputs are not modified."""
    k = centroids.shape[0]
    labels = labels.copy()
    centroids = centroids.copy()
    counts = np.bincount(labels, minlength=k)
    own = ((x.astype(np.float64) - centroids[labels].astype(np.float64)) ** 2).sum(1)
    filled = 0
    for j in np.flatnonzero(counts == 0):
        candidates = np.flatnonzero(counts[labels] >= 2)
        # stable choice among ties: the lowest index with the largest distance
        i = int(candidates[np.argmax(own[candidates])])
        counts[labels[i]] -= 1
        labels[i] = j
        counts[j] = 1
        centroids[j] = x[i]
        own[i] = -1.0  # never pick the same point twice
        filled += 1
    return labels, centroids, filled


def fill_empty_clusters(x: np.ndarray, labels: np.ndarray, centroids: np.ndarray, *, max_reseed: int = 5,
                        refine_iters: int = 10) -> tuple[np.ndarray, np.ndarray, int]:
    """Re-seed empty clusters until every cluster id 0..k-1 owns at least one point.

    x: [N, D] points (already normalised); labels: [N] current assignment; centroids: [k, D].
    Each round moves, for every empty cluster, the point farthest from its own centroid into it (its new centroid is
    that point), then runs up to ``refine_iters`` Lloyd steps (means, nearest-centroid assignment), stopping early
    when stable or when a cluster empties again. After ``max_reseed`` rounds with a cluster still empty (fewer
    distinct points than k), the last re-seed is kept without refinement and a ``RuntimeWarning`` is issued.

    Returns (labels [N] int64, centroids [k, D] float32, number of re-seeds). With no empty cluster the inputs are
    returned unchanged (as arrays) and the count is 0.
    """
    x = np.asarray(x, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    centroids = np.asarray(centroids, dtype=np.float32)
    k = centroids.shape[0]
    if x.shape[0] < k:
        raise ValueError(f"cannot fill k={k} clusters from {x.shape[0]} points")
    reseeded = 0
    forced_labels, forced_centroids = labels, centroids
    for _ in range(max(1, max_reseed)):
        if (np.bincount(labels, minlength=k) > 0).all():
            return labels, centroids, reseeded
        labels, centroids, n = _force_fill(x, labels, centroids)
        reseeded += n
        forced_labels, forced_centroids = labels, centroids
        for _ in range(refine_iters):
            centroids = _means(x, labels, centroids)
            new = nearest_centroid(x, centroids)
            if (new == labels).all():
                break
            labels = new
            if not (np.bincount(labels, minlength=k) > 0).all():
                break
    if (np.bincount(labels, minlength=k) > 0).all():
        return labels, centroids, reseeded
    warnings.warn(f"{k} clusters cannot all be filled by distance (fewer distinct points than k?): re-seeded points "
                  "were kept in their clusters by force", RuntimeWarning, stacklevel=3)
    labels, centroids = forced_labels, forced_centroids
    if not (np.bincount(labels, minlength=k) > 0).all():
        labels, centroids, n = _force_fill(x, labels, centroids)
        reseeded += n
    return labels, _means(x, labels, centroids), reseeded


# --------------------------------------------------------------------------------------------------- clusterers


class Clusterer(ABC):
    """Interface: ``fit_predict(x, k, seed=...) -> ClusterResult``; ``predict(x)`` assigns new points afterwards."""

    name: str = ""

    def __init__(self, normalize: Normalize = "l2", max_reseed: int = 5, refine_iters: int = 10):
        if normalize not in _NORMALIZE:
            raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
        self.normalize: Normalize = normalize
        self.max_reseed = max_reseed
        self.refine_iters = refine_iters
        self._normalizer: _Normalizer | None = None
        self.centroids_: np.ndarray | None = None

    def fit_predict(self, x: np.ndarray, k: int, *, seed: int) -> ClusterResult:
        """Cluster x [N, D] into k clusters (all non-empty); deterministic for a given seed and input."""
        start = time.perf_counter()
        x = _check_input(x, k)
        self._normalizer = _Normalizer(self.normalize)
        z = self._normalizer.fit_transform(x)
        labels, centroids, sampled, info = self._fit(z, int(k), int(seed))
        labels, centroids, reseeded = self._fill(z, labels, centroids)
        self.centroids_ = centroids
        return ClusterResult(labels=labels.astype(np.int64), centroids=centroids.astype(np.float32),
                             reseeded=reseeded, seconds=time.perf_counter() - start, sampled=sampled,
                             inertia=_inertia(z, labels, centroids), info=info)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Assign new points [M, D] to the nearest centroid of the last ``fit_predict`` (same normalisation)."""
        if self._normalizer is None or self.centroids_ is None:
            raise RuntimeError("call fit_predict before predict")
        return nearest_centroid(self._normalizer.transform(np.asarray(x, dtype=np.float32)), self.centroids_)

    def _fill(self, z: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        return fill_empty_clusters(z, labels, centroids, max_reseed=self.max_reseed, refine_iters=self.refine_iters)

    @abstractmethod
    def _fit(self, z: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, int | None, dict[str, Any]]:
        """Normalised z [N, D] → (labels [N], centroids [k, D], sampled or None, info)."""


@register("clusterer", "kmeans")
class KMeansClusterer(Clusterer):
    """faiss k-means on all points (or on ``max_points`` of them, sampled with the seed, when given).

    niter: Lloyd iterations; nredo: restarts (faiss keeps the best objective); init: how faiss picks the starting
    centroids: ``"kmeans++"`` (default: spread-out seeds, far fewer bad local minima than faiss's own default of
    ``"random"`` points, which on three blobs merges two of them for about one seed in three), ``"random"`` or
    ``"afk-mc2"`` (a fast Markov-chain approximation of k-means++); max_points: train the centroids on a random sample
    of this many points (``None``: all points); threads: OpenMP threads for faiss during this call (``None``: leave
    faiss's setting alone). normalize / max_reseed / refine_iters: see the module docstring.
    """

    name = "kmeans"

    def __init__(self, niter: int = 20, nredo: int = 1, init: KMeansInit = "kmeans++", max_points: int | None = None,
                 threads: int | None = None, normalize: Normalize = "l2", max_reseed: int = 5, refine_iters: int = 10):
        super().__init__(normalize=normalize, max_reseed=max_reseed, refine_iters=refine_iters)
        if max_points is not None and max_points < 1:
            raise ValueError(f"max_points must be >= 1 or None, got {max_points}")
        if init not in _KMEANS_INIT:
            raise ValueError(f"init must be one of {tuple(_KMEANS_INIT)}, got {init!r}")
        self.niter, self.nredo, self.init, self.max_points, self.threads = niter, nredo, init, max_points, threads

    def _fit(self, z: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, int | None, dict[str, Any]]:
        import faiss

        n, d = z.shape
        train, sampled = z, None
        if self.max_points is not None and self.max_points < n:
            keep = max(self.max_points, k)
            rows = np.sort(np.random.default_rng(seed).choice(n, size=keep, replace=False))
            train, sampled = np.ascontiguousarray(z[rows]), keep
        # faiss samples down to max_points_per_centroid * k training points: a cap of ceil(n/k) keeps all of them
        per_centroid = max(1, math.ceil(train.shape[0] / k))
        previous_threads = faiss.omp_get_max_threads()
        if self.threads is not None:
            faiss.omp_set_num_threads(int(self.threads))
        try:
            km = faiss.Kmeans(d, k, niter=self.niter, nredo=self.nredo, seed=seed, max_points_per_centroid=per_centroid,
                              min_points_per_centroid=1, init_method=getattr(faiss, _KMEANS_INIT[self.init]),
                              verbose=False)
            objective = km.train(train)
            index = faiss.IndexFlatL2(d)
            index.add(np.ascontiguousarray(km.centroids, dtype=np.float32))
            _, assigned = index.search(z, 1)
        finally:
            if self.threads is not None:
                faiss.omp_set_num_threads(previous_threads)
        splits = int(sum(s["nsplit"] for s in km.iteration_stats))
        info = {"objective": float(objective), "train_splits": splits, "trained_on": int(train.shape[0])}
        return assigned[:, 0].astype(np.int64), np.asarray(km.centroids, dtype=np.float32), sampled, info


@register("clusterer", "gmm")
class GMMClusterer(Clusterer):
    """scikit-learn Gaussian mixture; labels are the most probable component, centroids the component means.

    covariance_type: "diag" (default), "spherical", "tied" or "full"; max_iter / n_init / reg_covar / tol: as in
    ``GaussianMixture``; init_params: "kmeans" (default), "k-means++", "random" or "random_from_data".
    An empty component is re-seeded like a k-means cluster (farthest point, Lloyd refinement), and the mixture is then
    refitted from those means (``means_init``); ``max_reseed`` bounds the refits.
    """

    name = "gmm"

    def __init__(self, covariance_type: str = "diag", max_iter: int = 100, n_init: int = 1, reg_covar: float = 1e-6,
                 tol: float = 1e-3, init_params: str = "kmeans", normalize: Normalize = "l2", max_reseed: int = 5,
                 refine_iters: int = 10):
        super().__init__(normalize=normalize, max_reseed=max_reseed, refine_iters=refine_iters)
        self.covariance_type, self.max_iter, self.n_init = covariance_type, max_iter, n_init
        self.reg_covar, self.tol, self.init_params = reg_covar, tol, init_params
        self._seed = 0
        self.model_: Any = None

    def _mixture(self, k: int, seed: int, means_init: np.ndarray | None = None) -> Any:
        from sklearn.mixture import GaussianMixture

        return GaussianMixture(n_components=k, covariance_type=self.covariance_type, max_iter=self.max_iter,
                               n_init=1 if means_init is not None else self.n_init, reg_covar=self.reg_covar,
                               tol=self.tol, init_params=self.init_params, means_init=means_init, random_state=seed)

    def _fit(self, z: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, int | None, dict[str, Any]]:
        self._seed = seed
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*did not converge.*")
            self.model_ = self._mixture(k, seed).fit(z)
        return self.model_.predict(z).astype(np.int64), self.model_.means_.astype(np.float32), None, self._info()

    def _info(self) -> dict[str, Any]:
        m = self.model_
        return {"converged": bool(m.converged_), "n_iter": int(m.n_iter_), "lower_bound": float(m.lower_bound_)}

    def _fill(self, z: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        k = centroids.shape[0]
        reseeded = 0
        for _ in range(max(1, self.max_reseed)):
            if (np.bincount(labels, minlength=k) > 0).all():
                return labels, centroids, reseeded
            # the re-seeded point becomes the empty component's initial mean; EM does the refining
            _, means, n = _force_fill(z, labels, centroids)
            reseeded += n
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*did not converge.*")
                warnings.filterwarnings("ignore", message=".*distinct clusters.*")
                self.model_ = self._mixture(k, self._seed, means_init=means).fit(z)
            labels, centroids = self.model_.predict(z).astype(np.int64), self.model_.means_.astype(np.float32)
        if (np.bincount(labels, minlength=k) > 0).all():
            return labels, centroids, reseeded
        # still empty after every refit (fewer distinct points than k): force membership, as k-means does
        warnings.warn(f"{k} mixture components cannot all be filled (fewer distinct points than k?): re-seeded "
                      "points were kept in their components by force", RuntimeWarning, stacklevel=3)
        labels, centroids, n = _force_fill(z, labels, centroids)
        return labels, _means(z, labels, centroids), reseeded + n

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most probable component of the last fitted mixture for new points [M, D] (same normalisation)."""
        if self._normalizer is None or self.model_ is None:
            raise RuntimeError("call fit_predict before predict")
        z = self._normalizer.transform(np.asarray(x, dtype=np.float32))
        return self.model_.predict(z).astype(np.int64)


# --------------------------------------------------------------------------------------------------- alignment


def align_to_previous(previous: np.ndarray, current: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Relabel ``current`` so its cluster ids agree as much as possible with ``previous`` on the same posts.

    Cluster ids are arbitrary from one round to the next (k-means may call the same group 0 now and 1 later). With
    ``overlap[i, j]`` = number of posts in previous cluster i and current cluster j, the Hungarian algorithm
    (``scipy.optimize.linear_sum_assignment``, maximising) finds the one-to-one renaming with the largest total
    agreement.

    previous, current: [N] ids in 0..k-1 for the same N posts. Returns ``(aligned, perm)``: ``aligned = perm[current]``
    and ``perm[j]`` is the new id of current cluster j (a permutation of 0..k-1). Reorder centroids to match with
    ``new_centroids[perm] = centroids``.
    """
    previous = np.asarray(previous, dtype=np.int64)
    current = np.asarray(current, dtype=np.int64)
    if previous.shape != current.shape or previous.ndim != 1:
        raise ValueError(f"previous and current must be [N] arrays of the same length, got {previous.shape} "
                         f"and {current.shape}")
    for name, arr in (("previous", previous), ("current", current)):
        if arr.size and (arr.min() < 0 or arr.max() >= k):
            raise ValueError(f"{name} holds ids outside 0..{k - 1}")
    overlap = np.zeros((k, k), dtype=np.int64)
    np.add.at(overlap, (previous, current), 1)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    perm = np.empty(k, dtype=np.int64)
    perm[cols] = rows
    return perm[current], perm


def get_clusterer(name: str, **options: Any) -> Clusterer:
    """A clusterer from the registry by name (``"kmeans"``, ``"gmm"``), built with ``options``."""
    return get("clusterer", name)(**options)
