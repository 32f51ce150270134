"""The offline towers compared on the memes: frozen features of each text/image tower pair, under the memes protocol.

    MMPOST_DATA_ROOT=/path/to/data python benchmarks/memes_towers.py

Same folds as ``benchmarks/memes_quality.py`` (the folds of ``mmpost cv``: 5 outer folds per task, stratified by
the task's label, grouped by image and near-duplicate text). For each pair of towers, every post's frozen features
(cached) go into the anchor's model: standardised, logistic regression C=0.1, fitted on the training fold (its dev
part included, as for the anchor), scored on the test fold. The first pair (MiniLM ⊕ EfficientNet-Lite0, today's
anchor) is the reference: every other row gets its mean paired difference and a paired t-test across folds.
Feature extraction is timed per tower (posts/s, cache cold unless ``--cache`` holds them).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from memes_quality import FROZEN, GROUPING, _quiet, lr_score

TOWERS = {
    "minilm": {"name": "minilm"},
    "e5": {"name": "e5-multilingual"},
    "minilm+e5": {"name": "concat", "parts": [{"name": "minilm"}, {"name": "e5-multilingual"}]},
    "lite0": {"name": "efficientnet-lite0"},
    "lite2": {"name": "efficientnet-lite2"},
}
PAIRS = ["minilm/lite0", "e5/lite0", "minilm+e5/lite0", "minilm/lite2", "minilm+e5/lite2"]


def tower_features(posts, key: str, side: str, cache) -> tuple[np.ndarray, float]:
    from mmpost.apps.build import build_tower
    from mmpost.config import EncoderConfig
    from mmpost.encoders.features import post_features
    tower = build_tower(EncoderConfig(**TOWERS[key]))
    t0 = time.perf_counter()
    feats = post_features(posts, tower if side == "text" else None, tower if side == "image" else None,
                          cache_dir=cache, progress=True)
    return (feats.text if side == "text" else feats.image), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="configs/memes.yaml")
    ap.add_argument("--tasks", default="sentiment,sarcasm,offensive")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--pairs", default=",".join(PAIRS), help="text/image tower pairs; the first is the reference")
    ap.add_argument("--cache", help="feature cache folder (default: the recipe's)")
    args = ap.parse_args()
    _quiet()
    from scipy.stats import ttest_rel

    from mmpost.apps.cv import plan_folds
    from mmpost.apps.datasets import cache_dir
    from mmpost.config import data_root, load_config
    from mmpost.data.dataset import label_ids
    from mmpost.data.sources import get_source

    cfg = load_config(args.recipe, ["progress=false", *FROZEN])
    if data_root(cfg.data) is None:
        sys.exit("set MMPOST_DATA_ROOT (the folder holding memes/)")
    posts = get_source("memes").load(data_root(cfg.data)).posts
    cache = args.cache or cache_dir(cfg)
    pairs = [p.split("/") for p in args.pairs.split(",")]
    feats = {}
    for key, side in dict.fromkeys((k, s) for pair in pairs for k, s in zip(pair, ("text", "image"))):
        feats[key], took = tower_features(posts, key, side, cache)
        print(f"{key}: {feats[key].shape[1]}-d, {len(posts) / took:.1f} posts/s ({took:.0f} s)", flush=True)
    position = {p.id: i for i, p in enumerate(posts)}
    scores: dict[str, dict[str, list[float]]] = {}
    for task in args.tasks.split(","):
        folds = plan_folds(load_config(args.recipe, [f"tasks=[{task}]", *GROUPING, "progress=false"]), args.folds,
                           progress=False)
        keep = [position[p.id] for p in folds.posts]
        y = label_ids(folds.posts, task, get_source("memes").tasks[task])
        for text_key, image_key in pairs:
            x = np.concatenate([feats[text_key][keep], feats[image_key][keep]], axis=1)
            for fold in folds.folds:
                fit, test = np.asarray(fold["train"]), np.asarray(fold["test"])
                scores.setdefault(f"{text_key} ⊕ {image_key}", {}).setdefault(task, []).append(
                    lr_score(x[fit], y[fit], x[test], y[test]))
    tasks = args.tasks.split(",")
    ref = next(iter(scores))
    lines = ["| towers (frozen, LR) | " + " | ".join(f"{t} | vs {ref}" for t in tasks) + " |",
             "|---|" + "---:|---:|" * len(tasks)]
    for row, by_task in scores.items():
        cells = []
        for t in tasks:
            a, b = np.array(by_task[t]), np.array(scores[ref][t])
            vs = "" if row == ref else f"{(a - b).mean():+.3f} (p={ttest_rel(a, b).pvalue:.2f})"
            cells.append(f"{a.mean():.3f} ± {a.std(ddof=1):.3f} | {vs}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
