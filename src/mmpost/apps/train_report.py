"""The end of a training run: every task scored on dev and test with the best weights, metrics.json, the majority
baseline, confusion plots and report.md (one section per task)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mmpost.apps.prepare import PreparedData
from mmpost.config import RunConfig
from mmpost.data.tasks import TaskSpec
from mmpost.engine.loop import FitState, Predictions, predict
from mmpost.evaluation.metrics import confusion, majority_baseline
from mmpost.evaluation.plots import confusion_png
from mmpost.evaluation.report import write_metrics, write_report
from mmpost.evaluation.task_metrics import labelled_rows, metrics_of, multilabel_metrics, per_class_rows
from mmpost.evaluation.uncertainty import weighted_f1_ci


def baseline_of(task: TaskSpec, train_labels: np.ndarray, eval_labels: np.ndarray) -> dict:
    """Always predicting the training majority: the most frequent class, or each label's majority (0/1)."""
    if not task.multi_label:
        return majority_baseline(train_labels, eval_labels, len(task.labels))
    rows = labelled_rows(train_labels)
    majority = (train_labels[rows].mean(axis=0) >= 0.5).astype(np.float32) if rows.any() else \
        np.zeros(len(task.labels), dtype=np.float32)
    return multilabel_metrics(eval_labels, np.tile(majority, (len(eval_labels), 1)), task.labels)


def split_metrics(run_dir: Path, task: TaskSpec, split: str, pred: Predictions,
                  plot_name: str = "confusion_test.png") -> tuple[dict, list, list | None]:
    """(metrics, per-class rows, confusion or None) of one task on one split; test adds the bootstrap interval
    of weighted F1 and the confusion plot."""
    y, probs = pred.labels[task.name], pred.probs[task.name]
    metrics = metrics_of(y, probs, task.labels, task.multi_label)
    rows = per_class_rows(y, probs, task.labels, task.multi_label)
    if task.multi_label:
        return metrics, rows, None
    conf = confusion(y, probs.argmax(1), len(task.labels))
    if split == "test":
        keep = y >= 0
        metrics["weighted_f1_ci95"] = list(weighted_f1_ci(y[keep], probs.argmax(1)[keep], len(task.labels)))
        confusion_png(run_dir / plot_name, conf, task.labels, f"{task.name} · test")
    return metrics, rows, conf


def run_notes(cfg: RunConfig, data: PreparedData, datasets, result: FitState) -> list[str]:
    score = "mean dev weighted F1 over tasks" if len(data.tasks) > 1 else "best dev weighted F1"
    return list(data.notes) + [
        f"{score} {result.best_score:.3f} at epoch {result.best_epoch}: the epoch was chosen on dev only; loss "
        "weights, learning rates and the rest are as configured (config.yaml), not tuned on test",
        "split sizes: " + ", ".join(f"{k} {len(v)}" for k, v in datasets.items()),
        f"text encoder `{cfg.text_encoder.name}` ({'fine-tuned' if cfg.text_encoder.trainable else 'frozen'}), "
        f"image encoder `{cfg.image_encoder.name}` ({'fine-tuned' if cfg.image_encoder.trainable else 'frozen'})",
    ]


def evaluate_and_report(run_dir: Path, cfg: RunConfig, data: PreparedData, datasets, loaders, fabric, fstep,
                        result: FitState) -> tuple[dict, dict]:
    """metrics.json ({split: {task: metrics}}) and report.md; returns (metrics, {task: majority baseline})."""
    multi = len(data.tasks) > 1
    predictions = {name: predict(fabric, fstep, loaders[name], multi_label=multi_labels(data))
                   for name in ("dev", "test") if len(datasets[name])}
    metrics: dict[str, dict] = {name: {} for name in predictions}
    eval_split = "test" if "test" in predictions else "dev"
    baselines, notes = {}, run_notes(cfg, data, datasets, result)
    for task in data.tasks:
        per, conf = {}, {}
        for name, pred in predictions.items():
            plot = f"confusion_test_{task.name}.png" if multi else "confusion_test.png"
            metrics[name][task.name], per[name], c = split_metrics(run_dir, task, name, pred, plot)
            if c is not None:
                conf[name] = c
        baselines[task.name] = baseline_of(task, datasets["train"].task_labels[task.name].numpy(),
                                           datasets[eval_split].task_labels[task.name].numpy())
        folder = run_dir / "tasks" / task.name if multi else run_dir
        folder.mkdir(parents=True, exist_ok=True)
        write_report(folder, title=f"{cfg.model.name} · {cfg.objectives.aux_name()} · {task.name}", task=task.name,
                     labels=task.labels, split_metrics={k: v[task.name] for k, v in metrics.items()},
                     baseline=baselines[task.name], per_class_rows=per, confusions=conf, notes=notes,
                     history=result.history)
    write_metrics(run_dir, metrics)
    if multi:
        write_task_index(run_dir, cfg, data, metrics, baselines, eval_split)
    return metrics, baselines


def multi_labels(data: PreparedData) -> tuple[str, ...]:
    return tuple(t.name for t in data.tasks if t.multi_label)


def write_task_index(run_dir: Path, cfg: RunConfig, data: PreparedData, metrics: dict, baselines: dict,
                     split: str) -> None:
    """report.md of a multi-task run: one line per task (weighted F1 on the evaluation split against its majority
    baseline) and a link to that task's own report."""
    from mmpost.atomic import atomic_write_text
    lines = [f"# {cfg.model.name} · {cfg.objectives.aux_name()} · {len(data.tasks)} tasks\n",
             f"One model, one head per task; weighted F1 on {split}. Each task's report: `tasks/<task>/report.md`.\n",
             "| task | labels | weighted F1 | majority class | report |", "|---|---|---:|---:|---|"]
    for task in data.tasks:
        m, b = metrics[split][task.name], baselines[task.name]
        kind = "multi-label" if task.multi_label else f"{len(task.labels)} classes"
        lines.append(f"| `{task.name}` | {kind} | {m['weighted_f1']:.3f} | {b['weighted_f1']:.3f} | "
                     f"[report](tasks/{task.name}/report.md) |")
    atomic_write_text(run_dir / "report.md", "\n".join(lines) + "\n")
