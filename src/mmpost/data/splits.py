"""Deterministic train/dev/test splits for data that comes without them.

Two kinds:

* :func:`hash_split` / :func:`assign_splits`: a post's split depends only on its key (the id by default) and a
  salt, never on the order or number of posts, so adding posts later does not move existing ones, and the same
  id always lands in the same split. Label proportions are kept only on average.
* :func:`stratified_split` / :func:`kfold_splits`: each split (or fold) keeps the label distribution of one
  task, and a group of posts never straddles two splits, nor two parts (train / dev / test) of a fold: no
  leakage of an image, a near-duplicate text or an event from train into test. ``group_by`` says what makes a
  group (:mod:`mmpost.data.groups`): ``image`` (the default; the image key survives a missing file and a masked
  image), ``text`` (near-duplicate texts), ``column:NAME`` (a field such as an event, a user or a claim), any
  mix of them (posts sharing any key are one group, transitively), or nothing. The result depends on the seed
  and on the set of posts (it is computed from posts sorted by id, so not on their order), but adding posts may
  move others. Built on scikit-learn's ``StratifiedKFold`` / ``StratifiedGroupKFold``: the posts are cut into
  equal folds and whole folds are given to each split.
"""
from __future__ import annotations

import hashlib
import warnings
from typing import Callable, Iterable, Sequence

import numpy as np

from .groups import check_group_by, components, group_keys
from .post import Post

__all__ = ["SPLIT_NAMES", "hash_split", "assign_splits", "by_split", "stratified_split", "kfold_splits"]

SPLIT_NAMES = ("train", "dev", "test")


def _check(fractions: Sequence[float], names: Sequence[str]) -> list[float]:
    fr = [float(f) for f in fractions]
    if len(fr) != len(names):
        raise ValueError(f"{len(fr)} fractions for {len(names)} split names {tuple(names)}")
    if not fr:
        raise ValueError("need at least one split")
    if any(f < 0 or f != f for f in fr):
        raise ValueError(f"fractions must be >= 0, got {tuple(fractions)}")
    total = sum(fr)
    if total <= 0:
        raise ValueError(f"fractions must not all be 0, got {tuple(fractions)}")
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {tuple(fractions)} (sum {total:g})")
    return fr


def _unit(key: str, salt: str) -> float:
    """A uniform number in [0, 1) from sha1(salt, key)."""
    h = hashlib.sha1(f"{salt}\x1f{key}".encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def hash_split(key: str, fractions: Sequence[float] = (0.8, 0.1, 0.1),
               names: Sequence[str] = SPLIT_NAMES, salt: str = "mmpost") -> str:
    """The split name for ``key``: stable across runs, machines and Python versions."""
    fr = _check(fractions, names)
    u = _unit(str(key), salt)
    acc = 0.0
    for name, f in zip(names, fr):
        acc += f
        if f > 0 and u < acc:
            return name
    return [n for n, f in zip(names, fr) if f > 0][-1]  # float rounding at the top end


def assign_splits(posts: Iterable[Post], fractions: Sequence[float] = (0.8, 0.1, 0.1), salt: str = "mmpost",
                  overwrite: bool = False, names: Sequence[str] = SPLIT_NAMES,
                  key: Callable[[Post], str] | None = None) -> list[Post]:
    """Set ``meta["split"]`` by :func:`hash_split` of the post id (or ``key(post)``, e.g. an author, to keep
    a group together) where it is absent or empty, or everywhere with ``overwrite``. Posts are updated in
    place; the same list of posts is returned."""
    _check(fractions, names)
    posts = list(posts)
    for p in posts:
        if overwrite or not p.meta.get("split"):
            k = p.id if key is None else key(p)
            p.meta["split"] = hash_split(str(k), fractions, names, salt)
    return posts


def by_split(posts: Iterable[Post]) -> dict[str, list[Post]]:
    """Group posts by ``meta["split"]``: train, dev, test first, then other names in order of appearance;
    posts without a split go under ``"unassigned"``."""
    groups: dict[str, list[Post]] = {}
    for p in posts:
        s = p.meta.get("split") or "unassigned"
        groups.setdefault(str(s), []).append(p)
    order = [n for n in SPLIT_NAMES if n in groups] + [n for n in groups if n not in SPLIT_NAMES]
    return {n: groups[n] for n in order}


# ------------------------------------------------------------------------------------ stratified and grouped

_MAX_FOLDS = 100  # finest cut used to approximate fractions that are no multiple of 1/n for a small n


def _fold_counts(fractions: Sequence[float], n: int) -> list[int]:
    """Split ``n`` folds among the fractions by largest remainder (ties → the earlier split)."""
    exact = [f * n for f in fractions]
    counts = [int(np.floor(e + 1e-9)) for e in exact]
    rest = n - sum(counts)
    by_remainder = sorted(range(len(exact)), key=lambda j: (-(exact[j] - counts[j]), j))
    for j in by_remainder[:max(rest, 0)]:
        counts[j] += 1
    for j in reversed(by_remainder):  # fractions summing to a hair over 1
        if sum(counts) <= n:
            break
        counts[j] -= 1 if counts[j] > 0 else 0
    return counts


def _fold_plan(fractions: Sequence[float], n_units: int) -> list[int]:
    """How many equal folds each split gets: the fewest folds that give the fractions within 0.005 (e.g. 10
    folds → 8/1/1 for 0.8/0.1/0.1), else :data:`_MAX_FOLDS`; never more folds than units to spread."""
    n = next((m for m in range(1, _MAX_FOLDS + 1)
              if all(abs(c / m - f) <= 0.005 for c, f in zip(_fold_counts(fractions, m), fractions))), _MAX_FOLDS)
    return _fold_counts(fractions, max(1, min(n, n_units)))


def _sub_seed(seed: int, *more: int) -> int:
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *more]).generate_state(1)[0])


