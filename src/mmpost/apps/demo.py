"""The main job on the embedded default: generate the synthetic set, train the default model without and
with ITC+ITM, and compare. ``quick`` freezes both towers and trains on cached features."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from mmpost import registry
from mmpost.apps.build import build_tower
from mmpost.apps.prepare import prepare
from mmpost.apps.train import RunResult, train
from mmpost.config import RunConfig, load_config
from mmpost.objectives.spec import Objectives

ALL_TASKS = ("sentiment", "sarcasm", "text_represented", "image_adds", "relation")


@dataclass
class DemoRow:
    task: str
    setting: str
    result: RunResult


def demo_config(quick: bool, out_dir: str, overrides: list[str] | None = None) -> RunConfig:
    base = ["data.source=synthetic", f"out_dir={out_dir}"]
    if quick:
        base += ["text_encoder.trainable=false", "train.epochs=40", "train.patience=8", "train.lr=1e-3"]
    else:
        base += ["train.epochs=6", "train.patience=2"]
    return load_config(None, base + list(overrides or []))


def with_aux(objectives: Objectives, on: bool) -> Objectives:
    """The objectives with ITC and ITM both on (their default options) or both off."""
    losses = {k: v for k, v in objectives.losses.items() if k not in ("itc", "itm")}
    if on:
        losses.update(itc=registry.get("objective", "itc").Config(), itm=registry.get("objective", "itm").Config())
    return replace(objectives, losses=losses)


def run_demo(*, quick: bool = True, tasks: tuple[str, ...] = ALL_TASKS, out_dir: str = "runs/demo",
             overrides: list[str] | None = None, on_row=None) -> list[DemoRow]:
    cfg = demo_config(quick, out_dir, overrides)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    towers = (build_tower(cfg.text_encoder), build_tower(cfg.image_encoder))
    rows: list[DemoRow] = []
    for task in tasks:
        data = prepare(cfg.data, task, progress=cfg.progress)
        for setting, itc in (("base", False), ("+ITC+ITM", True)):
            run_cfg = replace(cfg, task=task, tasks=[task], name=f"{stamp}/{task}-{'base' if not itc else 'itc+itm'}",
                              objectives=with_aux(cfg.objectives, itc))
            if not quick:   # fine-tuning changes the text tower: start each run from the packaged weights
                towers = (build_tower(cfg.text_encoder), towers[1])
            row = DemoRow(task, setting, train(run_cfg, data=data, towers=towers))
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def demo_dir(rows: list[DemoRow]) -> Path:
    return rows[0].result.run_dir.parent if rows else Path(".")
