"""Supervised training: posts → features → model + objective → best checkpoint on dev → test metrics."""
from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

from mmpost.apps.build import build_model, build_objective, build_tower
from mmpost.apps.datasets import build_datasets
from mmpost.apps.prepare import PreparedData, prepare
from mmpost.atomic import atomic_write_json, atomic_write_text
from mmpost.config import RunConfig, to_yaml
from mmpost.data.dataset import PostDataset, label_ids, unwrap
from mmpost.engine.checkpoint import CheckpointWriteError, load_weights, save_weights
from mmpost.engine.loop import FitState, TrainingInterrupted, fit, predict
from mmpost.engine.resume import BEST, LAST, ResumableBatchSampler, load_training_state, save_training_state
from mmpost.engine.setup import make_fabric, seed_everything, torch_threads
from mmpost.engine.step import TrainStep
from mmpost.evaluation.metrics import classification_metrics, confusion, majority_baseline, per_class, weighted_f1
from mmpost.evaluation.plots import confusion_png
from mmpost.evaluation.report import write_metrics, write_report
from mmpost.evaluation.uncertainty import weighted_f1_ci
from mmpost.objectives.base import TaskInfo

log = logging.getLogger(__name__)
WEIGHTS = "model.safetensors"


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, dict[str, dict[str, float]]]
    baseline: dict[str, float]
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)


def run_name(cfg: RunConfig) -> str:
    return cfg.name or f"{cfg.task}-{cfg.model.name}-{cfg.objectives.aux_name()}-{time.strftime('%Y%m%d-%H%M%S')}"


def saved_state(module: torch.nn.Module, cfg: RunConfig, prefix: str = "") -> dict[str, torch.Tensor]:
    """Everything but frozen towers (those come back from their packages on load). ``prefix``: where the model
    sits inside ``module`` ("model." for a TrainStep)."""
    skip = [f"{prefix}{name}" for name, enc in (("text_tower.", cfg.text_encoder), ("image_tower.", cfg.image_encoder))
            if not enc.trainable]
    return {k: v for k, v in module.state_dict().items() if not any(k.startswith(s) for s in skip)}


def task_infos(data: PreparedData, datasets: dict[str, PostDataset]) -> list[TaskInfo]:
    """The run's tasks with their training labels, as the losses are built from them."""
    return [TaskInfo(data.task, list(data.labels), datasets["train"].labels.numpy())]


def make_datasets(data: PreparedData, cfg: RunConfig, text_tower, image_tower) -> dict[str, PostDataset]:
    labels = {name: label_ids(split, data.task, data.labels) for name, split in data.splits.items()}
    datasets, image_errors = build_datasets(data.splits, labels, cfg, text_tower, image_tower)
    if image_errors:
        data.notes.append(f"{len(image_errors)} images could not be read and were masked")
    return datasets


def loader(ds: PostDataset, batch_size: int, *, shuffle: bool, seed: int, workers: int) -> DataLoader:
    """Batches of a dataset; a shuffled loader can start a pass some batches in (resuming within an epoch)."""
    sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(seed)) if shuffle else SequentialSampler(ds)
    return DataLoader(ds, batch_sampler=ResumableBatchSampler(sampler, batch_size, drop_last=False),
                      collate_fn=unwrap, num_workers=workers)


def write_log(path: Path, history: list[dict[str, float]]) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    atomic_write_text(path, buf.getvalue())


