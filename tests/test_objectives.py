"""Each objective against a hand computation on tiny tensors."""
from __future__ import annotations

import math

import pytest
import torch

from mmpost.data.batch import Batch
from mmpost.models.output import ModelOutput
from mmpost.objectives.base import RequestContext
from mmpost.objectives.ce import balanced_class_weights, ce_loss
from mmpost.objectives.combined import Objective, loss_weights, single_task
from mmpost.objectives.itc import ITCLoss, itc_loss
from mmpost.objectives.itm import hard_pairs, itm_loss, random_pairs


def _lse(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def test_ce_with_class_weights_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    w = torch.tensor([1.0, 3.0])
    nll = [-(2 - _lse([2, 0])), -(1 - _lse([0, 1])), -(1 - _lse([1, 1]))]
    expected = (1 * nll[0] + 3 * nll[1] + 3 * nll[2]) / (1 + 3 + 3)
    assert ce_loss(logits, labels, w).item() == pytest.approx(expected, rel=1e-6)
    assert ce_loss(logits, labels).item() == pytest.approx(sum(nll) / 3, rel=1e-6)


def test_balanced_weights():
    w = balanced_class_weights([0, 0, 0, 1], 3)
    assert w.tolist() == pytest.approx([4 / (3 * 3), 4 / (3 * 1), 0.0])


def _itc_by_hand(t, v, scale, masked=()):
    t = [[x / math.hypot(*row) for x in row] for row in t]
    v = [[x / math.hypot(*row) for x in row] for row in v]
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    n = len(t)
    total = 0.0
    for i in range(n):
        cols = [j for j in range(n) if (i, j) not in masked]
        t2i = [scale * dot(t[i], v[j]) for j in cols]
        i2t = [scale * dot(v[i], t[j]) for j in cols]
        k = cols.index(i)
        total += (_lse(t2i) - t2i[k]) + (_lse(i2t) - i2t[k])
    return total / (2 * n)


def test_itc_matches_hand_computation():
    t = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]
    v = [[1.0, 0.2], [0.5, 1.0], [-1.0, 1.0]]
    log_scale = torch.tensor(math.log(1 / 0.07))
    got = itc_loss(torch.tensor(t), torch.tensor(v), log_scale).item()
    assert got == pytest.approx(_itc_by_hand(t, v, 1 / 0.07), rel=1e-5)


def test_itc_masks_duplicate_texts_and_images():
    t = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]
    v = [[1.0, 0.1], [0.8, 0.3], [0.1, 1.0]]
    text_ids = torch.tensor([7, 7, 8])          # posts 0 and 1 share a text (a retweet)
    image_ids = torch.tensor([0, 1, 2])
    got = itc_loss(torch.tensor(t), torch.tensor(v), torch.tensor(0.0), text_ids=text_ids, image_ids=image_ids).item()
    assert got == pytest.approx(_itc_by_hand(t, v, 1.0, masked={(0, 1), (1, 0)}), rel=1e-5)
    image_ids = torch.tensor([0, 1, 0])         # posts 0 and 2 share an image
    got = itc_loss(torch.tensor(t), torch.tensor(v), torch.tensor(0.0), image_ids=image_ids).item()
    assert got == pytest.approx(_itc_by_hand(t, v, 1.0, masked={(0, 2), (2, 0)}), rel=1e-5)


def test_itc_temperature_is_learnable_and_clamped():
    loss = ITCLoss(ITCLoss.Config(temperature=0.07))
    assert loss.temperature == pytest.approx(0.07, rel=1e-5)
    with torch.no_grad():
        loss.log_scale.fill_(10.0)               # beyond ln 100
    assert loss.temperature == pytest.approx(0.01, rel=1e-5)
    assert loss.log_scale.requires_grad


def test_itc_gather_hook_equals_full_batch():
    torch.manual_seed(0)
    t, v = torch.randn(4, 3), torch.randn(4, 3)
    ls = torch.tensor(1.5)
    full = itc_loss(t, v, ls)
    tn, vn = torch.nn.functional.normalize(t, dim=-1), torch.nn.functional.normalize(v, dim=-1)
    def gather_for(rank):
        def gather(x):   # stands in for an all-gather across 2 ranks of 2 posts each
            for full_x in (tn, vn):
                if torch.allclose(x, full_x[2 * rank:2 * rank + 2]):
                    return full_x, 2 * rank
            raise AssertionError("unexpected tensor")
        return gather

    per_rank = [itc_loss(t[2 * r:2 * r + 2], v[2 * r:2 * r + 2], ls, gather=gather_for(r)) for r in (0, 1)]
    assert ((per_rank[0] + per_rank[1]) / 2).item() == pytest.approx(full.item(), rel=1e-5)


def test_itm_random_pairs_never_pair_a_text_with_its_duplicate():
    g = torch.Generator().manual_seed(0)
    has_image = torch.tensor([True, True, False, True, True, True])
    text_ids = torch.tensor([0, 0, 1, 2, 3, 3])
    for _ in range(50):
        pairs = random_pairs(has_image, text_ids, generator=g)
        assert pairs.image_index.tolist() == [0, 1, 3, 4, 5]         # image-less posts take no part
        for ti, ii, lab in zip(pairs.text_index, pairs.image_index, pairs.labels):
            if lab == 1:
                assert ti == ii
            else:
                assert text_ids[ti] != text_ids[ii]


