"""The class-rebalanced multinomial cross-entropy (paper Sec. 2.1-2.2, Eq. 2 and 4)."""

import keras
import numpy as np
import tensorflow as tf

from colornet import constants as c
from colornet.layers.soft_encode import soft_encode_sparse, validate_soft_encode_args


def soft_cross_entropy(ab, logits, k=c.SOFT_ENCODE_K, sigma=c.SOFT_ENCODE_SIGMA):
    """Per-pixel cross-entropy of softmax(logits) against the soft-encoded ab.

    Uses only each pixel's k (index, weight) pairs: CE = logsumexp(z) - sum_j t_j z_j.

    Args:
      ab: `(B, h, w, 2)` true ab at output resolution.
      logits: `(B, h, w, 313)` logits, any float dtype (computed in float32).

    Returns:
      `(ce, nearest)`: float32 `(B, h, w)` nats, and int32 `(B, h, w)` index of each
      pixel's nearest bin.
    """
    logits = tf.cast(logits, tf.float32)
    indices, targets = soft_encode_sparse(ab, k, sigma)
    picked = tf.gather(logits, indices, batch_dims=3)
    ce = tf.reduce_logsumexp(logits, axis=-1) - tf.reduce_sum(targets * picked, axis=-1)
    return ce, indices[..., 0]


def _check_shapes(ab, logits):
    if ab.shape.rank != 4 or ab.shape[-1] != 2:
        raise ValueError(f"y_true must be ab of shape (B, h, w, 2), got {ab.shape}")
    if logits.shape.rank != 4 or logits.shape[-1] != c.NUM_BINS:
        raise ValueError(f"y_pred must be logits of shape (B, h, w, {c.NUM_BINS}), got {logits.shape}")
    if not ab.shape[1:3].is_compatible_with(logits.shape[1:3]):
        raise ValueError(
            f"y_true's spatial size {ab.shape[1:3]} differs from y_pred's {logits.shape[1:3]}: "
            "the target must be ab at the network's output resolution (1/4 of the input)"
        )


def _resolve_class_weights(class_weights):
    if class_weights is None:
        from colornet import prior

        return prior.default_prior().weights
    if isinstance(class_weights, str):
        if class_weights == "uniform":
            return np.ones(c.NUM_BINS)
        from colornet import prior

        return prior.load_prior(class_weights).weights
    weights = np.asarray(class_weights, dtype=np.float64)
    if weights.shape != (c.NUM_BINS,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(
            f"class_weights must be {c.NUM_BINS} finite non-negative numbers, "
            f"got shape {weights.shape}"
        )
    return weights


@keras.saving.register_keras_serializable(package="colornet")
class RebalancedLoss(keras.losses.Loss):
    """Class-rebalanced multinomial cross-entropy against soft-encoded targets.

    For each image: sum over pixels of w(pixel) * CE(soft target, softmax(logits)),
    where w is the rebalancing weight of the pixel's nearest bin (a constant: no
    gradient flows through it) and the soft target is computed here, on the device,
    from the true ab. Images whose every |a|, |b| <= `grey_threshold` weigh zero, as
    in the release. The Keras reduction then averages the per-image sums over the
    global batch (and divides by the number of replicas under `tf.distribute`), so
    the value matches the release's "sum over pixels / batch size" on any number of
    devices. The gradient at a pixel is w * (softmax(z) - t) / global_batch_size.

    Args:
      class_weights: None for the package's default prior (computed on our training
        photos), "uniform" for no rebalancing, a path to a prior `.npz` written by
        `colornet prior`, or 313 weights.
      k, sigma: soft-encoding neighbours and Gaussian width (ab units).
      grey_threshold: ab magnitude below which a whole image counts as grey.

    y_true: `(B, h, w, 2)` ab at output resolution. y_pred: `(B, h, w, 313)` logits.
    Returns `(B,)` per-image losses before reduction.
    """

    def __init__(
        self,
        class_weights=None,
        k=c.SOFT_ENCODE_K,
        sigma=c.SOFT_ENCODE_SIGMA,
        grey_threshold=c.GREY_THRESHOLD,
        name="rebalanced_loss",
        reduction="sum_over_batch_size",
        **kwargs,
    ):
        validate_soft_encode_args(k, sigma)
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.class_weights = [float(w) for w in _resolve_class_weights(class_weights)]
        self.k = k
        self.sigma = float(sigma)
        self.grey_threshold = float(grey_threshold)

    def call(self, y_true, y_pred):
        _check_shapes(y_true, y_pred)
        ce, nearest = soft_cross_entropy(y_true, y_pred, self.k, self.sigma)
        pixel_weights = tf.gather(tf.constant(self.class_weights, tf.float32), nearest)
        has_colour = tf.reduce_any(
            tf.abs(tf.cast(y_true, tf.float32)) > self.grey_threshold, axis=[1, 2, 3]
        )
        per_image = tf.reduce_sum(pixel_weights * ce, axis=[1, 2])
        return per_image * tf.cast(has_colour, tf.float32)

    def get_config(self):
        return {
            **super().get_config(),
            "class_weights": self.class_weights,
            "k": self.k,
            "sigma": self.sigma,
            "grey_threshold": self.grey_threshold,
        }
