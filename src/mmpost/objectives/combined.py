"""The training objective: CE plus optional ITC and ITM, weighted additively or convexly.

additive: λ_ce·CE + λ_itc·ITC + λ_itm·ITM
convex:   (1 − β_itc − β_itm)·CE + β_itc·ITC + β_itm·ITM    (the seed code's form, β = 0.1 each)
Every component and the ITC temperature are reported so the engine can log them.

With a :class:`~mmpost.objectives.itc.Collective` (data-parallel training), every component is this rank's
scaled share of the global batch's value — CE is normalised by the class weights summed over all ranks — so
the mean over ranks of each reported value, and of the gradients, is what one process would get on the whole
global batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.models.output import ItmPairs, ModelOutput
from mmpost.objectives.ce import CELoss
from mmpost.objectives.itc import Collective, ITCLoss, rank_share
from mmpost.objectives.itm import ITMLoss

WEIGHTINGS = ("additive", "convex")


@dataclass
class LossBreakdown:
    total: Tensor
    parts: dict[str, Tensor]        # unweighted components: ce, itc, itm
    temperature: float | None = None

    def as_floats(self) -> dict[str, float]:
        out = {"loss": float(self.total.detach())}
        out.update({k: float(v.detach()) for k, v in self.parts.items()})
        if self.temperature is not None:
            out["temperature"] = self.temperature
        return out


def combine(parts: dict[str, Tensor], weighting: str, weights: dict[str, float]) -> Tensor:
    """parts: {"ce": .., "itc": .., "itm": ..} (absent = off). weights: lambda_* (additive) or beta_* (convex)."""
    if weighting == "additive":
        return sum(weights.get(f"lambda_{k}", 1.0) * v for k, v in parts.items())
    if weighting == "convex":
        aux = {k: weights.get(f"beta_{k}", 0.1) for k in parts if k != "ce"}
        if sum(aux.values()) >= 1.0:
            raise ValueError(f"convex weighting needs β_itc + β_itm < 1, got {aux}")
        return (1.0 - sum(aux.values())) * parts["ce"] + sum(aux[k] * parts[k] for k in aux)
    raise ValueError(f"unknown weighting {weighting!r}; choose from {', '.join(WEIGHTINGS)}")


class Objective(nn.Module):
    def __init__(self, *, itc: bool = False, itm: bool = False, weighting: str = "additive",
                 weights: dict[str, float] | None = None, class_weights: Tensor | None = None,
                 temperature: float = 0.07, mask_duplicates: bool = True, itm_negatives: str = "random") -> None:
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r}; choose from {', '.join(WEIGHTINGS)}")
        self.weighting = weighting
        self.weights = dict(weights or {})
        self.ce = CELoss(class_weights)
        self.itc = ITCLoss(temperature, mask_duplicates) if itc else None
        self.itm = ITMLoss(itm_negatives) if itm else None

    def model_kwargs(self, batch: Batch, generator: torch.Generator | None = None) -> dict:
        """What the model must compute for this objective (ITM pairs when ITM is on)."""
        if self.itm is None:
            return {}
        itm = self.itm
        scale = self.itm_scale()

        def sampler(text_embeds: Tensor, image_embeds: Tensor) -> ItmPairs:
            return itm.make_pairs(batch.has_image, text_embeds, image_embeds, text_ids=batch.text_ids,
                                  image_ids=batch.image_ids, scale=scale, generator=generator)

        return {"itm": sampler}

    def itm_scale(self) -> float:
        """The ITC logit scale that hard ITM negatives are drawn with (1/0.07 when ITC is off)."""
        return 1.0 / self.itc.temperature if self.itc is not None else 1.0 / 0.07

    def forward(self, output: ModelOutput, batch: Batch, collective: Collective | None = None) -> LossBreakdown:
        labelled = batch.labels >= 0
        parts = {"ce": self._ce(_select(output, labelled), batch.labels[labelled], collective)}
        if self.itc is not None:
            parts["itc"] = self.itc(output, batch.text_ids, batch.image_ids, collective=collective)
        if self.itm is not None:
            parts["itm"] = self.itm(output, collective=collective)
        total = combine(parts, self.weighting, self.weights)
        return LossBreakdown(total, parts, self.itc.temperature if self.itc is not None else None)

    def _ce(self, output: ModelOutput, labels: Tensor, collective: Collective | None) -> Tensor:
        """CE is a weighted mean (Σ w·loss / Σ w): across ranks, each rank's mean is scaled by its share of the
        global Σ w, so the mean over ranks is the weighted mean over the global batch."""
        if collective is None:
            return self.ce(output, labels)
        weights = self.ce.class_weights
        w = weights[labels] if weights is not None else torch.ones_like(labels, dtype=torch.float)
        w_local = w.sum()
        w_global = float(collective.total(w_local.float()))
        if float(w_local) == 0.0 or w_global == 0.0:
            return output.logits.sum() * 0.0      # no (weighted) labelled rows here; stays in the graph
        return rank_share(self.ce(output, labels), float(w_local), w_global, collective.world_size)


def _select(output: ModelOutput, rows: Tensor) -> ModelOutput:
    if bool(rows.all()):
        return output
    return ModelOutput(output.logits[rows], output.text_embeds[rows], output.image_embeds[rows],
                       output.fused[rows], output.has_image[rows])
