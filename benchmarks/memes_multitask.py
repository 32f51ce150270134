"""One model for three tasks against one model per task, on the memes, frozen and fine-tuned, under the grouped folds.

    MMPOST_DATA_ROOT=/path/to/data python benchmarks/memes_multitask.py --out runs/bench-memes-multitask

Protocol (the folds of ``mmpost cv`` with ``tasks=[sentiment,sarcasm,offensive]``, shared by every run):
* 5 outer folds stratified on **sentiment** (the first task) and grouped by image and near-duplicate text, a 10%
  inner dev split of each training fold (grouped, stratified) for early stopping and every choice; the test fold is
  only scored;
* Conc base in two conditions: **frozen** (both packaged towers' features from the cache, ``configs/memes.yaml``
  with ``memes_quality.FROZEN``)
  and **fine-tuned** (MiniLM's top ``--train-layers`` layers trained with ``length_buckets``, EfficientNet-Lite0
  frozen, at most ``--epochs`` epochs; ``train.encoder_lr`` chosen among ``--lrs`` on the first fold's dev: per task
  for a single-task run, by the mean of the three tasks' dev weighted F1 for the multi-task run);
* per condition, one multi-task Conc (``tasks=[sentiment,sarcasm,offensive]``, a head and a cross-entropy per task)
  and one single-task Conc per task, on the same folds. Posts without a task's label (2 in sarcasm) are left out of
  that task's single-task run and of its scores, and kept, masked, in the multi-task run;
* the majority class and the frozen-feature anchor (MiniLM ⊕ EfficientNet-Lite0, standardised, logistic regression
  C=0.1) recomputed on the same folds in the same run;
* "chosen on inner dev": per fold and task, the one of the four runs with the best dev weighted F1 on that task.

Every row: test weighted F1, mean ± std over the folds; then paired differences across folds (t-test p): each row
against the anchor, and multi-task against single-task within each condition. Finished runs are read back from
``--out``; the fine-tuned runs' weights are deleted after each run unless ``--keep-weights``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from memes_finetuned import finetune_overrides
from memes_quality import ANCHOR, FROZEN, GROUPING, _quiet, lr_score, majority_score, train_in_workers

TASKS = ("sentiment", "sarcasm", "offensive")
ROWS = ("frozen · single-task", "frozen · multi-task", "fine-tuned · single-task", "fine-tuned · multi-task")


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
    if not job["keep_weights"]:
        for f in Path(job["run_dir"]).glob("*.safetensors"):
            f.unlink()
        shutil.rmtree(Path(job["run_dir"]) / "checkpoints", ignore_errors=True)
    return job["run_dir"], time.time() - t0


class Plan:
    """The runs of one condition: job dicts keyed by (name, fold, lr); ``name`` is ``multi-task`` or a task."""

    def __init__(self, args, condition: str, folds, labels_of: dict[str, list[str]]):
        self.args, self.condition, self.folds, self.labels_of = args, condition, folds, labels_of
        self.out = Path(args.out) / condition

    def overrides(self) -> list[str]:
        return finetune_overrides(self.args) if self.condition == "fine-tuned" else list(FROZEN)

    def job(self, name: str, fold: int, lr: float | None = None) -> dict:
        tasks = list(TASKS) if name == "multi-task" else [name]
        run = name + (f"-lr{lr:g}" if lr is not None else "")
        run_dir = self.out / f"fold{fold}" / run
        part = self.folds.folds[fold]
        keep = (lambda p: True) if name == "multi-task" else (lambda p: p.labels.get(name) is not None)
        splits = {s: [self.folds.posts[i] for i in part[s] if keep(self.folds.posts[i])]
                  for s in ("train", "dev", "test")}
        over = [f"tasks=[{','.join(tasks)}]", "model.name=conc", "objectives.itc.enabled=false",
                "objectives.itm.enabled=false", f"out_dir={run_dir.parent}", f"name={run}", "progress=false",
                "train.threads=1", *([f"train.encoder_lr={lr}"] if lr is not None else []), *self.overrides(),
                *self.args.overrides]
        return {"recipe": self.args.recipe, "overrides": over, "tasks": [(t, self.labels_of[t]) for t in tasks],
                "splits": splits, "run_dir": str(run_dir), "keep_weights": self.args.keep_weights}

    def run(self, jobs: list[dict], start: float) -> None:
        todo = [j for j in jobs if not (Path(j["run_dir"]) / "metrics.json").exists()]
        print(f"{self.condition}: {len(jobs)} runs, {len(todo)} to train with {self.args.workers} workers", flush=True)
        train_in_workers(_train, todo, self.args.workers, self.args.recipe, start, tuple(self.overrides()))


def score(job: dict, task: str, split: str) -> float:
    return json.loads((Path(job["run_dir"]) / "metrics.json").read_text())[split][task]["weighted_f1"]


def anchors(feats, position, folds) -> dict[str, dict[str, list[float]]]:
    """Majority class and the frozen concat + LR anchor per task and fold (posts with that task's label)."""
    from mmpost.data.dataset import label_ids
    keep = [position[p.id] for p in folds.posts]
    both = np.concatenate([feats.text[keep], feats.image[keep]], axis=1)
    rows: dict[str, dict[str, list[float]]] = {t: {"majority": [], ANCHOR: []} for t in TASKS}
    for t in TASKS:
        y = label_ids(folds.posts, t, [s.labels for s in folds.tasks if s.name == t][0])
        for fold in folds.folds:
            fit, test = np.asarray(fold["train"]), np.asarray(fold["test"])
            fit, test = fit[y[fit] >= 0], test[y[test] >= 0]
            rows[t]["majority"].append(majority_score(y[fit], y[test]))
            rows[t][ANCHOR].append(lr_score(both[fit], y[fit], both[test], y[test]))
    return rows


def table(scores: dict[str, dict[str, list[float]]], folds: int) -> str:
    from scipy.stats import ttest_rel

    def versus(t: str, row: str, ref: str) -> str:
        a, b = np.array(scores[t][row]), np.array(scores[t][ref])
        p = ttest_rel(a, b).pvalue if np.ptp(a - b) > 0 else float("nan")
        return f"{(a - b).mean():+.3f} (p={p:.2f})"

    order = ["majority", ANCHOR, *ROWS, "chosen on inner dev"]
    lines = [f"Test weighted F1, mean ± std over {folds} outer folds (grouped; stratified on sentiment).", "",
             "| row | " + " | ".join(TASKS) + " |", "|---|" + "---:|" * len(TASKS)]
    for row in order:
        lines.append(f"| {row} | " + " | ".join(
            f"{np.mean(scores[t][row]):.3f} ± {np.std(scores[t][row], ddof=1):.3f}" for t in TASKS) + " |")
    lines += ["", "Mean paired difference across folds (paired t-test p):", "",
              "| comparison | " + " | ".join(TASKS) + " |", "|---|" + "---:|" * len(TASKS)]
    for row in order[2:]:
        lines.append(f"| {row} − anchor | " + " | ".join(versus(t, row, ANCHOR) for t in TASKS) + " |")
    for cond in ("frozen", "fine-tuned"):
        lines.append(f"| {cond}: multi-task − single-task | " + " | ".join(
            versus(t, f"{cond} · multi-task", f"{cond} · single-task") for t in TASKS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench-memes-multitask")
    ap.add_argument("--recipe", default="configs/memes.yaml")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2, help="runs trained at once, one thread each")
    ap.add_argument("--lrs", default="1e-5,3e-5", help="fine-tuned: train.encoder_lr values, chosen on fold 1's dev")
    ap.add_argument("--epochs", type=int, default=6, help="fine-tuned: at most this many epochs")
    ap.add_argument("--train-layers", type=int, default=2)
    ap.add_argument("--keep-weights", action="store_true", help="keep each run's model weights")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = ap.parse_args()
    _quiet()
    from memes_finetuned import warm_caches

    from mmpost.apps.cv import plan_folds
    from mmpost.config import data_root, load_config
    from mmpost.data.sources import get_source

    start = time.time()
    if data_root(load_config(args.recipe, ["progress=false"]).data) is None:
        sys.exit("set MMPOST_DATA_ROOT (the folder holding memes/)")
    source = get_source("memes")
    posts = source.load(data_root(load_config(args.recipe, []).data)).posts
    feats = warm_caches(args, posts)
    position = {p.id: i for i, p in enumerate(posts)}
    folds = plan_folds(load_config(args.recipe, [f"tasks=[{','.join(TASKS)}]", *GROUPING, "progress=false"]),
                       args.folds, progress=False)
    labels_of = {t.name: list(t.labels) for t in folds.tasks}
    print(f"{len(folds.posts)} posts, caches and folds ready in {time.time() - start:.0f} s", flush=True)
    names = ["multi-task", *TASKS]
    frozen, tuned = Plan(args, "frozen", folds, labels_of), Plan(args, "fine-tuned", folds, labels_of)
    frozen.run([frozen.job(n, k) for n in names for k in range(args.folds)], start)

    # fine-tuned: encoder_lr per run type on the first fold's dev, then every fold
    lrs = [float(v) for v in args.lrs.split(",")]
    tuned.run([tuned.job(n, 0, lr) for n in names for lr in lrs], start)

    def dev_of(n: str, lr: float) -> float:
        return float(np.mean([score(tuned.job(n, 0, lr), t, "dev") for t in (TASKS if n == "multi-task" else [n])]))
    chosen_lr = {n: max(lrs, key=lambda lr, n=n: dev_of(n, lr)) for n in names}
    print("encoder_lr chosen on fold 1's dev:", chosen_lr, flush=True)
    tuned.run([tuned.job(n, k, chosen_lr[n]) for n in names for k in range(args.folds)], start)

    scores = anchors(feats, position, folds)

    def run_of(row: str, t: str, k: int) -> dict:
        """The job behind a row's score on task ``t``, fold ``k``."""
        plan, name = (frozen if row.startswith("frozen") else tuned), ("multi-task" if "multi" in row else t)
        return plan.job(name, k, None if plan is frozen else chosen_lr[name])
    notes = ["- encoder_lr chosen on fold 1's dev: " + ", ".join(f"{n} {lr:g}" for n, lr in chosen_lr.items())]
    for t in TASKS:
        for row in ROWS:
            scores[t][row] = [score(run_of(row, t, k), t, "test") for k in range(args.folds)]
        chosen = [max(ROWS, key=lambda r, k=k: (score(run_of(r, t, k), t, "dev"), -ROWS.index(r)))
                  for k in range(args.folds)]
        scores[t]["chosen on inner dev"] = [score(run_of(r, t, k), t, "test") for k, r in enumerate(chosen)]
        notes.append(f"- {t}: chosen on inner dev per fold: " + ", ".join(chosen))
    text = table(scores, args.folds) + "\n" + "\n".join(notes) + f"\n\nWall time: {time.time() - start:.0f} s.\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md.tmp").write_text(text)
    (out / "results.md.tmp").replace(out / "results.md")
    print(text)


if __name__ == "__main__":
    main()
