"""Which posts belong together and must never be split apart (``data.group_by``).

Posts that share a *key* are one group: the same image, the same near-duplicate text, or the same value of a
column such as an event, a user or a claim. Groups are the connected components of "shares any key with", so a
chain (A shares an image with B, B shares an event with C) is one group. :func:`group_ids` numbers the groups,
:func:`group_names` labels them readably for a saved splits file and :func:`describe_groups` sums them up in one
line for a report. :mod:`mmpost.data.splits` keeps every group inside one split, and inside one part of a fold.

The forms of a ``group_by`` entry:

* ``image``: the post's image key, ``meta["image_key"]`` (:data:`IMAGE_KEY`) when present, else its first image
  path. Readers and adapters keep the key even where the file is missing and validation masks the image
  (``text-only``), so a hoax image shared by many posts groups them whether or not its file exists.
* ``text``: the text normalised by :func:`normalise_text`; a text too short to mean anything does not group.
* ``column:NAME``: the value of ``meta[NAME]`` (for a manifest, keep the column with ``data.columns.keep``);
  an empty or missing value gives that post no key for the column.

A post with no key at all is a group of its own.
"""
from __future__ import annotations

import hashlib
import html
import math
import os
import re
import unicodedata
from collections import Counter
from typing import Any, Iterable, Sequence

import numpy as np

from .post import Post

__all__ = ["IMAGE_KEY", "GROUP_BY_FORMS", "MIN_TEXT_WORDS", "MIN_TEXT_CHARS", "check_group_by", "image_key",
           "normalise_text", "group_keys", "components", "group_ids", "group_names", "describe_groups"]

# meta key holding the image name as the data gives it, kept when the file is missing or the image is masked
IMAGE_KEY = "image_key"
GROUP_BY_FORMS = ("image", "text", "column:NAME")
# a normalised text groups only with at least this many words and characters (spaces included): shorter ones
# ("ok", "lol 😂", "thanks!") are shared by unrelated posts and would glue them into one giant group
MIN_TEXT_WORDS = 2
MIN_TEXT_CHARS = 10
_NAME_TEXT_HEAD = 60  # characters of normalised text shown in a group name

# ------------------------------------------------------------------------------------------------ group_by


def check_group_by(group_by: str | Sequence[str]) -> tuple[str, ...]:
    """The ``group_by`` entries, checked, stripped and without repeats (``"column: event"`` → ``"column:event"``);
    a single string is one entry. Raises ValueError naming ``data.group_by`` and the allowed forms."""
    entries = [group_by] if isinstance(group_by, str) else group_by
    try:
        entries = list(entries)
    except TypeError:
        raise ValueError(f"data.group_by must be a list of {_forms()}, got {group_by!r}") from None
    out: list[str] = []
    for e in entries:
        if not isinstance(e, str):
            raise ValueError(f"data.group_by: entry {e!r} is not a string; use {_forms()}")
        s = e.strip()
        kind, colon, name = s.partition(":")
        if s in ("image", "text"):
            entry = s
        elif colon and kind.strip() == "column" and name.strip():
            entry = f"column:{name.strip()}"
        else:
            raise ValueError(f"data.group_by: unknown entry {e!r}; use {_forms()}")
        if entry not in out:
            out.append(entry)
    return tuple(out)


def _forms() -> str:
    return ", ".join(f"'{f}'" for f in GROUP_BY_FORMS) + " (e.g. 'column:event')"


# ---------------------------------------------------------------------------------------------------- keys


def _path_key(name: str) -> str:
    """A file path normalised (``a/./b.jpg`` → ``a/b.jpg``); a URL as it is."""
    return name if "://" in name else os.path.normpath(name)


def image_key(post: Post) -> str | None:
    """The post's image key: ``meta["image_key"]`` when present, else its first image path; ``None`` without
    either. Paths are normalised with ``os.path.normpath`` (URLs are kept as they are)."""
    key = post.meta.get(IMAGE_KEY)
    if key is not None and str(key).strip():
        return _path_key(str(key).strip())
    if post.images:
        return _path_key(str(post.images[0]))
    return None


