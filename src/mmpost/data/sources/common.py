"""What the dataset adapters share: errors that name the file, row and field; option checks; a CSV reader;
attaching images; the notes every adapter ends with."""
from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from mmpost.data.groups import IMAGE_KEY
from mmpost.data.manifest import ManifestError
from mmpost.data.post import Post

from .base import DatasetSource

_SPLITS = ("train", "dev", "test")


class SourceError(ManifestError):
    """A dataset file is missing or holds something the adapter cannot read; the message names the file and,
    where it applies, the row (or line) and the field. A :class:`ManifestError`, so code that reports
    unreadable manifests reports these the same way."""


# ------------------------------------------------------------------------------------------------ options


def choice(source: DatasetSource, opts: dict[str, Any], key: str, choices: Sequence[str]) -> str:
    """The value of option ``key``, which must be one of ``choices``."""
    v = opts[key]
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"dataset {source.name!r}: option {key}={v!r} must be one of {', '.join(choices)}")
    return v


def flag(source: DatasetSource, opts: dict[str, Any], key: str) -> bool:
    """The value of a true/false option (a bool, or the strings true/false as a command line gives them)."""
    v = opts[key]
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise ValueError(f"dataset {source.name!r}: option {key}={v!r} must be true or false")


def integer(source: DatasetSource, opts: dict[str, Any], key: str) -> int:
    """The value of an integer option (an int, or a string of digits)."""
    v = opts[key]
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    raise ValueError(f"dataset {source.name!r}: option {key}={v!r} must be an integer")


# ------------------------------------------------------------------------------------------------ files


def data_file(data_root: Path, rel: str, dataset: str) -> Path:
    """``data_root / rel``, which must be a file (else a :class:`SourceError` saying where it was expected)."""
    path = Path(data_root) / rel
    if not path.is_file():
        raise SourceError(f"{path}: file not found; dataset {dataset!r} reads {rel} under the data root "
                          f"{data_root}")
    return path


def csv_rows(path: Path, columns: Sequence[str], **fmt: Any) -> Iterator[tuple[int, int, dict[str, str]]]:
    """``(row, line, record)`` for each data row of a UTF-8 CSV file: ``row`` counts data rows from 1 (header
    not counted, blank lines skipped), ``line`` is the line the row starts on, ``record`` maps header → cell.

    ``fmt`` goes to :func:`csv.reader` (e.g. ``doublequote=False, escapechar="\\\\"``). Raises
    :class:`SourceError` for a header without one of ``columns``, a row with more or fewer fields than the
    header (usually quoting read with the wrong dialect), a CSV syntax error or text that is not UTF-8.
    """
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, **fmt)
        row, start = 0, 1
        try:
            header = next(reader, None)
            if header is None:
                raise SourceError(f"{path}: empty file, expected a header row")
            missing = [c for c in columns if c not in header]
            if missing:
                raise SourceError(f"{path}: no column {', '.join(map(repr, missing))}; the header has "
                                  f"{', '.join(map(repr, header))}")
            while True:
                start = reader.line_num + 1
                cells = next(reader, None)
                if cells is None:
                    return
                if not cells:
                    continue
                row += 1
                if len(cells) != len(header):
                    raise SourceError(f"{path}: row {row} (line {start}) has {len(cells)} fields but the header "
                                      f"has {len(header)}; the row does not parse as this file's CSV dialect")
                yield row, start, dict(zip(header, cells))
        except csv.Error as e:
            raise SourceError(f"{path}: row {row + 1} (line {start}): cannot parse CSV ({e})") from None
        except UnicodeDecodeError as e:
            raise SourceError(f"{path}: not valid UTF-8 near row {row + 1} (line {start}) ({e.reason})") from None


def where(path: Path, row: int, line: int | None = None, field: str | None = None) -> str:
    """``"<file>: row 12 (line 14), field 'label'"``: the start of an error message about one cell."""
    s = f"{path}: row {row}" + (f" (line {line})" if line is not None and line != row else "")
    return s + (f", field {field!r}" if field else "")


def lookup(table: dict[str, str], value: str, place: str) -> str:
    """``table[value]``, or a :class:`SourceError` at ``place`` (see :func:`where`) listing the known values."""
    try:
        return table[value]
    except KeyError:
        raise SourceError(f"{place}: unknown value {value!r}; expected one of "
                          f"{', '.join(map(repr, table))}") from None


def rel_name(path: Path, data_root: Path) -> str:
    """The file as ``meta["source"]`` names it: relative to the data root, with forward slashes."""
    try:
        return Path(path).relative_to(data_root).as_posix()
    except ValueError:
        return Path(path).name


# ------------------------------------------------------------------------------------------------ images


def image_folder(source: DatasetSource, data_root: Path, image_root: Path | str | None) -> Path | None:
    """Where to look for images: ``image_root`` if given (relative → under the data root; it must be a folder),
    else the adapter's ``default_image_root`` under the data root when that folder exists, else ``None``."""
    if image_root is not None:
        root = Path(image_root).expanduser()
        root = root if root.is_absolute() else Path(data_root) / root
        if not root.is_dir():
            raise SourceError(f"{root}: image root for dataset {source.name!r} is not a folder")
        return root
    if source.default_image_root:
        root = Path(data_root) / source.default_image_root
        if root.is_dir():
            return root
    return None


def attach_images(posts: Sequence[Post], folder: Path | None, file_name: Callable[[Post], str]) -> str:
    """Set ``images`` of each post to ``[folder / file_name(post)]`` when that file exists, else ``[]``;
    return the note that says how many posts have one. The folder is listed once (fast for many posts).

    Every post keeps the path its file would have (or, without a folder, the bare name) as its image key,
    ``meta["image_key"]``, whether or not the file exists: splits grouped by image keep posts that share an
    image together even where the file is missing."""
    if folder is None:
        for p in posts:
            p.images = []
            _keep_image_key(p, file_name(p))
        return ("images: none available (give data.image_root to use them); every post runs text-only with "
                "the image masked")
    present = {e.name for e in os.scandir(folder) if e.is_file()}
    n = 0
    for p in posts:
        name = file_name(p)
        p.images = [str(folder / name)] if name in present else []
        _keep_image_key(p, str(folder / name) if name else "")
        n += bool(p.images)
    if n == len(posts):
        return f"images: all {n:,} posts have an image file under {folder}"
    rest = "the rest run" if n else "every post runs"
    return (f"images: {n:,} of {len(posts):,} posts have an image file under {folder}; {rest} text-only with "
            "the image masked")


def _keep_image_key(post: Post, key: str) -> None:
    if key:
        post.meta[IMAGE_KEY] = key


# ------------------------------------------------------------------------------------------------ notes


def counts_note(posts: Sequence[Post], task: str | None = None, labels: Sequence[str] = ()) -> str:
    """``"counts: train 3,219 (00 1,101, 01 818, ...) / dev 357 (...) / test 895 (...)"``: posts per split and,
    for ``task``, per label (in the order of ``labels``, then any others)."""
    parts = []
    for s in _SPLITS:
        in_s = [p for p in posts if p.meta.get("split") == s]
        part = f"{s} {len(in_s):,}"
        if task is not None:
            c = Counter(p.labels[task] for p in in_s if task in p.labels)
            order = [k for k in labels if k in c] + sorted(k for k in c if k not in labels)
            part += " (" + ", ".join(f"{k} {c[k]:,}" for k in order) + ")"
        parts.append(part)
    return "counts: " + " / ".join(parts)
