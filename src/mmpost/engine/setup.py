"""Fabric set-up: the only place that knows about devices, precision and strategy."""
from __future__ import annotations

import os
from contextlib import contextmanager

from lightning_fabric import Fabric

from mmpost.config import FabricConfig


def make_fabric(cfg: FabricConfig, loggers=None) -> Fabric:
    fabric = Fabric(accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy,
                    precision=cfg.precision, loggers=loggers)  # type: ignore[arg-type]
    if cfg.devices not in (1, "1") or cfg.strategy != "auto":
        fabric.launch()
    return fabric


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def torch_threads(n: int | None):
    """Run a block with ``n`` intra-op threads (None: leave as is). Training a head on cached features is
    a stream of tiny ops: one thread avoids OpenMP barrier stalls, which are severe when cores are shared."""
    import torch
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
