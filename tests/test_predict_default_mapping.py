"""``mmpost predict RUN --data FILE`` on a file the run's mapping was not made for: an unmapped ``image`` column is
used, and a column that only looks like images is named in a warning instead of silently predicting text-only."""
from __future__ import annotations

import json
import logging

from mmpost.apps.predict import predict_file
from mmpost.apps.train import train
from mmpost.config import load_config
from tests.conftest import tiny_overrides


def test_an_unmapped_image_column_is_used_and_a_look_alike_is_warned_about(tmp_path, toy_csv, caplog):
    over = [o for o in tiny_overrides(tmp_path, toy_csv) if not o.startswith("data.columns.image")]
    run = train(load_config(None, over + ["name=textonly", "train.epochs=1"])).run_dir
    rows = [f"n{i},a post about thing {i},p{i}.png" for i in range(6)]
    with_image = tmp_path / "imgs" / "new.csv"                     # next to the images: names resolve there
    with_image.write_text("post_id,body,image\n" + "\n".join(rows) + "\n")
    caplog.set_level(logging.WARNING)
    counts = predict_file(run, str(with_image), tmp_path / "a.jsonl", progress=False)
    assert counts["without_image"] == 0
    assert all(json.loads(line)["image_used"] for line in (tmp_path / "a.jsonl").read_text().splitlines())
    assert "'image' column is read as the posts' images" in caplog.text
    look_alike = tmp_path / "imgs" / "other.csv"
    look_alike.write_text("post_id,body,photo_file\n" + "\n".join(rows) + "\n")
    caplog.clear()
    counts = predict_file(run, str(look_alike), tmp_path / "b.jsonl", progress=False)
    assert counts["without_image"] == 6
    assert "photo_file look like images but are not mapped" in caplog.text
    assert "data.columns.image=photo_file" in caplog.text


def test_a_file_with_the_usual_column_names_is_evaluated_and_predicted(tmp_path, toy_csv):
    from mmpost.apps.evaluate import evaluate
    run = train(load_config(None, tiny_overrides(tmp_path, toy_csv) + ["name=named", "train.epochs=1"])).run_dir
    colours = ["red", "blue", "green"]
    rows = [f"u{i},a post about thing {i},p{i}.png,{colours[i % 3]}" for i in range(9)]
    usual = tmp_path / "imgs" / "usual.csv"           # the run read post_id/body/picture; this file has the usual names
    usual.write_text("id,text,image,mood\n" + "\n".join(rows) + "\n")
    metrics, _ = evaluate(run, str(usual), progress=False)
    assert metrics["all"]["mood"]["n"] == 9
    counts = predict_file(run, str(usual), tmp_path / "u.jsonl", progress=False)
    lines = [json.loads(line) for line in (tmp_path / "u.jsonl").read_text().splitlines()]
    assert counts["without_image"] == 0 and [r["id"] for r in lines] == [f"u{i}" for i in range(9)]
