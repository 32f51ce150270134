"""The label-free aligned space (relate.align: itc) and the relation features built in it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmpost.relate.alignment import AlignSettings, fit_alignment, group_ids, holdout_split
from mmpost.relate.interaction import BlockScaler, feature_blocks, interaction_blocks
from mmpost.relate.space import RelationSpace


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny data: one torch thread (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def paired_features(n: int = 240, seed: int = 0, *, paired: bool = True):
    """Texts and images that share a latent topic (paired) or not: text = A z + noise, image = B z' + noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6))
    z_image = z if paired else rng.normal(size=(n, 6))
    text = z @ rng.normal(size=(6, 24)) + 0.3 * rng.normal(size=(n, 24))
    image = 5.0 * (z_image @ rng.normal(size=(6, 40))) + rng.normal(size=(n, 40))
    return text.astype(np.float32), image.astype(np.float32)


def fit(text, image, has_image=None, **kw):
    settings = AlignSettings(**{"dim": 8, "epochs": 40, "patience": 5, "batch_size": 32, "lr": 3e-3, **kw})
    n = text.shape[0]
    return fit_alignment(text, image, has_image=np.ones(n, bool) if has_image is None else has_image,
                         text_ids=np.arange(n), image_ids=np.arange(n), settings=settings)


def test_itc_alignment_learns_the_pairing_and_keeps_the_best_held_out_epoch():
    text, image = paired_features()
    model, report = fit(text, image)
    assert report.n_train + report.n_holdout == 240 and report.n_holdout == 48
    assert report.best_holdout_itc == min(report.holdout_itc)
    assert report.best_holdout_itc < report.holdout_itc[0] < np.log(32) + 1
    assert report.best_holdout_itc < 0.6 * np.log(32)                # far better than chance on held-out posts
    t, v = model.project(torch.from_numpy(text), torch.from_numpy(image))
    assert torch.allclose(t.norm(dim=1), torch.ones(240), atol=1e-5)
    own = (t * v).sum(1)
    other = (t * v.roll(1, dims=0)).sum(1)
    assert own.mean() > other.mean() + 0.3                          # a post's own pair is closer than another's


def test_alignment_stops_early_when_nothing_can_be_learned_and_is_deterministic():
    text, image = paired_features(paired=False)
    _, report = fit(text, image, patience=2, epochs=60)
    assert report.epochs_run < 60 and report.epochs_run == report.best_epoch + 3
    a, ra = fit(*paired_features(), seed=3)
    b, rb = fit(*paired_features(), seed=3)
    assert ra.holdout_itc == rb.holdout_itc
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_posts_without_an_image_do_not_train_the_alignment():
    text, image = paired_features(n=100)
    has = np.ones(100, bool)
    has[:30] = False
    image[:30] = 0
    _, report = fit(text, image, has_image=has)
    assert report.n_train + report.n_holdout == 70
    with pytest.raises(ValueError, match="relate.align"):
        fit(text[:3], image[:3])


def test_itm_head_scores_own_pairs_above_swapped_ones():
    text, image = paired_features(n=300)
    model, _ = fit(text, image, itm=True, epochs=60)
    t, v = model.project(torch.from_numpy(text), torch.from_numpy(image))
    with torch.no_grad():
        own = model.match_probability(t, v)
        swapped = model.match_probability(t, v.roll(7, dims=0))
    assert own.shape == (300,) and bool(((own >= 0) & (own <= 1)).all())
    assert own.mean() > swapped.mean() + 0.2
    plain, _ = fit(text, image, epochs=2)
    assert plain.match_probability(t, v) is None


def test_group_ids_and_holdout_split():
    assert group_ids(["a", "b", "a", ("x",), ("x",)]).tolist() == [0, 1, 0, 2, 2]
    train, hold = holdout_split(50, 0.2, seed=1)
    assert len(hold) == 10 and sorted(np.concatenate([train, hold]).tolist()) == list(range(50))
    assert holdout_split(50, 0.2, seed=1)[1].tolist() == hold.tolist()
    assert len(holdout_split(5, 0.01, seed=0)[1]) == 2                   # at least two held out


def test_interaction_blocks_are_cos_product_and_absolute_difference():
    t = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    v = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    has = torch.tensor([True, True, True, True, False])
    blocks = interaction_blocks(t, v, has)
    assert list(blocks) == ["cos", "prod", "diff"]
    assert torch.allclose(blocks["cos"][:4, 0], (t * v).sum(1)[:4])
    assert torch.allclose(blocks["prod"][:4], (t * v)[:4]) and torch.allclose(blocks["diff"][:4], (t - v).abs()[:4])
    assert all(float(b[4].abs().sum()) == 0 for b in blocks.values())       # no image: a zero block
    text, image = torch.randn(5, 3), torch.randn(5, 2)
    both = feature_blocks("both", text=text, image=image, t=t, v=v, has_image=has, match=None)
    assert [b.shape[1] for b in both.values()] == [3, 2, 1, 4, 4]
    cos_itm = feature_blocks("cos+itm", text=text, image=image, t=t, v=v, has_image=has, match=torch.rand(5))
    assert list(cos_itm) == ["cos", "itm"] and float(cos_itm["itm"][4]) == 0.5
    with pytest.raises(ValueError, match="relate.align_itm"):
        feature_blocks("interaction+itm", text=text, image=image, t=t, v=v, has_image=has, match=None)


def test_block_weighting_gives_every_block_the_same_variance_share():
    rng = np.random.default_rng(0)
    blocks = {"cos": rng.normal(0, 0.01, (200, 1)), "prod": rng.normal(0, 3, (200, 16)),
              "text": rng.normal(5, 40, (200, 30))}
    scaler = BlockScaler.fit(blocks)
    x = scaler.apply(blocks)
    widths = np.cumsum([0, 1, 16, 30])
    shares = [x[:, a:b].var(axis=0).sum() for a, b in zip(widths[:-1], widths[1:])]
    np.testing.assert_allclose(shares, 1.0, rtol=1e-4)
    torch_x = scaler.apply_torch({k: torch.from_numpy(v).float() for k, v in blocks.items()})
    np.testing.assert_allclose(torch_x.numpy(), x, rtol=1e-4, atol=1e-4)


def test_relation_space_concat_is_the_identity_and_interaction_has_the_documented_width():
    text, image = paired_features(n=80)
    pooled = np.concatenate([text, image], axis=1)
    concat = RelationSpace("concat", 24, 40)
    assert concat.width() == 64 and np.array_equal(concat.features_of(pooled), pooled)
    model, _ = fit(text, image, epochs=3)
    space = RelationSpace("interaction", 24, 40, alignment=model)
    x = space.features_of(pooled)
    assert x.shape == (80, space.width()) and space.width() == 1 + 2 * 8
    fitted = space.scaler
    assert np.allclose(space.features_of(pooled[:10], scaler=fitted), x[:10], atol=1e-5)   # weights kept
    z = space.torch_features(torch.from_numpy(text[:10]), torch.from_numpy(image[:10]))
    np.testing.assert_allclose(z.detach().numpy(), x[:10], atol=1e-4)
