"""What a run records so that its numbers can be trusted: its split (splits.csv, reused by data.splits_from), one
file per split (data.files), calibrated probabilities beside the raw ones, and an operating point honoured by
predict, evaluate and serve."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import mmpost
from mmpost.apps.evaluate import evaluate
from mmpost.apps.prepare import prepare
from mmpost.apps.train import train
from mmpost.cli import app
from mmpost.config import ConfigError, load_config
from mmpost.serve.app import create_app
from tests.conftest import tiny_overrides, write_toy_csv


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_splits_csv_round_trips_through_splits_from(tmp_path, toy_csv):
    first = train(load_config(None, tiny_overrides(tmp_path, toy_csv) + ["name=a", "train.epochs=1"]))
    rows = _rows(first.run_dir / "splits.csv")
    assert {r["split"] for r in rows} == {"train", "dev", "test"} and len(rows) == 60
    assert all(r["group"] for r in rows)
    # another seed would split differently; splits_from keeps the saved split post by post
    cfg = load_config(None, tiny_overrides(tmp_path, toy_csv) + ["data.split_seed=7",
                                                               f"data.splits_from={first.run_dir}"])
    again = prepare(cfg.data, cfg.tasks, progress=False)
    assert {p.id: s for s, ps in again.splits.items() for p in ps} == {r["id"]: r["split"] for r in rows}
    other = prepare(load_config(None, tiny_overrides(tmp_path, toy_csv) + ["data.split_seed=7"]).data, "mood",
                    progress=False)
    assert {p.id: s for s, ps in other.splits.items() for p in ps} != {r["id"]: r["split"] for r in rows}


def test_splits_from_other_data_is_refused(tmp_path, toy_csv):
    (tmp_path / "splits.csv").write_text("id,split,group\nzzz,train,post:zzz\n")
    cfg = load_config(None, tiny_overrides(tmp_path, toy_csv) + [f"data.splits_from={tmp_path / 'splits.csv'}"])
    with pytest.raises(ValueError, match="none of the 60 posts"):
        prepare(cfg.data, cfg.tasks, progress=False)


def test_one_file_per_split_loads(tmp_path):
    paths = {}
    for split, n in (("train", 30), ("dev", 12), ("test", 12)):
        rows = [f"{split}-{i},a post about thing {i % 7},,{('red', 'blue', 'green')[i % 3]}" for i in range(n)]
        paths[split] = tmp_path / f"{split}.csv"
        paths[split].write_text("post_id,body,picture,mood\n" + "\n".join(rows) + "\n")
    over = [o for o in tiny_overrides(tmp_path, str(paths["train"])) if not o.startswith("data.path")]
    over += [f"data.files.{s}={p}" for s, p in paths.items()]
    data = prepare(load_config(None, over).data, "mood", progress=False)
    assert {s: len(v) for s, v in data.splits.items()} == {"train": 30, "dev": 12, "test": 12}
    assert all(p.id.startswith("test-") for p in data.splits["test"])
    # without a dev file, dev comes out of the training file
    over_no_dev = [o for o in over if not o.startswith("data.files.dev")]
    data = prepare(load_config(None, over_no_dev).data, "mood", progress=False)
    assert len(data.splits["dev"]) > 0 and len(data.splits["train"]) + len(data.splits["dev"]) == 30
    assert any("no dev file" in n for n in data.notes)
    # a run trained from per-split files evaluates its own test split, and any other file as a whole
    run = train(load_config(None, over + ["name=files", "train.epochs=1"])).run_dir
    assert evaluate(run, progress=False)[0]["test"]["mood"]["n"] == 12
    assert evaluate(run, str(paths["dev"]), progress=False)[0]["all"]["mood"]["n"] == 12
    with pytest.raises(ConfigError, match="not both"):
        load_config(None, over + [f"data.path={paths['train']}"])
    with pytest.raises(ConfigError, match="unknown split"):
        load_config(None, over + [f"data.files.valid={paths['dev']}"])


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    """A trained run on a two-label task (red vs blue; green rows are skipped)."""
    tmp = tmp_path_factory.mktemp("binary")
    csv_path = write_toy_csv(tmp, n=90)
    over = tiny_overrides(tmp, csv_path) + ["name=bin", "data.labels=[red,blue]", "data.policy=skip",
                                           "train.epochs=2"]
    return train(load_config(None, over)).run_dir


def test_runs_write_calibrated_and_raw_probabilities(binary_run):
    cal = json.loads((binary_run / "calibration.json").read_text())
    assert set(cal["temperatures"]) == {"mood"} and cal["temperatures"]["mood"] > 0
    metrics = json.loads((binary_run / "metrics.json").read_text())
    for key in ("temperature", "ece_raw", "ece", "nll_raw", "nll"):
        assert key in metrics["test"]["mood"] and key in metrics["dev"]["mood"]
    assert metrics["dev"]["mood"]["nll"] <= metrics["dev"]["mood"]["nll_raw"] + 1e-9   # fitted on dev
    record = json.loads((binary_run / "predictions_test.jsonl").read_text().splitlines()[0])
    assert set(record["probs"]) == set(record["probs_raw"]) == {"red", "blue"}
    assert (binary_run / "predictions_dev.jsonl").exists()
    assert (binary_run / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert "Calibration" in (binary_run / "report.md").read_text()


def test_operating_point_is_honoured_by_predict_and_serve(binary_run, tmp_path):
    result = CliRunner().invoke(app, ["calibrate", str(binary_run), "--operating-point", "mood:recall=1.0",
                                      "--positive", "blue"])
    assert result.exit_code == 0, result.output
    op = json.loads((binary_run / "calibration.json").read_text())["thresholds"]["mood"]
    assert op["positive"] == "blue" and op["reached"] and op["dev_recall"] == 1.0
    predictor = mmpost.load(binary_run)
    posts = [mmpost.Post(id=f"q{i}", text=f"a post about thing {i}") for i in range(6)]
    records = predictor.predict(posts)
    for r in records:
        assert r["label"] == ("blue" if r["probs"]["blue"] >= op["threshold"] else "red")
    # a threshold above every probability: predict says red everywhere, whatever argmax says
    cal = json.loads((binary_run / "calibration.json").read_text())
    cal["thresholds"]["mood"]["threshold"] = 1.01
    (binary_run / "calibration.json").write_text(json.dumps(cal))
    strict = mmpost.load(binary_run)
    assert {r["label"] for r in strict.predict(posts)} == {"red"}
    with TestClient(create_app(strict)) as client:
        answer = client.post("/predict", json={"text": "a post about thing 3"}).json()
    assert answer["label"] == "red" and set(answer["probs_raw"]) == {"red", "blue"}
    assert answer["probs"] == pytest.approx(strict.predict([mmpost.Post(id="s", text="a post about thing 3")])[0]
                                            ["probs"], abs=1e-5)
    metrics, out = evaluate(binary_run, progress=False)             # evaluate decides by the threshold too
    m = metrics["test"]["mood"]
    assert {"ece", "ece_raw", "nll", "nll_raw", "temperature"} <= set(m)
    blue = json.loads((binary_run / "labels.json").read_text())["tasks"]["mood"]["labels"].index("blue")
    assert m["n"] > 0 and all(row[blue] == 0 for row in _confusion(out / "report.md"))
    assert "Calibration" in (out / "report.md").read_text()


def _confusion(report):
    """The rows of the first confusion table of a report.md (counts per predicted label)."""
    lines = report.read_text().split("Confusion matrix")[1].splitlines()
    rows = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| true")][:2]
    return [[int(c) for c in ln.strip("| ").split(" | ")[1:]] for ln in rows]


def test_serve_returns_calibrated_probabilities(binary_run):
    predictor = mmpost.load(binary_run)
    t = predictor.calibration.temperatures["mood"]
    with TestClient(create_app(predictor)) as client:
        answer = client.post("/predict", json={"text": "a post about thing 2"}).json()
    raw = np.array([answer["probs_raw"]["red"], answer["probs_raw"]["blue"]])
    expected = np.exp(np.log(raw) / t) / np.exp(np.log(raw) / t).sum()      # softmax(z / T) from softmax(z)
    assert [answer["probs"]["red"], answer["probs"]["blue"]] == pytest.approx(expected, abs=1e-4)


def test_operating_point_errors_are_clear(binary_run, toy_csv, tmp_path):
    bad = CliRunner().invoke(app, ["calibrate", str(binary_run), "--operating-point", "mood:f1=0.9"])
    assert bad.exit_code == 2 and "precision" in bad.output
    three = train(load_config(None, tiny_overrides(tmp_path, toy_csv) + ["name=three", "train.epochs=1"])).run_dir
    bad = CliRunner().invoke(app, ["calibrate", str(three), "--operating-point", "precision=0.9"])
    assert bad.exit_code == 2 and "binary task" in bad.output


def test_temperature_and_bias_are_saved_and_applied(tmp_path, toy_csv):
    run = train(load_config(None, tiny_overrides(tmp_path, toy_csv) + ["name=tb", "train.epochs=2",
                                                                     "calibration=temperature+bias"])).run_dir
    cal = json.loads((run / "calibration.json").read_text())
    t, bias = cal["temperatures"]["mood"], np.array(cal["biases"]["mood"])
    assert len(bias) == 3 and bias[0] == 0.0
    record = mmpost.load(run).predict([mmpost.Post(id="x", text="a post about thing 4")])[0]
    raw = np.array(list(record["probs_raw"].values()))
    z = np.log(raw) / t + bias                                  # log softmax(z) = z + c: the same softmax
    assert list(record["probs"].values()) == pytest.approx(list(np.exp(z) / np.exp(z).sum()), abs=1e-4)
    with pytest.raises(ConfigError, match="calibration must be one of"):
        load_config(None, ["calibration=platt"])


def test_every_run_writes_a_model_card(binary_run):
    from omegaconf import OmegaConf
    card = (binary_run / "README.md").read_text()
    head, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    meta = OmegaConf.create(head)
    assert meta.library_name == "mmpost"
    results = meta["model-index"][0].results[0]
    wf1 = json.loads((binary_run / "metrics.json").read_text())["test"]["mood"]["weighted_f1"]
    assert results.task.name == "mood" and results.metrics[0].value == pytest.approx(wf1, abs=1e-4)
    for section in ("## Training data", "## Tasks and labels", "## Evaluation", "## Calibration",
                    "## Intended use and limits", "## How it was made"):
        assert section in body
    assert f"{wf1:.3f}" in body and "majority class" in body and "`red`" in body and "config.yaml" in body
