"""Supervised training: posts → features → model + objective → best checkpoint on dev → test metrics."""
from __future__ import annotations

import csv
import io
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mmpost.apps.build import build_tower
from mmpost.apps.prepare import PreparedData, prepare
from mmpost.apps.train_report import evaluate_and_report, multi_labels
from mmpost.apps.training_setup import TrainingSetup, setup_training
from mmpost.atomic import atomic_write_json, atomic_write_text
from mmpost.config import RunConfig, to_yaml
from mmpost.data.groups import group_names
from mmpost.data.saved_splits import SPLITS_FILE, write_splits
from mmpost.engine.checkpoint import CheckpointWriteError, load_weights, save_weights
from mmpost.engine.loop import FitState, TrainingInterrupted, fit
from mmpost.engine.resume import BEST, LAST, load_training_state, save_training_state
from mmpost.engine.setup import make_fabric, seed_everything, torch_threads
from mmpost.evaluation.predictions import Task, tasks_to_json
from mmpost.evaluation.task_metrics import mean_score

log = logging.getLogger(__name__)
WEIGHTS = "model.safetensors"


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, dict[str, dict[str, float]]]
    baseline: dict[str, float]
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    baselines: dict[str, dict] = field(default_factory=dict)   # every task's majority baseline (baseline: the first)


def run_name(cfg: RunConfig) -> str:
    return cfg.name or f"{cfg.task}-{cfg.model.name}-{cfg.objectives.aux_name()}-{time.strftime('%Y%m%d-%H%M%S')}"


def saved_state(module: torch.nn.Module, cfg: RunConfig, prefix: str = "") -> dict[str, torch.Tensor]:
    """Everything but frozen towers (those come back from their packages on load). ``prefix``: where the model
    sits inside ``module`` ("model." for a TrainStep)."""
    skip = [f"{prefix}{name}" for name, enc in (("text_tower.", cfg.text_encoder), ("image_tower.", cfg.image_encoder))
            if not enc.trainable]
    return {k: v for k, v in module.state_dict().items() if not any(k.startswith(s) for s in skip)}


