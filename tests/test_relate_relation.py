"""ITRp over relation features on the toy set: no label is read before the dev mapping (alignment included), the
loop trains through the aligned space, and the settings fail with the key named."""
from __future__ import annotations

import dataclasses
import json

import faiss
import numpy as np
import pytest
import torch

from mmpost.apps import relate as relate_app
from mmpost.apps.build import build_tower
from mmpost.apps.prepare import PreparedData, prepare
from mmpost.config import load_config
from mmpost.relate import space as space_module
from mmpost.relate.config import RelateConfig
from mmpost.relate.loop import run_itrp, split_features
from mmpost.relate.space import build_space
from tests.conftest import tiny_overrides, write_toy_csv


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before_torch, before_faiss = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(before_torch)
    faiss.omp_set_num_threads(before_faiss)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("relation")
    cfg = load_config(None, tiny_overrides(tmp, write_toy_csv(tmp)))
    return cfg, prepare(cfg.data, "mood", progress=False)


def towers(cfg):
    torch.manual_seed(0)
    return build_tower(cfg.text_encoder), build_tower(cfg.image_encoder)


def relation_cfg(**kw) -> RelateConfig:
    base = dict(task="mood", k=3, subset_size=12, epochs=1, batch_size=8, embed_batch_size=16, head_lr=1e-2,
                text_lr=1e-2, seed=0, features="interaction+itm", align_dim=8, align_epochs=4, align_patience=2,
                align_batch_size=8, align_lr=1e-2)
    base.update(kw)
    return RelateConfig(**base)


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


# --------------------------------------------------------------------------------------------------- label spy


class SpyLabels(dict):
    """A post's labels that log every read (item, get, membership, iteration, views) into ``events``."""

    def __init__(self, labels, events, post_id):
        super().__init__(labels)
        self._events, self._id = events, post_id

    def _read(self, how):
        self._events.append(("label", self._id, how))

    def __getitem__(self, key):
        self._read("item")
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._read("get")
        return super().get(key, default)

    def __contains__(self, key):
        self._read("in")
        return super().__contains__(key)

    def __iter__(self):
        self._read("iter")
        return super().__iter__()

    def keys(self):
        self._read("keys")
        return super().keys()

    def values(self):
        self._read("values")
        return super().values()

    def items(self):
        self._read("items")
        return super().items()


def spied(data: PreparedData, events: list) -> PreparedData:
    splits = {name: [dataclasses.replace(p, labels=SpyLabels(p.labels, events, p.id)) for p in posts]
              for name, posts in data.splits.items()}
    return dataclasses.replace(data, splits=splits)


def test_no_label_is_read_before_the_dev_mapping_not_even_by_the_alignment(toy, tmp_path, monkeypatch):
    cfg, data = toy
    events: list[tuple] = []
    real_fit, real_map = space_module.fit_alignment, relate_app._map_on_dev_then_score

    def fit_alignment(*args, **kw):
        events.append(("align start",))
        out = real_fit(*args, **kw)
        events.append(("align end",))
        return out

    def map_on_dev(*args, **kw):
        events.append(("mapping",))
        return real_map(*args, **kw)

    monkeypatch.setattr(space_module, "fit_alignment", fit_alignment)
    monkeypatch.setattr(relate_app, "_map_on_dev_then_score", map_on_dev)
    metrics = relate_app.relate(cfg, tmp_path / "run", relate_cfg=relation_cfg(finetune="text"),
                                data=spied(data, events), towers=towers(cfg))
    names = [e[0] for e in events]
    assert names.count("align start") == 1 and names.count("mapping") == 1
    first_mapping = names.index("mapping")
    assert names.index("align end") < first_mapping
    assert [e for e in events[:first_mapping] if e[0] == "label"] == []
    assert any(e[0] == "label" for e in events[first_mapping:])      # the spy does see reads: the mapping's own
    assert metrics["alignment"]["n_train"] + metrics["alignment"]["n_holdout"] == len(data.splits["train"])


# --------------------------------------------------------------------------------------------------- loop, app


