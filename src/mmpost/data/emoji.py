"""Emoji in post texts → an ``emoticon`` task: which emoji goes with this post?

Works on any posts (a manifest, a dataset adapter, the synthetic set): :func:`emoticon_task` reads the emoji out
of each text, chooses the label set, gives each post one label, removes the label emoji from the text so the
input does not give the answer away, and reports the class distribution.

    task = emoticon_task(posts, top_k=10, multi="first")
    task.posts            # copies: labels["emoticon"] = "face_with_tears_of_joy", text without the label emoji
    task.labels           # the label set, most frequent first
    print("\\n".join(task.report.lines()))

Extraction is Unicode-aware and leans on the ``emoji`` package (the Unicode emoji data, kept up to date), never on
a hand-written table: ZWJ sequences (👨‍👩‍👧‍👦, 🏳️‍🌈) and flags (🇯🇵, 🏴󠁧󠁢󠁳󠁣󠁴󠁿) are one emoji each, keycaps (1️⃣) keep their
digit, a variation selector 16 (❤️) or its absence (❤) makes no difference to the class, and skin tones (👍🏽) fold
into the base emoji unless ``skin_tones="keep"``. A character followed by variation selector 15 (❤︎) was asked to
look like text, so it is not counted; a bare symbol whose default look is text (©, ™, ❤ without VS16) counts unless
``text_symbols=False``. Stray modifiers and selectors next to an emoji belong to its span.

A class is named by its CLDR short name (``"red_heart"``, ``"thumbs_up"``): plain text that is safe in files,
tables and plots; :func:`glyph` gives the picture back. A post that already carries a label for the task (a
dataset with a label column) keeps it, normalised the same way, and only its text is cleaned.

Multi-emoji policy (``multi``), over the emoji of the label set in a post:
``first`` (the first in the text), ``last``, ``most`` (the most repeated; a tie goes to the first), or ``single``
(keep only posts whose text holds one distinct emoji at all; the others are dropped as ambiguous).
Leak removal (``strip``): ``label`` removes every occurrence of the label emoji (any variant: with or without
VS15/VS16, any skin tone); ``all`` removes every emoji from the text.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import emoji as emoji_data

from mmpost.data.emoji_options import MULTI_POLICIES, SKIN_TONE_MODES, STRIP_MODES
from mmpost.data.post import Post

__all__ = ["Emoji", "EmoticonReport", "EmoticonTask", "MULTI_POLICIES", "STRIP_MODES", "SKIN_TONE_MODES",
           "find_emoji", "emoji_in", "emoji_name", "glyph", "remove_emoji", "choose_labels", "class_counts",
           "emoticon_task"]

_VS15, _VS16 = "\ufe0e", "\ufe0f"
_SKIN_TONES = frozenset(chr(c) for c in range(0x1F3FB, 0x1F400))
_TRAILING = _SKIN_TONES | {_VS15, _VS16}                    # absorbed into the span of the emoji before them
_TONE_SUFFIX = re.compile(r"(?:_(?:light|medium-light|medium|medium-dark|dark)_skin_tone)+$")
_STATUS = emoji_data.STATUS                                 # component, fully/minimally qualified, unqualified


@dataclass(frozen=True)
class Emoji:
    """One emoji in a text: ``text[start:end]`` is ``written`` (trailing selectors and stray modifiers included).

    ``presentation`` is ``"emoji"``, ``"text-default"`` (a bare symbol whose default look is text: ©, ™, ❤ without
    VS16) or ``"text"`` (followed by VS15: the writer asked for the text look)."""

    start: int
    end: int
    written: str
    name: str
    presentation: str = "emoji"


def _fold(name: str, skin_tones: str) -> str:
    return _TONE_SUFFIX.sub("", name) if skin_tones == "fold" else name


def _check_choice(value: str, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


def find_emoji(text: str, *, skin_tones: str = "fold") -> list[Emoji]:
    """Every emoji in ``text``, in order, with its class name and presentation (see the module docstring)."""
    _check_choice(skin_tones, SKIN_TONE_MODES, "skin_tones")
    found: list[Emoji] = []
    for m in emoji_data.emoji_list(text):
        seq, start, end = m["emoji"], m["match_start"], m["match_end"]
        info = emoji_data.EMOJI_DATA.get(seq, {})
        if info.get("status") == _STATUS["component"]:     # a lone skin tone or hair part: part of its neighbour
            if found and found[-1].end == start:
                prev = found[-1]
                found[-1] = Emoji(prev.start, end, text[prev.start:end], prev.name, prev.presentation)
            continue
        while end < len(text) and text[end] in _TRAILING:
            end += 1
        written = text[start:end]
        if _VS15 in written[len(seq):] or seq.endswith(_VS15):
            presentation = "text"
        elif len(seq) == 1 and info.get("status") == _STATUS["unqualified"] and _VS16 not in written:
            presentation = "text-default"
        else:
            presentation = "emoji"
        name = info.get("en", "").strip(":") or _codepoints(seq)
        found.append(Emoji(start, end, written, _fold(name, skin_tones), presentation))
    return found


def emoji_in(text: str, *, skin_tones: str = "fold", text_symbols: bool = True) -> list[Emoji]:
    """The emoji that count in ``text``: never text-style (VS15) ones; bare text-default symbols only with
    ``text_symbols``."""
    return [e for e in find_emoji(text, skin_tones=skin_tones)
            if e.presentation == "emoji" or (text_symbols and e.presentation == "text-default")]


def _codepoints(seq: str) -> str:
    return "_".join(f"U+{ord(c):04X}" for c in seq if c not in (_VS15, _VS16))


def emoji_name(value: str, *, skin_tones: str = "fold") -> str:
    """The class name of one emoji given as a glyph (``"❤️"``, ``"❤"``), a CLDR name (``"red_heart"``,
    ``":red_heart:"``), a common alias (``":joy:"``) or code points (``"U+2764"``, ``"1F602"``). Raises
    ValueError for anything else."""
    s = value.strip()
    if re.fullmatch(r"(?:[Uu]\+)?[0-9A-Fa-f]{4,6}(?:[ _](?:[Uu]\+)?[0-9A-Fa-f]{4,6})*", s) and (
            s[:2] in ("U+", "u+") or any(c.isdigit() for c in s)):
        try:
            s = "".join(chr(int(part.upper().removeprefix("U+"), 16)) for part in re.split(r"[ _]", s))
        except (ValueError, OverflowError):
            raise ValueError(f"{value!r} is not an emoji (bad code point)") from None
    found = find_emoji(s, skin_tones=skin_tones)
    if found and found[0].start == 0 and found[-1].end == len(s):
        if len(found) > 1:
            raise ValueError(f"{value!r} holds {len(found)} emoji, expected one")
        return found[0].name
    name = s.strip(":")
    if name and emoji_data.emojize(f":{name}:", language="en") != f":{name}:":
        return _fold(name, skin_tones)
    alias = emoji_data.emojize(f":{name}:", language="alias") if name else ""
    if alias and alias != f":{name}:":                 # an alias such as :heart: → its CLDR name
        return emoji_name(alias, skin_tones=skin_tones)
    raise ValueError(f"{value!r} is not an emoji, an emoji's CLDR name (e.g. red_heart) or its code points")


def glyph(name: str) -> str:
    """The emoji of a class name (fully qualified: ``"red_heart"`` → ❤️); the name itself if it is not one."""
    if name.startswith("U+"):
        return "".join(chr(int(p[2:], 16)) for p in name.split("_"))
    out = emoji_data.emojize(f":{name}:", language="en")
    return name if out == f":{name}:" else out


def remove_emoji(text: str, spans: Iterable[Emoji]) -> str:
    """``text`` without the given spans; the spaces around a removed emoji shrink to one, ends are stripped."""
    pieces, pos = [], 0
    for e in sorted(spans, key=lambda e: e.start):
        pieces.append(text[pos:e.start])
        pos = e.end
    pieces.append(text[pos:])
    out = pieces[0]
    for piece in pieces[1:]:
        if (not out or out[-1] in " \t") and piece[:1] in (" ", "\t"):
            piece = piece.lstrip(" \t")
        out += piece
    return out.strip()


# ---------------------------------------------------------------------------------------------- the task


@dataclass
class EmoticonReport:
    """What :func:`emoticon_task` did: posts in, kept and dropped (by reason), and the class distribution."""

    task: str
    posts: int
    with_emoji: int                                  # posts with an emoji in the text, or a label already
    several: int                                     # posts whose text holds more than one distinct emoji
    kept: int
    dropped: dict[str, int]                          # reason → posts
    labels: list[str]
    counts: dict[str, dict[str, int]]                # label → {split or "all": posts}
    frequency: list[tuple[str, int]]                 # every emoji name → posts that hold it, most frequent first
    options: dict[str, Any] = field(default_factory=dict)

    def recount(self, posts: Sequence[Post]) -> None:
        """Count the classes again over ``posts`` (after they were validated or split again)."""
        self.counts = class_counts(posts, self.task, self.labels)
        self.kept = len(posts)

    def splits(self) -> list[str]:
        seen = {s for c in self.counts.values() for s in c if s != "all"}
        return [s for s in ("train", "dev", "test") if s in seen] + sorted(seen - {"train", "dev", "test"})

    def lines(self) -> list[str]:
        """One line each: what was read, kept and dropped, and the options."""
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        out = [f"{self.task}: {self.posts:,} posts read, {self.with_emoji:,} with an emoji ({self.several:,} with "
               f"several distinct ones); {self.kept:,} kept in {len(self.labels)} classes ({opts})"]
        out += [f"{self.task}: {n:,} posts dropped: {reason}" for reason, n in self.dropped.items() if n]
        dist = ", ".join(f"{glyph(k)} {k} {self.counts[k]['all']:,}" for k in self.labels)
        out.append(f"{self.task} classes: {dist}")
        return out

    def markdown(self) -> str:
        """The class distribution as a markdown table (per split where the posts have splits)."""
        splits = self.splits()
        head = "| class | emoji | " + " | ".join(splits + ["all", "share"]) + " |"
        rule = "|---|:-:|" + "---:|" * (len(splits) + 2)
        total = max(1, sum(c["all"] for c in self.counts.values()))
        rows = [f"| {k} | {glyph(k)} | " + " | ".join(f"{self.counts[k].get(s, 0):,}" for s in splits)
                + f"{' | ' if splits else ''}{self.counts[k]['all']:,} | {100 * self.counts[k]['all'] / total:.1f}% |"
                for k in self.labels]
        return "\n".join([head, rule, *rows])

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "posts": self.posts, "with_emoji": self.with_emoji, "several": self.several,
                "kept": self.kept, "dropped": dict(self.dropped), "labels": list(self.labels),
                "counts": {k: dict(v) for k, v in self.counts.items()},
                "frequency": [list(x) for x in self.frequency], "options": dict(self.options)}


@dataclass
class EmoticonTask:
    posts: list[Post]
    labels: list[str]
    report: EmoticonReport

    @property
    def glyphs(self) -> dict[str, str]:
        return {k: glyph(k) for k in self.labels}


def class_counts(posts: Sequence[Post], task: str, labels: Sequence[str]) -> dict[str, dict[str, int]]:
    """label → {"all": posts, and per split where posts have ``meta["split"]``}, in the order of ``labels``."""
    counts: dict[str, dict[str, int]] = {k: {"all": 0} for k in labels}
    for p in posts:
        c = counts.setdefault(p.labels[task], {"all": 0})
        c["all"] += 1
        split = p.meta.get("split")
        if split:
            c[split] = c.get(split, 0) + 1
    return counts


def choose_labels(names_per_post: Sequence[Sequence[str]], top_k: int | None) -> list[str]:
    """The ``top_k`` emoji held by the most posts (each post counts an emoji once), most frequent first; ties
    go by name, so the choice does not depend on the order of the posts. ``None``: every emoji seen."""
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    freq = Counter(n for names in names_per_post for n in set(names))
    ranked = sorted(freq, key=lambda n: (-freq[n], n))
    return ranked if top_k is None else ranked[:top_k]


def _pick(names: list[str], label_set: set[str], multi: str) -> str | None:
    inside = [n for n in names if n in label_set]
    if not inside:
        return None
    if multi == "last":
        return inside[-1]
    if multi == "most":
        c = Counter(inside)
        best = max(c.values())
        return next(n for n in inside if c[n] == best)
    return inside[0]                                   # first; single has one distinct emoji by then


def emoticon_task(posts: Sequence[Post], *, task: str = "emoticon", top_k: int | None = 10,
                  labels: Sequence[str] | None = None, multi: str = "first", strip: str = "label",
                  skin_tones: str = "fold", text_symbols: bool = True) -> EmoticonTask:
    """Posts → posts with one ``task`` label each, the label emoji removed from their text (see the module
    docstring). ``labels`` fixes the label set (names or glyphs, in the given order; e.g. the set a model was
    trained on); otherwise the ``top_k`` most frequent emoji are chosen (``None``: all). Posts without a usable
    emoji are left out and counted in the report. Raises ValueError for bad options or when no post has an emoji."""
    _check_choice(multi, MULTI_POLICIES, "multi")
    _check_choice(strip, STRIP_MODES, "strip")
    _check_choice(skin_tones, SKIN_TONE_MODES, "skin_tones")
    posts = list(posts)
    found = [find_emoji(p.text, skin_tones=skin_tones) for p in posts]
    counted = [[e.name for e in f if e.presentation == "emoji" or (text_symbols and e.presentation == "text-default")]
               for f in found]
    given = _given_labels(posts, task, skin_tones)
    candidates = [[g] if g is not None else names for g, names in zip(given, counted)]
    eligible = [c if (g is not None or multi != "single" or len(set(c)) == 1) else []
                for g, c in zip(given, candidates)]
    label_list = _label_set(labels, eligible, top_k, skin_tones, len(posts), task)
    out, dropped = _labelled_posts(posts, found, given, counted, eligible, set(label_list), task, multi, strip)
    freq = Counter(n for c in candidates for n in set(c))
    report = EmoticonReport(
        task=task, posts=len(posts), with_emoji=sum(bool(c) for c in candidates),
        several=sum(len(set(n)) > 1 for n in counted), kept=len(out), dropped=dropped, labels=label_list,
        counts=class_counts(out, task, label_list), frequency=sorted(freq.items(), key=lambda kv: (-kv[1], kv[0])),
        options={"top_k": None if labels is not None else top_k, "multi": multi, "strip": strip,
                 "skin_tones": skin_tones, "text_symbols": text_symbols})
    return EmoticonTask(posts=out, labels=label_list, report=report)


def _given_labels(posts: list[Post], task: str, skin_tones: str) -> list[str | None]:
    """Per post, the class of the label it already carries for ``task`` (normalised), or None."""
    given: list[str | None] = []
    for p in posts:
        value = p.labels.get(task)
        if value is None or not str(value).strip():
            given.append(None)
            continue
        try:
            given.append(emoji_name(str(value), skin_tones=skin_tones))
        except ValueError as e:
            where = f"{p.meta.get('source', 'post')}" + (f": row {p.meta['row']}" if "row" in p.meta else "")
            raise ValueError(f"{where} (post {p.id}), field {task!r}: {e}") from None
    return given


def _label_set(labels: Sequence[str] | None, eligible: list[list[str]], top_k: int | None, skin_tones: str,
               n_posts: int, task: str) -> list[str]:
    """The given ``labels`` as class names, in order; else the ``top_k`` most frequent eligible emoji."""
    if labels is not None:
        label_list = list(dict.fromkeys(emoji_name(str(v), skin_tones=skin_tones) for v in labels))
        if not label_list:
            raise ValueError("labels is empty: give the emoji of the label set, or top_k")
        return label_list
    label_list = choose_labels(eligible, top_k)
    if not label_list:
        raise ValueError(f"none of the {n_posts:,} posts has an emoji in its text (or a {task!r} label)")
    return label_list


def _labelled_posts(posts: list[Post], found: list[list[Emoji]], given: list[str | None], counted: list[list[str]],
                    eligible: list[list[str]], label_set: set[str], task: str, multi: str,
                    strip: str) -> tuple[list[Post], dict[str, int]]:
    """Copies of the posts that get a label, their label emoji removed from the text; and the drops by reason."""
    dropped = {"no emoji in the text": 0, "several distinct emoji (multi=single)": 0,
               "no emoji of the label set": 0, "no text left after removing the emoji": 0}
    out: list[Post] = []
    for p, f, g, names, cands in zip(posts, found, given, counted, eligible):
        if g is None and not names:
            dropped["no emoji in the text"] += 1
            continue
        if not cands:
            dropped["several distinct emoji (multi=single)"] += 1
            continue
        label = _pick(cands, label_set, multi)
        if label is None:
            dropped["no emoji of the label set"] += 1
            continue
        text = remove_emoji(p.text, f if strip == "all" else [e for e in f if e.name == label])
        if not text:
            dropped["no text left after removing the emoji"] += 1
            continue
        meta = {**p.meta, "emoji": names, "text_with_emoji": p.text}
        out.append(Post(id=p.id, text=text, images=list(p.images), labels={**p.labels, task: label}, meta=meta))
    return out, dropped
