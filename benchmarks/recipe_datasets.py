"""The recommended recipe (MiniLM's top 2 layers fine-tuned) against the frozen recipe, on the other real datasets.

    MMPOST_DATA_ROOT=/path/to/data python benchmarks/recipe_datasets.py --out runs/bench-recipe-datasets

Datasets (each its ``configs/datasets/*.yaml``, its own train / dev / test): MultiOFF (``offensive``; the released
validation split is the test split; its training posts have no images, so it trains text-only), and the smoke
sets MVSA-Single (``sentiment``), MHP (``hate``) and MSD (``sarcasm``, filtered), which ship without images and
train text-only. At most ``--max-train`` training posts each (a stratified sample, as the smoke grid).

Two conditions per dataset, Conc base, seeds ``--seeds``, one ``mmpost grid`` (cells resume):
* **frozen**: the dataset recipe as it is (both packaged towers frozen, features from the cache);
* **fine-tuned**: the same recipe with :data:`FINETUNED` (what the memes benchmark chose on inner dev:
  ``text_encoder.train_layers: 2``, ``length_buckets``, ``train.encoder_lr: 3e-5``, at most 6 epochs, the best
  dev epoch kept).

The table: test weighted F1, mean ± std over the seeds, the paired difference fine-tuned − frozen (per seed, paired
t-test p), the dev weighted F1 of each (the column a choice is made on), and the median seconds a run's training took.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"MultiOFF · offensive": "multioff", "MVSA-Single · sentiment": "mvsa-single", "MHP · hate": "mhp",
            "MSD · sarcasm": "msd"}
FINETUNED = ["text_encoder.trainable=true", "text_encoder.train_layers=2", "text_encoder.length_buckets=true",
             "train.encoder_lr=3e-5", "train.epochs=6", "train.patience=6"]
CONDITIONS = {"frozen": [], "fine-tuned": FINETUNED}


def grid_config(args):
    from mmpost.config import GridConfig, GridDataset
    datasets = [GridDataset(name=f"{slug}-{cond}", recipe=str(ROOT / "configs" / "datasets" / f"{slug}.yaml"),
                            overrides=list(over))
                for slug in DATASETS.values() for cond, over in CONDITIONS.items()]
    return GridConfig(datasets=datasets, models=["conc"], aux=["base"], seeds=list(args.seeds),
                      overrides=[f"data.max_train={args.max_train}", *args.overrides], out_dir=str(args.out))


def table(results, args) -> str:
    from scipy.stats import ttest_rel
    by = {(r.dataset, r.seed): r for r in results if r.status == "done"}
    lines = [f"Test weighted F1, Conc base, mean ± std over seeds {', '.join(map(str, args.seeds))}; at most "
             f"{args.max_train} training posts.", "",
             "| dataset · task | test posts | majority | frozen | fine-tuned | fine-tuned − frozen (p) | dev: frozen "
             "/ fine-tuned | s a run: frozen / fine-tuned |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for title, slug in DATASETS.items():
        runs = {c: [by.get((f"{slug}-{c}", s)) for s in args.seeds] for c in CONDITIONS}
        if any(r is None for rs in runs.values() for r in rs):
            lines.append(f"| {title} | not run | | | | | | |")
            continue
        test = {c: np.array([r.weighted_f1 for r in rs]) for c, rs in runs.items()}
        dev = {c: np.mean([r.dev_weighted_f1 for r in rs]) for c, rs in runs.items()}
        secs = {c: np.median([r.seconds for r in rs]) for c, rs in runs.items()}
        d = test["fine-tuned"] - test["frozen"]
        p = ttest_rel(test["fine-tuned"], test["frozen"]).pvalue if len(d) > 1 and np.ptp(d) > 0 else float("nan")
        ms = {c: f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}" for c, v in test.items()}
        first = runs["frozen"][0]
        lines.append(f"| {title} | {first.n:,} | {first.majority_weighted_f1:.3f} | {ms['frozen']} | "
                     f"{ms['fine-tuned']} | {d.mean():+.3f} (p={p:.2f}) | {dev['frozen']:.3f} / "
                     f"{dev['fine-tuned']:.3f} | {secs['frozen']:.0f} / {secs['fine-tuned']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-recipe-datasets"))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--max-train", type=int, default=2000)
    ap.add_argument("--collect", action="store_true", help="run nothing: tabulate the cells already finished")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from memes_quality import _quiet
    _quiet()
    from mmpost.apps.grid import run_grid
    from mmpost.config import data_root, load_config
    from mmpost.evaluation.tables import CellResult

    if data_root(load_config(None, ["progress=false"]).data) is None:
        sys.exit("set MMPOST_DATA_ROOT (the folder holding multioff/, mvsa/, mhp/, msd/)")
    start = time.time()
    grid = grid_config(args)
    if args.collect:
        cells = sorted(Path(args.out).glob("cells/*/*/cell.json"))
        results = [CellResult(**json.loads(c.read_text())) for c in cells]
    else:
        results = run_grid(grid, on_cell=lambda r, how: print(
            f"  {r.dataset} seed {r.seed}: {how}, test weighted F1 {r.weighted_f1:.3f} ({r.seconds:.0f} s)",
            flush=True))
    text = table(results, args) + f"\nWall time: {time.time() - start:.0f} s.\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.md.tmp").write_text(text)
    (out / "bench.md.tmp").replace(out / "bench.md")
    print(text)


if __name__ == "__main__":
    main()
