"""Read back what a finished run wrote — ``metrics.json``, ``evaluations/*/metrics.json`` and ``log.csv`` —
with errors that name the file, the row and the field, since a report is often made long after the run."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from mmpost.evaluation.report_content import METRIC_COLUMNS

IMPROVEMENT = 1e-6     # the engine's early stopping counts an epoch as better only above this margin


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def metric_rows(path: Path, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """``("<prefix><split> · <task>", metrics)`` for every split and task of a metrics.json."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected {{split: {{task: metrics}}}}, got a {type(data).__name__}")
    rows = []
    for split, tasks in data.items():
        if not isinstance(tasks, dict):
            raise ValueError(f"{path}: split {split!r}: expected {{task: metrics}}, got {tasks!r}")
        for task, m in tasks.items():
            missing = [k for k, _ in METRIC_COLUMNS if not isinstance(m, dict) or k not in m]
            if missing:
                raise ValueError(f"{path}: {split} · {task}: missing field(s) {', '.join(missing)}")
            rows.append((f"{prefix}{split} · {task}", m))
    return rows


def run_metric_rows(run_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """The run's own metrics, then those of every later ``mmpost evaluate`` (``evaluations/<name>/``)."""
    rows = metric_rows(run_dir / "metrics.json")
    for path in sorted((run_dir / "evaluations").glob("*/metrics.json")):
        rows += metric_rows(path, prefix=f"evaluation {path.parent.name}: ")
    return rows


def read_log(path: Path) -> list[dict[str, float]]:
    """The engine's ``log.csv``: one row per epoch, every column a number (an empty cell is NaN)."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "epoch" not in reader.fieldnames:
            raise ValueError(f"{path}: the header has no `epoch` column (got {reader.fieldnames})")
        rows = []
        for line, raw in enumerate(reader, start=2):
            row: dict[str, float] = {}
            for key, value in raw.items():
                if key is None:
                    raise ValueError(f"{path}:{line}: more cells than the header has columns")
                try:
                    row[key] = float(value) if value not in ("", None) else math.nan
                except ValueError:
                    raise ValueError(f"{path}:{line}: column {key!r}: {value!r} is not a number") from None
            rows.append(row)
    return rows


def chosen_epoch(history: list[dict[str, float]]) -> int | None:
    """The epoch whose weights the run kept: the first best dev weighted F1, as the engine's early stopping
    picks it. None when the log has no dev score."""
    best, best_epoch = -math.inf, None
    for i, row in enumerate(history):
        score = row.get("dev_weighted_f1", math.nan)
        if score == score and score > best + IMPROVEMENT:
            best, best_epoch = score, int(row.get("epoch", i + 1))
    return best_epoch
