"""How well an image-text similarity score ranks posts by the strength of their image-text relation.

ITRp checks label quality this way (§4 of the paper): a CLIP cosine similarity per post against the relation's
4-level score, Spearman's rank correlation on the test set. The similarity comes from a CLIP or SigLIP checkpoint
(``mmpost similarity RECIPE --checkpoint DIR``), or from the text and image projections of a run trained with
mmpost's ITC loss (``Predictor.embed``), a pair of towers aligned by contrast on the run's own task.

The 4-level score orders the two binary relations by association strength, as the paper does:

=================================================  =====
text represented in the image · image adds meaning  score
=================================================  =====
no · no                                             1
no · yes                                            2
yes · no                                            3
yes · yes                                           4
=================================================  =====
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from mmpost.data.post import Post

__all__ = ["relation_score", "relation_scores", "cosine_similarity", "SpearmanResult", "spearman_by_level"]

_YES = {"represented": 1, "not_represented": 0, "adds": 1, "not_adds": 0, "1": 1, "0": 0}


def relation_score(labels: dict[str, str]) -> int | None:
    """1..4 from a post's labels: the ``relation`` code ``"XY"`` (X: text represented, Y: image adds) when present,
    else the ``text_represented`` and ``image_adds`` labels; None when the post has neither."""
    code = labels.get("relation")
    if code is not None and len(code) == 2 and set(code) <= {"0", "1"}:
        return 1 + 2 * int(code[0]) + int(code[1])
    rep, adds = labels.get("text_represented"), labels.get("image_adds")
    if rep in _YES and adds in _YES:
        return 1 + 2 * _YES[rep] + _YES[adds]
    return None


def relation_scores(posts: Sequence[Post]) -> np.ndarray:
    """[N] int64 scores 1..4, 0 where a post carries no relation label."""
    return np.array([relation_score(p.labels) or 0 for p in posts], dtype=np.int64)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two [N, E] arrays (0 for an all-zero row)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two [N, E] arrays of one shape, got {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(norms > 0, (a * b).sum(1) / np.where(norms > 0, norms, 1.0), 0.0)


@dataclass
class SpearmanResult:
    """rho / p: scipy's ``spearmanr`` of similarity against score; n: posts scored; skipped: posts without a
    relation label or without an image; mean_by_level: mean similarity per score 1..4 (None for an empty level)."""

    rho: float
    p: float
    n: int
    skipped: int
    mean_by_level: dict[int, float | None]

    def to_dict(self) -> dict:
        return asdict(self)


def spearman_by_level(similarity: np.ndarray, scores: np.ndarray, keep: np.ndarray | None = None) -> SpearmanResult:
    """Spearman's rho of ``similarity`` against ``scores`` (1..4) over the rows with a score and ``keep`` True."""
    from scipy.stats import spearmanr

    sim = np.asarray(similarity, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.int64)
    mask = sc > 0
    if keep is not None:
        mask &= np.asarray(keep, dtype=bool)
    s, y = sim[mask], sc[mask]
    if s.size < 3 or np.unique(y).size < 2:
        raise ValueError(f"need at least 3 posts over 2 or more relation levels to correlate, got {s.size} post(s) "
                         f"and levels {sorted(set(y.tolist()))}")
    res = spearmanr(s, y)
    means = {lvl: (float(s[y == lvl].mean()) if (y == lvl).any() else None) for lvl in (1, 2, 3, 4)}
    return SpearmanResult(rho=float(res.statistic), p=float(res.pvalue), n=int(s.size),
                          skipped=int(sim.size - s.size), mean_by_level=means)
