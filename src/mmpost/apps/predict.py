"""Predict class probabilities for a manifest of posts, streaming: the cost per post stays flat.

- The manifest is read one post at a time (:func:`iter_manifest`) and predicted a chunk at a time; no list of all
  posts is ever held.
- Each chunk's lines are appended to ``OUT.part`` and flushed and fsynced at the chunk's end; when every post is
  done the part file is renamed onto ``OUT`` in one step, so ``OUT`` is always either absent or complete.
- A re-run after a crash (or Ctrl-C) finds the part file, truncates a half-written last line, checks by post id
  that its lines are the manifest's first posts, and predicts only the rest. ``OUT.part.json`` records the run
  and the data the part file belongs to, so a part file is never continued with another model.
- Frozen towers' features of a chunk go to a throwaway folder that is removed after the chunk (``cache=True``:
  the run's feature cache, which then grows by every new post), so neither memory nor disk grows with the data.
"""
from __future__ import annotations

import csv
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from mmpost.apps.predictor import Predictor
from mmpost.apps.prepare import column_mapping
from mmpost.atomic import atomic_write_json
from mmpost.config import ColumnsConfig, load_config, resolve
from mmpost.data.manifest import (
    _CSV_FIELD_LIMIT,
    _PARQUET_BATCH_ROWS,
    ColumnMapping,
    ManifestError,
    _csv_kwargs,
    _detect_format,
    _missing_columns_error,
    _parquet_cell,
    _read_text,
    _RowReader,
)
from mmpost.data.post import Post
from mmpost.progress import bar as progress_bar

CSV_HINT = (" If text fields escape quotes with a backslash, pass "
            "csv_options={'escapechar': '\\\\', 'doublequote': False}.")


# ------------------------------------------------------------------------------------ reading, one post at a time
# The same posts, in the same order and with the same errors, as ``mmpost.data.manifest.load_manifest`` (whose row
# reader and checks these use), without holding the file or the posts in memory.


def iter_manifest(path: str, mapping: ColumnMapping) -> Iterator[Post]:
    """The posts of a CSV / TSV / JSONL / Parquet manifest, one at a time."""
    fmt = _detect_format(path, mapping)
    reader = {"csv": _csv_posts, "jsonl": _jsonl_posts, "parquet": _parquet_posts}[fmt]
    return reader(path, mapping)


def _lines(path: str, encoding: str) -> Iterator[str]:
    """The file's lines (newlines kept, a leading byte-order mark dropped). A decoding error is re-raised with the
    byte, line and column that :func:`~mmpost.data.manifest._read_text` names (it reads the file only then)."""
    try:
        with open(path, encoding=encoding, newline="") as f:
            first = True
            for line in f:
                yield line[1:] if first and line.startswith("\ufeff") else line
                first = False
    except (OSError, UnicodeDecodeError, LookupError):
        _read_text(path, encoding)      # raises the ManifestError that names the problem
        raise


def _csv_posts(path: str, mapping: ColumnMapping) -> Iterator[Post]:
    kwargs = _csv_kwargs(path, mapping.csv_options)
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        reader = csv.reader(_lines(path, mapping.encoding), **kwargs)
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
                                    f"the header has {width}; the row does not parse.{CSV_HINT}")

            def get(col: str, _cells=cells):
                i = column.get(col)
                return _cells[i] if i is not None and i < len(_cells) else ""

            yield rows.post(get, n)
    except csv.Error as e:
        raise ManifestError(f"{path}: row {n + 1} (line {reader.line_num}): cannot parse CSV ({e})."
                            f"{CSV_HINT}") from None
    rows.report_repairs()


def _json_objects(path: str, encoding: str) -> Iterator[tuple[int, dict]]:
    for lineno, line in enumerate(_lines(path, encoding), start=1):
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
    keys: dict[str, None] = {}           # a first pass collects the keys: a mapped key absent everywhere is an error
    for _, obj in _json_objects(path, mapping.encoding):
        keys.update(dict.fromkeys(obj))
    if keys:
        _missing_columns_error(path, mapping, keys, "mapped key(s) (absent from every line)")
    rows = _RowReader(path, mapping)
    for lineno, obj in _json_objects(path, mapping.encoding):
        yield rows.post(obj.get, lineno)
    rows.report_repairs()


def _parquet_posts(path: str, mapping: ColumnMapping) -> Iterator[Post]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ManifestError(f"{path}: reading Parquet files needs the pyarrow package: pip install pyarrow") from None
    if not os.path.isfile(path):
        raise ManifestError(f"{path}: " + ("is a folder, not a manifest file" if os.path.isdir(path)
                                           else "file not found"))
    try:
        pf = pq.ParquetFile(path)
        names = list(pf.schema_arrow.names)
    except OSError as e:
        raise ManifestError(f"{path}: cannot read file ({e})") from None
    except Exception as e:  # pyarrow.ArrowInvalid and friends: not a Parquet file, or a damaged one
        raise ManifestError(f"{path}: not a readable Parquet file ({e})") from None
    by_name: dict[str, list[str]] = {}
    for name in names:
        by_name.setdefault(name.strip(), []).append(name)
    _missing_columns_error(path, mapping, list(by_name), "mapped column(s)")
    needed = list(dict.fromkeys(c for c, _ in mapping.required_columns()))
    ambiguous = sorted(c for c in needed if len(by_name[c]) > 1)
    if ambiguous:
        raise ManifestError(f"{path}: column(s) {ambiguous} appear more than once in the table")
    rows = _RowReader(path, mapping)
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=[by_name[c][0] for c in needed]):
            values = {c: batch.column(i).to_pylist() for i, c in enumerate(needed)}
            for j in range(batch.num_rows):
                row += 1

                def get(col: str, _j=j, _row=row):
                    v = values[col][_j]
                    if col == mapping.image and isinstance(v, (list, tuple)):
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


def chunks(posts: Iterator[Post], size: int) -> Iterator[list[Post]]:
    part: list[Post] = []
    for post in posts:
        part.append(post)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


# ---------------------------------------------------------------------------------------- the part file, resumed


