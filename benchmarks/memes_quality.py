"""Quality benchmark on the memes (CM-Off-Meme sample: 1,308 posts with images), with a fixed protocol.

    MMPOST_DATA_ROOT=/path/to/data python benchmarks/memes_quality.py --out runs/bench-memes

Protocol, per task (sentiment, sarcasm, offensive):
* outer 5-fold ``StratifiedKFold(shuffle=True, random_state=0)`` on the task's label;
* inside each training fold, a stratified 10% dev split (seed 0) for early stopping and for choosing a
  configuration; the test fold is only scored;
* both packaged towers frozen, features from the cache, for every row.

Rows: the majority class; the frozen-feature anchor (MiniLM mean-pooled ⊕ EfficientNet-Lite0 pooled, standardised,
logistic regression C=0.1), recomputed here; the same on text only and on image only; Ber-ViT-Conc and Ber-ViT-Att
as base / +ITC / +ITM / +ITC+ITM (recipe: configs/memes.yaml); and the configuration chosen on inner dev (per fold,
the Conc/Att cell with the best dev weighted F1). Each row: test weighted F1, mean ± std over the 5 folds, and a
paired t-test across folds against the anchor (and, for Conc/Att cells, against the family's base).

Finished runs are read back from ``--out`` (delete it to re-run); the table goes to ``OUT/results.md``.
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
ANCHOR = "anchor: frozen concat + LR"


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench-memes")
    ap.add_argument("--recipe", default="configs/memes.yaml")
    ap.add_argument("--tasks", default="sentiment,sarcasm,offensive")
    ap.add_argument("--families", default="conc,att")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every Conc/Att run")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("lightning_fabric", "lightning.fabric", "transformers", "mmpost"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()

    from sklearn.model_selection import StratifiedKFold, train_test_split

    from mmpost.apps.build import build_tower
    from mmpost.apps.datasets import cache_dir
    from mmpost.apps.prepare import PreparedData
    from mmpost.apps.train import train
    from mmpost.config import AUX_SETTINGS, data_root, load_config
    from mmpost.data.dataset import label_ids
    from mmpost.data.sources import get_source
    from mmpost.encoders.features import post_features

    start = time.time()
    out = Path(args.out)
    base_cfg = load_config(args.recipe, ["progress=false"])
    root = data_root(base_cfg.data)
    if root is None:
        sys.exit("set MMPOST_DATA_ROOT (the folder holding memes/)")
    source = get_source("memes")
    posts = source.load(root).posts
    towers = (build_tower(base_cfg.text_encoder), build_tower(base_cfg.image_encoder))
    feats = post_features(posts, *towers, cache_dir=cache_dir(base_cfg), progress=True)
    print(f"{len(posts)} posts, features ready in {time.time() - start:.0f} s", flush=True)
    families = [f for f in args.families.split(",") if f]
    cells = [f"{fam} · {aux}" for fam in families for aux in AUX]
    scores: dict[str, dict[str, list[float]]] = {}

    for task in args.tasks.split(","):
        labels = source.tasks[task]
        keep = [i for i, p in enumerate(posts) if task in p.labels]
        task_posts = [posts[i] for i in keep]
        y = label_ids(task_posts, task, labels)
        text, image = feats.text[keep], feats.image[keep]
        both = np.concatenate([text, image], axis=1)
        rows: dict[str, list[float]] = {}
        folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0)
        for k, (train_idx, test_idx) in enumerate(folds.split(both, y)):
            fit_idx, dev_idx = train_test_split(train_idx, test_size=0.1, stratify=y[train_idx], random_state=0)
            rows.setdefault("majority", []).append(majority_score(y[fit_idx], y[test_idx]))
            for name, x in ((ANCHOR, both), ("text only: MiniLM + LR", text), ("image only: EfficientNet + LR", image)):
                rows.setdefault(name, []).append(lr_score(x[fit_idx], y[fit_idx], x[test_idx], y[test_idx]))
            data = PreparedData(task=task, labels=labels, splits={
                "train": [task_posts[i] for i in fit_idx], "dev": [task_posts[i] for i in dev_idx],
                "test": [task_posts[i] for i in test_idx]})
            dev_scores = {}
            for fam in families:
                for aux in AUX:
                    name = f"{fam}-{aux.replace('+', '-')}"
                    run_dir = out / task / f"fold{k}" / name
                    if not (run_dir / "metrics.json").exists():
                        cfg = load_config(args.recipe, [f"task={task}", f"model.name={fam}", *AUX_SETTINGS[aux],
                                                        f"out_dir={run_dir.parent}", f"name={name}", "progress=false",
                                                        *args.overrides])
                        t0 = time.time()
                        train(cfg, data=PreparedData(task, labels, dict(data.splits)), towers=towers)
                        print(f"  {task} fold {k} {name}: {time.time() - t0:.0f} s", flush=True)
                    metrics = json.loads((run_dir / "metrics.json").read_text())
                    cell = f"{fam} · {aux}"
                    rows.setdefault(cell, []).append(metrics["test"][task]["weighted_f1"])
                    dev_scores[cell] = metrics["dev"][task]["weighted_f1"]
            chosen = max(dev_scores, key=lambda c: (dev_scores[c], -cells.index(c)))
            rows.setdefault("chosen on inner dev", []).append(rows[chosen][-1])
            rows.setdefault("_chosen", []).append(chosen)  # type: ignore[arg-type]
            print(f"{task} fold {k}: anchor {rows[ANCHOR][-1]:.3f}, chosen {chosen} {rows[chosen][-1]:.3f} "
                  f"({time.time() - start:.0f} s)", flush=True)
        scores[task] = rows

    table = markdown(scores, families, args)
    (out / "results.md").parent.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(table)
    print(table)
    print(f"total {time.time() - start:.0f} s")


def markdown(scores: dict[str, dict[str, list]], families: list[str], args) -> str:
    from scipy.stats import ttest_rel

    tasks = list(scores)
    order = ["majority", ANCHOR, "text only: MiniLM + LR", "image only: EfficientNet + LR",
             *[f"{f} · {a}" for f in families for a in AUX], "chosen on inner dev"]

    def cell(task: str, row: str) -> str:
        vals = np.array(scores[task][row])
        s = f"{vals.mean():.3f} ± {vals.std(ddof=1):.3f}"
        refs = [ANCHOR] if row != ANCHOR and row != "majority" else []
        if "·" in row and not row.endswith("base"):
            refs.append(row.split(" · ")[0] + " · base")
        parts = []
        for ref in refs:
            base = np.array(scores[task][ref])
            diff = vals - base
            p = ttest_rel(vals, base).pvalue if np.ptp(diff) > 0 else float("nan")
            tag = "anchor" if ref == ANCHOR else "base"
            parts.append(f"{diff.mean():+.3f} vs {tag}, p={p:.2f}")
        return s + (f" ({'; '.join(parts)})" if parts else "")

    lines = [f"Test weighted F1, mean ± std over {args.folds} outer folds; in brackets the mean paired difference "
             "and the paired t-test p across folds.", "",
             "| row | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for row in order:
        lines.append(f"| {row} | " + " | ".join(cell(t, row) for t in tasks) + " |")
    lines.append("")
    for t in tasks:
        picks = scores[t]["_chosen"]
        lines.append(f"- {t}: chosen per fold: " + ", ".join(picks))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
