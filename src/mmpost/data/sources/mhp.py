"""``mhp``: Dog Whistle 5k, multimodal hate in tweets (Botelho, Hale & Vidgen, Findings of ACL 2021).

Files (under the data root): ``mhp/Final_Dog_Whistle_5k.converted.csv`` (a CSV conversion of the upstream
pickle, same 5,000 rows; the ``.pkl`` beside it is never read: unpickling runs arbitrary code) and
``mhp/DataSplits.csv`` (columns ``Train IDs``, ``Dev IDs``, ``Test IDs``, shorter columns padded with empty
cells; 3,998 / 500 / 502 ids).

Text: ``tweet_text`` followed by ``img_text`` (the OCR of the image, present for about half the tweets), so a
text model also reads the words written in the image. Task ``hate`` from ``Primary_numeric_gt``: 0 none,
1 hateful, 2 counter-speech, 3 reclaimed (checked against ``Primary_string_gt``). ``Tweet ID`` is a 19-digit
number: it is always kept as a string (a float would change its last digits).

Images: not in the data (MMHS150K images); the file-name convention is ``{Tweet ID}.jpg``. Beware: 2,814 of
the 5,000 ids (and the same ids in ``DataSplits.csv``) are exactly representable as 64-bit floats, against about
1 in 150 for random 19-digit numbers, so they look float-rounded upstream (e.g. ``...521024``): the join with the
splits works, but an image file named by the real tweet id may not be found for those posts.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mmpost.data.post import Post
from mmpost.registry import register

from .base import DatasetSource, SourceData
from .common import (
    SourceError,
    attach_images,
    counts_note,
    csv_rows,
    data_file,
    image_folder,
    lookup,
    rel_name,
    where,
)

__all__ = ["MhpSource", "DATA_FILE", "SPLITS_FILE"]

DATA_FILE = "mhp/Final_Dog_Whistle_5k.converted.csv"
SPLITS_FILE = "mhp/DataSplits.csv"
_HATE = {"0": "none", "1": "hateful", "2": "counter-speech", "3": "reclaimed"}
_SPLIT_COLUMNS = {"Train IDs": "train", "Dev IDs": "dev", "Test IDs": "test"}
_FLOAT_INT = re.compile(r"^(\d+)\.0*$")   # "1061622575963521024.0", as a spreadsheet may write an integer


def normalise_id(cell: str, place: str) -> str:
    """A tweet id as ``Tweet ID`` writes it (digits): ``"123"`` and ``"123.0"`` → ``"123"``. Scientific
    notation (``"1.06E+18"``) or other text raises :class:`SourceError`: its digits are lost."""
    s = cell.strip()
    if s.isdigit():
        return s
    m = _FLOAT_INT.match(s)
    if m:
        return m.group(1)
    raise SourceError(f"{place}: {s!r} is not a tweet id written as an integer (a float in scientific notation "
                      "has lost the id's last digits)")


@register("dataset", "mhp")
class MhpSource(DatasetSource):
    name = "mhp"
    description = ("Dog Whistle 5k multimodal hate tweets (Findings ACL 2021): none / hateful / counter-speech / "
                   "reclaimed, with the authors' train/dev/test ids")
    tasks = {"hate": ["none", "hateful", "counter-speech", "reclaimed"]}
    options: dict[str, Any] = {}
    default_image_root = None
    layout = ("Tweet ID", "tweet_text", "img_text", "Primary_numeric_gt", "Primary_string_gt")

    def load(self, data_root: Path, *, image_root: Path | None = None, **options: Any) -> SourceData:
        self.check_options(options)
        data_root = Path(data_root)
        path = data_file(data_root, DATA_FILE, self.name)
        posts, with_ocr = self._read(path, rel_name(path, data_root))
        splits = self._splits(data_file(data_root, SPLITS_FILE, self.name), {p.id: p for p in posts})
        for p in posts:
            if p.id not in splits:
                raise SourceError(f"{where(path, p.meta['row'])}: tweet {p.id} is in no split of {SPLITS_FILE}")
            p.meta["split"] = splits[p.id]
        notes = [f"text: tweet_text + img_text (the image's OCR text, present for {with_ocr:,} of {len(posts):,} "
                 "posts)",
                 "labels: hate from Primary_numeric_gt (0 none, 1 hateful, 2 counter-speech, 3 reclaimed; the "
                 "names are the codebook's and agree with Primary_string_gt)",
                 f"splits: the authors' ({SPLITS_FILE})",
                 counts_note(posts, "hate", self.tasks["hate"]),
                 attach_images(posts, image_folder(self, data_root, image_root), self.image_name)]
        return SourceData(posts=posts, notes=notes)

    def image_name(self, post: Post) -> str:
        return f"{post.id}.jpg"

    def read_rows(self, path: Path, source: str) -> list[Post]:
        return self._read(path, source)[0]

    def _read(self, path: Path, source: str) -> tuple[list[Post], int]:
        """The posts, and how many have an OCR text."""
        posts: list[Post] = []
        with_ocr = 0
        seen: dict[str, int] = {}
        for row, line, rec in csv_rows(path, self.layout):
            tid = normalise_id(rec["Tweet ID"], where(path, row, line, "Tweet ID"))
            if tid in seen:
                raise SourceError(f"{where(path, row, line, 'Tweet ID')}: {tid} already on row {seen[tid]}")
            seen[tid] = row
            hate = lookup(_HATE, rec["Primary_numeric_gt"].strip(), where(path, row, line, "Primary_numeric_gt"))
            name = rec["Primary_string_gt"].strip()
            if name != hate:
                raise SourceError(f"{where(path, row, line, 'Primary_string_gt')}: {name!r} disagrees with "
                                  f"Primary_numeric_gt {rec['Primary_numeric_gt'].strip()} ({hate})")
            tweet, ocr = rec["tweet_text"].strip(), rec["img_text"].strip()
            posts.append(Post(id=tid, text=f"{tweet} {ocr}".strip(), labels={"hate": hate},
                              meta={"source": source, "row": row}))
            with_ocr += bool(ocr)
        return posts, with_ocr

    def _splits(self, path: Path, known: dict[str, Post]) -> dict[str, str]:
        out: dict[str, str] = {}
        for row, line, rec in csv_rows(path, list(_SPLIT_COLUMNS)):
            for col, split in _SPLIT_COLUMNS.items():
                if not rec[col].strip():
                    continue
                place = where(path, row, line, col)
                tid = normalise_id(rec[col], place)
                if tid not in known:
                    raise SourceError(f"{place}: tweet {tid} is not in {DATA_FILE}")
                if tid in out:
                    raise SourceError(f"{place}: tweet {tid} is already in {out[tid]}")
                out[tid] = split
        return out
