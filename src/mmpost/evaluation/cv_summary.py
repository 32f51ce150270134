"""A cross-validation's numbers: every test metric's mean ± std over the outer folds (a fold's seeds averaged
first, so that the folds are the paired units), the majority baseline per fold, calibration before and after,
and a paired test between two recipes over the same folds. Plain data in, ``metrics.json`` / ``report.md`` out."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmpost.atomic import atomic_write_text

# the metrics a summary lists, in this order, with how the report names them
METRICS = {"weighted_f1": "weighted F1", "macro_f1": "macro F1", "accuracy": "accuracy", "mcc": "MCC",
           "micro_f1": "micro F1", "ece_raw": "ECE before calibration", "ece": "ECE after calibration",
           "nll_raw": "NLL before calibration", "nll": "NLL after calibration", "temperature": "temperature"}


@dataclass
class RunScores:
    """One fold × seed run's test metrics: ``{task: {metric: value}}``."""

    seed: int
    fold: int
    test: dict[str, dict[str, Any]]


def per_fold(runs: Sequence[RunScores], task: str, metric: str) -> np.ndarray | None:
    """The metric per fold (mean over the fold's seeds), in fold order; None where a run lacks it."""
    folds = sorted({r.fold for r in runs})
    values = []
    for k in folds:
        got = [r.test.get(task, {}).get(metric) for r in runs if r.fold == k]
        if not got or any(not isinstance(v, (int, float)) for v in got):
            return None
        values.append(float(np.mean(got)))
    return np.asarray(values)


def spread(values: np.ndarray) -> dict[str, Any]:
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "folds": [float(v) for v in values]}


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean of ``a − b`` over folds and the paired t-test p (NaN when every difference is the same)."""
    from scipy.stats import ttest_rel
    d = a - b
    p = float(ttest_rel(a, b).pvalue) if len(d) > 1 and np.ptp(d) > 0 else float("nan")
    return {"diff": float(d.mean()), "p": p}


def task_summary(task: str, runs: Sequence[RunScores], baselines: Sequence[dict[str, dict[str, float]]],
                 other: Sequence[RunScores] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"metrics": {}, "majority": {}, "compare": {}}
    for metric in METRICS:
        values = per_fold(runs, task, metric)
        if values is None:
            continue
        out["metrics"][metric] = spread(values)
        if other is not None and (theirs := per_fold(other, task, metric)) is not None:
            out["compare"][metric] = {**spread(theirs), **paired(values, theirs)}
    for metric in ("weighted_f1", "macro_f1", "accuracy", "mcc"):
        base = [b[task][metric] for b in baselines if task in b]
        if len(base) == len(baselines) and base:
            out["majority"][metric] = spread(np.asarray(base, dtype=float))
    raw, cal = per_fold(runs, task, "ece_raw"), per_fold(runs, task, "ece")
    if raw is not None and cal is not None:
        out["calibration"] = {"ece_after_minus_before": paired(cal, raw),
                              "folds_improved": int((cal < raw).sum()), "folds": len(cal)}
    return out


def summarise(runs: Sequence[RunScores], baselines: Sequence[dict[str, dict[str, float]]],
              other: Sequence[RunScores] | None, *, names: tuple[str, str], tasks: Sequence[str]) -> dict[str, Any]:
    """``metrics.json`` of a cross-validation (see the module)."""
    return {"recipe": names[0], "compare": names[1] or None, "folds": len({r.fold for r in runs}),
            "seeds": sorted({r.seed for r in runs}),
            "tasks": {t: task_summary(t, runs, baselines, other) for t in tasks}}


def _cell(s: dict[str, Any] | None) -> str:
    return f"{s['mean']:.3f} ± {s['std']:.3f}" if s else ""


def _p(p: float) -> str:
    return "n/a" if math.isnan(p) else f"{p:.3f}"


def task_table(summary: dict[str, Any], task: str) -> str:
    t = summary["tasks"][task]
    compare = bool(t["compare"])
    head = "| metric | this recipe | majority |" + (" compare recipe | Δ (this − compare) | paired t p |"
                                                   if compare else "")
    lines = [head, "|---|---:|---:|" + ("---:|---:|---:|" if compare else "")]
    for metric, s in t["metrics"].items():
        row = f"| {METRICS[metric]} | {_cell(s)} | {_cell(t['majority'].get(metric))} |"
        if compare:
            c = t["compare"].get(metric)
            row += f" {_cell(c)} | {c['diff']:+.3f} | {_p(c['p'])} |" if c else " | | |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def write_cv_report(out_dir: str | Path, summary: dict[str, Any], notes: Sequence[str] = ()) -> Path:
    """``report.md``: one table per task (mean ± std over folds), the calibration check, the notes."""
    k, seeds = summary["folds"], summary["seeds"]
    parts = [f"# Cross-validation of {summary['recipe']}\n\n",
             f"{k} outer folds × seeds {', '.join(map(str, seeds))}; test metrics of each fold (its seeds averaged), "
             f"mean ± std over the folds. The epoch and the temperature were chosen on each fold's inner dev.\n"]
    if summary.get("compare"):
        parts.append(f"\nCompared with {summary['compare']} over the same folds and seeds: Δ and the paired t-test "
                     "are over folds.\n")
    for task in summary["tasks"]:
        parts += [f"\n## Task `{task}`\n\n", task_table(summary, task)]
        cal = summary["tasks"][task].get("calibration")
        if cal:
            d = cal["ece_after_minus_before"]
            parts.append(f"\nCalibration: ECE after − before {d['diff']:+.3f} (paired t p = {_p(d['p'])}); lower "
                         f"after calibration on {cal['folds_improved']} of {cal['folds']} folds.\n")
    if notes:
        parts += ["\n## Notes\n\n"] + [f"- {n}\n" for n in notes]
    path = Path(out_dir) / "report.md"
    atomic_write_text(path, "".join(parts))
    return path
