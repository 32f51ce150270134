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
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpost.models.output import ModelOutput
from mmpost.registry import register

Gather = Callable[[Tensor], tuple[Tensor, int]]
LOG_SCALE_MAX = math.log(100.0)


class Collective(Protocol):
    """How an objective reaches the other processes of a data-parallel run. The engine supplies one (one process:
    None), so losses never import the engine. Rows are concatenated in rank order: the gathered batch is the
    global batch in the order a single process would see it."""

    world_size: int

    def gather(self, x: Tensor) -> tuple[Tensor, int]:
        """Every rank's rows of ``x`` [n_rank, ...] (sizes may differ) and where this rank's rows start.
        Gradients flow back to the rank that owns each row."""
        ...

    def total(self, x: Tensor) -> Tensor:
        """``x`` summed over ranks, without gradient (counts and normalisers)."""
        ...


def rank_share(local_mean: Tensor, n_local: float, n_global: float, world_size: int) -> Tensor:
    """Scale a rank's mean over its ``n_local`` items so that the mean over ranks equals the mean over all
    ``n_global`` items; DDP averages gradients, so it then gets the full-batch gradient too."""
    return local_mean * (world_size * n_local / n_global)


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
class ITCLoss(nn.Module):
    """Holds the learnable temperature; reads ``text_embeds``/``image_embeds`` from the model output."""

    def __init__(self, temperature: float = 0.07, mask_duplicates: bool = True, gather: Gather | None = None):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.mask_duplicates = mask_duplicates
        self.gather = gather

    @property
    def temperature(self) -> float:
        return float(1.0 / self.log_scale.detach().clamp(0.0, LOG_SCALE_MAX).exp())

    def forward(self, output: ModelOutput, text_ids: Tensor | None = None,
                image_ids: Tensor | None = None, collective: Collective | None = None) -> Tensor:
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
