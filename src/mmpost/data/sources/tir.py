"""``tir``: the Text–Image Relationship tweets (Vempala & Preoţiuc-Pietro, ACL 2019), with ITRp's splits.

Files (under the data root): ``tir/textimage-data.csv`` (4,471 tweets) and, for the ``test=rm`` / ``test=rl``
variants, ``tir/controversial_samples.txt`` (218 test relabels from ITRp, Su et al.).

Two binary tasks and their cross product:

* ``text_represented``: some content word of the text is shown in the image (``represented``) or none is;
* ``image_adds``: the image adds meaning beyond the text (``adds``) or not;
* ``relation``: the code ``XY`` with X = text represented, Y = image adds (``"01"``: text not represented,
  image adds), as ITRp writes it.

Splits (the file defines none):

* ``split=itrp`` (default): as ITRp, data rows 0–3,575 (file order) are train + dev and rows 3,576–4,470 are
  test; dev is a seeded stratified 10 % of the first 3,576 rows (stratified on ``relation``, ``split_seed``).
* ``split=seed1``: a seeded stratified 80/10/10 split of all rows on ``relation``.

Test variants (ITRp's ``statistic.py``): ``test=raw`` keeps the original labels; ``test=rm`` drops the
controversial rows that are in test; ``test=rl`` gives them the AFTER code of ``controversial_samples.txt``
(both labels). With ``split=itrp`` all 218 rows are in test; with ``seed1`` only those that land there change.

The tweets' quotes are backslash-escaped (``\\"``), not doubled: the file is read with
``doublequote=False, escapechar='\\\\'`` (the default dialect splits 32 rows into extra columns).
Images are not in the data; the file-name convention is ``T{tweet_id}.jpg``.
"""
from __future__ import annotations

import re
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
    image_folder,
    integer,
    lookup,
    rel_name,
    where,
)

__all__ = ["TirSource", "controversial", "DATA_FILE", "CONTROVERSIAL_FILE", "ITRP_TEST_START"]

DATA_FILE = "tir/textimage-data.csv"
CONTROVERSIAL_FILE = "tir/controversial_samples.txt"
ITRP_TEST_START = 3576          # ITRp's loader: split=3576 (rows before it are train + dev, the rest test)

_BINARY = {"0": 0, "1": 1}
_ONE_HOT = {"image_adds_text_repr": "11", "image_adds_text_notrepr": "01", "image_notadds_text_repr": "10",
            "image_notadds_text_notrepr": "00"}   # one-hot column -> the XY code it stands for
_COLUMNS = ["tweet_id", "tweet", "text_is_represented", "image_adds", *_ONE_HOT]
_LINE = re.compile(r"^\s*([01]{2})\s*->\s*([01]{2})\s*:\s*(.*?)\s*$")


def _labels(code: str) -> dict[str, str]:
    """Both binary labels and the relation from an XY code."""
    return {"text_represented": ("not_represented", "represented")[int(code[0])],
            "image_adds": ("not_adds", "adds")[int(code[1])],
            "relation": code}


