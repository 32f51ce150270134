"""Training state for ``--resume``, in one safetensors file: weights, optimizer moments, RNG states, and the
loop's position as JSON metadata. Written atomically after every epoch; nothing is unpickled on load."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from mmpost.engine.checkpoint import load_weights, save_weights
from mmpost.engine.loop import FitState

LAST = "checkpoints/last.safetensors"
BEST = "checkpoints/best.safetensors"


def save_training_state(path: str | Path, *, weights: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                        generators: dict[str, torch.Generator], state: FitState) -> None:
    tensors = {f"weights.{k}": v for k, v in weights.items()}
    opt = optimizer.state_dict()
    for idx, slots in opt["state"].items():
        for name, value in slots.items():
            tensors[f"optimizer.{idx}.{name}"] = torch.as_tensor(value)
    for name, g in generators.items():
        tensors[f"rng.{name}"] = g.get_state()
    tensors["rng.torch_global"] = torch.get_rng_state()
    meta = {"fit_state": json.dumps(asdict(state), default=float),
            "param_groups": json.dumps(opt["param_groups"])}
    save_weights(path, tensors, metadata=meta)


def load_training_state(path: str | Path, *, optimizer: torch.optim.Optimizer,
                        generators: dict[str, torch.Generator]) -> tuple[dict[str, torch.Tensor], FitState]:
    """Restores the optimizer and the RNGs in place; returns the weights and the loop's state."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    tensors = load_weights(path)
    weights = {k[len("weights."):]: v for k, v in tensors.items() if k.startswith("weights.")}
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optimizer."):
            _, idx, name = k.split(".", 2)
            slots.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": slots, "param_groups": json.loads(meta["param_groups"])})
    for name, g in generators.items():
        g.set_state(tensors[f"rng.{name}"])
    torch.set_rng_state(tensors["rng.torch_global"])
    fit = json.loads(meta["fit_state"])
    return weights, FitState(**fit)
