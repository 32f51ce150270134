"""Explicit train and evaluation loops with early stopping on dev weighted F1.

The loops know nothing of a model's family or of which auxiliary losses are on: they call the TrainStep
and log whatever components the objective reports (ce, itc, itm, temperature).

They are also where a run can stop safely. A checkpoint callback runs after every epoch and, with
``checkpoint_every=N``, after every N batches within one; the first SIGINT (Ctrl-C) or SIGTERM only asks the loop
to stop after the batch in progress, with a checkpoint, and then raises :class:`TrainingInterrupted`.
"""
from __future__ import annotations

import logging
import math
import signal
import sys
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from lightning_fabric import Fabric
from torch import nn

from mmpost.config import TrainConfig
from mmpost.engine.setup import DataParallel, data_parallel
from mmpost.progress import bar as progress_bar

log = logging.getLogger(__name__)
EVAL_SEED = 1234   # ITM negatives at evaluation time are the same every time


@dataclass
class FitState:
    """Where training stands: after an epoch, or some batches into the next one. With the weights, optimizer and
    RNG states it is enough to resume as if nothing had happened."""
    epoch: int = 0                 # last finished epoch
    best_epoch: int = 0
    best_score: float = -math.inf
    waited: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    batches_done: int = 0          # batches of epoch ``epoch + 1`` already trained (a checkpoint within an epoch)
    epoch_seen: int = 0            # posts in those batches
    epoch_sums: dict[str, float] = field(default_factory=dict)   # their summed losses: the epoch's means stay exact

    @property
    def within_epoch(self) -> bool:
        return self.batches_done > 0


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT / SIGTERM after a finished batch; ``state`` is what the last checkpoint holds."""

    def __init__(self, message: str, state: FitState) -> None:
        super().__init__(message)
        self.state = state


class StopRequest:
    """While active (main thread only), the first SIGINT or SIGTERM sets ``signal_name`` instead of interrupting;
    the loop stops at its next safe point. The old handlers come back at once, so a second signal acts as usual."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame) -> None:
        self.signal_name = signal.Signals(signum).name
        self._restore()
        sys.stderr.write(f"\n{self.signal_name}: stopping after the batch in progress and writing a checkpoint "
                         "(send it again to stop at once)\n")

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self._restore()

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


def freeze_modes(step: nn.Module, frozen: list[nn.Module]) -> None:
    """Frozen towers stay in eval mode while the rest trains (BatchNorm statistics untouched)."""
    for m in frozen:
        m.eval()


def fuse_optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    """Let Adam/AdamW update every CPU parameter in one fused kernel rather than a Python loop of small ops per
    tensor (about half of each step of a head trained on cached features: ``benchmarks/heads.py``). Only where the
    optimizer was left to choose (``fused=None``, no ``foreach``/``differentiable``)."""
    opt = getattr(optimizer, "optimizer", optimizer)        # under Fabric's wrapper
    if not isinstance(opt, torch.optim.Adam | torch.optim.AdamW):
        return
    params = [p for group in opt.param_groups for p in group["params"]]
    if not params or any(p.device.type != "cpu" or not p.is_floating_point() for p in params):
        return
    for group in opt.param_groups:
        if group.get("fused") is None and not group.get("foreach") and not group.get("differentiable"):
            group["fused"] = True


def optimise(fabric: Fabric, step: nn.Module, optimizer: torch.optim.Optimizer, batch, generator: torch.Generator,
             grad_clip: float, step_kwargs: dict):
    """One optimiser step on one batch; the losses it reported."""
    optimizer.zero_grad(set_to_none=True)
    _, losses = step(batch, generator, **step_kwargs)
    if not torch.isfinite(losses.total):
        raise FloatingPointError(f"loss became {float(losses.total)} ({losses.as_floats()}); "
                                 "lower the learning rate or check the data")
    fabric.backward(losses.total)
    if grad_clip:
        fabric.clip_gradients(step, optimizer, max_norm=grad_clip, error_if_nonfinite=False)
    optimizer.step()
    return losses


