"""A run's split, saved post by post (``splits.csv``: id, split, group) and read back (``data.splits_from``), so
that another run, a cross-check or a reviewer uses exactly the same train / dev / test posts.

    id,split,group
    17,train,image:memes/img_17.jpg
    18,test,post:18
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmpost.atomic import atomic_write_text
from mmpost.data.post import Post

SPLITS_FILE = "splits.csv"
COLUMNS = ("id", "split", "group")


def write_splits(path: str | Path, splits: Mapping[str, Sequence[Post]], groups: Mapping[str, str]) -> Path:
    """``splits.csv`` in one atomic step: one row per post, in split order (train, dev, test) and post order
    within a split; ``groups`` maps a post id to the name of the group it was kept with."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for split, posts in splits.items():
        for p in posts:
            w.writerow((p.id, split, groups.get(p.id, f"post:{p.id}")))
    path = Path(path)
    atomic_write_text(path, buf.getvalue())
    return path


def splits_file(where: str | Path) -> Path:
    """The splits file of ``where``: a run folder (its ``splits.csv``) or the file itself."""
    p = Path(where).expanduser()
    f = p / SPLITS_FILE if p.is_dir() else p
    if not f.is_file():
        hint = " (runs write it since this version; older runs have none)" if p.is_dir() else ""
        raise FileNotFoundError(f"data.splits_from: {f} not found{hint}")
    return f


def read_splits(where: str | Path) -> dict[str, str]:
    """post id → split name, from a run folder or a splits file. Errors name the file and row."""
    f = splits_file(where)
    with open(f, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("id", "split") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{f}: no column {', '.join(missing)}; expected the header {','.join(COLUMNS)}")
        out: dict[str, str] = {}
        for row, rec in enumerate(reader, 1):
            pid, split = (rec.get("id") or "").strip(), (rec.get("split") or "").strip()
            if not pid or not split:
                raise ValueError(f"{f}: row {row}: empty id or split")
            if out.setdefault(pid, split) != split:
                raise ValueError(f"{f}: row {row}: post {pid!r} is listed in {out[pid]} and in {split}")
    if not out:
        raise ValueError(f"{f}: no rows")
    return out


def apply_saved_splits(posts: Sequence[Post], saved: Mapping[str, str], source: str) -> tuple[list[Post], list[str]]:
    """Each post in ``saved`` gets its saved split (overwriting any other); posts the file does not list are left
    out. Returns the kept posts and notes that say what did not match. Raises ValueError when no post matches
    (a split saved for other data)."""
    kept = [p for p in posts if p.id in saved]
    if not kept:
        example = ", ".join(list(saved)[:3])
        raise ValueError(f"data.splits_from: none of the {len(posts):,} posts is listed in {source} (ids there look "
                         f"like {example}): the split was saved for other data")
    for p in kept:
        p.meta["split"] = saved[p.id]
    notes = [f"split: reused post by post from {source} (data.splits_from)"]
    if len(kept) < len(posts):
        notes.append(f"{len(posts) - len(kept):,} posts are not in {source} and were left out")
    unseen = len(saved) - len(kept)
    if unseen:
        notes.append(f"{unseen:,} posts listed in {source} are not in this data")
    return kept, notes
