"""ITRp settings as the recipe's ``relate:`` section: YAML → RunConfig.relate → the ITRp run, the CLI flags as
``relate.<key>`` overrides of it, and errors that name the key."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from typer.testing import CliRunner

from mmpost.apps import relate as relate_app
from mmpost.apps.build import build_tower
from mmpost.cli import app
from mmpost.config import load_config
from mmpost.relate import config as relate_config_module
from mmpost.relate import loop
from mmpost.relate.config import RelateConfig, flag_overrides
from tests.conftest import tiny_overrides, write_toy_csv

RELATE_SECTION = "relate: {task: mood, k: 3, sampler: over, finetune: none, subset_size: 20, epochs: 2}\n"


def write_recipe(tmp_path: Path, relate_section: str = RELATE_SECTION) -> Path:
    """A recipe for the toy CSV (task ``mood``, 36 training posts, tiny frozen towers) plus ``relate_section``."""
    csv_path = write_toy_csv(tmp_path, n=60)
    over = [o for o in tiny_overrides(tmp_path, csv_path) if not o.startswith("text_encoder.trainable")]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(OmegaConf.to_yaml(OmegaConf.from_dotlist(over)) + relate_section)
    return recipe


# --------------------------------------------------------------------------------------------------- config


def test_yaml_relate_section_fills_the_task_defaults_after_the_merge(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("relate: {task: image_adds, subset_size: 500}\n")
    rc = load_config(recipe).relate
    assert isinstance(rc, RelateConfig) and (rc.task, rc.subset_size) == ("image_adds", 500)
    resolved = rc.resolved()
    assert (resolved.k, resolved.sampler, resolved.finetune) == (2, "over", "image")   # image_adds', not the default
    recipe.write_text("relate: {task: image_adds, k: 3, sampler: under, finetune: both, epochs: 1}\n")
    given = load_config(recipe, ["relate.k=5"]).relate.resolved()
    assert (given.k, given.sampler, given.finetune, given.epochs) == (5, "under", "both", 1)
    default = load_config(None).relate.resolved()
    assert (default.task, default.k, default.sampler, default.finetune) == ("text_represented", 2, "under", "text")


@pytest.mark.parametrize("override, message", [
    ("relate.k=1", "relate.k must be at least 2, got 1"),
    ("relate.subset_size=1", "relate.subset_size must be at least relate.k (2), got 1"),
    ("relate.sampler=sideways", "relate.sampler must be one of"),
    ("relate.clusterer=dbscan", "relate.clusterer must be one of"),
    ("relate.finetune=audio", "relate.finetune must be one of"),
    ("relate.head=tree", "relate.head must be one of"),
    ("relate.epochs=-1", "relate.epochs must be at least 0"),
    ("relate.batch_size=0", "relate.batch_size must be at least 1"),
    ("relate.device=gpu", "relate.device must be auto or a torch device"),
])
def test_bad_relate_values_name_the_key(override, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [override])


def test_bad_relate_value_in_a_yaml_names_the_key(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("relate:\n  task: relation\n  subset_size: 3\n")   # relation: k=4 > 3
    with pytest.raises(ValueError, match=r"relate\.subset_size must be at least relate\.k \(4\), got 3"):
        load_config(recipe)


def test_resolving_keeps_given_values_and_is_idempotent():
    rc = RelateConfig(task="relation", sampler="under")
    once = rc.resolved()
    assert (once.k, once.sampler, once.finetune) == (4, "under", "both")
    assert once.resolved() == once and rc.k is None          # the declaration itself is left as written


def test_flag_overrides_skip_flags_not_given():
    assert flag_overrides(task="image_adds", k=None, subset_size=500, device="cuda:1") == [
        "relate.task=image_adds", "relate.subset_size=500", "relate.device=cuda:1"]
    assert load_config(None, flag_overrides(device="cuda:1", k=3)).relate.device == "cuda:1"


def test_relate_config_module_is_light_and_still_reachable_from_the_loop():
    """No torch and no mmpost.config at import time (mmpost.config imports it: no cycle)."""
    source = Path(relate_config_module.__file__).read_text()
    top = [node for node in ast.parse(source).body if isinstance(node, (ast.Import, ast.ImportFrom))]
    modules = {n.module if isinstance(n, ast.ImportFrom) else n.names[0].name for n in top}
    assert modules <= {"__future__", "dataclasses", "typing"}, modules
    assert loop.RelateConfig is RelateConfig and loop.TASK_DEFAULTS["image_adds"]["sampler"] == "over"


# --------------------------------------------------------------------------------------------------- the run


def test_yaml_relate_section_reaches_the_itrp_run(tmp_path, monkeypatch):
    cfg = load_config(write_recipe(tmp_path))
    seen: list[RelateConfig] = []
    real_run_itrp = relate_app.run_itrp

    def spy(posts, text_tower, image_tower, rc, **kw):
        seen.append(rc)
        return real_run_itrp(posts, text_tower, image_tower, rc, **kw)

    monkeypatch.setattr(relate_app, "run_itrp", spy)
    torch.manual_seed(0)
    towers = build_tower(cfg.text_encoder), build_tower(cfg.image_encoder)
    metrics = relate_app.relate(cfg, tmp_path / "out", towers=towers, progress=False)
    rc = seen[0]
    assert (rc.task, rc.k, rc.sampler, rc.finetune, rc.subset_size, rc.epochs) == ("mood", 3, "over", "none", 20, 2)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["relate_config"] == rc.to_dict() and saved["k"] == 3 == metrics["k"]
    n_train = saved["split_sizes"]["train"]
    assert len(saved["timing"]["rounds"]) == 2 * int(np.ceil(n_train / 20))   # epochs and subset_size applied
    assert "sampler `over`" in (tmp_path / "out" / "report.md").read_text()


def test_cli_flags_override_the_yaml_section(tmp_path):
    recipe = write_recipe(tmp_path)                          # epochs 2, subset_size 20, sampler over
    res = CliRunner().invoke(app, ["relate", str(recipe), "relate.sampler=under", "--epochs", "1",
                                   "--subset-size", "12", "--out", str(tmp_path / "rel")])
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "rel" / "metrics.json").read_text())["relate_config"]
    assert (saved["epochs"], saved["subset_size"]) == (1, 12)              # the flags won
    assert (saved["sampler"], saved["k"], saved["finetune"]) == ("under", 3, "none")   # the rest: recipe + key=value
    assert "epoch 2 round" not in res.output and res.output.count("epoch 1 round") == 3   # 36 posts in subsets of 12


def test_cli_bad_flag_value_names_the_key(tmp_path):
    res = CliRunner().invoke(app, ["relate", "--k", "1", "--out", str(tmp_path / "rel")])
    assert res.exit_code == 2
    assert "relate.k must be at least 2, got 1" in res.output
    assert not (tmp_path / "rel").exists()


def test_cli_help_teaches_the_yaml_section():
    res = CliRunner().invoke(app, ["relate", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert res.exit_code == 0
    assert "relate:" in res.output and "relate.KEY=VALUE" in res.output and "relate.subset_size" in res.output
