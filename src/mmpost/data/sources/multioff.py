"""``multioff``: MultiOFF offensive political memes (Suryawanshi et al., TRAC @ LREC 2020).

Files (under the data root): ``multioff/Split Dataset/Training_meme_dataset.csv`` (445 rows) and
``Validation_meme_dataset.csv`` (149), columns ``image_name``, ``sentence`` (the meme's text) and ``label``
(``offensive`` / ``Non-offensiv``, truncated in the original). Images: ``multioff/Labelled Images/`` holds the
validation images only (148 of 149; many have an extension that does not match their content).

Splits: the upstream test file is held out (not in the data), so mmpost uses **Validation as test** and a
seeded stratified 10 % of Training as dev (``split_seed``). Scores are therefore not the paper's test scores.
Post ids are the image names.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmpost.data.post import Post
from mmpost.data.splits import stratified_split
from mmpost.registry import register

from .base import DatasetSource, SourceData
from .common import (
    SourceError,
    attach_images,
    counts_note,
    csv_rows,
    data_file,
    image_folder,
    integer,
    lookup,
    rel_name,
    where,
)

__all__ = ["MultiOffSource", "TRAIN_FILE", "VALIDATION_FILE"]

TRAIN_FILE = "multioff/Split Dataset/Training_meme_dataset.csv"
VALIDATION_FILE = "multioff/Split Dataset/Validation_meme_dataset.csv"
_LABELS = {"offensive": "offensive", "Non-offensiv": "non-offensive", "Non-offensive": "non-offensive"}


@register("dataset", "multioff")
class MultiOffSource(DatasetSource):
    name = "multioff"
    description = ("MultiOFF offensive political memes (TRAC 2020): offensive or not; upstream validation as test "
                   "(the test file is held out), dev from training")
    tasks = {"offensive": ["non-offensive", "offensive"]}
    options = {"split_seed": 0}
    default_image_root = "multioff/Labelled Images"
    layout = ("image_name", "sentence", "label")

    def load(self, data_root: Path, *, image_root: Path | None = None, **options: Any) -> SourceData:
        opts = self.check_options(options)
        seed = integer(self, opts, "split_seed")
        data_root = Path(data_root)
        seen: dict[str, str] = {}
        parts: dict[str, list[Post]] = {}
        for part, rel in (("train", TRAIN_FILE), ("test", VALIDATION_FILE)):
            path = data_file(data_root, rel, self.name)
            parts[part] = self._read(path, rel_name(path, data_root), seen)
        for p in parts["test"]:
            p.meta["split"] = "test"
        stratified_split(parts["train"], "offensive", (0.9, 0.1), names=("train", "dev"), seed=seed, overwrite=True)
        posts = parts["train"] + parts["test"]
        notes = ["labels: offensive / Non-offensiv (sic) → offensive / non-offensive",
                 "splits: the upstream test file is held out, so Validation_meme_dataset.csv is mmpost's test and dev "
                 f"is a stratified 10% of Training_meme_dataset.csv (split_seed {seed}); not the paper's test set",
                 counts_note(posts, "offensive", self.tasks["offensive"]),
                 attach_images(posts, image_folder(self, data_root, image_root), lambda p: p.id)]
        return SourceData(posts=posts, notes=notes)

    def read_rows(self, path: Path, source: str) -> list[Post]:
        return self._read(path, source, {})

    def _read(self, path: Path, source: str, seen: dict[str, str]) -> list[Post]:
        posts: list[Post] = []
        for row, line, rec in csv_rows(path, self.layout):
            name = rec["image_name"].strip()
            if not name:
                raise SourceError(f"{where(path, row, line, 'image_name')}: empty")
            if name in seen:
                raise SourceError(f"{where(path, row, line, 'image_name')}: {name} already in {seen[name]}")
            seen[name] = f"{source} row {row}"
            label = lookup(_LABELS, rec["label"].strip(), where(path, row, line, "label"))
            posts.append(Post(id=name, text=rec["sentence"].strip(), labels={"offensive": label},
                              meta={"source": source, "row": row}))
        return posts
