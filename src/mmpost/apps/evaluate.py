"""Evaluate a finished run on its own test split or on another manifest."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mmpost.apps.predictor import Predictor
from mmpost.apps.prepare import prepare
from mmpost.config import load_config
from mmpost.data.dataset import label_ids
from mmpost.evaluation.metrics import classification_metrics, confusion, per_class
from mmpost.evaluation.plots import confusion_png
from mmpost.evaluation.report import write_metrics, write_report
from mmpost.evaluation.uncertainty import weighted_f1_ci


def evaluate(run_dir: str | Path, data: str | None = None, overrides: list[str] | None = None,
             progress: bool = True) -> tuple[dict, Path]:
    """Metrics {split: {task: {...}}} and the folder they were written to.

    ``data``: a CSV/JSONL manifest read with the run's column mapping (all its posts are evaluated);
    without it, the run's own test split. ``overrides``: ``data.*`` keys (e.g. ``data.columns.image_root=...``).
    """
    run_dir = Path(run_dir)
    predictor = Predictor(run_dir)
    cfg = load_config(run_dir / "config.yaml", overrides)
    dcfg = cfg.data
    if data is not None:
        p = Path(data).expanduser()
        dcfg = replace(dcfg, source="manifest", path=str(p.resolve()) if p.exists() else data, limit=None)
    prepared = prepare(dcfg, predictor.task, labels=predictor.labels, progress=progress, require_splits=False)
    if data is not None:
        posts = [p for s in prepared.splits.values() for p in s]
        split, out = "all", run_dir / "evaluations" / Path(data).stem
    else:
        posts, split, out = prepared.splits["test"], "test", run_dir / "evaluations" / "test"
    if not posts:
        raise ValueError("no labelled posts to evaluate")
    probs = predictor.predict_proba(posts, progress=progress)
    y = label_ids(posts, predictor.task, predictor.labels)
    pred = probs.argmax(1)
    k = len(predictor.labels)
    metrics = {split: {predictor.task: classification_metrics(y, pred, k)}}
    metrics[split][predictor.task]["weighted_f1_ci95"] = list(weighted_f1_ci(y, pred, k))
    out.mkdir(parents=True, exist_ok=True)
    matrix = confusion(y, pred, k)
    confusion_png(out / f"confusion_{split}.png", matrix, predictor.labels, f"{predictor.task} · {split}")
    write_metrics(out, metrics)
    write_report(out, title=f"Evaluation of {run_dir.name} on {data or 'its test split'}", task=predictor.task,
                 labels=predictor.labels, split_metrics={split: metrics[split][predictor.task]}, baseline=None,
                 per_class_rows={split: per_class(y, pred, predictor.labels)},
                 confusions={split: matrix}, notes=prepared.notes)
    return metrics, out
