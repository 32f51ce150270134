"""Image-Text Contrastive loss: pull a post's text and image together, push other posts' apart.

Both sides are L2-normalised; logits are ``exp(log_scale) * t @ i.T`` with a learnable log-temperature
initialised at ln(1/0.07) and clamped to [0, ln 100]. ``loss: softmax`` (CLIP's) is the mean of text→image and
image→text cross-entropy; ``loss: sigmoid`` (SigLIP's) treats every pair as a binary decision with a learned bias
added to the logits. Posts that share a text (retweets) or an image are not negatives for each other: those
off-diagonal logits are masked out. Posts without an image take no part.

``space: model`` contrasts the family's own ITC vectors (``text_embeds``, ``image_embeds``); ``space: checkpoint``
contrasts the towers' pooled vectors of one CLIP or SigLIP checkpoint (``hf-clip``) in its own projected space,
starting from its own logit scale (and bias): aligned from the first step.

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


@dataclass
class Contrast:
    """What both ITC losses share: the L2-normalised local rows, the (gathered) columns, this rank's offset into
    them, and where a column is no negative for a row (None: nowhere)."""
    t: Tensor
    v: Tensor
    t_all: Tensor
    v_all: Tensor
    offset: int
    mask: Tensor | None


def contrast_inputs(text_embeds: Tensor, image_embeds: Tensor, *, text_ids: Tensor | None = None,
                    image_ids: Tensor | None = None, gather: Gather | None = None) -> Contrast:
    t = F.normalize(text_embeds, dim=-1)
    v = F.normalize(image_embeds, dim=-1)
    if gather is not None:
        t_all, offset = gather(t)
        v_all, _ = gather(v)
        text_ids_all = gather(text_ids)[0] if text_ids is not None else None
        image_ids_all = gather(image_ids)[0] if image_ids is not None else None
    else:
        t_all, v_all, offset = t, v, 0
        text_ids_all, image_ids_all = text_ids, image_ids
    # a column that repeats this row's text or image is not a negative for either direction
    masks = [m for m in (duplicate_mask(text_ids, text_ids_all, offset),
                         duplicate_mask(image_ids, image_ids_all, offset)) if m is not None]
    mask = None if not masks else masks[0] if len(masks) == 1 else masks[0] | masks[1]
    return Contrast(t, v, t_all, v_all, offset, mask)


def itc_loss(text_embeds: Tensor, image_embeds: Tensor, log_scale: Tensor, *,
             text_ids: Tensor | None = None, image_ids: Tensor | None = None,
             gather: Gather | None = None, log_scale_max: float = LOG_SCALE_MAX) -> Tensor:
    """CLIP's loss. text_embeds, image_embeds [B, E]; log_scale scalar; text_ids / image_ids [B] group ids →
    scalar: the mean of text→image and image→text cross-entropy over ``exp(log_scale)·cosine``."""
    c = contrast_inputs(text_embeds, image_embeds, text_ids=text_ids, image_ids=image_ids, gather=gather)
    if gather is not None and c.t.shape[0] == 0:   # no rows here, but the gathers' backward is collective too
        return (c.t_all.sum() + c.v_all.sum()) * 0.0
    scale = log_scale.clamp(0.0, log_scale_max).exp()
    logits_t2i = scale * c.t @ c.v_all.T          # [B, N]
    logits_i2t = scale * c.v @ c.t_all.T          # [B, N]
    if c.mask is not None:
        logits_t2i = logits_t2i.masked_fill(c.mask, float("-inf"))
        logits_i2t = logits_i2t.masked_fill(c.mask, float("-inf"))
    targets = torch.arange(c.t.shape[0], device=c.t.device) + c.offset
    return 0.5 * (F.cross_entropy(logits_t2i, targets) + F.cross_entropy(logits_i2t, targets))


def sigmoid_itc_loss(text_embeds: Tensor, image_embeds: Tensor, log_scale: Tensor, bias: Tensor, *,
                     text_ids: Tensor | None = None, image_ids: Tensor | None = None,
                     gather: Gather | None = None, log_scale_max: float = LOG_SCALE_MAX) -> Tensor:
    """SigLIP's loss: every (text, image) pair is a binary decision, ``z = exp(log_scale)·cosine + bias``, +1 for a
    post's own pair, −1 for every other; the loss is ``−Σ_columns log σ(±z)`` averaged over rows (text→image once:
    the pairs are symmetric). Masked pairs (a shared text or image) count neither way."""
    c = contrast_inputs(text_embeds, image_embeds, text_ids=text_ids, image_ids=image_ids, gather=gather)
    if gather is not None and c.t.shape[0] == 0:
        return (c.t_all.sum() + c.v_all.sum()) * 0.0
    scale = log_scale.clamp(0.0, log_scale_max).exp()
    logits = scale * c.t @ c.v_all.T + bias       # [B, N]
    signs = -torch.ones_like(logits)
    rows = torch.arange(c.t.shape[0], device=logits.device)
    signs[rows, rows + c.offset] = 1.0
    terms = -F.logsigmoid(signs * logits)
    if c.mask is not None:
        terms = terms.masked_fill(c.mask, 0.0)
    return terms.sum(dim=1).mean()


LOSSES = ("softmax", "sigmoid")
SPACES = ("model", "checkpoint")


def initial_scale(config, context) -> tuple[float, float]:
    """(log scale, bias) to start from: the checkpoint's own in ``checkpoint`` space (an explicit temperature
    wins), else ``1/temperature`` (default 0.07 softmax, 0.1 sigmoid) and ``config.bias``."""
    default_t = 0.07 if config.loss == "softmax" else 0.1
    log_scale, bias = math.log(1.0 / (config.temperature or default_t)), float(config.bias)
    if config.space == "checkpoint":
        paired = getattr(context, "checkpoint_scale", None)
        if paired is None:
            raise ValueError("objectives.itc.space=checkpoint contrasts the towers' pooled vectors in a CLIP or "
                             "SigLIP checkpoint's own space: set text_encoder.name and image_encoder.name to hf-clip "
                             "with one path (or use space=model)")
        if config.temperature is None:
            log_scale = float(paired[0])
        if paired[1] is not None:
            bias = float(paired[1])
    return log_scale, bias


@register("objective", "itc")
class ITCLoss(Loss):
    """Holds the learnable temperature; reads ``text_embeds``/``image_embeds`` from the model output.
    One part, ``itc``; logs ``temperature``."""

    @dataclass
    class Config(LossConfig):
        temperature: float | None = None  # initial τ: the logit scale starts at 1/τ (learned, clamped to [1, 100]);
                                           # default 0.07 (softmax), 0.1 (sigmoid, SigLIP's), the checkpoint's own
                                           # scale in checkpoint space
        loss: str = "softmax"              # softmax: CLIP's symmetric cross-entropy | sigmoid: SigLIP's pairwise loss
        bias: float = -10.0                # sigmoid: the learned bias's start (SigLIP's; a SigLIP checkpoint's own
                                           # in checkpoint space)
        space: str = "model"               # model: the family's ITC vectors (text_embeds, image_embeds) |
                                           # checkpoint: the hf-clip towers' pooled vectors, in their own space
        mask_duplicates: bool = True       # posts sharing a text or an image are not negatives for each other

        def __post_init__(self) -> None:
            if self.temperature is not None and not self.temperature > 0:
                raise ValueError(f"objectives.itc.temperature must be > 0, got {self.temperature}")
            for key, value, choices in (("loss", self.loss, LOSSES), ("space", self.space, SPACES)):
                if value not in choices:
                    raise ValueError(f"objectives.itc.{key} must be one of {', '.join(choices)}, got {value!r}")

    def __init__(self, config: "ITCLoss.Config | None" = None, context=None, *, gather: Gather | None = None):
        super().__init__(config, context)
        log_scale, bias = initial_scale(self.config, context)
        self.log_scale_max = max(LOG_SCALE_MAX, log_scale)     # a SigLIP checkpoint's scale may pass 100
        self.log_scale = nn.Parameter(torch.tensor(log_scale))
        self.bias = nn.Parameter(torch.tensor(bias)) if self.config.loss == "sigmoid" else None
        self.mask_duplicates = self.config.mask_duplicates
        self.gather = gather

    @property
    def temperature(self) -> float:
        return float(1.0 / self.log_scale.detach().clamp(0.0, self.log_scale_max).exp())

    @property
    def similarity_scale(self) -> float:
        """The current logit scale 1/τ (other losses draw from the same similarity: hard ITM negatives)."""
        return 1.0 / self.temperature

    def stats(self) -> dict[str, float]:
        bias = {} if self.bias is None else {"itc_bias": float(self.bias.detach())}
        return {"temperature": self.temperature, **bias}

    def vectors(self, output: ModelOutput) -> tuple[Tensor, Tensor]:
        """The pair ITC contrasts: the family's projections, or the towers' pooled vectors (checkpoint space)."""
        if self.config.space == "model":
            return output.text_embeds, output.image_embeds
        if output.tower_text is None or output.tower_image is None:
            raise ValueError("objectives.itc.space=checkpoint: this model family does not report the towers' pooled "
                             "vectors (conc, att and cma-clip do); use objectives.itc.space=model")
        return output.tower_text, output.tower_image

    def pair_loss(self, t: Tensor, v: Tensor, **kwargs) -> Tensor:
        if self.bias is None:
            return itc_loss(t, v, self.log_scale, log_scale_max=self.log_scale_max, **kwargs)
        return sigmoid_itc_loss(t, v, self.log_scale, self.bias, log_scale_max=self.log_scale_max, **kwargs)

    def forward(self, output: ModelOutput, batch: Batch, collective: Collective | None = None) -> dict[str, Tensor]:
        return {"itc": self.contrast(output, batch.text_ids, batch.image_ids, collective)}

    def contrast(self, output: ModelOutput, text_ids: Tensor | None = None, image_ids: Tensor | None = None,
                 collective: Collective | None = None) -> Tensor:
        """The loss over this batch; with ``collective``, this rank's scaled share of the global batch's loss."""
        keep = output.has_image
        text, image = self.vectors(output)
        sel = lambda x: None if (x is None or not self.mask_duplicates) else x[keep]  # noqa: E731
        if collective is not None:
            n_local = int(keep.sum())
            n_global = float(collective.total(keep.sum().float()))
            if n_global < 2:    # every rank sees the same total, so all skip the gathers together
                return text.sum() * 0.0
            local = self.pair_loss(text[keep], image[keep], text_ids=sel(text_ids), image_ids=sel(image_ids),
                                   gather=collective.gather)
            return rank_share(local, n_local, n_global, collective.world_size)
        if self.gather is None and int(keep.sum()) < 2:
            return text.sum() * 0.0   # nothing to contrast; keeps the graph connected
        return self.pair_loss(text[keep], image[keep], text_ids=sel(text_ids), image_ids=sel(image_ids),
                              gather=self.gather)
