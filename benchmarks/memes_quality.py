"""Quality benchmark on the memes (CM-Off-Meme sample: 1,308 posts with images), with a fixed protocol.

    MMPOST_DATA_ROOT=/path/to/data python benchmarks/memes_quality.py --out runs/bench-memes

Protocol, per task (sentiment, sarcasm, offensive): the folds of ``mmpost cv`` (``mmpost.apps.cv.plan_folds``):
* 5 outer folds, stratified by the task's label and grouped by image and near-duplicate text (no image or
  repeated meme text in two folds; ``data.split_seed`` 0);
* inside each training fold, a stratified, grouped 10% dev split for early stopping and for choosing a
  configuration; the test fold is only scored;
* both packaged towers frozen, features from the cache, for every row.

Rows: the majority class; the frozen-feature anchor (MiniLM mean-pooled ⊕ EfficientNet-Lite0 pooled, standardised,
logistic regression C=0.1), recomputed here; the same on text only and on image only; Ber-ViT-Conc and Ber-ViT-Att
as base / +ITC / +ITM / +ITC+ITM (recipe: configs/memes.yaml, frozen); and the configuration chosen on inner dev
(per fold, the Conc/Att cell with the best dev weighted F1). Each row: test weighted F1, mean ± std over the 5
folds, and a paired t-test across folds against the anchor (and, for Conc/Att cells, against the family's base).

With ``--zeroshot DIR`` (a CLIP or SigLIP checkpoint: hub name or folder) a zero-shot row is added: no training,
each test fold's images against the checkpoint's text vectors of ``--zeroshot-template`` prompts per label
(``mmpost.apps.zeroshot``; default template "a meme that is {label}", label names with ``_`` as spaces).

Conc runs use the recipe with both towers frozen (:data:`FROZEN`: up to 40 epochs, patience 8); Att runs stop
after at most 15 epochs (patience 4): on these folds Att fits the
training posts within a few epochs and its dev score only wanders after that (``--family-overrides`` changes it,
and ``--families mmbt,vilt,lxmert --aux base`` runs other families). Runs train
in ``--workers`` processes at once, one thread each. Finished runs are read back from ``--out`` (delete it to
re-run); the table goes to ``OUT/results.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

AUX = ("base", "itc", "itm", "itc+itm")
GROUPING = ["data.group_by=[image,text]"]
# the frozen-feature condition on top of configs/memes.yaml (whose own setting fine-tunes MiniLM's top layers)
FROZEN = ["text_encoder.trainable=false", "text_encoder.train_layers=null", "text_encoder.length_buckets=false",
          "train.epochs=40", "train.patience=8"]
ANCHOR = "anchor: frozen concat + LR"
TEXT_ONLY = "text only: MiniLM + LR"
IMAGE_ONLY = "image only: EfficientNet + LR"
ZERO_SHOT = "zero-shot"


def lr_score(x_train, y_train, x_test, y_test) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    model.fit(x_train, y_train)
    return float(f1_score(y_test, model.predict(x_test), average="weighted"))


def majority_score(y_train, y_test) -> float:
    from sklearn.metrics import f1_score
    guess = np.bincount(y_train).argmax()
    return float(f1_score(y_test, np.full(len(y_test), guess), average="weighted"))


_WORKER: dict = {}


def _init_worker(recipe: str, overrides: tuple[str, ...] = ()) -> None:
    """Each worker process: quiet logs, one torch thread, the towers built once (from the recipe with
    ``overrides``; a tower that trains is copied per run)."""
    _quiet()
    import torch

    from mmpost.apps.build import build_tower
    from mmpost.config import load_config
    torch.set_num_threads(1)
    cfg = load_config(recipe, ["progress=false", *overrides])
    _WORKER["towers"] = (build_tower(cfg.text_encoder), build_tower(cfg.image_encoder))


def train_in_workers(train_one, jobs: list[dict], workers: int, recipe: str, start: float,
                     overrides: tuple[str, ...] = ()) -> None:
    """Each job trained by ``train_one`` in one of ``workers`` spawned processes (one thread each; towers built
    from ``recipe`` with ``overrides``), with a line per finished run."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    if not jobs:
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(recipe, tuple(overrides))) as pool:
        for n, (run_dir, took) in enumerate(pool.map(train_one, jobs), 1):
            print(f"  [{n}/{len(jobs)}] {run_dir}: {took:.0f} s ({time.time() - start:.0f} s in all)", flush=True)


