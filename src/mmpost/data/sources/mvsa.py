"""``mvsa-single`` and ``mvsa-multiple``: MVSA tweet sentiment (Niu et al., MMM 2016), CLMLF's fold 1.

Files (under the data root): ``mvsa/MVSA-single/10-flod-1/{train,dev,test}.json`` and the same under
``mvsa/MVSA-multiple/`` ("flod" is the upstream spelling). Each is a JSON array of
``{"id": "<post number>", "text": "...", "emotion_label": 0 | 1 | 2}``; the three files are the splits
(8:1:1, stratified upstream).

Labels: ``0`` = positive, ``1`` = neutral, ``2`` = negative. This mapping is **inferred**: no code or document
of CLMLF names the numbers, but the per-class totals match the published MVSA statistics exactly. Texts lost
their non-ASCII characters upstream (they read ``?``) and some are cut mid-word.

Images: not in the data (the release names them ``{id}.jpg``); four MVSA-Single samples ship under
``mvsa/MVSA-single/sample_images`` (``data.image_root=mvsa/MVSA-single/sample_images`` attaches them).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from mmpost.data.post import Post
from mmpost.registry import register

from .base import DatasetSource, SourceData
from .common import SourceError, attach_images, counts_note, data_file, image_folder, rel_name

__all__ = ["MvsaSource", "MvsaSingle", "MvsaMultiple", "LABELS"]

LABELS = {0: "positive", 1: "neutral", 2: "negative"}   # inferred from the class totals (see the module doc)
_FILES = {"train": "train.json", "dev": "dev.json", "test": "test.json"}


class MvsaSource(DatasetSource):
    """Both MVSA variants; a subclass sets ``folder`` (under the data root)."""

    folder: ClassVar[str] = ""
    tasks = {"sentiment": ["negative", "neutral", "positive"]}
    options: ClassVar[dict[str, Any]] = {}

    def load(self, data_root: Path, *, image_root: Path | None = None, **options: Any) -> SourceData:
        self.check_options(options)
        data_root = Path(data_root)
        posts: list[Post] = []
        seen: dict[str, str] = {}
        for split, fname in _FILES.items():
            path = data_file(data_root, f"{self.folder}/{fname}", self.name)
            for post in self._read(path, rel_name(path, data_root), split):
                if post.id in seen:
                    raise SourceError(f"{path}: item {post.meta['row']}: id {post.id!r} is already in "
                                      f"{seen[post.id]} (the splits must be disjoint)")
                seen[post.id] = f"{split} ({fname})"
                posts.append(post)
        notes = ["labels: emotion_label 0 = positive, 1 = neutral, 2 = negative is inferred (the class totals "
                 "match the published MVSA statistics), not documented upstream",
                 "splits: the files' own (CLMLF fold 1: train.json, dev.json, test.json)",
                 counts_note(posts, "sentiment", self.tasks["sentiment"]),
                 attach_images(posts, image_folder(self, data_root, image_root), lambda p: f"{p.id}.jpg")]
        return SourceData(posts=posts, notes=notes)

    def _read(self, path: Path, source: str, split: str) -> list[Post]:
        try:
            with open(path, encoding="utf-8") as f:
                items = json.load(f)
        except json.JSONDecodeError as e:
            raise SourceError(f"{path}: line {e.lineno}, column {e.colno}: not valid JSON ({e.msg})") from None
        except UnicodeDecodeError as e:
            raise SourceError(f"{path}: not valid UTF-8 ({e.reason})") from None
        if not isinstance(items, list):
            raise SourceError(f"{path}: expected a JSON array of posts, got {type(items).__name__}")
        posts = []
        for row, item in enumerate(items, 1):
            if not isinstance(item, dict):
                raise SourceError(f"{path}: item {row}: expected an object, got {type(item).__name__}")
            for key in ("id", "text", "emotion_label"):
                if key not in item:
                    raise SourceError(f"{path}: item {row}: no field {key!r}")
            pid, text, label = item["id"], item["text"], item["emotion_label"]
            if not isinstance(pid, (str, int)) or isinstance(pid, bool) or not str(pid).strip():
                raise SourceError(f"{path}: item {row}, field 'id': expected a post number, got {pid!r}")
            if not isinstance(text, str):
                raise SourceError(f"{path}: item {row}, field 'text': expected a string, got {text!r}")
            if type(label) is not int or label not in LABELS:
                raise SourceError(f"{path}: item {row} (id {pid}), field 'emotion_label': {label!r} is not one of "
                                  "0 (positive), 1 (neutral), 2 (negative)")
            posts.append(Post(id=str(pid).strip(), text=text.strip(), labels={"sentiment": LABELS[label]},
                              meta={"source": source, "row": row, "split": split}))
        return posts


@register("dataset", "mvsa-single")
class MvsaSingle(MvsaSource):
    name = "mvsa-single"
    description = "MVSA-Single tweet sentiment (positive / neutral / negative), CLMLF's fold-1 split"
    folder = "mvsa/MVSA-single/10-flod-1"
    default_image_root = None                     # mvsa/MVSA-single/sample_images: 4 samples


@register("dataset", "mvsa-multiple")
class MvsaMultiple(MvsaSource):
    name = "mvsa-multiple"
    description = "MVSA-Multiple tweet sentiment (positive / neutral / negative), CLMLF's fold-1 split"
    folder = "mvsa/MVSA-multiple/10-flod-1"
    default_image_root = None
