"""Tests of the embedded synthetic data set (``mmpost.data.synthetic``).

The task spec is frozen by ``test_pinned_fingerprint``: the first posts of the default set (ids, texts,
labels and pixels) must not change. Later changes may add tasks, but must not change these posts,
these task names or their label names; a change that must do so needs a new ``SPEC_VERSION``.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmpost.data import synthetic
from mmpost.data.post import Post
from mmpost.data.synthetic import SPEC_VERSION, SYNTHETIC_TASKS, generate_posts

# sha256 over the first 24 posts of generate_posts(n=24, size=128, seed=0, words_in_image=True)
PINNED_FINGERPRINT = "0761047ae837e60c6bfe54c58c063a2782bb234346c71e8265e5fe13dbbe5137"


def _pixels(path: str) -> bytes:
    with Image.open(path) as im:
        return im.convert("RGB").tobytes()


def _fingerprint(posts: list[Post]) -> str:
    h = hashlib.sha256()
    for p in posts[:24]:
        h.update(p.id.encode("utf-8") + b"\0")
        h.update(p.text.encode("utf-8") + b"\0")
        h.update(json.dumps(sorted(p.labels.items())).encode("utf-8") + b"\0")
        h.update(hashlib.sha256(_pixels(p.images[0])).hexdigest().encode("ascii") + b"\n")
    return h.hexdigest()


def _content(p: Post) -> tuple:
    meta = {k: v for k, v in p.meta.items() if k != "split"}
    return p.id, p.text, sorted(p.labels.items()), json.dumps(meta, sort_keys=True), _pixels(p.images[0])


def test_task_and_label_names_are_exact():
    assert SPEC_VERSION == "1"
    assert SYNTHETIC_TASKS == {
        "sentiment": ["negative", "neutral", "positive"],
        "sarcasm": ["not_sarcastic", "sarcastic"],
        "text_represented": ["not_represented", "represented"],
        "image_adds": ["not_adds", "adds"],
        "relation": ["00", "01", "10", "11"],
    }


def test_pinned_fingerprint(tmp_path):
    posts = generate_posts(tmp_path, n=24, size=128, seed=0, words_in_image=True)
    assert _fingerprint(posts) == PINNED_FINGERPRINT


def test_layout_and_records(tmp_path):
    posts = generate_posts(tmp_path / "set", n=40, size=64, seed=3)
    out = (tmp_path / "set").resolve()
    assert [p.id for p in posts] == [f"syn-{i:05d}" for i in range(40)]
    spec = json.loads((out / "spec.json").read_text())
    assert spec == {"spec_version": "1", "n": 40, "size": 64, "seed": 3, "words_in_image": True}
    lines = (out / "posts.jsonl").read_text().splitlines()
    assert [Post.from_dict(json.loads(line)) for line in lines] == posts
    for p in posts:
        assert Path(p.images[0]).is_absolute()
        assert Path(p.images[0]) == out / "images" / f"{p.id}.png"
        with Image.open(p.images[0]) as im:
            assert im.size == (64, 64)
        assert set(p.labels) == set(SYNTHETIC_TASKS)
        assert all(p.labels[t] in names for t, names in SYNTHETIC_TASKS.items())
        assert p.meta["split"] in ("train", "dev", "test")
        assert {"text_sentiment", "image_sentiment", "objects"} <= set(p.meta)
        assert p.text.strip()
    assert Counter(p.meta["split"] for p in posts) == {"train": 28, "dev": 6, "test": 6}


def test_deterministic(tmp_path):
    a = generate_posts(tmp_path / "a", n=30, size=64, seed=7)
    b = generate_posts(tmp_path / "b", n=30, size=64, seed=7)
    assert [_content(p) for p in a] == [_content(p) for p in b]
    assert [p.meta["split"] for p in a] == [p.meta["split"] for p in b]
    c = generate_posts(tmp_path / "c", n=30, size=64, seed=8)
    assert [p.text for p in a] != [p.text for p in c]


def test_prefix_stable(tmp_path):
    small = generate_posts(tmp_path / "small", n=20, size=64, seed=1)
    large = generate_posts(tmp_path / "large", n=50, size=64, seed=1)
    assert [_content(p) for p in small] == [_content(p) for p in large[:20]]


def test_words_in_image_changes_only_the_pictures(tmp_path):
    with_words = generate_posts(tmp_path / "w", n=60, size=64, seed=2, words_in_image=True)
    without = generate_posts(tmp_path / "n", n=60, size=64, seed=2, words_in_image=False)
    assert any(p.meta["caption"] for p in with_words)
    assert not any(p.meta["caption"] for p in without)
    assert [(p.text, p.labels) for p in with_words] == [(p.text, p.labels) for p in without]


@pytest.fixture(scope="module")
def posts600(tmp_path_factory):
    return generate_posts(tmp_path_factory.mktemp("p600"), n=600, size=32, seed=0)


def test_rules_hold(posts600):
    for p in posts600:
        lab, meta = p.labels, p.meta
        t, i = meta["text_sentiment"], meta["image_sentiment"]
        sarcastic = {t, i} == {"positive", "negative"}
        assert lab["sarcasm"] == ("sarcastic" if sarcastic else "not_sarcastic")
        expected = "negative" if sarcastic else (i if t == "neutral" else t)
        assert lab["sentiment"] == expected
        represented = any(s in meta["objects"] for s in meta["named"])
        adds = any(s not in meta["named"] for s in meta["objects"])
        assert lab["text_represented"] == ("represented" if represented else "not_represented")
        assert lab["image_adds"] == ("adds" if adds else "not_adds")
        x = "1" if lab["text_represented"] == "represented" else "0"
        y = "1" if lab["image_adds"] == "adds" else "0"
        assert lab["relation"] == x + y
        assert 1 <= len(meta["objects"]) - bool(meta["caption"]) + len(meta["decorations"]) <= 2


def test_class_balance(posts600):
    for task, names in SYNTHETIC_TASKS.items():
        counts = Counter(p.labels[task] for p in posts600)
        assert set(counts) == set(names), task
        assert min(counts.values()) / len(posts600) >= 0.15, (task, counts)


def test_reload_does_not_redraw(tmp_path, monkeypatch):
    first = generate_posts(tmp_path, n=12, size=48, seed=4)

    def no_drawing(*args, **kwargs):
        raise AssertionError("a complete set must be loaded, not redrawn")

    monkeypatch.setattr(synthetic, "render_post", no_drawing)
    again = generate_posts(tmp_path, n=12, size=48, seed=4)
    assert again == first


def test_incomplete_or_other_spec_is_regenerated(tmp_path, monkeypatch):
    first = generate_posts(tmp_path, n=12, size=48, seed=4)
    (tmp_path / "posts.jsonl").unlink()          # images and spec written, posts never finished
    calls = []
    real = synthetic.render_post
    monkeypatch.setattr(synthetic, "render_post", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = generate_posts(tmp_path, n=12, size=48, seed=4)
    assert len(calls) == 12 and again == first
    assert (tmp_path / "posts.jsonl").is_file()
    other = generate_posts(tmp_path, n=8, size=48, seed=5)
    assert len(other) == 8 and len(calls) == 20
    assert json.loads((tmp_path / "spec.json").read_text())["seed"] == 5
    assert sorted(f.name for f in (tmp_path / "images").iterdir()) == [f"syn-{i:05d}.png" for i in range(8)]


def test_images_show_sentiment_palette(posts600):
    # The palette is a coarse, large cue: negative images are dark, positive ones colourful.
    def mean_channel(mood, mode, channel):
        vals = []
        for p in posts600[:150]:
            if p.meta["image_sentiment"] == mood:
                with Image.open(p.images[0]) as im:
                    vals.append(np.asarray(im.convert(mode), dtype=float)[..., channel].mean())
        return float(np.mean(vals))
    bright = {m: mean_channel(m, "HSV", 2) for m in ("negative", "neutral", "positive")}
    sat = {m: mean_channel(m, "HSV", 1) for m in ("negative", "neutral", "positive")}
    assert bright["positive"] > bright["negative"] + 40 and bright["neutral"] > bright["negative"] + 40
    assert sat["positive"] > sat["neutral"] + 40
