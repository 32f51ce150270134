"""Import a user's CSV / TSV / JSONL / Parquet file of posts into :class:`~mmpost.data.post.Post` records.

A :class:`ColumnMapping` says which column holds what. :func:`iter_manifest` reads the file one row at a time and
gives each post as it is read; :func:`load_manifest` is the list of the same posts. Every cell is read as a string
(an 18-digit tweet id stays exact), empty cells become ``""`` or an absent label, and each post remembers where it
came from (``meta["source"]``, ``meta["row"]``). Only structural problems raise :class:`ManifestError` (missing
file, missing mapped column, wrong text encoding, a row that does not parse); content problems (empty text,
missing image, unknown label ...) are left to :mod:`mmpost.data.validate`, which reports them all at once.

Untrusted input is contained here: when an ``image_root`` is given it is also a boundary, and an image cell that
points outside it (``../`` or an absolute path elsewhere) is never joined into ``Post.images``; it is listed in
``meta["refused_images"]`` so that validation reports it by row (see :data:`REFUSED_IMAGES`). A JSON string with an
unpaired UTF-16 surrogate (``"\\ud800"``, a broken emoji) becomes U+FFFD and is counted in a warning, since no text
encoder could read it. Python's CSV field limit (128 KiB) is raised so a very long text reaches validation, which
names its row, instead of failing the whole import.

Parquet needs the optional ``pyarrow`` package, imported only when a Parquet file is read. A Parquet table
gives the same posts as the CSV that pandas would write from it (``DataFrame.to_csv(index=False)``): typed
cells are turned into the strings that CSV would hold (integers exactly, ``True``/``False`` for booleans, nulls
empty), and a list column mapped as ``image`` gives several images per post.

The mapping lives in :mod:`mmpost.data.columns` and the readers in :mod:`mmpost.data.readers`; their public names
are importable from here.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Iterable

from .columns import REFUSED_IMAGES, SPLIT_ALIASES, ColumnMapping, ManifestError
from .post import Post
from .readers import iter_json_objects, iter_manifest

__all__ = [
    "ColumnMapping",
    "ManifestError",
    "REFUSED_IMAGES",
    "iter_manifest",
    "load_manifest",
    "save_posts_jsonl",
    "load_posts_jsonl",
    "SPLIT_ALIASES",
]


def load_manifest(path: str | os.PathLike, mapping: ColumnMapping | None = None) -> list[Post]:
    """Read a CSV, TSV, JSONL or Parquet manifest into posts (see :class:`ColumnMapping`): the list of
    :func:`iter_manifest`'s posts.

    ``meta`` of each post holds ``source`` (the path), ``row`` (1-based data row for CSV, header not counted;
    the line number for JSONL; the 1-based row of the table for Parquet), ``split`` when mapped, and the
    ``keep`` columns. Raises :class:`ManifestError` for structural problems only.
    """
    return list(iter_manifest(path, mapping))


def save_posts_jsonl(posts: Iterable[Post], path: str | os.PathLike) -> int:
    """Write posts as mmpost JSONL (one ``Post.to_dict()`` per line), atomically. Returns the count."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for p in posts:
                f.write(json.dumps(p.to_dict(), ensure_ascii=False))
                f.write("\n")
                n += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return n


def load_posts_jsonl(path: str | os.PathLike) -> list[Post]:
    """Read posts written by :func:`save_posts_jsonl`."""
    path = os.fspath(path)
    posts = []
    for lineno, obj in iter_json_objects(path, "utf-8"):
        if "id" not in obj:
            raise ManifestError(f"{path}: line {lineno}: a post needs an 'id'")
        try:
            posts.append(Post.from_dict(obj))
        except (TypeError, ValueError, KeyError) as e:
            raise ManifestError(f"{path}: line {lineno}: not a post ({e})") from None
    return posts
