"""Scoring a loaded run (any object with the Predictor's ``run_dir``, ``tasks``, ``task``, ``labels``,
``calibration`` and ``scores``) on its own test split or on another manifest: what ``mmpost evaluate``,
``model.evaluate(df)`` share. It does not import the Predictor, so the Predictor can call it."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mmpost.apps.prepare import PreparedData, in_own_layout, prepare
from mmpost.config import load_config, resolve
from mmpost.data.file_columns import complete_mapping
from mmpost.data.saved_splits import SPLITS_FILE
from mmpost.evaluation.plots import confusion_png
from mmpost.evaluation.report import TaskReport, write_metrics, write_tasks_report
from mmpost.evaluation.task_scores import TaskScore, calibration_scores, confusion_file, score_task


def evaluate_loaded(predictor: Any, data: str | None = None, overrides: list[str] | None = None,
                    progress: bool = True) -> tuple[dict, Path]:
    """Metrics {split: {task: {...}}} and the folder they were written to (``RUN/evaluations/<name>``).

    ``data``: a CSV/JSONL/Parquet manifest read with the run's column mapping, or, for a run trained on a dataset
    adapter, a file in that dataset's own layout read by the adapter (all its posts are evaluated);
    without it, the run's own test split. ``overrides``: ``data.*`` keys (e.g. ``data.columns.image_root=...``).
    """
    run_dir = Path(predictor.run_dir)
    prepared = _prepared(run_dir, predictor, data, overrides, progress)
    if data is not None:
        posts = [p for s in prepared.splits.values() for p in s]
        split, out = "all", run_dir / "evaluations" / Path(data).stem
    else:
        posts, split, out = prepared.splits["test"], "test", run_dir / "evaluations" / "test"
    if not posts:
        raise ValueError("no labelled posts to evaluate")
    got = predictor.scores(posts, progress=progress)
    scores = [score_task(t, posts, got.probs[t.name], interval=True) for t in predictor.tasks]
    for s in scores:
        s.metrics.update(calibration_scores(s.task, posts, got.probs[s.task.name], got.probs_raw[s.task.name]),
                         temperature=predictor.calibration.temperatures.get(s.task.name, 1.0))
    metrics = {split: {s.task.name: s.metrics for s in scores}}
    out.mkdir(parents=True, exist_ok=True)
    _confusion_figures(out, split, scores)
    write_metrics(out, metrics)
    write_tasks_report(out, title=f"Evaluation of {run_dir.name} on {data or 'its test split'}",
                       tasks=[_task_report(split, s) for s in scores], notes=prepared.notes)
    return metrics, out


def _prepared(run_dir: Path, predictor: Any, data: str | None, overrides: list[str] | None,
              progress: bool) -> PreparedData:
    """The posts to evaluate, read as the run's first task reads them (its labels checked): another file as a whole,
    or the run's own test split, exactly as its ``splits.csv`` recorded it (runs saved before it: split again)."""
    dcfg = load_config(run_dir / "config.yaml", overrides).data
    if data is not None and in_own_layout(dcfg, data):      # e.g. MultiOFF's test file for a multioff run
        dcfg = replace(dcfg, limit=None, files={}, splits_from=None)
        return prepare(dcfg, predictor.task, labels=predictor.labels, path=data, progress=progress,
                       require_splits=False)
    if data is not None:
        p = Path(data).expanduser()
        dcfg = replace(dcfg, source="manifest", path=str(p.resolve()) if p.exists() else data, limit=None,
                       files={}, splits_from=None)
        path = str(resolve(dcfg, dcfg.path))
        dcfg = replace(dcfg, columns=complete_mapping(path, dcfg.columns, [t.name for t in predictor.tasks]))
    elif (run_dir / SPLITS_FILE).exists():
        dcfg = replace(dcfg, splits_from=str(run_dir))
    return prepare(dcfg, predictor.task, labels=predictor.labels, progress=progress, require_splits=False)


def _confusion_figures(out: Path, split: str, scores: list[TaskScore]) -> None:
    for s in scores:
        if s.confusion is not None:
            confusion_png(out / confusion_file(split, s.task.name, len(scores)), s.confusion, list(s.task.labels),
                          f"{s.task.name} · {split}")


def _task_report(split: str, s: TaskScore) -> TaskReport:
    calibration = {split: {k: s.metrics[k] for k in ("temperature", "ece_raw", "ece", "nll_raw", "nll")}}
    return TaskReport(s.task.name, list(s.task.labels), {split: s.metrics}, {split: s.per_class},
                      {split: s.confusion} if s.confusion is not None else {}, multi_label=s.task.multi_label,
                      calibration=calibration)
