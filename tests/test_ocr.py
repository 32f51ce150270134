"""data.ocr: the words written in the images, read once per image (cached), joined to the post text."""
import numpy as np
import pytest
from PIL import Image

from mmpost.data import ocr
from mmpost.data.post import Post


def box(x, y):
    return [[x, y], [x + 10, y], [x + 10, y + 5], [x, y + 5]]


def test_lines_are_read_top_to_bottom_then_left_to_right_and_weak_ones_dropped():
    found = [(box(50, 40), "world", 0.9), (box(0, 40), "hello", 0.8), (box(0, 0), "TOP", 0.99),
             (box(0, 80), "noise", 0.2), (box(0, 90), "  ", 0.9)]
    assert ocr.lines_to_text(found, 0.5) == "TOP hello world"
    assert ocr.lines_to_text(found, 0.1) == "TOP hello world noise"


class CountingReader:
    """Reads the dominant colour's name off an image; counts its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, path):
        self.calls.append(path)
        rgb = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).mean(0)
        return [(box(0, 0), ["RED", "GREEN", "BLUE"][int(rgb.argmax())], 0.9)]


def _image(folder, name, rgb):
    path = folder / name
    Image.new("RGB", (16, 16), rgb).save(path)
    return str(path)


def test_each_image_is_read_once_and_the_cache_survives_a_torn_line(tmp_path):
    red, blue = _image(tmp_path, "r.png", (200, 0, 0)), _image(tmp_path, "b.png", (0, 0, 200))
    missing = str(tmp_path / "gone.png")
    reader = CountingReader()
    got = ocr.image_texts([red, blue, red, missing], tmp_path / "cache", reader=reader)
    assert got == {red: "RED", blue: "BLUE", missing: ""}
    assert sorted(reader.calls) == sorted([red, blue])
    cache_file = tmp_path / "cache" / "ocr" / f"{ocr.ENGINE}.jsonl"
    with open(cache_file, "a") as f:
        f.write('{"key": "torn')                  # a run killed mid-write
    again = CountingReader()
    copy = _image(tmp_path, "copy.png", (200, 0, 0))    # same bytes as red: a cache hit
    assert ocr.image_texts([copy, blue], tmp_path / "cache", reader=again) == {copy: "RED", blue: "BLUE"}
    assert again.calls == []


def test_an_unreadable_image_adds_no_text_and_does_not_stop_the_rest(tmp_path):
    good = _image(tmp_path, "g.png", (0, 200, 0))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    got = ocr.image_texts([str(bad), good], None, reader=CountingReader())
    assert got == {str(bad): "", good: "GREEN"}


def test_image_text_joins_the_text_or_goes_after_the_separator():
    posts = [Post("a", "look at this", images=["x.png", "y.png"]), Post("b", "no words", images=["z.png"]),
             Post("c", "text only")]
    texts = {"x.png": "BIG SALE", "y.png": "today", "z.png": ""}
    joined = ocr.with_image_text(posts, into="text", sep=" [SEP] ", texts=texts)
    assert joined[0].text == "look at this BIG SALE today"
    assert joined[0].meta == {"post_text": "look at this", "image_text": "BIG SALE today"}
    assert joined[1] is posts[1] and joined[2] is posts[2]
    field = ocr.with_image_text(posts, into="field", sep=" [SEP] ", texts=texts)
    assert field[0].text == "look at this [SEP] BIG SALE today"
    assert posts[0].text == "look at this"                     # the originals are untouched
    with pytest.raises(ValueError, match="data.ocr.into"):
        ocr.with_image_text(posts, into="caption", sep=" ", texts=texts)


def test_the_separator_is_the_text_towers_own():
    class Tok:
        sep_token = "[SEP]"

    class Tower:
        tokenizer = Tok()
    assert ocr.separator(Tower()) == " [SEP] "
    assert ocr.separator(object()) == " | "


def test_training_and_prediction_read_the_image_text(tmp_path, monkeypatch):
    """The toy set's label is the image colour named in neither text: with OCR that reads the colour, a run's
    datasets carry the colour word, and a saved run reads it again for new posts at prediction time."""
    from mmpost.apps.predictor import Predictor
    from mmpost.apps.train import train
    from mmpost.config import load_config
    from mmpost.data.manifest import ColumnMapping, load_manifest
    from tests.conftest import tiny_overrides, write_toy_csv
    reader = CountingReader()
    monkeypatch.setattr(ocr, "rapidocr_reader", lambda threads=None: reader)
    csv = write_toy_csv(tmp_path, n=30)
    cfg = load_config(None, tiny_overrides(tmp_path, csv) + ["data.ocr.enabled=true", "train.epochs=1"])
    result = train(cfg)
    assert reader.calls, "OCR was not run"
    cache_file = tmp_path / "cache" / "ocr" / f"{ocr.ENGINE}.jsonl"
    assert cache_file.exists()
    seen = len(reader.calls)
    predictor = Predictor(result.run_dir)
    mapping = ColumnMapping(id="post_id", text="body", image="picture", image_root=str(tmp_path / "imgs"))
    posts = load_manifest(csv, mapping)[:4]
    fresh = _image(tmp_path / "imgs", "fresh.png", (0, 0, 230))
    posts.append(Post("new", "a new post", images=[fresh]))
    assert len(predictor.predict(posts)) == 5
    assert reader.calls[seen:] == [fresh]        # only the new image was read; the rest came from the cache


def test_rapidocr_reads_the_word_written_in_a_synthetic_image(tmp_path):
    pytest.importorskip("rapidocr_onnxruntime")
    from mmpost.data.synthetic import generate_posts
    posts = generate_posts(tmp_path / "syn", n=40, size=128, seed=0)
    written = [p for p in posts if p.meta.get("caption")][:5]
    assert written, "the synthetic set writes some subjects as words"
    texts = ocr.image_texts([p.images[0] for p in written], tmp_path / "cache", reader=ocr.rapidocr_reader(threads=1))
    hits = sum(p.meta["caption"].lower() in texts[p.images[0]].lower() for p in written)
    assert hits >= len(written) - 1, texts
