"""ONNX Runtime against torch eager for the packaged towers (MiniLM-L6, EfficientNet-Lite0) and end to end, in one
run: posts/s, the ratio to torch eager (and, end to end, to the naive loop), and each row's lowest cosine to torch
eager fp32.

    MMPOST_DATA_ROOT=/path/to/data python benchmarks/onnx_speed.py --texts 512 --images 128 --threads 2

With ``--run RUN`` (a run exported with ``mmpost export RUN --format onnx --int8``) it also predicts the run's test
split with each runtime and prints how often the ONNX runtimes give torch's class, and how far their
probabilities move (``--parts agreement`` for that table alone).

Inputs: the memes (texts and images) where the data root has them, else the embedded synthetic set (``--source``).
The towers are exported the way ``mmpost export RUN --format onnx`` exports a run's (``mmpost.export``), into a
temporary folder; int8 is onnxruntime's dynamic quantization of that export (``mmpost export --int8`` makes the
text tower's; the image tower's per-channel int8 copy is measured here as a candidate only).

Rows of one table use the same batching: texts sorted by length in batches of 64 (``encode_texts``), images in
the tower's extraction batch (8) on pixels decoded beforehand; end to end is ``post_features`` (decode threads,
batching) with the torch towers or their ONNX stand-ins, against the naive loop (one post at a time, fp32 towers
as a user loads them). Rows take turns ``--repeats`` times and the fastest pass of each is kept.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extraction import Row, measure, min_cosine  # noqa: E402


def load_inputs(source: str, texts: int, images: int, folder: str) -> tuple[list[str], list]:
    """(texts, posts with an image) from the memes or the embedded synthetic set."""
    from mmpost import registry
    from mmpost.config import DataConfig, data_root
    if source == "memes":
        root = data_root(DataConfig())
        if root is None:
            sys.exit("--source memes: set MMPOST_DATA_ROOT (the folder holding memes/)")
        posts = registry.get("dataset", "memes")().load(root).posts
    else:
        from mmpost.data.synthetic import generate_posts
        posts = generate_posts(folder, n=max(texts, images), size=128)
    with_image = [p for p in posts if p.images]
    return [p.text for p in posts[:texts]], with_image[:images]


def export_towers(text_tower, image_tower, folder: Path) -> dict[str, Path]:
    """The towers' fp32 ONNX files and their int8 copies (the image's per-channel, as a candidate)."""
    import torch

    from mmpost.export.graphs import ImageGraph, TextGraph
    from mmpost.export.onnx_files import export_graph, quantize_int8
    inputs = text_tower.tokenize(["a short post", "a somewhat longer post about the picture"])
    names = list(inputs)
    export_graph(TextGraph(text_tower, names), [inputs[n] for n in names], folder / "text.onnx", inputs=names,
                 outputs=["pooled", "first"],
                 dynamic={n: {0: "b", 1: "l"} for n in names} | {"pooled": {0: "b"}, "first": {0: "b"}})
    size = image_tower.image_size
    export_graph(ImageGraph(image_tower), [torch.randn(2, 3, size, size)], folder / "image.onnx",
                 inputs=["pixels"], outputs=["pooled", "tokens"],
                 dynamic={"pixels": {0: "b"}, "pooled": {0: "b"}, "tokens": {0: "b"}})
    paths = {"text": folder / "text.onnx", "image": folder / "image.onnx"}
    for part in ("text", "image"):
        quantize_int8(paths[part], folder / f"{part}.int8.onnx")
        paths[f"{part}-int8"] = folder / f"{part}.int8.onnx"
    return paths


def ratio_table(title: str, rows: list[Row], unit: str, base: Row, naive: Row | None = None) -> None:
    """Rate, ratio to ``base`` (torch eager) and to ``naive`` where given, lowest cosine to ``base``."""
    print(f"\n### {title}\n")
    print(f"| row | {unit} | × torch eager |{' × naive |' if naive else ''} min cosine to torch fp32 |")
    print(f"|---|---:|---:|{'---:|' if naive else ''}---:|")
    for r in rows:
        cos = min_cosine(r.features, base.features) if r.features is not None else None
        print(f"| {r.name} | {r.rate:,.1f} | {r.rate / base.rate:.2f} |"
              f"{f' {r.rate / naive.rate:.2f} |' if naive else ''} {f'{cos:.5f}' if cos is not None else '–'} |",
              flush=True)


def tower_rows(towers: dict, texts: list[str], pixels) -> tuple[list[Row], list[Row]]:
    import numpy as np

    from mmpost.encoders.features import encode_texts

    def images(tower, batch: int = 8):
        return np.concatenate([tower.extract(pixels[s:s + batch]).pooled.float().numpy()
                               for s in range(0, len(pixels), batch)])

    text = [Row(name, lambda t=t: encode_texts(t, texts, progress=False), len(texts))
            for name, t in (("torch eager fp32 (batch 64, sorted)", towers["text"]),
                            ("ONNX Runtime fp32", towers["onnx-text"]),
                            ("ONNX Runtime int8", towers["onnx-text-int8"]))]
    image = [Row(name, lambda t=t, b=b: images(t, b), len(pixels))
             for name, t, b in (("torch eager fp32 (batch 8, channels_last, BN folded)", towers["image"], 8),
                                ("ONNX Runtime fp32, batch 8", towers["onnx-image"], 8),
                                ("ONNX Runtime fp32, batch 1", towers["onnx-image"], 1),
                                ("ONNX Runtime int8 per-channel (candidate), batch 8", towers["onnx-image-int8"], 8))]
    return text, image


def end_to_end_rows(towers: dict, posts: list) -> list[Row]:
    import numpy as np
    import torch

    from mmpost.encoders.features import post_features
    naive_text, naive_image = towers["naive-text"], towers["naive-image"]

    @torch.inference_mode()
    def naive() -> np.ndarray:
        return np.stack([np.concatenate([
            naive_text(naive_text.tokenize([p.text])).pooled[0].numpy(),
            naive_image(torch.from_numpy(naive_image.load(p.images[0]))[None]).pooled[0].numpy()]) for p in posts])

    def features(text_tower, image_tower) -> np.ndarray:
        f = post_features(posts, text_tower, image_tower, progress=False)
        return np.concatenate([f.text, f.image], axis=1)

    return [Row("naive: text + image of one post at a time, torch fp32", naive, len(posts)),
            Row("post_features, torch eager fp32", lambda: features(towers["text"], towers["image"]), len(posts)),
            Row("post_features, ONNX Runtime fp32",
                lambda: features(towers["onnx-text"], towers["onnx-image"]), len(posts)),
            Row("post_features, ONNX Runtime int8 text + fp32 image (runtime: onnx-int8)",
                lambda: features(towers["onnx-text-int8"], towers["onnx-image"]), len(posts))]


def agreement(run: str) -> None:
    """The run's test posts predicted with torch, ONNX fp32 and ONNX int8: agreement with torch's class, the largest
    change of a probability, the lowest cosine of a post's probabilities to torch's."""
    import numpy as np

    from mmpost.apps.predictor import Predictor
    from mmpost.apps.prepare import prepare
    reference = Predictor(run)
    posts = prepare(reference.config.data, [t.name for t in reference.tasks], progress=False).splits["test"]
    base = reference.predict_proba(posts)
    print(f"\n### Predictions of {Path(run).name} on its {len(posts)} test posts ({reference.task})\n")
    print("| runtime | same class as torch | max abs. change of a probability | min cosine of probabilities |")
    print("|---|---:|---:|---:|")
    for runtime in ("torch", "onnx", "onnx-int8"):
        probs = base if runtime == "torch" else Predictor(run, runtime).predict_proba(posts)
        same = int((probs.argmax(1) == base.argmax(1)).sum())
        print(f"| {runtime} | {same}/{len(posts)} | {np.abs(probs - base).max():.2e} | "
              f"{min_cosine(probs, base):.5f} |", flush=True)


def build_towers(folder: Path) -> dict:
    from mmpost.encoders.efficientnet import EfficientNetLite0Tower
    from mmpost.encoders.hf_text import minilm
    from mmpost.encoders.onnx_runtime import OnnxImageTower, OnnxTextTower
    towers = {"text": minilm(precision="fp32").eval(), "image": EfficientNetLite0Tower(precision="fp32").eval(),
              "naive-text": minilm(precision="fp32").eval(),
              "naive-image": EfficientNetLite0Tower(channels_last=False, precision="fp32").eval()}
    paths = export_towers(towers["text"], towers["image"], folder)
    for key, path in paths.items():
        kind = "text" if key.startswith("text") else "image"
        wrapper = OnnxTextTower if kind == "text" else OnnxImageTower
        towers[f"onnx-{key}"] = wrapper(towers[kind], path, f"onnx:{key}")
    return towers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--source", choices=("memes", "synthetic"),
                    default="memes" if os.environ.get("MMPOST_DATA_ROOT") else "synthetic")
    ap.add_argument("--run", help="a run exported with mmpost export RUN --format onnx --int8: prediction agreement")
    ap.add_argument("--parts", default="speed,agreement", help="speed (the three tables), agreement (needs --run)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging
    logging.basicConfig(level=logging.ERROR)
    import torch
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    if "speed" in args.parts.split(","):
        speed(args)
    if args.run and "agreement" in args.parts.split(","):
        agreement(args.run)
    load1 = os.getloadavg()
    print(f"\nload average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} (other jobs share this machine)")


def speed(args: argparse.Namespace) -> None:
    import numpy as np
    import onnxruntime
    import torch
    with tempfile.TemporaryDirectory() as tmp:
        texts, posts = load_inputs(args.source, args.texts, args.images, tmp)
        towers = build_towers(Path(tmp))
        load0 = os.getloadavg()
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
              f"{torch.__version__}, onnxruntime {onnxruntime.__version__}, {args.threads} threads; load average "
              f"before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
        print(f"inputs ({args.source}): {len(texts)} texts, {len(posts)} posts with an image; best of "
              f"{args.repeats} passes")
        pixels = torch.from_numpy(np.stack([towers["image"].load(p.images[0]) for p in posts]))
        with torch.inference_mode():
            text_rows, image_rows = tower_rows(towers, texts, pixels)
            measure(text_rows, args.repeats)
            ratio_table(f"Text tower (MiniLM-L6, {len(texts)} texts, {args.threads} threads)", text_rows, "texts/s",
                        text_rows[0])
            measure(image_rows, args.repeats)
            ratio_table(f"Image tower (EfficientNet-Lite0, {len(pixels)} decoded images, {args.threads} threads)",
                        image_rows, "images/s", image_rows[0])
        rows = end_to_end_rows(towers, posts)
        measure(rows, args.repeats)
        ratio_table(f"End to end (text + image features of {len(posts)} posts, decode included, {args.threads} "
                    "threads)", rows, "posts/s", rows[1], naive=rows[0])


if __name__ == "__main__":
    main()
