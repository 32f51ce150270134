from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from mmpost.evaluation.uncertainty import _weighted_f1_from_counts, weighted_f1_ci


def test_fast_weighted_f1_equals_sklearn():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    p[:150] = t[:150]
    assert _weighted_f1_from_counts(t, p, 4) == pytest.approx(f1_score(t, p, average="weighted"), abs=1e-12)


def test_interval_brackets_the_score_and_narrows_with_more_posts():
    rng = np.random.default_rng(1)
    widths = []
    for n in (100, 2000):
        t = rng.integers(0, 3, n)
        p = np.where(rng.random(n) < 0.7, t, rng.integers(0, 3, n))
        lo, hi = weighted_f1_ci(t, p, 3)
        score = f1_score(t, p, average="weighted")
        assert lo <= score <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2
    assert weighted_f1_ci([0, 1, 1], [0, 1, 1], 2) == (1.0, 1.0)
