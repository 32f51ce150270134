"""Decision thresholds chosen on dev for a precision or recall target, the CLI form, and applying them."""
from __future__ import annotations

import numpy as np
import pytest

from mmpost.evaluation.operating_point import (
    OperatingPoint,
    apply_threshold,
    choose_threshold,
    parse_operating_point,
    precision_recall_at,
)

# scores from high to low with gold:  0.9 + | 0.8 + | 0.7 - | 0.6 + | 0.5 - | 0.4 + | 0.3 - | 0.2 -
SCORES = np.array([0.3, 0.9, 0.5, 0.8, 0.2, 0.6, 0.7, 0.4])
GOLD = np.array([0, 1, 0, 1, 0, 1, 0, 1], dtype=bool)


def brute_force(scores, gold, metric, target):
    """Every distinct score as a threshold, checked one by one: what choose_threshold must agree with."""
    rows = [(t, *precision_recall_at(scores, gold, t)[:2]) for t in np.unique(scores)]
    ok = [r for r in rows if (r[1] if metric == "precision" else r[2]) >= target]
    if ok:
        return (min(ok) if metric == "precision" else max(ok))[0], True
    best = max(r[1] for r in rows)
    return min(r for r in rows if r[1] == best)[0], False


def test_precision_target_takes_the_lowest_threshold_that_reaches_it():
    # precision at 0.9, 0.8, 0.7, 0.6, 0.5, 0.4: 1, 1, 2/3, 3/4, 3/5, 4/6
    op = choose_threshold(SCORES, GOLD, metric="precision", target=0.75, task="hate", positive_label="yes")
    assert op.threshold == 0.6 and op.reached
    assert op.dev_precision == 0.75 >= op.target and op.dev_recall == 0.75
    assert (op.task, op.positive, op.metric) == ("hate", "yes", "precision")
    assert precision_recall_at(SCORES, GOLD, op.threshold) == (0.75, 0.75, 4)
    assert choose_threshold(SCORES, GOLD, metric="precision", target=1.0).threshold == 0.8
    assert choose_threshold(SCORES, GOLD, metric="precision", target=0.7).threshold == 0.6   # 0.4 gives 4/6


def test_unreachable_precision_gives_the_best_precision_with_most_recall():
    gold = np.array([0, 1, 0, 1, 0, 1, 0, 1], dtype=bool)
    scores = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])   # the top post is a negative
    op = choose_threshold(scores, gold, metric="precision", target=0.95)
    # precision at 0.9: 0, 0.8: 1/3, 0.7: 2/4, 0.6: 2/5, 0.5: 3/6, 0.4: 3/7, 0.3: 4/8 -> best 0.5, lowest 0.3
    assert not op.reached
    assert op.threshold == 0.3 and op.dev_precision == 0.5 and op.dev_recall == 1.0


def test_recall_target_takes_the_highest_threshold_that_reaches_it():
    op = choose_threshold(SCORES, GOLD, metric="recall", target=0.5)
    assert op.threshold == 0.8 and op.reached and op.dev_recall == 0.5 and op.dev_precision == 1.0
    assert choose_threshold(SCORES, GOLD, metric="recall", target=0.6).threshold == 0.6
    full = choose_threshold(SCORES, GOLD, metric="recall", target=1.0)
    assert full.threshold == 0.4 and full.dev_recall == 1.0


def test_ties_in_scores_move_together():
    scores = np.array([0.7, 0.7, 0.7, 0.2])
    gold = np.array([1, 1, 0, 0], dtype=bool)
    op = choose_threshold(scores, gold, metric="recall", target=0.5)
    assert op.threshold == 0.7 and op.dev_recall == 1.0 and op.dev_precision == pytest.approx(2 / 3)


def test_agrees_with_brute_force_on_random_dev_sets():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n = int(rng.integers(5, 60))
        gold = rng.random(n) < 0.4
        gold[:2] = [True, False]
        scores = np.round(np.clip(gold * 0.3 + rng.random(n) * 0.7, 0, 1), 2)    # rounding makes ties
        for metric in ("precision", "recall"):
            target = float(rng.choice([0.3, 0.5, 0.8, 0.95, 1.0]))
            op = choose_threshold(scores, gold, metric=metric, target=target)
            assert (op.threshold, op.reached) == brute_force(scores, gold, metric, target), (trial, metric)
            assert (op.dev_precision, op.dev_recall) == precision_recall_at(scores, gold, op.threshold)[:2]


