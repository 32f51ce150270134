"""The reliability matrix, text, labels and paths: each case gets a clear error naming file, row and field, or a
documented, counted skip (``data.policy=skip``) or image mask (``data.policy=text-only``).

| case                                  | behaviour                                                            |
|---------------------------------------|----------------------------------------------------------------------|
| non-UTF-8 manifest (CSV, JSONL)       | ManifestError: file, line, column, byte, and an encoding hint         |
| empty text                            | ``empty_text`` issue (file:row, field ``text``)                      |
| 1 MB of text                          | ``long_text`` issue (not a CSV parse error); the next row still reads |
| unknown label                         | ``unknown_label`` issue (field ``labels.<task>``)                    |
| duplicate ids                         | ``duplicate_id`` issue naming where the id was first used            |
| missing columns                       | ManifestError naming the column, its role and a close match          |
| ``../`` traversal / absolute outside   | ``unsafe_image_path`` issue; the file is never opened                 |
| broken surrogate in JSON              | replaced by U+FFFD, counted in a warning                             |
| JSON nested too deeply                | ManifestError naming the line                                        |
"""
from __future__ import annotations

import json
import logging
import os

import pytest
from PIL import Image
from typer.testing import CliRunner

import mmpost.data.validate as validate_module
from mmpost.apps.train import train
from mmpost.cli import app
from mmpost.config import load_config
from mmpost.data.dataset import label_ids
from mmpost.data.manifest import REFUSED_IMAGES, ColumnMapping, ManifestError, load_manifest
from mmpost.data.validate import MAX_TEXT_CHARS, DataValidationError, apply_policy, validate_posts
from tests.conftest import tiny_overrides, write_toy_csv

TASKS = {"mood": ["red", "blue", "green"]}
MB_TEXT = "word " * (1 << 18)          # 1.3 million characters


def test_non_utf8_manifest_names_file_line_column_and_suggests_an_encoding(tmp_path):
    csv_path = tmp_path / "posts.csv"
    csv_path.write_bytes("id,text\n1,fine\n2,caf\u00e9 cr\u00e8me\n".encode("cp1252"))
    with pytest.raises(ManifestError) as err:
        load_manifest(csv_path)
    msg = str(err.value)
    assert str(csv_path) in msg and "line 3" in msg and "column 6" in msg and "byte e9" in msg and "cp1252" in msg
    posts = load_manifest(csv_path, ColumnMapping(encoding="cp1252"))       # the hint works
    assert posts[1].text == "caf\u00e9 cr\u00e8me"
    jsonl = tmp_path / "posts.jsonl"
    jsonl.write_bytes(b'{"id": "1", "text": "ok"}\n{"id": "2", "text": "\xff\xfe"}\n')
    with pytest.raises(ManifestError, match=r"posts\.jsonl.*line 2"):
        load_manifest(jsonl)


def test_missing_columns_name_the_column_its_role_and_a_close_match(tmp_path):
    csv_path = tmp_path / "posts.csv"
    csv_path.write_text("post_id,txt,picture\n1,a,x.jpg\n")
    with pytest.raises(ManifestError) as err:
        load_manifest(csv_path, ColumnMapping(id="post_id", text="text", image="pic", labels={"mood": "mood"}))
    msg = str(err.value)
    assert str(csv_path) in msg
    assert "'text' (mapped as text) - did you mean 'txt'?" in msg
    assert "'mood' (mapped as labels['mood'])" in msg and "Columns in the file: 'post_id', 'txt', 'picture'" in msg


def _bad_text_and_label_rows(tmp_path) -> str:
    extra = [
        "e1,,p1.png,red",                       # row 61: empty text
        f"e2,{MB_TEXT},p2.png,blue",            # row 62: 1 MB of text
        "e3,a post,p3.png,purple",              # row 63: unknown label
        "p4,a second p4,p4.png,green",          # row 64: duplicate id (p4 is row 5)
        "e5,the row after the long one,p5.png,red",   # row 65: fine
    ]
    return write_toy_csv(tmp_path, extra_rows=extra)


