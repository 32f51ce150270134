"""The fine-tuned condition on the memes: the text tower's top layers fine-tuned, the image tower frozen from the cache.

    MMPOST_DATA_ROOT=/path/to/data python benchmarks/memes_finetuned.py --out runs/bench-memes-ft

Same folds and protocol as ``benchmarks/memes_quality.py`` (the folds of ``mmpost cv``: 5 outer folds, stratified by
the task's label and grouped by image and near-duplicate text, a 10% inner dev split in each training fold), with
every Conc/Att run fine-tuning MiniLM's top ``--train-layers`` layers (``text_encoder.train_layers``, the lower
layers' outputs cached once; ``length_buckets``), EfficientNet-Lite0 frozen, at most ``--epochs`` epochs, the best
dev epoch kept. Per task:

1. ``train.encoder_lr`` is chosen among ``--lrs`` by Conc base's dev weighted F1 on the first fold;
2. Conc × {base, +ITC, +ITM, +ITC+ITM} and Att × {base, +ITC+ITM} on every fold with seed 0;
3. a second seed (``train.seed=1``) for base and for the cell with the best mean dev weighted F1 (the best cell is
   chosen on dev, never on test); the table reports each of them as the mean over the two seeds per fold;
4. "chosen on inner dev": per fold, the cell with the best dev weighted F1 (seed 0).

The anchor (frozen MiniLM mean-pooled ⊕ EfficientNet-Lite0, standardised, logistic regression C=0.1) is
recomputed on the same folds in the same run; these towers are the chosen towers too, so it is also their own-feature
anchor. Every row: test weighted F1, mean ± std over the folds, with a paired t-test across folds against the anchor
and, for a cell, against the family's base. Runs train in ``--workers`` processes, one thread each; finished runs are
read back from ``--out`` (the model weights and checkpoints are deleted after each run unless ``--keep-weights``).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from memes_quality import ANCHOR, FROZEN, GROUPING, _quiet, lr_score, majority_score, markdown, train_in_workers


def finetune_overrides(args) -> list[str]:
    return ["text_encoder.trainable=true", f"text_encoder.train_layers={args.train_layers}",
            "text_encoder.length_buckets=true", f"train.epochs={args.epochs}", f"train.patience={args.epochs}"]


def _train_cell(job: dict) -> tuple[str, float]:
    import memes_quality

    from mmpost.apps.prepare import PreparedData
    from mmpost.apps.train import train
    from mmpost.config import load_config
    t0 = time.time()
    cfg = load_config(job["recipe"], job["overrides"])
    train(cfg, data=PreparedData(job["task"], job["labels"], job["splits"]), towers=memes_quality._WORKER["towers"])
    if not job["keep_weights"]:     # the model's and the optimizer's state: ~0.3 GB a run with MiniLM trainable
        for f in Path(job["run_dir"]).glob("*.safetensors"):
            f.unlink()
        shutil.rmtree(Path(job["run_dir"]) / "checkpoints", ignore_errors=True)
    return job["run_dir"], time.time() - t0


def run_jobs(jobs: list[dict], args, start: float) -> None:
    """Trains the jobs whose run has no metrics.json yet."""
    todo = [j for j in jobs if not (Path(j["run_dir"]) / "metrics.json").exists()]
    print(f"{len(jobs)} runs, {len(todo)} to train with {args.workers} workers", flush=True)
    train_in_workers(_train_cell, todo, args.workers, args.recipe, start, tuple(finetune_overrides(args)))


def metrics(run_dir: Path, task: str, split: str) -> float:
    return json.loads((run_dir / "metrics.json").read_text())[split][task]["weighted_f1"]


def warm_caches(args, posts) -> object:
    """Frozen features (anchor; Att's image tokens) and the lower text states, computed once before the workers."""
    from mmpost.apps.build import build_tower
    from mmpost.apps.datasets import cache_dir
    from mmpost.config import load_config
    from mmpost.encoders.features import post_features
    frozen = load_config(args.recipe, ["progress=false", *FROZEN])
    towers = (build_tower(frozen.text_encoder), build_tower(frozen.image_encoder))
    feats = post_features(posts, *towers, cache_dir=cache_dir(frozen), progress=True)
    post_features(posts, *towers, cache_dir=cache_dir(frozen), progress=True, image_tokens=True,
                  text_first_token=True)
    tuned = load_config(args.recipe, ["progress=false", *finetune_overrides(args)])
    text_tower = build_tower(tuned.text_encoder)
    text_tower.freeze_lower()
    text_tower.attach_lower_states([p.text for p in posts], cache_dir(tuned), progress=True)
    return feats


class Plan:
    """The runs of one task: job dicts keyed by (cell, fold, seed)."""

    def __init__(self, args, task: str, labels, folds, fold_data):
        self.args, self.task, self.labels = args, task, labels
        self.splits = [fold_data(folds, k).splits for k in range(len(folds.folds))]
        self.out = Path(args.out) / task

    def job(self, cell: str, fold: int, seed: int, lr: float) -> dict:
        from mmpost.config import AUX_SETTINGS
        fam, aux = cell.split(" · ")
        name = f"{fam}-{aux.replace('+', '-')}-lr{lr:g}-s{seed}"
        run_dir = self.out / f"fold{fold}" / name
        over = [f"task={self.task}", f"model.name={fam}", *AUX_SETTINGS[aux], f"out_dir={run_dir.parent}",
                f"name={name}", "progress=false", "train.threads=1", f"train.encoder_lr={lr}", f"train.seed={seed}",
                *finetune_overrides(self.args), *self.args.overrides]
        return {"recipe": self.args.recipe, "overrides": over, "task": self.task, "labels": self.labels,
                "splits": self.splits[fold], "run_dir": str(run_dir), "keep_weights": self.args.keep_weights}


def anchor_rows(feats, position, folds, task, labels) -> dict[str, list[float]]:
    from mmpost.data.dataset import label_ids
    keep = [position[p.id] for p in folds.posts]
    y = label_ids(folds.posts, task, labels)
    both = np.concatenate([feats.text[keep], feats.image[keep]], axis=1)
    rows: dict[str, list[float]] = {"majority": [], ANCHOR: []}
    for fold in folds.folds:
        fit, test = np.asarray(fold["train"]), np.asarray(fold["test"])
        rows["majority"].append(majority_score(y[fit], y[test]))
        rows[ANCHOR].append(lr_score(both[fit], y[fit], both[test], y[test]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench-memes-ft")
    ap.add_argument("--recipe", default="configs/memes.yaml")
    ap.add_argument("--tasks", default="sentiment,sarcasm,offensive")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2, help="runs trained at once, one thread each")
    ap.add_argument("--lrs", default="1e-5,3e-5", help="train.encoder_lr values, chosen on the first fold's dev")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--train-layers", type=int, default=2)
    ap.add_argument("--cells", default="conc · base,conc · itc,conc · itm,conc · itc+itm,att · base,att · itc+itm")
    ap.add_argument("--keep-weights", action="store_true", help="keep each run's model weights")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    args = ap.parse_args()
    _quiet()
    from mmpost.apps.cv import fold_data, plan_folds
    from mmpost.config import data_root, load_config
    from mmpost.data.sources import get_source

    start = time.time()
    if data_root(load_config(args.recipe, ["progress=false"]).data) is None:
        sys.exit("set MMPOST_DATA_ROOT (the folder holding memes/)")
    source = get_source("memes")
    posts = source.load(data_root(load_config(args.recipe, []).data)).posts
    feats = warm_caches(args, posts)
    print(f"{len(posts)} posts, caches ready in {time.time() - start:.0f} s", flush=True)
    position = {p.id: i for i, p in enumerate(posts)}
    cells = [c.strip() for c in args.cells.split(",")]
    lrs = [float(v) for v in args.lrs.split(",")]
    plans, scores = {}, {}
    for task in args.tasks.split(","):
        folds = plan_folds(load_config(args.recipe, [f"tasks=[{task}]", *GROUPING, "progress=false"]), args.folds,
                           progress=False)
        plans[task] = Plan(args, task, source.tasks[task], folds, fold_data)
        scores[task] = anchor_rows(feats, position, folds, task, source.tasks[task])

    # 1. encoder_lr per task on the first fold's dev (Conc base)
    run_jobs([plans[t].job(cells[0], 0, 0, lr) for t in plans for lr in lrs], args, start)
    chosen_lr = {t: max(lrs, key=lambda lr: metrics(Path(plans[t].job(cells[0], 0, 0, lr)["run_dir"]), t, "dev"))
                 for t in plans}
    print("encoder_lr chosen on fold 1's dev:", chosen_lr, flush=True)
    # 2. every cell, every fold, seed 0
    run_jobs([plans[t].job(c, k, 0, chosen_lr[t]) for t in plans for c in cells for k in range(args.folds)],
             args, start)

    def score(t: str, c: str, k: int, seed: int, split: str) -> float:
        return metrics(Path(plans[t].job(c, k, seed, chosen_lr[t])["run_dir"]), t, split)

    # 3. a second seed for base and the best cell on mean dev
    best = {t: max(cells, key=lambda c: np.mean([score(t, c, k, 0, "dev") for k in range(args.folds)])) for t in plans}
    again = {t: list(dict.fromkeys([cells[0], best[t]])) for t in plans}
    run_jobs([plans[t].job(c, k, 1, chosen_lr[t]) for t in plans for c in again[t] for k in range(args.folds)],
             args, start)
    print(write_table(args, plans, scores, cells, chosen_lr, best, again, score, start))


def write_table(args, plans, scores, cells, chosen_lr, best, again, score, start) -> str:
    """Fills the cell rows (two-seed cells: the mean of the seeds per fold) and writes OUT/results.md."""
    notes = []
    for t in plans:
        for c in cells:
            seeds = (0, 1) if c in again[t] else (0,)
            scores[t][c] = [float(np.mean([score(t, c, k, s, "test") for s in seeds])) for k in range(args.folds)]
        for c in again[t]:
            s0 = [score(t, c, k, 0, "test") for k in range(args.folds)]
            s1 = [score(t, c, k, 1, "test") for k in range(args.folds)]
            notes.append(f"- {t}, {c}: seed 0 {np.mean(s0):.3f} ± {np.std(s0, ddof=1):.3f}, seed 1 "
                         f"{np.mean(s1):.3f} ± {np.std(s1, ddof=1):.3f}")
        chosen = [max(cells, key=lambda c: (score(t, c, k, 0, "dev"), -cells.index(c))) for k in range(args.folds)]
        scores[t]["chosen on inner dev"] = [score(t, c, k, 0, "test") for k, c in enumerate(chosen)]
        scores[t]["_chosen"] = chosen
        notes.append(f"- {t}: encoder_lr {chosen_lr[t]:g} (fold 1's dev); best cell on mean dev: {best[t]}")
    table = markdown(scores, cells, args)
    text = (f"{table}\nSeeds (two-seed cells are the per-fold mean of seeds 0 and 1 above):\n" + "\n".join(notes)
            + f"\n\nWall time: {time.time() - start:.0f} s.\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.md.tmp"
    tmp.write_text(text)
    tmp.replace(out / "results.md")
    return text


if __name__ == "__main__":
    main()