def train_epoch(fabric: Fabric, step: nn.Module, optimizer: torch.optim.Optimizer, loader, *,
                frozen: list[nn.Module], grad_clip: float, generator: torch.Generator,
                desc: str, progress: bool, state: FitState | None = None, rng_state: torch.Tensor | None = None,
                on_step: Callable[[FitState], None] | None = None, checkpoint_every: int = 0,
                stop: StopRequest | None = None, parallel: DataParallel | None = None) -> dict[str, float]:
    """One pass over ``loader``. With ``state.batches_done > 0`` the pass goes on from a checkpoint written within
    the epoch: the loader must already skip those batches (see ``engine.resume.ResumableBatchSampler``), the loss
    sums start from the saved ones, and ``rng_state`` — the global torch RNG at that checkpoint — is restored once
    the loader's iterator exists (making it draws a seed from that RNG, as it did before the checkpoint)."""
    step.train()
    freeze_modes(step, frozen)
    fuse_optimizer_step(optimizer)
    start = state.batches_done if state is not None else 0
    sums: dict[str, float] = defaultdict(float, state.epoch_sums if start else {})
    n = state.epoch_seen if start else 0
    unreadable = 0
    batches = iter(loader)
    if rng_state is not None:
        torch.set_rng_state(rng_state)
    try:
        total = len(loader)
    except TypeError:
        total = None
    done = start
    bar = progress_bar(batches, enabled=progress, desc=desc, unit="batch", total=total, initial=start)
    for batch in bar:
        unreadable += getattr(batch, "unreadable_images", 0)
        batch = batch.to(fabric.device)
        losses = optimise(fabric, step, optimizer, batch, generator, grad_clip,
                          parallel.step_kwargs(loader.dataset) if parallel else {})
        k, values = len(batch), losses.as_floats()
        if parallel is not None:        # each rank holds its share: log the global batch's values
            values, k = parallel.global_values(values, k)
        for name, value in values.items():
            sums[name] += value * k
        n += k
        done += 1
        bar.set_postfix(loss=f"{sums['loss'] / max(n, 1):.4f}")
        if state is None or done == total:      # the epoch's end: fit checkpoints after the dev evaluation
            continue
        stopping = stop is not None and stop.requested
        if parallel is not None:        # every rank stops after the same batch, or one would wait for the others
            stopping = parallel.any_rank(stopping)
        if on_step is not None and (stopping or (checkpoint_every > 0 and done % checkpoint_every == 0)):
            state.batches_done, state.epoch_seen, state.epoch_sums = done, n, dict(sums)
            if fabric.is_global_zero:   # the ranks hold the same weights and state: rank 0 writes them
                on_step(state)
        if stopping:
            raise TrainingInterrupted(f"stopped by {stop.signal_name} after batch {done} of epoch "  # type: ignore
                                      f"{state.epoch + 1}", state)
    row = {f"train_{k}": v / max(n, 1) for k, v in sums.items()}
    if unreadable:
        row["train_unreadable_images"] = float(unreadable)
        log.warning("%d images could not be read during this epoch and were masked", unreadable)
    return row


@dataclass
class Predictions:
    """Per task, in loader order: probabilities [N, C] (softmax, or independent sigmoids for a multi-label task)
    and gold labels ([N] class ids, or [N, C] 0/1 for a multi-label task; -1 where a post has none), and the logits
    the probabilities came from (what calibration rescales)."""
    probs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    losses: dict[str, float] = field(default_factory=dict)   # mean losses over the labelled batches (with_loss)
    logits: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        return list(self.probs)


