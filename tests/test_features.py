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