def _quiet() -> None:
    import logging
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("lightning_fabric", "lightning.fabric", "transformers", "mmpost"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()


def zeroshot_scorer(checkpoint: str, posts: list, templates: list[str], cache: Path):
    """score(task labels, post positions, gold ids) → test weighted F1 of zero-shot predictions with the checkpoint;
    the image vectors are computed (and cached) once for every post."""
    from sklearn.metrics import f1_score

    from mmpost.apps.zeroshot import checkpoint_overrides, label_vectors, paired_towers, prompts, zero_shot_probs
    from mmpost.config import load_config
    from mmpost.encoders.features import post_features
    text_tower, image_tower = paired_towers(load_config(None, checkpoint_overrides(checkpoint)))
    feats = post_features(posts, None, image_tower, cache_dir=cache, progress=True)
    scale, bias = text_tower.space.logit_scale, text_tower.space.logit_bias

    def score(labels: list[str], rows: np.ndarray, y: np.ndarray) -> float:
        classes = label_vectors(text_tower, prompts(labels, templates))
        probs = zero_shot_probs(feats.image[rows], classes, feats.has_image[rows], scale, bias, multi_label=False)
        return float(f1_score(y, probs.argmax(1), average="weighted"))
    return score


def _train_cell(job: dict) -> tuple[str, float]:
    """One Conc/Att run on one fold (in a worker): its folder holds metrics.json afterwards."""
    from mmpost.apps.prepare import PreparedData
    from mmpost.apps.train import train
    from mmpost.config import load_config
    t0 = time.time()
    cfg = load_config(job["recipe"], job["overrides"])
    data = PreparedData(job["task"], job["labels"], job["splits"])
    train(cfg, data=data, towers=_WORKER["towers"])
    return job["run_dir"], time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench-memes")
    ap.add_argument("--recipe", default="configs/memes.yaml")
    ap.add_argument("--tasks", default="sentiment,sarcasm,offensive")
    ap.add_argument("--families", default="conc,att")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2, help="runs trained at once, one thread each")
    ap.add_argument("--aux", default=",".join(AUX), help="aux settings to train, e.g. base,itc+itm")
    ap.add_argument("--family-overrides", action="append", default=[], metavar="FAMILY:KEY=VALUE",
                    help="an override for one family's runs (repeatable); default for att: at most 15 epochs, "
                         "patience 4 (it fits the training folds within a few epochs)")
    ap.add_argument("--zeroshot", metavar="DIR", help="a CLIP or SigLIP checkpoint (hub name or folder): adds a "
                    "zero-shot row (needs the images; a GPU helps)")
    ap.add_argument("--zeroshot-template", action="append", default=None, metavar="TEMPLATE",
                    help='a prompt with {label} (repeatable, averaged); default "a meme that is {label}"')
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every Conc/Att run")
    args = ap.parse_args()
    _quiet()

    from mmpost.apps.build import build_tower
    from mmpost.apps.cv import fold_data, plan_folds
    from mmpost.apps.datasets import cache_dir
    from mmpost.config import AUX_SETTINGS, data_root, load_config
    from mmpost.data.dataset import label_ids
    from mmpost.data.sources import get_source
    from mmpost.encoders.features import post_features

    start = time.time()
    out = Path(args.out)
    base_cfg = load_config(args.recipe, ["progress=false", *FROZEN])
    root = data_root(base_cfg.data)
    if root is None:
        sys.exit("set MMPOST_DATA_ROOT (the folder holding memes/)")
    source = get_source("memes")
    posts = source.load(root).posts
    towers = (build_tower(base_cfg.text_encoder), build_tower(base_cfg.image_encoder))
    feats = post_features(posts, *towers, cache_dir=cache_dir(base_cfg), progress=True)
    # warm the caches the Att runs read (first text token, image tokens), once, before the workers start
    if {"att", "mmbt", "vilt", "lxmert"} & set(args.families.split(",")):
        post_features(posts, *towers, cache_dir=cache_dir(base_cfg), progress=True, image_tokens=True,
                      text_first_token=True)
    zeroshot = (zeroshot_scorer(args.zeroshot, posts, args.zeroshot_template or ["a meme that is {label}"],
                                cache_dir(base_cfg)) if args.zeroshot else None)
    print(f"{len(posts)} posts, features ready in {time.time() - start:.0f} s", flush=True)
    position = {p.id: i for i, p in enumerate(posts)}
    families = [f for f in args.families.split(",") if f]
    aux_settings = [a for a in args.aux.split(",") if a]
    family_over: dict[str, list[str]] = {"att": ["train.epochs=15", "train.patience=4"]}
    for item in args.family_overrides:
        fam, _, kv = item.partition(":")
        if "=" not in kv:
            sys.exit(f"--family-overrides wants FAMILY:KEY=VALUE, got {item!r}")
        family_over.setdefault(fam, [])
        family_over[fam] = [o for o in family_over[fam] if o.split("=")[0] != kv.split("=")[0]] + [kv]
    cells = [f"{fam} · {aux}" for fam in families for aux in aux_settings]

    plan, jobs = [], []       # plan: (task, fold, cell, run_dir); jobs: the runs still to train
    lr_rows: dict[str, dict[str, list[float]]] = {}
    for task in args.tasks.split(","):
        labels = source.tasks[task]
        folds = plan_folds(load_config(args.recipe, [f"tasks=[{task}]", *GROUPING, "progress=false"]), args.folds,
                           progress=False)
        keep = [position[p.id] for p in folds.posts]
        task_posts = folds.posts
        y = label_ids(task_posts, task, labels)
        text, image = feats.text[keep], feats.image[keep]
        both = np.concatenate([text, image], axis=1)
        rows = lr_rows.setdefault(task, {})
        for k, fold in enumerate(folds.folds):
            fit_idx, dev_idx, test_idx = (np.asarray(fold[part]) for part in ("train", "dev", "test"))
            rows.setdefault("majority", []).append(majority_score(y[fit_idx], y[test_idx]))
            for name, x in ((ANCHOR, both), (TEXT_ONLY, text), (IMAGE_ONLY, image)):
                rows.setdefault(name, []).append(lr_score(x[fit_idx], y[fit_idx], x[test_idx], y[test_idx]))
            if zeroshot is not None:
                rows.setdefault(ZERO_SHOT, []).append(zeroshot(list(labels), np.asarray(keep)[test_idx], y[test_idx]))
            splits = fold_data(folds, k).splits
            for fam in families:
                for aux in aux_settings:
                    name = f"{fam}-{aux.replace('+', '-')}"
                    run_dir = out / task / f"fold{k}" / name
                    plan.append((task, k, f"{fam} · {aux}", run_dir))
                    if not (run_dir / "metrics.json").exists():
                        over = [*FROZEN, f"task={task}", f"model.name={fam}", *AUX_SETTINGS[aux],
                                f"out_dir={run_dir.parent}", f"name={name}", "progress=false", "train.threads=1",
                                *family_over.get(fam, []), *args.overrides]
                        jobs.append({"recipe": args.recipe, "overrides": over, "task": task, "labels": labels,
                                     "splits": splits, "run_dir": str(run_dir)})
    print(f"{len(plan)} runs, {len(jobs)} to train with {args.workers} workers", flush=True)
    train_in_workers(_train_cell, jobs, args.workers, args.recipe, start, tuple(FROZEN))

    scores: dict[str, dict[str, list]] = {t: dict(r) for t, r in lr_rows.items()}
    dev: dict[tuple[str, int], dict[str, float]] = {}
    for task, k, cell, run_dir in plan:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        scores[task].setdefault(cell, []).append(metrics["test"][task]["weighted_f1"])
        dev.setdefault((task, k), {})[cell] = metrics["dev"][task]["weighted_f1"]
    for (task, k), by_cell in dev.items():
        chosen = max(by_cell, key=lambda c: (by_cell[c], -cells.index(c)))
        scores[task].setdefault("chosen on inner dev", []).append(scores[task][chosen][k])
        scores[task].setdefault("_chosen", []).append(chosen)

    table = markdown(scores, [f"{f} · {a}" for f in families for a in aux_settings], args)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(table + f"\nWall time: {time.time() - start:.0f} s.\n")
    print(table)
    print(f"total {time.time() - start:.0f} s")


