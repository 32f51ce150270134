"""Load test of `mmpost serve`, bounded and on loopback only: N concurrent clients for T seconds.

    python benchmarks/serve_load.py                              # trains a small run first (frozen towers)
    python benchmarks/serve_load.py --run runs/my-run --clients 8 --seconds 20
    python benchmarks/serve_load.py --keep-run runs/load --clients 1     # then --run runs/load/serve-load

Without ``--run`` it trains a small run on the embedded synthetic set (the packaged MiniLM and
EfficientNet-Lite0, both frozen, as ``mmpost demo --quick`` trains) in a temporary folder. It then starts
``mmpost serve`` in a child process on 127.0.0.1 and a free port, checks one request of each kind, and lets N
client threads send requests back to back until T seconds have passed (or ``--max-requests`` in all): single
posts as multipart forms and as JSON with a base64 image, batches of ``--batch-size`` posts, and a share of
deliberately bad requests (a corrupt image) that must be answered 422. It prints p50 / p99 latency, throughput
and the count of every status, per kind, and the server's peak memory, then stops the server.

The baseline, measured in the same run before the server starts: the same service object the server uses (model
loaded once, the same image checks and decoding, the same thread count), called directly in this process by one
caller, one post at a time and in batches of ``--batch-size``, for ``--baseline-seconds`` each. The report gives
the served throughput as a ratio to the time one in-process caller needs for the same posts, in the same shapes:
what HTTP, the request parsing and concurrency add or cost.

Exit status 1 when any answer is a 5xx, a request fails to connect or times out, or an answer is not the one its
kind expects (200, or 422 for the bad ones); 0 otherwise. Nothing leaves this machine: the server listens on
127.0.0.1 and every request goes there.
"""
from __future__ import annotations

import argparse
import base64
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"          # loopback only, on purpose: never a flag
MAX_CLIENTS, MAX_SECONDS = 64, 600


@dataclass
class Sample:
    kind: str
    status: str             # "200", "422", ... or "error:<exception>"
    seconds: float
    posts: int


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def train_small_run(work: Path, posts: int, epochs: int) -> Path:
    from mmpost.apps.train import train
    from mmpost.config import load_config
    cfg = load_config(None, ["data.source=synthetic", f"data.synthetic.n={posts}", "task=sentiment",
                             "text_encoder.trainable=false", f"train.epochs={epochs}", f"out_dir={work}",
                             "name=serve-load", "progress=false"])
    return train(cfg).run_dir


def request_posts(run_dir: Path, n: int) -> list[tuple[str, bytes]]:
    """(text, image bytes) of up to n posts of the run's own data (test split first): realistic inputs."""
    from mmpost.apps.prepare import prepare
    from mmpost.config import load_config
    cfg = load_config(run_dir / "config.yaml", ["progress=false"])
    data = prepare(cfg.data, cfg.task, progress=False)
    posts = [p for split in ("test", "dev", "train") for p in data.splits.get(split, []) if p.images][:n]
    if not posts:
        sys.exit(f"{run_dir}: its data has no post with an image to send")
    return [(p.text, Path(p.images[0]).read_bytes()) for p in posts]


