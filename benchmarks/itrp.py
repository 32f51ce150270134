"""ITRp on the embedded synthetic set: the comparison with plain k-means, and the ablations of the paper's tables 3–5.

    python benchmarks/itrp.py compare      # ITRp vs k-means, both tasks, seeds 0 1 2
    python benchmarks/itrp.py ablations --epochs 1 --write docs/itrp.md   # tables 3–5 (seed 0) into the docs

Every cell is one ``mmpost relate`` run (:func:`mmpost.apps.relate.relate`, its settings given as
``relate.<key>=<value>`` overrides of the run config) on the embedded default (2,000 posts,
128 px; train / dev / test as the synthetic set splits them), subsets of m = 1,000 posts, 3 epochs, the packaged
towers (MiniLM, EfficientNet-Lite0). Cells are written under ``--out``
(``TASK/CLUSTERER-FINETUNE-SAMPLER-eEPOCHS-mM-sSEED``) and read back when their ``metrics.json`` exists, so the two
commands share the cells they have in common and an interrupted run resumes. ``--workers`` runs cells in parallel
processes with one torch thread each.

``compare`` prints, per task, test weighted F1 / NMI / ARI as mean ± std over the seeds for ITRp (the clusterer
refitted on the tuned features), ITRp's last head and k-means on the frozen features, plus the paired difference
ITRp − k-means. ``ablations`` varies one setting at a time from each task's default (the paper's best: text task
under-sampling + text tower fine-tuned; image task over-sampling + image tower fine-tuned) and, with ``--write``,
replaces the table between the markers in ``docs/itrp.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TASKS = ("text_represented", "image_adds")
DEFAULTS = {"text_represented": ("kmeans", "text", "under"), "image_adds": ("kmeans", "image", "over")}
METHODS = {"itrp": "ITRp", "itrp_head": "ITRp head h", "kmeans": "k-means (frozen)"}
BEGIN, END = "<!-- ablations:begin -->", "<!-- ablations:end -->"


def cell_dir(out: Path, task: str, clusterer: str, finetune: str, sampler: str, seed: int, epochs: int,
             subset: int) -> Path:
    return out / task / f"{clusterer}-{finetune}-{sampler}-e{epochs}-m{subset}-s{seed}"


def run_cell(args: tuple[str, str, str, str, int, int, int, str]) -> dict:
    """One relate run in this process (1 torch thread), or its metrics read back."""
    out, task, clusterer, finetune, sampler, seed, epochs, subset = args[0], *args[1:]
    folder = cell_dir(Path(out), task, clusterer, finetune, sampler, seed, epochs, int(subset))
    if (folder / "metrics.json").exists():
        return json.loads((folder / "metrics.json").read_text())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    import torch
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    from mmpost.apps.relate import relate
    from mmpost.config import load_config
    from mmpost.relate.config import flag_overrides

    settings = flag_overrides(task=task, clusterer=clusterer, finetune=finetune, sampler=sampler, seed=seed,
                              epochs=epochs, subset_size=int(subset))          # the recipe's relate: section
    cfg = load_config(None, ["progress=false", "text_encoder.trainable=false", *settings])
    start = time.perf_counter()
    metrics = relate(cfg, folder, progress=False)
    print(f"  {task} {clusterer}/{finetune}/{sampler} seed {seed}: ITRp {metrics['itrp']['test']['f1_weighted']:.3f}"
          f" k-means {metrics['kmeans']['test']['f1_weighted']:.3f} ({time.perf_counter() - start:.0f} s)",
          flush=True)
    return metrics


def read_cell(cell: tuple) -> dict | None:
    """A finished cell's metrics, or None (``--collect`` reports what exists without running anything)."""
    out, task, clusterer, finetune, sampler, seed, epochs, subset = cell
    path = cell_dir(Path(out), task, clusterer, finetune, sampler, seed, epochs, int(subset)) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def run_cells(cells: list[tuple], workers: int, collect: bool = False) -> list[dict | None]:
    if collect:
        return [read_cell(c) for c in cells]
    if workers <= 1:
        return [run_cell(c) for c in cells]
    import multiprocessing as mp
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(run_cell, cells))


def _ms(values: list[float], digits: int = 3) -> str:
    import numpy as np
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.{digits}f}" if a.size == 1 else f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"


