"""Several tasks in one model: one head and one CE part each, a post missing a label kept, a multi-label task,
metrics, log, report and predictions per task."""
from __future__ import annotations

import csv
import json

import pytest

import mmpost
from mmpost.apps.train import train
from mmpost.config import load_config
from mmpost.data.post import Post
from tests.conftest import tiny_overrides, write_toy_csv

WARM = {"red": "warm", "blue": "cool", "green": "cool"}
TAGS = {"red": "bright|hot", "blue": "calm", "green": "calm|fresh"}


def _three_task_csv(tmp_path) -> str:
    path = write_toy_csv(tmp_path, n=60)
    rows = list(csv.DictReader(open(path)))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*rows[0], "warmth", "tags"])
        w.writeheader()
        for i, r in enumerate(rows):
            w.writerow({**r, "warmth": "" if i % 10 == 3 else WARM[r["mood"]], "tags": TAGS[r["mood"]]})
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multitask")
    over = tiny_overrides(tmp, _three_task_csv(tmp)) + [
        "tasks=[mood,warmth,tags]", "data.columns.labels.warmth=warmth", "data.columns.labels.tags=tags",
        "data.columns.label_sep.tags='|'", "objectives.ce.task_weights.tags=0.5", "objectives.itc.enabled=true",
        "train.epochs=3", "name=mt"]
    return train(load_config(None, over))


def test_every_task_is_trained_scored_and_logged(run):
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert set(metrics["test"]) == {"mood", "warmth", "tags"}
    assert {"micro_f1", "macro_f1"} <= set(metrics["test"]["tags"])
    for row in csv.DictReader(open(run.run_dir / "log.csv")):
        parts = {k: float(v) for k, v in row.items()}
        expected = (parts["train_ce_mood"] + parts["train_ce_warmth"] + 0.5 * parts["train_ce_tags"]
                    + parts["train_itc"])
        assert parts["train_loss"] == pytest.approx(expected, abs=1e-6)
    report = (run.run_dir / "report.md").read_text()
    assert all(f"## Task `{t}`" in report for t in ("mood", "warmth", "tags"))
    labels = json.loads((run.run_dir / "labels.json").read_text())["tasks"]
    assert labels["tags"] == {"labels": ["bright", "calm", "fresh", "hot"], "multi_label": True}


def test_a_post_missing_one_label_is_kept_and_predictions_carry_every_task(run):
    kept = sum(1 for line in open(run.run_dir / "predictions_test.jsonl"))
    assert kept == run.metrics["test"]["mood"]["n"]           # every test post, with or without a warmth label
    record = json.loads(next(iter(open(run.run_dir / "predictions_test.jsonl"))))
    assert set(record["tasks"]) == {"mood", "warmth", "tags"} and isinstance(record["tasks"]["tags"]["label"], list)
    out = mmpost.load(run.run_dir).predict([Post(id="x", text="a post about thing 1", images=[])])
    assert set(out[0]["tasks"]) == {"mood", "warmth", "tags"}
