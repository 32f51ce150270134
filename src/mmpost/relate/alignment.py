"""A label-free image-text aligned space for ITRp (``relate.align: itc``).

Two projections, ``text → E`` and ``image → E``, are trained with mmpost's ITC loss (optionally plus ITM with random
negatives) on the pooled features of the *unlabelled* training posts, nothing else::

    alignment, report = fit_alignment(text, image, has_image=..., text_ids=..., image_ids=..., settings=...)
    t, v = alignment.project(torch.from_numpy(text), torch.from_numpy(image))   # [N, E] each, unit length
    p = alignment.match_probability(t, v)                                         # [N] ITM P(match) or None

**Stopping without labels.** A seeded ``holdout`` share of the same unlabelled posts is kept out of training; after
every epoch the ITC loss is computed on it (fixed batches, fixed order, no gradient) and the projections of the epoch
with the lowest held-out loss are kept. Training stops ``patience`` epochs after the last improvement. No label is
read anywhere: the only inputs are features and the ids that tell repeated texts / images apart (repeats are not
ITC negatives of each other, as in supervised training).

The inputs are standardised column-wise with the training posts' mean and standard deviation (kept as buffers), so
a tower whose activations are large (EfficientNet-Lite0's pooled map) does not dominate the first steps. Posts
without an image take no part in training; their projections are still computed (their image side is the zero
vector standardised), and the relation features mark them (:mod:`mmpost.relate.interaction`).
"""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpost.objectives.itc import itc_loss
from mmpost.objectives.itm import itm_loss, random_pairs

log = logging.getLogger(__name__)

__all__ = ["AlignSettings", "AlignReport", "Alignment", "CheckpointAlignment", "fit_alignment", "group_ids",
           "holdout_split"]


@dataclass
class AlignSettings:
    """How the aligned space is trained (the ``relate.align_*`` keys). dim: E. hidden: 0 for linear projections,
    else a hidden layer of that width (Linear → GELU → Linear). itm: also train an ITM head (random negatives, p=0.5)
    next to ITC; needed for the match-probability feature. temperature: ITC's initial τ (learned)."""

    dim: int = 128
    hidden: int = 0
    epochs: int = 100
    patience: int = 10
    holdout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    temperature: float = 0.07
    itm: bool = False
    seed: int = 0


