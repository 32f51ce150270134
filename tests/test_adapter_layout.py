"""A run trained with a dataset adapter evaluates and predicts a file in that dataset's own layout (here MultiOFF's,
with its ``Non-offensiv`` spelling), with no data.columns overrides."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mmpost.apps.evaluate import evaluate
from mmpost.apps.predict import predict_file
from mmpost.apps.train import train
from mmpost.config import load_config
from mmpost.data.sources import get_source
from mmpost.data.sources.layout import read_in_layout, reads_layout

LABELS = ("offensive", "Non-offensiv")


def _write_layout_file(path, images, names, seed):
    """A CSV in MultiOFF's layout: image_name, sentence, label; the label follows the image's brightness."""
    rng = np.random.default_rng(seed)
    lines = ["image_name,sentence,label"]
    for i, name in enumerate(names):
        label = LABELS[i % 2]
        if images is not None:
            value = 230 if label == "offensive" else 25
            pixels = np.clip(value + rng.normal(0, 10, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(images / name)
        lines.append(f"{name},a meme about topic {i % 5},{label}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


@pytest.fixture
def multioff_root(tmp_path):
    root = tmp_path / "root"
    images = root / "multioff" / "Labelled Images"
    images.mkdir(parents=True)
    split = root / "multioff" / "Split Dataset"
    _write_layout_file(split / "Training_meme_dataset.csv", images, [f"tr{i}.png" for i in range(40)], 0)
    _write_layout_file(split / "Validation_meme_dataset.csv", images, [f"va{i}.png" for i in range(12)], 1)
    _write_layout_file(tmp_path / "Testing_meme_dataset.csv", images, [f"te{i}.png" for i in range(10)], 2)
    return root


def test_a_file_in_the_layout_is_recognised_and_read(multioff_root, tmp_path):
    source = get_source("multioff")
    test_file = tmp_path / "Testing_meme_dataset.csv"
    assert reads_layout(source, test_file)
    assert not reads_layout(get_source("memes"), test_file)
    other = tmp_path / "other.csv"
    other.write_text("id,text,label\n1,x,offensive\n")
    assert not reads_layout(source, other)
    data = read_in_layout(source, test_file, data_root=multioff_root, image_root=None)
    assert [p.labels["offensive"] for p in data.posts[:2]] == ["offensive", "non-offensive"]
    assert all(p.images and p.meta["split"] == "test" for p in data.posts)


def test_a_multioff_run_evaluates_and_predicts_its_test_layout(multioff_root, tmp_path):
    overrides = ["data.source=multioff", f"data.data_root={multioff_root}", "task=offensive",
                 "text_encoder.name=tiny-text", "image_encoder.name=tiny-image", "model.hidden=16",
                 "model.proj_dim=8", "train.epochs=1", "train.batch_size=8", f"out_dir={tmp_path}/runs",
                 f"cache_dir={tmp_path}/cache", "progress=false"]
    run_dir = train(load_config(None, overrides)).run_dir
    test_file = tmp_path / "Testing_meme_dataset.csv"

    metrics, out = evaluate(run_dir, str(test_file), progress=False)
    scored = metrics["all"]["offensive"]
    assert scored["n"] == 10
    assert out.name == "Testing_meme_dataset" and (out / "metrics.json").exists()

    counts = predict_file(run_dir, str(test_file), tmp_path / "pred.jsonl", progress=False)
    assert counts["posts"] == 10 and counts["without_image"] == 0
    ids = [json.loads(line)["id"] for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert ids == [f"te{i}.png" for i in range(10)]
