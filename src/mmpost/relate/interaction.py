"""Relation features: what ITRp clusters (``relate.features``).

The paper's ``concat`` (``text ⊕ image``) describes what a post shows and says; its strongest structure is the
content (cat vs car), not how text and image relate. The relation lives in the *pair*, in a space where text and
image are comparable (:mod:`mmpost.relate.alignment`). With ``t``, ``v`` a post's unit-length projections there:

=====================  ===========================================================  ======================
``relate.features``    columns                                                      width
=====================  ===========================================================  ======================
``concat``             ``text ⊕ image`` (pooled, the paper's; no alignment)          Dt + Dv
``interaction``        ``[cos(t, v), t ⊙ v, |t − v|]``                              1 + 2E
``both``               ``concat ⊕ interaction``                                     Dt + Dv + 1 + 2E
``interaction+itm``    ``interaction ⊕ [P(match)]`` (the ITM head on the own pair)   2 + 2E
``cos``                ``[cos(t, v)]``                                               1
``cos+itm``            ``[cos(t, v), P(match)]``                                     2
=====================  ===========================================================  ======================

**Blocks are weighted, not just stacked** (``relate.feature_weighting: blocks``, the default). The scalar relation
scores (cosine, match probability) would be one column out of hundreds and k-means would barely see them; every
block is therefore scaled to carry the same share of the total variance: each *scalar* block is standardised (mean 0,
standard deviation 1 over the clustered posts) and each *vector* block (``t ⊙ v``, ``|t − v|``, ``text``, ``image``)
is centred and divided by the square root of its total variance. ``relate.feature_weighting: none`` stacks the raw
blocks. The clusterer's own ``normalize`` (default ``l2``) still applies afterwards; with block weighting
``relate.clusterer_options: {normalize: none}`` is what keeps the weights as they are.

Block statistics are computed on the posts being clustered (label-free), and the same statistics are applied to
posts assigned later (:class:`BlockScaler`).

Posts without an image get a zero interaction block (cos 0, match probability 0.5 before weighting).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["FEATURES", "WEIGHTINGS", "needs_alignment", "needs_itm", "interaction_blocks", "feature_blocks",
           "BlockScaler", "stack_blocks"]

FEATURES = ("concat", "interaction", "both", "interaction+itm", "cos", "cos+itm")
WEIGHTINGS = ("blocks", "none")
_SCALAR = ("cos", "itm")


def needs_alignment(features: str) -> bool:
    """Every feature set but ``concat`` reads the aligned space."""
    return features != "concat"


def needs_itm(features: str) -> bool:
    return features.endswith("+itm")


def interaction_blocks(t: Tensor, v: Tensor, has_image: Tensor, match: Tensor | None = None,
                       *, vectors: bool = True) -> dict[str, Tensor]:
    """{block name: [N, w]} from unit-length projections ``t``, ``v`` [N, E]; rows without an image are zero (the
    match probability 0.5). Differentiable: gradients reach the projections and the towers behind them."""
    keep = has_image.to(t.dtype).unsqueeze(1)
    blocks = {"cos": (t * v).sum(1, keepdim=True) * keep}
    if vectors:
        blocks["prod"] = t * v * keep
        blocks["diff"] = (t - v).abs() * keep
    if match is not None:
        blocks["itm"] = torch.where(has_image, match, torch.full_like(match, 0.5)).unsqueeze(1)
    return blocks


def feature_blocks(features: str, *, text: Tensor, image: Tensor, t: Tensor | None, v: Tensor | None,
                   has_image: Tensor, match: Tensor | None) -> dict[str, Tensor]:
    """The blocks of one ``relate.features`` setting (see the module table), in column order."""
    blocks: dict[str, Tensor] = {}
    if features in ("concat", "both"):
        blocks["text"], blocks["image"] = text.float(), image.float()
    if features == "concat":
        return blocks
    if t is None or v is None:
        raise ValueError(f"relate.features={features} needs the aligned projections")
    if needs_itm(features) and match is None:
        raise ValueError(f"relate.features={features} needs an ITM head: set relate.align_itm=true")
    vectors = not features.startswith("cos")
    blocks.update(interaction_blocks(t, v, has_image, match if needs_itm(features) else None, vectors=vectors))
    return blocks


@dataclass
class BlockScaler:
    """Per-block centre and scale, fitted on the clustered posts' blocks and applied unchanged to others."""

    means: dict[str, np.ndarray]
    scales: dict[str, float]

    @classmethod
    def fit(cls, blocks: dict[str, np.ndarray]) -> BlockScaler:
        means, scales = {}, {}
        for name, x in blocks.items():
            x64 = np.asarray(x, dtype=np.float64)
            means[name] = x64.mean(axis=0)
            spread = float(np.sqrt(x64.var(axis=0).sum()))
            scales[name] = spread if spread > 0 else 1.0
        return cls(means, scales)

    def apply(self, blocks: dict[str, np.ndarray]) -> np.ndarray:
        return stack_blocks({n: (np.asarray(x, dtype=np.float64) - self.means[n]) / self.scales[n]
                             for n, x in blocks.items()})

    def apply_torch(self, blocks: dict[str, Tensor]) -> Tensor:
        parts = [(x - torch.as_tensor(self.means[n], dtype=x.dtype, device=x.device)) / self.scales[n]
                 for n, x in blocks.items()]
        return torch.cat(parts, dim=1)


def stack_blocks(blocks: dict[str, np.ndarray] | Sequence[np.ndarray]) -> np.ndarray:
    """[N, Σw] float32, the blocks side by side in order."""
    parts = list(blocks.values()) if isinstance(blocks, dict) else list(blocks)
    return np.ascontiguousarray(np.concatenate([np.asarray(p, dtype=np.float32) for p in parts], axis=1))
