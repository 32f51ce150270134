"""Head training on cached features: posts/s of one training epoch for the Conc head (target ≥ 50,000 posts/s on
2 cores) and the Att head, each against a naive loop measured in the same run.

    python benchmarks/heads.py --threads 2 --batch 32 --big-batch 1024

mmpost's path is what ``mmpost train`` runs once both towers are frozen and their features are cached: a
``PostDataset`` over the feature arrays, the run's shuffled ``DataLoader`` (``apps.train.loader``), the
``TrainStep`` (model + objective: class-weighted CE), AdamW from ``apps.train.build_optimizer`` and
``engine.loop.train_epoch`` under Fabric, on every thread it is given (``--threads``), as ``mmpost train`` runs.
Further rows: one thread (for machines whose cores other jobs share), a large batch (``--big-batch``), and the large
batch with ``fabric.precision=bf16-mixed`` (its share of the ceiling is against the bf16 matmul peak).
The naive loop is the textbook one: a Dataset of per-post dicts, a ``DataLoader`` with the default collate, and
``zero_grad / forward / loss / backward / clip / step`` per batch, on the same model, loss, optimizer and threads.

Features are random vectors of the towers' shapes (MiniLM 384-d; EfficientNet-Lite0 1,280-d pooled, or its 7×7
grid in float16 for Att): the speed of a head does not depend on the values. Each row runs ``--repeats`` epochs,
the rows taking turns, and reports the fastest.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

from extraction import matmul_peak  # the same peak as the extraction benchmark (this folder is on sys.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="cores given to the run")
    ap.add_argument("--batch", type=int, default=32, help="training batch (train.batch_size; default 32)")
    ap.add_argument("--posts", type=int, default=16384, help="posts per epoch for Conc")
    ap.add_argument("--att-posts", type=int, default=2048, help="posts per epoch for Att (49 image tokens each)")
    ap.add_argument("--big-batch", type=int, default=256, help="the batch of the large-batch row")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--heads", default="conc,att")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging
    logging.basicConfig(level=logging.ERROR)
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Dataset
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()

    from mmpost.apps.build import build_model, build_objective
    from mmpost.apps.training_setup import build_optimizer, loader
    from mmpost.config import load_config
    from mmpost.data.batch import Batch
    from mmpost.data.dataset import PostDataset
    from mmpost.data.post import Post
    from mmpost.encoders.base import ImageTower, TextTower
    from mmpost.engine.loop import train_epoch
    from mmpost.engine.setup import make_fabric, torch_threads
    from mmpost.engine.step import TrainStep
    from mmpost.objectives.combined import single_task

    class CachedText(TextTower):        # a frozen tower whose features are cached: the model reads only its size
        dim = 384

    class CachedImage(ImageTower):
        dim = 1280

    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, --threads {args.threads}, batch {args.batch}; "
          f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    results = []
    peak = matmul_peak(args.threads)
    peak_bf16 = matmul_peak(args.threads, dtype="bfloat16")
    print(f"matmul peak (2048×2048, {args.threads} threads): fp32 {peak:.1f} GFLOP/s, bf16 {peak_bf16:.1f} GFLOP/s")
    for head in args.heads.split(","):
        n = args.posts if head == "conc" else args.att_posts
        cfg = load_config(None, [f"model.name={head}", f"train.batch_size={args.batch}", "progress=false",
                                 "text_encoder.trainable=false"])
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 3, n)
        text = rng.standard_normal((n, 384), dtype=np.float32)
        image = (rng.standard_normal((n, 1280), dtype=np.float32) if head == "conc"
                 else rng.standard_normal((n, 49, 1280), dtype=np.float32).astype(np.float16))
        posts = [Post(id=str(i), text=f"post {i}", images=[f"{i}.jpg"]) for i in range(n)]
        towers = (CachedText(), CachedImage())

        def make_step():
            torch.manual_seed(0)
            tasks = single_task(3, labels.tolist()).tasks
            step = TrainStep(build_model(cfg.model, *towers, 3), build_objective(cfg.objectives, tasks))
            return step, build_optimizer(step, towers, cfg)

        # mmpost's path
        ds = PostDataset(posts, labels, text_features=text, image_features=image, has_image=np.ones(n, bool))
        default_fabric = make_fabric(cfg.fabric)
        threads = cfg.train.threads or args.threads      # what mmpost train uses: every core it is given

        def mmpost_path(threads: int, fused: bool | None = None, batch: int = args.batch, precision: str = ""):
            fabric = make_fabric(replace(cfg.fabric, precision=precision)) if precision else default_fabric
            step, optimizer = make_step()
            if fused is not None:
                for group in optimizer.param_groups:
                    group["fused"] = fused
            fstep, foptimizer = fabric.setup(step, optimizer)
            train_loader = loader(ds, batch, shuffle=True, seed=0, workers=cfg.train.num_workers)
            generator = torch.Generator().manual_seed(0)

            def epoch() -> None:
                with torch_threads(threads):
                    train_epoch(fabric, fstep, foptimizer, train_loader, frozen=list(towers),
                                grad_clip=cfg.train.grad_clip, generator=generator, desc="", progress=False)
            return epoch

        # the naive loop
        class PerPost(Dataset):
            def __len__(self) -> int:
                return n

            def __getitem__(self, i: int) -> dict:
                return {"index": i, "labels": int(labels[i]), "has_image": True, "text_ids": i, "image_ids": i,
                        "text_features": torch.from_numpy(text[i]),
                        "image_features": torch.from_numpy(image[i]).float()}

        naive_step, naive_optimizer = make_step()
        naive_loader = DataLoader(PerPost(), batch_size=args.batch, shuffle=True,
                                  generator=torch.Generator().manual_seed(0))

        def naive_epoch(threads: int = args.threads) -> None:
            torch.set_num_threads(threads)
            naive_step.train()
            generator = torch.Generator().manual_seed(0)
            for items in naive_loader:
                batch = Batch(**items)
                naive_optimizer.zero_grad()
                _, losses = naive_step(batch, generator)
                losses.total.backward()
                torch.nn.utils.clip_grad_norm_(naive_step.parameters(), cfg.train.grad_clip)
                naive_optimizer.step()
            torch.set_num_threads(args.threads)

        big = args.big_batch
        rows = {f"naive loop, per-post items, {args.threads} threads": naive_epoch,
                f"**mmpost (train_epoch, fused AdamW, {threads} threads)**": mmpost_path(threads),
                f"mmpost, AdamW per-tensor loop (before), {threads} threads": mmpost_path(threads, fused=False),
                "mmpost, fused AdamW, 1 thread": mmpost_path(1),
                f"mmpost, fused AdamW, {threads} threads, batch {big}": mmpost_path(threads, batch=big),
                f"mmpost, fused AdamW, {threads} threads, batch {big}, fabric.precision=bf16-mixed":
                    mmpost_path(threads, batch=big, precision="bf16-mixed")}
        best = {name: float("inf") for name in rows}
        for fn in rows.values():
            fn()                                      # warm-up
        for _ in range(args.repeats):
            for name, fn in rows.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
        per_post = step_flops(make_step()[0], ds, args.batch) / args.batch
        naive = n / next(iter(best.values()))
        for name, seconds in best.items():
            ceiling = (peak_bf16 if "bf16" in name else peak) * 1e9 / per_post
            results.append((head, name, n, n / seconds, naive, ceiling))
        print(f"{head}: {per_post / 1e6:.2f} MFLOP a post for forward + backward: at most "
              f"{peak * 1e9 / per_post:,.0f} posts/s at the fp32 matmul peak, {peak_bf16 * 1e9 / per_post:,.0f} at "
              "the bf16 one", flush=True)

    load1 = os.getloadavg()
    print("\n| head | loop | posts an epoch | posts/s | × naive | % of the FLOP ceiling (its precision's peak) |")
    print("|---|---|---:|---:|---:|---:|")
    for head, name, n, rate, naive, ceiling in results:
        print(f"| {head} | {name} | {n:,} | {rate:,.0f} | {rate / naive:.2f} | {100 * rate / ceiling:.0f}% |")
    print(f"\nload average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


def step_flops(step, dataset, batch: int) -> float:
    """FLOPs of one training step's forward and backward (matmuls; FlopCounterMode), on a batch of ``batch``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    step.train()
    with FlopCounterMode(display=False) as counter:
        _, losses = step(dataset.__getitems__(list(range(batch))), torch.Generator().manual_seed(0))
        losses.total.backward()
    return float(counter.get_total_flops())


if __name__ == "__main__":
    main()
