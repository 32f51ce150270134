"""The grid's tables: one row per cell (``results.csv``), and per dataset the mean ± std over seeds of each
model × aux setting, its difference from the same model's base, and a paired t-test across seeds
(``results.md``), with a bar chart (``results.png``)."""
from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmpost.atomic import atomic_write, atomic_write_text


@dataclass
class CellResult:
    dataset: str
    task: str
    model: str
    aux: str
    seed: int
    status: str = "pending"                # done | skipped
    note: str = ""
    split: str = "test"                    # the split the scores are on
    weighted_f1: float = float("nan")
    macro_f1: float = float("nan")
    accuracy: float = float("nan")
    mcc: float = float("nan")
    n: int = 0
    dev_weighted_f1: float = float("nan")
    majority_weighted_f1: float = float("nan")
    best_epoch: int = -1
    seconds: float = 0.0
    images: bool = False                   # did the training split have images
    run_dir: str = ""


@dataclass
class Summary:
    dataset: str
    task: str
    model: str
    aux: str
    seeds: list[int]
    mean: float
    std: float
    delta: float | None                    # mean of per-seed differences from base (same seeds)
    p_value: float | None                  # paired t-test against base across seeds
    note: str = ""


def summarise(results: Sequence[CellResult]) -> list[Summary]:
    from scipy.stats import ttest_rel

    keys = list(dict.fromkeys((r.dataset, r.task, r.model, r.aux) for r in results))
    by_key = {k: [r for r in results if (r.dataset, r.task, r.model, r.aux) == k] for k in keys}
    out = []
    for (dataset, task, model, aux), rows in by_key.items():
        done = {r.seed: r.weighted_f1 for r in rows if r.status == "done"}
        if not done:
            out.append(Summary(dataset, task, model, aux, [], math.nan, math.nan, None, None,
                               next((r.note for r in rows if r.note), "")))
            continue
        vals = np.array(list(done.values()))
        delta = p = None
        base = {r.seed: r.weighted_f1 for r in by_key.get((dataset, task, model, "base"), []) if r.status == "done"}
        common = sorted(set(done) & set(base))
        if aux != "base" and common:
            a, b = np.array([done[s] for s in common]), np.array([base[s] for s in common])
            delta = float((a - b).mean())
            if len(common) >= 2 and np.ptp(a - b) > 0:
                p = float(ttest_rel(a, b).pvalue)
        out.append(Summary(dataset, task, model, aux, sorted(done), float(vals.mean()),
                           float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, delta, p,
                           next((r.note for r in rows if r.note), "")))
    return out


def results_csv(results: Sequence[CellResult]) -> str:
    buf = io.StringIO()
    fields = [f.name for f in dataclasses.fields(CellResult)]
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    for r in results:
        w.writerow({k: (f"{v:.4f}" if isinstance(v, float) and not math.isnan(v) else ("" if isinstance(v, float)
                                                                                          else v))
                    for k, v in dataclasses.asdict(r).items()})
    return buf.getvalue()


def results_markdown(results: Sequence[CellResult]) -> str:
    lines = ["# Grid results", "",
             "Test weighted F1, mean ± std over seeds (the epoch of each run chosen on dev). Δ: mean per-seed "
             "difference from the same model's base; p: paired t-test against base across seeds (needs ≥ 2 seeds).",
             ""]
    summaries = summarise(results)
    for dataset, task in dict.fromkeys((s.dataset, s.task) for s in summaries):
        rows = [r for r in results if r.dataset == dataset and r.task == task and r.status == "done"]
        lines.append(f"## {dataset} · {task}")
        lines.append("")
        if rows:
            maj = rows[0].majority_weighted_f1
            lines.append(f"{rows[0].split} posts: {rows[0].n}; majority class weighted F1 {maj:.3f}. "
                         + ("Images present." if any(r.images for r in rows)
                            else "No images: every run was text-only with the image masked."))
            lines.append("")
        lines += ["| model | aux | weighted F1 | Δ vs base | p | seeds |", "|---|---|---:|---:|---:|---:|"]
        not_run: dict[str, list[str]] = {}
        for s in summaries:
            if (s.dataset, s.task) != (dataset, task):
                continue
            if not s.seeds:
                not_run.setdefault(s.note or "no finished run", []).append(f"{s.model} {s.aux}")
                continue
            score = f"{s.mean:.3f}" + (f" ± {s.std:.3f}" if len(s.seeds) > 1 else "")
            delta = "" if s.delta is None else f"{s.delta:+.3f}"
            p = "" if s.p_value is None else f"{s.p_value:.3f}"
            lines.append(f"| {s.model} | {s.aux} | {score} | {delta} | {p} | {len(s.seeds)} |")
        lines.append("")
        for note, cells in not_run.items():
            lines += [f"Not run — {note}: {', '.join(cells)}.", ""]
    return "\n".join(lines)


def results_png(path: Path, results: Sequence[CellResult]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summaries = [s for s in summarise(results) if s.seeds]
    panels = list(dict.fromkeys((s.dataset, s.task) for s in summaries))
    if not panels:
        return
    aux = list(dict.fromkeys(s.aux for s in summaries))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1, 3.2), dpi=110, squeeze=False)
    for ax, (dataset, task) in zip(axes[0], panels):
        rows = [s for s in summaries if (s.dataset, s.task) == (dataset, task)]
        models = list(dict.fromkeys(s.model for s in rows))
        width = 0.8 / len(aux)
        for j, a in enumerate(aux):
            xs, ys, es = [], [], []
            for i, m in enumerate(models):
                hit = next((s for s in rows if s.model == m and s.aux == a), None)
                if hit:
                    xs.append(i + (j - (len(aux) - 1) / 2) * width)
                    ys.append(hit.mean)
                    es.append(hit.std)
            ax.bar(xs, ys, width, yerr=es, capsize=2, label=a)
        maj = [r.majority_weighted_f1 for r in results if (r.dataset, r.task) == (dataset, task) and r.status == "done"]
        if maj:
            ax.axhline(maj[0], color="grey", linestyle="--", linewidth=1, label="majority")
        ax.set_xticks(range(len(models)), models)
        ax.set_title(f"{dataset} · {task}", fontsize=9)
        ax.set_ylabel("test weighted F1")
        ax.set_ylim(0, 1)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)


def write_tables(out_dir: str | Path, results: Sequence[CellResult]) -> None:
    out = Path(out_dir)
    atomic_write_text(out / "results.csv", results_csv(results))
    atomic_write_text(out / "results.md", results_markdown(results))
    results_png(out / "results.png", results)
