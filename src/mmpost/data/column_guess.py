"""Guess which columns of a posts file hold the id, the text, the image and the labels, from their content, and
say why: what ``mmpost init posts.csv`` proposes a recipe from.

- **image**: the column whose cells name image files that exist, under the file's folder or a sub-folder of it
  (as given, or as an id whose file has any image extension: pattern ``{}.*``); a column of image-like names
  whose files are not found is still proposed, with a note.
- **text**: the column of the longest free text (several words a cell, mostly distinct cells).
- **id**: a short column whose values are all distinct (a name like ``id`` / ``*_id`` first).
- **labels**: short columns with few distinct values (2 to 20, and under a fifth of the rows for larger files).

Only the first rows are read (``SAMPLE_ROWS``), so a large file is guessed as fast as a small one.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .file_columns import IMAGE_LIKE

__all__ = ["ColumnGuess", "Guessed", "guess_columns", "read_sample", "SAMPLE_ROWS"]

SAMPLE_ROWS = 2000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
_IMAGE_NAME = re.compile(r"\.(jpe?g|png|webp|gif|bmp|tiff?)$", re.IGNORECASE)
_ID_NAME = re.compile(r"(^|[_\s-])id$|^id([_\s-]|$)|^name$", re.IGNORECASE)
_LABEL_NAME = re.compile(r"label|class|target|sentiment|sarcas|offens|hate|stance|category|emotion|relation|fake",
                         re.IGNORECASE)
_MAX_LABEL_VALUES = 20


@dataclass
class ColumnGuess:
    column: str
    why: str


@dataclass
class Guessed:
    """What was guessed, each with the reason; ``notes``: what could not be guessed or needs a look."""

    rows_read: int
    columns: list[str]
    id: ColumnGuess | None = None
    text: ColumnGuess | None = None
    image: ColumnGuess | None = None
    image_root: Path | None = None
    image_pattern: str | None = None
    labels: list[ColumnGuess] = field(default_factory=list)
    csv_options: dict[str, Any] = field(default_factory=dict)
    format: str | None = None
    notes: list[str] = field(default_factory=list)


def read_sample(path: Path, rows: int = SAMPLE_ROWS) -> tuple[pd.DataFrame, str | None, dict[str, Any]]:
    """The first ``rows`` rows as strings, the ``data.columns.format`` a non-standard extension needs, and the
    ``data.columns.csv_options`` (a tab or semicolon delimiter found in the header line)."""
    ext = path.suffix.lower()
    if ext == ".parquet":
        return pd.read_parquet(path).head(rows).astype(str), None, {}
    if ext in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True, nrows=rows, dtype=False).astype(str), None, {}
    with open(path, encoding="utf-8", newline="") as f:
        head = f.readline()
    delimiter = max(",\t;|", key=head.count)
    options = {} if delimiter == "," or (delimiter == "\t" and ext == ".tsv") else {"delimiter": delimiter}
    frame = pd.read_csv(path, sep=delimiter, nrows=rows, dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL)
    return frame, ("csv" if ext not in (".csv", ".tsv") else None), options


def guess_columns(path: str | Path) -> Guessed:
    path = Path(path).expanduser()
    frame, fmt, options = read_sample(path)
    cells = {str(c): [v.strip() for v in frame[c].tolist() if v.strip() and v.strip().lower() != "nan"]
             for c in frame.columns}
    out = Guessed(rows_read=len(frame), columns=list(cells), csv_options=options, format=fmt)
    _guess_image(out, path.parent, cells)
    taken = {out.image.column} if out.image else set()
    out.text = _guess_text(cells, taken)
    taken |= {out.text.column} if out.text else set()
    out.id = _guess_id(cells, taken, len(frame))
    if out.id is None and out.image is not None:
        names = cells[out.image.column]
        if len(names) == len(frame) and len(set(names)) == len(names):
            out.id = ColumnGuess(out.image.column, "the image column: every value distinct")
    taken |= {out.id.column} if out.id else set()
    out.labels = _guess_labels(cells, taken, len(frame))
    if out.text is None:
        out.notes.append("no column of free text found: give --text COLUMN")
    if not out.labels:
        out.notes.append("no column with few distinct values found: give --label COLUMN (the column to learn)")
    if out.id is None:
        out.notes.append("no column of distinct short values found: posts are numbered by row")
    return out


def _guess_text(cells: dict[str, list[str]], taken: set[str]) -> ColumnGuess | None:
    best: tuple[float, str, str] | None = None
    for col, values in cells.items():
        if col in taken or not values:
            continue
        words = sum(len(v.split()) for v in values) / len(values)
        distinct = len(set(values)) / len(values)
        if words >= 3 and distinct >= 0.5 and (best is None or words > best[0]):
            best = (words, col, f"free text: {words:.1f} words a cell on average, {distinct:.0%} of cells distinct")
    return ColumnGuess(best[1], best[2]) if best else None


def _guess_id(cells: dict[str, list[str]], taken: set[str], n: int) -> ColumnGuess | None:
    candidates = []
    for col, values in cells.items():
        if col in taken or len(values) < n or not values:
            continue
        short = sum(len(v) for v in values) / len(values) <= 40 and all(len(v.split()) == 1 for v in values)
        if short and len(set(values)) == len(values):
            candidates.append((not _ID_NAME.search(col), col))
    if not candidates:
        return None
    col = min(candidates)[1]
    return ColumnGuess(col, f"every value distinct ({n} rows read) and short"
                       + (", and its name says id" if _ID_NAME.search(col) else ""))


def _guess_labels(cells: dict[str, list[str]], taken: set[str], n: int) -> list[ColumnGuess]:
    out = []
    limit = max(2, min(_MAX_LABEL_VALUES, n // 5)) if n >= 50 else _MAX_LABEL_VALUES
    for col, values in cells.items():
        if col in taken or not values:
            continue
        counts = pd.Series(values).value_counts()
        words = sum(len(v.split()) for v in values) / len(values)
        if 2 <= len(counts) <= limit and words <= 4 and (len(counts) < n or n < 4):
            shown = ", ".join(f"{k} {v / len(values):.0%}" for k, v in counts.head(4).items())
            more = f", … ({len(counts)} values)" if len(counts) > 4 else ""
            hint = "; its name says label" if _LABEL_NAME.search(col) else ""
            out.append(ColumnGuess(col, f"{len(counts)} distinct values ({shown}{more}){hint}"))
    return out


def _image_roots(folder: Path) -> list[Path]:
    """The file's folder and its sub-folders (two levels) that hold image files, nearest first."""
    roots = [folder]
    for depth in (1, 2):
        for sub in sorted(folder.glob("/".join(["*"] * depth))):
            if sub.is_dir() and not sub.name.startswith(".") and _holds_images(sub):
                roots.append(sub)
    return roots


