"""The recipe surface: per-family model configs, named objectives, several tasks, old keys, saved runs."""
from __future__ import annotations

import pytest

from mmpost.config import ConfigError, load_config, to_yaml


def test_a_key_of_another_family_fails_with_the_familys_keys():
    with pytest.raises(ConfigError, match=r"model\.heads is not a setting of model conc; its settings: .*hidden"):
        load_config(None, ["model.heads=4"])
    assert load_config(None, ["model.name=att", "model.heads=4"]).model.heads == 4


def test_each_allowed_value_is_checked_by_its_owner():
    with pytest.raises(ConfigError, match=r"model\.contrast"):
        load_config(None, ["model.name=mmbt", "model.contrast=sideways"])
    with pytest.raises(ConfigError, match=r"objectives\.itm\.negatives"):
        load_config(None, ["objectives.itm.negatives=nearest"])
    with pytest.raises(ConfigError, match=r"objectives\.weighting"):
        load_config(None, ["objectives.weighting=multiplicative"])
    with pytest.raises(ConfigError, match=r"objectives\.itc\.temprature is not a setting of objective itc"):
        load_config(None, ["objectives.itc.temprature=0.1"])


def test_an_entry_is_on_unless_it_says_enabled_false(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("objectives:\n  itc: {weight: 0.5}\n  itm: {negatives: hard}\n")
    cfg = load_config(recipe)
    assert list(cfg.objectives.enabled()) == ["ce", "itc", "itm"]
    assert cfg.objectives.get("itc").weight == 0.5 and cfg.objectives.aux_name() == "itc+itm"
    off = load_config(recipe, ["objectives.itm.enabled=false"])
    assert list(off.objectives.enabled()) == ["ce", "itc"] and off.objectives.aux_name() == "itc"


def test_old_objective_keys_fail_with_the_new_key(tmp_path):
    with pytest.raises(ConfigError, match=r"objectives\.itc is an old key.*objectives\.itc\.enabled=true"):
        load_config(None, ["objectives." + "itc=true"])
    with pytest.raises(ConfigError, match=r"objectives\.lambda_itc is an old key.*objectives\.itc\.weight"):
        load_config(None, ["objectives." + "lambda_itc=0.5"])
    recipe = tmp_path / "old.yaml"
    recipe.write_text("objectives:\n  itm_negatives: hard\n")
    with pytest.raises(ConfigError, match=r"old\.yaml: objectives\.itm_negatives.*objectives\.itm\.negatives"):
        load_config(recipe)


def test_a_later_tasks_replaces_task_and_the_other_way(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: sentiment\n")
    assert load_config(recipe, ["tasks=[sentiment,sarcasm]"]).tasks == ["sentiment", "sarcasm"]
    multi = tmp_path / "m.yaml"
    multi.write_text("tasks: [sentiment, sarcasm]\n")
    cfg = load_config(multi)
    assert cfg.tasks == ["sentiment", "sarcasm"] and cfg.task == "sentiment"
    assert load_config(multi, ["task=sarcasm"]).tasks == ["sarcasm"]
    with pytest.raises(ConfigError, match="distinct"):
        load_config(None, ["tasks=[a,a]"])


def test_the_saved_config_loads_back_to_the_same_config(tmp_path):
    cfg = load_config(None, ["model.name=att", "model.heads=4", "objectives.itc.weight=0.3",
                             "objectives.itm.enabled=false", "tasks=[sentiment,sarcasm]"])
    saved = tmp_path / "again.yaml"
    saved.write_text(to_yaml(cfg))
    assert load_config(saved) == cfg


def test_a_run_saved_before_the_change_is_read(tmp_path):
    run = tmp_path / "old-run"
    run.mkdir()
    (run / "labels.json").write_text('{"task": "sentiment", "labels": ["a", "b"]}')
    (run / "config.yaml").write_text(
        "task: sentiment\nmodel: {name: conc, hidden: 64, proj_dim: 32, dropout: 0.1, heads: 8, contrast: unimodal,"
        " path: null, layers: 2, fusion: attention, modalities: both}\n"
        "objectives: {itc: true, itm: true, weighting: convex, lambda_ce: 1.0, lambda_itc: 1.0, lambda_itm: 1.0,"
        " beta_itc: 0.2, beta_itm: 0.1, class_weights: none, temperature: 0.05, mask_duplicates: true,"
        " itm_negatives: hard}\n")
    cfg = load_config(run / "config.yaml")
    assert cfg.model.hidden == 64 and cfg.model.proj_dim == 32 and cfg.model.fusion == "concat"
    o = cfg.objectives
    assert o.weighting == "convex" and o.get("itc").weight == 0.2 and o.get("itm").weight == 0.1
    assert o.get("itc").temperature == 0.05 and o.get("itm").negatives == "hard"
    assert o.get("ce").class_weights == "none"


def test_switching_family_later_drops_the_earlier_familys_keys(tmp_path):
    recipe = tmp_path / "conc.yaml"
    recipe.write_text("model: {name: conc, hidden: 256, dropout: 0.3}\n")
    cfg = load_config(recipe, ["model.name=att"])
    assert cfg.model.name == "att" and cfg.model.dropout == 0.3 and not hasattr(cfg.model, "hidden")
    with pytest.raises(ConfigError, match=r"model\.hidden is not a setting of model att"):
        load_config(recipe, ["model.name=att", "model.hidden=64"])
