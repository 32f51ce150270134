"""The predictions a run keeps: ``predictions_dev.jsonl`` and ``predictions_test.jsonl`` in its folder, one record
per post of the split in the shared schema (:mod:`mmpost.evaluation.predictions`: id, label, calibrated probs,
probs_raw, image_used, gold). Error analysis, ``mmpost report``, ``mmpost calibrate`` and ``mmpost cv`` read them
instead of predicting again. Runs saved before these names wrote ``dev_predictions.jsonl`` /
``test_predictions.jsonl``; those are still read."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmpost.evaluation.predictions import Task, record_tasks

__all__ = ["PREDICTIONS_FILES", "SavedSplit", "predictions_path", "read_records", "read_saved_split"]

PREDICTIONS_FILES = {"dev": "predictions_dev.jsonl", "test": "predictions_test.jsonl"}
_EARLIER_NAMES = {"dev": "dev_predictions.jsonl", "test": "test_predictions.jsonl"}


def predictions_path(run_dir: str | Path, split: str) -> Path:
    """Where the run keeps the predictions of ``split`` (the earlier name where only that file exists)."""
    run_dir = Path(run_dir)
    path = run_dir / PREDICTIONS_FILES[split]
    earlier = run_dir / _EARLIER_NAMES[split]
    return earlier if not path.exists() and earlier.exists() else path


def read_records(run_dir: str | Path, split: str) -> list[dict[str, Any]]:
    """The records of one split, in the split's order; ``FileNotFoundError`` names the file when there is none."""
    path = predictions_path(run_dir, split)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the run keeps no {split} predictions (runs trained before "
                                "they were kept must be trained again)")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {n} is not JSON ({e.msg})") from None
    return out


@dataclass
class SavedSplit:
    """One split's saved predictions as arrays: ``probs[task]`` [N, C] in the task's label order."""

    ids: list[str]
    probs: dict[str, np.ndarray]
    probs_raw: dict[str, np.ndarray]
    image_used: np.ndarray


def read_saved_split(run_dir: str | Path, split: str, tasks: Sequence[Task]) -> SavedSplit:
    records = read_records(run_dir, split)
    probs: dict[str, list[list[float]]] = {t.name: [] for t in tasks}
    raw: dict[str, list[list[float]]] = {t.name: [] for t in tasks}
    for n, record in enumerate(records, 1):
        try:
            parts = record_tasks(record, tasks)
            for t in tasks:
                probs[t.name].append([float(parts[t.name]["probs"][label]) for label in t.labels])
                got = parts[t.name].get("probs_raw", parts[t.name]["probs"])
                raw[t.name].append([float(got[label]) for label in t.labels])
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"{predictions_path(run_dir, split)}: line {n} is not a prediction record of this "
                             f"run's tasks ({e})") from None
    n_labels = {t.name: len(t.labels) for t in tasks}
    return SavedSplit(ids=[str(r.get("id")) for r in records],
                      probs={k: np.asarray(v, dtype=np.float64).reshape(-1, n_labels[k]) for k, v in probs.items()},
                      probs_raw={k: np.asarray(v, dtype=np.float64).reshape(-1, n_labels[k]) for k, v in raw.items()},
                      image_used=np.asarray([bool(r.get("image_used")) for r in records], dtype=bool))
