"""Run outputs a person reads: ``metrics.json`` (machine) and ``report.md`` (human)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmpost.atomic import atomic_write_json, atomic_write_text
from mmpost.evaluation.formatting import weighted_f1_cell
from mmpost.evaluation.task_scores import confusion_file


def write_metrics(run_dir: str | Path, metrics: dict[str, dict[str, dict[str, float]]]) -> Path:
    """Schema: {split: {task: {"weighted_f1", "macro_f1", "accuracy", "mcc", "n"}}}."""
    path = Path(run_dir) / "metrics.json"
    atomic_write_json(path, metrics)
    return path


def fmt(x: float) -> str:
    return f"{x:.3f}"


def metrics_table(rows: Sequence[tuple[str, dict[str, float]]]) -> str:
    head = "| | weighted F1 | macro F1 | accuracy | MCC | n |\n|---|---:|---:|---:|---:|---:|\n"
    return head + "".join(f"| {name} | {weighted_f1_cell(m, fmt, '95% CI ')} | {fmt(m['macro_f1'])} | "
                          f"{fmt(m['accuracy'])} | {fmt(m['mcc'])} | {m['n']} |\n" for name, m in rows)


def per_class_table(rows: Sequence[dict[str, Any]]) -> str:
    head = "| label | precision | recall | F1 | support |\n|---|---:|---:|---:|---:|\n"
    return head + "".join(f"| {r['label']} | {fmt(r['precision'])} | {fmt(r['recall'])} | {fmt(r['f1'])} | "
                          f"{r['support']} |\n" for r in rows)


def confusion_table(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> str:
    head = "| true \\ predicted | " + " | ".join(labels) + " |\n|---|" + "---:|" * len(labels) + "\n"
    return head + "".join(f"| {labels[i]} | " + " | ".join(str(v) for v in row) + " |\n"
                          for i, row in enumerate(matrix))


@dataclass
class TaskReport:
    """What ``report.md`` shows of one task: metrics per split (and a baseline), per-class rows and confusion
    matrices per split (none for a multi-label task)."""

    task: str
    labels: Sequence[str]
    split_metrics: dict[str, dict[str, float]]
    per_class_rows: dict[str, list[dict[str, Any]]]
    confusions: dict[str, list[list[int]]] = field(default_factory=dict)
    baseline: dict[str, float] | None = None
    multi_label: bool = False
    calibration: dict[str, dict[str, float]] = field(default_factory=dict)   # split -> temperature, ece, nll...
    reliability_png: str | None = None                                        # the reliability diagram's file


SCALE_NOTE = ("\nMCC ranges from -1 to 1 (0 = chance); the others from 0 to 1. The interval is a 95% percentile "
              "bootstrap over posts (1,000 resamples).\n")
MULTI_LABEL_NOTE = ("A post may carry several labels of this task: each label at probability 0.5 or more is "
                    "predicted; accuracy counts posts whose whole label set is right, MCC is over every "
                    "(post, label) decision.\n")


CALIBRATION_NOTE = ("Probabilities are calibrated by temperature scaling fitted on dev (logits / T); ECE is the "
                    "top-label expected calibration error over 15 equal-width confidence bins (0 = the confidence "
                    "matches the accuracy), NLL the mean negative log-likelihood of the gold label. Lower is better; "
                    "the decisions and the metrics above do not change.\n")


def calibration_table(rows: dict[str, dict[str, float]]) -> str:
    head = "| | temperature | ECE before | ECE after | NLL before | NLL after |\n|---|---:|---:|---:|---:|---:|\n"
    return head + "".join(f"| {split} | {m['temperature']:.3f} | {fmt(m['ece_raw'])} | {fmt(m['ece'])} | "
                          f"{fmt(m['nll_raw'])} | {fmt(m['nll'])} |\n" for split, m in rows.items())


def calibration_parts(run_dir: Path, t: TaskReport, level: str) -> list[str]:
    if not t.calibration:
        return []
    parts = [f"\n{level} Calibration\n", calibration_table(t.calibration), "\n" + CALIBRATION_NOTE]
    if t.reliability_png and (run_dir / t.reliability_png).exists():
        parts += [f"\n![reliability diagram]({t.reliability_png})\n"]
    return parts


def task_parts(run_dir: Path, t: TaskReport, level: str, n_tasks: int) -> list[str]:
    """One task's lines, its sections headed at ``level`` (``##`` for a one-task run, ``###`` under a task)."""
    parts = [f"Task `{t.task}` · labels: {', '.join(f'`{x}`' for x in t.labels)}\n"]
    rows = [(split, m) for split, m in t.split_metrics.items()]
    if t.baseline is not None:
        rows.append(("test · majority-class baseline", t.baseline))
    parts += [f"{level} Metrics\n", metrics_table(rows), SCALE_NOTE]
    if t.multi_label:
        parts += ["\n" + MULTI_LABEL_NOTE]
    parts += calibration_parts(run_dir, t, level)
    for split, rows_ in t.per_class_rows.items():
        parts += [f"\n{level} Per class · {split}\n", per_class_table(rows_)]
        if split in t.confusions:
            parts += [f"\nConfusion matrix · {split}\n\n", confusion_table(t.confusions[split], t.labels)]
            png = confusion_file(split, t.task, n_tasks)
            if (run_dir / png).exists():
                parts += [f"\n![confusion matrix, {split}]({png})\n"]
    return parts


def write_report(run_dir: str | Path, *, title: str, task: str, labels: Sequence[str],
                 split_metrics: dict[str, dict[str, float]], baseline: dict[str, float] | None,
                 per_class_rows: dict[str, list[dict[str, Any]]], confusions: dict[str, list[list[int]]],
                 notes: Sequence[str] = (), history: Sequence[dict[str, float]] = ()) -> Path:
    """``report.md`` of a one-task run (see :func:`write_tasks_report`)."""
    one = TaskReport(task, labels, split_metrics, per_class_rows, confusions, baseline)
    return write_tasks_report(run_dir, title=title, tasks=[one], notes=notes, history=history)


def write_tasks_report(run_dir: str | Path, *, title: str, tasks: Sequence[TaskReport], notes: Sequence[str] = (),
                       history: Sequence[dict[str, float]] = ()) -> Path:
    """``report.md``: a one-task run's sections directly under the title, or one ``## Task`` section per task;
    then the training curve and the notes."""
    parts = [f"# {title}\n"]
    if len(tasks) == 1:
        parts += task_parts(Path(run_dir), tasks[0], "##", 1)
    else:
        for t in tasks:
            parts += [f"\n## Task `{t.task}`\n\n"] + task_parts(Path(run_dir), t, "###", len(tasks))
    if history:
        keys = [k for k in history[0] if k != "epoch"]
        parts += ["\n## Training curve\n", "| epoch | " + " | ".join(keys) + " |\n|---|" + "---:|" * len(keys) + "\n"]
        parts += ["| " + str(int(h["epoch"])) + " | " + " | ".join(f"{h.get(k, float('nan')):.4f}" for k in keys)
                  + " |\n" for h in history]
    if notes:
        parts += ["\n## Notes\n"] + [f"- {n}\n" for n in notes]
    path = Path(run_dir) / "report.md"
    atomic_write_text(path, "".join(parts))
    return path
