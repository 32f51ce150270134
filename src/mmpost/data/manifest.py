"""Import a user's CSV / TSV / JSONL / Parquet file of posts into :class:`~mmpost.data.post.Post` records.

A :class:`ColumnMapping` says which column holds what. Every cell is read as a string (an 18-digit tweet id
stays exact), empty cells become ``""`` or an absent label, and each post remembers where it came from
(``meta["source"]``, ``meta["row"]``). Only structural problems raise :class:`ManifestError` (missing file,
missing mapped column, wrong text encoding, a row that does not parse); content problems (empty text,
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
"""
from __future__ import annotations

import csv
import difflib
import io
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Iterable

from .post import Post

log = logging.getLogger(__name__)

__all__ = [
    "ColumnMapping",
    "ManifestError",
    "REFUSED_IMAGES",
    "load_manifest",
    "save_posts_jsonl",
    "load_posts_jsonl",
    "SPLIT_ALIASES",
]

# Names a split column may use for the usual three splits.
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "dev": "dev", "val": "dev", "valid": "dev", "validation": "dev", "development": "dev",
    "test": "test", "testing": "test",
}

# meta key listing image cells that pointed outside the image root: [{"name": cell value, "root": image root}]
REFUSED_IMAGES = "refused_images"
_RESERVED_META = ("source", "row", "split", REFUSED_IMAGES)
_FORMATS = ("csv", "jsonl", "parquet")
_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
               ".pq": "parquet"}


class ManifestError(ValueError):
    """A manifest cannot be read; the message names the file and, where it applies, the row and column."""


@dataclass
class ColumnMapping:
    """Which column of a manifest holds what.

    id            column with the post id; ``None`` → ids ``"row-<n>"``
    text          column, or several columns joined with ``" "`` (empty parts skipped)
    image         column with image file names or ids; ``None`` → text-only posts
    image_root    folder joined to relative image names (default: the manifest's own folder); when given, it is
                  also a boundary: a name that resolves outside it (``../x.jpg``, ``/etc/x.jpg``) is refused
                  (``meta["refused_images"]``, reported by validation as ``unsafe_image_path``)
    image_pattern format applied to each image cell value, e.g. ``"T{}.jpg"``
    image_sep     separator for several images in one cell, e.g. ``";"`` (a JSON list cell, or a Parquet list
                  column, also works)
    labels        task name → column
    label_values  task name → {raw value → label name}; unmapped values are kept as they are
    split         column holding train/dev/test (``val``/``valid``/``validation`` → ``dev``)
    keep          extra columns copied into ``Post.meta``
    format        ``"csv"``, ``"jsonl"`` or ``"parquet"``; ``None`` → from the extension (.csv/.tsv,
                  .jsonl/.ndjson, .parquet/.pq)
    encoding      text encoding of the file (CSV and JSONL; Parquet strings are always UTF-8)
    csv_options   passed to the CSV reader (``delimiter``/``sep``, ``quotechar``, ``escapechar``, ``doublequote``,
                  ``skipinitialspace``, ``quoting``, ``strict``)
    """

    id: str | None = "id"
    text: str | list[str] = "text"
    image: str | None = None
    image_root: str | None = None
    image_pattern: str | None = None
    image_sep: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    label_values: dict[str, dict[str, str]] = field(default_factory=dict)
    split: str | None = None
    keep: list[str] = field(default_factory=list)
    format: str | None = None
    encoding: str = "utf-8"
    csv_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # accept any sequence / mapping (e.g. containers from a config library), store plain types
        if not isinstance(self.text, str):
            self.text = [str(c) for c in self.text]
            if not self.text:
                raise ValueError("ColumnMapping.text needs at least one column")
        self.keep = [self.keep] if isinstance(self.keep, str) else [str(c) for c in (self.keep or [])]
        self.labels = {str(t): str(c) for t, c in dict(self.labels or {}).items()}
        self.label_values = {str(t): {str(k): str(v) for k, v in dict(table or {}).items()}
                             for t, table in dict(self.label_values or {}).items()}
        self.csv_options = dict(self.csv_options or {})
        bad = [k for k in self.keep if k in _RESERVED_META]
        if bad:
            raise ValueError(f"ColumnMapping.keep cannot hold {bad}: meta keys {_RESERVED_META} are set by the "
                             "importer (map a split column with ColumnMapping.split)")
        if self.format is not None and self.format not in _FORMATS:
            raise ValueError(f"ColumnMapping.format must be one of {_FORMATS} or None, got {self.format!r}")
        if self.image_pattern is not None:
            try:
                probe = self.image_pattern.format("x")
            except (IndexError, KeyError, ValueError) as e:
                raise ValueError(f"ColumnMapping.image_pattern {self.image_pattern!r} must contain one '{{}}' "
                                 f"for the cell value ({e})") from None
            if probe == self.image_pattern:
                raise ValueError(f"ColumnMapping.image_pattern {self.image_pattern!r} has no '{{}}' placeholder")
        unknown = set(self.label_values) - set(self.labels)
        if unknown:
            raise ValueError(f"ColumnMapping.label_values has tasks {sorted(unknown)} that are not in labels "
                             f"{sorted(self.labels)}")

    def text_columns(self) -> list[str]:
        return [self.text] if isinstance(self.text, str) else list(self.text)

    def required_columns(self) -> list[tuple[str, str]]:
        """(column, what it is mapped as) for every column the mapping reads."""
        out: list[tuple[str, str]] = []
        if self.id is not None:
            out.append((self.id, "id"))
        out += [(c, "text") for c in self.text_columns()]
        if self.image is not None:
            out.append((self.image, "image"))
        out += [(c, f"labels[{t!r}]") for t, c in self.labels.items()]
        if self.split is not None:
            out.append((self.split, "split"))
        out += [(c, "keep") for c in self.keep]
        return out


