"""The real packaged encoders (MiniLM, EfficientNet-Lite0) on small real and synthetic data.

The memes test reads the data root (MMPOST_DATA_ROOT) and is skipped, saying so, when it is not set.
"""
from __future__ import annotations

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


def test_synthetic_default_with_real_encoders(tmp_path):
    cfg = load_config(None, ["data.source=synthetic", "data.synthetic.n=400", "task=sarcasm",
                             "text_encoder.trainable=false", "objectives.itc=true", "objectives.itm=true",
                             "train.epochs=30", "train.patience=10", f"out_dir={tmp_path}", "name=syn",
                             "progress=false"])
    result = train(cfg)
    assert result.metrics["test"]["sarcasm"]["weighted_f1"] > result.baseline["weighted_f1"] + 0.1
