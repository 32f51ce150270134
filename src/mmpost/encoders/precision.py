"""The number format a frozen tower extracts features in: ``fp32``, or ``bf16`` autocast where the hardware has
native bf16 arithmetic (AVX512-BF16 / AMX CPUs, Ampere and later GPUs).

On such a CPU bf16 runs the text tower's matmuls about twice as fast as fp32 and halves the memory traffic of the
image tower's depthwise convolutions; its features stay within cosine 0.998 of fp32 (``benchmarks/extraction.py``
measures both). Without native support bf16 is emulated and much slower than fp32, so ``auto`` picks fp32 there.
Training always runs in the towers' own fp32: this only touches feature extraction under inference mode.

The batch a tower extracts fastest in depends on that format too (:func:`fastest_cpu_batch`): the defaults follow
the CPU's features through the resolved precision, so a CPU with native bf16 and one without each get their own.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

PRECISIONS = ("auto", "fp32", "bf16")

# The extraction batch with the best throughput on a 2-core AVX-512 CPU, per tower kind and resolved precision
# (benchmarks/extraction.py; docs/performance.md "Feature extraction" has the rows each value was chosen from).
# fp32 is also what ``auto`` runs on a CPU without native bf16. On a GPU the caller's (larger) batch is used.
CPU_BATCH = {
    "text": {"fp32": 16, "bf16": 32},
    "image": {"fp32": 4, "bf16": 4},
}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 natively (not by emulation)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str | None, device: torch.device | str = "cpu") -> str:
    """None → ``fp32`` (the default: features do not depend on the CPU); ``auto`` → ``bf16`` where ``device`` has
    native bf16, else ``fp32``; other values are checked."""
    precision = precision or "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(torch.device(device)) else "fp32"
    return precision


def fastest_cpu_batch(kind: str, precision: str) -> int:
    """The default extraction batch on CPU for a ``kind`` ("text" or "image") tower extracting in ``precision``
    (already resolved: ``fp32`` or ``bf16``)."""
    return CPU_BATCH[kind][precision]


def extraction_batch(tower, requested: int) -> int:
    """The batch ``tower`` extracts in: its own ``extract_batch_size`` on CPU (set from the CPU's features, or by
    the encoder's ``batch_size`` key); ``requested`` on a GPU or where the tower sets none."""
    own = getattr(tower, "extract_batch_size", None)
    param = next(iter(tower.parameters()), None)
    on_cpu = param is None or param.device.type == "cpu"
    return own if own and on_cpu else requested


@contextlib.contextmanager
def extraction_precision(precision: str, device: torch.device) -> Iterator[None]:
    """Autocast to bf16 for the block when ``precision`` is ``bf16``; nothing for ``fp32``."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield
