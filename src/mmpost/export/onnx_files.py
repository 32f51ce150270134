"""Writing one ONNX file from a traceable module, and its int8 copy by onnxruntime's dynamic quantization."""
from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from mmpost.atomic import atomic_write

OPSET = 17


def file_digest(path: str | Path) -> str:
    """The first 16 hex digits of the file's SHA-256: names an exported file's exact contents."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def export_graph(module: nn.Module, args: Sequence[Tensor], path: Path, *, inputs: Sequence[str],
                 outputs: Sequence[str], dynamic: dict[str, dict[int, str]]) -> None:
    """Trace ``module`` in eval mode on ``args`` and write it to ``path`` (atomically); the axes in ``dynamic``
    (batch, sequence length) stay free in the file."""
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # the tracer's notes on Python values it fixes: checked afterwards
        with torch.no_grad():
            module(*args)                       # builds what a module makes on first use (a folded copy) untraced
        # traced with grad enabled: torch's fused inference kernels (the fast path of nn.TransformerEncoderLayer,
        # taken under no_grad) have no ONNX form, and the plain path is what training runs
        atomic_write(path, lambda tmp: torch.onnx.export(
            module, tuple(args), tmp, dynamo=False, input_names=list(inputs), output_names=list(outputs),
            dynamic_axes=dynamic, opset_version=OPSET, do_constant_folding=True))
    module.eval()                               # the exporter puts the training flag back as it found it


def quantize_int8(source: Path, target: Path) -> None:
    """An int8 copy of ``source`` by onnxruntime's dynamic quantization: the weights of each MatMul with constant
    weights (and the embedding tables) stored as signed int8 with one scale per output channel, activations
    quantized on the fly per batch. Per-channel scales matter: with one scale per tensor the MiniLM's features
    fall further from fp32 (``benchmarks/onnx_speed.py`` measures both towers' cosines). The file is quantized as
    exported: onnxruntime's pre-processing step (symbolic shape inference) does not complete on the exported BERT
    graph, so its advice to run it first is silenced."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        atomic_write(target, lambda tmp: quantize_dynamic(str(source), tmp, weight_type=QuantType.QInt8,
                                                          per_channel=True, extra_options={"MatMulConstBOnly": True}))
    finally:
        root.setLevel(level)