@dataclass
class AlignReport:
    """What training did: epochs run, the epoch kept (lowest held-out ITC loss), the held-out and training losses per
    epoch, and the posts used for training / hold-out."""

    epochs_run: int = 0
    best_epoch: int = -1
    best_holdout_itc: float = math.inf
    holdout_itc: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    n_train: int = 0
    n_holdout: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _projection(in_dim: int, dim: int, hidden: int) -> nn.Module:
    if hidden <= 0:
        return nn.Linear(in_dim, dim)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class Alignment(nn.Module):
    """Standardise → project → L2-normalise, per side; an optional ITM head scores a (text, image) pair from
    ``[t ⊙ v, |t − v|]`` of the projected pair."""

    def __init__(self, text_dim: int, image_dim: int, settings: AlignSettings):
        super().__init__()
        self.settings = settings
        self.text_proj = _projection(text_dim, settings.dim, settings.hidden)
        self.image_proj = _projection(image_dim, settings.dim, settings.hidden)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / settings.temperature)))
        self.itm_head = (nn.Sequential(nn.Linear(2 * settings.dim, settings.dim), nn.GELU(),
                                       nn.Linear(settings.dim, 2)) if settings.itm else None)
        for name, d in (("text", text_dim), ("image", image_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(d))
            self.register_buffer(f"{name}_scale", torch.ones(d))

    @property
    def dim(self) -> int:
        return int(self.settings.dim)

    def fit_standardisation(self, text: np.ndarray, image: np.ndarray) -> None:
        """Column mean / std of the training rows (std 0 → 1)."""
        for name, x in (("text", text), ("image", image)):
            x64 = np.asarray(x, dtype=np.float64)
            std = x64.std(axis=0)
            getattr(self, f"{name}_mean").copy_(torch.from_numpy(x64.mean(axis=0)).float())
            getattr(self, f"{name}_scale").copy_(torch.from_numpy(np.where(std > 0, std, 1.0)).float())

    def project_text(self, text: Tensor) -> Tensor:
        """[B, Dt] pooled text → [B, E] unit vectors."""
        return F.normalize(self.text_proj((text.float() - self.text_mean) / self.text_scale), dim=-1)

    def project_image(self, image: Tensor) -> Tensor:
        """[B, Dv] pooled image → [B, E] unit vectors."""
        return F.normalize(self.image_proj((image.float() - self.image_mean) / self.image_scale), dim=-1)

    def project(self, text: Tensor, image: Tensor) -> tuple[Tensor, Tensor]:
        return self.project_text(text), self.project_image(image)

    def itm_logits(self, t: Tensor, v: Tensor) -> Tensor:
        """[P, 2] no-match / match scores of projected pairs (rows of ``t`` with rows of ``v``)."""
        if self.itm_head is None:
            raise ValueError("this alignment was trained without ITM (relate.align_itm=false)")
        return self.itm_head(torch.cat([t * v, (t - v).abs()], dim=1))

    def match_probability(self, t: Tensor, v: Tensor) -> Tensor | None:
        """[N] P(match) of each post's own pair, or None without an ITM head."""
        if self.itm_head is None:
            return None
        return torch.softmax(self.itm_logits(t, v), dim=1)[:, 1]


class CheckpointAlignment(nn.Module):
    """``relate.align: checkpoint``: the towers are the two halves of one CLIP or SigLIP checkpoint (``hf-clip``),
    whose pooled outputs already live in the checkpoint's own projected space; projecting is L2-normalising. No
    parameter, no ITM head."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("text_mean", torch.zeros(dim))     # only tells which device the space lives on
        self.dim = int(dim)

    def project_text(self, text: Tensor) -> Tensor:
        return F.normalize(text.float(), dim=-1)

    def project_image(self, image: Tensor) -> Tensor:
        return F.normalize(image.float(), dim=-1)

    def project(self, text: Tensor, image: Tensor) -> tuple[Tensor, Tensor]:
        return self.project_text(text), self.project_image(image)

    def match_probability(self, t: Tensor, v: Tensor) -> None:
        return None


# --------------------------------------------------------------------------------------------------- ids, split


def group_ids(keys: list[Any]) -> np.ndarray:
    """[N] int64: equal keys (a repeated text, the same image files) share an id."""
    index: dict[Any, int] = {}
    return np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)


def holdout_split(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows), a seeded permutation of 0..n-1; at least 2 rows on each side when n >= 4."""
    order = np.random.default_rng(seed).permutation(n)
    n_hold = int(round(share * n))
    if n >= 4:
        n_hold = min(max(n_hold, 2), n - 2)
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])


# --------------------------------------------------------------------------------------------------- training


@dataclass
class _Rows:
    text: Tensor
    image: Tensor
    text_ids: Tensor
    image_ids: Tensor


def _rows(text: np.ndarray, image: np.ndarray, text_ids: np.ndarray, image_ids: np.ndarray, idx: np.ndarray,
          device: torch.device) -> _Rows:
    def t(a: np.ndarray, dtype: torch.dtype) -> Tensor:
        return torch.as_tensor(np.ascontiguousarray(a[idx]), dtype=dtype, device=device)
    return _Rows(t(text, torch.float32), t(image, torch.float32), t(text_ids, torch.long), t(image_ids, torch.long))