class Server:
    """`mmpost serve` in a child process; its output goes to a log file that is shown if it fails."""

    def __init__(self, run_dir: Path, port: int, log: Path) -> None:
        self.log = log
        self.url = f"http://{HOST}:{port}"
        cmd = [sys.executable, "-m", "mmpost.cli", "serve", str(run_dir), "--host", HOST, "--port", str(port),
               "--no-access-log"]
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     env={**os.environ, "HF_HUB_OFFLINE": "1"})

    def wait_ready(self, timeout: float) -> None:
        import httpx2 as httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"the server exited ({self.proc.returncode}) before it was ready:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.stop()
        sys.exit(f"the server was not ready after {timeout:.0f} s:\n{self.log.read_text()}")

    def peak_memory_mib(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


def in_process_baseline(run_dir: Path, posts: list[tuple[str, bytes]], batch_size: int,
                        seconds: float) -> dict[str, tuple[float, float]]:
    """{"single" | "batch": (posts/s, p50 ms a call)} of the serving code called directly, one caller, no HTTP."""
    from mmpost.apps.predictor import load
    from mmpost.serve.limits import ServeLimits
    from mmpost.serve.payload import PostInput
    from mmpost.serve.service import PredictionService
    service = PredictionService(load(run_dir), ServeLimits())
    service.warm_up()
    rng = random.Random(0)
    out = {}
    for shape, n in (("single", 1), ("batch", batch_size)):
        calls, done, start = [], 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            chosen = rng.sample(posts, min(n, len(posts)))
            t = time.perf_counter()
            service.predict([PostInput(None, text, image, "") for text, image in chosen])
            calls.append(1000 * (time.perf_counter() - t))
            done += len(chosen)
        out[shape] = (done / (time.perf_counter() - start), percentile(calls, 50))
    return out


def baseline_lines(samples: list[Sample], wall: float, base: dict[str, tuple[float, float]]) -> list[str]:
    """Served throughput against the in-process baseline for the same work: the seconds one in-process caller would
    need for the posts the server answered (single posts at the single rate, batched posts at the batch rate)."""
    single = sum(s.posts for s in samples if s.kind in ("multipart", "json") and s.status == "200")
    batched = sum(s.posts for s in samples if s.kind == "batch" and s.status == "200")
    alone = single / base["single"][0] + batched / base["batch"][0]
    return [f"served {single} single posts and {batched} posts in batches in {wall:.1f} s; one in-process caller "
            f"would need {alone:.1f} s for the same work (single {base['single'][0]:.1f} posts/s, batched "
            f"{base['batch'][0]:.1f} posts/s): ratio {alone / wall:.2f}x"]


def make_requests(posts: list[tuple[str, bytes]], batch_size: int):
    """Request builders by kind: each takes a random generator and returns (method args, posts in it)."""
    corrupt = posts[0][1][: max(16, len(posts[0][1]) // 3)]            # a truncated image

    def multipart(rng):
        text, image = rng.choice(posts)
        return {"url": "/predict", "data": {"text": text}, "files": {"image": ("post.png", image)}}, 1

    def json_single(rng):
        text, image = rng.choice(posts)
        return {"url": "/predict", "json": {"text": text, "image": base64.b64encode(image).decode()}}, 1

    def batch(rng):
        chosen = rng.sample(posts, min(batch_size, len(posts)))
        body = {"posts": [{"text": t, "image": base64.b64encode(i).decode()} for t, i in chosen]}
        return {"url": "/predict/batch", "json": body}, len(chosen)

    def bad(rng):
        return {"url": "/predict", "data": {"text": rng.choice(posts)[0]},
                "files": {"image": ("broken.png", corrupt)}}, 1

    return {"multipart": multipart, "json": json_single, "batch": batch, "bad": bad}


def client_loop(url: str, kinds: list[str], builders, bad_share: float, deadline: float, budget: list[int],
                lock: threading.Lock, out: list[Sample], seed: int, timeout: float) -> None:
    import httpx2 as httpx
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=timeout) as client:
        while time.monotonic() < deadline:
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            kind = "bad" if rng.random() < bad_share else rng.choice(kinds)
            args, n = builders[kind](rng)
            start = time.perf_counter()
            try:
                status = str(client.post(**args).status_code)
            except httpx.HTTPError as e:
                status = f"error:{type(e).__name__}"
            out.append(Sample(kind, status, time.perf_counter() - start, n))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def report(samples: list[Sample], wall: float) -> tuple[list[str], bool]:
    expected = {"multipart": "200", "json": "200", "batch": "200", "bad": "422"}
    lines = [f"{'kind':<10} {'requests':>8} {'req/s':>7} {'posts/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  "
             "statuses"]
    ok = True
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.kind].append(s)
    for kind, group in [*sorted(groups.items()), ("all", samples)]:
        ms = [1000 * s.seconds for s in group]
        statuses = Counter(s.status for s in group)
        posts = sum(s.posts for s in group if s.status == "200")
        lines.append(f"{kind:<10} {len(group):>8} {len(group) / wall:>7.1f} {posts / wall:>8.1f} "
                     f"{percentile(ms, 50):>8.1f} {percentile(ms, 99):>8.1f} {max(ms):>8.1f}  "
                     + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
        if kind != "all" and any(k != expected[kind] for k in statuses):
            ok = False
    return lines, ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="a finished run folder (default: train a small one first)")
    ap.add_argument("--clients", type=int, default=8, help=f"concurrent clients (at most {MAX_CLIENTS})")
    ap.add_argument("--seconds", type=float, default=20, help=f"how long to send requests (at most {MAX_SECONDS})")
    ap.add_argument("--max-requests", type=int, default=20_000, help="stop after this many requests in all")
    ap.add_argument("--kinds", default="multipart,json,batch", help="request kinds: multipart, json, batch")
    ap.add_argument("--batch-size", type=int, default=8, help="posts per /predict/batch request")
    ap.add_argument("--bad-share", type=float, default=0.05, help="share of requests with a corrupt image (422)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds before one request counts as failed")
    ap.add_argument("--train-posts", type=int, default=400, help="synthetic posts for the small run")
    ap.add_argument("--keep-run", type=Path, help="train the small run into this folder and keep it (default: a "
                                                  "temporary folder, removed at the end)")
    ap.add_argument("--baseline-seconds", type=float, default=10,
                    help="seconds for each in-process baseline shape (single posts, batches)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS or args.max_requests < 1:
        sys.exit(f"--clients must be 1..{MAX_CLIENTS}, --seconds in (0, {MAX_SECONDS}], --max-requests >= 1")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or set(kinds) - {"multipart", "json", "batch"}:
        sys.exit(f"--kinds: choose from multipart, json, batch; got {args.kinds!r}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging
    logging.basicConfig(level=logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="mmpost-serve-load-") as tmp:
        run_dir = args.run
        if run_dir is None:
            if args.keep_run is not None and (args.keep_run / "serve-load").exists():
                sys.exit(f"{args.keep_run / 'serve-load'} exists already: pass --run {args.keep_run / 'serve-load'}")
            start = time.perf_counter()
            run_dir = train_small_run(args.keep_run or Path(tmp), args.train_posts, epochs=10)
            print(f"trained {run_dir.name} on {args.train_posts} synthetic posts (frozen towers) in "
                  f"{time.perf_counter() - start:.0f} s")
        posts = request_posts(run_dir, 64)
        builders = make_requests(posts, args.batch_size)
        base = in_process_baseline(run_dir, posts, args.batch_size, args.baseline_seconds)
        print(f"in-process baseline (no HTTP, one caller): single posts {base['single'][0]:.1f} posts/s "
              f"(p50 {base['single'][1]:.0f} ms), batches of {args.batch_size} {base['batch'][0]:.1f} posts/s "
              f"(p50 {base['batch'][1]:.0f} ms a batch)")
        server = Server(run_dir, free_port(), Path(tmp) / "server.log")
        try:
            start = time.perf_counter()
            server.wait_ready(timeout=180)
            print(f"server ready on {server.url} after {time.perf_counter() - start:.1f} s "
                  f"(model loaded, warm-up prediction made)")
            import httpx2 as httpx
            with httpx.Client(base_url=server.url, timeout=args.timeout) as c:    # one of each, before the load
                for kind in [*kinds, "bad"]:
                    r = c.post(**builders[kind](random.Random(0))[0])
                    if r.status_code != (422 if kind == "bad" else 200):
                        sys.exit(f"{kind}: expected {422 if kind == 'bad' else 200}, got {r.status_code}: {r.text}")
            samples: list[Sample] = []
            budget, lock = [args.max_requests], threading.Lock()
            deadline = time.monotonic() + args.seconds
            threads = [threading.Thread(target=client_loop, args=(server.url, kinds, builders, args.bad_share,
                                                                  deadline, budget, lock, samples,
                                                                  args.seed * 1000 + i, args.timeout))
                       for i in range(args.clients)]
            load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
            peak = server.peak_memory_mib()
        finally:
            server.stop()
    lines, expected_only = report(samples, wall)
    five_xx = sum(1 for s in samples if s.status.startswith("5"))
    failed = sum(1 for s in samples if s.status.startswith("error"))
    print(f"{args.clients} clients × {wall:.1f} s, {len(samples)} requests, {os.cpu_count()} CPU cores"
          + (f" (1-minute load average {load_before:.1f} before the clients started)" if load_before is not None
             else "") + (f", server peak memory {peak:.0f} MiB" if peak else ""))
    print("\n".join(lines))
    print("\nthroughput against the in-process baseline (same run):")
    print("\n".join(baseline_lines(samples, wall, base)))
    print(f"5xx: {five_xx} · transport errors: {failed} · unexpected statuses: {'none' if expected_only else 'yes'}")
    sys.exit(0 if five_xx == 0 and failed == 0 and expected_only else 1)


if __name__ == "__main__":
    main()
