"""``twitter-emoticon``: the Multimodal-TwitterEmoticon layout (English tweets, each a text, an image and the
emoticon that went with it), the data set the contrastive emoticon paper (2408.02571) evaluates on.

mmpost does not ship it; a user who has it lays it out under the data root as:

    twitter-emoticon/data.csv    one row per tweet: id, text, image, emoticon [, split]
    twitter-emoticon/images/     the image files the image column names

Columns are found by name, first match wins: id ``id`` / ``tweet_id`` (absent: the row number); text ``text`` /
``tweet`` / ``tweet_text``; image ``image`` / ``image_name`` / ``image_file`` / ``image_path`` / ``img``; label
``emoticon`` / ``emoji`` / ``label``; split ``split`` (``train``, ``dev``, ``test``; ``val``, ``valid`` and
``validation`` mean dev). A ``.tsv`` file is read tab-separated. Option ``file`` points at another table.

The label cell may hold the emoji itself (``😂``), its CLDR name (``face_with_tears_of_joy``, ``:red_heart:``) or
its code points (``U+1F602``); all become the CLDR name, so ``❤️`` and ``❤`` are one class, and skin tones fold
into the base emoji unless ``skin_tones=keep``. An empty cell leaves the post unlabelled.

Texts are kept as written. If a text still holds its label emoji, the ``emoticon`` task (``mmpost.data.emoji``)
removes it before training, and a note says how many do. Without a split column, mmpost makes a seeded stratified
80/10/10 split by emoticon (``split_seed``). The label set is the data's: ``tasks`` lists no names in advance.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from mmpost.data.emoji import SKIN_TONE_MODES, emoji_name, find_emoji
from mmpost.data.post import Post
from mmpost.data.splits import stratified_split
from mmpost.registry import register

from .base import DatasetSource, SourceData
from .common import (
    SourceError,
    attach_images,
    choice,
    counts_note,
    csv_rows,
    data_file,
    image_folder,
    integer,
    rel_name,
    where,
)

__all__ = ["TwitterEmoticonSource", "DATA_FILE", "COLUMN_NAMES"]

DATA_FILE = "twitter-emoticon/data.csv"
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "id": ("id", "tweet_id"),
    "text": ("text", "tweet", "tweet_text"),
    "image": ("image", "image_name", "image_file", "image_path", "img"),
    "label": ("emoticon", "emoji", "label"),
    "split": ("split",),
}
_REQUIRED = ("text", "image", "label")
_SPLITS = {"train": "train", "dev": "dev", "val": "dev", "valid": "dev", "validation": "dev", "test": "test"}


def _columns(path: Path, delimiter: str) -> dict[str, str | None]:
    """Role → the header's column for it (None where the table has none); a required role missing raises."""
    with open(path, encoding="utf-8", newline="") as f:
        header = next(csv.reader(f, delimiter=delimiter), None)
    if not header:
        raise SourceError(f"{path}: empty file, expected a header row")
    lower = {h.strip().lower(): h for h in header}
    found = {role: next((lower[n] for n in names if n in lower), None) for role, names in COLUMN_NAMES.items()}
    missing = [role for role in _REQUIRED if found[role] is None]
    if missing:
        want = "; ".join(f"{role}: {' / '.join(COLUMN_NAMES[role])}" for role in missing)
        raise SourceError(f"{path}: no column for {', '.join(missing)} (looked for {want}); the header has "
                          f"{', '.join(map(repr, header))}")
    return found


@register("dataset", "twitter-emoticon")
class TwitterEmoticonSource(DatasetSource):
    name = "twitter-emoticon"
    description = ("Multimodal-TwitterEmoticon layout (text, image, emoticon label per tweet), as the contrastive "
                   "emoticon paper uses it; not shipped: lay your copy out under the data root")
    tasks = {"emoticon": []}          # the label set comes from the data (CLDR names of the emoji)
    options = {"file": DATA_FILE, "split_seed": 0, "skin_tones": "fold"}
    default_image_root = "twitter-emoticon/images"

    def load(self, data_root: Path, *, image_root: Path | None = None, **options: Any) -> SourceData:
        opts = self.check_options(options)
        seed = integer(self, opts, "split_seed")
        skin_tones = choice(self, opts, "skin_tones", SKIN_TONE_MODES)
        data_root = Path(data_root)
        path = data_file(data_root, str(opts["file"]), self.name)
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        cols = _columns(path, delimiter)
        posts = self._read(path, rel_name(path, data_root), cols, delimiter, skin_tones)
        notes = [f"labels: the {cols['label']!r} column as CLDR emoji names ({skin_tones} skin tones); "
                 f"{len({p.labels['emoticon'] for p in posts if p.labels})} distinct emoticons"]
        leaking = sum(any(e.name == p.labels["emoticon"] for e in find_emoji(p.text, skin_tones=skin_tones))
                      for p in posts if p.labels)
        notes.append(f"texts: {leaking:,} of {len(posts):,} still hold their label emoji; the emoticon task removes it "
                     "before training")
        if cols["split"] is not None:
            notes.append(f"split: the {cols['split']!r} column")
        else:
            stratified_split(posts, "emoticon", (0.8, 0.1, 0.1), seed=seed, overwrite=True)
            notes.append(f"split: none in the file; a stratified 80/10/10 split by emoticon (split_seed {seed})")
        notes.append(counts_note(posts))
        notes.append(attach_images(posts, image_folder(self, data_root, image_root), lambda p: p.meta["image_file"]))
        return SourceData(posts=posts, notes=notes)

    def _read(self, path: Path, source: str, cols: dict[str, str | None], delimiter: str,
              skin_tones: str) -> list[Post]:
        needed = [c for c in cols.values() if c is not None]
        posts: list[Post] = []
        seen: dict[str, int] = {}
        for row, line, rec in csv_rows(path, needed, delimiter=delimiter):
            pid = rec[cols["id"]].strip() if cols["id"] else str(row)
            if not pid:
                raise SourceError(f"{where(path, row, line, cols['id'])}: empty id")
            if pid in seen:
                raise SourceError(f"{where(path, row, line, cols['id'])}: id {pid} already on row {seen[pid]}")
            seen[pid] = row
            labels = {}
            cell = rec[cols["label"]].strip()                                  # type: ignore[index]
            if cell:
                try:
                    labels["emoticon"] = emoji_name(cell, skin_tones=skin_tones)
                except ValueError as e:
                    raise SourceError(f"{where(path, row, line, cols['label'])}: {e}") from None
            meta: dict[str, Any] = {"source": source, "row": row,
                                    "image_file": rec[cols["image"]].strip()}  # type: ignore[index]
            if cols["split"] is not None:
                value = rec[cols["split"]].strip().lower()
                if value not in _SPLITS:
                    raise SourceError(f"{where(path, row, line, cols['split'])}: unknown split {value!r}; expected "
                                      f"one of {', '.join(_SPLITS)}")
                meta["split"] = _SPLITS[value]
            posts.append(Post(id=pid, text=rec[cols["text"]].strip(), labels=labels, meta=meta))  # type: ignore[index]
        return posts
