"""The ablation grid: datasets × models × auxiliary settings × seeds, one training run per cell.

Each cell trains into ``OUT/cells/<dataset>/<model>-<aux>-seed<seed>``. A cell whose ``metrics.json`` exists is
finished and read back, a cell with a checkpoint but no metrics is resumed, the rest are trained — so a grid
that stopped (crash, time limit, Ctrl-C) picks up where it was by running the same command again. A run that
stopped after its ``metrics.json`` but before its ``cell.json`` is moved aside (``<cell>.unrecorded-<time>``, kept
for reading) and the cell is trained again, since its summary cannot be rebuilt from the run folder alone. After every
cell the tables are rewritten (atomically): ``results.csv`` (one row per cell), ``results.md`` and
``results.png`` (see :mod:`mmpost.evaluation.tables`).

Data is prepared once per dataset and towers are built once per encoder setting; frozen-tower features come
from the cache, so the cells of one dataset share the expensive part.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mmpost.apps.build import build_tower
from mmpost.apps.prepare import PreparedData, prepare
from mmpost.atomic import atomic_write_json
from mmpost.config import AUX_SETTINGS, GridConfig, GridDataset, RunConfig, load_config
from mmpost.engine.resume import LAST
from mmpost.evaluation.tables import CellResult, write_tables

log = logging.getLogger(__name__)
NO_PAIRS = "no image-text pairs (fewer than 2 training posts have an image): base only"


@dataclass(frozen=True)
class Cell:
    dataset: GridDataset
    model: str
    aux: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.model}-{self.aux.replace('+', '-')}-seed{self.seed}"


def cells(grid: GridConfig) -> Iterator[Cell]:
    for d in grid.datasets:
        for model in grid.models:
            for aux in grid.aux:
                for seed in grid.seeds:
                    yield Cell(d, model, aux, seed)


def cell_config(grid: GridConfig, cell: Cell, extra: list[str]) -> RunConfig:
    over = [*cell.dataset.overrides, *grid.overrides, *grid.model_overrides.get(cell.model, []), *extra,
            f"model.name={cell.model}", *AUX_SETTINGS[cell.aux],
            f"train.seed={cell.seed}", f"out_dir={Path(grid.out_dir) / 'cells' / cell.dataset.name}",
            f"name={cell.name}", "progress=false"]
    if cell.dataset.task:
        over.append(f"task={cell.dataset.task}")
    return load_config(cell.dataset.recipe, over)


def cell_dir(grid: GridConfig, cell: Cell) -> Path:
    return Path(grid.out_dir) / "cells" / cell.dataset.name / cell.name


def _finished(run_dir: Path) -> CellResult | None:
    summary = run_dir / "cell.json"
    if not summary.exists():
        return None
    return CellResult(**json.loads(summary.read_text()))


def _set_aside_unrecorded(run_dir: Path) -> None:
    """A run that finished (``metrics.json``) but stopped before the grid recorded it (no ``cell.json``): keep it
    under another name, and let the cell train again, rather than fail on the finished run folder."""
    if not (run_dir / "metrics.json").exists():
        return
    aside = run_dir.with_name(f"{run_dir.name}.unrecorded-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.rename(aside)
    log.warning("grid: %s finished but was never recorded (stopped before cell.json); moved to %s, training the "
                "cell again", run_dir, aside.name)


def _has_pairs(data: PreparedData) -> bool:
    """ITC and ITM need at least two posts with an image to contrast or to swap."""
    return sum(bool(p.images) for p in data.splits["train"]) >= 2


def run_grid(grid: GridConfig, *, extra: list[str] | None = None,
             on_cell: Callable[[CellResult, str], None] | None = None) -> list[CellResult]:
    """Run (or resume) every cell; ``on_cell(result, how)`` hears about each, ``how`` in trained / resumed /
    finished / skipped."""
    from mmpost.apps.train import train

    extra = list(extra or [])
    out = Path(grid.out_dir)
    results: list[CellResult] = []
    prepared: dict[str, PreparedData] = {}
    towers: dict[str, object] = {}

    def record(result: CellResult, how: str) -> None:
        results.append(result)
        write_tables(out, results)
        if on_cell:
            on_cell(result, how)

    for cell in cells(grid):
        cfg = cell_config(grid, cell, extra)
        run_dir = cell_dir(grid, cell)
        done = _finished(run_dir)
        if done is not None:
            record(done, "finished")
            continue
        _set_aside_unrecorded(run_dir)
        data_key = json.dumps([cell.dataset.name, dataclasses.asdict(cfg.data), cfg.task], sort_keys=True, default=str)
        if data_key not in prepared:
            log.info("grid: preparing %s (%s)", cell.dataset.name, cfg.task)
            prepared[data_key] = prepare(cfg.data, cfg.task, progress=False)
        data = prepared[data_key]
        base = CellResult(dataset=cell.dataset.name, task=cfg.task, model=cell.model, aux=cell.aux, seed=cell.seed)
        if cell.aux != "base" and not _has_pairs(data):
            record(dataclasses.replace(base, status="skipped", note=NO_PAIRS), "skipped")
            continue
        for enc in (cfg.text_encoder, cfg.image_encoder):
            key = json.dumps(dataclasses.asdict(enc), sort_keys=True)
            if key not in towers:
                towers[key] = build_tower(enc)
        pair = tuple(towers[json.dumps(dataclasses.asdict(e), sort_keys=True)]
                     for e in (cfg.text_encoder, cfg.image_encoder))
        resume = (run_dir / LAST).exists() and not (run_dir / "metrics.json").exists()
        start = time.time()
        run = train(cfg, data=_copy(data), towers=pair, resume=resume)
        split = "test" if "test" in run.metrics else "dev"
        m = run.metrics[split][cfg.task]
        result = dataclasses.replace(
            base, status="done", split=split, weighted_f1=m["weighted_f1"], macro_f1=m["macro_f1"],
            accuracy=m["accuracy"], mcc=m["mcc"], n=int(m["n"]),
            dev_weighted_f1=run.metrics.get("dev", {}).get(cfg.task, {}).get("weighted_f1", float("nan")),
            majority_weighted_f1=run.baseline["weighted_f1"], best_epoch=run.best_epoch,
            seconds=round(time.time() - start, 1), images=_has_pairs(data), run_dir=str(run.run_dir))
        atomic_write_json(run_dir / "cell.json", dataclasses.asdict(result))
        record(result, "resumed" if resume else "trained")
    return results


def _copy(data: PreparedData) -> PreparedData:
    """Runs append to ``notes``: each cell gets its own list (the posts are shared, never changed)."""
    return dataclasses.replace(data, notes=list(data.notes), counts=dict(data.counts))
