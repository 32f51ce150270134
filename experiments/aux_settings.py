"""Train each model family with each auxiliary setting on one data set and print a table of test scores.

    python experiments/aux_settings.py --recipe configs/memes.yaml --out runs/aux-memes
    python experiments/aux_settings.py --synthetic-task relation --out runs/aux-synthetic

One seed per cell: the table also prints the 95% bootstrap interval of test weighted F1, which is the honest
way to read differences between cells. Finished cells are reused (delete the folder to re-run).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HARD = "objectives.itm.negatives=hard"
SETTINGS = {   # name in the table: (run folder suffix, overrides)
    "base": ("base", []),
    "+ITC": ("itc", ["objectives.itc.enabled=true"]),
    "+ITM (random)": ("itm-random", ["objectives.itm.enabled=true"]),
    "+ITM (hard)": ("itm-hard", ["objectives.itm.enabled=true", HARD]),
    "+ITC+ITM (hard)": ("itc-itm-hard", ["objectives.itc.enabled=true", "objectives.itm.enabled=true", HARD]),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", help="a YAML recipe; default: the embedded synthetic set")
    ap.add_argument("--synthetic-task", default="relation")
    ap.add_argument("--families", default="conc,att")
    ap.add_argument("--out", default="runs/aux-settings")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every cell")
    args = ap.parse_args()

    from mmpost.apps.train import train
    from mmpost.config import load_config
    base = [] if args.recipe else ["data.source=synthetic", f"task={args.synthetic_task}",
                                   "text_encoder.trainable=false"]
    rows = []
    for family in args.families.split(","):
        for setting, (suffix, over) in SETTINGS.items():
            name = f"{family}-{suffix}"
            run = Path(args.out) / name
            start = time.time()
            if not (run / "metrics.json").exists():
                cfg = load_config(args.recipe, base + [f"model.name={family}", f"out_dir={args.out}", f"name={name}",
                                                       "progress=false", *over, *args.overrides])
                train(cfg)
            took = time.time() - start
            metrics = json.loads((run / "metrics.json").read_text())["test"]
            task, m = next(iter(metrics.items()))
            lo, hi = m["weighted_f1_ci95"]
            rows.append((family, setting, m["weighted_f1"], lo, hi, m["macro_f1"], m["accuracy"], m["mcc"], m["n"],
                         took))
            print(f"{family:5} {setting:16} wF1 {m['weighted_f1']:.3f} [{lo:.3f}, {hi:.3f}]  {took:6.0f} s", flush=True)
    print("\n| family | setting | weighted F1 (95% CI) | macro F1 | accuracy | MCC | n | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for fam, setting, wf1, lo, hi, mf1, acc, mcc, n, took in rows:
        print(f"| {fam} | {setting} | {wf1:.3f} ({lo:.3f}–{hi:.3f}) | {mf1:.3f} | {acc:.3f} | {mcc:.3f} | {n} "
              f"| {took:.0f} |")


if __name__ == "__main__":
    main()