def test_text_and_label_problems_are_reported_by_file_row_and_field(tmp_path):
    csv_path = _bad_text_and_label_rows(tmp_path)
    m = ColumnMapping(id="post_id", text="body", image="picture", image_root=str(tmp_path / "imgs"),
                      labels={"mood": "mood"})
    posts = load_manifest(csv_path, m)               # 1 MB cell: imported, not a CSV parse error
    assert len(posts) == 65 and posts[-1].text == "the row after the long one"
    report = validate_posts(posts, TASKS)
    got = {(i.kind, i.row, i.field) for i in report.issues}
    assert got == {("empty_text", 61, "text"), ("long_text", 62, "text"), ("unknown_label", 63, "labels.mood"),
                   ("duplicate_id", 64, "id")}
    text = report.format()
    assert f"{csv_path}:62" in text and f"limit {MAX_TEXT_CHARS:,}" in text
    assert f"{len(posts[61].text):,} characters" in text and len(posts[61].text) > 1_000_000
    assert f"first used at {csv_path}:5" in text and "'purple' is not one of" in text
    kept, counts = apply_policy(posts, report, "skip")
    assert counts == {"kept": 61, "image_masked": 0, "skipped": 4} and len(kept) == 61
    _, counts = apply_policy(posts, report, "text-only")          # text problems are not image problems
    assert counts["skipped"] == 4 and counts["image_masked"] == 0


def test_bad_rows_stop_training_with_one_report_or_are_skipped_and_counted(tmp_path):
    csv_path = _bad_text_and_label_rows(tmp_path)
    over = tiny_overrides(tmp_path, csv_path) + ["train.epochs=1", "data.labels=[red,blue,green]"]
    with pytest.raises(DataValidationError) as err:
        train(load_config(None, over + ["name=stop"]))
    assert {"empty_text", "long_text", "unknown_label", "duplicate_id"} <= set(err.value.report.counts())
    result = train(load_config(None, over + ["name=skip", "data.policy=skip"]))
    assert "skipped 4" in (result.run_dir / "report.md").read_text()
    res = CliRunner().invoke(app, ["validate", str(_recipe(tmp_path)), *over])
    assert res.exit_code == 3
    for needle in ("posts.csv:61", "empty_text", "posts.csv:62", "long_text", "posts.csv:63", "labels.mood",
                   "posts.csv:64", "duplicate_id"):
        assert needle in res.output