def build_optimizer(step: torch.nn.Module, towers: tuple, cfg: RunConfig) -> torch.optim.Optimizer:
    """AdamW: fine-tuned towers — and pretrained weights a family loads itself (``pretrained_parameters()``,
    e.g. an HF LXMERT) — at ``train.encoder_lr``; everything else (new layers, heads, temperature) at ``train.lr``."""
    model = step.model if hasattr(step, "model") else step
    pretrained = list(model.pretrained_parameters()) if hasattr(model, "pretrained_parameters") else []
    tower_params = [p for t in towers for p in t.parameters() if p.requires_grad]
    tower_params += [p for p in pretrained if p.requires_grad]
    tower_ids = {id(p) for p in tower_params}
    groups = [{"params": [p for p in step.parameters() if p.requires_grad and id(p) not in tower_ids],
               "lr": cfg.train.lr}]
    if tower_params:
        groups.append({"params": tower_params, "lr": cfg.train.encoder_lr})
    return torch.optim.AdamW(groups, weight_decay=cfg.train.weight_decay)


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
    checkpoint_every = checkpoint_every or cfg.train.checkpoint_every
    run_dir = open_run_dir(cfg, resume)
    seed_everything(cfg.train.seed)
    data = data or prepare(cfg.data, cfg.task, progress=cfg.progress)
    text_tower, image_tower = towers or (build_tower(cfg.text_encoder), build_tower(cfg.image_encoder))
    datasets = make_datasets(data, cfg, text_tower, image_tower)
    n_classes = len(data.labels)
    seed_everything(cfg.train.seed)
    model = build_model(cfg.model, text_tower, image_tower, n_classes)
    objective = build_objective(cfg.objectives, task_infos(data, datasets))
    step = TrainStep(model, objective)
    optimizer = build_optimizer(step, (text_tower, image_tower), cfg)
    t = cfg.train
    loaders = {name: loader(ds, t.batch_size if name == "train" else t.eval_batch_size, shuffle=name == "train",
                            seed=t.seed, workers=t.num_workers) for name, ds in datasets.items()}
    batches: ResumableBatchSampler = loaders["train"].batch_sampler
    generators = {"sampler": batches.sampler.generator, "itm": torch.Generator().manual_seed(t.seed)}
    state, rng_state = None, None
    if resume:
        restored = load_training_state(run_dir / LAST, optimizer=optimizer, generators=generators)
        step.load_state_dict(restored.weights, strict=False)
        state, rng_state = restored.state, restored.rng_after_iterator
        batches.skip_next(state.batches_done)
        log.warning("resuming %s after epoch %d%s", run_dir, state.epoch,
                    f" and {state.batches_done} batches of epoch {state.epoch + 1}" if state.within_epoch else "")
    fabric = make_fabric(cfg.fabric)
    fstep, foptimizer = fabric.setup(step, optimizer)
    frozen = [tw for tw, enc in ((text_tower, cfg.text_encoder), (image_tower, cfg.image_encoder)) if not enc.trainable]

    def save_last(st: FitState) -> None:
        # within an epoch the sampler's state from the epoch's start is saved, so its order can be drawn again
        sampler_state = batches.epoch_start_state if st.within_epoch else generators["sampler"].get_state()
        save_training_state(run_dir / LAST, weights=saved_state(step, cfg, prefix="model."), optimizer=optimizer,
                            rng={"sampler": sampler_state, "itm": generators["itm"].get_state()}, state=st)

    def checkpoint(st: FitState, improved: bool) -> None:
        write_log(run_dir / "log.csv", st.history)
        if improved:
            save_weights(run_dir / BEST, saved_state(model, cfg))
        save_last(st)

    resume_hint = f"go on with: mmpost train --resume {run_dir}"
    try:
        with torch_threads(t.threads):
            result = fit(fabric, fstep, foptimizer, loaders["train"], loaders["dev"], cfg=t, score=weighted_f1,
                         frozen=frozen, generator=generators["itm"], state=state, on_epoch_end=checkpoint,
                         progress=cfg.progress, on_step=save_last, checkpoint_every=checkpoint_every,
                         rng_state=rng_state)
    except TrainingInterrupted as e:
        st = e.state
        where = f"epoch {st.epoch} and {st.batches_done} batches of epoch {st.epoch + 1}" if st.within_epoch \
            else f"epoch {st.epoch}"
        raise TrainingInterrupted(f"interrupted: {e}. The checkpoint {run_dir / LAST} holds {where}; "
                                  f"{resume_hint}", st) from None
    except CheckpointWriteError as e:
        raise CheckpointWriteError(e.errno, f"{e.strerror}. Training stopped; once the problem is fixed, "
                                            f"{resume_hint}") from e
    unreadable = sum(row.get("train_unreadable_images", 0) for row in result.history)
    if unreadable:
        data.notes.append(f"{int(unreadable)} image reads failed during training (the file changed after "
                          "validation?); those posts trained without their image in that batch")
    if (run_dir / BEST).exists():
        model.load_state_dict(load_weights(run_dir / BEST), strict=False)
    save_weights(run_dir / WEIGHTS, saved_state(model, cfg), metadata={"task": cfg.task, "model": cfg.model.name})
    atomic_write_json(run_dir / "labels.json", {"task": data.task, "labels": data.labels})
    metrics, baseline = evaluate_and_report(run_dir, cfg, data, datasets, loaders, fabric, fstep, result)
    return RunResult(run_dir=run_dir, metrics=metrics, baseline=baseline, best_epoch=result.best_epoch,
                     history=result.history)


def evaluate_and_report(run_dir: Path, cfg: RunConfig, data: PreparedData, datasets, loaders, fabric, fstep,
                        result: FitState) -> tuple[dict, dict]:
    n_classes = len(data.labels)
    metrics, per, conf = {}, {}, {}
    for name in ("dev", "test"):
        if len(datasets[name]) == 0:
            continue
        probs, y, _ = predict(fabric, fstep, loaders[name])
        pred = probs.argmax(1)
        metrics[name] = {data.task: classification_metrics(y, pred, n_classes)}
        per[name], conf[name] = per_class(y, pred, data.labels), confusion(y, pred, n_classes)
        if name == "test":
            metrics[name][data.task]["weighted_f1_ci95"] = list(weighted_f1_ci(y, pred, n_classes))
            confusion_png(run_dir / "confusion_test.png", conf[name], data.labels, f"{data.task} · test")
    eval_split = "test" if "test" in metrics else "dev"
    baseline = majority_baseline(datasets["train"].labels.numpy(), datasets[eval_split].labels.numpy(), n_classes)
    write_metrics(run_dir, metrics)
    notes = list(data.notes) + [
        f"best dev weighted F1 {result.best_score:.3f} at epoch {result.best_epoch}: the epoch was chosen on dev "
        "only; λ/β, learning rates and the rest are as configured (config.yaml), not tuned on test",
        "split sizes: " + ", ".join(f"{k} {len(v)}" for k, v in datasets.items()),
        f"text encoder `{cfg.text_encoder.name}` ({'fine-tuned' if cfg.text_encoder.trainable else 'frozen'}), "
        f"image encoder `{cfg.image_encoder.name}` ({'fine-tuned' if cfg.image_encoder.trainable else 'frozen'})",
    ]
    write_report(run_dir, title=f"{cfg.model.name} · {cfg.objectives.aux_name()} · {data.task}", task=data.task,
                 labels=data.labels, split_metrics={k: v[data.task] for k, v in metrics.items()}, baseline=baseline,
                 per_class_rows=per, confusions=conf, notes=notes, history=result.history)
    return metrics, baseline
