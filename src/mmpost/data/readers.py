"""Read a CSV / TSV / JSONL / Parquet manifest one row at a time (:func:`iter_manifest`): each row becomes a
:class:`~mmpost.data.post.Post` as it is read, and neither the file nor the posts are held whole.
:func:`mmpost.data.manifest.load_manifest` is the list of the same posts.

Structural problems raise :class:`ManifestError`, naming the file and, where it applies, the line or row and the
column: a missing or unreadable file; text that is not in the mapping's encoding (a decoding pass over the file, a
block at a time, finds it before any row is read, and the bad byte, its line and column are named); a mapped column
that is missing or repeated (for JSONL, a key absent from every line: a first pass parses every line and keeps only
the key names, so a line that is not a JSON object also fails before any post); a row that does not parse. A
leading byte-order mark is dropped and blank lines are skipped.
"""
from __future__ import annotations

import codecs
import csv
import difflib
import json
import logging
import math
import os
import sys
from typing import Any, Iterable, Iterator

from .columns import FORMATS, REFUSED_IMAGES, SPLIT_ALIASES, ColumnMapping, ManifestError
from .groups import IMAGE_KEY
from .label_cells import read_labels
from .post import Post

__all__ = ["iter_manifest", "iter_json_objects"]

# warnings about a manifest's content go to the logger of the manifest module, where users look for them
log = logging.getLogger("mmpost.data.manifest")

_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
               ".pq": "parquet"}


def iter_manifest(path: str | os.PathLike, mapping: ColumnMapping | None = None) -> Iterator[Post]:
    """The posts of a CSV, TSV, JSONL or Parquet manifest (see :class:`ColumnMapping`), read one row at a time.

    ``meta`` of each post holds ``source`` (the path), ``row`` (1-based data row for CSV, header not counted;
    the line number for JSONL; the 1-based row of the table for Parquet), ``split`` when mapped, and the
    ``keep`` columns. Raises :class:`ManifestError` for structural problems only: an unknown format at once, the
    others when the posts are read (a file that cannot be opened, or whose header does not fit the mapping, on the
    first ``next``).
    """
    mapping = mapping if mapping is not None else ColumnMapping()
    path = os.fspath(path)
    fmt = _detect_format(path, mapping)
    reader = {"csv": _csv_posts, "jsonl": _jsonl_posts, "parquet": _parquet_posts}[fmt]
    return reader(path, mapping)


def _detect_format(path: str, mapping: ColumnMapping) -> str:
    if mapping.format is not None:
        return mapping.format
    ext = os.path.splitext(path)[1].lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    tab = ' (and data.columns.csv_options: {delimiter: "\\t"} for tab-separated text)' if ext == ".txt" else ""
    raise ManifestError(f"{path}: cannot tell the format from the extension {ext!r}; set data.columns.format to one "
                        f"of {', '.join(FORMATS)}{tab}")


# --------------------------------------------------------------------------------------------- reading text


def _open_error(path: str, e: OSError) -> ManifestError:
    if isinstance(e, FileNotFoundError):
        return ManifestError(f"{path}: file not found")
    if isinstance(e, IsADirectoryError):
        return ManifestError(f"{path}: is a folder, not a manifest file")
    return ManifestError(f"{path}: cannot read file ({e.strerror or e})")


def _decode_error(path: str, encoding: str) -> ManifestError:
    """The error for a file that is not ``encoding`` text, naming the first bad byte, its line and column."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return _open_error(path, e)
    try:
        data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        bad = data[e.start:e.end][:4]
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            hint = " The file starts with a UTF-16 byte-order mark: set data.columns.encoding: utf-16."
        else:
            hint = (" If it was saved by Excel or an older tool, set data.columns.encoding: cp1252 (or latin-1).")
        return ManifestError(f"{path}: not valid {encoding} text: byte {bad.hex(' ')} at byte offset {e.start} "
                             f"(line {line}, column {col}) ({e.reason}).{hint}")
    return ManifestError(f"{path}: not valid {encoding} text")   # valid as a whole: it changed while being read


_TEXT_BLOCK = 1 << 20
_BOMS = {"utf-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE), "utf-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)}


def _stream_encoding(path: str, encoding: str) -> str:
    """The encoding to read ``path`` as ``encoding`` line by line. UTF-16 or UTF-32 text without a byte-order mark
    is in the machine's byte order (as ``bytes.decode`` reads it); a text file's decoder would refuse it."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return encoding          # open() raises it
    if name not in _BOMS:
        return encoding
    with open(path, "rb") as f:
        head = f.read(4)
    return encoding if head.startswith(_BOMS[name]) else f"{name}-{'le' if sys.byteorder == 'little' else 'be'}"


