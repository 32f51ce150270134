"""From clusters to labels, honestly: fit the cluster→label mapping on dev, score on test, and describe clusters.

An unsupervised model outputs cluster ids, not labels. To report weighted F1 (the ITR task's metric) each cluster
must be named after a label:

    mapping = fit_mapping(dev_clusters, dev_labels, k=2, n_labels=2)     # Hungarian on dev only
    scores = evaluate(test_clusters, test_labels, mapping)                # f1_weighted, accuracy, nmi, ari, n

**Why dev.** The mapping is fitted on labelled data, so it is a (tiny) supervised step. ITRp's published code fits it
on the test set it then scores, which picks, after seeing the test labels, the naming that scores best there: an
optimistic number. Fitting on a dev split and applying the frozen mapping to test keeps test unseen. NMI and ARI
need no mapping at all (they are invariant to renaming clusters), so they are reported beside F1 as mapping-free
checks.

:func:`cluster_words` lists the words most associated with each cluster, the way the ITRp paper (Fig. 5) reads its
clusters.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["ClusterMapping", "contingency", "fit_mapping", "apply_mapping", "evaluate", "cluster_words",
           "TWITTER_STOP_WORDS"]


class ClusterMapping(dict[int, int]):
    """A ``dict`` cluster id → label that also knows the dev majority label (``default``), returned for any cluster
    id it has no entry for, and how each entry was decided (``how[c]``: ``"hungarian"``, ``"majority"`` or
    ``"unseen"``)."""

    def __init__(self, pairs: dict[int, int], default: int, how: dict[int, str] | None = None):
        super().__init__(pairs)
        self.default = int(default)
        self.how: dict[int, str] = dict(how or {})

    def __missing__(self, key: int) -> int:
        return self.default

    def __repr__(self) -> str:
        return f"ClusterMapping({dict(self)!r}, default={self.default})"


def _ids(a: np.ndarray | Sequence[int], name: str, upper: int) -> np.ndarray:
    arr = np.asarray(a, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= upper):
        raise ValueError(f"{name} holds ids outside 0..{upper - 1}")
    return arr


def contingency(clusters: np.ndarray, labels: np.ndarray, k: int, n_labels: int) -> np.ndarray:
    """[k, n_labels] int64: entry (c, l) counts the posts in cluster c whose label is l."""
    c = _ids(clusters, "clusters", k)
    y = _ids(labels, "labels", n_labels)
    if c.shape != y.shape:
        raise ValueError(f"clusters and labels differ in length: {c.shape[0]} vs {y.shape[0]}")
    table = np.zeros((k, n_labels), dtype=np.int64)
    np.add.at(table, (c, y), 1)
    return table


def fit_mapping(clusters: np.ndarray, labels: np.ndarray, k: int, n_labels: int) -> ClusterMapping:
    """Name each of the k clusters after a label, maximising agreement on these (dev) posts.

    clusters: [N] ids in 0..k-1; labels: [N] true labels in 0..n_labels-1 -- from a dev split, never test (see the
    module docstring). The Hungarian algorithm (``scipy.optimize.linear_sum_assignment``, maximising) on the
    contingency table of the clusters seen on dev gives a one-to-one naming with the most posts correct. Then:

    * k > n_labels: clusters left over after the one-to-one matching take the majority label of their dev posts
      (several clusters may then share a label; that is what a many-to-one naming means).
    * k < n_labels: some labels are never predicted.
    * a cluster with no dev post gets the dev majority label (``how[c] == "unseen"``), which is also the
      ``default`` for cluster ids the mapping has never heard of.

    Returns a :class:`ClusterMapping` with an entry for every id 0..k-1.
    """
    table = contingency(clusters, labels, k, n_labels)
    if table.sum() == 0:
        raise ValueError("cannot fit a mapping on zero posts")
    majority = int(table.sum(axis=0).argmax())
    seen = np.flatnonzero(table.sum(axis=1) > 0)
    pairs: dict[int, int] = {}
    how: dict[int, str] = {}
    rows, cols = linear_sum_assignment(table[seen], maximize=True)
    for r, col in zip(rows, cols):
        pairs[int(seen[r])], how[int(seen[r])] = int(col), "hungarian"
    for c in range(k):
        if c in pairs:
            continue
        if table[c].sum() > 0:
            pairs[c], how[c] = int(table[c].argmax()), "majority"
        else:
            pairs[c], how[c] = majority, "unseen"
    return ClusterMapping(dict(sorted(pairs.items())), default=majority, how=how)


def apply_mapping(clusters: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """[N] cluster ids → [N] labels. Ids without an entry take ``mapping.default`` for a :class:`ClusterMapping`; for
    a plain dict they raise ``KeyError``."""
    c = np.asarray(clusters, dtype=np.int64)
    return np.array([mapping[int(i)] for i in c.tolist()], dtype=np.int64)


def evaluate(clusters: np.ndarray, labels: np.ndarray, mapping: dict[int, int]) -> dict[str, float]:
    """Score cluster ids against true labels.

    Returns ``f1_weighted`` and ``accuracy`` of the mapped clusters, plus ``nmi`` and ``ari`` of the raw clusters
    (scikit-learn's ``normalized_mutual_info_score`` and ``adjusted_rand_score``; they need no mapping), and ``n``.
    Cluster ids the mapping never saw on dev take its dev majority label.
    """
    from sklearn.metrics import accuracy_score, adjusted_rand_score, f1_score, normalized_mutual_info_score

    c = np.asarray(clusters, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64)
    if c.shape != y.shape or c.ndim != 1:
        raise ValueError(f"clusters and labels must be [N] arrays of one length, got {c.shape} and {y.shape}")
    if c.size == 0:
        raise ValueError("cannot evaluate zero posts")
    pred = apply_mapping(c, mapping)
    return {
        "f1_weighted": float(f1_score(y, pred, average="weighted", zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
        "nmi": float(normalized_mutual_info_score(y, c)),
        "ari": float(adjusted_rand_score(y, c)),
        "n": int(c.size),
    }


# --------------------------------------------------------------------------------------------------- cluster words

TWITTER_STOP_WORDS = frozenset({"rt", "amp", "via", "gt", "lt", "im", "u", "ur", "dont", "just"})
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w+")


def _clean(text: str) -> str:
    """Lowercase, drop URLs and @mentions; a hashtag keeps its word (``#Snow`` → ``snow``)."""
    text = _URL.sub(" ", text or "")
    text = _MENTION.sub(" ", text)
    return text.lower().replace("#", " ")


def cluster_words(texts: list[str], clusters: np.ndarray, top: int = 10, *, prior: float = 0.5,
                  min_count: int = 1, stop_words: Iterable[str] | None = None) -> dict[int, list[tuple[str, float]]]:
    """The words most associated with each cluster: {cluster id: [(word, z-score), ...]} best first.

    Method: the log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin' words"),
    cluster against all other posts. For word w with counts ``a`` in the cluster and ``b`` elsewhere, cluster and
    rest token totals ``A`` and ``B``, and prior pseudo-counts ``α_w = prior × (corpus count of w)``,
    ``α = Σ α_w``::

        δ_w = log((a + α_w) / (A + α − a − α_w)) − log((b + α_w) / (B + α − b − α_w))
        z_w = δ_w / sqrt(1 / (a + α_w) + 1 / (b + α_w))

    The z-score rewards words that are both over-represented and frequent; a word seen once in one cluster does not
    top the list as it would with a raw ratio. Only words with z > 0 are listed (at most ``top``).

    Tokens: text lowercased, URLs and @mentions removed, hashtags kept as words, words of at least two letters
    (digits and underscores split words), minus scikit-learn's English stop words and a few Twitter ones
    (:data:`TWITTER_STOP_WORDS`), or minus ``stop_words`` when given. ``min_count``: ignore words used fewer times
    in the whole corpus. Clusters are the distinct ids in ``clusters``; one with no usable word gets an empty list.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    c = np.asarray(clusters)
    if c.ndim != 1 or c.shape[0] != len(texts):
        raise ValueError(f"clusters must be [N] with N={len(texts)} texts, got shape {c.shape}")
    ids = [int(i) for i in np.unique(c)]
    stops = sorted(ENGLISH_STOP_WORDS | TWITTER_STOP_WORDS if stop_words is None else set(stop_words))
    vectorizer = CountVectorizer(preprocessor=_clean, token_pattern=r"(?u)\b[^\W\d_]{2,}\b", stop_words=stops)
    try:
        counts = vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # empty vocabulary: nothing but stop words, URLs, mentions
        return {i: [] for i in ids}
    vocab = np.asarray(vectorizer.get_feature_names_out())
    total = np.asarray(counts.sum(axis=0), dtype=np.float64).ravel()
    keep = total >= min_count
    alpha_w = prior * total
    alpha = alpha_w.sum()
    out: dict[int, list[tuple[str, float]]] = {}
    for i in ids:
        a = np.asarray(counts[c == i].sum(axis=0), dtype=np.float64).ravel()
        b = total - a
        big_a, big_b = a.sum(), b.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = (np.log((a + alpha_w) / (big_a + alpha - a - alpha_w))
                     - np.log((b + alpha_w) / (big_b + alpha - b - alpha_w)))
            z = delta / np.sqrt(1.0 / (a + alpha_w) + 1.0 / (b + alpha_w))
        z = np.where(keep & np.isfinite(z) & (a > 0), z, -np.inf)
        order = np.argsort(-z, kind="stable")[:top]
        out[i] = [(str(vocab[j]), float(z[j])) for j in order if z[j] > 0]
    return out