@pytest.mark.parametrize("kwargs, message", [
    ({"metric": "f1", "target": 0.9}, "metric"),
    ({"metric": "precision", "target": 0.0}, "target"),
    ({"metric": "precision", "target": 1.5}, "target"),
    ({"metric": "recall", "target": float("nan")}, "target"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        choose_threshold(SCORES, GOLD, **kwargs)


def test_dev_needs_both_classes():
    with pytest.raises(ValueError, match="one positive and one negative"):
        choose_threshold(SCORES, np.ones(8, dtype=bool), metric="precision", target=0.9)
    with pytest.raises(ValueError, match="one positive and one negative"):
        choose_threshold(SCORES, np.zeros(8, dtype=bool), metric="recall", target=0.9)
    with pytest.raises(ValueError, match="shape"):
        choose_threshold(SCORES, GOLD[:5], metric="recall", target=0.9)


def test_precision_recall_at_edges():
    assert precision_recall_at(SCORES, GOLD, 0.95) == (0.0, 0.0, 0)    # nothing predicted positive
    assert precision_recall_at(SCORES, GOLD, 0.0) == (0.5, 1.0, 8)
    assert precision_recall_at(SCORES, np.zeros(8, dtype=bool), 0.5) == (0.0, 0.0, 5)


def test_a_million_posts():
    rng = np.random.default_rng(0)
    gold = rng.random(1_000_000) < 0.1
    scores = np.clip(gold * 0.35 + rng.random(1_000_000) * 0.65, 0, 1).astype(np.float32)
    op = choose_threshold(scores, gold, metric="precision", target=0.9)
    assert op.reached and op.dev_precision >= 0.9
    assert precision_recall_at(scores, gold, op.threshold)[:2] == (op.dev_precision, op.dev_recall)
    assert choose_threshold(scores, gold, metric="recall", target=0.8).dev_recall >= 0.8


@pytest.mark.parametrize("text, parsed", [
    ("hate:precision=0.9", ("hate", "precision", 0.9)),
    (" hate : recall = 0.8 ", ("hate", "recall", 0.8)),
    ("precision=0.9", ("", "precision", 0.9)),
    ("recall=1", ("", "recall", 1.0)),
    ("a:b:recall=0.5", ("a:b", "recall", 0.5)),
])
def test_parse_operating_point(text, parsed):
    assert parse_operating_point(text) == parsed


@pytest.mark.parametrize("text", ["", "hate", "hate:precision", "hate:precision=", "hate:f1=0.9",
                                  "hate:precision=high", ":precision=0.9", "hate:precision=0",
                                  "hate:recall=1.2", "hate:recall=nan", "hate=precision:0.9"])
def test_parse_errors_show_an_example(text):
    with pytest.raises(ValueError, match="precision=0.9"):
        parse_operating_point(text)


def test_apply_threshold():
    op = OperatingPoint(task="hate", positive="yes", metric="precision", target=0.9, threshold=0.3, reached=True,
                        dev_precision=0.92, dev_recall=0.5)
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.6, 0.4], [0.2, 0.8]])
    assert apply_threshold(probs, ["no", "yes"], op) == ["no", "yes", "yes", "yes"]
    assert apply_threshold(probs[:, ::-1], ["yes", "no"], op) == ["no", "yes", "yes", "yes"]
    assert apply_threshold(np.zeros((0, 2)), ["no", "yes"], op) == []
    with pytest.raises(ValueError, match="not among"):
        apply_threshold(probs, ["a", "b"], op)
    with pytest.raises(ValueError, match="binary"):
        apply_threshold(np.ones((2, 3)) / 3, ["no", "yes", "maybe"], op)


def test_operating_point_json_round_trip_and_errors():
    op = choose_threshold(SCORES, GOLD, metric="precision", target=0.75, task="hate", positive_label="yes")
    assert OperatingPoint.from_json(op.to_json()) == op
    good = op.to_json()
    for key, value in [("metric", "f1"), ("target", 0), ("target", "0.9"), ("threshold", float("nan")),
                       ("reached", "yes"), ("dev_recall", 1.5), ("task", 3)]:
        with pytest.raises(ValueError, match=key):
            OperatingPoint.from_json({**good, key: value})
    with pytest.raises(ValueError, match="missing keys \\['threshold'\\]"):
        OperatingPoint.from_json({k: v for k, v in good.items() if k != "threshold"})
    with pytest.raises(ValueError, match="unknown keys \\['extra'\\]"):
        OperatingPoint.from_json({**good, "extra": 1})
    with pytest.raises(ValueError, match="expected an object"):
        OperatingPoint.from_json([1])
