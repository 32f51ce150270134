"""``mmpost export RUN --format onnx``: the run's text tower, image tower and model as three ONNX files in
``RUN/onnx/`` (``text.onnx``, ``image.onnx``, ``head.onnx``), with ``--int8`` an int8 copy of the text tower, and
``export.json`` listing them with the cosine of each to torch on a check sample (see :mod:`mmpost.export.support`
for what is covered)."""
from __future__ import annotations

from pathlib import Path

import torch

from mmpost.apps.predictor import Predictor
from mmpost.atomic import atomic_write_json
from mmpost.export.graphs import HeadGraph, ImageGraph, TextGraph
from mmpost.export.onnx_check import check_export
from mmpost.export.onnx_files import OPSET, export_graph, file_digest, quantize_int8
from mmpost.export.onnx_run import FOLDER, MANIFEST
from mmpost.export.support import check_exportable

INT8_PARTS = ("text",)   # the image CNN's dynamic int8 copy falls far from fp32 (benchmarks/onnx_speed.py): not made
TRACE_TEXTS = ["a short post", "a somewhat longer post about the picture above it"]


def _export_text(predictor: Predictor, folder: Path) -> None:
    tower = predictor.text_tower
    inputs = tower.tokenize(TRACE_TEXTS)
    names = list(inputs)
    dynamic = {n: {0: "batch", 1: "length"} for n in names} | {o: {0: "batch"} for o in ("pooled", "first")}
    try:
        export_graph(TextGraph(tower, names), [inputs[n] for n in names], folder / "text.onnx", inputs=names,
                     outputs=["pooled", "first"], dynamic=dynamic)
    except Exception as e:
        raise ValueError(f"text_encoder.name={predictor.config.text_encoder.name!r}: the text tower could not be "
                         f"exported to ONNX ({type(e).__name__}: {e})") from e


def _export_image(predictor: Predictor, folder: Path) -> None:
    tower = predictor.image_tower
    pixels = torch.randn(2, 3, tower.image_size, tower.image_size, generator=torch.Generator().manual_seed(0))
    dynamic = {o: {0: "batch"} for o in ("pixels", "pooled", "tokens")}
    try:
        export_graph(ImageGraph(tower), [pixels], folder / "image.onnx", inputs=["pixels"],
                     outputs=["pooled", "tokens"], dynamic=dynamic)
    except Exception as e:
        raise ValueError(f"image_encoder.name={predictor.config.image_encoder.name!r}: the image tower could not be "
                         f"exported to ONNX ({type(e).__name__}: {e})") from e


def head_outputs(tasks: list[str]) -> list[str]:
    return [f"logits:{t}" for t in tasks] + ["text_embeds", "image_embeds", "fused"]


@torch.no_grad()
def _trace_features(predictor: Predictor, text_input: str, image_input: str) -> list[torch.Tensor]:
    """Features of the form the model reads, for two posts (one with an image, one without)."""
    text = predictor.text_tower(predictor.text_tower.tokenize(TRACE_TEXTS))
    pixels = torch.randn(2, 3, predictor.image_tower.image_size, predictor.image_tower.image_size)
    image = predictor.image_tower(pixels)
    return [(text.tokens[:, 0] if text_input == "first-token" else text.pooled).clone(),
            (image.tokens if image_input == "tokens" else image.pooled).clone(), torch.tensor([True, False])]


def _export_head(predictor: Predictor, folder: Path, text_input: str, image_input: str) -> None:
    tasks = [t.name for t in predictor.tasks]
    outputs = head_outputs(tasks)
    inputs = ["text_features", "image_features", "has_image"]
    dynamic = {n: {0: "batch"} for n in inputs + outputs}
    if image_input == "tokens":
        dynamic["image_features"] = {0: "batch", 1: "tokens"}   # a batch with no readable image has one token
    export_graph(HeadGraph(predictor.model, tasks), _trace_features(predictor, text_input, image_input),
                 folder / "head.onnx", inputs=inputs, outputs=outputs, dynamic=dynamic)


def export_onnx(run_dir: str | Path, *, int8: bool = False) -> dict:
    """Write the run's ONNX files and ``export.json``; returns the manifest. Fails, naming the setting, for a run
    whose family reads more than the towers' features."""
    run_dir = Path(run_dir)
    predictor = Predictor(run_dir)
    text_input, image_input = check_exportable(predictor.config)
    folder = run_dir / FOLDER
    folder.mkdir(exist_ok=True)
    _export_text(predictor, folder)
    _export_image(predictor, folder)
    _export_head(predictor, folder, text_input, image_input)
    parts = {p: {"fp32": {"file": f"{p}.onnx", "sha256": file_digest(folder / f"{p}.onnx")}}
             for p in ("text", "image", "head")}
    if int8:
        for part in INT8_PARTS:
            quantize_int8(folder / f"{part}.onnx", folder / f"{part}.int8.onnx")
            parts[part]["int8"] = {"file": f"{part}.int8.onnx", "sha256": file_digest(folder / f"{part}.int8.onnx")}
    manifest = {"format": "onnx", "opset": OPSET, "weights": file_digest(run_dir / "model.safetensors"),
                "text_input": text_input, "image_input": image_input, "parts": parts}
    manifest["check"] = check_export(predictor, folder, manifest)
    atomic_write_json(folder / MANIFEST, manifest)
    return manifest

