"""Prediction spread over processes and Ray workers: posts/s of ``mmpost predict`` on one process, sharded over 2
processes (``fabric.devices=2``), and ``--engine ray`` with 1 and 2 workers, with each output checked against the
one-process file, in one run.

    python benchmarks/predict_scale.py                      # 2,000 synthetic posts (64 px), a small frozen-tower run
    python benchmarks/predict_scale.py --posts 500          # a quick look

The run and the posts are made first (not timed; the helpers of ``benchmarks/predict_memory.py``). Each row is
one ``mmpost predict`` command in a process of its own, timed end to end from the shell's view (start-up, model
loading, reading, predicting, writing, merging), so the ratios say what a user gets on this machine, including the
fixed cost that a larger file spreads thinner. Every process uses ``--threads`` / processes intra-op threads
(OMP_NUM_THREADS), so that the rows share the same cores fairly; with another thread count per process, the last
digit of a probability can differ (the sharded file is byte-identical to one process at the same threads per
process, which the tests check). Ray rows are skipped when Ray is not installed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_memory import setup  # noqa: E402  (benchmarks/ is not a package)


def run_predict(args: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mmpost.cli", "predict", *args], env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"mmpost predict {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return wall


def ray_rows(path: Path) -> list[dict]:
    import pyarrow.parquet as pq
    return pq.read_table(path).to_pylist()


def same_as(reference: list[dict], path: Path) -> str:
    if path.is_dir():
        rows = ray_rows(path)
        ok = [r["id"] for r in rows] == [x["id"] for x in reference] and \
            [r["label"] for r in rows] == [x["label"] for x in reference]
        return "same ids, order and labels" if ok else "DIFFERENT"
    got = [json.loads(line) for line in path.read_text().splitlines()]
    if got == reference:
        return "byte-identical"
    if [g["id"] for g in got] != [r["id"] for r in reference] or \
            [g["label"] for g in got] != [r["label"] for r in reference]:
        return "DIFFERENT ids or labels"
    worst = max(abs(g["probs"][k] - r["probs"][k]) for g, r in zip(got, reference) for k in r["probs"])
    return f"same ids and labels; probabilities within {worst:.0e} (threads per process differ)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=2000)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2, help="cores to share among the processes of a row")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "mmpost" / "bench-predict-scale")
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    setup(work, [args.posts], 64, None, args.threads)
    run, manifest = work / "runs" / "frozen-conc", work / f"posts-{args.posts}.csv"
    base = [str(run), "--data", str(manifest), "--chunk", str(args.chunk), "data.columns.image_root="
            f"{work / 'posts-px64' / 'images'}"]
    rows = [("1 process", [*base, "--out", str(work / "one.jsonl")], args.threads, work / "one.jsonl"),
            ("2 processes (fabric.devices=2)", [*base, "fabric.devices=2", "--out", str(work / "two.jsonl")],
             max(1, args.threads // 2), work / "two.jsonl")]
    try:
        import ray  # noqa: F401
        for n in (1, 2):
            out = work / f"ray{n}"
            rows.append((f"Ray, {n} worker(s)", [*base, "--engine", "ray", "--workers", str(n), "--out",
                                                  str(out)], max(1, args.threads // n), out))
    except ImportError:
        print('Ray rows skipped: pip install "mmpost[ray]"')
    results = [(name, run_predict(a, t), out) for name, a, t, out in rows]
    reference = [json.loads(line) for line in (work / "one.jsonl").read_text().splitlines()]
    one = results[0][1]
    print(f"\n{args.posts} posts, chunk {args.chunk}, {os.cpu_count()} CPUs, threads shared: {args.threads}")
    print(f"{'':32} {'wall s':>8} {'posts/s':>9} {'vs 1 process':>13}  output")
    for name, wall, out in results:
        print(f"{name:32} {wall:8.1f} {args.posts / wall:9.1f} {one / wall:12.2f}×  {same_as(reference, out)}")


if __name__ == "__main__":
    main()
