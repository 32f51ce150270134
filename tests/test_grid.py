"""The grid runner on tiny towers: every cell, the tables, resuming, and text-only data running base only."""
from __future__ import annotations

import csv
import json

import pytest
from omegaconf import OmegaConf
from typer.testing import CliRunner

from mmpost.apps.grid import NO_PAIRS, run_grid
from mmpost.cli import app
from mmpost.config import ConfigError, load_grid
from mmpost.evaluation.tables import CellResult, summarise
from tests.conftest import tiny_overrides, write_toy_csv


def _recipe(tmp_path, csv_path):
    path = tmp_path / "recipe.yaml"
    OmegaConf.save(OmegaConf.from_dotlist(tiny_overrides(tmp_path, csv_path)), path)
    return path


def _grid(tmp_path, recipe, text_only_recipe=None, seeds=(0, 1)):
    datasets = [{"name": "toy", "recipe": str(recipe), "overrides": ["train.epochs=2"]}]
    if text_only_recipe:
        datasets.append({"name": "toy-text", "recipe": str(text_only_recipe), "overrides": ["train.epochs=2"]})
    import yaml
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"datasets": datasets, "models": ["conc"], "aux": ["base", "itc", "itm",
                                    "itc+itm"], "seeds": list(seeds), "out_dir": str(tmp_path / "grid")}))
    return path


def test_grid_runs_every_cell_writes_tables_and_resumes(tmp_path):
    toy = write_toy_csv(tmp_path)
    recipe = _recipe(tmp_path, toy)
    grid = load_grid(_grid(tmp_path, recipe))
    results = run_grid(grid)
    assert [(r.aux, r.seed) for r in results] == [(a, s) for a in ("base", "itc", "itm", "itc+itm") for s in (0, 1)]
    assert all(r.status == "done" and 0 <= r.weighted_f1 <= 1 for r in results)
    out = tmp_path / "grid"
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 8 and rows[0]["dataset"] == "toy"
    md = (out / "results.md").read_text()
    assert "| conc | itc+itm |" in md and "± " in md
    assert (out / "results.png").stat().st_size > 1000
    # a second run trains nothing: every cell is read back
    seen = []
    again = run_grid(grid, on_cell=lambda r, how: seen.append(how))
    assert seen == ["finished"] * 8
    assert [r.weighted_f1 for r in again] == [r.weighted_f1 for r in results]


def test_grid_resumes_an_interrupted_cell(tmp_path, monkeypatch):
    import mmpost.engine.loop as loop
    toy = write_toy_csv(tmp_path)
    grid = load_grid(_grid(tmp_path, _recipe(tmp_path, toy), seeds=(0,)), ["aux=[base]"])
    real, calls = loop.train_epoch, {"n": 0}

    def dies_in_epoch_2(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_grid(grid)
    monkeypatch.setattr(loop, "train_epoch", real)
    seen = []
    run_grid(grid, on_cell=lambda r, how: seen.append(how))
    assert seen == ["resumed"]


def test_grid_retrains_a_finished_run_it_never_recorded(tmp_path):
    toy = write_toy_csv(tmp_path)
    grid = load_grid(_grid(tmp_path, _recipe(tmp_path, toy), seeds=(0,)), ["aux=[base]"])
    first = run_grid(grid)[0]
    cell = tmp_path / "grid" / "cells" / "toy" / "conc-base-seed0"
    (cell / "cell.json").unlink()          # stopped between the run's metrics.json and the grid's cell.json
    seen = []
    again = run_grid(grid, on_cell=lambda r, how: seen.append(how))
    assert seen == ["trained"] and (cell / "cell.json").exists()
    assert again[0].weighted_f1 == pytest.approx(first.weighted_f1)
    aside = [p.name for p in cell.parent.iterdir() if p.name.startswith("conc-base-seed0.unrecorded-")]
    assert len(aside) == 1 and (cell.parent / aside[0] / "metrics.json").exists()


def test_text_only_data_runs_base_only_and_the_table_says_why(tmp_path):
    toy = write_toy_csv(tmp_path)
    recipe = _recipe(tmp_path, toy)
    text_only = tmp_path / "text-only.yaml"
    text_only.write_text(recipe.read_text().replace("image: picture", "image: null"))
    assert "image: null" in text_only.read_text()
    grid = load_grid(_grid(tmp_path, recipe, text_only, seeds=(0,)))
    grid.datasets = grid.datasets[1:]
    results = run_grid(grid)
    assert [r.status for r in results] == ["done", "skipped", "skipped", "skipped"]
    assert results[1].note == NO_PAIRS
    md = (tmp_path / "grid" / "results.md").read_text()
    assert "No images" in md and f"Not run — {NO_PAIRS}: conc itc, conc itm, conc itc+itm." in md


def test_paired_test_and_deltas_across_seeds():
    rows = [CellResult("d", "t", "conc", "base", s, status="done", weighted_f1=w) for s, w in enumerate([.5, .6, .7])]
    rows += [CellResult("d", "t", "conc", "itc", s, status="done", weighted_f1=w) for s, w in enumerate([.6, .8, .8])]
    base, itc = summarise(rows)
    assert base.delta is None and abs(base.mean - 0.6) < 1e-9 and abs(base.std - 0.1) < 1e-9
    assert abs(itc.delta - (0.1 + 0.2 + 0.1) / 3) < 1e-9
    from scipy.stats import ttest_rel
    assert abs(itc.p_value - ttest_rel([.6, .8, .8], [.5, .6, .7]).pvalue) < 1e-12


def test_grid_file_errors_are_clear(tmp_path):
    bad = tmp_path / "g.yaml"
    bad.write_text("datasets: [{name: a, recipe: r.yaml}]\naux: [base, clip]\n")
    with pytest.raises(ConfigError, match="unknown aux setting"):
        load_grid(bad)
    bad.write_text("models: [conc]\n")
    with pytest.raises(ConfigError, match="lists no datasets"):
        load_grid(bad)


def test_cli_grid_dry_run_and_subset(tmp_path):
    toy = write_toy_csv(tmp_path)
    path = _grid(tmp_path, _recipe(tmp_path, toy), seeds=(0,))
    res = CliRunner().invoke(app, ["grid", str(path), "--dry-run", "--aux", "base,itc"])
    assert res.exit_code == 0, res.output
    assert "2 cells" in res.output and "to run" in res.output
    res = CliRunner().invoke(app, ["grid", str(path), "--aux", "base"])
    assert res.exit_code == 0, res.output
    assert "[1/1] toy conc base seed 0: trained" in res.output
    cell = json.loads((tmp_path / "grid" / "cells" / "toy" / "conc-base-seed0" / "cell.json").read_text())
    assert cell["status"] == "done"


def test_model_overrides_apply_to_one_family_only(tmp_path):
    from mmpost.apps.grid import cell_config, cells
    toy = write_toy_csv(tmp_path)
    grid = load_grid(_grid(tmp_path, _recipe(tmp_path, toy), seeds=(0,)),
                     ["models=[conc,att]", "model_overrides.att=[train.lr=0.0002]"])
    lrs = {c.model: cell_config(grid, c, []).train.lr for c in cells(grid) if c.aux == "base"}
    assert lrs == {"conc": 1e-2, "att": 2e-4}
