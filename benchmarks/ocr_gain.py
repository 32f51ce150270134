"""What OCR adds on the embedded set, whose images carry written words: ``data.ocr`` off / into text / into field.

    python benchmarks/ocr_gain.py --seeds 0 1 2

The embedded synthetic set (``configs/default.yaml``'s data, 2,000 posts, its own train/dev/test split) writes some
subjects into the image as a meme-style word instead of drawing them. The tasks that depend on it:
``text_represented`` (is a subject the text names shown in the image, drawn or written) and ``relation``.

First the OCR pass over every image, timed (images/s, with the threads onnxruntime picks; the cache is left cold by
default: ``--cache DIR`` to reuse one), against the image tower's feature extraction of the same images. Then, per
task and seed, Conc base with both packaged towers frozen (features cached) and ``data.ocr`` off, ``into: text`` and
``into: field``, each trained on the same split; the table gives test weighted F1, mean ± std over the seeds, and
the paired difference against OCR off with a paired t-test across seeds.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODES = ("off", "text", "field")


def ocr_pass(posts, cache: Path) -> tuple[dict[str, str], float]:
    from mmpost.data.ocr import image_texts
    paths = [p.images[0] for p in posts if p.images]
    t0 = time.perf_counter()
    texts = image_texts(paths, cache, progress=True)
    return texts, time.perf_counter() - t0


def feature_pass(posts) -> float:
    from mmpost.encoders.efficientnet import EfficientNetLite0Tower
    from mmpost.encoders.features import encode_images
    tower = EfficientNetLite0Tower(precision="fp32").eval()
    t0 = time.perf_counter()
    encode_images(tower, [p.images[0] for p in posts if p.images], progress=False)
    return time.perf_counter() - t0


def run_one(task: str, mode: str, seed: int, cache: Path, out: Path) -> float:
    from mmpost.apps.train import train
    from mmpost.config import load_config
    over = [f"task={task}", "text_encoder.trainable=false", "objectives.itc.enabled=false",
            "objectives.itm.enabled=false", f"train.seed={seed}", f"cache_dir={cache}", f"out_dir={out}",
            f"name={task}-{mode}-s{seed}", "progress=false"]
    if mode != "off":
        over += ["data.ocr.enabled=true", f"data.ocr.into={mode}"]
    result = train(load_config("configs/default.yaml", over))
    return float(result.metrics["test"][task]["weighted_f1"])


def table(scores: dict[str, dict[str, list[float]]]) -> str:
    from scipy.stats import ttest_rel
    lines = ["| task | data.ocr | test weighted F1 | vs off (paired t-test) |", "|---|---|---:|---:|"]
    for task, by_mode in scores.items():
        off = np.array(by_mode["off"])
        for mode, vals in by_mode.items():
            v = np.array(vals)
            diff = ""
            if mode != "off":
                p = ttest_rel(v, off).pvalue if len(v) > 1 and np.ptp(v - off) > 0 else float("nan")
                diff = f"{(v - off).mean():+.3f} (p={p:.2f})"
            lines.append(f"| {task} | {mode} | {v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f} | {diff} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tasks", default="text_represented,relation")
    ap.add_argument("--cache", help="feature and OCR cache folder (default: a fresh temporary one for OCR timing)")
    ap.add_argument("--out", default="runs/bench-ocr")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("lightning_fabric", "lightning.fabric", "mmpost"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from mmpost.apps.prepare import load_posts
    from mmpost.config import load_config

    posts = load_posts(load_config("configs/default.yaml", ["progress=false"]).data)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp)
        texts, ocr_s = ocr_pass(posts, cache)
        feat_s = feature_pass(posts)
        found = sum(bool(t) for t in texts.values())
        print(f"{len(texts)} images: OCR {len(texts) / ocr_s:.1f} images/s ({ocr_s:.0f} s), EfficientNet-Lite0 "
              f"features {len(texts) / feat_s:.1f} images/s ({feat_s:.0f} s): OCR costs {ocr_s / feat_s:.1f}x the "
              f"image tower; text found in {found} images ({found / len(texts):.0%})", flush=True)
        scores: dict[str, dict[str, list[float]]] = {}
        for task in args.tasks.split(","):
            for mode in MODES:
                for seed in args.seeds:
                    f1 = run_one(task, mode, seed, cache, Path(args.out))
                    scores.setdefault(task, {}).setdefault(mode, []).append(f1)
                    print(f"  {task} ocr={mode} seed {seed}: {f1:.3f}", flush=True)
    print(table(scores))


if __name__ == "__main__":
    sys.exit(main())