def _holds_images(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(_IMAGE_NAME.search(e.name) for e in it if e.is_file())
    except OSError:
        return False


def _image_hits(values: list[str], root: Path) -> tuple[int, int]:
    """(cells naming a file under ``root`` as given, cells naming one once an image extension is added)."""
    try:
        names = set(os.listdir(root))
    except OSError:
        return 0, 0
    stems = {os.path.splitext(n)[0] for n in names if _IMAGE_NAME.search(n)}
    given = sum(1 for v in values if (v in names if "/" not in v else (root / v).is_file()))
    as_id = sum(1 for v in values if "/" not in v and v in stems)
    return given, as_id


def _guess_image(out: Guessed, folder: Path, cells: dict[str, list[str]]) -> None:
    best: tuple[tuple[float, bool, bool], str, Path, str | None] | None = None
    roots = _image_roots(folder)
    for col, values in cells.items():
        sample = values[:200]
        if not sample:
            continue
        for root in roots:
            given, as_id = _image_hits(sample, root)
            for hits, pattern in ((given, None), (as_id, "{}.*")):
                # ties: full file names before ids, then a name that says image (an id column can name files too)
                rank = (hits / len(sample), pattern is None, bool(IMAGE_LIKE.search(col)))
                if rank[0] >= 0.5 and (best is None or rank > best[0]):
                    best = (rank, col, root, pattern)
    if best is not None:
        (share, _, _), col, root, pattern = best
        out.image, out.image_root, out.image_pattern = ColumnGuess(col, (
            f"{share:.0%} of its cells name image files under {root}"
            + (" once an extension is added (image_pattern \"{}.*\")" if pattern else ""))), root, pattern
        return
    for col, values in cells.items():
        looks = sum(bool(_IMAGE_NAME.search(v)) for v in values[:200]) / max(1, len(values[:200]))
        if values and looks >= 0.8:
            out.image = ColumnGuess(col, f"{looks:.0%} of its cells look like image file names")
            out.notes.append(f"the files of column {col!r} were not found under {folder} or its sub-folders: "
                             "give --image-root FOLDER (data.columns.image_root)")
            return
    out.notes.append("no column names image files: the posts are text-only (give --image COLUMN to use images)")