def compare(args: argparse.Namespace) -> str:
    import numpy as np
    from scipy.stats import ttest_rel

    cells = [(str(args.out), t, *DEFAULTS[t], s, args.epochs, args.subset_size) for t in args.tasks
             for s in args.seeds]
    results = run_cells(cells, args.workers, args.collect)
    lines = [f"ITRp vs plain k-means on frozen features · embedded default · test split · seeds "
             f"{', '.join(map(str, args.seeds))} (mean ± std)", "",
             "| task | method | weighted F1 | NMI | ARI | clustering share |", "|---|---|---|---|---|---|"]
    summary = []
    for task in args.tasks:
        runs = [m for c, m in zip(cells, results) if c[1] == task and m is not None]
        if not runs:
            lines.append(f"| {task} | (not run) | | | | |")
            continue
        for method, title in METHODS.items():
            f1 = [r[method]["test"]["f1_weighted"] for r in runs]
            nmi = [r[method]["test"]["nmi"] for r in runs]
            ari = [r[method]["test"]["ari"] for r in runs]
            share = (_ms([100 * r["timing"]["cluster_share"] for r in runs], 2) + "%") if method == "itrp" else ""
            lines.append(f"| {task} | {title} | {_ms(f1)} | {_ms(nmi)} | {_ms(ari)} | {share} |")
        d = np.array([r["itrp"]["test"]["f1_weighted"] - r["kmeans"]["test"]["f1_weighted"] for r in runs])
        itrp, km = ([r[m]["test"]["f1_weighted"] for r in runs] for m in ("itrp", "kmeans"))
        p = float(ttest_rel(itrp, km).pvalue) if len(runs) > 1 else float("nan")
        summary.append(f"- {task}: ITRp − k-means weighted F1 {d.mean():+.3f} (per seed "
                       f"{', '.join(f'{x:+.3f}' for x in d)}; paired t-test p = {p:.2f})")
    return "\n".join(lines + [""] + summary)


def ablation_rows(task: str) -> list[tuple[str, str, tuple[str, str, str]]]:
    """(table, varied setting, (clusterer, finetune, sampler)) for one task, each varying one setting."""
    c0, f0, s0 = DEFAULTS[task]
    rows = [("clustering", c, (c, f0, s0)) for c in ("kmeans", "gmm")]
    rows += [("fine-tuned tower", f, (c0, f, s0)) for f in ("text", "image", "both", "none")]
    rows += [("sampling", s, (c0, f0, s)) for s in ("random", "under", "over", "combine")]
    return rows


def ablations(args: argparse.Namespace) -> str:
    plan = {t: ablation_rows(t) for t in args.tasks}
    # cells that fine-tune the image tower cost ~10x the others on a CPU: run them last
    unique = sorted({(str(args.out), t, *cfg, s, args.epochs, args.subset_size)
                     for t, rows in plan.items() for _, _, cfg in rows for s in args.seeds},
                    key=lambda c: (c[3] in ("image", "both"), c))
    results = dict(zip(unique, run_cells(unique, args.workers, args.collect)))
    lines = [f"Test split of the embedded default; seeds {', '.join(map(str, args.seeds))}; m = {args.subset_size}, "
             f"{args.epochs} epochs. One setting varies per row; **bold** = the task's default (the paper's best). "
             "ITRp = the clusterer refitted on the tuned features; k-means = the same clusterer on frozen features "
             "(it does not depend on the fine-tuned tower or the sampler).", ""]
    for table in ("clustering", "fine-tuned tower", "sampling"):
        lines += [f"**{table}**", "", "| task | setting | ITRp wF1 | ITRp NMI | ITRp ARI | head h wF1 | "
                  "k-means wF1 | clustering share | ITRp s |", "|---|---|---|---|---|---|---|---|---|"]
        for task in args.tasks:
            for tab, setting, cfg in plan[task]:
                if tab != table:
                    continue
                runs = [results[(str(args.out), task, *cfg, s, args.epochs, args.subset_size)] for s in args.seeds]
                name = f"**{setting}**" if cfg == DEFAULTS[task] else setting
                runs = [r for r in runs if r is not None]
                if not runs:
                    lines.append(f"| {task} | {name} | not run | | | | | | |")
                    continue
                lines.append(
                    f"| {task} | {name} | {_ms([r['itrp']['test']['f1_weighted'] for r in runs])} | "
                    f"{_ms([r['itrp']['test']['nmi'] for r in runs])} | {_ms([r['itrp']['test']['ari'] for r in runs])}"
                    f" | {_ms([r['itrp_head']['test']['f1_weighted'] for r in runs])} | "
                    f"{_ms([r['kmeans']['test']['f1_weighted'] for r in runs])} | "
                    f"{_ms([100 * r['timing']['cluster_share'] for r in runs], 2)}% | "
                    f"{_ms([r['timing']['itrp_seconds'] for r in runs], 0)} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_between_markers(doc: Path, body: str, begin: str = BEGIN, end: str = END) -> None:
    from mmpost.atomic import atomic_write_text
    text = doc.read_text()
    if begin not in text or end not in text:
        sys.exit(f"{doc} has no {begin} … {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(doc, f"{head}{begin}\n{body}{end}{tail}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("compare", "ablations"))
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--seeds", nargs="+", type=int, default=None, help="default: 0 1 2 (compare), 0 (ablations)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--subset-size", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-itrp"))
    ap.add_argument("--write", type=Path, default=None, help="ablations: replace the table in this markdown file")
    ap.add_argument("--collect", action="store_true", help="run nothing: tabulate the cells already finished")
    args = ap.parse_args()
    args.seeds = args.seeds if args.seeds is not None else ([0, 1, 2] if args.what == "compare" else [0])
    start = time.perf_counter()
    text = compare(args) if args.what == "compare" else ablations(args)
    print(text)
    if args.write and args.what == "ablations":
        write_between_markers(args.write, text)
        print(f"wrote the table into {args.write}")
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
