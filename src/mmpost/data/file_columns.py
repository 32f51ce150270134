"""The column names of a manifest, read without reading its rows (CSV/TSV header, the first JSONL object's keys,
the Parquet schema), and the run's mapping completed for a file it was not made for: the usual names (``id``,
``text``, ``image``, each task's name) are picked up where the mapped columns are absent, and other columns that
look like images are named in a warning."""
from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

from .columns import ColumnMapping, ManifestError
from .readers import _csv_kwargs, _detect_format

log = logging.getLogger(__name__)
M = TypeVar("M")
IMAGE_LIKE = re.compile(r"image|img|photo|picture|pic\b|media|file", re.IGNORECASE)


def file_columns(path: str, mapping: ColumnMapping) -> list[str]:
    """The columns of ``path`` ([] when they cannot be read: the reader itself then says why)."""
    try:
        fmt = _detect_format(path, mapping)
        if fmt == "parquet":
            import pyarrow.parquet as pq
            return list(pq.read_schema(path).names)
        with open(path, encoding=mapping.encoding, newline="") as f:
            if fmt == "jsonl":
                first = next((line for line in f if line.strip()), "{}")
                obj = json.loads(first)
                return list(obj) if isinstance(obj, dict) else []
            return [h.strip().lstrip("\ufeff") for h in next(csv.reader(f, **_csv_kwargs(path, mapping.csv_options)),
                                                                 [])]
    except (OSError, ValueError, UnicodeDecodeError, TypeError, ManifestError):
        return []


def complete_mapping(path: str, mapping: M, tasks: Sequence[str] = ()) -> M:
    """``mapping`` (a ``ColumnMapping`` or ``data.columns``) completed for a file it was not made for: where a mapped
    column is not in the file, the usual name is used when the file has it (``id``, ``text``, and each of ``tasks``
    by its own name); an unmapped ``image`` column is picked up (a run trained on data without images, or on an
    adapter); a warning names any other column that looks like images and stays unmapped."""
    columns = file_columns(path, mapping)
    if not columns:
        return mapping
    changes: dict[str, Any] = {}
    if mapping.id is not None and mapping.id not in columns:
        changes["id"] = "id" if "id" in columns else None
    if mapping.image is not None and mapping.image not in columns and "image" in columns:
        changes["image"] = "image"
    texts = [mapping.text] if isinstance(mapping.text, str) else list(mapping.text or [])
    if "text" in columns and any(t not in columns for t in texts):
        changes["text"] = "text"
    labels = dict(mapping.labels)
    for task in tasks:
        mapped = labels.get(task)
        if task in columns and (mapped is None or (isinstance(mapped, str) and mapped not in columns)):
            labels[task] = task
    if labels != dict(mapping.labels):
        changes["labels"] = labels
    for key, value in changes.items():
        log.info("%s: data.columns.%s read as %s (the run's mapping names columns this file lacks)", path, key,
                 value)
    mapping = replace(mapping, **changes) if changes else mapping
    return _with_image_column(path, mapping, columns)


def _with_image_column(path: str, mapping: M, columns: list[str]) -> M:
    if mapping.image is not None:
        return mapping
    if "image" in columns:
        log.warning("%s: its 'image' column is read as the posts' images (the run's mapping has none; "
                    "data.columns.image=... chooses another)", path)
        return replace(mapping, image="image")
    looks = [c for c in columns if IMAGE_LIKE.search(c)]
    if looks:
        log.warning("%s: column(s) %s look like images but are not mapped, so every post is predicted from its text; "
                    "add data.columns.image=%s (and data.columns.image_root=...)", path, ", ".join(looks), looks[0])
    return mapping
