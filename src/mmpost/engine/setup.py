"""Fabric set-up: the only place that knows about devices, precision, strategy and the other processes.

Data-parallel training (``fabric.devices=2 fabric.strategy=ddp``, gloo on CPU, NCCL on GPUs) keeps the global
batch of a single process: every rank reads the same seeded sequence of global batches and keeps one contiguous
slice of each (:class:`RankSlices`), so the gathered batch is, row for row, what one process would train on.
The objectives reach the other ranks through :class:`ProcessGroupCollective`; :class:`DataParallel` bundles what
the loop needs (the sharded loader, partner posts for ITM, the global values of the logged losses).
"""
from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from lightning_fabric import Fabric
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from mmpost.config import FabricConfig

log = logging.getLogger(__name__)
_LAUNCHED: dict[tuple, Fabric] = {}


def is_multiprocess(cfg: FabricConfig) -> bool:
    return str(cfg.devices) != "1" or cfg.num_nodes > 1


def make_fabric(cfg: FabricConfig, loggers=None) -> Fabric:
    """A launched Fabric. With several processes it is made once per process: the first call launches the other
    ranks (or joins the group torchrun / SLURM started), later calls get the same object back."""
    key = (cfg.accelerator, str(cfg.devices), cfg.num_nodes, cfg.strategy, cfg.precision)
    if key in _LAUNCHED and loggers is None:
        return _LAUNCHED[key]
    strategy: Any = cfg.strategy
    if cfg.strategy == "ddp":
        # a step may leave parameters unused (the ITM head when ITM is off): DDP must not wait for their gradients
        from lightning_fabric.strategies import DDPStrategy
        strategy = DDPStrategy(find_unused_parameters=True)
    fabric = Fabric(accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=strategy,
                    precision=cfg.precision, loggers=loggers)  # type: ignore[arg-type]
    if is_multiprocess(cfg) or cfg.strategy != "auto":
        fabric.launch()
    if is_multiprocess(cfg):
        _LAUNCHED[key] = fabric
    return fabric


def rank_zero_value(cfg: FabricConfig, value: Any) -> Any:
    """``value`` as rank 0 has it, on every process (one process: ``value``). Launches the processes if needed:
    call it before anything that must agree across ranks, such as a run folder named after the start time."""
    if not is_multiprocess(cfg):
        return value
    return make_fabric(cfg).broadcast(value, src=0)


def is_rank_zero() -> bool:
    """True on the process that reports (rank 0), and on a single process."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class ProcessGroupCollective:
    """The objectives' view of the other processes (see ``mmpost.objectives.itc.Collective``).

    It runs on a process group of its own, so its collectives — some run inside autograd's backward pass — can
    never interleave with DDP's gradient all-reduces on the default group."""

    def __init__(self, backend: str | None = None) -> None:
        dist = torch.distributed
        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()
        self.group = dist.new_group(backend=backend or dist.get_backend())

    def _sizes(self, n: int, device: torch.device) -> list[int]:
        mine = torch.tensor([n], dtype=torch.long, device=device)
        sizes = [torch.zeros_like(mine) for _ in range(self.world_size)]
        torch.distributed.all_gather(sizes, mine, group=self.group)
        return [int(s) for s in sizes]

    def gather(self, x: Tensor) -> tuple[Tensor, int]:
        """Rows of every rank, in rank order (each padded to the longest for the collective, then cut back)."""
        sizes = self._sizes(x.shape[0], x.device)
        is_bool = x.dtype == torch.bool
        y = x.to(torch.uint8) if is_bool else x
        longest = max(sizes)
        if y.shape[0] < longest:
            y = torch.cat([y, y.new_zeros((longest - y.shape[0], *y.shape[1:]))])
        if y.requires_grad:
            from torch.distributed.nn.functional import all_gather as all_gather_with_grad
            with warnings.catch_warnings():     # deprecated in favour of a private API; Fabric uses it too
                warnings.simplefilter("ignore", FutureWarning)
                parts = list(all_gather_with_grad(y.contiguous(), group=self.group))
        else:
            parts = [torch.empty_like(y) for _ in range(self.world_size)]
            torch.distributed.all_gather(parts, y.contiguous(), group=self.group)
        out = torch.cat([p[:n] for p, n in zip(parts, sizes)])
        return (out.bool() if is_bool else out), sum(sizes[: self.rank])

    def total(self, x: Tensor) -> Tensor:
        y = x.detach().clone()
        torch.distributed.all_reduce(y, group=self.group)
        return y