def _batch_loss(model: Alignment, rows: _Rows, b: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """(ITC, ITM) losses of the batch rows ``b``; ITM is 0 without an ITM head."""
    t, v = model.project(rows.text[b], rows.image[b])
    itc = itc_loss(t, v, model.log_scale, text_ids=rows.text_ids[b], image_ids=rows.image_ids[b])
    if model.itm_head is None:
        return itc, itc.new_zeros(())
    has = torch.ones(b.numel(), dtype=torch.bool, device=t.device)
    pairs = random_pairs(has, rows.text_ids[b], p_negative=0.5, generator=generator)
    logits = model.itm_logits(t[pairs.text_index], v[pairs.image_index])
    return itc, itm_loss(logits, pairs.labels)


@torch.no_grad()
def _holdout_itc(model: Alignment, rows: _Rows, batch_size: int) -> float:
    """Mean ITC loss over fixed consecutive batches of the held-out rows (a batch of one is skipped)."""
    model.eval()
    n, losses, weights = rows.text.shape[0], [], []
    for start in range(0, n, batch_size):
        b = torch.arange(start, min(n, start + batch_size), device=rows.text.device)
        if b.numel() < 2:
            continue
        t, v = model.project(rows.text[b], rows.image[b])
        losses.append(float(itc_loss(t, v, model.log_scale, text_ids=rows.text_ids[b], image_ids=rows.image_ids[b])))
        weights.append(b.numel())
    return float(np.average(losses, weights=weights)) if losses else math.inf


def _train_epoch(model: Alignment, rows: _Rows, opt: torch.optim.Optimizer, batch_size: int,
                 generator: torch.Generator) -> float:
    model.train()
    n = rows.text.shape[0]
    order = torch.randperm(n, generator=generator).to(rows.text.device)
    losses = []
    for start in range(0, n, batch_size):
        b = order[start:start + batch_size]
        if b.numel() < 2:
            continue
        itc, itm = _batch_loss(model, rows, b, generator)
        loss = itc + itm
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses)) if losses else math.nan


def fit_alignment(text: np.ndarray, image: np.ndarray, *, has_image: np.ndarray, text_ids: np.ndarray,
                  image_ids: np.ndarray, settings: AlignSettings,
                  device: torch.device | str = "cpu") -> tuple[Alignment, AlignReport]:
    """Train an :class:`Alignment` on pooled features ``text`` [N, Dt] / ``image`` [N, Dv] of unlabelled posts
    (rows without an image are left out), early-stopped on the held-out ITC loss. Same inputs and seed → same
    projections. Returns the alignment (eval mode, the best epoch's weights) and what training did."""
    usable = np.flatnonzero(np.asarray(has_image, dtype=bool))
    if usable.size < 4:
        raise ValueError(f"relate.align: itc needs at least 4 posts with an image to align, got {usable.size}")
    torch.manual_seed(settings.seed)
    device = torch.device(device)
    model = Alignment(text.shape[1], image.shape[1], settings)
    train_idx, hold_idx = holdout_split(usable.size, settings.holdout, settings.seed)
    train_rows, hold_rows = usable[train_idx], usable[hold_idx]
    model.fit_standardisation(text[train_rows], image[train_rows])
    model.to(device)
    train = _rows(text, image, text_ids, image_ids, train_rows, device)
    hold = _rows(text, image, text_ids, image_ids, hold_rows, device)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    report = AlignReport(n_train=int(train_rows.size), n_holdout=int(hold_rows.size))
    best_state = copy.deepcopy(model.state_dict())
    for epoch in range(settings.epochs):
        report.train_loss.append(_train_epoch(model, train, opt, settings.batch_size, generator))
        held = _holdout_itc(model, hold, settings.batch_size)
        report.holdout_itc.append(held)
        report.epochs_run = epoch + 1
        if held < report.best_holdout_itc:
            report.best_holdout_itc, report.best_epoch = held, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - report.best_epoch >= settings.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    log.info("relate.align itc: kept epoch %d of %d (held-out ITC %.4f, %d train / %d held-out posts)",
             report.best_epoch, report.epochs_run, report.best_holdout_itc, report.n_train, report.n_holdout)
    return model, report
