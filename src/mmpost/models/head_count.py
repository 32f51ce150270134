"""The one rule for how many attention heads a layer of a given width gets."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def attention_heads(width: int, wanted: int) -> int:
    """``wanted`` when it divides ``width``, else the largest divisor of ``width`` below it (logged), so that
    every head has ``width / heads`` dimensions. E.g. width 384: 8 → 8; width 16: 6 → 4, 3 → 2."""
    heads = max(h for h in range(1, max(wanted, 1) + 1) if width % h == 0)
    if heads != wanted:
        log.warning("%d attention heads do not divide the width %d; using %d", wanted, width, heads)
    return heads