def _finished_lines(part: Path) -> Iterator[dict[str, Any]]:
    """The complete lines of a part file left by an interrupted run, after cutting off a half-written last line."""
    with open(part, "rb+") as f:
        data_end = keep = f.seek(0, os.SEEK_END)
        while keep > 0:          # back to just after the last newline, a block at a time
            start = max(0, keep - 65536)
            f.seek(start)
            cut = f.read(keep - start).rfind(b"\n")
            keep = start + cut + 1 if cut >= 0 else start
            if cut >= 0:
                break
        if keep != data_end:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    with open(part, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                yield json.loads(line)
            except ValueError:
                raise ValueError(f"{part}: line {lineno} is not a prediction; delete the file to start again") from None


def _check_owner(meta_path: Path, part: Path, owner: dict[str, Any]) -> None:
    if not meta_path.exists():
        raise ValueError(f"{part} exists but {meta_path.name} (which run and data it belongs to) does not; "
                         "delete it to start again")
    had = json.loads(meta_path.read_text(encoding="utf-8"))
    if had != owner:
        diff = ", ".join(f"{k}: {had.get(k)!r} (now {v!r})" for k, v in owner.items() if had.get(k) != v)
        raise ValueError(f"{part} was started by another prediction ({diff}); delete it, or finish that one first")


def _skip_finished(posts: Iterator[Post], part: Path, counts: dict[str, int]) -> None:
    """Advance ``posts`` past the posts whose lines ``part`` holds, checking their ids in order."""
    for k, line in enumerate(_finished_lines(part), start=1):
        post = next(posts, None)
        if post is None:
            raise ValueError(f"{part} holds more predictions than the data has posts (line {k}); "
                             "delete it to start again")
        if str(line.get("id")) != post.id:
            where = f"{post.meta.get('source', 'the data')}:{post.meta.get('row', k)}"
            raise ValueError(f"{part}: line {k} is post {line.get('id')!r} but {where} is post {post.id!r}: the "
                             "data changed since the interrupted run; delete the part file to start again")
        counts["posts"] += 1
        counts["resumed"] += 1
        counts["without_image"] += int(not line.get("image_used", True))


# ------------------------------------------------------------------------------------------------------ predict


def predict_file(run_dir: str | Path, data: str, out: str | Path, *, overrides: list[str] | None = None,
                 chunk: int = 1024, batch_size: int = 128, cache: bool = False,
                 progress: bool = True) -> dict[str, int]:
    """Read ``data`` with the run's column mapping (label columns are not needed), predict every post and write
    one JSON object per line: ``{"id", "label", "probs": {label: p}, "image_used"}``, in the data's order.

    Returns counts: ``posts`` (all), ``without_image``, ``resumed`` (lines kept from an interrupted run)."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 post, got {chunk}")
    run_dir, out = Path(run_dir), Path(out)
    predictor = Predictor(run_dir)
    manifest, mapping = _manifest(run_dir, data, overrides)
    part, owner_file = out.with_name(out.name + ".part"), out.with_name(out.name + ".part.json")
    owner = {"run": str(run_dir.resolve()), "data": str(Path(manifest).resolve()), "labels": predictor.labels,
             "overrides": list(overrides or [])}
    stream = iter_manifest(manifest, mapping)
    first = next(stream, None)            # a file that cannot be read fails here, before anything is written
    posts = itertools.chain([first] if first is not None else [], stream)
    counts = {"posts": 0, "without_image": 0, "resumed": 0}
    if part.exists() and part.stat().st_size == 0:
        part.unlink()                     # nothing was finished: start afresh, whoever started it
    if part.exists():
        _check_owner(owner_file, part, owner)
        _skip_finished(posts, part, counts)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(owner_file, owner)       # before the part file: a part file always has its owner
    bar = progress_bar(enabled=progress, desc="predict", unit="post", initial=counts["posts"])
    with open(part, "a", encoding="utf-8") as f:
        for posts_of_chunk in chunks(posts, chunk):
            probs, has_image = _predict_chunk(predictor, posts_of_chunk, batch_size=batch_size, cache=cache)
            for post, row, used in zip(posts_of_chunk, probs, has_image):
                counts["without_image"] += int(not used)
                f.write(json.dumps({"id": post.id, "label": predictor.labels[int(row.argmax())],
                                    "probs": {k: round(float(v), 6) for k, v in zip(predictor.labels, row)},
                                    "image_used": bool(used)}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())          # a crash loses at most the chunk in progress
            counts["posts"] += len(posts_of_chunk)
            bar.update(len(posts_of_chunk))
    bar.close()
    os.replace(part, out)
    owner_file.unlink(missing_ok=True)
    return counts


def _manifest(run_dir: Path, data: str, overrides: list[str] | None) -> tuple[str, ColumnMapping]:
    """The data file, and the run's column mapping for it (without labels or splits: not needed to predict)."""
    cfg = load_config(run_dir / "config.yaml", overrides)
    p = Path(data).expanduser()
    columns: ColumnsConfig = replace(cfg.data.columns, labels={}, label_values={}, split=None)
    dcfg = replace(cfg.data, source="manifest", path=str(p.resolve()) if p.exists() else data, columns=columns)
    return str(resolve(dcfg, dcfg.path)), column_mapping(dcfg)


def _predict_chunk(predictor: Predictor, posts: list[Post], *, batch_size: int, cache: bool):
    if cache:
        return predictor.predict_with_mask(posts, batch_size=batch_size)
    with tempfile.TemporaryDirectory(prefix="mmpost-predict-") as scratch:
        return predictor.predict_with_mask(posts, batch_size=batch_size, cache_dir=scratch)
