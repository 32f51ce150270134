"""The end of a training run: every task scored on dev and test with the best weights, metrics.json, the majority
baseline, confusion plots, report.md (one section per task) and the test predictions in the shared schema."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mmpost.apps.prepare import PreparedData
from mmpost.apps.run_calibration import calibrated, calibration_rows, fit_calibration, reliability_figure
from mmpost.atomic import atomic_write_json, atomic_write_text
from mmpost.config import RunConfig
from mmpost.data.tasks import TaskSpec
from mmpost.engine.loop import FitState, Predictions, predict
from mmpost.evaluation.calibration import CALIBRATION_FILE, Calibration
from mmpost.evaluation.metrics import confusion, majority_baseline
from mmpost.evaluation.multi_label import multi_label_metrics
from mmpost.evaluation.plots import confusion_png
from mmpost.evaluation.predictions import Task, prediction_records, write_predictions
from mmpost.evaluation.report import TaskReport, write_metrics, write_tasks_report
from mmpost.evaluation.saved_predictions import PREDICTIONS_FILES
from mmpost.evaluation.task_metrics import labelled_rows, metrics_of, per_class_rows
from mmpost.evaluation.task_scores import confusion_file
from mmpost.evaluation.uncertainty import weighted_f1_ci


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


def save_predictions(path: Path, data: PreparedData, split: str, datasets, pred: Predictions,
                     raw: Predictions) -> None:
    """One record per post of ``split`` (id, label, probs (calibrated), probs_raw, image_used, gold)."""
    posts = data.splits[split]
    tasks = [Task(t.name, tuple(t.labels), t.multi_label) for t in data.tasks]
    records = prediction_records([p.id for p in posts], tasks, pred.probs,
                                 datasets[split].has_image.numpy().tolist(),
                                 gold=[p.labels for p in posts], decimals=6, probs_raw=raw.probs)
    write_predictions(path, records)


def add_calibration(run_dir: Path, data: PreparedData, reports: list[TaskReport], raw: dict[str, Predictions],
                    calibration: Calibration, eval_split: str) -> None:
    """Every task's temperature, ECE and NLL before and after, per split, into its metrics; the reliability
    diagram of the evaluation split."""
    for task, report in zip(data.tasks, reports):
        for split, pred in raw.items():
            rows = calibration_rows(pred, calibration, task)
            report.calibration[split] = rows
            report.split_metrics[split].update(rows)
        report.reliability_png = reliability_figure(run_dir, eval_split, raw[eval_split], calibration, task,
                                                    len(data.tasks))


def the_command(run_dir: Path) -> str:
    """The command line that made the run, when it came from the ``mmpost`` command; else how to repeat it."""
    import shlex
    import sys
    if Path(sys.argv[0]).name == "mmpost":
        return shlex.join(["mmpost", *sys.argv[1:]])
    return f"mmpost train {shlex.quote(str(run_dir / 'config.yaml'))}   # made from Python; this repeats it"


def write_card(run_dir: Path, cfg: RunConfig, data: PreparedData, metrics: dict, baselines: dict,
               calibration: Calibration) -> None:
    """README.md: the run's model card (:mod:`mmpost.evaluation.model_card`)."""
    from mmpost.evaluation.model_card import model_card
    source = cfg.data.path or ", ".join(cfg.data.files.values()) or cfg.data.source
    counts = ", ".join(f"{k} {len(v):,}" for k, v in data.splits.items())
    enc = (f"text `{cfg.text_encoder.name}` ({'fine-tuned' if cfg.text_encoder.trainable else 'frozen'}), image "
           f"`{cfg.image_encoder.name}` ({'fine-tuned' if cfg.image_encoder.trainable else 'frozen'})")
    card = model_card(name=run_dir.name, tasks=data.tasks, metrics=metrics, baselines=baselines,
                      data=f"`{source}` (data.source `{cfg.data.source}`): {counts} posts; split saved in "
                           "`splits.csv`.", encoders=enc,
                      model=f"`{cfg.model.name}`, objectives {cfg.objectives.aux_name()}",
                      calibration=calibration.temperatures, command=the_command(run_dir), notes=data.notes)
    atomic_write_text(run_dir / "README.md", card)


def evaluate_and_report(run_dir: Path, cfg: RunConfig, data: PreparedData, datasets, loaders, fabric, fstep,
                        result: FitState) -> tuple[dict, dict]:
    """calibration.json (temperatures fitted on dev), metrics.json ({split: {task: metrics}}), report.md and the
    dev and test predictions; returns (metrics, {task: majority baseline})."""
    raw = {name: predict(fabric, fstep, loaders[name], multi_label=multi_labels(data))
           for name in ("dev", "test") if len(datasets[name])}
    calibration = fit_calibration(cfg.calibration, data.tasks, raw.get("dev"))
    atomic_write_json(run_dir / CALIBRATION_FILE, calibration.to_json())
    predictions = {name: calibrated(pred, calibration, data.tasks) for name, pred in raw.items()}
    eval_split = "test" if "test" in predictions else "dev"
    reports = [task_report(run_dir, t, predictions, len(data.tasks)) for t in data.tasks]
    add_calibration(run_dir, data, reports, raw, calibration, eval_split)
    for task, report in zip(data.tasks, reports):
        report.baseline = baseline_of(task, datasets["train"].task_labels[task.name].numpy(),
                                      datasets[eval_split].task_labels[task.name].numpy())
    metrics = {split: {r.task: r.split_metrics[split] for r in reports} for split in predictions}
    write_metrics(run_dir, metrics)
    for split, name in PREDICTIONS_FILES.items():
        if split in predictions:
            save_predictions(run_dir / name, data, split, datasets, predictions[split], raw[split])
    write_card(run_dir, cfg, data, metrics, {r.task: r.baseline for r in reports}, calibration)
    names = data.task if len(data.tasks) == 1 else f"{len(data.tasks)} tasks"
    write_tasks_report(run_dir, title=f"{cfg.model.name} · {cfg.objectives.aux_name()} · {names}", tasks=reports,
                       notes=run_notes(cfg, data, datasets, result), history=result.history)
    return metrics, {r.task: r.baseline for r in reports}
