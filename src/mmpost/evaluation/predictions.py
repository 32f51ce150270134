"""The one shape of a prediction, whoever writes it (``mmpost predict``, ``mmpost serve``, saved test
predictions, cross-validation, sharded prediction), and the tasks a run predicts, read from its ``labels.json``.

A run with one task writes, per post::

    {"id": "17", "label": "positive", "probs": {"negative": 0.1, "neutral": 0.2, "positive": 0.7},
     "image_used": true, "gold": "neutral"}

and a run with several tasks::

    {"id": "17", "image_used": true,
     "tasks": {"sentiment": {"label": "positive", "probs": {...}, "gold": "neutral"},
               "topics": {"label": ["sport"], "probs": {"sport": 0.9, "food": 0.1}}}}

``probs`` maps every label name, in the run's label order, to its probability, calibrated (temperature scaling
fitted on dev; ``probs_raw``, where present, holds the model's own). A single-label task's probabilities sum to 1
and its ``label`` is the most probable one, or, for a binary task with an operating point (``mmpost calibrate``),
the positive label where its probability reaches the chosen threshold; a multi-label task's are independent
(sigmoids) and its ``label`` is the list of labels at or above :data:`MULTI_LABEL_THRESHOLD`. ``gold`` (the
label the data gives the post) is there only where it is known. ``image_used`` is False where the post had no
usable image and the learned "no image" vector stood in.

Plain data only: nothing here imports torch, the apps, the engine or the CLI.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmpost.atomic import atomic_write_text

MULTI_LABEL_THRESHOLD = 0.5
LABELS_FILE = "labels.json"


@dataclass(frozen=True)
class Task:
    """One task of a run: its name, its label names (in the order of the model's outputs) and whether a post
    may carry several of its labels at once."""

    name: str
    labels: tuple[str, ...]
    multi_label: bool = False
    positive: str | None = None         # a binary task's operating point: predict ``positive`` where its
    threshold: float | None = None      # probability is at least ``threshold`` (else the other label)

    def with_threshold(self, positive: str, threshold: float) -> Task:
        """This task deciding by an operating point; only a single-label task with two labels has one."""
        if self.multi_label or len(self.labels) != 2 or positive not in self.labels:
            raise ValueError(f"task {self.name}: an operating point needs a single-label task with two labels and "
                             f"one of them as the positive label; labels {list(self.labels)}, positive {positive!r}")
        return Task(self.name, self.labels, self.multi_label, positive, float(threshold))


# --------------------------------------------------------------------------------------------- labels.json


def tasks_from_json(info: Any, source: str = LABELS_FILE) -> list[Task]:
    """The tasks a ``labels.json`` describes, in task order. Two shapes are read:
    ``{"tasks": {NAME: {"labels": [...], "multi_label": bool}, ...}}`` and, from runs saved before several
    tasks, ``{"task": NAME, "labels": [...]}``. ``source`` names the file in error messages."""
    if not isinstance(info, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(info).__name__}")
    if "tasks" in info:
        entries = info["tasks"]
        if not isinstance(entries, dict) or not entries:
            raise ValueError(f"{source}: `tasks` must map each task name to {{\"labels\": [...]}}, got {entries!r}")
        return [_task(name, spec, f"{source}: tasks.{name}") for name, spec in entries.items()]
    if "task" in info:
        return [_task(info["task"], info, source)]
    raise ValueError(f"{source}: has neither `tasks` nor `task`; expected "
                     "{\"tasks\": {NAME: {\"labels\": [...], \"multi_label\": false}}}")


def _task(name: Any, spec: Any, where: str) -> Task:
    labels = spec.get("labels") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: the task name must be a non-empty string, got {name!r}")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"{where}: `labels` must be a non-empty list of label names, got {labels!r}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"{where}: `labels` names a label twice: {labels}")
    multi = spec.get("multi_label", False)
    if not isinstance(multi, bool):
        raise ValueError(f"{where}: `multi_label` must be true or false, got {multi!r}")
    return Task(name, tuple(labels), multi)


def run_tasks(run_dir: str | Path) -> list[Task]:
    """The tasks of a finished run, from its ``labels.json`` (either shape), in task order."""
    path = Path(run_dir) / LABELS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{Path(run_dir)} is not a finished mmpost run: {LABELS_FILE} is missing")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    return tasks_from_json(info, str(path))


def tasks_to_json(tasks: Sequence[Task]) -> dict[str, Any]:
    """What a run writes to ``labels.json``: ``{"tasks": {NAME: {"labels": [...], "multi_label": bool}}}``."""
    names = [t.name for t in tasks]
    if not tasks or len(set(names)) != len(names):
        raise ValueError(f"a run needs at least one task and distinct task names, got {names}")
    return {"tasks": {t.name: {"labels": list(t.labels), "multi_label": t.multi_label} for t in tasks}}


# ---------------------------------------------------------------------------------------------- records


def threshold_decision(task: Task, probs: Any) -> Any:
    """A binary task's operating point: the positive label's index where its probability reaches the threshold,
    else the other's (``probs``: one post's [C] or an array [N, C])."""
    import numpy as np
    pos = task.labels.index(task.positive)
    return np.where(np.asarray(probs)[..., pos] >= task.threshold, pos, 1 - pos)


def predicted_label(task: Task, probs: Sequence[float]) -> str | list[str]:
    """The most probable label, or for a multi-label task every label at or above the threshold."""
    if len(probs) != len(task.labels):
        raise ValueError(f"task {task.name}: {len(probs)} probabilities for {len(task.labels)} labels")
    if task.multi_label:
        return [name for name, p in zip(task.labels, probs) if p >= MULTI_LABEL_THRESHOLD]
    if task.threshold is not None and task.positive is not None:
        return task.labels[threshold_decision(task, probs)]
    best = max(range(len(probs)), key=lambda k: probs[k])       # the first of equals, as numpy's argmax
    return task.labels[best]


def _named(task: Task, probs: Sequence[float], decimals: int | None) -> dict[str, float]:
    return {name: (round(float(p), decimals) if decimals is not None else float(p))
            for name, p in zip(task.labels, probs)}


def task_prediction(task: Task, probs: Sequence[float], gold: Any = None,
                    decimals: int | None = None, probs_raw: Sequence[float] | None = None) -> dict[str, Any]:
    """``{"label", "probs", "probs_raw"?, "gold"?}`` of one task for one post; ``gold`` is left out when None,
    ``probs_raw`` (before calibration) when not given."""
    values = [float(p) for p in probs]
    out: dict[str, Any] = {"label": predicted_label(task, values), "probs": _named(task, values, decimals)}
    if probs_raw is not None:
        out["probs_raw"] = _named(task, probs_raw, decimals)
    if gold is not None:
        out["gold"] = list(gold) if isinstance(gold, (list, tuple)) else gold
    return out


def prediction_record(post_id: str | None, tasks: Sequence[Task], probs: Mapping[str, Sequence[float]],
                      image_used: bool, gold: Mapping[str, Any] | None = None,
                      decimals: int | None = None,
                      probs_raw: Mapping[str, Sequence[float]] | None = None) -> dict[str, Any]:
    """One post's prediction. ``probs``, ``probs_raw`` and ``gold`` are keyed by task name; a task missing from
    ``gold`` (or None there) has no gold. One task: the flat record; several: the ``tasks`` record (see the
    module)."""
    if not tasks:
        raise ValueError("a prediction needs at least one task")
    missing = [t.name for t in tasks if t.name not in probs]
    if missing:
        raise ValueError(f"post {post_id}: no probabilities for task(s) {', '.join(missing)}")
    gold = gold or {}
    parts = {t.name: task_prediction(t, probs[t.name], gold.get(t.name), decimals,
                                     probs_raw[t.name] if probs_raw is not None else None) for t in tasks}
    if len(tasks) == 1:
        only = parts[tasks[0].name]
        record = {"id": post_id, "label": only["label"], "probs": only["probs"]}
        if "probs_raw" in only:
            record["probs_raw"] = only["probs_raw"]
        record["image_used"] = bool(image_used)
        if "gold" in only:
            record["gold"] = only["gold"]
        return record
    return {"id": post_id, "image_used": bool(image_used), "tasks": parts}


def prediction_records(ids: Sequence[str | None], tasks: Sequence[Task], probs: Mapping[str, Any],
                       image_used: Sequence[bool], gold: Sequence[Mapping[str, Any]] | None = None,
                       decimals: int | None = None,
                       probs_raw: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One record per post, in order: ``probs[task]`` (and ``probs_raw[task]``) is an [N, C] array (or list of
    rows) per task, ``gold`` one ``{task: gold label}`` per post (a post's ``Post.labels``), or None when none is
    known."""
    n = len(ids)
    sizes = {t.name: len(probs[t.name]) for t in tasks if t.name in probs}
    if any(size != n for size in sizes.values()) or len(image_used) != n or (gold is not None and len(gold) != n):
        raise ValueError(f"{n} post ids, but rows per task {sizes}, {len(image_used)} image flags"
                         + (f", {len(gold)} gold labels" if gold is not None else ""))
    return [prediction_record(post_id, tasks, {name: rows[i] for name, rows in probs.items()}, image_used[i],
                              gold[i] if gold is not None else None, decimals,
                              {name: rows[i] for name, rows in probs_raw.items()} if probs_raw is not None else None)
            for i, post_id in enumerate(ids)]


def record_tasks(record: Mapping[str, Any], tasks: Sequence[Task]) -> dict[str, dict[str, Any]]:
    """Read a record back as ``{task: {"label", "probs", "gold"?}}``, whichever of the two shapes it has."""
    if "tasks" in record:
        return dict(record["tasks"])
    if len(tasks) != 1:
        raise ValueError(f"post {record.get('id')}: a one-task record, but the run has {len(tasks)} tasks")
    return {tasks[0].name: {k: record[k] for k in ("label", "probs", "probs_raw", "gold") if k in record}}


# ------------------------------------------------------------------------------------------------ JSON lines


def prediction_line(record: Mapping[str, Any]) -> str:
    """One record as a line of a predictions file (JSON, non-ASCII text kept as is, ending in a newline)."""
    return json.dumps(record, ensure_ascii=False) + "\n"


def write_predictions(path: str | Path, records: Sequence[Mapping[str, Any]]) -> Path:
    """Write records as JSON lines in one atomic step: the file is either the old one or complete. (``mmpost
    predict`` streams instead, with the same lines, through its part file.)"""
    path = Path(path)
    atomic_write_text(path, "".join(prediction_line(r) for r in records))
    return path