_RETWEET = re.compile(r"^(?:\s*rt\s+@\w+\s*:?)+")
_URL = re.compile(r"(?:https?://|www\.)\S*")
_MENTION = re.compile(r"@\w+")
_APOSTROPHES = str.maketrans("", "", "'\u2019\u02bc")


def normalise_text(text: str) -> str:
    """Text reduced for near-duplicate detection, so that retweets, copies with other links or mentions and
    changes of case or punctuation compare equal.

    In order: HTML entities decoded (``&amp;`` → ``&``), Unicode NFKC, case-folded; a leading retweet prefix
    (``RT @user:``, repeated) dropped; URLs (``http://``, ``https://``, ``www.``), then @mentions dropped; the
    ``#`` of hashtags dropped, the word kept; apostrophes dropped (``don't`` → ``dont``); every other punctuation
    or symbol character (emoji included) becomes a space; runs of whitespace become one space, ends stripped.
    """
    s = unicodedata.normalize("NFKC", html.unescape(str(text))).casefold()
    s = _RETWEET.sub(" ", s)
    s = _URL.sub(" ", s)
    s = _MENTION.sub(" ", s)
    s = s.translate(_APOSTROPHES)
    s = "".join(" " if unicodedata.category(c)[0] in "PSC" else c for c in s)  # '#' is punctuation: word kept
    return " ".join(s.split())


def _text_key(text: str) -> str | None:
    norm = normalise_text(text)
    if len(norm) < MIN_TEXT_CHARS or len(norm.split()) < MIN_TEXT_WORDS:
        return None
    return norm