class RankSlices(Sampler[list[int]]):
    """This rank's contiguous slice of each global batch that ``batches`` yields. Ranks hold the same seeded
    sampler, so they cut the same global batch; slice sizes differ by at most one. A final global batch with
    fewer posts than ranks is skipped (some rank would have none) and logged."""

    def __init__(self, batches: Any, rank: int, world_size: int) -> None:
        self.batches, self.rank, self.world_size = batches, rank, world_size

    def bounds(self, n: int) -> tuple[int, int]:
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def __iter__(self) -> Iterator[list[int]]:
        for indices in self.batches:
            indices = list(indices)
            if len(indices) < self.world_size:
                log.info("skipping a final batch of %d post(s): fewer than the %d processes", len(indices),
                         self.world_size)
                continue
            start, stop = self.bounds(len(indices))
            yield indices[start:stop]

    def __len__(self) -> int:
        last = len(self.batches.sampler) % self.batches.batch_size
        tiny = not getattr(self.batches, "drop_last", False) and 0 < last < self.world_size
        return len(self.batches) - int(tiny)


class DataParallel:
    """What the training loop needs when several processes train one model."""

    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric
        self.collective = ProcessGroupCollective()

    def shard(self, loader: DataLoader) -> DataLoader:
        """The same loader, yielding this rank's slice of every global batch (the wrapped batch sampler, and so
        its generator and resumable state, is the original one)."""
        slices = RankSlices(loader.batch_sampler, self.fabric.global_rank, self.fabric.world_size)
        return DataLoader(loader.dataset, batch_sampler=slices, collate_fn=loader.collate_fn,
                          num_workers=loader.num_workers, pin_memory=loader.pin_memory)

    def step_kwargs(self, dataset: Any) -> dict[str, Any]:
        """Extra arguments for the TrainStep: the collective, and how to read any post of the global batch by its
        dataset row (ITM pairs a rank's images with partner texts that another rank read)."""
        device = self.fabric.device

        def rows(index: Tensor):
            return dataset.__getitems__([int(i) for i in index.tolist()]).to(device)

        return {"collective": self.collective, "rows": rows}

    def global_values(self, values: dict[str, float], n: int) -> tuple[dict[str, float], int]:
        """Per-step logged values of the global batch: each rank reports its scaled share, so their mean is the
        global value; ``n`` becomes the global batch size."""
        keys = list(values)
        t = torch.tensor([float(n)] + [values[k] for k in keys], dtype=torch.float64, device=self.fabric.device)
        t = self.fabric.all_reduce(t, reduce_op="sum")
        w = self.fabric.world_size
        return {k: float(t[i + 1]) / w for i, k in enumerate(keys)}, int(t[0])


    def any_rank(self, flag: bool) -> bool:
        """True on every rank when it is true on one (a stop request that only some ranks saw)."""
        t = torch.tensor([float(flag)], device=self.fabric.device)
        return bool(self.fabric.all_reduce(t, reduce_op="sum").item() > 0)


def data_parallel(fabric: Fabric) -> DataParallel | None:
    return DataParallel(fabric) if fabric.world_size > 1 else None


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def torch_threads(n: int | None):
    """Run a block with ``n`` intra-op threads (None: leave as is). ``train.threads: 1`` helps a head on cached
    features where other jobs share the cores: its stream of small ops stalls at every OpenMP barrier then."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
