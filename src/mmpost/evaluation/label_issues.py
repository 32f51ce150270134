"""Which posts' given labels the model doubts: confident learning (cleanlab) on out-of-fold probabilities.

    ranked = rank_label_issues(pred_probs, given)        # pred_probs [N, C], given [N] label ids
    ranked.order[:20]                                     # the 20 posts to look at first

Per post:

- ``is_issue``: flagged by confident learning (cleanlab's ``find_label_issues`` with
  ``filter_by="prune_by_noise_rate"``): the post sits in an off-diagonal cell of the estimated joint of given and
  true labels, and is among the ones most likely mislabelled there. It needs honest (out-of-fold) probabilities.
- ``score``: the label-doubt score, ``1 - p(given)`` — one minus cleanlab's *self-confidence* label quality.
  Self-confidence rather than normalized margin because a reviewer reads it directly ("the model gives the given
  label 4%") and it is the same number whichever method flagged the post.
- ``suggested``: the most probable label (``argmax``; the first of equals).
- ``order``: every post, most doubtful first: the flagged ones, then the rest, each by score, ties by index.

``method="self-confidence"`` needs no cleanlab: the same score, and a post is flagged when its most probable
label is not its given one. ``method="cleanlab"`` falls back to it (and says so in ``notes``) when cleanlab
cannot be imported.

Single-label tasks only: a multi-label task's posts carry sets of labels and independent probabilities, which
this ranking does not model; the app refuses such a task with a ValueError.

Pure numpy: no files are read or written here.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["METHODS", "IssuePost", "RankedIssues", "rank_label_issues", "doubt_scores"]

METHODS = ("cleanlab", "self-confidence")


@dataclass(frozen=True)
class RankedIssues:
    """The ranking of N posts (see the module docstring). ``method`` is the one that ran (``"self-confidence"``
    when cleanlab was asked for but could not be imported); ``notes`` are what it warned about."""

    is_issue: np.ndarray        # [N] bool
    score: np.ndarray           # [N] float in [0, 1], 1 - p(given)
    suggested: np.ndarray       # [N] int, argmax of the probabilities
    order: np.ndarray           # [N] int, post indices, most doubtful first
    method: str
    notes: tuple[str, ...] = ()

    @property
    def n_flagged(self) -> int:
        return int(self.is_issue.sum())


@dataclass(frozen=True)
class IssuePost:
    """One ranked post as the outputs show it (the CSV row, the page's card, the Label Studio task): plain data
    shared by the writers. ``rank`` is 1-based; ``probs`` maps every label, in label order, to its probability
    (averaged over seeds); ``image`` is the post's first image path, or None."""

    rank: int
    post_id: str
    row: int | None
    text: str
    image: str | None
    given: str
    suggested: str
    score: float
    is_issue: bool
    probs: dict[str, float]

    @property
    def p_given(self) -> float:
        return self.probs[self.given]

    @property
    def p_suggested(self) -> float:
        return self.probs[self.suggested]


def _checked(pred_probs: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate the inputs; return probabilities as float rows that sum to 1 (averaged or rounded
    probabilities drift slightly) and the given labels as int ids."""
    probs = np.asarray(pred_probs, dtype=float)
    labels = np.asarray(given)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"pred_probs must be [N, C] with C >= 2 labels, got shape {probs.shape}")
    if labels.ndim != 1 or len(labels) != len(probs):
        raise ValueError(f"given must be [N] with N = {len(probs)} (the rows of pred_probs), got shape {labels.shape}")
    if len(labels) and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"given must hold integer label ids, got dtype {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"given label ids must be in 0..{probs.shape[1] - 1}, got {labels.min()}..{labels.max()}")
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("pred_probs must be finite and non-negative")
    sums = probs.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise ValueError(f"pred_probs row {int(np.flatnonzero(sums[:, 0] <= 0)[0])} is all zeros")
    return probs / sums, labels.astype(np.int64)


def doubt_scores(pred_probs: np.ndarray, given: np.ndarray) -> np.ndarray:
    """``1 - p(given)`` per post, in [0, 1]: one minus cleanlab's self-confidence label quality score."""
    probs, labels = _checked(pred_probs, given)
    return np.clip(1.0 - probs[np.arange(len(labels)), labels], 0.0, 1.0)


def _cleanlab_flags(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Confident learning's flags, and cleanlab's warnings as notes. ``n_jobs=1``: deterministic, and no worker
    processes forked from a program that may hold torch threads (the sizes here make it fast anyway).
    Raises ImportError when cleanlab is not installed."""
    from cleanlab.filter import find_label_issues

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flags = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    notes = tuple(dict.fromkeys(f"cleanlab: {w.message}" for w in caught))
    return np.asarray(flags, dtype=bool), notes


def _ranking(is_issue: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Flagged posts first, then by score (highest first), ties by index: one stable, total order."""
    index = np.arange(len(score))
    return np.lexsort((index, -score, ~is_issue)).astype(np.int64)


def rank_label_issues(pred_probs: np.ndarray, given: np.ndarray, *, method: str = "cleanlab") -> RankedIssues:
    """Rank N posts by how much the (out-of-fold) probabilities ``pred_probs`` [N, C] doubt their ``given`` [N]
    label ids; see the module docstring for what each field means and for the two methods."""
    if method not in METHODS:
        raise ValueError(f"unknown label-issue method {method!r}; expected one of {', '.join(METHODS)}")
    probs, labels = _checked(pred_probs, given)
    score = np.clip(1.0 - probs[np.arange(len(labels)), labels], 0.0, 1.0)
    suggested = probs.argmax(axis=1).astype(np.int64) if len(probs) else np.zeros(0, dtype=np.int64)
    notes: tuple[str, ...] = ()
    is_issue = None
    if method == "cleanlab" and len(labels):
        try:
            is_issue, notes = _cleanlab_flags(probs, labels)
        except ImportError as e:
            log.warning("cleanlab cannot be imported (%s): ranking by self-confidence instead", e)
            notes = (f"cleanlab could not be imported ({e}); the self-confidence method ran instead",)
            method = "self-confidence"
    if is_issue is None:
        is_issue = suggested != labels
    return RankedIssues(is_issue=is_issue, score=score, suggested=suggested, order=_ranking(is_issue, score),
                        method=method, notes=notes)
