"""Length-bucketed training batches (``text_encoder.length_buckets: true``).

A text tower that runs during training pads each batch to its longest text, so a batch that mixes a 10-token and a
120-token post pays for 120 tokens twice. Bucketing takes the epoch's shuffled order, cuts it into pools of
``pool`` batches' worth of posts, sorts each pool by token length, cuts it into batches, and shuffles the order of the
batches: each batch holds posts of similar length, every post is seen once per epoch, and which posts share a batch
still changes from epoch to epoch (ties and pool boundaries fall differently). Everything is drawn from the training
sampler's seeded generator, so the same seed gives the same batches, and a checkpoint within an epoch draws them
again (``mmpost.engine.resume``).

Batch sizes are those of plain batching (all full but the last one): a pool is a whole number of batches, so only the
last pool can end in a short batch.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

POOL_BATCHES = 50     # batches' worth of posts sorted together


def bucketed_batches(order: Sequence[int], lengths: Sequence[int], batch_size: int, generator: torch.Generator,
                     pool: int = POOL_BATCHES) -> list[list[int]]:
    """The epoch's batches from its shuffled ``order`` (dataset rows); ``lengths[row]``: the row's token count."""
    if batch_size < 1 or pool < 1:
        raise ValueError(f"batch_size and pool must be 1 or more, got {batch_size} and {pool}")
    order = [int(i) for i in order]
    lengths = np.asarray(lengths)
    batches: list[list[int]] = []
    step = batch_size * pool
    for start in range(0, len(order), step):
        chunk = order[start:start + step]
        ranked = [chunk[k] for k in np.argsort(lengths[chunk], kind="stable")]   # ties keep the shuffled order
        batches += [ranked[s:s + batch_size] for s in range(0, len(ranked), batch_size)]
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[k] for k in shuffle]


def padding_share(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """The share of padded token slots over ``batches`` (each padded to its longest text)."""
    lengths = np.asarray(lengths)
    slots = sum(len(b) * int(lengths[list(b)].max()) for b in batches if len(b))
    real = sum(int(lengths[list(b)].sum()) for b in batches)
    return 1.0 - real / slots if slots else 0.0