def _check_text(path: str, encoding: str) -> None:
    """Decode the whole file a block at a time, holding nothing, so that text that is not in ``encoding`` is
    reported (:func:`_decode_error`) before any row is read, wherever in the file it is."""
    try:
        with open(path, "rb") as f:
            decoder = codecs.getincrementaldecoder(_stream_encoding(path, encoding))()
            while True:
                block = f.read(_TEXT_BLOCK)
                decoder.decode(block, final=not block)
                if not block:
                    break
    except OSError as e:
        raise _open_error(path, e) from None
    except LookupError:
        raise ManifestError(f"{path}: unknown text encoding {encoding!r}") from None
    except UnicodeError:
        raise _decode_error(path, encoding) from None


def _text_lines(path: str, encoding: str, newline: str) -> Iterator[str]:
    """The file's lines, ends kept, one at a time, a leading byte-order mark dropped. ``newline=""`` ends lines at
    ``\\n``, ``\\r\\n`` and ``\\r`` (what the CSV reader wants), ``newline="\\n"`` only at ``\\n`` (JSON Lines)."""
    try:
        with open(path, encoding=_stream_encoding(path, encoding), newline=newline) as f:
            first = True
            for line in f:
                if first:
                    first = False
                    if line.startswith("\ufeff"):
                        line = line[1:]
                yield line
    except OSError as e:
        raise _open_error(path, e) from None
    except LookupError:
        raise ManifestError(f"{path}: unknown text encoding {encoding!r}") from None
    except UnicodeError:
        raise _decode_error(path, encoding) from None


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
        self._listings: dict[str, dict[str, dict[str, str]]] = {}   # folder → its files (image_pattern "{}.*")

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
                n = self._any_extension(path) if path.endswith(".*") else path
            out.append(n)
        return out

    def image_key(self, images: list[str], refused: list[dict[str, str]]) -> str | None:
        """The row's image key for grouping (``meta["image_key"]``), kept even when the file turns out missing
        and validation masks the image: the first image path, normalised unless it is a URL (what splits have
        always grouped by), else the first refused name joined to the root; ``None`` for an empty cell."""
        if images:
            name = images[0]
        elif refused:
            name = os.path.join(self.root, refused[0]["name"]) if self.root else refused[0]["name"]
        else:
            return None
        return name if "://" in name else os.path.normpath(name)

    def _any_extension(self, path: str) -> str:
        """``folder/stem.*`` → the existing ``folder/stem.ext`` with the first of ``image_extensions`` present
        (extension case ignored); else ``stem`` + the first extension, which validation then reports missing. Each
        folder is listed once."""
        folder, stem = os.path.split(path[:-2])
        found = self._listing(folder).get(stem, {})
        ext = next((e for e in self.m.image_extensions if e.lower() in found), None)
        return os.path.join(folder, found[ext.lower()] if ext else stem + self.m.image_extensions[0])

    def _listing(self, folder: str) -> dict[str, dict[str, str]]:
        """stem → {lower-case extension → file name} of the files in ``folder`` (empty if it cannot be listed)."""
        if folder not in self._listings:
            names: dict[str, dict[str, str]] = {}
            try:
                with os.scandir(folder or ".") as entries:
                    for e in entries:
                        stem, ext = os.path.splitext(e.name)
                        names.setdefault(stem, {}).setdefault(ext.lower(), e.name)
            except OSError:
                pass
            self._listings[folder] = names
        return self._listings[folder]

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
        labels = read_labels(m, get, self._str, f"{self.path}: row {row}")
        meta: dict[str, Any] = {"source": self.path, "row": row}
        if m.split is not None:
            s = self._str(get(m.split), "split").strip()
            if s:
                meta["split"] = SPLIT_ALIASES.get(s.lower(), s)
        for col in m.keep:
            meta[col] = self._str(get(col), col)
        if refused:
            meta[REFUSED_IMAGES] = refused
        key = self.image_key(images, refused)
        if key is not None:
            meta[IMAGE_KEY] = key
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


# Python's csv refuses fields over 128 KiB; a long cell is let through to validation (``long_text``), which names
# its row, rather than failing the import with a misleading parse error.
_CSV_FIELD_LIMIT = 1 << 30
_CSV_ESCAPE_HINT = (" If text fields escape quotes with a backslash, pass "
                    "csv_options={'escapechar': '\\\\', 'doublequote': False}.")