# --------------------------------------------------------------------------------------------- reading text


def _detect_format(path: str, mapping: ColumnMapping) -> str:
    if mapping.format is not None:
        return mapping.format
    ext = os.path.splitext(path)[1].lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    raise ManifestError(f"{path}: cannot tell the format from the extension {ext!r}; "
                        f"set ColumnMapping(format=...) to one of {_FORMATS}")


def _read_text(path: str, encoding: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ManifestError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ManifestError(f"{path}: is a folder, not a manifest file") from None
    except OSError as e:
        raise ManifestError(f"{path}: cannot read file ({e.strerror or e})") from None
    try:
        text = data.decode(encoding)
    except LookupError:
        raise ManifestError(f"{path}: unknown text encoding {encoding!r}") from None
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        bad = data[e.start:e.end][:4]
        hint = ""
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            hint = " The file starts with a UTF-16 byte-order mark: try encoding='utf-16'."
        else:
            hint = " If it was saved by Excel or an older tool, try ColumnMapping(encoding='cp1252') or 'latin-1'."
        raise ManifestError(
            f"{path}: not valid {encoding} text: byte {bad.hex(' ')} at byte offset {e.start} "
            f"(line {line}, column {col}) ({e.reason}).{hint}"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


# ------------------------------------------------------------------------------------------------- cells


def _has_lone_surrogate(s: str) -> bool:
    if s.isascii():
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _repair_surrogates(s: str) -> str:
    """Unpaired UTF-16 surrogates (only JSON escapes can make them) → U+FFFD; a valid pair becomes its character."""
    return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _cell(v: Any) -> str:
    """One JSON value → string, the way a CSV would hold it."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return repr(v)
    if isinstance(v, (int,)):
        return str(v)
    return json.dumps(v, ensure_ascii=False)


class _RowReader:
    """Turns a row (a dict column → raw value) into a Post according to a mapping."""

    def __init__(self, path: str, mapping: ColumnMapping):
        self.path = path
        self.m = mapping
        self.text_cols = mapping.text_columns()
        root = mapping.image_root
        if root is None:
            root = os.path.dirname(path)
        self.root = os.fspath(root)
        # with an explicit image root, images must stay inside it
        self.boundary = os.path.abspath(self.root) if mapping.image_root is not None else None
        self.repaired: list[tuple[int, str]] = []     # (row, field) of cells whose broken surrogates were replaced
        self._row = 0

    def _str(self, v: Any, fld: str) -> str:
        s = _cell(v)
        if _has_lone_surrogate(s):
            self.repaired.append((self._row, fld))
            s = _repair_surrogates(s)
        return s

    def _inside(self, path: str) -> bool:
        try:
            return os.path.commonpath([self.boundary, os.path.abspath(path)]) == self.boundary
        except ValueError:  # another drive (Windows)
            return False

    def image_paths(self, raw: Any, refused: list[dict[str, str]] | None = None) -> list[str]:
        """File paths for one image cell; names outside the image root go to ``refused`` instead."""
        m = self.m
        if isinstance(raw, list):
            names = [self._str(x, "image").strip() for x in raw]
        else:
            s = self._str(raw, "image").strip()
            if not s:
                return []
            names = None
            if s.startswith("[") and s.endswith("]"):
                try:
                    parsed = json.loads(s)
                except (ValueError, RecursionError):
                    parsed = None
                if isinstance(parsed, list):
                    names = [self._str(x, "image").strip() for x in parsed]
            if names is None:
                names = [p.strip() for p in s.split(m.image_sep)] if m.image_sep else [s]
        out = []
        for n in names:
            if not n:
                continue
            if m.image_pattern is not None:
                n = m.image_pattern.format(n)
            if "://" not in n:
                path = os.path.join(self.root, n) if self.root else n   # join keeps an absolute n as it is
                if self.boundary is not None:
                    if not self._inside(path):
                        if refused is not None:
                            refused.append({"name": n, "root": self.root})
                        continue
                    path = os.path.normpath(path)   # open exactly what was checked ('link/..' cannot step out)
                n = path
            out.append(n)
        return out

    def post(self, get, row: int) -> Post:
        """``get(column)`` returns the raw value or None when the row lacks it."""
        m = self.m
        self._row = row
        pid = ""
        if m.id is not None:
            pid = self._str(get(m.id), "id").strip()
        if not pid:
            pid = f"row-{row}"
        parts = (self._str(get(c), "text").strip() for c in self.text_cols)
        text = " ".join(p for p in parts if p)
        refused: list[dict[str, str]] = []
        images = self.image_paths(get(m.image), refused) if m.image is not None else []
        labels: dict[str, str] = {}
        for task, col in m.labels.items():
            v = self._str(get(col), f"labels.{task}").strip()
            if not v:
                continue
            table = m.label_values.get(task)
            if table is not None:
                v = table.get(v, v)
                if not isinstance(v, str):
                    v = str(v)
            labels[task] = v
        meta: dict[str, Any] = {"source": self.path, "row": row}
        if m.split is not None:
            s = self._str(get(m.split), "split").strip()
            if s:
                meta["split"] = SPLIT_ALIASES.get(s.lower(), s)
        for col in m.keep:
            meta[col] = self._str(get(col), col)
        if refused:
            meta[REFUSED_IMAGES] = refused
        return Post(id=pid, text=text, images=images, labels=labels, meta=meta)

    def report_repairs(self) -> None:
        if self.repaired:
            row, fld = self.repaired[0]
            log.warning("%s: %d cells held unpaired UTF-16 surrogates (broken emoji), replaced by U+FFFD; first at "
                        "row %d, field %r", self.path, len(self.repaired), row, fld)


def _missing_columns_error(path: str, mapping: ColumnMapping, present: Iterable[str], kind: str) -> None:
    present = list(present)
    missing = [(c, what) for c, what in mapping.required_columns() if c not in set(present)]
    if not missing:
        return
    parts = []
    for c, what in missing:
        close = difflib.get_close_matches(c, present, n=1, cutoff=0.6)
        if not close:
            close = [p for p in present if p.lower() == c.lower()][:1]
        parts.append(f"{c!r} (mapped as {what})" + (f" - did you mean {close[0]!r}?" if close else ""))
    shown = ", ".join(repr(p) for p in present[:60]) + (f", ... ({len(present)} in all)" if len(present) > 60 else "")
    raise ManifestError(f"{path}: {kind} not found: {'; '.join(parts)}. Columns in the file: {shown or '(none)'}")


# ------------------------------------------------------------------------------------------------------ CSV

# quoting modes that leave every cell a string (QUOTE_NONNUMERIC and later modes turn cells into numbers or None)
_TEXT_QUOTING = (csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE)
_CSV_KEYS = {"delimiter", "quotechar", "escapechar", "doublequote", "skipinitialspace", "quoting", "strict",
             "lineterminator"}


def _csv_kwargs(path: str, opts: dict) -> dict:
    opts = dict(opts)
    if "sep" in opts:
        opts.setdefault("delimiter", opts.pop("sep"))
    if "delimiter" not in opts and os.path.splitext(path)[1].lower() == ".tsv":
        opts["delimiter"] = "\t"
    unknown = set(opts) - _CSV_KEYS
    if unknown:
        raise ManifestError(f"{path}: unsupported csv_options {sorted(unknown)}; use {sorted(_CSV_KEYS | {'sep'})}")
    quoting = opts.get("quoting", csv.QUOTE_MINIMAL)
    if quoting not in _TEXT_QUOTING:
        raise ManifestError(f"{path}: csv_options quoting={quoting!r} is not supported: mmpost reads every cell as "
                            "text; use csv.QUOTE_MINIMAL (0), csv.QUOTE_ALL (1) or csv.QUOTE_NONE (3)")
    return opts


# Python's csv refuses fields over 128 KiB; the whole file is in memory already, so a long cell is let through to
# validation (``long_text``), which names its row, rather than failing the import with a misleading parse error.
_CSV_FIELD_LIMIT = 1 << 30


def _load_csv(path: str, mapping: ColumnMapping) -> list[Post]:
    text = _read_text(path, mapping.encoding)
    kwargs = _csv_kwargs(path, mapping.csv_options)
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), **kwargs)
    except (TypeError, ValueError, csv.Error) as e:
        raise ManifestError(f"{path}: bad csv_options {mapping.csv_options!r} ({e})") from None
    hint = (" If text fields escape quotes with a backslash, pass "
            "csv_options={'escapechar': '\\\\', 'doublequote': False}.")
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):
            header = next(reader, None)
    except csv.Error as e:
        raise ManifestError(f"{path}: line {reader.line_num}: cannot parse the header ({e})") from None
    if header is None:
        raise ManifestError(f"{path}: the file is empty (no header row)")
    header = [h.strip() for h in header]
    seen: dict[str, int] = {}
    dups = set()
    for i, h in enumerate(header):
        if h in seen:
            dups.add(h)
        else:
            seen[h] = i
    _missing_columns_error(path, mapping, header, "mapped column(s)")
    ambiguous = sorted({c for c, _ in mapping.required_columns()} & dups)
    if ambiguous:
        raise ManifestError(f"{path}: column(s) {ambiguous} appear more than once in the header")

    width = len(header)
    rr = _RowReader(path, mapping)
    posts: list[Post] = []
    n = 0
    try:
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            n += 1
            if len(cells) > width:
                if any(c.strip() for c in cells[width:]):
                    raise ManifestError(
                        f"{path}: row {n} (ending on line {reader.line_num}) has {len(cells)} fields but the header "
                        f"has {width}; the row does not parse.{hint}")
            idx = seen
            ln = len(cells)

            def get(col: str, _c=cells, _ln=ln):
                i = idx.get(col)
                return _c[i] if i is not None and i < _ln else ""

            posts.append(rr.post(get, n))
    except csv.Error as e:
        raise ManifestError(f"{path}: row {n + 1} (line {reader.line_num}): cannot parse CSV ({e}).{hint}") from None
    rr.report_repairs()
    return posts


# ---------------------------------------------------------------------------------------------------- JSONL


def _load_jsonl_rows(path: str, encoding: str) -> list[tuple[int, dict]]:
    text = _read_text(path, encoding)
    rows = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise ManifestError(f"{path}: line {lineno}: not valid JSON ({e})") from None
        except RecursionError:
            raise ManifestError(f"{path}: line {lineno}: JSON nested too deeply to be a post") from None
        if not isinstance(obj, dict):
            raise ManifestError(f"{path}: line {lineno}: expected a JSON object per line, got {type(obj).__name__}")
        rows.append((lineno, obj))
    return rows


def _load_jsonl(path: str, mapping: ColumnMapping) -> list[Post]:
    rows = _load_jsonl_rows(path, mapping.encoding)
    if rows:
        keys: dict[str, None] = {}
        for _, obj in rows:
            for k in obj:
                keys.setdefault(k, None)
        _missing_columns_error(path, mapping, keys, "mapped key(s) (absent from every line)")
    rr = _RowReader(path, mapping)
    posts = [rr.post(obj.get, lineno) for lineno, obj in rows]
    rr.report_repairs()
    return posts


# -------------------------------------------------------------------------------------------------- Parquet

_PARQUET_BATCH_ROWS = 65536


def _parquet_json_default(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", errors="replace")
    return str(v)


def _parquet_cell(v: Any, path: str, row: int, col: str) -> str:
    """One Parquet value (as pyarrow gives it to Python) → the string a CSV written by pandas would hold."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    if isinstance(v, (bytes, bytearray)):
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ManifestError(f"{path}: row {row}, column {col!r}: binary cell is not UTF-8 text "
                                f"(byte {bytes(v)[e.start:e.end][:4].hex(' ')} at offset {e.start})") from None
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, ensure_ascii=False, default=_parquet_json_default)
    return str(v)  # dates, times, decimals, durations


def _load_parquet(path: str, mapping: ColumnMapping) -> list[Post]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ManifestError(f"{path}: reading Parquet files needs the pyarrow package: pip install pyarrow") from None
    if os.path.isdir(path):
        raise ManifestError(f"{path}: is a folder, not a manifest file")
    if not os.path.exists(path):
        raise ManifestError(f"{path}: file not found")
    try:
        pf = pq.ParquetFile(path)
        names = list(pf.schema_arrow.names)
    except OSError as e:
        raise ManifestError(f"{path}: cannot read file ({e})") from None
    except Exception as e:  # pyarrow.ArrowInvalid and friends: not a Parquet file, or a damaged one
        raise ManifestError(f"{path}: not a readable Parquet file ({e})") from None

    # header names are matched stripped, as for CSV
    by_name: dict[str, list[str]] = {}
    for n in names:
        by_name.setdefault(n.strip(), []).append(n)
    _missing_columns_error(path, mapping, list(by_name), "mapped column(s)")
    needed = list(dict.fromkeys(c for c, _ in mapping.required_columns()))
    ambiguous = sorted(c for c in needed if len(by_name[c]) > 1)
    if ambiguous:
        raise ManifestError(f"{path}: column(s) {ambiguous} appear more than once in the table")
    source = {c: by_name[c][0] for c in needed}
    image_col = mapping.image

    rr = _RowReader(path, mapping)
    posts: list[Post] = []
    row = 0
    try:
        batches = pf.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=[source[c] for c in needed])
        for batch in batches:
            values = {c: batch.column(i).to_pylist() for i, c in enumerate(needed)}
            for j in range(batch.num_rows):
                row += 1

                def get(col: str, _j=j, _row=row):
                    v = values[col][_j]
                    if col == image_col and isinstance(v, (list, tuple)):
                        return [_parquet_cell(x, path, _row, col) for x in v]
                    return _parquet_cell(v, path, _row, col)

                posts.append(rr.post(get, row))
        rr.report_repairs()
    except ManifestError:
        raise
    except OSError as e:
        raise ManifestError(f"{path}: cannot read file ({e})") from None
    except Exception as e:  # a damaged row group, an unsupported type
        raise ManifestError(f"{path}: cannot read Parquet data after row {row} ({type(e).__name__}: {e})") from None
    return posts


# ------------------------------------------------------------------------------------------------ public API


def load_manifest(path: str | os.PathLike, mapping: ColumnMapping | None = None) -> list[Post]:
    """Read a CSV, TSV, JSONL or Parquet manifest into posts (see :class:`ColumnMapping`).

    ``meta`` of each post holds ``source`` (the path), ``row`` (1-based data row for CSV, header not counted;
    the line number for JSONL; the 1-based row of the table for Parquet), ``split`` when mapped, and the
    ``keep`` columns. Raises :class:`ManifestError` for structural problems only.
    """
    mapping = mapping if mapping is not None else ColumnMapping()
    path = os.fspath(path)
    fmt = _detect_format(path, mapping)
    if fmt == "csv":
        return _load_csv(path, mapping)
    if fmt == "parquet":
        return _load_parquet(path, mapping)
    return _load_jsonl(path, mapping)


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
    for lineno, obj in _load_jsonl_rows(path, "utf-8"):
        if "id" not in obj:
            raise ManifestError(f"{path}: line {lineno}: a post needs an 'id'")
        try:
            posts.append(Post.from_dict(obj))
        except (TypeError, ValueError, KeyError) as e:
            raise ManifestError(f"{path}: line {lineno}: not a post ({e})") from None
    return posts
