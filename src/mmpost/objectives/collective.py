"""How an objective reaches the other processes of a data-parallel run, without importing the engine."""
from __future__ import annotations

from typing import Protocol

from torch import Tensor


class Collective(Protocol):
    """The engine supplies one (one process: None), so losses never import the engine. Rows are concatenated in
    rank order: the gathered batch is the global batch in the order a single process would see it."""

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
