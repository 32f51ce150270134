"""The number format a frozen tower extracts features in: ``fp32``, or ``bf16`` autocast where the hardware has
native bf16 arithmetic (AVX512-BF16 / AMX CPUs, Ampere and later GPUs).

On such a CPU bf16 runs the text tower's matmuls about twice as fast as fp32 and halves the memory traffic of the
image tower's depthwise convolutions; its features stay within cosine 0.998 of fp32 (``benchmarks/extraction.py``
measures both). Without native support bf16 is emulated and much slower than fp32, so ``auto`` picks fp32 there.
Training always runs in the towers' own fp32: this only touches feature extraction under inference mode.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

PRECISIONS = ("auto", "fp32", "bf16")


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


@contextlib.contextmanager
def extraction_precision(precision: str, device: torch.device) -> Iterator[None]:
    """Autocast to bf16 for the block when ``precision`` is ``bf16``; nothing for ``fp32``."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield
