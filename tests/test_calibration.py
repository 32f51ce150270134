"""Temperature scaling, ECE / NLL / reliability bins, calibration.json, and the reliability diagram."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import expit, softmax

from mmpost.evaluation.calibration import (
    CALIBRATION_FILE,
    Calibration,
    apply_temperature,
    calibration_metrics,
    ece,
    fit_temperature,
    nll,
    reliability_bins,
)
from mmpost.evaluation.reliability_plot import reliability_png


def calibrated_single(n: int, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits z and labels drawn from softmax(z): z is calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, (n, classes))
    cdf = np.cumsum(softmax(z, axis=1), axis=1)
    y = (rng.random(n)[:, None] > cdf).sum(1).clip(0, classes - 1)
    return z, y


def calibrated_multi(n: int, labels: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits z and 0/1 labels drawn from sigmoid(z), independently per label."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, (n, labels))
    return z, (rng.random((n, labels)) < expit(z)).astype(np.int64)


@pytest.mark.parametrize("multi_label", [False, True])
def test_fitted_temperature_recovers_the_scale_and_helps_held_out(multi_label):
    z, y = (calibrated_multi if multi_label else calibrated_single)(5000)
    fit, held = slice(0, 2500), slice(2500, None)
    t = fit_temperature(3 * z[fit], y[fit], multi_label=multi_label)
    assert t == pytest.approx(3.0, rel=0.1)
    m = calibration_metrics(3 * z[held], y[held], t, multi_label=multi_label)
    assert m["temperature"] == t
    assert m["nll"] < m["nll_raw"] - 0.05
    assert m["ece"] < m["ece_raw"] / 2
    assert fit_temperature(z[fit], y[fit], multi_label=multi_label) == pytest.approx(1.0, rel=0.1)


def test_fit_is_deterministic_and_stable_for_large_logits():
    z, y = calibrated_single(2000, seed=3)
    assert fit_temperature(50 * z, y) == fit_temperature(50 * z, y)
    assert fit_temperature(50 * z, y) == pytest.approx(20.0)           # the true 50 is clamped at the bound
    big = np.array([[50.0, -50.0], [-50.0, 50.0], [50.0, -50.0]])
    t = fit_temperature(big, np.array([0, 1, 1]))
    assert np.isfinite(t) and 0.05 <= t <= 20
    p = apply_temperature(big, 1.0)
    assert np.isfinite(p).all() and p.dtype == np.float64
    assert np.isfinite(apply_temperature(big, 0.05, multi_label=True)).all()


def test_separable_data_goes_to_the_lower_bound():
    z = np.array([[1.0, -1.0], [-1.0, 1.0]] * 10)
    assert 0.05 <= fit_temperature(z, np.array([0, 1] * 10)) < 0.1


def test_too_few_labels_or_flat_logits_give_one():
    z, _ = calibrated_single(10)
    assert fit_temperature(z, np.full(10, -1)) == 1.0
    assert fit_temperature(z, np.array([2] + [-1] * 9)) == 1.0
    assert fit_temperature(np.zeros((10, 3)), np.arange(10) % 3) == 1.0


def test_unlabelled_rows_are_ignored():
    z, y = calibrated_single(600, seed=5)
    noisy_z = np.vstack([3 * z, 40 * np.random.default_rng(1).normal(size=(300, 3))])
    noisy_y = np.r_[y, np.full(300, -1)]
    assert fit_temperature(noisy_z, noisy_y) == fit_temperature(3 * z, y)
    p = apply_temperature(noisy_z, 1.0)
    assert ece(p, noisy_y) == ece(p[:600], y)
    assert nll(p, noisy_y) == nll(p[:600], y)

    zm, ym = calibrated_multi(400, seed=5)
    ym_noisy = np.vstack([ym, np.tile([[1, -1, 0, 1]], (50, 1))])
    zm_noisy = np.vstack([zm, np.full((50, 4), 30.0)])
    assert fit_temperature(zm_noisy, ym_noisy, multi_label=True) == fit_temperature(zm, ym, multi_label=True)
    pm = apply_temperature(zm_noisy, 1.0, multi_label=True)
    assert ece(pm, ym_noisy, multi_label=True) == ece(pm[:400], ym, multi_label=True)
    assert np.isnan(ece(pm[400:], ym_noisy[400:], multi_label=True))
    assert np.isnan(nll(p, np.full(900, -1)))


@pytest.mark.parametrize("multi_label", [False, True])
def test_ece_small_when_calibrated_and_large_when_overconfident(multi_label):
    z, y = (calibrated_multi if multi_label else calibrated_single)(20000, seed=7)
    good = apply_temperature(z, 1.0, multi_label=multi_label)
    over = apply_temperature(z, 1 / 3, multi_label=multi_label)
    assert ece(good, y, multi_label=multi_label) < 0.02
    assert ece(over, y, multi_label=multi_label) > 0.1


def test_ece_and_bins_by_hand():
    probs = np.array([[1.0, 0.0], [0.95, 0.05], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 1, 1, 1])
    bins = reliability_bins(probs, labels, n_bins=10)
    assert len(bins) == 10 and bins[0]["lo"] == 0.0 and bins[-1]["hi"] == 1.0
    assert bins[-1]["count"] == 2                          # 1.0 (exactly) and 0.95 both land in the last bin
    assert bins[-1]["confidence"] == pytest.approx(0.975) and bins[-1]["accuracy"] == 0.5
    assert bins[7]["count"] == 1 and bins[7]["accuracy"] == 1.0     # 0.7 is on an edge: [0.7, 0.8)
    assert bins[6]["count"] == 1 and bins[6]["accuracy"] == 0.0
    assert bins[0]["count"] == 0 and np.isnan(bins[0]["confidence"]) and np.isnan(bins[0]["accuracy"])
    expected = (2 * abs(0.5 - 0.975) + abs(1 - 0.7) + abs(0 - 0.6)) / 4
    assert ece(probs, labels, n_bins=10) == pytest.approx(expected)
    assert sum(b["count"] for b in reliability_bins(probs, labels)) == 4


def test_multi_label_confidence_is_the_surer_side():
    probs = np.array([[0.9, 0.2], [0.5, 0.0]])
    labels = np.array([[1, 1], [0, 0]])
    # pairs: (0.9, right), (0.8, wrong), (0.5 -> predicts 1, wrong), (1.0, right)
    bins = reliability_bins(probs, labels, multi_label=True, n_bins=5)
    assert [b["count"] for b in bins] == [0, 0, 1, 0, 3]
    assert bins[-1]["accuracy"] == pytest.approx(2 / 3)
    assert ece(probs, labels, multi_label=True, n_bins=5) == pytest.approx((0.5 + abs(2 - 2.7)) / 4)


def test_nll_by_hand_and_clipped():
    probs = np.array([[0.5, 0.5], [0.0, 1.0]])
    assert nll(probs, np.array([0, 1])) == pytest.approx(np.log(2) / 2)
    assert nll(probs, np.array([0, 0])) == pytest.approx((np.log(2) - np.log(1e-12)) / 2)
    assert nll(np.array([[0.8, 0.0]]), np.array([[1, 0]]), multi_label=True) == pytest.approx(-np.log(0.8) / 2)


def test_apply_temperature_matches_softmax_and_sigmoid():
    z = np.array([[1.0, 2.0, -1.0], [0.0, 0.0, 5.0]])
    assert np.allclose(apply_temperature(z, 2.0), softmax(z / 2, axis=1))
    assert np.allclose(apply_temperature(z, 2.0, multi_label=True), expit(z / 2))
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(z, 0.0)


def test_calibration_json_round_trip(tmp_path):
    op = {"task": "hate", "positive": "yes", "metric": "precision", "target": 0.9, "threshold": 0.73,
          "reached": True, "dev_precision": 0.91, "dev_recall": 0.4}
    cal = Calibration(temperatures={"hate": 1.7, "topics": 0.8}, thresholds={"hate": op})
    path = tmp_path / CALIBRATION_FILE
    path.write_text(json.dumps(cal.to_json()))
    assert Calibration.from_json(json.loads(path.read_text())) == cal
    assert Calibration.from_json({"temperatures": {"a": 2}}).thresholds == {}
    assert Calibration.identity(["a", "b"]).temperatures == {"a": 1.0, "b": 1.0}
    assert Calibration.identity(["a"]).thresholds == {}


@pytest.mark.parametrize("content, key", [
    ({"temperatures": {"hate": 0.0}}, "temperatures.hate"),
    ({"temperatures": {"hate": -1.0}}, "temperatures.hate"),
    ({"temperatures": {"hate": float("nan")}}, "temperatures.hate"),
    ({"temperatures": {"hate": float("inf")}}, "temperatures.hate"),
    ({"temperatures": {"hate": "2"}}, "temperatures.hate"),
    ({"temperatures": {"hate": True}}, "temperatures.hate"),
    ({"temperatures": [1.0]}, "temperatures"),
    ({"temperatures": {}, "thresholds": {"hate": 0.5}}, "thresholds.hate"),
    ({"temperatures": {}, "thresholds": {"hate": {"task": "hate"}}}, "thresholds.hate"),
    ({"thresholds": {}}, "temperatures"),
    ({"temperatures": {}, "temps": {}}, "temperatures"),
    ([1, 2], "temperatures"),
])
def test_calibration_bad_content_names_file_and_key(content, key):
    with pytest.raises(ValueError) as info:
        Calibration.from_json(content, source="runs/x/calibration.json")
    assert "runs/x/calibration.json" in str(info.value) and key in str(info.value)


def test_reliability_png_is_written(tmp_path):
    z, y = calibrated_single(2000, seed=2)
    before = reliability_bins(apply_temperature(3 * z, 1.0), y)
    after = reliability_bins(apply_temperature(3 * z, 3.0), y)
    path = reliability_png(tmp_path / "plots" / "reliability.png", before, after, "sentiment", 0.15, 0.01)
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    alone = reliability_png(tmp_path / "alone.png", before, None, "sentiment", float("nan"), None)
    assert alone.stat().st_size > 1000
    assert not [p for p in tmp_path.rglob("*.tmp")]


# ------------------------------------------------------------------------------ temperature + bias


def test_bias_and_temperature_undo_a_prior_shift_that_temperature_alone_cannot():
    from mmpost.evaluation.bias_temperature import fit_bias_temperature
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2.0, (6000, 3))
    y = np.array([rng.choice(3, p=np.exp(r) / np.exp(r).sum()) for r in z])      # z is calibrated
    shifted = 2.0 * z + np.array([0.0, 1.5, -1.0])                                # overconfident and prior-shifted
    fit, held = slice(0, 3000), slice(3000, None)
    t_only = fit_temperature(shifted[fit], y[fit])
    t, bias = fit_bias_temperature(shifted[fit], y[fit])
    assert t == pytest.approx(2.0, rel=0.1)
    assert bias[0] == 0.0 and bias[1] == pytest.approx(-0.75, abs=0.2) and bias[2] == pytest.approx(0.5, abs=0.2)
    ts = nll(apply_temperature(shifted[held], t_only), y[held])
    bcts = nll(apply_temperature(shifted[held], t, bias=bias), y[held])
    assert bcts < ts - 0.01


def test_bias_and_temperature_fall_back_on_too_few_rows_and_round_trip():
    from mmpost.evaluation.bias_temperature import fit_bias_temperature
    assert fit_bias_temperature(np.zeros((3, 2)), np.array([0, -1, -1])) == (1.0, [0.0, 0.0])
    cal = Calibration({"a": 1.5}, {}, {"a": [0.0, -0.3]})
    assert Calibration.from_json(cal.to_json()) == cal
    with pytest.raises(ValueError, match="biases"):
        Calibration.from_json({"temperatures": {"a": 1.0}, "biases": {"a": ["x"]}})
