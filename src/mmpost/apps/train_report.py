"""The end of a training run: every task scored on dev and test with the best weights, metrics.json, the majority
baseline, confusion plots, report.md (one section per task) and the test predictions in the shared schema."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mmpost.apps.prepare import PreparedData
from mmpost.config import RunConfig
from mmpost.data.tasks import TaskSpec
from mmpost.engine.loop import FitState, Predictions, predict
from mmpost.evaluation.metrics import confusion, majority_baseline
from mmpost.evaluation.multi_label import multi_label_metrics
from mmpost.evaluation.plots import confusion_png
from mmpost.evaluation.predictions import Task, prediction_records, write_predictions
from mmpost.evaluation.report import TaskReport, write_metrics, write_tasks_report
from mmpost.evaluation.task_metrics import labelled_rows, metrics_of, per_class_rows
from mmpost.evaluation.task_scores import confusion_file
from mmpost.evaluation.uncertainty import weighted_f1_ci

TEST_PREDICTIONS = "test_predictions.jsonl"


def baseline_of(task: TaskSpec, train_labels: np.ndarray, eval_labels: np.ndarray) -> dict:
    """Always predicting the training majority: the most frequent class, or each label's majority (0/1)."""
    if not task.multi_label:
        return majority_baseline(train_labels, eval_labels, len(task.labels))
    rows = labelled_rows(train_labels)
    majority = (train_labels[rows].mean(axis=0) >= 0.5) if rows.any() else np.zeros(len(task.labels), dtype=bool)
    keep = labelled_rows(eval_labels)
    return multi_label_metrics(eval_labels[keep], np.tile(majority.astype(np.int64), (int(keep.sum()), 1)))


def task_report(run_dir: Path, task: TaskSpec, predictions: dict[str, Predictions], n_tasks: int) -> TaskReport:
    """One task's metrics, per-class rows and confusion matrices on every scored split; test adds the bootstrap
    interval of weighted F1 and the confusion plot (single-label tasks)."""
    report = TaskReport(task.name, task.labels, {}, {}, multi_label=task.multi_label)
    for split, pred in predictions.items():
        y, probs = pred.labels[task.name], pred.probs[task.name]
        report.split_metrics[split] = metrics_of(y, probs, task.labels, task.multi_label)
        report.per_class_rows[split] = per_class_rows(y, probs, task.labels, task.multi_label)
        if task.multi_label:
            continue
        report.confusions[split] = confusion(y, probs.argmax(1), len(task.labels))
        if split == "test":
            keep = y >= 0
            report.split_metrics[split]["weighted_f1_ci95"] = list(
                weighted_f1_ci(y[keep], probs.argmax(1)[keep], len(task.labels)))
            confusion_png(run_dir / confusion_file(split, task.name, n_tasks), report.confusions[split],
                          task.labels, f"{task.name} · {split}")
    return report


def run_notes(cfg: RunConfig, data: PreparedData, datasets, result: FitState) -> list[str]:
    score = "mean dev weighted F1 over tasks" if len(data.tasks) > 1 else "best dev weighted F1"
    return list(data.notes) + [
        f"{score} {result.best_score:.3f} at epoch {result.best_epoch}: the epoch was chosen on dev only; loss "
        "weights, learning rates and the rest are as configured (config.yaml), not tuned on test",
        "split sizes: " + ", ".join(f"{k} {len(v)}" for k, v in datasets.items()),
        f"text encoder `{cfg.text_encoder.name}` ({'fine-tuned' if cfg.text_encoder.trainable else 'frozen'}), "
        f"image encoder `{cfg.image_encoder.name}` ({'fine-tuned' if cfg.image_encoder.trainable else 'frozen'})",
    ]


def multi_labels(data: PreparedData) -> tuple[str, ...]:
    return tuple(t.name for t in data.tasks if t.multi_label)


def save_test_predictions(run_dir: Path, data: PreparedData, datasets, pred: Predictions) -> None:
    """test_predictions.jsonl: one record per test post (id, label, probs, image_used, gold)."""
    posts = data.splits["test"]
    tasks = [Task(t.name, tuple(t.labels), t.multi_label) for t in data.tasks]
    records = prediction_records([p.id for p in posts], tasks, pred.probs,
                                 datasets["test"].has_image.numpy().tolist(),
                                 gold=[p.labels for p in posts], decimals=6)
    write_predictions(run_dir / TEST_PREDICTIONS, records)


def evaluate_and_report(run_dir: Path, cfg: RunConfig, data: PreparedData, datasets, loaders, fabric, fstep,
                        result: FitState) -> tuple[dict, dict]:
    """metrics.json ({split: {task: metrics}}), report.md and the test predictions; returns (metrics,
    {task: majority baseline})."""
    predictions = {name: predict(fabric, fstep, loaders[name], multi_label=multi_labels(data))
                   for name in ("dev", "test") if len(datasets[name])}
    eval_split = "test" if "test" in predictions else "dev"
    reports = [task_report(run_dir, t, predictions, len(data.tasks)) for t in data.tasks]
    for task, report in zip(data.tasks, reports):
        report.baseline = baseline_of(task, datasets["train"].task_labels[task.name].numpy(),
                                      datasets[eval_split].task_labels[task.name].numpy())
    metrics = {split: {r.task: r.split_metrics[split] for r in reports} for split in predictions}
    write_metrics(run_dir, metrics)
    if "test" in predictions:
        save_test_predictions(run_dir, data, datasets, predictions["test"])
    names = data.task if len(data.tasks) == 1 else f"{len(data.tasks)} tasks"
    write_tasks_report(run_dir, title=f"{cfg.model.name} · {cfg.objectives.aux_name()} · {names}", tasks=reports,
                       notes=run_notes(cfg, data, datasets, result), history=result.history)
    return metrics, {r.task: r.baseline for r in reports}
