from __future__ import annotations

import numpy as np
from PIL import Image

from mmpost.data.post import Post
from mmpost.encoders.features import post_features
from tests.conftest import TinyImageTower, TinyTextTower


def _images(tmp_path):
    Image.new("RGB", (20, 20), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (20, 20), (0, 0, 255)).save(tmp_path / "b.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return str(tmp_path / "a.png"), str(tmp_path / "b.png"), str(tmp_path / "bad.jpg")


def test_multi_image_posts_average_and_bad_images_are_masked(tmp_path):
    a, b, bad = _images(tmp_path)
    posts = [Post("1", "x", [a]), Post("2", "y", [b]), Post("3", "z", [a, b]), Post("4", "w", [bad, a]),
             Post("5", "v", [bad]), Post("6", "u", [])]
    text, image = TinyTextTower(), TinyImageTower()
    for cache in (None, tmp_path / "cache"):
        f = post_features(posts, text, image, cache_dir=cache, progress=False)
        assert f.has_image.tolist() == [True, True, True, True, False, False]
        np.testing.assert_allclose(f.image[2], (f.image[0] + f.image[1]) / 2, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(f.image[3], f.image[0], rtol=1e-5, atol=1e-6)
        assert set(f.image_errors) == {"4", "5"} and "bad.jpg" in f.image_errors["5"]
        assert f.text.shape == (6, text.dim)


def test_cached_features_equal_direct_ones(tmp_path):
    a, b, _ = _images(tmp_path)
    posts = [Post(str(i), f"text {i}", [a if i % 2 else b]) for i in range(5)]
    text, image = TinyTextTower(), TinyImageTower()
    direct = post_features(posts, text, image, progress=False)
    cached = post_features(posts, text, image, cache_dir=tmp_path / "c", progress=False)
    again = post_features(posts, text, image, cache_dir=tmp_path / "c", progress=False)
    for other in (cached, again):
        np.testing.assert_allclose(other.text, direct.text, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(other.image, direct.image, rtol=1e-5, atol=1e-6)


def test_image_tokens_for_posts_without_any_image_keep_one_masked_slot(tmp_path):
    posts = [Post("1", "x", []), Post("2", "y", [])]
    for cache in (None, tmp_path / "cache"):
        f = post_features(posts, TinyTextTower(), TinyImageTower(), cache_dir=cache, progress=False,
                          image_tokens=True, text_first_token=True)
        assert f.image.shape == (2, 1, TinyImageTower().dim) and not f.has_image.any()
        assert f.text.shape == (2, TinyTextTower().dim)


def test_first_token_text_features_are_the_towers_first_token(tmp_path):
    import torch
    text = TinyTextTower()
    posts = [Post("1", "a b c", []), Post("2", "d e", [])]
    f = post_features(posts, text, None, cache_dir=tmp_path / "cache", progress=False, text_first_token=True)
    with torch.no_grad():
        want = text(text.tokenize(["a b c", "d e"])).tokens[:, 0].numpy()
    np.testing.assert_allclose(f.text, want, rtol=1e-5, atol=1e-6)


def _random_efficientnet(**kwargs):
    """A randomly initialised EfficientNet-Lite0 tower whose BatchNorms have non-trivial statistics."""
    import torch

    from mmpost.encoders.efficientnet import EfficientNetLite0Tower
    torch.manual_seed(0)
    tower = EfficientNetLite0Tower(pretrained=False, **kwargs)
    for m in tower.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return tower.eval()


def test_folded_efficientnet_extracts_what_the_network_computes():
    import torch
    plain = _random_efficientnet(channels_last=False, precision="fp32")
    fast = _random_efficientnet(channels_last=True, precision="fp32")
    pixels = torch.randn(3, 3, 48, 48)
    with torch.inference_mode():
        want = plain(pixels)
        for got in (fast(pixels), fast.extract(pixels), plain.extract(pixels)):
            torch.testing.assert_close(got.tokens, want.tokens, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(got.pooled, want.pooled, rtol=1e-4, atol=1e-4)
    folded = fast.inference_net()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert not any(p.requires_grad for p in folded.parameters())
    assert not any(n.startswith("_folded") for n in fast.state_dict())     # the copy is not saved with the tower


def test_folded_copy_follows_weights_that_change_between_extractions():
    import torch
    tower = _random_efficientnet(precision="fp32")
    pixels = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        before = tower.extract(pixels).pooled
    with torch.no_grad():                       # a fine-tuning step, in place, as an optimizer makes it
        tower.net._conv_head.weight.mul_(1.5)
        tower.net._bn1.running_mean.add_(0.3)
    with torch.inference_mode():
        after, want = tower.extract(pixels).pooled, tower(pixels).pooled
    torch.testing.assert_close(after, want, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(before, after)


def test_bf16_extraction_stays_close_to_fp32_and_is_keyed_apart(tmp_path):
    import torch

    from mmpost.encoders.hf_text import HFTextTower
    from tests.conftest import save_tiny_roberta
    path = save_tiny_roberta(tmp_path / "roberta", max_positions=40)
    fp32, bf16 = HFTextTower(path, precision="fp32"), HFTextTower(path, precision="bf16")
    assert fp32.identity != bf16.identity and bf16.identity.endswith(":bf16")
    image32, image16 = _random_efficientnet(precision="fp32"), _random_efficientnet(precision="bf16")
    assert image32.identity != image16.identity
    with torch.inference_mode():
        inputs = fp32.tokenize(["a cat", "cat cat a t", "t"])
        a, b = fp32.extract(inputs).pooled, bf16.extract(inputs).pooled
        assert b.dtype == torch.float32
        assert torch.nn.functional.cosine_similarity(a, b).min() > 0.99
        pixels = torch.randn(2, 3, 32, 32)
        a, b = image32.extract(pixels).pooled, image16.extract(pixels).pooled
        assert torch.nn.functional.cosine_similarity(a, b).min() > 0.99


def test_precision_choices_are_checked():
    import pytest
    import torch

    from mmpost.config import ConfigError, load_config
    from mmpost.encoders.precision import native_bf16, resolve_precision
    assert resolve_precision("auto") == ("bf16" if native_bf16(torch.device("cpu")) else "fp32")
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16")
    with pytest.raises(ConfigError, match="image_encoder.precision"):
        load_config(None, ["image_encoder.precision=int4"])


def test_default_precisions_bf16_text_where_native_fp32_images(tmp_path):
    from mmpost.config import load_config
    from mmpost.encoders.precision import resolve_precision
    recipe = tmp_path / "r.yaml"
    recipe.write_text("text_encoder:\n  name: minilm\nimage_encoder:\n  name: efficientnet-lite0\n")
    for cfg in (load_config(None, []), load_config(str(recipe), [])):
        assert cfg.text_encoder.precision == "auto"           # a recipe naming the tower keeps the default
        assert resolve_precision(cfg.image_encoder.precision) == "fp32"


def test_image_batches_and_decode_threads_do_not_change_features(tmp_path):
    from mmpost.encoders.features import encode_images
    a, b, bad = _images(tmp_path)
    paths = [a, b, bad, a, b, b, bad, a, a, b, a]
    tower = TinyImageTower().eval()
    want, want_errors = encode_images(tower, paths, batch_size=1, workers=0, progress=False)
    assert [e is not None for e in want_errors] == [p == bad for p in paths]
    for sub_batch in (None, 2, 3):
        tower.extract_batch_size = sub_batch
        for batch_size in (4, 32):
            for workers in (0, 1, 3):
                got, errors = encode_images(tower, paths, batch_size=batch_size, workers=workers, progress=False)
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
                assert errors == want_errors


def test_fused_optimizer_step_trains_like_the_per_tensor_loop():
    import torch

    from mmpost.engine.loop import fuse_optimizer_step
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1) for m in models]
    fuse_optimizer_step(optimizers[1])
    assert optimizers[1].param_groups[0]["fused"] and not optimizers[0].param_groups[0]["fused"]
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    for _ in range(5):
        for model, optimizer in zip(models, optimizers):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    chosen = torch.optim.AdamW(models[0].parameters(), foreach=True)
    sgd = torch.optim.SGD(models[0].parameters(), lr=0.1)
    fuse_optimizer_step(chosen)
    fuse_optimizer_step(sgd)
    assert not chosen.param_groups[0]["fused"] and not sgd.param_groups[0].get("fused")
