"""``msd``: Multimodal Sarcasm Detection tweets (Cai, Cai & Wan, ACL 2019).

Files (under the data root): ``msd/text/train.txt``, ``valid2.txt``, ``test2.txt`` (the splits train, dev,
test) and, for ``attributes=true``, ``msd/extract/extract_all``. Every line is one **Python list literal**:

* train: ``['<tweet id>', '<text>', label]``
* valid2 / test2: ``['<tweet id>', '<text>', hashtag_label, human_label]``: the label from the original post's
  hashtags, then the one from a second human annotator; the paper and upstream code use the last
* extract_all: ``['<image id>', w1, w2, w3, w4, w5]``, five predicted attribute words per image

Lines are parsed with :func:`ast.literal_eval`, which reads literals only (the upstream loader calls
``eval``, which would run any code in the file). Labels: 1 sarcastic, 0 not.

Options:

* ``variant``: ``filtered`` (default) drops posts whose whitespace tokens include one of :data:`FILTER_WORDS`,
  as the upstream code does (it gives the paper's 19,816 / 2,410 / 2,409); ``raw`` keeps all
  (29,040 / 2,410 / 2,409).
* ``label``: ``human`` (default; the last element, as the paper) or ``hashtag`` (the second-to-last; dev and
  test only: train has one label per post, used either way).
* ``attributes``: true appends ``" | image attributes: w1 w2 w3 w4 w5"`` to each text (a text-side view of the
  image, as the paper's attribute modality).

Texts are lowercased and tokenised upstream, with ``<user>``, ``<url>``, ``<num>`` placeholders and
``emoji_<n>`` tokens. Images: ``{id}.jpg``; four test samples ship under ``msd/sample_images``.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from mmpost.data.post import Post
from mmpost.registry import register

from .base import DatasetSource, SourceData
from .common import (
    SourceError,
    attach_images,
    choice,
    counts_note,
    data_file,
    flag,
    image_folder,
    rel_name,
)

__all__ = ["MsdSource", "parse_line", "read_lines", "FILTER_WORDS", "FILES"]

FILES = {"train": "msd/text/train.txt", "dev": "msd/text/valid2.txt", "test": "msd/text/test2.txt"}
ATTRIBUTES_FILE = "msd/extract/extract_all"
FILTER_WORDS = frozenset("sarcasm sarcastic reposting <url> joke humour humor jokes irony ironic exgag".split())
_SARCASM = {0: "not_sarcastic", 1: "sarcastic"}


def parse_line(line: str, path: Path | str, lineno: int) -> list[Any]:
    """One line of an MSD file as a list, by :func:`ast.literal_eval` (literals only, never code).
    Raises :class:`SourceError` naming the file and line when the line is not a list literal."""
    try:
        value = ast.literal_eval(line.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise SourceError(f"{path}: line {lineno}: not a Python list literal ({type(e).__name__}: {e}); "
                          f"starts {line.strip()[:60]!r}") from None
    if not isinstance(value, list):
        raise SourceError(f"{path}: line {lineno}: expected a list, got {type(value).__name__} "
                          f"{line.strip()[:60]!r}")
    return value


def read_lines(path: Path) -> list[tuple[int, list[Any]]]:
    """``(line number, list)`` for each non-blank line of an MSD file (CRLF or LF)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise SourceError(f"{path}: not valid UTF-8 ({e.reason})") from None
    return [(n, parse_line(line, path, n)) for n, line in enumerate(lines, 1) if line.strip()]


def _post(value: list[Any], path: Path, lineno: int, split: str, label: str, source: str) -> Post:
    """Check the shape of one text line and make its post."""
    want = 3 if split == "train" else 4
    shape = "[id, text, label]" if want == 3 else "[id, text, hashtag_label, human_label]"
    if len(value) != want:
        raise SourceError(f"{path}: line {lineno}: expected {shape}, got a list of {len(value)} elements")
    pid, text, *labels = value
    if not isinstance(pid, str) or not pid.strip():
        raise SourceError(f"{path}: line {lineno}, field 'id': expected a non-empty string, got {pid!r}")
    if not isinstance(text, str):
        raise SourceError(f"{path}: line {lineno}, field 'text': expected a string, got {text!r}")
    for i, v in enumerate(labels):
        if type(v) is not int or v not in _SARCASM:
            field = "label" if want == 3 else ("hashtag_label", "human_label")[i]
            raise SourceError(f"{path}: line {lineno}, field {field!r}: expected 0 or 1, got {v!r}")
    value_ = labels[-1] if label == "human" or split == "train" else labels[-2]
    return Post(id=pid.strip(), text=text.strip(), labels={"sarcasm": _SARCASM[value_]},
                meta={"source": source, "row": lineno, "split": split})


