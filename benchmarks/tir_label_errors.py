"""How well ``mmpost label-issues`` finds known label errors: ITRp's 218 relabelled TIR test posts.

    MMPOST_DATA_ROOT=/path/to/data python benchmarks/tir_label_errors.py --out runs/tir-label-errors

Protocol (fixed before looking at any result):
* ``mmpost cv configs/datasets/tir.yaml`` on task ``relation`` (4 classes), text only (the images are not in the
  data), over all 4,471 posts with their original labels (``test=raw``): 5 outer folds, stratified, grouped by
  image key and near-duplicate text, a 10% inner dev per fold; the recipe's frozen MiniLM + Conc head.
* ``mmpost label-issues`` on the folder (cleanlab, out-of-fold probabilities).
* The 895 rows of ITRp's test split (0-based indices 3,576–4,470) are ranked by label doubt (1 − p(given label));
  the positives are the 218 rows of ``tir/controversial_samples.txt`` (0-based indices), whose label ITRp's
  annotators changed.
* Precision@218, average precision and ROC AUC, each with a 95% percentile bootstrap interval over the 895 rows
  (2,000 resamples), against a random ranking (precision 218/895, AUC 0.5); and how many of the 218 are among
  the posts cleanlab flags.
Results go to ``OUT/results.json`` and ``OUT/results.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

RECIPE = "configs/datasets/tir.yaml"


def scores_at(doubt: np.ndarray, positive: np.ndarray, k: int) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score
    top = np.argsort(-doubt, kind="stable")[:k]
    return {"precision_at_k": float(positive[top].mean()), "average_precision": float(average_precision_score(
        positive, doubt)), "roc_auc": float(roc_auc_score(positive, doubt))}


def bootstrap(doubt: np.ndarray, positive: np.ndarray, n: int = 2000, seed: int = 0) -> dict[str, list[float]]:
    """95% percentile intervals; a resample's k is its own number of positives."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n):
        idx = rng.integers(0, len(doubt), len(doubt))
        if positive[idx].all() or not positive[idx].any():
            continue
        for key, value in scores_at(doubt[idx], positive[idx], int(positive[idx].sum())).items():
            draws.setdefault(key, []).append(value)
    return {key: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for key, v in draws.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/tir-label-errors")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("overrides", nargs="*", help="key=value overrides of the recipe")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mmpost.apps.cv import cross_validate
    from mmpost.apps.label_issues import find_label_issues_in
    from mmpost.config import data_root, load_config
    from mmpost.data.sources import get_source
    from mmpost.data.sources.tir import ITRP_TEST_START, controversial

    start = time.time()
    overrides = ["task=relation", "data.options.test=raw", "data.group_by=[image,text]", *args.overrides]
    cfg = load_config(RECIPE, overrides)
    root = data_root(cfg.data)
    if root is None:
        sys.exit("set MMPOST_DATA_ROOT (the folder holding tir/)")
    out = Path(args.out)
    cross_validate(RECIPE, overrides, folds=args.folds, seeds=(0,), out=out / "cv")
    found = find_label_issues_in(out / "cv")
    posts = get_source("tir").load(root).posts
    index_of = {p.id: p.meta["itrp_index"] for p in posts}
    relabelled = set(controversial(root))
    doubt_of = dict(zip(found.ids, found.scores))
    test_ids = [i for i in found.ids if index_of[i] >= ITRP_TEST_START]
    doubt = np.asarray([doubt_of[i] for i in test_ids])
    positive = np.asarray([index_of[i] in relabelled for i in test_ids])
    k = int(positive.sum())
    measured = scores_at(doubt, positive, k)
    flagged = set(found.flagged)
    flagged_test = [i for i in test_ids if i in flagged]
    result = {"test_rows": len(test_ids), "relabelled": k, **measured, "ci95": bootstrap(doubt, positive),
              "random": {"precision_at_k": k / len(test_ids), "average_precision": k / len(test_ids),
                         "roc_auc": 0.5},
              "flagged_in_test": len(flagged_test),
              "relabelled_among_flagged": int(sum(index_of[i] in relabelled for i in flagged_test)),
              "method": found.method, "seconds": round(time.time() - start)}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    ci = r["ci95"]
    rows = [("precision@218", "precision_at_k"), ("average precision", "average_precision"),
            ("ROC AUC", "roc_auc")]
    lines = [f"Finding ITRp's {r['relabelled']} relabelled rows among the {r['test_rows']} TIR test rows by "
             "out-of-fold label doubt.", "", "| measure | label-issues | 95% CI | random ranking |",
             "|---|---:|---:|---:|"]
    lines += [f"| {name} | {r[key]:.3f} | {ci[key][0]:.3f}–{ci[key][1]:.3f} | {r['random'][key]:.3f} |"
              for name, key in rows]
    lines += ["", f"cleanlab ({r['method']}) flags {r['flagged_in_test']} test rows; {r['relabelled_among_flagged']} "
              f"of them are among the {r['relabelled']} relabelled. Wall time {r['seconds']} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
