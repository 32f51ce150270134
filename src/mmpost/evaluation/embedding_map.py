"""A 2-D map of a run's text and image vectors, so a person can see whether the classes separate and whether a
post's two sides sit together (what ITC trains for).

Both sides are L2-normalised first — the geometry ITC works in — and projected *together*, so a text point and
an image point share one set of axes. PCA (scikit-learn) keeps the large-scale layout; t-SNE keeps neighbourhoods
and is the better picture for a few hundred to a thousand points, at a cost that grows quickly with n.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROJECTIONS = ("auto", "pca", "tsne")
TSNE_MIN_POINTS = 30       # below this t-SNE's neighbourhoods are meaningless: PCA
TSNE_MAX_POINTS = 1000     # above this ``auto`` picks PCA (t-SNE's time grows with n²)


@dataclass
class EmbeddingMap:
    """``text_xy`` [N, 2] for every post; ``image_xy`` [M, 2] for the posts in ``image_rows`` (those with a real
    image), in that order; ``method`` is "pca" or "tsne"."""

    text_xy: np.ndarray
    image_xy: np.ndarray
    image_rows: np.ndarray
    method: str


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def choose_projection(method: str, n_points: int) -> str:
    if method not in PROJECTIONS:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {method!r}")
    if method == "auto":
        return "tsne" if TSNE_MIN_POINTS <= n_points <= TSNE_MAX_POINTS else "pca"
    if method == "tsne" and n_points < 3:
        raise ValueError(f"t-SNE needs at least 3 points, got {n_points}")
    return method


def project_2d(text_embeds: np.ndarray, image_embeds: np.ndarray, has_image: np.ndarray, *,
               method: str = "auto", seed: int = 0) -> EmbeddingMap:
    """Project the texts of all posts and the images of the posts that have one into one 2-D space.

    Posts without an image carry the learned "no image" vector on the image side; it is left out, since it is
    the same point for every such post and says nothing about the post."""
    text = _unit(text_embeds)
    has_image = np.asarray(has_image, dtype=bool)
    if len(has_image) != len(text):
        raise ValueError(f"has_image has {len(has_image)} rows for {len(text)} posts")
    image_rows = np.flatnonzero(has_image)
    image = _unit(np.asarray(image_embeds)[image_rows]) if len(image_rows) else np.zeros((0, text.shape[1]))
    points = np.concatenate([text, image]) if len(image) else text
    if len(points) == 0:
        raise ValueError("no vectors to map")
    chosen = choose_projection(method, len(points))
    if len(points) == 1:
        xy = np.zeros((1, 2))
    elif chosen == "pca":
        from sklearn.decomposition import PCA
        k = min(2, points.shape[1], len(points))
        xy = PCA(n_components=k, random_state=seed).fit_transform(points)
        if k < 2:
            xy = np.pad(xy, ((0, 0), (0, 2 - k)))
    else:
        from sklearn.manifold import TSNE
        perplexity = float(min(30.0, max(1.0, (len(points) - 1) / 3)))
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
    return EmbeddingMap(text_xy=xy[: len(text)], image_xy=xy[len(text):], image_rows=image_rows, method=chosen)