def controversial(data_root: Path) -> dict[int, tuple[str, str]]:
    """ITRp's relabels: ``{row: (before, after)}`` with ``row`` the 0-based data-row index into
    ``textimage-data.csv`` (header not counted) and the codes as ``"XY"`` strings.

    Lines read ``BEFORE->AFTER: i, j, k``; blank lines are skipped. Raises :class:`SourceError` naming the line
    for a line of another shape or an index listed twice."""
    path = data_file(Path(data_root), CONTROVERSIAL_FILE, "tir")
    out: dict[int, tuple[str, str]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            m = _LINE.match(line)
            if m is None:
                raise SourceError(f"{path}: line {lineno}: expected 'BEFORE->AFTER: i, j, k' with 2-digit 0/1 "
                                  f"codes, got {line.strip()[:80]!r}")
            before, after, rest = m.groups()
            for tok in rest.split(","):
                tok = tok.strip()
                if not tok.isdigit():
                    raise SourceError(f"{path}: line {lineno}: {tok!r} is not a row index")
                i = int(tok)
                if i in out:
                    raise SourceError(f"{path}: line {lineno}: row {i} is listed twice")
                out[i] = (before, after)
    return out


@register("dataset", "tir")
class TirSource(DatasetSource):
    name = "tir"
    description = ("Text–Image Relationship tweets (ACL 2019): is the text shown in the image, does the image add "
                   "meaning; ITRp's train/test split and its test relabels")
    tasks = {"text_represented": ["not_represented", "represented"],
             "image_adds": ["not_adds", "adds"],
             "relation": ["00", "01", "10", "11"]}
    options = {"split": "itrp", "test": "raw", "split_seed": 0}
    default_image_root = None
    test_variants = {"test_RM": {"test": "rm"}, "test_RL": {"test": "rl"}}
    layout = tuple(_COLUMNS)

    def load(self, data_root: Path, *, image_root: Path | None = None, **options: Any) -> SourceData:
        opts = self.check_options(options)
        split = choice(self, opts, "split", ("itrp", "seed1"))
        test = choice(self, opts, "test", ("raw", "rm", "rl"))
        seed = integer(self, opts, "split_seed")
        data_root = Path(data_root)
        path = data_file(data_root, DATA_FILE, self.name)
        posts = self.read_rows(path, rel_name(path, data_root))
        notes = ["labels: relation is the ITRp code XY, X = text_represented, Y = image_adds "
                 "(00 neither, 01 image adds only, 10 text represented only, 11 both)"]

        if split == "itrp":
            if len(posts) <= ITRP_TEST_START:
                raise SourceError(f"{path}: split=itrp needs more than {ITRP_TEST_START} rows (the first "
                                  f"{ITRP_TEST_START} are train + dev), the file has {len(posts)}")
            for p in posts[ITRP_TEST_START:]:
                p.meta["split"] = "test"
            stratified_split(posts[:ITRP_TEST_START], "relation", (0.9, 0.1), names=("train", "dev"), seed=seed,
                             overwrite=True)
            notes.append(f"split itrp (ITRp): data rows 0-{ITRP_TEST_START - 1} are train + dev, rows "
                         f"{ITRP_TEST_START}-{len(posts) - 1} test (file order); dev is a stratified 10% of the first "
                         f"{ITRP_TEST_START} rows by relation (split_seed {seed})")
        else:
            stratified_split(posts, "relation", (0.8, 0.1, 0.1), seed=seed, overwrite=True)
            notes.append(f"split seed1: stratified 80/10/10 over all {len(posts):,} rows by relation "
                         f"(split_seed {seed}); not the ITRp split")

        if test != "raw":
            posts, note = _test_variant(posts, controversial(data_root), test, data_root / CONTROVERSIAL_FILE,
                                        split)
            notes.append(note)
        else:
            notes.append("test raw: original labels (test=rm drops, test=rl relabels ITRp's 218 controversial rows)")
        notes.append(counts_note(posts, "relation", self.tasks["relation"]))
        notes.append(attach_images(posts, image_folder(self, data_root, image_root), self.image_name))
        return SourceData(posts=posts, notes=notes)

    def image_name(self, post: Post) -> str:
        return f"T{post.id}.jpg"

    def read_rows(self, path: Path, source: str) -> list[Post]:
        posts: list[Post] = []
        seen: dict[str, int] = {}
        for row, line, rec in csv_rows(path, _COLUMNS, doublequote=False, escapechar="\\"):
            tid = rec["tweet_id"].strip()
            if not tid:
                raise SourceError(f"{where(path, row, line, 'tweet_id')}: empty")
            if tid in seen:
                raise SourceError(f"{where(path, row, line, 'tweet_id')}: {tid} already on row {seen[tid]}")
            seen[tid] = row
            x = lookup(_BINARY, rec["text_is_represented"].strip(), where(path, row, line, "text_is_represented"))
            y = lookup(_BINARY, rec["image_adds"].strip(), where(path, row, line, "image_adds"))
            code = f"{x}{y}"
            hot = [c for c, xy in _ONE_HOT.items() if lookup(_BINARY, rec[c].strip(), where(path, row, line, c))]
            if hot != [c for c, xy in _ONE_HOT.items() if xy == code]:
                raise SourceError(f"{where(path, row, line)}: one-hot columns {hot} disagree with "
                                  f"text_is_represented={x}, image_adds={y}")
            posts.append(Post(id=tid, text=rec["tweet"].strip(), labels=_labels(code),
                              meta={"source": source, "row": row, "itrp_index": row - 1}))
        return posts


def _test_variant(posts: list[Post], relabels: dict[int, tuple[str, str]], test: str, path: Path,
                  split: str) -> tuple[list[Post], str]:
    """Drop (``rm``) or relabel (``rl``) the controversial rows that are in test; every listed row must exist
    and currently have the BEFORE code."""
    by_index = {p.meta["itrp_index"]: p for p in posts}
    for i, (before, after) in sorted(relabels.items()):
        p = by_index.get(i)
        if p is None:
            raise SourceError(f"{path}: row {i} is not a data row of {DATA_FILE} ({len(posts)} rows, 0-based)")
        if p.labels["relation"] != before:
            raise SourceError(f"{path}: row {i} (tweet {p.id}) is listed as {before}->{after} but its code in "
                              f"{DATA_FILE} is {p.labels['relation']}")
    in_test = {i for i in relabels if by_index[i].meta["split"] == "test"}
    where_ = (f"all {len(in_test)} listed rows are in test" if len(in_test) == len(relabels) else
              f"{len(in_test)} of the {len(relabels)} listed rows are in this split's test; the other "
              f"{len(relabels) - len(in_test)} keep their original labels in train/dev")
    if test == "rm":
        kept = [p for p in posts if p.meta["itrp_index"] not in in_test]
        n_test = sum(p.meta["split"] == "test" for p in kept)
        return kept, (f"test rm (ITRp 'removed'): {len(in_test)} controversial rows ({CONTROVERSIAL_FILE}) dropped "
                      f"from test, which keeps {n_test:,} posts ({where_}; split {split})")
    for i in sorted(in_test):
        p = by_index[i]
        before, after = relabels[i]
        p.labels = _labels(after)
        p.meta["relabelled"] = f"{before}->{after}"
    changed = sum(b[0] != a[0] for i, (b, a) in relabels.items() if i in in_test)
    changed_y = sum(b[1] != a[1] for i, (b, a) in relabels.items() if i in in_test)
    return posts, (f"test rl (ITRp 'replaced'): {len(in_test)} controversial test rows relabelled to the AFTER code "
                   f"of {CONTROVERSIAL_FILE} ({changed} text_represented and {changed_y} image_adds labels change; "
                   f"{where_}; split {split}); meta['relabelled'] says BEFORE->AFTER")

