"""``memes``: the CM-Off-Meme research sample (Kumari et al., LREC-COLING 2024), code-mixed Hindi–English memes.

Files (under the data root): ``memes/sample_data.csv`` (2,021 rows) and the images ``memes/LREC_COLING_meme/``
(1,308 files, named by the ``Name`` column; most are JPEG despite ``.png``: open them by content).

Text: ``Text`` (the meme's OCR text). Tasks:

* ``sentiment`` from ``Valence`` (positive / neutral / negative);
* ``sarcasm`` from ``Sarcasm`` (``sarcasm`` → sarcastic, ``non-sarcastic`` → not_sarcastic; two rows are empty
  and get no sarcasm label);
* ``offensive`` from ``Level1`` (``off`` → offensive, ``non-off`` → non-offensive).

The column ``Ground truth reality`` is never read into a post: it is ``There is no offenisve content`` (sic) on
every non-offensive row, so it gives the offensive label away. ``Level2`` (explicit / implicit / non-off) would
too and is not kept either.

Options: ``with_images_only`` (default true) keeps only the rows whose image file exists (1,308 with the
shipped images); ``split_seed`` and ``stratify`` (a task) choose the split. The data defines no split: mmpost
makes a seeded stratified 80/10/10 one.
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
    choice,
    counts_note,
    csv_rows,
    data_file,
    flag,
    image_folder,
    integer,
    lookup,
    rel_name,
    where,
)

__all__ = ["MemesSource", "DATA_FILE"]

DATA_FILE = "memes/sample_data.csv"
_SENTIMENT = {"positive": "positive", "neutral": "neutral", "negative": "negative"}
_SARCASM = {"sarcasm": "sarcastic", "non-sarcastic": "not_sarcastic"}
_OFFENSIVE = {"off": "offensive", "non-off": "non-offensive"}


@register("dataset", "memes")
class MemesSource(DatasetSource):
    name = "memes"
    description = ("CM-Off-Meme sample (LREC-COLING 2024): code-mixed Hindi–English memes with sentiment, sarcasm "
                   "and offensiveness labels; mmpost's seeded split")
    tasks = {"sentiment": ["negative", "neutral", "positive"],
             "sarcasm": ["not_sarcastic", "sarcastic"],
             "offensive": ["non-offensive", "offensive"]}
    options = {"with_images_only": True, "split_seed": 0, "stratify": "sentiment"}
    default_image_root = "memes/LREC_COLING_meme"
    layout = ("Name", "Text", "Valence", "Sarcasm", "Level1")

    def load(self, data_root: Path, *, image_root: Path | None = None, **options: Any) -> SourceData:
        opts = self.check_options(options)
        images_only = flag(self, opts, "with_images_only")
        seed = integer(self, opts, "split_seed")
        stratify = choice(self, opts, "stratify", tuple(self.tasks))
        data_root = Path(data_root)
        path = data_file(data_root, DATA_FILE, self.name)
        posts = self.read_rows(path, rel_name(path, data_root))
        folder = image_folder(self, data_root, image_root)
        notes = ["text: the Text column (OCR); 'Ground truth reality' is never used (it gives the offensive label "
                 "away: 'There is no offenisve content' on every non-offensive row)",
                 "labels: sentiment = Valence; sarcasm = Sarcasm (sarcasm → sarcastic, non-sarcastic → "
                 "not_sarcastic); offensive = Level1 (off → offensive, non-off → non-offensive)"]
        image_note = attach_images(posts, folder, lambda p: p.id)
        if images_only:
            kept = [p for p in posts if p.images]
            if not kept:
                raise SourceError(f"dataset 'memes': with_images_only=true but no row of {path} has an image file "
                                  f"under {folder or '(no image folder: give data.image_root)'}; set "
                                  "data.options.with_images_only=false to use the texts alone")
            notes.append(f"with_images_only: {len(posts) - len(kept):,} of {len(posts):,} rows without an image file "
                         f"were left out, {len(kept):,} kept")
            image_note = attach_images(kept, folder, lambda p: p.id)  # the note for the posts kept
            posts = kept
        else:
            notes.append(f"with_images_only=false: all {len(posts):,} rows kept, with or without an image")
        unlabelled = sum("sarcasm" not in p.labels for p in posts)
        if unlabelled:
            notes.append(f"{unlabelled} posts have an empty Sarcasm cell and no sarcasm label")
        stratified_split(posts, stratify, (0.8, 0.1, 0.1), seed=seed, overwrite=True)
        notes.append(f"split: mmpost's (the data defines none): stratified 80/10/10 by {stratify} "
                     f"(split_seed {seed})")
        notes.append(counts_note(posts, stratify, self.tasks[stratify]))
        notes.append(image_note)
        return SourceData(posts=posts, notes=notes)

    def read_rows(self, path: Path, source: str) -> list[Post]:
        posts: list[Post] = []
        seen: dict[str, int] = {}
        for row, line, rec in csv_rows(path, self.layout):
            name = rec["Name"].strip()
            if not name:
                raise SourceError(f"{where(path, row, line, 'Name')}: empty")
            if name in seen:
                raise SourceError(f"{where(path, row, line, 'Name')}: {name} already on row {seen[name]}")
            seen[name] = row
            labels = {"sentiment": lookup(_SENTIMENT, rec["Valence"].strip(), where(path, row, line, "Valence")),
                      "offensive": lookup(_OFFENSIVE, rec["Level1"].strip(), where(path, row, line, "Level1"))}
            sarcasm = rec["Sarcasm"].strip()
            if sarcasm:
                labels["sarcasm"] = lookup(_SARCASM, sarcasm, where(path, row, line, "Sarcasm"))
            posts.append(Post(id=name, text=rec["Text"].strip(), labels=labels,
                              meta={"source": source, "row": row}))
        return posts
