"""Deterministic train/dev/test splits for data that comes without them.

A post's split depends only on its key (the id by default) and a salt, never on the order or number of
posts, so adding posts later does not move existing ones, and the same id always lands in the same split.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Sequence

from .post import Post

__all__ = ["SPLIT_NAMES", "hash_split", "assign_splits", "by_split"]

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
