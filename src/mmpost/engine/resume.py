"""Training state for ``--resume``, in one safetensors file: weights, optimizer moments, RNG states, and the
loop's position as JSON metadata. Written atomically after every epoch and, on request, every N batches within
one; nothing is unpickled on load.

A checkpoint within an epoch resumes exactly because the epoch's batch order can be drawn again: the shuffling
generator's state *from the start of that epoch* is saved (see :class:`ResumableBatchSampler`), the resumed pass
re-draws the same order and skips the batches already trained.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import BatchSampler

from mmpost.data.length_buckets import POOL_BATCHES, bucketed_batches
from mmpost.engine.checkpoint import CheckpointError, load_weights, save_weights
from mmpost.engine.loop import FitState

LAST = "checkpoints/last.safetensors"
BEST = "checkpoints/best.safetensors"
FORMAT = "mmpost-training-state"


class ResumableBatchSampler(BatchSampler):
    """A BatchSampler that remembers where each pass began and can begin the next pass some batches in.

    ``epoch_start_state``: the shuffling sampler's generator state just before this pass drew its order — what a
    checkpoint within the epoch saves. ``skip_next(k)``: the next pass leaves out its first ``k`` batches (only
    indices are skipped; no data is loaded for them).
    """

    def __init__(self, sampler, batch_size: int, drop_last: bool = False) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.epoch_start_state: torch.Tensor | None = None
        self._skip = 0

    def skip_next(self, batches: int) -> None:
        self._skip = int(batches)

    def __iter__(self) -> Iterator[list[int]]:
        generator = getattr(self.sampler, "generator", None)
        self.epoch_start_state = generator.get_state() if generator is not None else None
        skip, self._skip = self._skip, 0
        for i, batch in enumerate(self._batches()):
            if i >= skip:
                yield batch

    def _batches(self) -> Iterator[list[int]]:
        return super().__iter__()


class LengthBucketedBatchSampler(ResumableBatchSampler):
    """Batches of posts of similar token length (``mmpost.data.length_buckets``), drawn from the shuffling sampler's
    generator: the same seed gives the same batches, and a resumed epoch draws them again."""

    def __init__(self, sampler, batch_size: int, lengths, pool: int | None = None) -> None:
        super().__init__(sampler, batch_size, drop_last=False)
        self.lengths = list(lengths)
        self.pool = pool or POOL_BATCHES
        if len(self.lengths) != len(sampler):
            raise ValueError(f"{len(self.lengths)} lengths for {len(sampler)} posts")

    def _batches(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        generator = getattr(self.sampler, "generator", None)
        yield from bucketed_batches(order, self.lengths, self.batch_size,
                                    generator if generator is not None else torch.Generator(), self.pool)


@dataclass
class Restored:
    """What a training checkpoint gives back besides the optimizer and generators it restored in place."""
    weights: dict[str, torch.Tensor]
    state: FitState
    rng_after_iterator: torch.Tensor | None   # global RNG to set once the resumed epoch's loader iterator exists


def save_training_state(path: str | Path, *, weights: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                        rng: dict[str, torch.Tensor], state: FitState) -> None:
    """``rng``: named generator states (for a checkpoint within an epoch, the sampler's state from the epoch's
    start). The global torch RNG (and CUDA's, when in use) is saved as it is now."""
    tensors = {f"weights.{k}": v for k, v in weights.items()}
    opt = optimizer.state_dict()
    for idx, slots in opt["state"].items():
        for name, value in slots.items():
            tensors[f"optimizer.{idx}.{name}"] = torch.as_tensor(value)
    for name, value in rng.items():
        tensors[f"rng.{name}"] = value
    tensors["rng.torch_global"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, value in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = value
    meta = {"format": FORMAT, "fit_state": json.dumps(asdict(state), default=float),
            "param_groups": json.dumps(opt["param_groups"])}
    save_weights(path, tensors, metadata=meta)


def read_fit_state(path: str | Path) -> FitState:
    """The loop's position stored in a training checkpoint (metadata only; no tensor is read)."""
    return FitState(**json.loads(_metadata(path)["fit_state"]))


def _metadata(path: str | Path) -> dict[str, str]:
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e}); mmpost reads checkpoints only "
                              "from safetensors and never unpickles a file") from None
    if "fit_state" not in meta or "param_groups" not in meta:
        raise CheckpointError(f"{path}: a safetensors file, but not an mmpost training checkpoint "
                              "(no fit_state metadata)")
    return meta


def load_training_state(path: str | Path, *, optimizer: torch.optim.Optimizer,
                        generators: dict[str, torch.Generator]) -> Restored:
    """Restores the optimizer and the named generators in place. The global RNG is restored now for a checkpoint
    at an epoch's end; for one within an epoch it is returned, to be set after the loader's iterator is made."""
    meta = _metadata(path)
    tensors = load_weights(path)
    weights = {k[len("weights."):]: v for k, v in tensors.items() if k.startswith("weights.")}
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optimizer."):
            _, idx, name = k.split(".", 2)
            slots.setdefault(int(idx), {})[name] = v
    try:
        optimizer.load_state_dict({"state": slots, "param_groups": json.loads(meta["param_groups"])})
        for name, g in generators.items():
            g.set_state(tensors[f"rng.{name}"])
        state = FitState(**json.loads(meta["fit_state"]))
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: the checkpoint does not fit this run ({type(e).__name__}: {e})") from None
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                       key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    if state.within_epoch:
        return Restored(weights, state, tensors["rng.torch_global"])
    torch.set_rng_state(tensors["rng.torch_global"])
    return Restored(weights, state, None)
