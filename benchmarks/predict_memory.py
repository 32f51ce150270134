"""Peak memory of streaming ``mmpost predict`` over 5k, 10k and 20k posts: the cost per post must be flat.

    python benchmarks/predict_memory.py                     # trains a small frozen-tower run first
    python benchmarks/predict_memory.py --run runs/my-run   # or predicts with a run you have

Posts come from the embedded synthetic generator (``mmpost.data.synthetic.generate_posts``, 64 px images) and are
written as CSV manifests of the first 5k, 10k and 20k posts; generating them (and training the run) is not
measured; it runs in a process of its own, so that this one stays small. Each size is predicted by ``mmpost predict``
in a process of its own; its peak resident set size comes from the kernel's accounting for that child
(``os.wait4``; a child's count starts from its parent's resident size when it is forked, hence the small parent),
checked against the high-water mark ``VmHWM`` read from ``/proc`` while it runs. Both are printed, with the ratio
to the smallest size measured in the same run. Target: flat within 10% and under 2 GiB.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

GIB = 1 << 30


def write_manifest(path: Path, posts, image_dir: Path) -> None:
    """id, text and image (relative to ``image_dir``): what the predict command reads with the overrides below."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "image"])
        for p in posts:
            w.writerow([p.id, p.text, os.path.relpath(p.images[0], image_dir)])


def train_small_run(work: Path, threads: int) -> Path:
    """A Ber-ViT-Conc head on frozen MiniLM + EfficientNet-Lite0 features of 600 synthetic posts (64 px)."""
    from mmpost.apps.train import train
    from mmpost.config import load_config
    from mmpost.engine.setup import torch_threads
    run = work / "runs" / "frozen-conc"
    if (run / "model.safetensors").exists():
        return run
    overrides = ["text_encoder.trainable=false", "data.synthetic.n=600", "data.synthetic.size=64",
                 "train.epochs=3", "objectives.itc.enabled=true", "objectives.itm.enabled=true",
                 f"out_dir={work / 'runs'}",
                 "name=frozen-conc", f"cache_dir={work / 'train-cache'}", "progress=false"]
    with torch_threads(threads):
        return train(load_config(None, overrides)).run_dir


def setup(work: Path, sizes: list[int], px: int, run: Path | None, threads: int) -> None:
    """Generate the posts, write the manifests, train the run if none is given (in the setup process)."""
    from mmpost.data.synthetic import generate_posts
    posts_dir = work / f"posts-px{px}"
    posts = generate_posts(posts_dir, n=sizes[-1], size=px, seed=0)
    for n in sizes:
        write_manifest(work / f"posts-{n}.csv", posts[:n], posts_dir / "images")
    del posts
    print(run or train_small_run(work, threads))


def vm_hwm(pid: int) -> int:
    """The process's resident high-water mark (bytes) so far, 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def predict_peak_rss(run: Path, manifest: Path, image_dir: Path, out: Path, *, chunk: int,
                     threads: int) -> tuple[int, int, float]:
    """(peak RSS from the kernel's accounting, VmHWM last polled, wall seconds) of one ``mmpost predict``."""
    cmd = [sys.executable, "-m", "mmpost.cli", "predict", str(run), "--data", str(manifest), "--out", str(out),
           "--chunk", str(chunk), "data.columns.id=id", "data.columns.text=text", "data.columns.image=image",
           f"data.columns.image_root={image_dir}", "data.columns.image_pattern=null", "data.columns.image_sep=null",
           "data.columns.keep=[]", "data.columns.format=null"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
           "TQDM_DISABLE": "1"}
    log = out.with_suffix(".log")
    start = time.perf_counter()
    with open(log, "wb") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        polled = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            polled = max(polled, vm_hwm(proc.pid))
            time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"mmpost predict failed ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
    log.unlink()
    return usage.ru_maxrss * 1024, polled, seconds        # Linux reports ru_maxrss in kibibytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="a finished run (default: train a small frozen-tower one)")
    ap.add_argument("--sizes", default="5000,10000,20000")
    ap.add_argument("--px", type=int, default=64, help="image side of the generated posts")
    ap.add_argument("--chunk", type=int, default=1024, help="posts per chunk (mmpost predict --chunk)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "mmpost" / "bench-predict-memory",
                    help="generated posts, the trained run and the outputs (kept: a second run reuses them)")
    ap.add_argument("--setup-only", action="store_true", help=argparse.SUPPRESS)   # the setup process
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    work = args.work.expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.setup_only:
        import logging
        logging.basicConfig(level=logging.ERROR)
        setup(work, sizes, args.px, args.run, args.threads)
        return
    t0 = time.perf_counter()
    cmd = [sys.executable, __file__, "--setup-only", "--sizes", args.sizes, "--px", str(args.px), "--work", str(work),
           "--threads", str(args.threads)] + (["--run", str(args.run)] if args.run else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"setup failed:\n{done.stderr[-3000:]}")
    run = Path(done.stdout.strip().splitlines()[-1])
    image_dir = work / f"posts-px{args.px}" / "images"
    print(f"setup (generation, training; not measured): {time.perf_counter() - t0:.0f} s · run {run}", flush=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} threads; chunk {args.chunk}; "
          f"this process's own peak RSS {vm_hwm(os.getpid()) / 2**20:.0f} MiB", flush=True)
    rows = []
    for n in sizes:
        out = work / f"predictions-{n}.jsonl"
        rss, polled, seconds = predict_peak_rss(run, work / f"posts-{n}.csv", image_dir, out, chunk=args.chunk,
                                                threads=args.threads)
        with open(out, encoding="utf-8") as f:
            lines = sum(1 for _ in f)
        if lines != n:
            sys.exit(f"{out} has {lines} lines for {n} posts")
        out.unlink()
        rows.append((n, rss, polled, seconds))
        print(f"  {n:>6} posts: peak RSS {rss / 2**20:7.0f} MiB (VmHWM polled {polled / 2**20:.0f} MiB), "
              f"{seconds:6.0f} s", flush=True)
    base = rows[0][1]
    print(f"\n| posts | peak RSS (MiB) | ratio to {sizes[0]:,} | VmHWM polled (MiB) | wall (s) | posts/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, rss, polled, seconds in rows:
        print(f"| {n:,} | {rss / 2**20:.0f} | {rss / base:.3f} | {polled / 2**20:.0f} | {seconds:.0f} | "
              f"{n / seconds:.1f} |")
    worst = max(r[1] for r in rows) / base
    top = max(r[1] for r in rows)
    verdict = "met" if worst <= 1.10 and top < 2 * GIB else "MISSED"
    print(f"\ntarget (flat within 10%, under 2 GiB): {verdict} — largest ratio {worst:.3f}, "
          f"largest peak {top / GIB:.2f} GiB")


if __name__ == "__main__":
    main()
