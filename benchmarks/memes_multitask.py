"""One model for three tasks against one model per task, on the memes (CM-Off-Meme sample, 1,308 posts with images).

    MMPOST_DATA_ROOT=/path/to/data python benchmarks/memes_multitask.py --out runs/bench-memes-multitask

Protocol (the memes benchmark's, with folds shared by every task):
* outer 5-fold ``StratifiedKFold(shuffle=True, random_state=0)`` on the **sentiment** label, the first task;
* inside each training fold, a 10% dev split stratified on sentiment (seed 0) for early stopping; the test fold is
  only scored;
* both packaged towers frozen (features from the cache), Ber-ViT-Conc base (configs/memes.yaml);
* rows: the majority class and the frozen-feature anchor (standardised concat + logistic regression, C=0.1) per task,
  one single-task Conc per task, and one multi-task Conc (``tasks=[sentiment,sarcasm,offensive]``, one head and one
  CE each), all on the same folds. Posts without a task's label (2 in sarcasm) are left out of that task's
  single-task run and scoring, and kept, masked, in the multi-task run.

Each row: test weighted F1, mean ± std over the folds, and the paired difference (t-test p across folds) of the
multi-task model against the single-task one. Finished runs are read back from ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from memes_quality import _quiet, lr_score, majority_score, train_in_workers

TASKS = ("sentiment", "sarcasm", "offensive")


def _train(job: dict) -> tuple[str, float]:
    """One run on one fold (in a worker process)."""
    import memes_quality

    from mmpost.apps.prepare import PreparedData
    from mmpost.apps.train import train
    from mmpost.config import load_config
    from mmpost.data.tasks import TaskSpec
    t0 = time.time()
    cfg = load_config(job["recipe"], job["overrides"])
    data = PreparedData(tasks=[TaskSpec(name, labels) for name, labels in job["tasks"]], splits=job["splits"])
    train(cfg, data=data, towers=memes_quality._WORKER["towers"])
    return job["run_dir"], time.time() - t0


def fold_splits(posts, y_first, folds: int):
    """(fit, dev, test) index arrays per outer fold, stratified on the first task."""
    from sklearn.model_selection import StratifiedKFold, train_test_split
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    for train_idx, test_idx in outer.split(np.zeros(len(posts)), y_first):
        fit_idx, dev_idx = train_test_split(train_idx, test_size=0.1, stratify=y_first[train_idx], random_state=0)
        yield fit_idx, dev_idx, test_idx


def plan_runs(args, posts, labels_of, y, folds) -> tuple[list, list]:
    """(plan: (fold, run name, run dir), jobs still to train)."""
    plan, jobs = [], []
    base = ["model.name=conc", "objectives.itc.enabled=false", "objectives.itm.enabled=false", "progress=false",
            "train.threads=1", *args.overrides]
    for k, (fit_idx, dev_idx, test_idx) in enumerate(folds):
        parts = {"train": fit_idx, "dev": dev_idx, "test": test_idx}
        runs = {"multi-task": (list(TASKS), lambda i: True)}
        runs.update({t: ([t], lambda i, t=t: y[t][i] >= 0) for t in TASKS})
        for name, (tasks, keep) in runs.items():
            run_dir = Path(args.out) / f"fold{k}" / name
            plan.append((k, name, run_dir))
            if (run_dir / "metrics.json").exists():
                continue
            splits = {s: [posts[i] for i in idx if keep(i)] for s, idx in parts.items()}
            over = [f"tasks=[{','.join(tasks)}]", f"out_dir={run_dir.parent}", f"name={name}", *base]
            jobs.append({"recipe": args.recipe, "overrides": over, "tasks": [(t, labels_of[t]) for t in tasks],
                         "splits": splits, "run_dir": str(run_dir)})
    return plan, jobs


def anchors(feats, y, folds) -> dict[str, dict[str, list[float]]]:
    """Majority class and the frozen concat + LR anchor per task and fold (posts with that task's label)."""
    both = np.concatenate([feats.text, feats.image], axis=1)
    rows: dict[str, dict[str, list[float]]] = {t: {"majority": [], "anchor: frozen concat + LR": []} for t in TASKS}
    for fit_idx, _, test_idx in folds:
        for t in TASKS:
            f, s = fit_idx[y[t][fit_idx] >= 0], test_idx[y[t][test_idx] >= 0]
            rows[t]["majority"].append(majority_score(y[t][f], y[t][s]))
            rows[t]["anchor: frozen concat + LR"].append(lr_score(both[f], y[t][f], both[s], y[t][s]))
    return rows


def table(scores: dict[str, dict[str, list[float]]], folds: int) -> str:
    from scipy.stats import ttest_rel
    order = ["majority", "anchor: frozen concat + LR", "single-task Conc", "multi-task Conc"]
    lines = [f"Test weighted F1, mean ± std over {folds} outer folds (stratified on sentiment).", "",
             "| row | " + " | ".join(TASKS) + " |", "|---|" + "---:|" * len(TASKS)]
    for row in order:
        lines.append(f"| {row} | " + " | ".join(
            f"{np.mean(scores[t][row]):.3f} ± {np.std(scores[t][row], ddof=1):.3f}" for t in TASKS) + " |")
    diffs = []
    for t in TASKS:
        a, b = np.array(scores[t]["multi-task Conc"]), np.array(scores[t]["single-task Conc"])
        diffs.append(f"{(a - b).mean():+.3f} (p={ttest_rel(a, b).pvalue:.2f})")
    lines.append("| multi-task − single-task (paired t-test) | " + " | ".join(diffs) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench-memes-multitask")
    ap.add_argument("--recipe", default="configs/memes.yaml")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2, help="runs trained at once, one thread each")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = ap.parse_args()
    _quiet()
    from mmpost.apps.build import build_tower
    from mmpost.apps.datasets import cache_dir
    from mmpost.config import data_root, load_config
    from mmpost.data.dataset import label_ids
    from mmpost.data.sources import get_source
    from mmpost.encoders.features import post_features

    start = time.time()
    cfg = load_config(args.recipe, ["progress=false"])
    if data_root(cfg.data) is None:
        sys.exit("set MMPOST_DATA_ROOT (the folder holding memes/)")
    source = get_source("memes")
    posts = source.load(data_root(cfg.data)).posts
    labels_of = {t: list(source.tasks[t]) for t in TASKS}
    y = {t: label_ids(posts, t, labels_of[t]) for t in TASKS}
    feats = post_features(posts, build_tower(cfg.text_encoder), build_tower(cfg.image_encoder),
                          cache_dir=cache_dir(cfg), progress=True)
    folds = list(fold_splits(posts, y[TASKS[0]], args.folds))
    plan, jobs = plan_runs(args, posts, labels_of, y, folds)
    print(f"{len(posts)} posts; {len(plan)} runs, {len(jobs)} to train with {args.workers} workers", flush=True)
    train_in_workers(_train, jobs, args.workers, args.recipe, start)
    scores = anchors(feats, y, folds)
    for k, name, run_dir in plan:
        metrics = json.loads((run_dir / "metrics.json").read_text())["test"]
        for t in (TASKS if name == "multi-task" else [name]):
            row = "multi-task Conc" if name == "multi-task" else "single-task Conc"
            scores[t].setdefault(row, []).append(metrics[t]["weighted_f1"])
    text = table(scores, args.folds)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.md").write_text(text + f"\nWall time: {time.time() - start:.0f} s.\n")
    print(text + f"\ntotal {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