def _csv_posts(path: str, mapping: ColumnMapping) -> Iterator[Post]:
    _check_text(path, mapping.encoding)
    kwargs = _csv_kwargs(path, mapping.csv_options)
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        reader = csv.reader(_text_lines(path, mapping.encoding, newline=""), **kwargs)
    except (TypeError, ValueError, csv.Error) as e:
        raise ManifestError(f"{path}: bad csv_options {mapping.csv_options!r} ({e})") from None
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):
            header = next(reader, None)
    except csv.Error as e:
        raise ManifestError(f"{path}: line {reader.line_num}: cannot parse the header ({e})") from None
    if header is None:
        raise ManifestError(f"{path}: the file is empty (no header row)")
    header = [h.strip() for h in header]
    column: dict[str, int] = {}
    repeated = set()
    for i, h in enumerate(header):
        if h in column:
            repeated.add(h)
        else:
            column[h] = i
    _missing_columns_error(path, mapping, header, "mapped column(s)")
    ambiguous = sorted({c for c, _ in mapping.required_columns()} & repeated)
    if ambiguous:
        raise ManifestError(f"{path}: column(s) {ambiguous} appear more than once in the header")

    width = len(header)
    rows = _RowReader(path, mapping)
    n = 0
    try:
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            n += 1
            if len(cells) > width and any(c.strip() for c in cells[width:]):
                raise ManifestError(f"{path}: row {n} (ending on line {reader.line_num}) has {len(cells)} fields but "
                                    f"the header has {width}; the row does not parse.{_CSV_ESCAPE_HINT}")

            def get(col: str, _cells=cells):
                i = column.get(col)
                return _cells[i] if i is not None and i < len(_cells) else ""

            yield rows.post(get, n)
    except csv.Error as e:
        raise ManifestError(f"{path}: row {n + 1} (line {reader.line_num}): cannot parse CSV ({e})."
                            f"{_CSV_ESCAPE_HINT}") from None
    rows.report_repairs()


# ---------------------------------------------------------------------------------------------------- JSONL


def iter_json_objects(path: str, encoding: str = "utf-8") -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSON Lines file, read one line at a time after the
    file's text is checked; text in another encoding, or a line that is not a JSON object, raises
    :class:`ManifestError` naming the line."""
    _check_text(path, encoding)
    yield from _json_objects(path, encoding)


def _json_objects(path: str, encoding: str) -> Iterator[tuple[int, dict]]:
    for lineno, line in enumerate(_text_lines(path, encoding, newline="\n"), start=1):
        line = line[:-1] if line.endswith("\n") else line
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
        yield lineno, obj


def _jsonl_posts(path: str, mapping: ColumnMapping) -> Iterator[Post]:
    keys: dict[str, None] = {}   # a first pass checks every line and collects the keys, keeping nothing else
    lines = 0
    for lines, (_, obj) in enumerate(iter_json_objects(path, mapping.encoding), start=1):
        keys.update(dict.fromkeys(obj))
    if lines:
        _missing_columns_error(path, mapping, keys, "mapped key(s) (absent from every line)")
    rows = _RowReader(path, mapping)
    for lineno, obj in _json_objects(path, mapping.encoding):
        yield rows.post(obj.get, lineno)
    rows.report_repairs()


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




def _parquet_posts(path: str, mapping: ColumnMapping) -> Iterator[Post]:
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
    for name in names:
        by_name.setdefault(name.strip(), []).append(name)
    _missing_columns_error(path, mapping, list(by_name), "mapped column(s)")
    needed = list(dict.fromkeys(c for c, _ in mapping.required_columns()))
    ambiguous = sorted(c for c in needed if len(by_name[c]) > 1)
    if ambiguous:
        raise ManifestError(f"{path}: column(s) {ambiguous} appear more than once in the table")
    list_cols = {mapping.image} | {c for c, _ in mapping.label_columns()}     # a list cell stays a list

    rows = _RowReader(path, mapping)
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=[by_name[c][0] for c in needed]):
            values = {c: batch.column(i).to_pylist() for i, c in enumerate(needed)}
            for j in range(batch.num_rows):
                row += 1

                def get(col: str, _j=j, _row=row):
                    v = values[col][_j]
                    if col in list_cols and isinstance(v, (list, tuple)):
                        return [_parquet_cell(x, path, _row, col) for x in v]
                    return _parquet_cell(v, path, _row, col)

                yield rows.post(get, row)
    except ManifestError:
        raise
    except OSError as e:
        raise ManifestError(f"{path}: cannot read file ({e})") from None
    except Exception as e:  # a damaged row group, an unsupported type
        raise ManifestError(f"{path}: cannot read Parquet data after row {row} ({type(e).__name__}: {e})") from None
    rows.report_repairs()
