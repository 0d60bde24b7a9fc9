"""Metrics: training-time cross-entropy, and the paper's evaluation metrics.

* `UnweightedCrossEntropy`: a Keras metric for training (nats per output pixel).
* AuC of per-pixel ab accuracy, raw and class-rebalanced (paper Sec. 3.1, Table 1),
  accumulated over any number of images by `AucAccumulator`.
* `psnr` on RGB (0..255 scale) and `colorfulness` (Hasler and Suesstrunk 2003).

AuC discretisation. A pixel's error is the L2 distance between its predicted and
true ab. acc(t) is the share of pixels with error <= t, at the thresholds
t = 0, 1, ..., 150 (151 points, ab units). The AuC is the area under acc(t) on
[0, 150] by the trapezoid rule, divided by 150 and given in percent:

    AuC = 100 / 150 * sum_{t=0}^{149} (acc(t) + acc(t + 1)) / 2

so a perfect prediction scores 100 and a constant ab error d > 0 scores
100 * (150.5 - ceil(d)) / 150 (0 when d > 150). Errors are counted in integer
bins (bin ceil(error), one bin for errors above 150), so error <= t for an integer
t exactly when the bin is <= t, and any number of images fits in a fixed table.

Class rebalancing (lambda = 0): each pixel's class is the nearest of the 313 ab bins
to its true ab; p(class) is that class's share of the evaluated pixels (the
evaluation set's own ground truth, no smoothing), and each pixel weighs 1 / p. The
rebalanced acc(t) is then the mean over the classes present of each class's acc(t):
every colour present counts equally, however rare.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from colornet import bins
from colornet import constants as c
from colornet.losses import soft_cross_entropy

AUC_MAX_THRESHOLD = 150  # ab units (paper Sec. 3.1)
AUC_THRESHOLDS = np.arange(AUC_MAX_THRESHOLD + 1)  # 0, 1, ..., 150
# Error bins: ceil(error) for errors up to 150, and one more for everything above.
ERROR_BINS = AUC_MAX_THRESHOLD + 2
# Pixels classified per step: bounds the memory of the nearest-bin search
# (about 100 bytes per pixel) on full-resolution photographs.
_CHUNK_PIXELS = 1 << 20
HASLER_SUSSTRUNK_MEAN_WEIGHT = 0.3


@keras.saving.register_keras_serializable(package="colornet")
class UnweightedCrossEntropy(keras.metrics.Mean):
    """Mean per-pixel cross-entropy against the soft targets, without rebalancing.

    In nats per output pixel, so it reads the same at any crop size (the rebalanced
    loss sums over pixels, as the release did). A uniform prediction scores
    ln 313 = 5.75.

    Args:
      k, sigma: soft-encoding neighbours and Gaussian width (ab units).
    """

    def __init__(self, k=c.SOFT_ENCODE_K, sigma=c.SOFT_ENCODE_SIGMA, name="unweighted_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.k = k
        self.sigma = float(sigma)

    def update_state(self, y_true, y_pred, sample_weight=None):
        ce, _ = soft_cross_entropy(y_true, y_pred, self.k, self.sigma)
        return super().update_state(tf.reduce_mean(ce, axis=[1, 2]), sample_weight)

    def get_config(self):
        return {**super().get_config(), "k": self.k, "sigma": self.sigma}


# ----------------------------------------------------------------------------
# AuC of per-pixel ab accuracy (paper Sec. 3.1).


def _check_ab(ab, name):
    if ab.shape.rank is not None and (ab.shape.rank < 1 or ab.shape[-1] not in (None, 2)):
        raise ValueError(f"{name} must have a trailing axis of size 2 (a, b), got shape {ab.shape}")


def ab_error_bins(ab_pred, ab_true):
    """Each pixel's ab error as an integer bin: ceil(error), or 151 for errors above 150.

    error <= t for an integer threshold t exactly when the bin is <= t.

    Args:
      ab_pred, ab_true: `(..., 2)` float ab, same shape.

    Returns:
      `(...)` int32 in 0..151. NaN or Inf input raises InvalidArgumentError.
    """
    ab_pred = tf.convert_to_tensor(ab_pred)
    ab_true = tf.convert_to_tensor(ab_true)
    _check_ab(ab_pred, "ab_pred")
    _check_ab(ab_true, "ab_true")
    diff = tf.cast(ab_pred, tf.float32) - tf.cast(ab_true, tf.float32)
    error = tf.sqrt(tf.reduce_sum(tf.square(diff), axis=-1))
    error = tf.debugging.assert_all_finite(error, "ab contains NaN or Inf")
    return tf.cast(tf.minimum(tf.math.ceil(error), ERROR_BINS - 1), tf.int32)


def ab_classes(ab_true):
    """Each pixel's class for rebalancing: the index of the nearest of the 313 bins.

    Args:
      ab_true: `(..., 2)` float ab.

    Returns:
      `(...)` int32 in 0..312.
    """
    ab_true = tf.convert_to_tensor(ab_true)
    _check_ab(ab_true, "ab_true")
    return bins.nearest_bins(ab_true, 1)[0][..., 0]


@tf.function(reduce_retracing=True)
def _class_error_histogram(ab_pred, ab_true, classes):
    """`(N, 2)` ab pairs and `(N,)` classes -> flat `(313 * 152,)` int64 counts."""
    index = classes * ERROR_BINS + ab_error_bins(ab_pred, ab_true)
    size = c.NUM_BINS * ERROR_BINS
    return tf.math.bincount(index, minlength=size, maxlength=size, dtype=tf.int64)


@tf.function(reduce_retracing=True)
def _classes_flat(ab_true):
    return ab_classes(ab_true)


def pixel_classes(ab_true):
    """`ab_classes` of any number of pixels, flattened: `(N,)` int32.

    Works through the pixels a million at a time, so a full-resolution photograph
    needs little memory; compute it once to score several predictions against the
    same truth (`AucAccumulator.update(..., classes=...)`).
    """
    flat = tf.reshape(tf.cast(ab_true, tf.float32), [-1, 2])
    chunks = [
        _classes_flat(flat[start : start + _CHUNK_PIXELS])
        for start in range(0, int(flat.shape[0]), _CHUNK_PIXELS)
    ]
    return tf.concat(chunks, axis=0) if chunks else tf.zeros([0], tf.int32)


def auc_from_curve(curve):
    """Area under acc(t), t = 0..150, by the trapezoid rule, normalised to 100.

    Args:
      curve: `(151,)` shares in [0, 1] at t = 0, 1, ..., 150.

    Returns:
      float in [0, 100].
    """
    curve = np.asarray(curve, dtype=np.float64)
    if curve.shape != AUC_THRESHOLDS.shape:
        raise ValueError(f"curve must have shape {AUC_THRESHOLDS.shape}, got {curve.shape}")
    area = curve.sum() - 0.5 * (curve[0] + curve[-1])
    return float(100.0 * area / AUC_MAX_THRESHOLD)


class AucAccumulator:
    """Streams images into the raw and class-rebalanced AuC (see the module docstring).

    Holds one `(313, 152)` table of pixel counts (class of the true ab, error bin),
    so memory does not grow with the number of images. Update it image by image
    (any shapes, flattened); read `auc()`, `auc(rebalanced=True)` or the curves at
    any time.

    Example:
      acc = AucAccumulator()
      for pred, true in pairs:  # ab, (H, W, 2)
          acc.update(pred, true)
      acc.auc(), acc.auc(rebalanced=True)
    """

    def __init__(self):
        self.counts = np.zeros((c.NUM_BINS, ERROR_BINS), dtype=np.int64)

    @property
    def pixels(self):
        """Pixels counted so far."""
        return int(self.counts.sum())

    def update(self, ab_pred, ab_true, classes=None):
        """Counts the pixels of one prediction.

        Args:
          ab_pred, ab_true: `(..., 2)` float ab, same shape.
          classes: int32 nearest-bin index of each pixel of `ab_true`
            (`pixel_classes`), to reuse when several predictions are scored against
            the same truth; computed when None.
        """
        ab_pred = tf.reshape(tf.cast(ab_pred, tf.float32), [-1, 2])
        ab_true = tf.reshape(tf.cast(ab_true, tf.float32), [-1, 2])
        if ab_pred.shape != ab_true.shape:
            raise ValueError(
                f"ab_pred and ab_true must have the same number of pixels, got "
                f"{ab_pred.shape[0]} and {ab_true.shape[0]}"
            )
        if classes is None:
            classes = pixel_classes(ab_true)
        classes = tf.reshape(tf.cast(classes, tf.int32), [-1])
        if classes.shape[0] != ab_true.shape[0]:
            raise ValueError(
                f"classes must hold one index per pixel ({ab_true.shape[0]}), got {classes.shape[0]}"
            )
        histogram = _class_error_histogram(ab_pred, ab_true, classes)
        self.counts += histogram.numpy().reshape(c.NUM_BINS, ERROR_BINS)

    def curve(self, rebalanced=False):
        """acc(t) at t = 0..150: `(151,)` float64 shares in [0, 1].

        Raw: share of all pixels within t. Rebalanced: mean over the classes present
        of each class's share within t (pixel weights 1 / p(class), lambda = 0).

        Raises:
          ValueError: nothing was counted yet.
        """
        per_class = self.counts.sum(axis=1)
        if per_class.sum() == 0:
            raise ValueError("no pixels counted: call update() first")
        within = np.cumsum(self.counts, axis=1)[:, : AUC_MAX_THRESHOLD + 1].astype(np.float64)
        if not rebalanced:
            return within.sum(axis=0) / per_class.sum()
        present = per_class > 0
        return (within[present] / per_class[present, None]).mean(axis=0)

    def auc(self, rebalanced=False):
        """The AuC in percent (0..100); see `curve` and `auc_from_curve`."""
        return auc_from_curve(self.curve(rebalanced))

    def classes_present(self):
        """Number of ab classes among the true pixels counted."""
        return int((self.counts.sum(axis=1) > 0).sum())


def raw_auc(ab_pred, ab_true):
    """AuC (percent) of the share of pixels whose ab error is within t, t = 0..150."""
    accumulator = AucAccumulator()
    accumulator.update(ab_pred, ab_true)
    return accumulator.auc()


def rebalanced_auc(ab_pred, ab_true):
    """AuC (percent) with each pixel weighted by 1 / p(its true class) over these pixels."""
    accumulator = AucAccumulator()
    accumulator.update(ab_pred, ab_true)
    return accumulator.auc(rebalanced=True)


# ----------------------------------------------------------------------------
# PSNR and colourfulness on RGB.


def psnr(rgb_pred, rgb_true, peak=255.0):
    """Peak signal-to-noise ratio in dB over all values given.

    PSNR = 10 log10(peak^2 / MSE), the MSE taken over every pixel and channel.

    Args:
      rgb_pred, rgb_true: same-shape arrays on the 0..255 scale (uint8 or float).
      peak: the largest possible value (255 for 8-bit RGB).

    Returns:
      float64 scalar tensor; +inf when the two are identical.
    """
    rgb_pred = tf.convert_to_tensor(rgb_pred)
    rgb_true = tf.convert_to_tensor(rgb_true)
    if not rgb_pred.shape.is_compatible_with(rgb_true.shape):
        raise ValueError(f"rgb_pred and rgb_true differ in shape: {rgb_pred.shape} vs {rgb_true.shape}")
    diff = tf.cast(rgb_pred, tf.float64) - tf.cast(rgb_true, tf.float64)
    mse = tf.reduce_mean(tf.square(diff))
    return 10.0 * tf.math.log(tf.constant(float(peak) ** 2, tf.float64) / mse) / math.log(10.0)


def colorfulness(rgb):
    """Colourfulness of Hasler and Suesstrunk (2003), "Measuring colourfulness in
    natural images", Eq. (1)-(3).

    With rg = R - G and yb = (R + G) / 2 - B on the 0..255 scale:
    M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2),
    standard deviations over the image's pixels (population, not sample). A grey
    image scores 0.

    Args:
      rgb: `(..., H, W, 3)` sRGB on the 0..255 scale (uint8 or float).

    Returns:
      `(...)` float64 tensor, one value per image.
    """
    rgb = tf.cast(tf.convert_to_tensor(rgb), tf.float64)
    if rgb.shape.rank is not None and (rgb.shape.rank < 3 or rgb.shape[-1] not in (None, 3)):
        raise ValueError(f"rgb must have shape (..., H, W, 3), got {rgb.shape}")
    r, g, b = tf.unstack(rgb, axis=-1)
    rg = r - g
    yb = 0.5 * (r + g) - b
    axes = [-2, -1]
    spread = tf.sqrt(tf.math.reduce_variance(rg, axes) + tf.math.reduce_variance(yb, axes))
    centre = tf.sqrt(tf.square(tf.reduce_mean(rg, axes)) + tf.square(tf.reduce_mean(yb, axes)))
    return spread + HASLER_SUSSTRUNK_MEAN_WEIGHT * centre