def write_log(path: Path, history: list[dict[str, float]]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    atomic_write_text(path, buf.getvalue())


def open_run_dir(cfg: RunConfig, resume: bool) -> Path:
    run_dir = Path(cfg.out_dir).expanduser() / run_name(cfg)
    if (run_dir / "metrics.json").exists():
        raise FileExistsError(f"{run_dir} already holds a finished run; choose another name= or out_dir=")
    if resume and not (run_dir / LAST).exists():
        raise FileNotFoundError(f"{run_dir} has no {LAST} to resume from")
    if not resume and (run_dir / LAST).exists():
        raise FileExistsError(f"{run_dir} holds an unfinished run: resume it with --resume {run_dir}")
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
    for stale in (run_dir / LAST).parent.glob(".*.tmp"):   # left by a process killed while writing
        stale.unlink(missing_ok=True)
    return run_dir


def train(cfg: RunConfig, *, data: PreparedData | None = None, towers: tuple | None = None,
          resume: bool = False, checkpoint_every: int = 0) -> RunResult:
    """Train one run. With ``resume``, the run folder's last checkpoint (weights, optimizer, RNG states, epoch
    and batch) is restored and training goes on as if it had never stopped.

    Checkpoints are written after every epoch and, with ``checkpoint_every=N``, after every N batches within one,
    so a killed process loses at most N batches. The first SIGINT / SIGTERM stops after the batch in progress,
    writes a checkpoint and raises :class:`~mmpost.engine.loop.TrainingInterrupted` (message: how to resume)."""
    run_dir = open_run_dir(cfg, resume)
    seed_everything(cfg.train.seed)
    data = data or prepare(cfg.data, cfg.tasks, progress=cfg.progress)
    save_splits(run_dir, cfg, data)
    towers = towers or (build_tower(cfg.text_encoder), build_tower(cfg.image_encoder))
    fabric = make_fabric(cfg.fabric)
    for tower in towers:    # features (and train_layers' lower states) are extracted on the run's device
        tower.to(fabric.device)
    setup = setup_training(cfg, data, towers)
    state, rng_state = restore(run_dir, setup) if resume else (None, None)
    fstep, foptimizer = fabric.setup(setup.step, setup.optimizer)
    frozen = [tw for tw, enc in zip(towers, (cfg.text_encoder, cfg.image_encoder)) if not enc.trainable]
    saver = Checkpoints(run_dir, cfg, setup)
    with stopped_cleanly(run_dir), torch_threads(cfg.train.threads):
        multi = multi_labels(data)
        result = fit(fabric, fstep, foptimizer, setup.loaders["train"], setup.loaders["dev"], cfg=cfg.train,
                     score=lambda dev: mean_score(dev.labels, dev.probs, multi), frozen=frozen,
                     generator=setup.generators["itm"], state=state, on_epoch_end=saver.after_epoch,
                     progress=cfg.progress, on_step=saver.last,
                     checkpoint_every=checkpoint_every or cfg.train.checkpoint_every, rng_state=rng_state,
                     multi_label=multi)
    return finish(run_dir, cfg, data, setup, fabric, fstep, result)


def save_splits(run_dir: Path, cfg: RunConfig, data: PreparedData) -> None:
    """splits.csv: which post went to which split, and the group it was kept with (``data.splits_from`` reads it)."""
    posts = [p for split in data.splits.values() for p in split]
    names = group_names(posts, list(cfg.data.group_by))
    write_splits(run_dir / SPLITS_FILE, data.splits, {p.id: g for p, g in zip(posts, names)})


def restore(run_dir: Path, setup: TrainingSetup) -> tuple[FitState, torch.Tensor | None]:
    """Weights, optimizer, RNGs and where training stood, from the run's last checkpoint."""
    restored = load_training_state(run_dir / LAST, optimizer=setup.optimizer, generators=setup.generators)
    setup.step.load_state_dict(restored.weights, strict=False)
    state = restored.state
    setup.batches.skip_next(state.batches_done)
    log.warning("resuming %s after epoch %d%s", run_dir, state.epoch,
                f" and {state.batches_done} batches of epoch {state.epoch + 1}" if state.within_epoch else "")
    return state, restored.rng_after_iterator


class Checkpoints:
    """The run's checkpoints: ``last`` (to resume) after every epoch and every N batches, ``best`` on dev."""

    def __init__(self, run_dir: Path, cfg: RunConfig, setup: TrainingSetup) -> None:
        self.run_dir, self.cfg, self.setup = run_dir, cfg, setup

    def last(self, st: FitState) -> None:
        s = self.setup
        # within an epoch the sampler's state from the epoch's start is saved, so its order can be drawn again
        sampler_state = s.batches.epoch_start_state if st.within_epoch else s.generators["sampler"].get_state()
        save_training_state(self.run_dir / LAST, weights=saved_state(s.step, self.cfg, prefix="model."),
                            optimizer=s.optimizer, state=st,
                            rng={"sampler": sampler_state, "itm": s.generators["itm"].get_state()})

    def after_epoch(self, st: FitState, improved: bool) -> None:
        write_log(self.run_dir / "log.csv", st.history)
        if improved:
            save_weights(self.run_dir / BEST, saved_state(self.setup.model, self.cfg))
        self.last(st)


@contextmanager
def stopped_cleanly(run_dir: Path):
    """An interrupted or failed checkpoint says what the last checkpoint holds and how to go on."""
    resume_hint = f"go on with: mmpost train --resume {run_dir}"
    try:
        yield
    except TrainingInterrupted as e:
        st = e.state
        where = f"epoch {st.epoch} and {st.batches_done} batches of epoch {st.epoch + 1}" if st.within_epoch \
            else f"epoch {st.epoch}"
        raise TrainingInterrupted(f"interrupted: {e}. The checkpoint {run_dir / LAST} holds {where}; "
                                  f"{resume_hint}", st) from None
    except CheckpointWriteError as e:
        raise CheckpointWriteError(e.errno, f"{e.strerror}. Training stopped; once the problem is fixed, "
                                            f"{resume_hint}") from e


def finish(run_dir: Path, cfg: RunConfig, data: PreparedData, setup: TrainingSetup, fabric, fstep,
           result: FitState) -> RunResult:
    """The best weights, model.safetensors, labels.json, and every task's metrics and report."""
    unreadable = sum(row.get("train_unreadable_images", 0) for row in result.history)
    if unreadable:
        data.notes.append(f"{int(unreadable)} image reads failed during training (the file changed after "
                          "validation?); those posts trained without their image in that batch")
    if (run_dir / BEST).exists():
        setup.model.load_state_dict(load_weights(run_dir / BEST), strict=False)
    save_weights(run_dir / WEIGHTS, saved_state(setup.model, cfg),
                 metadata={"task": cfg.task, "tasks": ",".join(cfg.tasks), "model": cfg.model.name})
    atomic_write_json(run_dir / "labels.json", labels_file(data))
    metrics, baselines = evaluate_and_report(run_dir, cfg, data, setup.datasets, setup.loaders, fabric, fstep,
                                             result)
    return RunResult(run_dir=run_dir, metrics=metrics, baseline=baselines[data.task], best_epoch=result.best_epoch,
                     history=result.history, baselines=baselines)


def labels_file(data: PreparedData) -> dict:
    """labels.json: every task's labels in class-id order and whether it is multi-label."""
    return tasks_to_json([Task(t.name, tuple(t.labels), t.multi_label) for t in data.tasks])