@torch.no_grad()
def predict(fabric: Fabric, step: nn.Module, loader, *, with_loss: bool = False, multi_label: tuple[str, ...] = (),
            progress: bool = False, desc: str = "predict") -> Predictions:
    """Every task's probabilities and labels over ``loader``; mean losses when ``with_loss``. ``multi_label``: the
    tasks whose scores are independent sigmoids."""
    step.eval()
    generator = torch.Generator().manual_seed(EVAL_SEED)
    probs: dict[str, list[np.ndarray]] = defaultdict(list)
    labels: dict[str, list[np.ndarray]] = defaultdict(list)
    raw: dict[str, list[np.ndarray]] = defaultdict(list)
    sums: dict[str, float] = defaultdict(float)
    n = 0
    for batch in progress_bar(loader, enabled=progress, desc=desc, unit="batch"):
        batch = batch.to(fabric.device)
        labelled = any(bool((y >= 0).any()) for y in batch.task_labels.values()) if batch.task_labels else \
            bool((batch.labels >= 0).any())
        output, losses = step(batch, generator, with_loss=with_loss and labelled)   # losses mask missing labels
        for task, logits in output.task_logits.items():
            scores = logits.float().sigmoid() if task in multi_label else logits.float().softmax(-1)
            probs[task].append(scores.cpu().numpy())
            raw[task].append(logits.float().cpu().numpy())
            labels[task].append(batch.task_labels[task].cpu().numpy())
        if losses is not None:
            for name, value in losses.as_floats().items():
                sums[name] += value * len(batch)
            n += len(batch)
    return Predictions(probs={t: np.concatenate(v) for t, v in probs.items()},
                       labels={t: np.concatenate(v) for t, v in labels.items()},
                       losses={k: v / n for k, v in sums.items()} if n else {},
                       logits={t: np.concatenate(v) for t, v in raw.items()})


def fit(fabric: Fabric, step: nn.Module, optimizer: torch.optim.Optimizer, train_loader, dev_loader, *,
        cfg: TrainConfig, score: Callable[[Predictions], float], frozen: list[nn.Module],
        generator: torch.Generator, state: FitState | None = None,
        on_epoch_end: Callable[[FitState, bool], None] | None = None, progress: bool = True,
        on_step: Callable[[FitState], None] | None = None, checkpoint_every: int = 0,
        rng_state: torch.Tensor | None = None, multi_label: tuple[str, ...] = ()) -> FitState:
    """Train from ``state.epoch + 1`` up to ``cfg.epochs``; stop after ``cfg.patience`` epochs without a better
    dev score (``score(dev predictions)``: the mean dev weighted F1 over tasks). ``on_epoch_end(state, improved)``
    runs after every epoch (the app saves checkpoints there);
    ``on_step(state)`` every ``checkpoint_every`` batches within one, and before a stop on SIGINT / SIGTERM, which
    then raises :class:`TrainingInterrupted`. ``rng_state``: see :func:`train_epoch` (resuming within an epoch)."""
    state = state or FitState()
    parallel = data_parallel(fabric)    # several processes: each trains on its slice of every global batch
    if parallel is not None:
        train_loader = parallel.shard(train_loader)
    with StopRequest() as stop:
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            if state.stopped_early:
                break
            row: dict[str, float] = {"epoch": epoch}
            row.update(train_epoch(fabric, step, optimizer, train_loader, frozen=frozen, grad_clip=cfg.grad_clip,
                                   generator=generator, desc=f"epoch {epoch}/{cfg.epochs}", progress=progress,
                                   state=state, rng_state=rng_state, on_step=on_step, checkpoint_every=checkpoint_every,
                                   stop=stop, parallel=parallel))
            state.batches_done, state.epoch_seen, state.epoch_sums = 0, 0, {}
            dev = predict(fabric, step, dev_loader, with_loss=True, multi_label=multi_label)
            dev_score = score(dev)
            row.update({f"dev_{k}": v for k, v in dev.losses.items()})
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
            if on_epoch_end is not None and fabric.is_global_zero:
                on_epoch_end(state, improved)
            rng_state = None
            if parallel.any_rank(stop.requested) if parallel is not None else stop.requested:
                raise TrainingInterrupted(f"stopped by {stop.signal_name} after epoch {epoch}", state)
    if parallel is not None:    # the others read what rank 0 wrote (the best weights) only once it is written
        fabric.barrier()
    return state
