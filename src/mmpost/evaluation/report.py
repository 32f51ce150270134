"""Run outputs a person reads: ``metrics.json`` (machine) and ``report.md`` (human)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmpost.atomic import atomic_write_json, atomic_write_text
from mmpost.evaluation.formatting import weighted_f1_cell


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


def write_report(run_dir: str | Path, *, title: str, task: str, labels: Sequence[str],
                 split_metrics: dict[str, dict[str, float]], baseline: dict[str, float] | None,
                 per_class_rows: dict[str, list[dict[str, Any]]], confusions: dict[str, list[list[int]]],
                 notes: Sequence[str] = (), history: Sequence[dict[str, float]] = ()) -> Path:
    parts = [f"# {title}\n", f"Task `{task}` · labels: {', '.join(f'`{x}`' for x in labels)}\n"]
    rows = [(split, m) for split, m in split_metrics.items()]
    if baseline is not None:
        rows.append(("test · majority-class baseline", baseline))
    parts += ["## Metrics\n", metrics_table(rows), "\nMCC ranges from -1 to 1 (0 = chance); the others from 0 to 1. "
              "The interval is a 95% percentile bootstrap over posts (1,000 resamples).\n"]
    for split, rows_ in per_class_rows.items():
        parts += [f"\n## Per class · {split}\n", per_class_table(rows_)]
        if split in confusions:
            parts += [f"\nConfusion matrix · {split}\n\n", confusion_table(confusions[split], labels)]
            if (Path(run_dir) / f"confusion_{split}.png").exists():
                parts += [f"\n![confusion matrix, {split}](confusion_{split}.png)\n"]
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
