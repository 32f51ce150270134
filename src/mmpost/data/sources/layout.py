"""Reading one file in a dataset's own layout: the test file a user has for a dataset an adapter knows (e.g.
MultiOFF's test CSV, its ``Non-offensiv`` spelling included), read by the adapter the run was trained with.

    source = get_source("multioff")
    if reads_layout(source, path):
        data = read_in_layout(source, path, data_root=root, image_root=None)    # every post in split "test"
"""
from __future__ import annotations

import csv
from pathlib import Path

from .base import DatasetSource, SourceData
from .common import attach_images, image_folder

__all__ = ["reads_layout", "read_in_layout"]


def reads_layout(source: DatasetSource, path: str | Path) -> bool:
    """Whether ``path`` is a CSV file whose header has every column of the adapter's :attr:`layout`."""
    p = Path(path)
    if not source.layout or not p.is_file() or p.suffix.lower() not in (".csv", ".tsv", ".txt"):
        return False
    try:
        with open(p, encoding="utf-8", newline="") as f:
            header = next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error, OSError):
        return False
    return all(c in header for c in source.layout)


def read_in_layout(source: DatasetSource, path: str | Path, *, data_root: Path | None,
                   image_root: Path | str | None) -> SourceData:
    """Every labelled post of ``path`` (split ``test``), its images looked up as the adapter looks up its own:
    under ``image_root``, else the adapter's image folder under the data root."""
    p = Path(path)
    posts = source.read_rows(p, str(p))
    for post in posts:
        post.meta["split"] = "test"
    folder = image_folder(source, data_root, image_root) if data_root is not None or image_root else None
    notes = [f"{p.name}: read in the {source.name} dataset's own layout (columns {', '.join(source.layout)}; "
             "its label spellings)",
             attach_images(posts, folder, source.image_name)]
    return SourceData(posts=posts, notes=notes)