def _recipe(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("train:\n  epochs: 1\n")
    return recipe


def test_jsonl_long_text_and_deep_nesting(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps({"id": "a", "text": MB_TEXT}) + "\n" + json.dumps({"id": "b", "text": "x"}) + "\n")
    report = validate_posts(load_manifest(path), None)
    assert [(i.kind, i.row) for i in report.issues] == [("long_text", 1)]
    path.write_text('{"id": "a", "text": "x"}\n{"id": "b", "text": ' + "[" * 5000 + "]" * 5000 + "}\n")
    with pytest.raises(ManifestError, match=r"posts\.jsonl: line 2: JSON nested too deeply"):
        load_manifest(path)


def test_broken_surrogates_in_json_become_replacement_characters_and_are_counted(tmp_path, caplog):
    path = tmp_path / "posts.jsonl"
    path.write_text('{"id": "1", "text": "cut emoji \\ud83d"}\n{"id": "2", "text": "whole emoji \\ud83d\\ude00"}\n')
    with caplog.at_level(logging.WARNING, logger="mmpost.data.manifest"):
        posts = load_manifest(path)
    assert posts[0].text == "cut emoji \ufffd" and posts[1].text == "whole emoji \U0001F600"
    assert "1 cells held unpaired UTF-16 surrogates" in caplog.text and "row 1, field 'text'" in caplog.text
    posts[0].text.encode("utf-8")   # usable by every tokenizer and the feature cache


def test_unknown_label_that_skips_validation_still_names_file_and_row(tmp_path):
    csv_path = tmp_path / "posts.csv"
    csv_path.write_text("id,text,mood\n1,a,red\n2,b,purple\n")
    posts = load_manifest(csv_path, ColumnMapping(labels={"mood": "mood"}))
    with pytest.raises(ValueError, match=rf"{csv_path}:2: post 2: field labels.mood: label 'purple'"):
        label_ids(posts, "mood", ["red", "blue"])


# ------------------------------------------------------------------------------------------------------ paths


@pytest.fixture
def outside_image(tmp_path):
    """A real image outside the image root, and a manifest pointing at it with '../' and by absolute path."""
    root = tmp_path / "data" / "imgs"
    root.mkdir(parents=True)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / "inside.png")
    secret = tmp_path / "private" / "secret.png"
    secret.parent.mkdir()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(secret)
    csv_path = tmp_path / "data" / "posts.csv"
    csv_path.write_text("id,text,image,mood\n"
                        "1,fine,inside.png,red\n"
                        "2,dot dot,../../private/secret.png,red\n"
                        f"3,absolute,{secret},blue\n"
                        f"4,absolute inside,{root / 'inside.png'},blue\n"
                        "5,sneaky,sub/../../imgs/inside.png,green\n"
                        "6,two images,inside.png;../../private/secret.png,green\n")
    mapping = ColumnMapping(image="image", image_root=str(root), image_sep=";", labels={"mood": "mood"})
    return csv_path, mapping, root, secret


def test_paths_outside_the_image_root_are_refused_and_never_opened(outside_image, monkeypatch):
    csv_path, mapping, root, secret = outside_image
    posts = load_manifest(csv_path, mapping)
    assert all(str(secret) not in p.images and not any(".." in x for x in p.images) for p in posts[:4])
    assert posts[3].images == [str(root / "inside.png")]                 # absolute but inside: fine
    assert posts[4].images == [str(root / "inside.png")]                 # a '..' that stays inside: normalised
    assert posts[5].images == [str(root / "inside.png")]
    assert [r["name"] for r in posts[1].meta[REFUSED_IMAGES]] == ["../../private/secret.png"]

    opened: list[str] = []
    real = validate_module.check_image
    monkeypatch.setattr(validate_module, "check_image", lambda p, **kw: opened.append(p) or real(p, **kw))
    report = validate_posts(posts, TASKS)
    assert {(i.kind, i.row, i.field) for i in report.issues} == {  # rows 1, 4, 5 are fine
        ("unsafe_image_path", 2, "images"), ("unsafe_image_path", 3, "images"), ("unsafe_image_path", 6, "images")}
    assert str(secret) not in opened and not any("private" in p for p in opened)
    assert "points outside the image root" in report.format() and f"{csv_path}:2" in report.format()

    with pytest.raises(DataValidationError):
        apply_policy(posts, report, "stop")
    _, counts = apply_policy(posts, report, "skip")
    assert counts == {"kept": 3, "image_masked": 0, "skipped": 3}
    masked, counts = apply_policy(posts, report, "text-only")
    assert counts == {"kept": 3, "image_masked": 3, "skipped": 0}
    assert [p.images for p in masked if p.meta.get("image_masked")] == [[], [], []]


def test_without_an_image_root_the_manifest_folder_is_used_and_nothing_is_confined(tmp_path):
    """Only an explicit image root is a boundary: a user's own manifest may name files anywhere."""
    csv_path = tmp_path / "posts.csv"
    csv_path.write_text("id,text,image\n1,a,../elsewhere/x.png\n")
    (post,) = load_manifest(csv_path, ColumnMapping(image="image"))
    assert post.images == [os.path.join(str(tmp_path), "../elsewhere/x.png")] and REFUSED_IMAGES not in post.meta
