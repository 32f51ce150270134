"""A loss of the user's own, defined in this module and switched on through ``plugins:`` — no other file touched."""
from __future__ import annotations

import csv
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load_file

from mmpost.apps.train import train
from mmpost.config import ConfigError, load_config
from mmpost.objectives.base import Loss, LossConfig
from mmpost.registry import register
from tests.conftest import tiny_overrides


@register("objective", "embed_norm")
class EmbedNorm(Loss):
    """Mean squared norm of the projected text vectors, times ``scale``: a regulariser a user might add."""

    @dataclass
    class Config(LossConfig):
        scale: float = 1.0

    def forward(self, output, batch, collective=None):
        return {"embed_norm": self.config.scale * output.text_embeds.pow(2).sum(-1).mean()}


def _recipe(tmp_path, posts: str, name: str, weight: float):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"plugins: [{__name__}]\nobjectives:\n  embed_norm: {{weight: {weight}, scale: 0.5}}\n")
    return load_config(path, tiny_overrides(tmp_path, posts) + [f"name={name}", "train.epochs=1"])


def _log(run_dir) -> list[dict[str, float]]:
    with open(run_dir / "log.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture
def posts(tmp_path):
    from tests.conftest import write_toy_csv
    return write_toy_csv(tmp_path, n=40)


def test_a_plugin_loss_trains_and_is_logged(tmp_path, posts):
    runs = {w: train(_recipe(tmp_path, posts, f"w{w}", w)) for w in (0.0, 1.0)}
    for weight, run in runs.items():
        for row in _log(run.run_dir):
            for split in ("train", "dev"):
                parts = row[f"{split}_ce"] + weight * row[f"{split}_embed_norm"]
                assert row[f"{split}_loss"] == pytest.approx(parts, abs=1e-6)
    a, b = (load_file(runs[w].run_dir / "model.safetensors") for w in (0.0, 1.0))
    assert set(a) == set(b)
    assert any(not torch.equal(a[k], b[k]) for k in a), "the plugin's weight must change what is trained"


def test_an_unknown_loss_names_the_known_ones_and_plugins(tmp_path):
    with pytest.raises(ConfigError, match=r"objectives\.nope: .*known: .*ce.*plugins"):
        load_config(None, ["objectives.nope.weight=1.0"])


def test_a_plugin_that_cannot_be_imported_is_named(tmp_path):
    with pytest.raises(ConfigError, match="plugins: cannot import 'no_such_module_here'"):
        load_config(None, ["plugins=[no_such_module_here]"])