@pytest.mark.parametrize("align_finetune", [True, False])
def test_the_loop_trains_the_tower_through_the_alignment(toy, tmp_path, align_finetune):
    cfg, data = toy
    train = data.splits["train"]
    text_tower, image_tower = towers(cfg)
    rc = relation_cfg(features="interaction", finetune="text", align_finetune=align_finetune, epochs=2)
    pooled = split_features({"train": train}, text_tower, image_tower, rc, cache_dir=tmp_path / "c", live=())["train"]
    space = build_space(rc, pooled[:, :text_tower.dim], pooled[:, text_tower.dim:], train)
    text_before, image_before, align_before = params(text_tower), params(image_tower), params(space.alignment)
    result = run_itrp(train, text_tower, image_tower, rc, cache_dir=tmp_path / "c", space=space)
    assert result.head.in_features == space.width() == 1 + 2 * 8
    assert not same(params(text_tower), text_before)        # CE gradients reach the tower through the projections
    assert same(params(image_tower), image_before)
    assert same(params(space.alignment), align_before) is not align_finetune
    assert result.head_scaler is not None and np.isfinite([r.loss for r in result.rounds]).all()


def test_relate_reports_the_alignment_and_dev_scores(toy, tmp_path):
    cfg, data = toy
    rc = relation_cfg(features="both", finetune="none", clusterer="gmm")
    metrics = relate_app.relate(cfg, tmp_path / "run", relate_cfg=rc, data=data, towers=towers(cfg))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["relate_config"]["features"] == "both" and saved["alignment"]["epochs_run"] >= 1
    assert set(metrics["itrp"]) >= {"dev", "test"} and 0.0 <= metrics["itrp"]["dev"]["nmi"] <= 1.0
    report = (tmp_path / "run" / "report.md").read_text()
    assert "relate.features: both" in report and "held-out unlabelled posts" in report


def test_concat_needs_no_alignment(toy, tmp_path):
    cfg, data = toy
    metrics = relate_app.relate(cfg, tmp_path / "run", relate_cfg=relation_cfg(features="concat", finetune="none"),
                                data=data, towers=towers(cfg))
    assert metrics["alignment"] is None


# --------------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("override, message", [
    ("relate.features=pixels", "relate.features must be one of concat, interaction, both, interaction+itm"),
    ("relate.align=clip", "relate.align must be one of itc, checkpoint"),
    ("relate.feature_weighting=loud", "relate.feature_weighting must be one of"),
    ("relate.align_holdout=1.5", "relate.align_holdout must be between 0 and 1"),
    ("relate.align_batch_size=1", "relate.align_batch_size must be at least 2"),
    ("relate.align_dim=0", "relate.align_dim must be at least 1"),
])
def test_bad_relation_settings_name_the_key(override, message):
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        load_config(None, [override])


def test_align_checkpoint_is_accepted_by_the_config_but_needs_an_hf_clip_encoder(toy, tmp_path):
    cfg, data = toy
    rc = load_config(None, ["relate.align=checkpoint", "relate.features=interaction"]).relate
    assert rc.align == "checkpoint"
    with pytest.raises(ValueError, match=r"relate\.align=checkpoint needs an hf-clip checkpoint encoder"):
        relate_app.relate(cfg, tmp_path / "run", relate_cfg=relation_cfg(align="checkpoint", finetune="none"),
                          data=data, towers=towers(cfg))


def test_align_checkpoint_uses_one_hf_clip_checkpoints_own_space(toy, tmp_path):
    """A tiny random CLIP checkpoint (as in the CLIP tests): both towers are its halves, the pair features are
    computed in its projected space, no alignment is trained; its figures need a real checkpoint."""
    from mmpost.config import EncoderConfig
    from tests.test_clip_encoders import save_tiny_clip

    cfg, data = toy
    path = save_tiny_clip(tmp_path / "clip")
    text = build_tower(EncoderConfig(name="hf-clip", path=path, side="text", trainable=False))
    image = build_tower(EncoderConfig(name="hf-clip", path=path, side="image", trainable=False))
    rc = relation_cfg(align="checkpoint", features="interaction", finetune="none")
    metrics = relate_app.relate(cfg, tmp_path / "run", relate_cfg=rc, data=data, towers=(text, image))
    assert metrics["alignment"] is None and metrics["relate_config"]["align"] == "checkpoint"
    assert 0.0 <= metrics["itrp"]["test"]["nmi"] <= 1.0
    with pytest.raises(ValueError, match="needs an ITM head"):
        relate_app.relate(cfg, tmp_path / "run2", relate_cfg=relation_cfg(align="checkpoint", finetune="none"),
                          data=data, towers=(text, image))
