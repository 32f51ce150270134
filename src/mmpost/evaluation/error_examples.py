"""Which posts a model got wrong, class by class, with a small picture of each: what a person reads to learn
*why* the numbers are what they are. The most confident mistakes come first — they show systematic errors
(a label that is wrong, a cue the model latched onto) better than the near-ties do."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ImageOps

from mmpost.data.images import ImageError, open_image


@dataclass
class ClassErrors:
    """The misclassified posts of one true class: ``rows`` index the evaluated posts, most confident first."""

    label: str
    support: int
    n_errors: int
    rows: list[int]


def errors_by_class(y_true: np.ndarray, probs: np.ndarray, label_names: list[str], per_class: int) -> list[ClassErrors]:
    """For every class, up to ``per_class`` of its misclassified posts, sorted by the probability the model gave
    its (wrong) prediction, highest first. Unlabelled rows (label id < 0) are ignored."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    if probs.ndim != 2 or len(probs) != len(y_true):
        raise ValueError(f"probs must be [N, C] for {len(y_true)} posts, got shape {probs.shape}")
    pred = probs.argmax(1) if len(probs) else np.zeros(0, dtype=int)
    confidence = probs.max(1) if len(probs) else np.zeros(0)
    out = []
    for k, name in enumerate(label_names):
        wrong = np.flatnonzero((y_true == k) & (pred != k))
        order = wrong[np.argsort(-confidence[wrong], kind="stable")]
        out.append(ClassErrors(label=name, support=int((y_true == k).sum()), n_errors=len(wrong),
                               rows=[int(i) for i in order[:per_class]]))
    return out


def thumbnail_png(path: str | Path, size: int = 112) -> bytes:
    """The image at ``path`` scaled to fit ``size``×``size`` (aspect kept; small images grow, so every card reads
    alike), as PNG bytes. Opened with the same guards as training (content-sniffed, size and pixel limits);
    raises :class:`ImageError` naming the file."""
    img = ImageOps.contain(open_image(path, draft_size=size), (size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def try_thumbnail(images: list[str], size: int = 112) -> tuple[bytes | None, str]:
    """(PNG bytes, "") for a post's first image, or (None, why there is no picture)."""
    if not images:
        return None, "no image"
    try:
        return thumbnail_png(images[0], size), ""
    except ImageError as e:
        return None, f"image not shown: {e.reason}"
