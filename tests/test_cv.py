"""``mmpost cv``: grouped folds, out-of-fold predictions for every post, mean ± std, a paired comparison, resuming;
and ``mmpost label-issues`` on its folder."""
from __future__ import annotations

import csv
import json
from collections import Counter

import pytest
from omegaconf import OmegaConf
from typer.testing import CliRunner

from mmpost.apps.cv import cross_validate
from mmpost.cli import app
from tests.conftest import tiny_overrides, write_toy_csv


def _recipe(path, overrides: list[str]):
    OmegaConf.save(OmegaConf.from_dotlist(overrides), path)
    return path


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cv")
    csv_path = write_toy_csv(tmp, n=60)
    over = tiny_overrides(tmp, csv_path) + ["train.epochs=2", "data.group_by=[image,text]"]
    base = _recipe(tmp / "base.yaml", over)
    other = _recipe(tmp / "itc.yaml", over + ["objectives.itc.enabled=true"])
    result = cross_validate(base, folds=3, seeds=(0, 1), compare=other, out=tmp / "cv", progress=False)
    return result, tmp


def test_every_post_is_predicted_once_per_seed_out_of_fold(cv_run):
    result, _ = cv_run
    records = [json.loads(line) for line in (result.out_dir / "oof.jsonl").read_text().splitlines()]
    assert Counter((r["id"], r["seed"]) for r in records) == {(f"p{i}", s): 1 for i in range(60) for s in (0, 1)}
    with open(result.out_dir / "folds.csv", newline="") as f:
        fold_of = {row["id"]: int(row["fold"]) for row in csv.DictReader(f)}
    assert all(r["fold"] == fold_of[r["id"]] for r in records)
    assert all(set(r["probs"]) == set(r["probs_raw"]) == {"red", "blue", "green"} and "gold" in r for r in records)
    assert all(r["text"].startswith("a post about") and r["images"] for r in records)


def test_folds_are_grouped_by_near_duplicate_text(cv_run):
    result, _ = cv_run
    records = [json.loads(line) for line in (result.out_dir / "oof.jsonl").read_text().splitlines()]
    folds_of_text: dict[str, set[int]] = {}
    for r in records:
        folds_of_text.setdefault(r["text"], set()).add(r["fold"])
    assert len(folds_of_text) == 7 and all(len(f) == 1 for f in folds_of_text.values())


def test_summary_has_mean_std_baseline_calibration_and_paired_test(cv_run):
    result, _ = cv_run
    summary = json.loads((result.out_dir / "metrics.json").read_text())
    t = summary["tasks"]["mood"]
    assert summary["folds"] == 3 and summary["seeds"] == [0, 1]
    for key in ("weighted_f1", "ece", "ece_raw", "nll", "nll_raw"):
        assert len(t["metrics"][key]["folds"]) == 3 and t["metrics"][key]["std"] >= 0
    assert t["majority"]["weighted_f1"]["mean"] < 0.5
    c = t["compare"]["weighted_f1"]
    assert c["diff"] == pytest.approx(t["metrics"]["weighted_f1"]["mean"] - c["mean"])
    assert "calibration" in t
    report = (result.out_dir / "report.md").read_text()
    assert "paired t" in report and "ECE after calibration" in report
    assert (result.out_dir / "compare" / "oof.jsonl").exists()


def test_a_finished_cross_validation_is_read_back_not_retrained(cv_run):
    result, tmp = cv_run
    weights = result.out_dir / "runs" / "seed0" / "fold1" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    again = cross_validate(tmp / "base.yaml", folds=3, seeds=(0, 1), out=result.out_dir, progress=False)
    assert weights.stat().st_mtime_ns == before
    assert again.summary["tasks"]["mood"]["metrics"] == result.summary["tasks"]["mood"]["metrics"]
    with pytest.raises(ValueError, match="another cross-validation"):
        cross_validate(tmp / "base.yaml", folds=4, seeds=(0,), out=result.out_dir, progress=False)


def test_label_issues_on_a_cv_folder(cv_run):
    result, _ = cv_run
    out = CliRunner().invoke(app, ["label-issues", str(result.out_dir)])
    assert out.exit_code == 0, out.output
    folder = result.out_dir / "label_issues"
    with open(folder / "label_issues.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60 and [int(r["rank"]) for r in rows] == list(range(1, 61))
    assert "<html" in (folder / "label_issues.html").read_text().lower()
    assert isinstance(json.loads((folder / "label_studio.json").read_text()), list)
