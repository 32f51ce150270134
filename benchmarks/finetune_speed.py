"""Fine-tuning speed on the memes: posts/s of a training epoch with the text tower fine-tuned whole, against only
its top layers (``text_encoder.train_layers``), with and without length-bucketed batches, in one run.

    MMPOST_DATA_ROOT=/path/to/data python benchmarks/finetune_speed.py --threads 2

Every row trains the recipe (configs/memes.yaml: Conc, sentiment, the recipe's split, batch 32) with the MiniLM tower
fine-tuned (``text_encoder.trainable=true``) and the image tower frozen from the feature cache, through what
``mmpost train`` runs: ``setup_training`` (datasets, model, objective, AdamW, the run's loader), then
``engine.loop.optimise`` per batch under Fabric, each batch moved and tokenized as in training. Rows:

* ``full``: every layer of the tower trained (the seed paper's condition);
* ``full + buckets``: the same, batches of similar token length (``text_encoder.length_buckets=true``);
* ``top N``: ``text_encoder.train_layers=N`` (default 2): the lower layers' outputs come from the cache;
* ``top N + buckets``.

Each row times ``--batches`` training batches (default: one epoch) after one warm-up batch, ``--repeats`` times with
the rows taking turns, and keeps the fastest; posts/s and the ratio to ``full`` are printed. The one-off cost of
computing the lower layers' outputs (cached on disk, then read back by later runs) is timed apart: the first run
pays it once for every post of every split, as a frozen tower's features.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="configs/memes.yaml")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (cores given to the run)")
    ap.add_argument("--layers", type=int, default=2, help="train_layers of the partial rows")
    ap.add_argument("--batches", type=int, default=0, help="timed batches per row (0: one epoch)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--rows", default="full,full+buckets,top,top+buckets")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every row")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("lightning_fabric", "lightning.fabric", "transformers", "mmpost"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    import torch
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()

    from mmpost.apps.build import build_tower
    from mmpost.apps.prepare import prepare
    from mmpost.config import data_root, load_config

    torch.set_num_threads(args.threads)
    # every row starts from full fine-tuning without buckets (the recipe's own setting is one of the rows)
    common = ["progress=false", "text_encoder.trainable=true", "text_encoder.train_layers=null",
              "text_encoder.length_buckets=false", *args.overrides]
    base = load_config(args.recipe, common)
    if data_root(base.data) is None:
        sys.exit("set MMPOST_DATA_ROOT (the folder holding memes/)")
    t0 = time.time()
    data = prepare(base.data, base.tasks, progress=False)
    image_tower = build_tower(base.image_encoder)
    print(f"{sum(len(s) for s in data.splits.values())} posts ({len(data.splits['train'])} training), "
          f"prepared in {time.time() - t0:.0f} s; {args.threads} threads", flush=True)

    rows = [r for r in args.rows.split(",") if r]
    label = {r: r.replace("top", f"top {args.layers} layers").replace("+", " + ") for r in rows}
    setups = {row: set_up(args, common, row, label[row], data, image_tower) for row in rows}

    best: dict[str, float] = {}
    for r in range(args.repeats):
        for row in rows:
            cfg, setup, fabric, step, optimizer = setups[row]
            posts, seconds = time_epoch(cfg, setup, fabric, step, optimizer, args.batches)
            best[row] = max(best.get(row, 0.0), posts / seconds)
            print(f"  repeat {r + 1}: {label[row]}: {posts} posts in {seconds:.1f} s = {posts / seconds:.1f} posts/s",
                  flush=True)
    ref = best.get("full")
    print("\n| row | posts/s | × full |\n|---|---:|---:|")
    for row in rows:
        ratio = f"{best[row] / ref:.2f}" if ref else "-"
        print(f"| {label[row]} | {best[row]:.1f} | {ratio} |")


def set_up(args, common: list[str], row: str, label: str, data, image_tower) -> tuple:
    """(config, TrainingSetup, fabric, wrapped step, wrapped optimizer) of one row, with a line on its set-up time
    and padding."""
    from mmpost.apps.build import build_tower
    from mmpost.apps.training_setup import setup_training
    from mmpost.config import load_config
    from mmpost.data.length_buckets import padding_share
    from mmpost.engine.setup import make_fabric
    extra = {"full": [], "full+buckets": ["text_encoder.length_buckets=true"],
             "top": [f"text_encoder.train_layers={args.layers}"],
             "top+buckets": [f"text_encoder.train_layers={args.layers}", "text_encoder.length_buckets=true"]}
    cfg = load_config(args.recipe, [*common, *extra[row]])
    t0 = time.time()
    setup = setup_training(cfg, data, (build_tower(cfg.text_encoder), image_tower))
    took = time.time() - t0
    fabric = make_fabric(cfg.fabric)
    step, optimizer = fabric.setup(setup.step, setup.optimizer)
    lengths = setup.model.text_tower.token_lengths([p.text for p in setup.datasets["train"].posts])
    print(f"{label}: set up in {took:.1f} s (lower layers' outputs included, where cached: read back); "
          f"padding {100 * padding_share(list(iter(setup.batches)), lengths):.0f}% of token slots", flush=True)
    return cfg, setup, fabric, step, optimizer


def time_epoch(cfg, setup, fabric, step, optimizer, limit: int) -> tuple[int, float]:
    """(posts, seconds) of up to ``limit`` training batches (0: the epoch) after one untimed warm-up batch, each
    loaded, moved and trained as ``engine.loop.train_epoch`` does."""
    from mmpost.engine.loop import freeze_modes, fuse_optimizer_step, optimise
    step.train()
    frozen = [setup.model.image_tower] if not cfg.image_encoder.trainable else []
    freeze_modes(step, frozen)
    fuse_optimizer_step(optimizer)
    generator = setup.generators["itm"]
    batches = iter(setup.loaders["train"])
    optimise(fabric, step, optimizer, next(batches).to(fabric.device), generator, cfg.train.grad_clip, {})
    posts, done = 0, 0
    start = time.perf_counter()
    for batch in batches:
        batch = batch.to(fabric.device)
        optimise(fabric, step, optimizer, batch, generator, cfg.train.grad_clip, {})
        posts += len(batch)
        done += 1
        if limit and done >= limit:
            break
    return posts, time.perf_counter() - start


if __name__ == "__main__":
    main()
