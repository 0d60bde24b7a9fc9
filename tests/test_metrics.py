"""The evaluation metrics against hand-computed values and a NumPy float64 oracle.

AuC here is the trapezoid rule over t = 0, 1, ..., 150 divided by 150 (see
colornet/metrics.py); a constant ab error d in (0, 150] therefore scores exactly
100 * (150.5 - ceil(d)) / 150.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from colornet import bins, metrics

# Sums of a few hundred float64 shares: equal to within rounding.
EXACT = 1e-9


def _shift_auc(d):
    return 0.0 if d > 150 else 100.0 * (150.5 - math.ceil(d)) / 150.0


def test_perfect_prediction_scores_100():
    ab = np.random.default_rng(0).uniform(-100, 100, (7, 9, 2)).astype(np.float32)
    assert metrics.raw_auc(ab, ab) == 100.0
    assert metrics.rebalanced_auc(ab, ab) == 100.0


def test_grey_prediction_on_grey_truth_scores_100():
    grey = np.zeros((16, 16, 2), np.float32)
    assert metrics.raw_auc(grey, grey) == 100.0
    assert metrics.rebalanced_auc(grey, grey) == 100.0


@pytest.mark.parametrize("d", [0.25, 1.0, 2.5, 5.0, 37.0, 149.5, 150.0, 150.5, 200.0])
def test_constant_shift(d):
    # Whole-number truth and a shift in quarter units: the distance is exactly d in float32.
    truth = np.random.default_rng(1).integers(-60, 60, (5, 6, 2)).astype(np.float32)
    pred = truth + np.array([d, 0.0], np.float32)
    assert metrics.raw_auc(pred, truth) == pytest.approx(_shift_auc(d), abs=EXACT)
    # Every class has the same error, so rebalancing changes nothing.
    assert metrics.rebalanced_auc(pred, truth) == pytest.approx(_shift_auc(d), abs=EXACT)


def test_curve_steps_at_the_error():
    truth = np.zeros((3, 2), np.float32)
    pred = truth + [3.0, 4.0]  # error 5 exactly
    accumulator = metrics.AucAccumulator()
    accumulator.update(pred, truth)
    curve = accumulator.curve()
    assert curve.shape == (151,)
    np.testing.assert_array_equal(curve[:5], 0.0)
    np.testing.assert_array_equal(curve[5:], 1.0)
    assert accumulator.auc() == pytest.approx(100 * 145.5 / 150, abs=EXACT)


def test_auc_from_curve_is_the_trapezoid_rule():
    t = metrics.AUC_THRESHOLDS
    assert metrics.auc_from_curve(np.ones(151)) == 100.0
    assert metrics.auc_from_curve(t / 150.0) == pytest.approx(50.0, abs=EXACT)
    with pytest.raises(ValueError, match="shape"):
        metrics.auc_from_curve(np.ones(150))


def test_rebalanced_two_classes_by_hand():
    # Class A: 3 pixels at (0, 0), exact. Class B: 1 pixel at (50, 50), error 10.
    truth = np.array([[0, 0], [0, 0], [0, 0], [50, 50]], np.float32)
    pred = truth.copy()
    pred[3] += [6.0, 8.0]
    # Raw: acc = 3/4 for t < 10, 1 from t = 10:
    # area = 10 * 3/4 + 141 - (3/4 + 1) / 2 = 147.625.
    assert metrics.raw_auc(pred, truth) == pytest.approx(100 * 147.625 / 150, abs=EXACT)
    # Rebalanced: p(A) = 3/4, p(B) = 1/4, weights 4/3 and 4; weighted acc for t < 10 is
    # (3 * 4/3) / (3 * 4/3 + 4) = 1/2: area = 10 * 1/2 + 141 - (1/2 + 1) / 2 = 145.25.
    assert metrics.rebalanced_auc(pred, truth) == pytest.approx(100 * 145.25 / 150, abs=EXACT)
    accumulator = metrics.AucAccumulator()
    accumulator.update(pred, truth)
    assert accumulator.classes_present() == 2
    assert accumulator.pixels == 4


def _oracle_curves(pred, truth):
    """NumPy float64: brute-force nearest bin over all 313, explicit 1/p weights."""
    pred = np.asarray(pred, np.float64).reshape(-1, 2)
    truth = np.asarray(truth, np.float64).reshape(-1, 2)
    error = np.sqrt(((pred - truth) ** 2).sum(-1))
    centres = bins.ab_bins().astype(np.float64)
    classes = np.argmin(((truth[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    p = np.bincount(classes, minlength=313) / len(classes)
    weight = 1.0 / p[classes]
    within = error[None, :] <= metrics.AUC_THRESHOLDS[:, None]
    return within.mean(1), (within * weight).sum(1) / weight.sum()


def test_against_numpy_oracle():
    rng = np.random.default_rng(2)
    truth = rng.uniform(-90, 90, (600, 2)).astype(np.float32)
    pred = (truth + rng.normal(0, 30, truth.shape)).astype(np.float32)
    raw, rebalanced = _oracle_curves(pred, truth)
    accumulator = metrics.AucAccumulator()
    accumulator.update(pred, truth)
    np.testing.assert_allclose(accumulator.curve(), raw, atol=EXACT)
    np.testing.assert_allclose(accumulator.curve(rebalanced=True), rebalanced, atol=EXACT)
    trapezoid = np.trapezoid if hasattr(np, "trapezoid") else np.trapz
    assert accumulator.auc() == pytest.approx(100 * trapezoid(raw) / 150, abs=EXACT)
    assert accumulator.auc(rebalanced=True) == pytest.approx(
        100 * trapezoid(rebalanced) / 150, abs=EXACT
    )


def test_streaming_equals_one_pass(monkeypatch):
    rng = np.random.default_rng(3)
    truth = rng.uniform(-90, 90, (10, 30, 2)).astype(np.float32)
    pred = (truth + rng.normal(0, 20, truth.shape)).astype(np.float32)
    whole = metrics.AucAccumulator()
    whole.update(pred, truth)
    # Image by image, with classes given, and with the class search in small chunks.
    monkeypatch.setattr(metrics, "_CHUNK_PIXELS", 7)
    parts = metrics.AucAccumulator()
    for p, t in zip(pred, truth):
        parts.update(p, t, classes=metrics.pixel_classes(t))
    np.testing.assert_array_equal(parts.counts, whole.counts)


def test_accumulator_errors():
    accumulator = metrics.AucAccumulator()
    with pytest.raises(ValueError, match="update"):
        accumulator.curve()
    with pytest.raises(ValueError, match="same number of pixels"):
        accumulator.update(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="trailing axis of size 2"):
        metrics.ab_error_bins(np.zeros((4, 3)), np.zeros((4, 3)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        accumulator.update(np.full((2, 2), np.nan), np.zeros((2, 2)))


def test_psnr_of_a_known_error():
    truth = np.random.default_rng(4).integers(20, 200, (8, 9, 3)).astype(np.uint8)
    # Every value off by 10: MSE 100, PSNR = 10 log10(255^2 / 100) = 28.1308 dB.
    expected = 10 * math.log10(255**2 / 100)
    assert float(metrics.psnr(truth + 10, truth)) == pytest.approx(expected, abs=EXACT)
    assert float(metrics.psnr(truth.astype(np.float32) - 10, truth)) == pytest.approx(
        expected, abs=EXACT
    )
    # Half the values off by 20: MSE 200.
    half = truth.copy()
    half[:4] += 20
    assert float(metrics.psnr(half[:8], truth)) == pytest.approx(
        10 * math.log10(255**2 / (20**2 * 4 / 8)), abs=EXACT
    )
    assert float(metrics.psnr(truth, truth)) == math.inf


def test_colorfulness_by_hand():
    # Pixels (100, 0, 0) and (0, 0, 0): rg = 100, 0 and yb = 50, 0, so
    # sd_rg = 50, sd_yb = 25, mean_rg = 50, mean_yb = 25 and
    # M = sqrt(50^2 + 25^2) + 0.3 sqrt(50^2 + 25^2) = 1.3 * 25 * sqrt(5).
    image = np.array([[[100, 0, 0], [0, 0, 0]]], np.uint8)
    assert float(metrics.colorfulness(image)) == pytest.approx(32.5 * math.sqrt(5), abs=EXACT)
    grey = np.repeat(np.arange(0, 250, 10, dtype=np.uint8).reshape(5, 5, 1), 3, axis=-1)
    assert float(metrics.colorfulness(grey)) == 0.0
    # Batched: one value per image.
    both = metrics.colorfulness(
        np.stack([np.tile(image, (2, 1, 1)), np.zeros((2, 2, 3), np.uint8)])
    )
    np.testing.assert_allclose(both, [32.5 * math.sqrt(5), 0.0], atol=EXACT)
    with pytest.raises(ValueError, match="H, W, 3"):
        metrics.colorfulness(np.zeros((4, 4)))


def test_colorfulness_against_numpy():
    image = np.random.default_rng(5).integers(0, 256, (13, 17, 3)).astype(np.float64)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    rg, yb = r - g, (r + g) / 2 - b
    expected = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(
        rg.mean() ** 2 + yb.mean() ** 2
    )
    assert float(metrics.colorfulness(image.astype(np.uint8))) == pytest.approx(expected, rel=1e-12)
