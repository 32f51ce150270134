"""Text written in a post's images, read by OCR (``data.ocr``), joined to what the text tower reads.

Memes, screenshots and quote cards carry their words in the picture. With ``data.ocr.enabled`` each image is read
once by `RapidOCR <https://pypi.org/project/rapidocr-onnxruntime/>`_ (PP-OCR models in ONNX, shipped inside the
package: the optional extra ``mmpost[ocr]``), and its lines, top to bottom then left to right, with a recognition
score of at least ``min_score``, become the image's text. ``into`` says where it goes:

* ``text``: after the post's own text, as more words of it;
* ``field``: as a field of its own, after the text tower's separator token (``[SEP]`` for BERT-like towers, so
  MiniLM reads ``[CLS] post text [SEP] image text [SEP]``); a tower without one gets `` | ``.

The OCR text is cached per image, by the image's bytes, in ``<cache_dir>/ocr/<engine>.jsonl`` (one JSON line per
image, appended as each is read, so an interrupted run keeps what it read). An image that cannot be read adds no
text. OCR costs about a second a meme on one CPU thread, far more than both towers' features (docs/ocr.md).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from mmpost.data.post import Post
from mmpost.encoders.cache import file_key
from mmpost.progress import bar

log = logging.getLogger(__name__)

INTO = ("text", "field")
ENGINE = "rapidocr-onnxruntime-1.4.4"
Reader = Callable[[str], list[tuple[list, str, float]]]     # path → [(box, text, score)]


def rapidocr_reader(threads: int | None = None) -> Reader:
    """RapidOCR's detector, angle classifier and recogniser; a clear error where the extra is missing."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as e:
        raise ImportError("data.ocr needs RapidOCR: pip install 'mmpost[ocr]' (rapidocr-onnxruntime)") from e
    kwargs = {} if threads is None else {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
    engine = RapidOCR(**kwargs)

    def read(path: str) -> list[tuple[list, str, float]]:
        result, _ = engine(path)
        return [(box, text, float(score)) for box, text, score in (result or [])]
    return read


def lines_to_text(found: Sequence[tuple[list, str, float]], min_score: float) -> str:
    """The recognised lines in reading order (by the top of each box, then its left edge), joined by spaces."""
    kept = [(min(p[1] for p in box), min(p[0] for p in box), text.strip())
            for box, text, score in found if score >= min_score and text.strip()]
    return " ".join(text for _, _, text in sorted(kept))


class OcrCache:
    """{image key: text}, read from and appended to ``<folder>/<engine>.jsonl``; a torn last line is skipped."""

    def __init__(self, folder: Path, engine: str = ENGINE) -> None:
        self.path = folder / f"{engine}.jsonl"
        self.texts: dict[str, str] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.texts[row["key"]] = row["text"]

    def add(self, key: str, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"key": key, "text": text}, ensure_ascii=False) + "\n")
        self.texts[key] = text


def image_texts(paths: Sequence[str], cache_dir: Path | None, *, min_score: float = 0.5,
                reader: Reader | None = None, progress: bool = False) -> dict[str, str]:
    """{path: OCR text} for every distinct path; unreadable images give ""."""
    cache = OcrCache(cache_dir / "ocr") if cache_dir is not None else None
    out: dict[str, str] = {}
    keys: dict[str, str | None] = {}
    for path in dict.fromkeys(paths):
        try:
            keys[path] = f"{file_key(path)}:{min_score}"
        except OSError:
            keys[path] = None
            out[path] = ""
    todo = [p for p, k in keys.items() if k is not None and (cache is None or k not in cache.texts)]
    if todo:
        reader = reader or rapidocr_reader()
    for path in bar(todo, desc="OCR", unit="image", enabled=progress and len(todo) > 1):
        try:
            text = lines_to_text(reader(path), min_score)
        except Exception as e:  # one bad image must not stop a long run: it adds no text
            log.warning("OCR could not read %s (%s: %s); it adds no text", path, type(e).__name__, e)
            text = ""
        if cache is not None:
            cache.add(keys[path], text)  # type: ignore[arg-type]
        out[path] = text
    for path, key in keys.items():
        if path not in out:
            out[path] = cache.texts[key] if cache is not None and key is not None else ""
    return out


def separator(text_tower) -> str:
    """What goes between the post text and the image text with ``into: field``."""
    sep = getattr(getattr(text_tower, "tokenizer", None), "sep_token", None)
    return f" {sep} " if sep else " | "


def with_image_text(posts: Sequence[Post], *, into: str, sep: str, texts: dict[str, str]) -> list[Post]:
    """Copies of ``posts`` whose text carries their images' OCR text (the original text kept in ``meta``)."""
    if into not in INTO:
        raise ValueError(f"data.ocr.into must be one of {', '.join(INTO)}, got {into!r}")
    out = []
    for post in posts:
        found = " ".join(t for t in (texts.get(p, "") for p in post.images) if t)
        if not found:
            out.append(post)
            continue
        joined = f"{post.text} {found}" if into == "text" else f"{post.text}{sep}{found}"
        out.append(replace(post, text=joined.strip(), meta={**post.meta, "post_text": post.text,
                                                          "image_text": found}))
    return out
