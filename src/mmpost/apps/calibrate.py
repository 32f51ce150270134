"""``mmpost calibrate RUN --operating-point TASK:precision=0.9 [--positive LABEL]``: a decision threshold for a
binary task, chosen on the run's dev predictions, checked once on its test predictions, and saved with the run
(``calibration.json``), so that predict, evaluate and serve decide by it."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmpost.apps.run_calibration import load_calibration
from mmpost.atomic import atomic_write_json
from mmpost.evaluation.calibration import CALIBRATION_FILE
from mmpost.evaluation.operating_point import (
    OperatingPoint,
    choose_threshold,
    parse_operating_point,
    precision_recall_at,
)
from mmpost.evaluation.predictions import Task, record_tasks, run_tasks
from mmpost.evaluation.saved_predictions import predictions_path, read_records


@dataclass
class OperatingPointResult:
    point: OperatingPoint
    test_precision: float | None
    test_recall: float | None
    test_predicted_positive: int | None
    test_n: int
    notes: list[str]


def binary_task(tasks: list[Task], name: str) -> Task:
    """The task named (the first one for ""), which must be a single-label task with two labels."""
    task = tasks[0] if not name else next((t for t in tasks if t.name == name), None)
    if task is None:
        raise ValueError(f"the run has no task {name!r}; its tasks: {', '.join(t.name for t in tasks)}")
    if task.multi_label or len(task.labels) != 2:
        raise ValueError(f"task {task.name}: an operating point needs a binary task (two labels, one per post); "
                         f"it has labels {list(task.labels)}{' (multi-label)' if task.multi_label else ''}")
    return task


def split_scores(run_dir: Path, split: str, tasks: list[Task], task: Task, positive: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(probability of ``positive``, gold is ``positive``) of the labelled posts of a split's saved predictions."""
    path = predictions_path(run_dir, split)
    scores, gold = [], []
    for n, record in enumerate(read_records(run_dir, split), 1):
        try:
            part = record_tasks(record, tasks)[task.name]
        except (ValueError, KeyError) as e:
            raise ValueError(f"{path}: line {n}: not a prediction record of task {task.name} ({e})") from None
        if part.get("gold") is None:
            continue
        scores.append(float(part["probs"][positive]))
        gold.append(part["gold"] == positive)
    return np.asarray(scores, dtype=np.float64), np.asarray(gold, dtype=bool)


def default_positive(run_dir: Path, tasks: list[Task], task: Task) -> str:
    """The rarer label on dev (what analysts threshold: fake, hateful, offensive ...)."""
    counts: Counter[str] = Counter()
    for record in read_records(run_dir, "dev"):
        gold = record_tasks(record, tasks)[task.name].get("gold")
        if gold is not None:
            counts[str(gold)] += 1
    return min(task.labels, key=lambda label: (counts[label], task.labels.index(label)))


def set_operating_point(run_dir: str | Path, spec: str, positive: str | None = None) -> OperatingPointResult:
    """Choose the threshold of ``spec`` (``TASK:precision=0.9`` / ``TASK:recall=0.8``) on dev, report test
    precision and recall at it, and save it in the run's calibration.json (replacing an earlier one)."""
    run_dir = Path(run_dir)
    name, metric, target = parse_operating_point(spec)
    tasks = run_tasks(run_dir)
    task = binary_task(tasks, name)
    notes: list[str] = []
    if positive is None:
        positive = default_positive(run_dir, tasks, task)
        notes.append(f"positive label: {positive} (the rarer one on dev; --positive chooses another)")
    elif positive not in task.labels:
        raise ValueError(f"--positive {positive!r} is not a label of task {task.name}: {list(task.labels)}")
    dev_scores, dev_gold = split_scores(run_dir, "dev", tasks, task, positive)
    point = choose_threshold(dev_scores, dev_gold, metric=metric, target=target, task=task.name,
                             positive_label=positive)
    if not point.reached:
        notes.append(f"dev never reaches {metric} {target:g}: the threshold with the best dev {metric} "
                     f"({point.dev_precision if metric == 'precision' else point.dev_recall:.3f}) was taken")
    result = OperatingPointResult(point, None, None, None, 0, notes)
    if predictions_path(run_dir, "test").exists():
        test_scores, test_gold = split_scores(run_dir, "test", tasks, task, positive)
        p, r, k = precision_recall_at(test_scores, test_gold, point.threshold)
        result = replace(result, test_precision=p, test_recall=r, test_predicted_positive=k, test_n=len(test_gold))
    save_point(run_dir, tasks, point, result)
    return result


def save_point(run_dir: Path, tasks: list[Task], point: OperatingPoint, result: OperatingPointResult) -> None:
    """The threshold into calibration.json (read by predict and serve); the test check into operating_point.json."""
    cal = load_calibration(run_dir, [t.name for t in tasks])
    cal = replace(cal, thresholds={**cal.thresholds, point.task: point.to_json()})
    atomic_write_json(run_dir / CALIBRATION_FILE, cal.to_json())
    report: dict[str, Any] = {**point.to_json(), "test_precision": result.test_precision,
                              "test_recall": result.test_recall, "test_predicted_positive":
                              result.test_predicted_positive, "test_n": result.test_n, "notes": result.notes}
    atomic_write_json(run_dir / f"operating_point_{point.task}.json", report)
