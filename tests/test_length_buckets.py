"""Length-bucketed training batches: every post once per epoch, batches of similar length, the same batches under the
same seed, and drawn again exactly when a run resumes within an epoch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import RandomSampler

from mmpost.apps.train import train
from mmpost.config import load_config
from mmpost.data.length_buckets import bucketed_batches, padding_share
from mmpost.engine.resume import LengthBucketedBatchSampler
from tests.conftest import tiny_overrides

LENGTHS = np.random.default_rng(0).integers(3, 120, size=203).tolist()


def batches(seed: int, pool: int = 2, batch_size: int = 16):
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(LENGTHS), generator=g).tolist()
    return bucketed_batches(order, LENGTHS, batch_size, g, pool)


def test_every_post_once_in_batches_of_the_plain_sizes_with_less_padding():
    out = batches(0)
    assert sorted(i for b in out for i in b) == list(range(len(LENGTHS)))
    sizes = sorted(len(b) for b in out)
    assert len(out) == -(-len(LENGTHS) // 16) and sizes.count(16) == len(out) - 1     # as plain batching
    plain = [list(range(s, min(s + 16, len(LENGTHS)))) for s in range(0, len(LENGTHS), 16)]
    assert padding_share(out, LENGTHS) < 0.8 * padding_share(plain, LENGTHS)
    assert padding_share(batches(0, pool=50), LENGTHS) < 0.2 * padding_share(plain, LENGTHS)


def test_one_pool_gives_plain_batch_counts():
    out = batches(0, pool=50)
    assert len(out) == -(-len(LENGTHS) // 16)
    spans = [max(LENGTHS[i] for i in b) - min(LENGTHS[i] for i in b) for b in out]
    assert max(spans) < 20


def test_deterministic_under_the_seed_and_different_across_seeds():
    assert batches(3) == batches(3)
    assert batches(3) != batches(4)


def test_batch_order_is_shuffled_not_sorted():
    out = batches(0, pool=50)
    longest = [max(LENGTHS[i] for i in b) for b in out]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)


def test_bad_sizes_are_errors():
    with pytest.raises(ValueError):
        bucketed_batches([0, 1], [1, 2], 0, torch.Generator())


def test_the_sampler_resumes_within_an_epoch_with_the_same_batches():
    sampler = RandomSampler(range(len(LENGTHS)), generator=torch.Generator().manual_seed(7))
    batches_ = LengthBucketedBatchSampler(sampler, 16, LENGTHS, pool=3)
    assert len(batches_) == len(list(batches_))
    epoch2 = list(batches_)
    start = batches_.epoch_start_state
    sampler.generator.set_state(start)          # what a checkpoint within epoch 2 restores
    batches_.skip_next(5)
    assert list(batches_) == epoch2[5:]


def test_lengths_must_match_the_posts():
    with pytest.raises(ValueError, match="lengths"):
        LengthBucketedBatchSampler(RandomSampler(range(4)), 2, [1, 2, 3])


def test_bucketed_training_is_seeded(tmp_path, toy_csv):
    over = tiny_overrides(tmp_path, toy_csv) + ["text_encoder.length_buckets=true", "train.epochs=2"]
    a = train(load_config(None, over + ["name=a"]))
    b = train(load_config(None, over + ["name=b"]))
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]


def test_cached_text_features_are_not_bucketed(tmp_path, toy_csv):
    from mmpost.apps.build import build_tower
    from mmpost.apps.prepare import prepare
    from mmpost.apps.training_setup import setup_training
    cfg = load_config(None, tiny_overrides(tmp_path, toy_csv) + ["text_encoder.trainable=false",
                                                                   "text_encoder.length_buckets=true"])
    data = prepare(cfg.data, cfg.tasks, progress=False)
    setup = setup_training(cfg, data, (build_tower(cfg.text_encoder), build_tower(cfg.image_encoder)))
    assert not isinstance(setup.batches, LengthBucketedBatchSampler)
    cfg.text_encoder.trainable = True
    setup = setup_training(cfg, data, (build_tower(cfg.text_encoder), build_tower(cfg.image_encoder)))
    assert isinstance(setup.batches, LengthBucketedBatchSampler)
