"""Fabric set-up: the only place that knows about devices, precision and strategy."""
from __future__ import annotations

import os

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
