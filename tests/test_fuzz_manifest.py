"""Fuzz the manifest importer: whatever bytes, columns, quoting and mapping it is given, it either imports posts or
raises ManifestError (which names the file) — never any other exception.

Bounded for CI: a fixed seed (``derandomize``), at most 200 examples per property and a per-example deadline.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmpost.data.manifest import ColumnMapping, ManifestError, load_manifest
from mmpost.data.post import Post

FUZZ = settings(max_examples=200, deadline=timedelta(seconds=2), derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

COLUMNS = ["id", "text", "image", "label", "split", "ocr", " id ", "Text", "a,b", 'q"uote', ""]
# cell text that stresses quoting: delimiters, quotes, escapes, line ends, NUL, non-ASCII, brackets (JSON lists)
CELL = st.lists(st.sampled_from(list('ab ,;\t|"\'\\\r\n\x00[]{}:é😀/.') + ["../", "{}", "ab\u0301", "/etc"]),
                max_size=12).map("".join)


def _mapping(draw) -> ColumnMapping:
    """Mostly mappings that fit the generated columns (so rows get parsed), sometimes ones that do not."""
    labels = draw(st.sampled_from([{}, {"y": "label"}, {"y": "label"}, {"y": "missing"}]))
    return ColumnMapping(
        id=draw(st.sampled_from(["id", "id", None, "missing"])),
        text=draw(st.sampled_from(["text", "text", "text", ["text", "ocr"], "missing"])),
        image=draw(st.sampled_from([None, "image"])),
        image_root=draw(st.sampled_from([None, "imgs", "/nonexistent/root"])),
        image_pattern=draw(st.sampled_from([None, "{}.jpg", "T{}"])),
        image_sep=draw(st.sampled_from([None, ";", "|"])),
        labels=labels,
        label_values=draw(st.sampled_from([{}, {"y": {"0": "no", "1": "yes"}}])) if labels else {},
        split=draw(st.sampled_from([None, "split"])),
        keep=draw(st.sampled_from([[], ["ocr"]])),
        encoding=draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1", "utf-16"])),
        csv_options=draw(st.fixed_dictionaries({}, optional={
            "delimiter": st.sampled_from([",", ";", "\t", "|", " ", '"', "ab", ""]),
            "quotechar": st.sampled_from(['"', "'", "|", ""]),
            "escapechar": st.sampled_from([None, "\\", '"']),
            "doublequote": st.booleans(),
            "skipinitialspace": st.booleans(),
            "strict": st.booleans(),
            "quoting": st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE, csv.QUOTE_NONNUMERIC, 7]),
        })),
    )


@st.composite
def csv_cases(draw) -> tuple[bytes, ColumnMapping]:
    mapping = _mapping(draw)
    header = draw(st.lists(st.sampled_from(COLUMNS), min_size=0, max_size=7))
    rows = draw(st.lists(st.lists(CELL, max_size=9), max_size=8))
    buf = io.StringIO()
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, None]))
    if quoting is None:  # hand-joined: unbalanced quotes and ragged rows as they come
        buf.write("\n".join(",".join(r) for r in [header, *rows]))
    else:
        w = csv.writer(buf, quoting=quoting)
        w.writerow(header)
        w.writerows(rows)
    text = buf.getvalue()
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.booleans()):  # flip some bytes
        flips = draw(st.lists(st.tuples(st.integers(0, max(len(data) - 1, 0)), st.integers(0, 255)), max_size=4))
        arr = bytearray(data)
        for pos, value in flips:
            if arr:
                arr[pos] = value
        data = bytes(arr)
    return data, mapping


@st.composite
def jsonl_cases(draw) -> tuple[bytes, ColumnMapping]:
    mapping = _mapping(draw)
    value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | CELL,
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(CELL, inner, max_size=3),
                         max_leaves=6)
    post = st.fixed_dictionaries({}, optional={c: value for c in ["id", "text", "image", "label", "split", "ocr"]})
    post = st.one_of(post, st.dictionaries(st.sampled_from(COLUMNS), value, max_size=6))
    odd = st.sampled_from(['{"id": "\\ud83d\\ude00 \\ud800x", "text": "broken \\udfff emoji", "label": "\\ud800"}',
                           '{"id": "d", "text": "t", "image": "[' + "[" * 3000 + "]" * 3000 + ']"}',
                           "[" * 3000 + "]" * 3000, "[1, 2]", "{", "null", "", '{"id": 1e999, "text": NaN}'])
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 3)):
            lines.append(json.dumps(draw(post), ensure_ascii=draw(st.booleans())))
        else:
            lines.append(draw(odd))
    return "\n".join(lines).encode("utf-8"), mapping


def _import(data: bytes, mapping: ColumnMapping, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"posts{suffix}")
        with open(path, "wb") as f:
            f.write(data)
        try:
            posts = load_manifest(path, mapping)
        except ManifestError as e:
            assert path in str(e)          # the error names the file
            return
    for p in posts:                        # a clean import: every post is usable text
        assert isinstance(p, Post) and p.id and isinstance(p.text, str)
        json.dumps(p.to_dict(), ensure_ascii=False).encode("utf-8")   # no lone surrogates, nothing unserialisable
        assert all(isinstance(x, str) for x in p.images)
        assert isinstance(p.meta["row"], int)


@FUZZ
@given(csv_cases(), st.sampled_from([".csv", ".tsv"]))
def test_csv_import_never_fails_unhandled(case, suffix):
    _import(*case, suffix)


@FUZZ
@given(jsonl_cases())
def test_jsonl_import_never_fails_unhandled(case):
    _import(*case, ".jsonl")


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".csv", ".jsonl", ".parquet"]))
def test_random_bytes_never_fail_unhandled(data, suffix):
    _import(data, ColumnMapping(), suffix)
