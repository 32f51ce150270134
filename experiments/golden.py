"""Record, or check against, a golden file of numbers that a refactoring must not change.

    python experiments/golden.py record experiments/golden.json      # before the change
    python experiments/golden.py check experiments/golden.json       # after it: every number within 1e-6

What it holds:
- ``demo``: the test metrics of ``mmpost demo --quick`` (every synthetic task, base and +ITC+ITM);
- ``losses``: the per-epoch train and dev losses (every logged part) of ``conc`` and ``att`` with ITC+ITM on the
  synthetic sentiment task, frozen towers, seed 0, 6 epochs.

The numbers are reproducible on one machine (same CPU, same library versions); another machine may differ in the
last bits of floating point.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
from pathlib import Path

TOL = 1e-6
LOSS_OVERRIDES = ["data.source=synthetic", "task=sentiment", "text_encoder.trainable=false", "train.epochs=6",
                  "train.patience=100", "train.seed=0", "progress=false"]
AUX_ON = ["objectives.itc.weight=1.0", "objectives.itm.weight=1.0"]


def demo_numbers(out: Path) -> dict:
    from mmpost.apps.demo import run_demo
    rows = run_demo(quick=True, out_dir=str(out / "demo"), overrides=["progress=false"])
    return {f"{r.task}/{r.setting}": r.result.metrics["test"][r.task] for r in rows}


def loss_numbers(out: Path) -> dict:
    from mmpost.apps.train import train
    from mmpost.config import load_config
    found = {}
    for family in ("conc", "att"):
        cfg = load_config(None, LOSS_OVERRIDES + AUX_ON + [f"model.name={family}", f"out_dir={out}",
                                                           f"name=losses-{family}"])
        result = train(cfg)
        with open(result.run_dir / "log.csv") as f:
            found[family] = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
    return found


def compare(want, got, where: str = "") -> list[str]:
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: expected a mapping"]
        out = [f"{where}/{k}: missing" for k in want if k not in got]
        for k in want:
            if k in got:
                out += compare(want[k], got[k], f"{where}/{k}")
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: length {len(got) if isinstance(got, list) else '?'} != {len(want)}"]
        return [m for i, (a, b) in enumerate(zip(want, got)) for m in compare(a, b, f"{where}[{i}]")]
    if isinstance(want, (int, float)):
        if not isinstance(got, (int, float)) or not math.isclose(want, got, rel_tol=0, abs_tol=TOL):
            return [f"{where}: {got} != {want}"]
    return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["record", "check"])
    ap.add_argument("path", type=Path)
    ap.add_argument("--only", choices=["demo", "losses"], help="one part only")
    ap.add_argument("--aux-overrides", nargs="*", help="how this config surface turns ITC and ITM on")
    args = ap.parse_args()
    if args.aux_overrides is not None:
        AUX_ON[:] = args.aux_overrides
    with tempfile.TemporaryDirectory() as tmp:
        got = {}
        if args.only in (None, "losses"):
            got["losses"] = loss_numbers(Path(tmp))
        if args.only in (None, "demo"):
            got["demo"] = demo_numbers(Path(tmp))
    if args.mode == "record":
        args.path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.path}")
        return
    want = json.loads(args.path.read_text())
    want = {k: v for k, v in want.items() if k in got}
    problems = compare(want, got)
    for p in problems[:40]:
        print(p)
    print(f"{'MISMATCH' if problems else 'OK'}: {len(problems)} numbers differ by more than {TOL}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
