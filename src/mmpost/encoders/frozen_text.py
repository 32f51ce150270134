"""Text towers that give frozen features only: one vector per text from an engine mmpost cannot train through (a
quantised C engine, or several towers side by side). ``mmpost.encoders.features`` asks them for :meth:`embed`
instead of running ``tokenize`` + ``extract``; a run that would train them, or a model family that reads the text's
token sequence from a live tower, is stopped with a message that says so."""
from __future__ import annotations

import numpy as np
from torch import Tensor

from mmpost.encoders.base import TextTower, TowerOutput


class FeatureTextTower(TextTower):
    """``embed(texts)`` → [N, D] float32. As a "first token" (a family that reads the CLS vector, e.g. Att) it gives
    the same vector: it has no token sequence."""

    name = "frozen text tower"
    max_length = 512

    def embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def token_lengths(self, texts: list[str]) -> list[int]:
        """Words per text: batches of similar length (the engine's own tokens may differ)."""
        return [len(t.split()) for t in texts]

    def frozen_only_error(self) -> ValueError:
        return ValueError(f"text encoder {self.name!r} gives frozen features only: set text_encoder.trainable=false "
                          "and use a model family that reads pooled or first-token text (conc, att, emoticon); "
                          "it cannot be fine-tuned or give token sequences")

    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        raise self.frozen_only_error()

    def forward(self, inputs: dict[str, Tensor]) -> TowerOutput:
        raise self.frozen_only_error()