def markdown(scores: dict[str, dict[str, list]], cells: list[str], args) -> str:
    """Two tables: mean ± std per row and task; then each row's mean paired difference (and paired t-test p
    across folds) against the anchor and, for a Conc/Att cell, against the same family's base."""
    from scipy.stats import ttest_rel

    tasks = list(scores)
    order = ["majority", ANCHOR, TEXT_ONLY, IMAGE_ONLY, *([ZERO_SHOT] if ZERO_SHOT in scores[tasks[0]] else []), *cells,
             "chosen on inner dev"]
    order = [row for row in order if row in scores[tasks[0]]]

    def versus(task: str, row: str, ref: str) -> str:
        if ref == row or ref not in scores[task]:
            return ""
        a, b = np.array(scores[task][row]), np.array(scores[task][ref])
        p = ttest_rel(a, b).pvalue if np.ptp(a - b) > 0 else float("nan")
        return f"{(a - b).mean():+.3f} (p={p:.2f})"

    head = "| row | " + " | ".join(tasks) + " |"
    lines = [f"Test weighted F1, mean ± std over {args.folds} outer folds.", "", head,
             "|---|" + "---:|" * len(tasks)]
    for row in order:
        lines.append(f"| {row} | " + " | ".join(
            f"{np.mean(scores[t][row]):.3f} ± {np.std(scores[t][row], ddof=1):.3f}" for t in tasks) + " |")
    lines += ["", "Mean paired difference across folds, with the paired t-test p: against the anchor, and for a "
              "Conc/Att cell against the same family's base.", "",
              "| row | " + " | ".join(f"{t} vs anchor | {t} vs base" for t in tasks) + " |",
              "|---|" + "---:|---:|" * len(tasks)]
    for row in order[2:]:
        fam_base = row.split(" · ")[0] + " · base" if " · " in row else ""
        lines.append(f"| {row} | " + " | ".join(f"{versus(t, row, ANCHOR)} | {versus(t, row, fam_base)}"
                                                 for t in tasks) + " |")
    lines.append("")
    for t in tasks:
        lines.append(f"- {t}: configuration chosen on inner dev per fold: " + ", ".join(scores[t]["_chosen"]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
