"""Loading a run's ONNX export for prediction (``runtime: onnx`` or ``onnx-int8``): the files listed in
``RUN/onnx/export.json``, checked against the run's weights, as stand-ins for its towers and model."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mmpost.config import RunConfig
from mmpost.encoders.base import ImageTower, TextTower
from mmpost.encoders.onnx_runtime import OnnxHead, OnnxImageTower, OnnxTextTower
from mmpost.export.onnx_files import file_digest

RUNTIMES = ("torch", "onnx", "onnx-int8")
FOLDER = "onnx"
MANIFEST = "export.json"


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    return runtime


def read_manifest(run_dir: Path) -> dict:
    """The export's manifest, or an error saying how to make it; an export of other weights than the run's is
    refused (the run was trained on since)."""
    path = run_dir / FOLDER / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no ONNX export ({path} is missing): run "
                                f"`mmpost export {run_dir} --format onnx` first")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("weights") != file_digest(run_dir / "model.safetensors"):
        raise ValueError(f"{path} was exported from other weights than {run_dir}/model.safetensors: run "
                         f"`mmpost export {run_dir} --format onnx` again")
    return manifest


def part_file(run_dir: Path, manifest: dict, part: str, variant: str) -> tuple[Path, str]:
    """(file, its digest) of one part in ``variant`` (fp32, int8); int8 falls back to fp32 where the part has none
    (the head is always fp32)."""
    versions = manifest["parts"][part]
    entry = versions.get(variant) or versions["fp32"]
    return run_dir / FOLDER / entry["file"], entry["sha256"]


@dataclass
class OnnxRun:
    text: OnnxTextTower
    image: OnnxImageTower
    head: OnnxHead
    config: RunConfig       # the run's config with both towers read as frozen: features come from the ONNX towers


def load_onnx_run(run_dir: Path, runtime: str, config: RunConfig, text_tower: TextTower, image_tower: ImageTower,
                  tasks: Sequence[str]) -> OnnxRun:
    """The run's ONNX towers and head for ``runtime`` (``onnx``: fp32; ``onnx-int8``: the int8 towers where the
    export made them, with ``mmpost export RUN --format onnx --int8``)."""
    manifest = read_manifest(run_dir)
    variant = "int8" if runtime == "onnx-int8" else "fp32"
    if variant == "int8" and not any("int8" in v for v in manifest["parts"].values()):
        raise ValueError(f"runtime onnx-int8: the export of {run_dir} has no int8 files: run "
                         f"`mmpost export {run_dir} --format onnx --int8`")
    text_path, text_digest = part_file(run_dir, manifest, "text", variant)
    image_path, image_digest = part_file(run_dir, manifest, "image", variant)
    head_path, _ = part_file(run_dir, manifest, "head", "fp32")
    frozen = replace(config, text_encoder=replace(config.text_encoder, trainable=False),
                     image_encoder=replace(config.image_encoder, trainable=False))
    return OnnxRun(
        text=OnnxTextTower(text_tower, text_path, f"{text_tower.identity}:onnx:{text_digest}"),
        image=OnnxImageTower(image_tower, image_path, f"{image_tower.identity}:onnx:{image_digest}"),
        head=OnnxHead(head_path, tasks), config=frozen)
