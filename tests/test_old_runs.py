"""Runs saved before objectives and model configs became per-loss and per-family (flat ``model`` and
``objectives`` sections in config.yaml, ``{"task", "labels"}`` in labels.json, Att's old parameter names) still
load, and predict exactly what they predicted then. The fixtures are tiny conc and att runs (ITC+ITM, one epoch)
trained by that earlier version; their expected probabilities were computed by it, with the same seed and images."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mmpost
from mmpost.data.post import Post
from tests.conftest import write_toy_csv

FIXTURES = Path(__file__).parent / "fixtures" / "runs_before_pluggable_core"


@pytest.mark.parametrize("family", ["conc", "att"])
def test_a_run_saved_by_the_earlier_version_predicts_as_it_did(family, tmp_path, monkeypatch):
    monkeypatch.setenv("MMPOST_CACHE", str(tmp_path / "cache"))
    write_toy_csv(tmp_path, n=40)        # the same seeded images the run was trained and scored on
    posts = [Post(id=str(i), text=f"a post about thing {i}", images=[str(tmp_path / "imgs" / f"p{i}.png")])
             for i in range(5)]
    torch.manual_seed(0)                 # the frozen tiny image tower is random: built as it was for the expectation
    predictor = mmpost.load(FIXTURES / family)
    assert predictor.config.model.name == family and predictor.config.objectives.aux_name() == "itc+itm"
    expected = json.loads((FIXTURES / "predictions.json").read_text())[family]
    assert predictor.predict_proba(posts) == pytest.approx(np.array(expected), abs=1e-6)