def test_itm_negatives_are_deterministic_with_a_seed():
    has_image, ids = torch.ones(16, dtype=torch.bool), torch.arange(16)
    a = random_pairs(has_image, ids, generator=torch.Generator().manual_seed(3))
    b = random_pairs(has_image, ids, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.text_index, b.text_index) and torch.equal(a.labels, b.labels)
    assert 0 < int(a.labels.sum()) < 16


def test_itm_loss_by_hand():
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    labels = torch.tensor([1, 0])
    expected = ((_lse([0, 2]) - 2) + (_lse([1, -1]) - 1)) / 2
    assert itm_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_weighting_additive_and_convex():
    from mmpost.objectives.ce import CELoss
    from mmpost.objectives.itm import ITMLoss
    configs = {"ce": CELoss.Config(), "itc": ITCLoss.Config(weight=0.5), "itm": ITMLoss.Config(weight=2.0)}
    assert loss_weights("additive", configs) == {"ce": 1.0, "itc": 0.5, "itm": 2.0}
    configs = {"ce": CELoss.Config(weight=7.0), "itc": ITCLoss.Config(weight=0.1), "itm": ITMLoss.Config(weight=0.1)}
    assert loss_weights("convex", configs) == pytest.approx({"ce": 0.8, "itc": 0.1, "itm": 0.1})
    with pytest.raises(ValueError, match="below 1"):
        loss_weights("convex", {"ce": CELoss.Config(), "itc": ITCLoss.Config(weight=0.6),
                                "itm": ITMLoss.Config(weight=0.5)})


def _output(has_image, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = len(has_image)
    return ModelOutput(logits=torch.randn(b, 3, generator=g), text_embeds=torch.randn(b, 4, generator=g),
                       image_embeds=torch.randn(b, 4, generator=g), fused=torch.randn(b, 5, generator=g),
                       has_image=torch.tensor(has_image))


def test_posts_with_masked_images_take_no_part_in_itc():
    has_image = [True, True, False, True]
    batch = Batch(index=torch.arange(4), labels=torch.tensor([0, 1, 2, 0]), has_image=torch.tensor(has_image),
                  text_ids=torch.arange(4), image_ids=torch.arange(4))
    obj = Objective.from_configs({"ce": None, "itc": None}, single_task(3, [0, 1, 2, 0]))
    out = _output(has_image)
    before = obj(out, batch).parts["itc"].item()
    out.image_embeds[2] += 100.0                 # the masked post's image vector must not matter
    out.text_embeds[2] -= 50.0
    assert obj(out, batch).parts["itc"].item() == pytest.approx(before)


def test_objective_reports_every_component_and_temperature():
    batch = Batch(index=torch.arange(4), labels=torch.tensor([0, 1, 2, 0]), has_image=torch.ones(4, dtype=torch.bool),
                  text_ids=torch.arange(4), image_ids=torch.arange(4))
    obj = Objective.from_configs({"ce": None, "itc": None, "itm": None}, single_task(3, [0, 1, 2, 0]))
    kwargs = obj.request(batch, RequestContext(generator=torch.Generator().manual_seed(0))).kwargs
    out = _output([True] * 4)
    pairs = kwargs["itm"](out.text_embeds, out.image_embeds)
    out.itm_logits, out.itm_labels = torch.randn(len(pairs.labels), 2), pairs.labels
    floats = obj(out, batch).as_floats()
    assert set(floats) == {"loss", "ce", "itc", "itm", "temperature"}
    assert floats["loss"] == pytest.approx(floats["ce"] + floats["itc"] + floats["itm"], rel=1e-5)


def test_hard_negatives_never_pick_the_positive_or_a_duplicate():
    # posts 0 and 1 share a text (a retweet), posts 2 and 3 share an image; post 4 has no image
    has_image = torch.tensor([True, True, True, True, False, True])
    text_ids = torch.tensor([0, 0, 1, 2, 3, 4])
    image_ids = torch.tensor([0, 1, 2, 2, 3, 4])
    e = torch.eye(6)[:, :5]
    text_embeds = e.clone()
    text_embeds[1] = text_embeds[0]            # the duplicate text is the most similar one: must still be skipped
    image_embeds = e.clone()
    image_embeds[3] = image_embeds[2]
    g = torch.Generator().manual_seed(0)
    seen_text_neg = set()
    for _ in range(200):
        p = hard_pairs(has_image, text_embeds, image_embeds, text_ids=text_ids, image_ids=image_ids, generator=g)
        assert 4 not in p.text_index.tolist() and 4 not in p.image_index.tolist()
        for ti, ii, lab in zip(p.text_index.tolist(), p.image_index.tolist(), p.labels.tolist()):
            if lab == 1:
                assert ti == ii
                continue
            assert text_ids[ti] != text_ids[ii], (ti, ii)          # never the post's own text or a copy of it
            assert image_ids[ti] != image_ids[ii], (ti, ii)        # never its own image or a copy of it
            seen_text_neg.add((ti, ii))
    n_pos = int(has_image.sum())
    assert p.labels.tolist()[:n_pos] == [1] * n_pos and len(p.labels) == 3 * n_pos
    assert len(seen_text_neg) > 5


def test_hard_negatives_follow_the_similarity():
    has_image = torch.ones(4, dtype=torch.bool)
    t = torch.tensor([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0], [0.0, -1.0]])
    v = t.clone()
    g = torch.Generator().manual_seed(0)
    picks = [hard_pairs(has_image, t, v, generator=g).text_index[4].item() for _ in range(100)]
    assert picks.count(1) > 90                  # image 0's hardest wrong text is text 1