def _cell_key(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    s = str(value).strip()
    return s or None


def _check_columns(posts: Sequence[Post], entries: Iterable[str]) -> None:
    """ValueError for a ``column:NAME`` that no post has in its meta, listing the meta keys that do exist."""
    for e in entries:
        if not e.startswith("column:"):
            continue
        name = e[len("column:"):]
        if any(name in p.meta for p in posts):
            continue
        present = sorted({str(k) for p in posts for k in p.meta})
        shown = ", ".join(present[:40]) + (f", ... ({len(present)} in all)" if len(present) > 40 else "")
        raise ValueError(f"data.group_by: {e!r} needs the column {name!r} kept with the posts, but no post has it "
                         f"(for a manifest: data.columns.keep: [{name}]; for a dataset, a field the adapter keeps). "
                         f"Fields the posts have: {shown or '(none)'}")


def group_keys(posts: Sequence[Post], group_by: str | Sequence[str]) -> list[tuple[str, ...]]:
    """The group keys of each post, prefixed by their kind so that kinds never collide: ``image:<key>``,
    ``text:<normalised text>``, ``column:<NAME>=<value>``. A post may have none. Raises ValueError for a bad
    ``group_by`` (:func:`check_group_by`) or a ``column:NAME`` that no post has."""
    entries = check_group_by(group_by)
    posts = list(posts)
    _check_columns(posts, entries)
    return [tuple(k for k in (_key(p, e) for e in entries) if k is not None) for p in posts]


def _key(post: Post, entry: str) -> str | None:
    """The key of ``post`` for one checked ``group_by`` entry, prefixed by its kind; ``None`` for no key."""
    if entry == "image":
        k = image_key(post)
        return None if k is None else f"image:{k}"
    if entry == "text":
        k = _text_key(post.text)
        return None if k is None else f"text:{k}"
    k = _cell_key(post.meta.get(entry[len("column:"):]))
    return None if k is None else f"{entry}={k}"


# ---------------------------------------------------------------------------------------------- components


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


def components(keys: Sequence[Sequence[str]]) -> np.ndarray:
    """Group number per item: items that share any key are connected, and each connected component is one group
    (union–find with union by size and path halving, O(N α(N)) after one pass over the keys). Groups are numbered
    0, 1, ... in the order of their first item; an item without keys is a group of its own."""
    n = len(keys)
    parent = list(range(n))
    size = [1] * n
    first: dict[str, int] = {}
    for i, ks in enumerate(keys):
        for k in ks:
            j = first.setdefault(k, i)
            if j == i:
                continue
            a, b = _find(parent, i), _find(parent, j)
            if a != b:
                if size[a] < size[b]:
                    a, b = b, a
                parent[b] = a
                size[a] += size[b]
    number: dict[int, int] = {}
    return np.asarray([number.setdefault(_find(parent, i), len(number)) for i in range(n)], dtype=np.int64)


def group_ids(posts: Sequence[Post], group_by: str | Sequence[str]) -> np.ndarray:
    """Group number per post (numbered in the order of each group's first post): posts that share any key of
    ``group_by`` are one group, transitively; posts without a key are groups of their own. An empty ``group_by``
    makes every post its own group."""
    return components(group_keys(posts, group_by))


def group_names(posts: Sequence[Post], group_by: str | Sequence[str]) -> list[str]:
    """A readable label per post naming its group, the same for every post of the group and independent of the
    order of the posts: the smallest key of the group (``column:event=sydney``, ``image:imgs/T1.jpg``,
    ``text:<head of the normalised text>``), or ``post:<id>`` for a post without a key. A text key over 60
    characters is cut and ends with a hash of the whole text, so that names stay distinct."""
    posts = list(posts)
    keys = group_keys(posts, group_by)
    ids = components(keys)
    smallest: dict[int, str] = {}
    for g, ks in zip(ids.tolist(), keys):
        for k in ks:
            if g not in smallest or k < smallest[g]:
                smallest[g] = k
    return [_shown(smallest[g]) if g in smallest else f"post:{p.id}" for p, g in zip(posts, ids.tolist())]


def _shown(key: str) -> str:
    if not key.startswith("text:") or len(key) <= len("text:") + _NAME_TEXT_HEAD:
        return key
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    return f"{key[:len('text:') + _NAME_TEXT_HEAD].rstrip()}…#{digest}"


# ------------------------------------------------------------------------------------------------- report


def describe_groups(posts: Sequence[Post], group_by: str | Sequence[str],
                    splits: dict[str, list[Post]] | None = None) -> str:
    """One line for a report: how the posts are grouped, how many groups and how large the largest, and with
    ``splits`` (split name → posts, the same post objects as in ``posts``) the groups per split and how many
    groups straddle two splits (0 is not mentioned), e.g. ``grouped by image, column:event: 4,471 posts in
    3,120 groups (largest 57 posts); train 2,500 groups / dev 310 / test 310``."""
    posts = list(posts)
    entries = check_group_by(group_by)
    ids = group_ids(posts, entries)
    n_groups = len(set(ids.tolist()))
    if entries:
        largest = max(Counter(ids.tolist()).values(), default=0)
        line = (f"grouped by {', '.join(entries)}: {_count(len(posts), 'post')} in {_count(n_groups, 'group')} "
                f"(largest {_count(largest, 'post')})")
    else:
        line = f"not grouped: {_count(len(posts), 'post')}, each its own group"
    if not splits:
        return line
    group_of = _group_lookup(posts, ids)
    per_split: dict[str, set[int]] = {}
    for name, part in splits.items():
        per_split[name] = {group_of(p, name) for p in part}
    # "train 2,500 groups / dev 310 / test 310": the word only after the first count
    line += "; " + " / ".join(f"{name} {_count(len(g), 'group') if j == 0 else format(len(g), ',')}"
                              for j, (name, g) in enumerate(per_split.items()))
    seen = Counter(g for gs in per_split.values() for g in gs)
    straddling = sum(1 for c in seen.values() if c > 1)
    if straddling:
        line += f"; {_count(straddling, 'group')} {'straddles' if straddling == 1 else 'straddle'} splits"
    return line


def _count(n: int, word: str) -> str:
    """``"1 post"``, ``"4,471 posts"``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _group_lookup(posts: list[Post], ids: np.ndarray):
    """``lookup(post, split)`` → the group of a post of a split: found by identity, else by a unique id."""
    by_obj = {id(p): g for p, g in zip(posts, ids.tolist())}
    id_count = Counter(p.id for p in posts)
    by_id = {p.id: g for p, g in zip(posts, ids.tolist()) if id_count[p.id] == 1}

    def lookup(p: Post, split: str) -> int:
        g = by_obj.get(id(p), by_id.get(p.id))
        if g is None:
            raise ValueError(f"describe_groups: post {p.id!r} of split {split!r} is not among the posts given")
        return g

    return lookup
