"""``concat``: several frozen text towers side by side, their vectors concatenated::

    text_encoder: {name: concat, parts: [{name: minilm}, {name: e5-multilingual}]}

Each part is built like a ``text_encoder`` of its own (its keys override the outer ones, e.g. ``max_length`` or
``precision``) and caches its features under its own identity, so the cache of a tower used alone is reused. Frozen
towers only: a part with ``trainable`` or ``train_layers``, or a run that would fine-tune the concatenation, is stopped
with a message. As a "first token" (Att) each part gives its own (an HF part its CLS vector, an engine its one vector).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from mmpost import registry
from mmpost.encoders.base import TextTower
from mmpost.encoders.frozen_text import FeatureTextTower

OUTER_ONLY = ("parts", "train_layers", "length_buckets")    # keys of the outer config that no part inherits


class ConcatTextTower(FeatureTextTower):
    name = "concat"

    def __init__(self, parts: Sequence[TextTower]) -> None:
        super().__init__()
        if len(parts) < 2:
            raise ValueError("text_encoder.name=concat needs at least two parts, e.g. "
                             "parts: [{name: minilm}, {name: e5-multilingual}]")
        self.parts = nn.ModuleList(parts)
        for p in self.parts:
            p.requires_grad_(False)
        self.dim = sum(int(p.dim) for p in self.parts)
        self.max_length = max(int(getattr(p, "max_length", 0)) for p in self.parts)
        self.identity = "concat(" + ",".join(p.identity for p in self.parts) + ")"

    def token_lengths(self, texts: list[str]) -> list[int]:
        return self.parts[0].token_lengths(texts)


def build_part(index: int, part: Mapping[str, Any], outer: Mapping[str, Any]) -> TextTower:
    part = dict(part)
    where = f"text_encoder.parts[{index}]"
    name = part.pop("name", None)
    if not name:
        raise ValueError(f"{where} has no name (e.g. {{name: minilm}})")
    if part.pop("trainable", False) or part.get("train_layers"):
        raise ValueError(f"{where} ({name}): concat joins frozen towers only; drop trainable / train_layers there "
                         "(fine-tune a single text tower instead)")
    if name == "concat":
        raise ValueError(f"{where}: a concat inside a concat; list its parts in the outer one")
    kwargs = {**{k: v for k, v in outer.items() if k not in OUTER_ONLY}, **part}
    tower = registry.get("encoder", name)(**kwargs)
    if not isinstance(tower, TextTower):
        raise ValueError(f"{where} ({name}) is not a text tower: concat joins text towers")
    return tower


@registry.register("encoder", "concat")
def concat(*, parts: Sequence[Mapping[str, Any]] | None = None, **outer: Any) -> ConcatTextTower:
    if not parts:
        raise ValueError("text_encoder.name=concat needs parts, e.g. parts: [{name: minilm}, {name: e5-multilingual}]")
    return ConcatTextTower([build_part(i, p, outer) for i, p in enumerate(parts)])
