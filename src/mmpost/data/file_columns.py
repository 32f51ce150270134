"""The column names of a manifest, read without reading its rows (CSV/TSV header, the first JSONL object's keys,
the Parquet schema), and the run's mapping completed for a file it was not made for: an unmapped ``image`` column
is picked up, and other columns that look like images are named in a warning."""
from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import replace

from .columns import ColumnMapping, ManifestError
from .readers import _csv_kwargs, _detect_format

log = logging.getLogger(__name__)
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


def complete_mapping(path: str, mapping: ColumnMapping) -> ColumnMapping:
    """``mapping`` with an ``image`` column the file has but the run never mapped (a run trained on data without
    images, or on an adapter); a warning names any other column that looks like images and stays unmapped."""
    if mapping.image is not None:
        return mapping
    columns = file_columns(path, mapping)
    if "image" in columns:
        log.warning("%s: its 'image' column is read as the posts' images (the run's mapping has none; "
                    "data.columns.image=... chooses another)", path)
        return replace(mapping, image="image")
    looks = [c for c in columns if IMAGE_LIKE.search(c)]
    if looks:
        log.warning("%s: column(s) %s look like images but are not mapped, so every post is predicted from its text; "
                    "add data.columns.image=%s (and data.columns.image_root=...)", path, ", ".join(looks), looks[0])
    return mapping