def _fold_of(y: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold number per sample: stratified by ``y``, a group never in two folds, shuffled by ``seed``.
    Needs at least ``n_folds`` groups. Where no class has ``n_folds`` samples, stratifying cannot work and the
    folds are only grouped and shuffled."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    fold = np.zeros(len(y), dtype=np.int64)
    if n_folds < 2 or len(y) == 0:
        return fold
    if np.bincount(y).max() < n_folds:
        y = np.zeros_like(y)
    singletons = len(np.unique(groups)) == len(groups)
    random_state = _sub_seed(seed) % 2**32
    with warnings.catch_warnings():
        # "The least populated class in y has only 1 members ...": such a class is spread as far as it goes
        warnings.filterwarnings("ignore", message=".*least populated class.*", category=UserWarning)
        if singletons:  # much faster, same contract
            cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
            parts = cv.split(np.zeros(len(y)), y)
        else:
            cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
            parts = cv.split(np.zeros(len(y)), y, groups)
        for f, (_, test) in enumerate(parts):
            fold[test] = f
    return fold


def _resolve_group_by(group_by: str | Sequence[str] | None, group_by_image: bool | None) -> tuple[str, ...]:
    """The checked ``group_by`` entries; the older ``group_by_image`` flag means ``("image",)`` or ``()``."""
    if group_by is not None and group_by_image is not None:
        raise ValueError("give group_by or the older group_by_image, not both (group_by_image=True is "
                         "group_by=('image',), False is group_by=())")
    if group_by is None:
        return ("image",) if group_by_image is None or group_by_image else ()
    return check_group_by(group_by)


class _Prepared:
    """Posts sorted by id (so the order of the input does not matter), with strata and groups as integers."""

    def __init__(self, posts: list[Post], task: str, group_by: tuple[str, ...]):
        if not any(task in p.labels for p in posts):
            known = sorted({t for p in posts for t in p.labels})
            raise ValueError(f"no post has a label for task {task!r}; tasks with labels: {known or '(none)'}")
        self.order = sorted(range(len(posts)), key=lambda i: (posts[i].id, posts[i].text,
                                                              tuple(posts[i].images), i))
        strata: dict[str | None, int] = {}
        y = [strata.setdefault(posts[i].labels.get(task), len(strata))  # no label → a stratum of its own
             for i in self.order]
        keys = group_keys([posts[i] for i in self.order], group_by)
        comp = components(keys)
        # a post without a key: a negative group of its own. Keyed groups keep the order of their first post, so
        # plain image grouping numbers groups in the same order as before the other kinds of key existed, and
        # scikit-learn (which orders groups by number) gives the same folds
        g = [int(c) if ks else -1 - pos for pos, (c, ks) in enumerate(zip(comp.tolist(), keys))]
        self.y = np.asarray(y, dtype=np.int64)
        self.groups = np.asarray(g, dtype=np.int64)
        self.group_key = {i: int(self.groups[pos]) for pos, i in enumerate(self.order)}

    def split_parts(self, sel: np.ndarray, fractions: Sequence[float], seed: int) -> np.ndarray:
        """Split index (into ``fractions``) for the sorted positions ``sel``."""
        if len(sel) == 0:
            return np.zeros(0, dtype=np.int64)
        y, g = self.y[sel], self.groups[sel]
        counts = _fold_plan(fractions, len(np.unique(g)))
        fold = _fold_of(np.unique(y, return_inverse=True)[1], g, sum(counts), seed)
        return np.repeat(np.arange(len(counts)), counts)[fold]


def stratified_split(posts: Iterable[Post], task: str, fractions: Sequence[float] = (0.8, 0.1, 0.1), *,
                     seed: int = 0, group_by: str | Sequence[str] | None = None,
                     group_by_image: bool | None = None, names: Sequence[str] = SPLIT_NAMES,
                     overwrite: bool = False) -> list[Post]:
    """Set ``meta["split"]`` so that every split keeps the label distribution of ``task``.

    Posts without a label for ``task`` form a stratum of their own and are spread the same way. Posts of one
    group always land in the same split. ``group_by`` (``None`` → ``("image",)``; ``()`` → no grouping) lists
    what makes a group (see :mod:`mmpost.data.groups`): ``image`` groups posts by image key (the image name
    as the data gives it, also when the file is missing or the image masked; files with equal content under
    different names are not detected), ``text`` by near-duplicate text, ``column:NAME`` by ``meta[NAME]``.
    ``group_by_image`` is the older flag (True → ``("image",)``, False → ``()``); giving both is an error.
    The posts, sorted by id, are cut into equal stratified folds (10 for 0.8/0.1/0.1; up to 100 for fractions
    that need it) and each split gets whole folds, so the sizes follow the fractions up to a fold and up to the
    size of the groups.

    Without ``overwrite`` only posts without a split are assigned: a post whose group already has a split joins
    that split (where the group already straddles splits, the split of its first post by id), the others are
    split stratified among themselves. The result depends only on the seed and the set of posts, not on their
    order. Small data: a class with fewer posts than folds is spread as far as it goes (so a rare class may be
    missing from dev or test), and with fewer groups than folds some splits stay empty. Raises ValueError for
    bad fractions, a bad ``group_by``, or when no post has a label for ``task``. Posts are updated in place;
    the same posts are returned as a list.
    """
    fr = _check(fractions, names)
    posts = list(posts)
    if not posts:
        return posts
    prep = _Prepared(posts, task, _resolve_group_by(group_by, group_by_image))
    todo: list[int] = []  # sorted positions still to assign
    if overwrite:
        todo = list(range(len(posts)))
    else:
        taken: dict[int, str] = {}
        for i in prep.order:
            s = posts[i].meta.get("split")
            if s:
                taken.setdefault(prep.group_key[i], str(s))
        for pos, i in enumerate(prep.order):
            if posts[i].meta.get("split"):
                continue
            g = prep.group_key[i]
            if g in taken:
                posts[i].meta["split"] = taken[g]
            else:
                todo.append(pos)
    sel = np.asarray(todo, dtype=np.int64)
    part = prep.split_parts(sel, fr, seed)
    for pos, j in zip(sel.tolist(), part.tolist()):
        posts[prep.order[pos]].meta["split"] = names[j]
    return posts


def kfold_splits(posts: Iterable[Post], task: str, k: int = 5, *, seed: int = 0,
                 group_by: str | Sequence[str] | None = None, group_by_image: bool | None = None,
                 dev_fraction: float = 0.1) -> list[dict[str, list[int]]]:
    """``k`` folds for benchmarks: ``[{"train": [...], "dev": [...], "test": [...]}, ...]`` of indices into
    ``posts`` (each list ascending).

    The ``test`` parts of the folds partition all posts and are stratified by ``task`` (posts without a label
    form a stratum of their own); ``dev`` is ``dev_fraction`` of each fold's non-test posts (stratified and
    grouped the same way; ``0`` → empty dev), ``train`` the rest. Posts of one group (``group_by`` and
    ``group_by_image`` as for :func:`stratified_split`) are never in two parts of a fold. Deterministic for a
    seed and independent of the order of ``posts`` (the same posts by id end up in the same parts). Raises
    ValueError for ``k < 2``, a ``dev_fraction`` outside [0, 1), a bad ``group_by``, fewer than ``k`` groups,
    or when no post has a label for ``task``.
    """
    posts = list(posts)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    d = float(dev_fraction)
    if not 0.0 <= d < 1.0:
        raise ValueError(f"dev_fraction must be in [0, 1), got {dev_fraction!r}")
    if not posts:
        raise ValueError("kfold_splits needs posts, got none")
    entries = _resolve_group_by(group_by, group_by_image)
    prep = _Prepared(posts, task, entries)
    n_groups = len(np.unique(prep.groups))
    if n_groups < k:
        what = f"groups (posts grouped by {', '.join(entries)})" if entries else "posts"
        raise ValueError(f"k={k} folds need at least {k} {what}, got {n_groups}")
    fold = _fold_of(prep.y, prep.groups, int(k), seed)
    order = np.asarray(prep.order, dtype=np.int64)
    out = []
    for f in range(int(k)):
        test = np.flatnonzero(fold == f)
        rest = np.flatnonzero(fold != f)
        dev = rest[:0]
        if d > 0:
            part = prep.split_parts(rest, (1.0 - d, d), _sub_seed(seed, f + 1))
            dev = rest[part == 1]
            rest = rest[part == 0]
        out.append({name: sorted(order[pos].tolist()) for name, pos in (("train", rest), ("dev", dev),
                                                                         ("test", test))})
    return out
