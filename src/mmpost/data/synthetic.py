"""The embedded default dataset: synthetic image + text posts whose labels are known by construction.

This data set is **synthetic**. It exists so that mmpost can be installed, trained, evaluated and served
with no download, and so that tests can check that a model really combines both modalities. It is a
smoke-test and demo set, not a benchmark: scores on it say nothing about performance on real posts.

Every post is drawn from a few hidden factors, seeded by ``(seed, index)``:

* the image: a sky and ground whose palette shows the *image sentiment* (bright and sunny = positive,
  grey and overcast = neutral, dark and stormy with rain = negative), a weather element with a big
  face on it (smiling sun, flat-mouthed cloud, frowning storm cloud), and one or two objects. Objects
  are *subjects* (cat, fish, car, house, tree, flower), drawn large on a light card, which a text can
  name, or small *decorations* (heart, star), which carry no content. With ``words_in_image`` a shown
  subject may be written into the image as a meme-style word instead of being drawn; it then counts
  as shown. An image shows zero, one or two subjects; one with none shows one or two decorations.
* the text: a sentence built from templates and synonyms, with a *text sentiment* (negative, neutral,
  positive) and naming zero, one or two subjects. It may describe the image, comment on it,
  contradict its mood, or talk about something unrelated. The words vary (synonyms, templates), so
  a text model has to read the meaning rather than spot a fixed token.

Tasks and their rules (``SYNTHETIC_TASKS`` lists the label names in order):

``sarcasm`` (``not_sarcastic``, ``sarcastic``)
    sarcastic iff the text sentiment contradicts the image sentiment: a positive text over a negative
    image, or a negative text over a positive image. Neutral on either side is no contradiction.
``sentiment`` (``negative``, ``neutral``, ``positive``)
    if sarcastic: negative; elif the text is neutral: the image sentiment; else the text sentiment.
``text_represented`` (``not_represented``, ``represented``)
    represented iff a subject the text names is shown in the image (drawn or written as a word).
``image_adds`` (``not_adds``, ``adds``)
    adds iff the image shows a subject (drawn or written) that the text does not name. Decorations,
    weather and palette never count.
``relation`` (``00``, ``01``, ``10``, ``11``)
    the pair ``XY`` with X = 1 if text_represented and Y = 1 if image_adds, as in the
    text-image-relation (TIR) codes.

``emoticon`` (``EMOTICON_LABELS``: eight face emoji, by CLDR name), a task of its own
    :func:`emoticon_posts` gives each post a copy whose text carries the emoji of its post, chosen by the
    pair (text sentiment, image sentiment): 😭 both negative, 😒 a negative text over a neutral or positive
    image, 😢 a neutral text over a negative image, 😐 both neutral, ☺️ a neutral text over a positive image
    (written with or without VS16, so that both spellings must count as one emoji), 🙃 a positive text over
    a negative image, 😂 a positive text over a neutral image, 😍 both positive. The emoji sits at the end of
    the text (sometimes repeated, sometimes without a space) or at its start; ``mmpost.data.emoji`` reads it
    back as the label and removes it from the text, which gives back the original text exactly. Neither
    modality alone does better than about 47 % (the most frequent emoji per text or per image sentiment).
    The posts of :func:`generate_posts` are not changed by this: the emoji posts are copies made on demand.

No label can be read off one modality alone: the text does not know what the image shows and the
image does not know what the text says. The mix of factors is chosen so that the classes are
reasonably balanced and a model that sees only the text, or only the image, does clearly worse than
one that sees both.

``generate_posts`` is deterministic for a given ``(n, size, seed, words_in_image)``; post ``i`` does not
depend on ``n`` (only the train/dev/test split, a seeded permutation of all ``n`` posts, does).
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mmpost.atomic import atomic_write_json, atomic_write_text
from mmpost.data.post import Post

__all__ = [
    "SPEC_VERSION",
    "SYNTHETIC_TASKS",
    "SUBJECTS",
    "DECORATIONS",
    "Latent",
    "sample_latent",
    "labels_for",
    "compose_text",
    "render_post",
    "make_post",
    "generate_posts",
    "load_posts",
    "EMOTICON_TASK",
    "EMOTICON_LABELS",
    "emoticon_for",
    "emoticon_post",
    "emoticon_posts",
    "generate_emoticon_posts",
]

SPEC_VERSION = "1"

SYNTHETIC_TASKS: dict[str, list[str]] = {
    "sentiment": ["negative", "neutral", "positive"],
    "sarcasm": ["not_sarcastic", "sarcastic"],
    "text_represented": ["not_represented", "represented"],
    "image_adds": ["not_adds", "adds"],
    "relation": ["00", "01", "10", "11"],
}

SENTIMENTS = ("negative", "neutral", "positive")
SUBJECTS = ("cat", "fish", "car", "house", "tree", "flower")
DECORATIONS = ("heart", "star")

# Joint distribution of (text sentiment, image sentiment). Most contradictions are a positive text over
# a negative image; the mass is spread so that neither sentiment alone decides sentiment or sarcasm.
_SENTIMENT_CELLS: tuple[tuple[str, str, float], ...] = (
    ("negative", "negative", 0.090), ("negative", "neutral", 0.050), ("negative", "positive", 0.015),
    ("neutral", "negative", 0.140), ("neutral", "neutral", 0.200), ("neutral", "positive", 0.070),
    ("positive", "negative", 0.180), ("positive", "neutral", 0.165), ("positive", "positive", 0.090),
)
_N_SHOWN = ((0, 0.25), (1, 0.25), (2, 0.50))   # subjects shown in the image
_N_NAMED = ((0, 0.30), (1, 0.35), (2, 0.35))   # subjects named by the text
_P_MISMATCH = 0.10   # the text names only subjects that are not shown, although some are
_P_CAPTION = 0.30    # one shown subject is written as a word (when words_in_image)

# ---------------------------------------------------------------------------------------------- text
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "cat": ("cat", "kitty", "kitten", "tabby"),
    "fish": ("fish", "goldfish", "little fish"),
    "car": ("car", "automobile", "hatchback", "sedan"),
    "house": ("house", "home", "cottage", "little house"),
    "tree": ("tree", "oak", "oak tree", "big tree"),
    "flower": ("flower", "daisy", "blossom", "bloom"),
}
_DETERMINERS = ("the", "my", "this", "a", "our")
_MOODS: dict[str, tuple[str, ...]] = {
    "positive": (
        "What a lovely day", "Absolutely loving this", "This made me so happy", "Best afternoon in ages",
        "Such a cheerful moment", "Feeling wonderful today", "Pure joy", "Could not be happier",
        "So delighted right now", "This is fantastic", "Great vibes all around",
        "Honestly the highlight of my week", "Bright, sunny and perfect", "Such gorgeous weather",
    ),
    "neutral": (
        "Posting this from the bus", "Just another Tuesday", "Taken earlier today",
        "Sharing a quick snapshot", "A picture from this afternoon", "Uploaded from my phone",
        "Here is the photo I mentioned", "Photo from the weekend", "Saving this for later",
        "Adding this one to the album", "Overcast, as usual", "Nothing much to report",
    ),
    "negative": (
        "What a miserable day", "This ruined my mood", "Worst afternoon in ages", "Honestly so disappointing",
        "Feeling awful today", "Everything went wrong", "I cannot stand this", "Such a gloomy, depressing moment",
        "This is terrible", "Honestly the low point of my week", "Dark, stormy and horrible",
        "So sad and fed up",
    ),
}
_ASIDES = (
    "Meeting at nine tomorrow", "Still need to finish my homework", "The playlist is on shuffle",
    "Coffee number three", "Exams start next week", "My phone battery is at ten percent",
    "Laundry is still waiting", "Inbox at two hundred emails", "Rent is due on Friday",
    "Dinner plans are still open",
)
_NAMED_TEMPLATES = (
    "{M}: {np}.", "{M}, look at {np}!", "{NP}. {M}.", "{M} with {np}.", "Me and {np}. {M}.",
    "{M}. Check out {np}.", "Spotted {np} today. {M}.", "{NP} in today's picture. {M}.",
)
_UNNAMED_TEMPLATES = ("{M}.", "{M}. {A}.", "{M}, this picture says it all.", "{A}. {M}.", "{M}!")


def _noun_phrase(rng: random.Random, subjects: list[str]) -> str:
    parts = []
    for s in subjects:
        det, noun = rng.choice(_DETERMINERS), rng.choice(_SYNONYMS[s])
        if det == "a" and noun[0] in "aeiou":
            det = "an"
        parts.append(f"{det} {noun}")
    return " and ".join(parts)


def compose_text(rng: random.Random, sentiment: str, named: list[str]) -> str:
    """A sentence with the given sentiment that names exactly the subjects in ``named``."""
    mood = rng.choice(_MOODS[sentiment])
    if named:
        np_ = _noun_phrase(rng, named)
        text = rng.choice(_NAMED_TEMPLATES).format(M=mood, np=np_, NP=np_[0].upper() + np_[1:])
    else:
        text = rng.choice(_UNNAMED_TEMPLATES).format(M=mood, A=rng.choice(_ASIDES))
    return text


# ------------------------------------------------------------------------------------------- latents
@dataclass
class Latent:
    """The hidden factors of one post; labels follow from them by the rules in the module docstring."""

    text_sentiment: str
    image_sentiment: str
    shown: list[str]                      # subjects shown in the image (drawn or written)
    caption: str | None                   # the shown subject written as a word (if any)
    decorations: list[str]
    named: list[str]                      # subjects the text names
    mismatch: bool
    text: str
    slot_order: list[int] = field(default_factory=lambda: [0, 1])

    @property
    def drawn(self) -> list[str]:
        return [s for s in self.shown if s != self.caption]


def _weighted(rng: random.Random, items: tuple[tuple[Any, float], ...]) -> Any:
    u = rng.random() * sum(w for _, w in items)
    for item, w in items:
        u -= w
        if u < 0:
            return item
    return items[-1][0]


def _post_rng(seed: int, index: int, stream: str) -> random.Random:
    return random.Random(f"mmpost-synthetic/{SPEC_VERSION}/{seed}/{index}/{stream}")


def sample_latent(seed: int, index: int, words_in_image: bool = True) -> Latent:
    """The hidden factors of post ``index``; independent of how many posts are generated."""
    rng = _post_rng(seed, index, "latent")
    t_sent, i_sent = _weighted(rng, tuple(((t, i), w) for t, i, w in _SENTIMENT_CELLS))
    n_shown = _weighted(rng, _N_SHOWN)
    n_named = _weighted(rng, _N_NAMED)
    mismatch_draw = rng.random()
    caption_draw = rng.random()
    decor_draw = rng.random()

    shown = rng.sample(SUBJECTS, n_shown)
    others = [s for s in SUBJECTS if s not in shown]
    rng.shuffle(others)
    mismatch = bool(n_named and n_shown and mismatch_draw < _P_MISMATCH)
    if mismatch or not shown:
        named = others[:n_named]
    else:
        named = shown[:n_named] + others[: max(0, n_named - n_shown)]
        rng.shuffle(named)

    text = compose_text(rng, t_sent, named)
    slot_order = [0, 1]
    rng.shuffle(slot_order)
    caption_pick = rng.choice(shown) if shown else None
    decor_pick = [rng.choice(DECORATIONS) for _ in range(2)]
    # Everything above is drawn whatever words_in_image is, so the flag changes the picture only.
    caption = caption_pick if words_in_image and caption_draw < _P_CAPTION else None
    n_drawn = len(shown) - (caption is not None)
    n_decor = 0 if n_drawn else (1 if decor_draw < 0.5 else 2)
    return Latent(t_sent, i_sent, shown, caption, decor_pick[:n_decor], named, mismatch, text, slot_order)


def labels_for(lat: Latent) -> dict[str, str]:
    """Apply the task rules to the hidden factors."""
    sarcastic = {lat.text_sentiment, lat.image_sentiment} == {"positive", "negative"}
    if sarcastic:
        sentiment = "negative"
    elif lat.text_sentiment == "neutral":
        sentiment = lat.image_sentiment
    else:
        sentiment = lat.text_sentiment
    represented = any(s in lat.shown for s in lat.named)
    adds = any(s not in lat.named for s in lat.shown)
    return {
        "sentiment": sentiment,
        "sarcasm": "sarcastic" if sarcastic else "not_sarcastic",
        "text_represented": "represented" if represented else "not_represented",
        "image_adds": "adds" if adds else "not_adds",
        "relation": f"{int(represented)}{int(adds)}",
    }


# ------------------------------------------------------------------------------------------- drawing
_SUPERSAMPLE = 2


def _jit(rng: random.Random, rgb: tuple[int, int, int], amount: int = 18) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)  # type: ignore[return-value]


_PALETTES = {
    "positive": {"sky": (110, 190, 250), "ground": (90, 200, 70)},
    "neutral": {"sky": (180, 182, 186), "ground": (160, 150, 130)},
    "negative": {"sky": (35, 40, 75), "ground": (45, 50, 45)},
}


def _face(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, mood: str, ink: tuple[int, int, int]) -> None:
    ew = max(1.0, r * 0.13)
    for sx in (-1, 1):
        ex, ey = cx + sx * r * 0.38, cy - r * 0.22
        d.ellipse((ex - ew, ey - ew * 1.4, ex + ew, ey + ew * 1.4), fill=ink)
    w = max(1, round(r * 0.12))
    if mood == "positive":
        d.arc((cx - r * 0.55, cy - r * 0.45, cx + r * 0.55, cy + r * 0.6), 20, 160, fill=ink, width=w)
    elif mood == "negative":
        d.arc((cx - r * 0.5, cy + r * 0.2, cx + r * 0.5, cy + r * 1.0), 200, 340, fill=ink, width=w)
    else:
        d.line((cx - r * 0.45, cy + r * 0.35, cx + r * 0.45, cy + r * 0.35), fill=ink, width=w)


def _cloud(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: tuple[int, int, int]) -> None:
    for dx, dy, rr in ((-0.55, 0.15, 0.55), (0.55, 0.15, 0.55), (0.0, -0.15, 0.75), (0.0, 0.3, 0.5)):
        x, y, q = cx + dx * r, cy + dy * r, rr * r
        d.ellipse((x - q, y - q, x + q, y + q), fill=fill)


def _weather(d: ImageDraw.ImageDraw, rng: random.Random, mood: str, cx: float, cy: float, r: float, S: int) -> None:
    if mood == "positive":
        sun = _jit(rng, (255, 215, 40), 12)
        for k in range(10):
            a = 2 * math.pi * k / 10 + rng.random() * 0.2
            d.line((cx + math.cos(a) * r * 1.05, cy + math.sin(a) * r * 1.05,
                    cx + math.cos(a) * r * 1.5, cy + math.sin(a) * r * 1.5), fill=sun, width=max(1, S // 60))
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=sun)
        _face(d, cx, cy, r, mood, (90, 50, 10))
    elif mood == "neutral":
        _cloud(d, cx, cy, r, _jit(rng, (225, 225, 228), 8))
        _face(d, cx, cy + r * 0.1, r * 0.8, mood, (80, 80, 85))
    else:
        _cloud(d, cx, cy, r, _jit(rng, (75, 78, 92), 8))
        _face(d, cx, cy + r * 0.05, r * 0.8, mood, (15, 15, 25))
        bx = cx + rng.uniform(-0.3, 0.3) * r
        by = cy + r * 0.6
        u = r * 0.35
        d.polygon([(bx, by), (bx + u, by), (bx + 0.2 * u, by + 1.4 * u), (bx + 0.9 * u, by + 1.4 * u),
                   (bx - 0.6 * u, by + 3.2 * u), (bx - 0.1 * u, by + 1.9 * u), (bx - 0.7 * u, by + 1.9 * u)],
                  fill=(255, 230, 60))


def _rain(d: ImageDraw.ImageDraw, rng: random.Random, S: int) -> None:
    col = (150, 170, 220)
    for _ in range(70):
        x, y = rng.uniform(-0.1, 1.0) * S, rng.uniform(0, 1.0) * S
        d.line((x, y, x - S * 0.04, y + S * 0.09), fill=col, width=max(1, S // 128))


def _draw_cat(d, rng, cx, cy, r):
    fur = rng.choice(((240, 140, 40), (130, 130, 135), (60, 55, 55), (235, 225, 210)))
    fur = _jit(rng, fur, 10)
    for sx in (-1, 1):
        d.polygon([(cx + sx * r * 0.85, cy - r * 0.25), (cx + sx * r * 0.75, cy - r * 1.05),
                   (cx + sx * r * 0.2, cy - r * 0.7)], fill=fur)
        d.polygon([(cx + sx * r * 0.72, cy - r * 0.35), (cx + sx * r * 0.68, cy - r * 0.85),
                   (cx + sx * r * 0.35, cy - r * 0.62)], fill=(240, 160, 170))
    d.ellipse((cx - r * 0.85, cy - r * 0.75, cx + r * 0.85, cy + r * 0.75), fill=fur)
    for sx in (-1, 1):
        ex, ey = cx + sx * r * 0.35, cy - r * 0.15
        d.ellipse((ex - r * 0.17, ey - r * 0.2, ex + r * 0.17, ey + r * 0.2), fill=(120, 200, 60))
        d.ellipse((ex - r * 0.05, ey - r * 0.17, ex + r * 0.05, ey + r * 0.17), fill=(10, 10, 10))
        for k in (-1, 0, 1):
            d.line((cx + sx * r * 0.2, cy + r * 0.25, cx + sx * r * 1.05, cy + r * (0.15 + 0.15 * k)),
                   fill=(20, 20, 20), width=max(1, round(r * 0.04)))
    d.polygon([(cx - r * 0.1, cy + r * 0.12), (cx + r * 0.1, cy + r * 0.12), (cx, cy + r * 0.25)],
              fill=(230, 100, 120))


def _draw_fish(d, rng, cx, cy, r):
    body = _jit(rng, rng.choice(((250, 130, 30), (60, 120, 230), (170, 80, 200), (240, 200, 40))), 12)
    d.polygon([(cx + r * 0.35, cy), (cx + r * 1.0, cy - r * 0.55), (cx + r * 1.0, cy + r * 0.55)], fill=body)
    d.ellipse((cx - r * 0.95, cy - r * 0.5, cx + r * 0.55, cy + r * 0.5), fill=body)
    d.polygon([(cx - r * 0.3, cy - r * 0.45), (cx + r * 0.1, cy - r * 0.85), (cx + r * 0.25, cy - r * 0.4)],
              fill=body)
    d.ellipse((cx - r * 0.7, cy - r * 0.2, cx - r * 0.45, cy + r * 0.05), fill=(255, 255, 255))
    d.ellipse((cx - r * 0.63, cy - r * 0.13, cx - r * 0.52, cy - r * 0.02), fill=(0, 0, 0))
    stripe = tuple(max(0, c - 60) for c in body)
    for k in (0, 1):
        x = cx - r * 0.15 + k * r * 0.3
        d.arc((x - r * 0.2, cy - r * 0.45, x + r * 0.2, cy + r * 0.45), 300, 60, fill=stripe,
              width=max(1, round(r * 0.08)))


def _draw_car(d, rng, cx, cy, r):
    body = _jit(rng, rng.choice(((220, 30, 40), (30, 80, 220), (30, 170, 60), (250, 200, 20))), 12)
    d.polygon([(cx - r * 0.5, cy - r * 0.15), (cx - r * 0.3, cy - r * 0.6), (cx + r * 0.35, cy - r * 0.6),
               (cx + r * 0.6, cy - r * 0.15)], fill=body)
    d.polygon([(cx - r * 0.38, cy - r * 0.18), (cx - r * 0.24, cy - r * 0.5), (cx + r * 0.3, cy - r * 0.5),
               (cx + r * 0.47, cy - r * 0.18)], fill=(170, 220, 250))
    d.rounded_rectangle((cx - r * 1.0, cy - r * 0.2, cx + r * 1.0, cy + r * 0.35), radius=r * 0.15, fill=body)
    for sx in (-1, 1):
        wx, wy = cx + sx * r * 0.55, cy + r * 0.38
        d.ellipse((wx - r * 0.27, wy - r * 0.27, wx + r * 0.27, wy + r * 0.27), fill=(20, 20, 20))
        d.ellipse((wx - r * 0.11, wy - r * 0.11, wx + r * 0.11, wy + r * 0.11), fill=(190, 190, 190))
    d.ellipse((cx + r * 0.82, cy - r * 0.1, cx + r * 0.98, cy + r * 0.06), fill=(255, 250, 180))


def _draw_house(d, rng, cx, cy, r):
    wall = _jit(rng, rng.choice(((240, 220, 170), (200, 90, 70), (250, 250, 245), (150, 190, 230))), 10)
    roof = _jit(rng, rng.choice(((170, 40, 30), (100, 60, 40), (60, 60, 70))), 10)
    d.rectangle((cx - r * 0.7, cy - r * 0.2, cx + r * 0.7, cy + r * 0.85), fill=wall)
    d.polygon([(cx - r * 0.95, cy - r * 0.15), (cx, cy - r * 0.95), (cx + r * 0.95, cy - r * 0.15)], fill=roof)
    d.rectangle((cx - r * 0.15, cy + r * 0.3, cx + r * 0.15, cy + r * 0.85), fill=(110, 70, 40))
    for sx in (-1, 1):
        x = cx + sx * r * 0.43
        d.rectangle((x - r * 0.15, cy + r * 0.05, x + r * 0.15, cy + r * 0.35), fill=(120, 190, 240))
        d.line((x, cy + r * 0.05, x, cy + r * 0.35), fill=(255, 255, 255), width=max(1, round(r * 0.04)))


def _draw_tree(d, rng, cx, cy, r):
    leaf = _jit(rng, rng.choice(((30, 140, 40), (60, 170, 50), (20, 110, 60))), 12)
    d.rectangle((cx - r * 0.15, cy + r * 0.1, cx + r * 0.15, cy + r * 1.0), fill=(120, 75, 35))
    for dx, dy, rr in ((-0.4, -0.1, 0.5), (0.4, -0.1, 0.5), (0.0, -0.5, 0.55), (0.0, 0.0, 0.5)):
        x, y, q = cx + dx * r, cy + dy * r, rr * r
        d.ellipse((x - q, y - q, x + q, y + q), fill=leaf)
    dark = tuple(max(0, c - 40) for c in leaf)
    for _ in range(5):
        x, y = cx + rng.uniform(-0.6, 0.6) * r, cy + rng.uniform(-0.7, 0.1) * r
        d.ellipse((x - r * 0.08, y - r * 0.08, x + r * 0.08, y + r * 0.08), fill=dark)


def _draw_flower(d, rng, cx, cy, r):
    petal = _jit(rng, rng.choice(((240, 90, 160), (250, 250, 250), (170, 90, 220), (240, 60, 60))), 10)
    d.line((cx, cy, cx, cy + r * 1.0), fill=(40, 150, 40), width=max(1, round(r * 0.12)))
    d.ellipse((cx, cy + r * 0.45, cx + r * 0.45, cy + r * 0.7), fill=(40, 150, 40))
    for k in range(6):
        a = 2 * math.pi * k / 6
        x, y = cx + math.cos(a) * r * 0.42, cy - r * 0.2 + math.sin(a) * r * 0.42
        d.ellipse((x - r * 0.3, y - r * 0.3, x + r * 0.3, y + r * 0.3), fill=petal)
    d.ellipse((cx - r * 0.22, cy - r * 0.42, cx + r * 0.22, cy + r * 0.02), fill=(250, 200, 30))


def _draw_heart(d, rng, cx, cy, r):
    col = _jit(rng, rng.choice(((230, 30, 60), (250, 110, 170))), 10)
    q = r * 0.45
    d.ellipse((cx - 2 * q, cy - q * 1.4, cx, cy + q * 0.6), fill=col)
    d.ellipse((cx, cy - q * 1.4, cx + 2 * q, cy + q * 0.6), fill=col)
    d.polygon([(cx - 1.95 * q, cy - 0.2 * q), (cx + 1.95 * q, cy - 0.2 * q), (cx, cy + 2.0 * q)], fill=col)


def _draw_star(d, rng, cx, cy, r):
    col = _jit(rng, rng.choice(((255, 200, 0), (255, 150, 20))), 10)
    rot = rng.uniform(-0.2, 0.2)
    pts = []
    for k in range(10):
        a = -math.pi / 2 + rot + k * math.pi / 5
        rr = r * (0.95 if k % 2 == 0 else 0.4)
        pts.append((cx + math.cos(a) * rr, cy + math.sin(a) * rr))
    d.polygon(pts, fill=col)


_DRAWERS = {"cat": _draw_cat, "fish": _draw_fish, "car": _draw_car, "house": _draw_house,
            "tree": _draw_tree, "flower": _draw_flower, "heart": _draw_heart, "star": _draw_star}


@lru_cache(maxsize=16)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


def _caption(d: ImageDraw.ImageDraw, word: str, S: int) -> None:
    word = word.upper()
    px = max(8, round(S * (0.2 if len(word) <= 4 else 0.16)))
    font = _font(px)
    stroke = max(1, round(px * 0.14))
    x0, y0, x1, y1 = d.textbbox((0, 0), word, font=font, stroke_width=stroke)
    x = (S - (x1 - x0)) / 2 - x0
    y = S * 0.985 - y1
    d.text((x, y), word, font=font, fill=(255, 255, 255), stroke_width=stroke, stroke_fill=(0, 0, 0))


def render_post(lat: Latent, size: int = 128, *, seed: int = 0, index: int = 0) -> Image.Image:
    """Draw the image of a post from its hidden factors (RGB, ``size`` x ``size``)."""
    rng = _post_rng(seed, index, "render")
    S = size * _SUPERSAMPLE
    pal = _PALETTES[lat.image_sentiment]
    img = Image.new("RGB", (S, S), _jit(rng, pal["sky"], 14))
    d = ImageDraw.Draw(img)
    horizon = S * rng.uniform(0.55, 0.68)
    ground = _jit(rng, pal["ground"], 14)
    if rng.random() < 0.5:
        d.rectangle((0, horizon, S, S), fill=ground)
    else:
        hx = rng.uniform(0.2, 0.8) * S
        d.ellipse((hx - S * 1.1, horizon, hx + S * 1.1, horizon + S * 0.9), fill=ground)
        d.rectangle((0, horizon + S * 0.12, S, S), fill=ground)
    if lat.image_sentiment == "negative":
        _rain(d, rng, S)
    left = rng.random() < 0.5
    wx = S * (0.22 if left else 0.78) + rng.uniform(-0.04, 0.04) * S
    _weather(d, rng, lat.image_sentiment, wx, S * rng.uniform(0.18, 0.22), S * 0.16, S)
    objects = lat.drawn + lat.decorations
    slots = [(0.27, 0.60), (0.73, 0.60)]
    if len(objects) == 1:
        slots = [(rng.uniform(0.3, 0.7), 0.60)]
    for name, k in zip(objects, lat.slot_order if len(objects) > 1 else [0]):
        sx, sy = slots[k]
        r = S * rng.uniform(0.18, 0.21) * (0.6 if name in DECORATIONS else 1.0)
        cx, cy = S * sx + rng.uniform(-0.02, 0.02) * S, S * sy + rng.uniform(-0.03, 0.03) * S
        if name not in DECORATIONS:
            d.rounded_rectangle((cx - r * 1.15, cy - r * 1.15, cx + r * 1.15, cy + r * 1.15), radius=r * 0.3,
                                fill=_jit(rng, (245, 242, 230), 6), outline=(40, 40, 40), width=max(1, S // 64))
        _DRAWERS[name](d, rng, cx, cy, r)
    if lat.caption:
        _caption(d, lat.caption, S)
    return img.resize((size, size), Image.Resampling.LANCZOS)


# ------------------------------------------------------------------------------------------- dataset
def make_post(lat: Latent, index: int, split: str, image_path: str) -> Post:
    """The record of post ``index``; ``meta`` keeps the split and the hidden factors for debugging."""
    meta = {
        "split": split,
        "source": "synthetic",
        "text_sentiment": lat.text_sentiment,
        "image_sentiment": lat.image_sentiment,
        "objects": list(lat.shown),
        "caption": lat.caption,
        "decorations": list(lat.decorations),
        "named": list(lat.named),
        "mismatch": lat.mismatch,
    }
    return Post(id=f"syn-{index:05d}", text=lat.text, images=[image_path], labels=labels_for(lat), meta=meta)


def _splits(n: int, seed: int) -> list[str]:
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_dev = round(0.7 * n), round(0.15 * n)
    split = ["test"] * n
    for rank, i in enumerate(order):
        split[int(i)] = "train" if rank < n_train else ("dev" if rank < n_train + n_dev else "test")
    return split


def _spec(n: int, size: int, seed: int, words_in_image: bool) -> dict[str, Any]:
    return {"spec_version": SPEC_VERSION, "n": int(n), "size": int(size), "seed": int(seed),
            "words_in_image": bool(words_in_image)}


def load_posts(out_dir: str | Path) -> list[Post] | None:
    """The posts of a complete set in ``out_dir`` (image paths re-rooted there), or None if incomplete."""
    out = Path(out_dir).resolve()
    posts_file = out / "posts.jsonl"
    if not posts_file.is_file() or not (out / "spec.json").is_file():
        return None
    try:
        spec = json.loads((out / "spec.json").read_text(encoding="utf-8"))
        posts = [Post.from_dict(json.loads(line))
                 for line in posts_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError, KeyError):
        return None
    if len(posts) != spec.get("n"):
        return None
    for p in posts:
        p.images = [str(out / "images" / f"{p.id}.png")]
        if not Path(p.images[0]).is_file():
            return None
    return posts


def generate_posts(out_dir: str | Path, n: int = 2000, size: int = 128, seed: int = 0,
                   words_in_image: bool = True) -> list[Post]:
    """Write (or reuse) the synthetic set in ``out_dir`` and return its posts.

    Layout: ``images/<id>.png``, ``spec.json`` and ``posts.jsonl`` (one ``Post.to_dict()`` a line,
    written last and atomically). A complete set for the same spec is loaded, not redrawn.
    """
    if n < 0 or size < 16:
        raise ValueError("need n >= 0 and size >= 16")
    out = Path(out_dir).resolve()
    spec = _spec(n, size, seed, words_in_image)
    spec_file, posts_file = out / "spec.json", out / "posts.jsonl"
    if spec_file.is_file():
        try:
            same = json.loads(spec_file.read_text(encoding="utf-8")) == spec
        except (OSError, ValueError):
            same = False
        if same:
            posts = load_posts(out)
            if posts is not None:
                return posts
    posts_file.unlink(missing_ok=True)   # whatever follows, no stale set may look complete
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    keep = {f"syn-{i:05d}.png" for i in range(n)}
    for stale in img_dir.glob("syn-*.png"):   # left by an earlier, larger set
        if stale.name not in keep:
            stale.unlink()
    splits = _splits(n, seed)
    posts = []
    for i in range(n):
        lat = sample_latent(seed, i, words_in_image)
        path = img_dir / f"syn-{i:05d}.png"
        render_post(lat, size, seed=seed, index=i).save(path, format="PNG")
        posts.append(make_post(lat, i, splits[i], str(path)))
    atomic_write_json(spec_file, spec)
    atomic_write_text(posts_file, "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in posts))
    return posts


# ------------------------------------------------------------------------------------------- emoticon
EMOTICON_TASK = "emoticon"
# (text sentiment, image sentiment) → the post's emoji, by CLDR name; neither sentiment alone decides it
_EMOTICON_RULE: dict[tuple[str, str], str] = {
    ("negative", "negative"): "loudly_crying_face",
    ("negative", "neutral"): "unamused_face",
    ("negative", "positive"): "unamused_face",
    ("neutral", "negative"): "crying_face",
    ("neutral", "neutral"): "neutral_face",
    ("neutral", "positive"): "smiling_face",
    ("positive", "negative"): "upside-down_face",
    ("positive", "neutral"): "face_with_tears_of_joy",
    ("positive", "positive"): "smiling_face_with_heart-eyes",
}
EMOTICON_LABELS: list[str] = list(dict.fromkeys(_EMOTICON_RULE.values()))
# how each emoji is written: ☺ has a text-default look, so posts write it with VS16 or bare
_WRITTEN: dict[str, tuple[str, ...]] = {
    "loudly_crying_face": ("\U0001F62D",), "unamused_face": ("\U0001F612",), "crying_face": ("\U0001F622",),
    "neutral_face": ("\U0001F610",), "smiling_face": ("\u263A\uFE0F", "\u263A"),
    "upside-down_face": ("\U0001F643",), "face_with_tears_of_joy": ("\U0001F602",),
    "smiling_face_with_heart-eyes": ("\U0001F60D",),
}


def emoticon_for(text_sentiment: str, image_sentiment: str) -> str:
    """The emoji (CLDR name) of a post with these hidden sentiments (the rule in the module docstring)."""
    return _EMOTICON_RULE[(text_sentiment, image_sentiment)]


def emoticon_post(post: Post) -> Post:
    """A copy of a synthetic post whose text carries its emoji; ``meta["emoticon"]`` is the truth. The placement
    is drawn from a stream seeded by the post's id and text, so it does not depend on any other post."""
    try:
        name = emoticon_for(post.meta["text_sentiment"], post.meta["image_sentiment"])
    except KeyError as e:
        raise ValueError(f"post {post.id} is not a synthetic post (meta has no {e}): the emoticon rule reads "
                         "its hidden sentiments") from None
    rng = random.Random(f"mmpost-synthetic/{SPEC_VERSION}/emoticon/{post.id}/{post.text}")
    e = rng.choice(_WRITTEN[name])
    u = rng.random()
    if u < 0.55:
        text = f"{post.text} {e}"
    elif u < 0.75:
        text = f"{post.text}{e}"
    elif u < 0.9:
        text = f"{post.text} {e * rng.choice((2, 3))}"
    else:
        text = f"{e} {post.text}"
    return Post(id=post.id, text=text, images=list(post.images), labels=dict(post.labels),
                meta={**post.meta, "emoticon": name})


def emoticon_posts(posts: list[Post]) -> list[Post]:
    """The emoji-bearing copies of synthetic posts (the input posts are not changed)."""
    return [emoticon_post(p) for p in posts]


def generate_emoticon_posts(out_dir: str | Path, n: int = 2000, size: int = 128, seed: int = 0,
                            words_in_image: bool = True) -> list[Post]:
    """:func:`generate_posts` (same files, same cache) with emoji in the texts; label them with
    ``mmpost.data.emoji.emoticon_task``."""
    return emoticon_posts(generate_posts(out_dir, n=n, size=size, seed=seed, words_in_image=words_in_image))
