"""Image-Text Contrastive loss: pull a post's text and image together, push other posts' apart.

Both sides are L2-normalised; logits are ``exp(log_scale) * t @ i.T`` with a learnable log-temperature
initialised at ln(1/0.07) and clamped to [0, ln 100]; the loss is the mean of text→image and image→text
cross-entropy. Posts that share a text (retweets) or an image are not negatives for each other: those
off-diagonal logits are masked out. Posts without an image take no part.

Across processes (data-parallel training) the engine passes a :class:`Collective`. Each rank's rows are then
contrasted with the *global* batch (every rank's embeddings, gathered with gradients), duplicates are masked
by id across the whole batch, and the targets are shifted by the rank's offset (open_clip's ``ClipLoss``). The
value a rank returns is its share of the full-batch loss, scaled by ``world_size · n_rank / n_global``: the mean
over ranks is the full-batch loss, so DDP's mean of the gradients is the single-process full-batch gradient.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpost.data.batch import Batch
from mmpost.models.output import ModelOutput
from mmpost.objectives.base import Loss, LossConfig
from mmpost.objectives.collective import Collective, rank_share
from mmpost.registry import register

Gather = Callable[[Tensor], tuple[Tensor, int]]
LOG_SCALE_MAX = math.log(100.0)


def duplicate_mask(ids_rows: Tensor | None, ids_cols: Tensor | None, offset: int) -> Tensor | None:
    """True where row a and column b share an id but are not the same post (a false negative)."""
    if ids_rows is None or ids_cols is None:
        return None
    same = ids_rows[:, None] == ids_cols[None, :]
    diag = torch.zeros_like(same)
    rows = torch.arange(ids_rows.numel(), device=same.device)
    diag[rows, rows + offset] = True
    return same & ~diag


def itc_loss(text_embeds: Tensor, image_embeds: Tensor, log_scale: Tensor, *,
             text_ids: Tensor | None = None, image_ids: Tensor | None = None,
             gather: Gather | None = None) -> Tensor:
    """text_embeds, image_embeds [B, E]; log_scale scalar; text_ids / image_ids [B] group ids → scalar loss."""
    t = F.normalize(text_embeds, dim=-1)
    v = F.normalize(image_embeds, dim=-1)
    if gather is not None:
        t_all, offset = gather(t)
        v_all, _ = gather(v)
        text_ids_all = gather(text_ids)[0] if text_ids is not None else None
        image_ids_all = gather(image_ids)[0] if image_ids is not None else None
        if t.shape[0] == 0:     # no rows here, but the gathers' backward is collective too: stay in the graph
            return (t_all.sum() + v_all.sum()) * 0.0
    else:
        t_all, v_all, offset = t, v, 0
        text_ids_all, image_ids_all = text_ids, image_ids
    scale = log_scale.clamp(0.0, LOG_SCALE_MAX).exp()
    logits_t2i = scale * t @ v_all.T          # [B, N]
    logits_i2t = scale * v @ t_all.T          # [B, N]
    # a column that repeats this row's text or image is not a negative for either direction
    masks = [m for m in (duplicate_mask(text_ids, text_ids_all, offset),
                         duplicate_mask(image_ids, image_ids_all, offset)) if m is not None]
    if masks:
        mask = masks[0] if len(masks) == 1 else masks[0] | masks[1]
        logits_t2i = logits_t2i.masked_fill(mask, float("-inf"))
        logits_i2t = logits_i2t.masked_fill(mask, float("-inf"))
    targets = torch.arange(t.shape[0], device=t.device) + offset
    return 0.5 * (F.cross_entropy(logits_t2i, targets) + F.cross_entropy(logits_i2t, targets))


@register("objective", "itc")
class ITCLoss(Loss):
    """Holds the learnable temperature; reads ``text_embeds``/``image_embeds`` from the model output.
    One part, ``itc``; logs ``temperature``."""

    @dataclass
    class Config(LossConfig):
        temperature: float = 0.07          # initial τ (the logit scale starts at 1/τ, learned, clamped to [1, 100])
        mask_duplicates: bool = True       # posts sharing a text or an image are not negatives for each other

        def __post_init__(self) -> None:
            if not self.temperature > 0:
                raise ValueError(f"objectives.itc.temperature must be > 0, got {self.temperature}")

    def __init__(self, config: "ITCLoss.Config | None" = None, context=None, *, gather: Gather | None = None):
        super().__init__(config, context)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / self.config.temperature)))
        self.mask_duplicates = self.config.mask_duplicates
        self.gather = gather

    @property
    def temperature(self) -> float:
        return float(1.0 / self.log_scale.detach().clamp(0.0, LOG_SCALE_MAX).exp())

    @property
    def similarity_scale(self) -> float:
        """The current logit scale 1/τ (other losses draw from the same similarity: hard ITM negatives)."""
        return 1.0 / self.temperature

    def stats(self) -> dict[str, float]:
        return {"temperature": self.temperature}

    def forward(self, output: ModelOutput, batch: Batch, collective: Collective | None = None) -> dict[str, Tensor]:
        return {"itc": self.contrast(output, batch.text_ids, batch.image_ids, collective)}

    def contrast(self, output: ModelOutput, text_ids: Tensor | None = None, image_ids: Tensor | None = None,
                 collective: Collective | None = None) -> Tensor:
        """The loss over this batch; with ``collective``, this rank's scaled share of the global batch's loss."""
        keep = output.has_image
        sel = lambda x: None if (x is None or not self.mask_duplicates) else x[keep]  # noqa: E731
        if collective is not None:
            n_local = int(keep.sum())
            n_global = float(collective.total(keep.sum().float()))
            if n_global < 2:    # every rank sees the same total, so all skip the gathers together
                return output.text_embeds.sum() * 0.0
            local = itc_loss(output.text_embeds[keep], output.image_embeds[keep], self.log_scale,
                             text_ids=sel(text_ids), image_ids=sel(image_ids), gather=collective.gather)
            return rank_share(local, n_local, n_global, collective.world_size)
        if self.gather is None and int(keep.sum()) < 2:
            return output.text_embeds.sum() * 0.0   # nothing to contrast; keeps the graph connected
        return itc_loss(output.text_embeds[keep], output.image_embeds[keep], self.log_scale,
                        text_ids=sel(text_ids), image_ids=sel(image_ids), gather=self.gather)
