"""The dual-branch emoticon family (``mmpost.models.emoticon``): shapes and modality weights for every switch, the
concat/attention identity at equal weights, ITC on its shared space, and training end to end on the synthetic
``emoticon`` task with tiny towers, where it must beat both chance and the text-only branch."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from mmpost import registry
from mmpost.data.batch import Batch
from mmpost.models.emoticon import DualBranchEmoticon, EmoticonOutput
from mmpost.objectives.combined import Objective, single_task
from tests.conftest import TinyImageTower, TinyTextTower


def _batch(n: int = 6, tokens: int = 16, has_image: list[bool] | None = None) -> Batch:
    g = torch.Generator().manual_seed(0)
    hi = torch.tensor(has_image if has_image is not None else [True] * n)
    return Batch(index=torch.arange(n), labels=torch.arange(n) % 3, has_image=hi, text_ids=torch.arange(n),
                 image_ids=torch.arange(n), text_features=torch.randn(n, 16, generator=g),
                 image_features=torch.randn(n, tokens, 8, generator=g))


def _model(**cfg) -> DualBranchEmoticon:
    torch.manual_seed(0)
    config = DualBranchEmoticon.Config(hidden=16, proj_dim=8, heads=4, layers=1, dropout=0.0, **cfg)
    return DualBranchEmoticon(TinyTextTower(), TinyImageTower(), 3, config)


def test_registered_with_a_config_that_checks_its_switches():
    assert registry.get("model", "emoticon") is DualBranchEmoticon
    with pytest.raises(ValueError, match="model.fusion must be one of attention, concat"):
        DualBranchEmoticon.Config(fusion="sum")
    with pytest.raises(ValueError, match="model.modalities must be one of both, text, image"):
        DualBranchEmoticon.Config(modalities="audio")
    assert DualBranchEmoticon.inputs(DualBranchEmoticon.Config(modalities="text")) == ("pooled", "pooled")
    assert DualBranchEmoticon.inputs(DualBranchEmoticon.Config()) == ("pooled", "tokens")


def test_attention_weights_per_post_and_a_missing_image_weighs_nothing():
    model = _model()
    with torch.no_grad():                     # the score starts at zero: equal weights, then learned ones differ
        model.score[-1].weight.normal_()
    out = model(_batch(has_image=[True, True, False, True, False, True]))
    assert isinstance(out, EmoticonOutput)
    assert out.logits.shape == (6, 3) and out.text_embeds.shape == out.image_embeds.shape == (6, 8)
    w = out.modality_weights
    assert w.shape == (6, 2) and torch.allclose(w.sum(1), torch.ones(6))
    assert torch.equal(w[[2, 4]], torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert len({round(float(x), 4) for x in w.detach()[[0, 1, 3, 5], 1]}) > 1   # weights differ from post to post
    again = model.modality_weights(_batch(has_image=[True, True, False, True, False, True]))
    assert torch.allclose(again, w, atol=1e-6)


def test_attention_at_equal_weights_is_the_concat_fusion():
    att, cat = _model(fusion="attention"), _model(fusion="concat")
    cat.load_state_dict({k: v for k, v in att.state_dict().items() if not k.startswith("score.")})
    batch = _batch()
    a, c = att(batch), cat(batch)
    assert torch.allclose(a.fused, c.fused, atol=1e-6) and torch.allclose(a.logits, c.logits, atol=1e-6)
    assert torch.equal(c.modality_weights, torch.full((6, 2), 0.5))


@pytest.mark.parametrize("modalities,weights", [("text", [1.0, 0.0]), ("image", [0.0, 1.0])])
def test_one_branch_baselines_report_no_pairs(modalities, weights):
    model = _model(modalities=modalities)
    absent = "image_branch" if modalities == "text" else "text_branch"
    assert not hasattr(model, absent)
    batch = _batch()
    out = model(batch)
    assert out.logits.shape == (6, 3) and not out.has_image.any()
    assert torch.equal(out.modality_weights, torch.tensor([weights] * 6))
    loss = Objective.from_configs({"ce": None, "itc": None}, single_task(3))(out, batch)
    assert float(loss.parts["itc"].detach()) == 0.0                    # nothing to contrast
    with pytest.raises(ValueError, match="ITM needs both branches"):
        model(batch, itm=lambda t, v: None)


def test_text_only_ignores_the_image_and_image_only_ignores_the_text():
    b1, b2 = _batch(), _batch()
    b2.image_features = torch.randn_like(b2.image_features)
    text_only = _model(modalities="text").eval()
    assert torch.equal(text_only(b1).logits, text_only(b2).logits)
    b3 = _batch()
    b3.text_features = torch.randn_like(b3.text_features)
    image_only = _model(modalities="image").eval()
    assert torch.equal(image_only(b1).logits, image_only(b3).logits)
    both = _model().eval()
    assert not torch.equal(both(b1).logits, both(b2).logits) and not torch.equal(both(b1).logits, both(b3).logits)


def test_itc_trains_the_shared_space_of_both_branches():
    model, batch = _model(), _batch()
    loss = Objective.from_configs({"ce": {"weight": 0.0}, "itc": None}, single_task(3))(model(batch), batch)
    loss.total.backward()
    for name in ("text_proj.weight", "image_proj.weight", "image_branch.encoder.layers.0.self_attn.in_proj_weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_itm_pairs_are_scored_on_the_fused_pair():
    from mmpost.models.output import ItmPairs
    model, batch = _model(), _batch()
    pairs = ItmPairs(text_index=torch.tensor([0, 1, 2]), image_index=torch.tensor([0, 2, 1]),
                     labels=torch.tensor([1, 0, 0]))
    out = model(batch, itm=pairs)
    assert out.itm_logits.shape == (3, 2) and torch.equal(out.itm_labels, pairs.labels)


def test_more_image_tokens_than_positions_is_a_clear_error():
    with pytest.raises(ValueError, match="takes at most 1024"):
        _model()(_batch(tokens=1100))


# ------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def emoticon_data(tmp_path_factory):
    """The synthetic emoticon task: 420 posts of 32 px, labelled from the emoji in their texts."""
    from mmpost.apps.prepare import PreparedData
    from mmpost.data.emoji import emoticon_task
    from mmpost.data.splits import by_split
    from mmpost.data.synthetic import EMOTICON_LABELS, generate_emoticon_posts

    posts = generate_emoticon_posts(tmp_path_factory.mktemp("syn"), n=420, size=32, seed=0)
    task = emoticon_task(posts, top_k=len(EMOTICON_LABELS))
    splits = by_split(task.posts)
    return PreparedData(task="emoticon", labels=task.labels, splits={s: splits[s] for s in ("train", "dev", "test")})


def _train(tmp_path, data, name: str, extra: list[str]):
    from mmpost.apps.train import train
    from mmpost.config import load_config
    cfg = load_config(None, [
        "task=emoticon", "text_encoder.name=tiny-text", "text_encoder.trainable=true",
        "image_encoder.name=tiny-image", "image_encoder.trainable=false", "model.name=emoticon",
        "model.hidden=32", "model.proj_dim=16", "model.heads=4", "model.layers=1", "model.dropout=0.0",
        "train.epochs=12", "train.patience=12", "train.batch_size=32", "train.lr=3e-3", "train.encoder_lr=3e-3",
        f"out_dir={tmp_path}/runs", f"cache_dir={tmp_path}/cache", "progress=false", f"name={name}", *extra])
    return train(cfg, data=data)


def test_trains_end_to_end_and_beats_chance_and_the_text_only_branch(tmp_path, emoticon_data):
    both = _train(tmp_path, emoticon_data, "both", ["objectives.itc.enabled=true"])
    text = _train(tmp_path, emoticon_data, "text", ["model.modalities=text"])
    m, t, base = both.metrics["test"]["emoticon"], text.metrics["test"]["emoticon"], both.baseline
    n_classes = len(emoticon_data.labels)
    assert m["accuracy"] > max(2.0 / n_classes, base["accuracy"] + 0.2) and m["mcc"] > 0.3
    assert m["accuracy"] > t["accuracy"] + 0.1               # the emoji needs the image too
    assert (both.run_dir / "model.safetensors").is_file()
    assert any(k.endswith("itc") for row in both.history for k in row)       # the contrastive term was logged
    assert dataclasses.asdict(DualBranchEmoticon.Config())["fusion"] == "attention"


def test_prepare_routes_the_emoticon_task_through_the_emoji_labeller(tmp_path, monkeypatch):
    """`mmpost train configs/emoticon.yaml` reaches the emoji labeller through prepare(): labels from the emoji,
    the label emoji gone from every text, all three splits filled."""
    from mmpost.apps.prepare import prepare
    from mmpost.config import load_config
    from mmpost.data.emoji import emoji_in

    monkeypatch.setenv("MMPOST_CACHE", str(tmp_path))
    cfg = load_config("configs/emoticon.yaml", ["data.synthetic.n=160", "data.synthetic.size=32", "progress=false"])
    data = prepare(cfg.data, cfg.task, progress=False)
    assert data.task == "emoticon" and 2 <= len(data.labels) <= 8
    posts = [p for split in data.splits.values() for p in split]
    assert all(data.splits[s] for s in ("train", "dev", "test")) and len(posts) <= 160
    assert all(p.labels["emoticon"] in data.labels for p in posts)
    assert not any(emoji_in(p.text) for p in posts)       # the synthetic posts carry one emoji: the label
    assert data.emoticon is not None and data.emoticon.kept == len(posts)      # the labeller's report comes along


def _emoticon_cfg(tmp_path, monkeypatch, *overrides: str):
    from mmpost.config import load_config
    monkeypatch.setenv("MMPOST_CACHE", str(tmp_path))
    return load_config("configs/emoticon.yaml", ["data.synthetic.n=160", "data.synthetic.size=32", "progress=false",
                                                 *overrides])


def test_the_emoticon_task_honours_data_limit(tmp_path, monkeypatch):
    from mmpost.apps.prepare import prepare
    data = prepare(_emoticon_cfg(tmp_path, monkeypatch, "data.limit=60").data, "emoticon", progress=False)
    assert sum(len(v) for v in data.splits.values()) == 60 == data.emoticon.posts
    assert any("data.limit" in n for n in data.notes)


def test_the_emoticon_task_honours_require_image(tmp_path):
    """A manifest of emoji texts where a third of the posts name an image file that is not there."""
    from PIL import Image

    from mmpost.apps.prepare import prepare
    from mmpost.config import load_config
    rows = ["id,text,image"]
    for i in range(60):
        if i % 3:
            Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / f"{i}.png")
        rows.append(f"p{i},post number {i} {'😂' if i % 2 else '😢'},{i}.png")
    (tmp_path / "posts.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = load_config(None, ["task=emoticon", "data.source=manifest", f"data.path={tmp_path / 'posts.csv'}",
                             "data.columns.image=image", "data.require_image=true", "progress=false"])
    data = prepare(cfg.data, "emoticon", progress=False)
    kept = {p.id for v in data.splits.values() for p in v}
    assert kept == {f"p{i}" for i in range(60) if i % 3} and data.emoticon.posts == 40
    assert sorted(data.labels) == ["crying_face", "face_with_tears_of_joy"]


def test_the_emoticon_task_honours_the_hash_split(tmp_path, monkeypatch):
    from mmpost.apps.prepare import prepare
    from mmpost.data.splits import hash_split
    cfg = _emoticon_cfg(tmp_path, monkeypatch, "data.split_method=hash", "data.emoticon.resplit=true")
    data = prepare(cfg.data, "emoticon", progress=False)
    fractions = tuple(cfg.data.split_fractions)
    assert all(hash_split(p.id, fractions, salt=cfg.data.split_salt) == name
               for name, posts in data.splits.items() for p in posts)


@pytest.mark.parametrize("key,value", [("multi", "any"), ("strip", "none"), ("skin_tones", "drop"), ("top_k", "0")])
def test_emoticon_options_are_checked_by_the_config(key, value):
    from mmpost.config import ConfigError, load_config
    with pytest.raises(ConfigError, match=f"data.emoticon.{key}"):
        load_config(None, [f"data.emoticon.{key}={value}"])
