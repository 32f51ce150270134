"""The real packaged encoders (MiniLM, EfficientNet-Lite0) on small real and synthetic data.

The memes test reads the data root (MMPOST_DATA_ROOT) and is skipped, saying so, when it is not set.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mmpost.apps.train import train
from mmpost.config import load_config

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def _memes_available() -> bool:
    root = os.environ.get("MMPOST_DATA_ROOT")
    return bool(root) and (Path(root) / "memes" / "sample_data.csv").exists()


@pytest.mark.skipif(not _memes_available(), reason="MMPOST_DATA_ROOT is not set or has no memes/ folder")
def test_memes_recipe_beats_majority_with_real_encoders(tmp_path):
    cfg = load_config(ROOT / "configs" / "memes.yaml",
                      ["data.limit=500", f"out_dir={tmp_path}", "name=memes", "progress=false"])
    result = train(cfg)
    test = result.metrics["test"]["sentiment"]
    assert test["n"] >= 40
    assert test["weighted_f1"] > result.baseline["weighted_f1"] + 0.05, (test, result.baseline)


@pytest.mark.skipif(not _memes_available(), reason="MMPOST_DATA_ROOT is not set or has no memes/ folder")
def test_memes_recipe_trains_its_three_tasks_in_one_model(tmp_path):
    cfg = load_config(ROOT / "configs" / "memes.yaml",
                      ["data.limit=500", "tasks=[sentiment,sarcasm,offensive]", f"out_dir={tmp_path}", "name=mt",
                       "progress=false", "train.epochs=2"])
    result = train(cfg)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert set(metrics["test"]) == {"sentiment", "sarcasm", "offensive"}
    assert all(metrics["test"][t]["n"] >= 40 for t in metrics["test"])


def test_synthetic_default_with_real_encoders(tmp_path):
    cfg = load_config(None, ["data.source=synthetic", "data.synthetic.n=400", "task=sarcasm",
                             "text_encoder.trainable=false", "objectives.itc.enabled=true",
                             "objectives.itm.enabled=true",
                             "train.epochs=30", "train.patience=10", f"out_dir={tmp_path}", "name=syn",
                             "progress=false"])
    result = train(cfg)
    assert result.metrics["test"]["sarcasm"]["weighted_f1"] > result.baseline["weighted_f1"] + 0.1


def _has(folder: str) -> bool:
    root = os.environ.get("MMPOST_DATA_ROOT")
    return bool(root) and (Path(root) / folder).is_dir()


@pytest.mark.skipif(not (_has("tir") and _has("memes")),
                    reason="MMPOST_DATA_ROOT is not set or lacks tir/ and memes/")
def test_grid_over_real_datasets_with_the_packaged_encoders(tmp_path):
    """TIR (no images: base only, said in the table) and the memes (images: every aux setting), small."""
    import yaml

    from mmpost.apps.grid import NO_PAIRS, run_grid
    from mmpost.config import load_grid
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({
        "out_dir": str(tmp_path / "grid"), "models": ["conc"], "aux": ["base", "itc+itm"], "seeds": [0],
        "overrides": ["train.epochs=3", "data.max_train=300"],
        "datasets": [{"name": "tir", "recipe": str(ROOT / "configs/datasets/tir.yaml"), "task": "image_adds",
                      "overrides": ["data.options.test=rm"]},
                     {"name": "memes", "recipe": str(ROOT / "configs/datasets/memes.yaml"), "task": "offensive"}]}))
    results = run_grid(load_grid(grid_file))
    by = {(r.dataset, r.aux): r for r in results}
    assert by[("tir", "base")].status == "done" and by[("tir", "base")].n == 677      # test_rm: 895 − 218
    assert by[("tir", "itc+itm")].status == "skipped" and by[("tir", "itc+itm")].note == NO_PAIRS
    assert by[("memes", "itc+itm")].status == "done" and by[("memes", "itc+itm")].images
    for r in (by[("tir", "base")], by[("memes", "base")], by[("memes", "itc+itm")]):
        assert r.weighted_f1 > r.majority_weighted_f1, r
    md = (tmp_path / "grid" / "results.md").read_text()
    assert "## tir · image_adds" in md and "## memes · offensive" in md and NO_PAIRS in md
    report = (Path(by[("tir", "base")].run_dir) / "report.md").read_text()
    assert "images: none available" in report and "218" in report