def _attributes(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for lineno, value in read_lines(path):
        if len(value) != 6 or not all(isinstance(v, str) for v in value):
            raise SourceError(f"{path}: line {lineno}: expected ['<image id>', w1, w2, w3, w4, w5] (6 strings), "
                              f"got {value!r:.80}")
        out[value[0].strip()] = [w.strip() for w in value[1:]]
    return out


@register("dataset", "msd")
class MsdSource(DatasetSource):
    name = "msd"
    description = ("Multimodal Sarcasm Detection tweets (ACL 2019): sarcastic or not; the authors' splits, "
                   "optionally with the upstream keyword filter")
    tasks = {"sarcasm": ["not_sarcastic", "sarcastic"]}
    options = {"variant": "filtered", "label": "human", "attributes": False}
    default_image_root = None                     # msd/sample_images holds 4 samples: data.image_root=...

    def load(self, data_root: Path, *, image_root: Path | None = None, **options: Any) -> SourceData:
        opts = self.check_options(options)
        variant = choice(self, opts, "variant", ("filtered", "raw"))
        label = choice(self, opts, "label", ("human", "hashtag"))
        attributes = flag(self, opts, "attributes")
        data_root = Path(data_root)
        posts: list[Post] = []
        seen: dict[str, str] = {}
        dropped: dict[str, int] = {}
        for split, rel in FILES.items():
            path = data_file(data_root, rel, self.name)
            source = rel_name(path, data_root)
            dropped[split] = 0
            for lineno, value in read_lines(path):
                post = _post(value, path, lineno, split, label, source)
                if post.id in seen:
                    raise SourceError(f"{path}: line {lineno}: id {post.id} is already in {seen[post.id]}")
                seen[post.id] = f"{rel} (line {lineno})"
                if variant == "filtered" and not FILTER_WORDS.isdisjoint(post.text.split()):
                    dropped[split] += 1
                    continue
                posts.append(post)
        notes = ["splits: the files' own (train.txt → train, valid2.txt → dev, test2.txt → test)"]
        if variant == "filtered":
            notes.append("variant filtered (upstream filter, the paper's numbers): dropped posts whose tokens include "
                         f"one of {' '.join(sorted(FILTER_WORDS))}: " +
                         ", ".join(f"{s} {n:,}" for s, n in dropped.items()))
        else:
            notes.append("variant raw: no keyword filter (the paper trains on the filtered 19,816 train posts)")
        notes.append("labels: 1 sarcastic, 0 not; " + (
            "dev/test use the last (human annotator) label, as the paper" if label == "human" else
            "dev/test use the second-to-last (hashtag) label, not the paper's") +
            "; train has a single label per post")
        if attributes:
            attrs = _attributes(data_file(data_root, ATTRIBUTES_FILE, self.name))
            missing = [p for p in posts if p.id not in attrs]
            if missing:
                p = missing[0]
                raise SourceError(f"{data_root / ATTRIBUTES_FILE}: no attributes for id {p.id} ({p.meta['source']} "
                                  f"line {p.meta['row']}; {len(missing)} posts have none)")
            for p in posts:
                p.text = f"{p.text} | image attributes: {' '.join(attrs[p.id])}"
            notes.append(f"attributes: the five predicted image attribute words ({ATTRIBUTES_FILE}) are appended "
                         "to every text as ' | image attributes: w1 w2 w3 w4 w5'")
        notes.append(counts_note(posts, "sarcasm", self.tasks["sarcasm"]))
        notes.append(attach_images(posts, image_folder(self, data_root, image_root), lambda p: f"{p.id}.jpg"))
        return SourceData(posts=posts, notes=notes)
