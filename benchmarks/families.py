"""Cost of each model family on CPU: parameters, training and prediction throughput on real memes.

    MMPOST_DATA_ROOT=/path/to/data python benchmarks/families.py --posts 256 --threads 2

Every family gets the packaged towers frozen (MiniLM, EfficientNet-Lite0) with the features it can take from the
cache already computed, so the numbers are the cost per post of training and of predicting once features exist:
Conc reads pooled vectors, Att the first text token and the image grid, and MMBT, ViLT-style and LXMERT-style run
the text transformer on every batch. Throughput is measured on the same posts for every family, after one warm-up
batch, and printed with the ratio to Conc (the baseline, measured in the same run).
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="conc,att,mmbt,vilt,lxmert")
    ap.add_argument("--posts", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16, help="training batch (the seed paper's 16)")
    ap.add_argument("--eval-batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--recipe", default="configs/datasets/memes.yaml")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging
    logging.basicConfig(level=logging.ERROR)
    import torch
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()

    import mmpost  # noqa: F401  (registers every family)
    from mmpost.apps.build import build_model, build_objective, build_tower
    from mmpost.apps.datasets import build_datasets
    from mmpost.apps.prepare import prepare
    from mmpost.config import data_root, load_config
    from mmpost.data.dataset import label_ids, unwrap
    from mmpost.engine.step import TrainStep
    from mmpost.objectives.combined import single_task

    cfg0 = load_config(args.recipe, ["progress=false"])
    if data_root(cfg0.data) is None:
        sys.exit("set MMPOST_DATA_ROOT (the folder holding memes/)")
    torch.set_num_threads(args.threads)
    data = prepare(cfg0.data, cfg0.task, progress=False)
    posts = data.splits["train"][: args.posts]
    labels = label_ids(posts, data.task, data.labels)
    towers = (build_tower(cfg0.text_encoder), build_tower(cfg0.image_encoder))
    rows = []
    for family in args.families.split(","):
        cfg = load_config(args.recipe, ["progress=false", f"model.name={family}", "objectives.itc.enabled=true",
                                        "objectives.itm.enabled=true"])
        ds, _ = build_datasets({"train": posts}, {"train": labels}, cfg, *towers)
        ds = ds["train"]
        torch.manual_seed(0)
        model = build_model(cfg.model, *towers, len(data.labels))
        tasks = single_task(len(data.labels), labels.tolist()).tasks
        step = TrainStep(model, build_objective(cfg.objectives, tasks))
        params = sum(p.numel() for p in step.parameters())
        trainable = sum(p.numel() for p in step.parameters() if p.requires_grad)
        opt = torch.optim.AdamW([p for p in step.parameters() if p.requires_grad], lr=1e-4)

        def batches(size: int):
            return DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), size, drop_last=False),
                              collate_fn=unwrap)

        def train_pass(limit: int | None = None) -> int:
            step.train()
            for tw in towers:
                tw.eval()
            n, gen = 0, torch.Generator().manual_seed(0)
            for i, batch in enumerate(batches(args.batch)):
                if limit is not None and i >= limit:
                    break
                _, losses = step(batch, gen)
                opt.zero_grad()
                losses.total.backward()
                opt.step()
                n += len(batch)
            return n

        @torch.inference_mode()
        def predict_pass(limit: int | None = None) -> int:
            step.eval()
            n = 0
            for i, batch in enumerate(batches(args.eval_batch)):
                if limit is not None and i >= limit:
                    break
                step(batch, with_loss=False)
                n += len(batch)
            return n

        train_pass(1), predict_pass(1)               # warm-up
        t0 = time.perf_counter()
        n = train_pass()
        train_rate = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        n = predict_pass()
        predict_rate = n / (time.perf_counter() - t0)
        rows.append((family, params, trainable, train_rate, predict_rate))
        print(f"{family:7} params {params / 1e6:6.1f} M (trainable {trainable / 1e6:5.2f} M)  "
              f"train {train_rate:8.1f} posts/s  predict {predict_rate:8.1f} posts/s", flush=True)

    base = next((r for r in rows if r[0] == "conc"), rows[0])
    print(f"\n{len(posts)} memes posts, batch {args.batch} (train, with ITC+ITM) / {args.eval_batch} (predict), "
          f"{args.threads} threads, both towers frozen with cached features where the family reads them")
    print("| family | parameters (trainable) | train posts/s | ratio to conc | predict posts/s | ratio to conc |")
    print("|---|---:|---:|---:|---:|---:|")
    for family, params, trainable, tr, pr in rows:
        print(f"| {family} | {params / 1e6:.1f} M ({trainable / 1e6:.2f} M) | {tr:,.0f} | {tr / base[3]:.3f} | "
              f"{pr:,.0f} | {pr / base[4]:.3f} |")


if __name__ == "__main__":
    main()
