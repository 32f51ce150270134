"""Explicit train and evaluation loops with early stopping on dev weighted F1.

The loops know nothing of a model's family or of which auxiliary losses are on: they call the TrainStep
and log whatever components the objective reports (ce, itc, itm, temperature).
"""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from lightning_fabric import Fabric
from torch import nn

from mmpost.config import TrainConfig
from mmpost.progress import bar as progress_bar

log = logging.getLogger(__name__)
EVAL_SEED = 1234   # ITM negatives at evaluation time are the same every time


@dataclass
class FitState:
    """Where training stands after an epoch: enough, with the weights, optimizer and RNG states, to resume."""
    epoch: int = 0
    best_epoch: int = 0
    best_score: float = -math.inf
    waited: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)


def freeze_modes(step: nn.Module, frozen: list[nn.Module]) -> None:
    """Frozen towers stay in eval mode while the rest trains (BatchNorm statistics untouched)."""
    for m in frozen:
        m.eval()


def train_epoch(fabric: Fabric, step: nn.Module, optimizer: torch.optim.Optimizer, loader, *,
                frozen: list[nn.Module], grad_clip: float, generator: torch.Generator,
                desc: str, progress: bool) -> dict[str, float]:
    step.train()
    freeze_modes(step, frozen)
    sums: dict[str, float] = defaultdict(float)
    n = 0
    bar = progress_bar(loader, enabled=progress, desc=desc, unit="batch")
    for batch in bar:
        batch = batch.to(fabric.device)
        optimizer.zero_grad(set_to_none=True)
        _, losses = step(batch, generator)
        if not torch.isfinite(losses.total):
            raise FloatingPointError(f"loss became {float(losses.total)} ({losses.as_floats()}); "
                                     "lower the learning rate or check the data")
        fabric.backward(losses.total)
        if grad_clip:
            fabric.clip_gradients(step, optimizer, max_norm=grad_clip, error_if_nonfinite=False)
        optimizer.step()
        k = len(batch)
        for name, value in losses.as_floats().items():
            sums[name] += value * k
        n += k
        bar.set_postfix(loss=f"{sums['loss'] / max(n, 1):.4f}")
    return {f"train_{k}": v / max(n, 1) for k, v in sums.items()}


@torch.no_grad()
def predict(fabric: Fabric, step: nn.Module, loader, *, with_loss: bool = False,
            progress: bool = False, desc: str = "predict") -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Class probabilities [N, C] and label ids [N] in loader order; mean losses when ``with_loss``."""
    step.eval()
    generator = torch.Generator().manual_seed(EVAL_SEED)
    probs, labels = [], []
    sums: dict[str, float] = defaultdict(float)
    n = 0
    for batch in progress_bar(loader, enabled=progress, desc=desc, unit="batch"):
        batch = batch.to(fabric.device)
        output, losses = step(batch, generator, with_loss=with_loss and bool((batch.labels >= 0).all()))
        probs.append(output.logits.float().softmax(-1).cpu().numpy())
        labels.append(batch.labels.cpu().numpy())
        if losses is not None:
            for name, value in losses.as_floats().items():
                sums[name] += value * len(batch)
            n += len(batch)
    losses_mean = {k: v / n for k, v in sums.items()} if n else {}
    return np.concatenate(probs), np.concatenate(labels), losses_mean


def fit(fabric: Fabric, step: nn.Module, optimizer: torch.optim.Optimizer, train_loader, dev_loader, *,
        cfg: TrainConfig, score: Callable[[np.ndarray, np.ndarray], float], frozen: list[nn.Module],
        generator: torch.Generator, state: FitState | None = None,
        on_epoch_end: Callable[[FitState, bool], None] | None = None, progress: bool = True) -> FitState:
    """Train from ``state.epoch + 1`` up to ``cfg.epochs``; stop after ``cfg.patience`` epochs without a better
    dev score. ``on_epoch_end(state, improved)`` runs after every epoch (the app saves checkpoints there)."""
    state = state or FitState()
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        if state.stopped_early:
            break
        row = {"epoch": epoch}
        row.update(train_epoch(fabric, step, optimizer, train_loader, frozen=frozen, grad_clip=cfg.grad_clip,
                               generator=generator, desc=f"epoch {epoch}/{cfg.epochs}", progress=progress))
        probs, labels, dev_losses = predict(fabric, step, dev_loader, with_loss=True)
        dev_score = score(labels, probs.argmax(1))
        row.update({f"dev_{k}": v for k, v in dev_losses.items()})
        row["dev_weighted_f1"] = dev_score
        state.history.append(row)
        state.epoch = epoch
        improved = dev_score > state.best_score + 1e-6
        if improved:
            state.best_score, state.best_epoch, state.waited = dev_score, epoch, 0
        else:
            state.waited += 1
            if state.waited >= cfg.patience:
                state.stopped_early = True
                log.info("early stop after epoch %d: dev weighted F1 has not improved for %d epochs",
                         epoch, cfg.patience)
        if on_epoch_end is not None:
            on_epoch_end(state, improved)
    return state
