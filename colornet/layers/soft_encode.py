"""Soft-encoding of ab values over the 313 bins (paper Sec. 2.1)."""

import math

import keras
import tensorflow as tf

from colornet import bins
from colornet import constants as c


def validate_soft_encode_args(k, sigma):
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= c.NUM_BINS:
        raise ValueError(f"k must be an integer in [1, {c.NUM_BINS}], got {k!r}")
    if not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number of ab units, got {sigma!r}")


def soft_encode_sparse(ab, k=c.SOFT_ENCODE_K, sigma=c.SOFT_ENCODE_SIGMA):
    """Soft targets as k (bin index, weight) pairs per ab value.

    Each value's k nearest bin centres get Gaussian weights exp(-d^2 / (2 sigma^2)),
    normalised to sum to 1 with a softmax over -d^2 / (2 sigma^2): unlike exp/sum it
    cannot underflow to 0/0 for values far from every bin. Indices come nearest
    first, so `indices[..., 0]` is the nearest bin.

    Args:
      ab: `(..., 2)` float ab values; NaN or Inf raise InvalidArgumentError, values
        beyond +-140 (no colour has them) are clipped.
      k: number of bins that share each value's mass.
      sigma: Gaussian width, in ab units.

    Returns:
      `(indices, weights)`: int32 and float32, both `(..., k)`.
    """
    validate_soft_encode_args(k, sigma)
    ab = tf.debugging.assert_all_finite(tf.cast(ab, tf.float32), "ab contains NaN or Inf")
    indices, weights = _soft_encode_xla(ab, k, float(sigma))
    return tf.stop_gradient(indices), tf.stop_gradient(weights)


# One XLA cluster for the search and the weights; callable from graphs that are not
# compiled themselves (the training step: XLA made whole training steps slower here).
@tf.function(jit_compile=True, reduce_retracing=True)
def _soft_encode_xla(ab, k, sigma):
    indices, sq_dist = bins.nearest_bins(ab, k)
    return indices, tf.nn.softmax(-sq_dist / (2.0 * sigma**2), axis=-1)


@tf.function(jit_compile=True)
def densify(indices, weights):
    """Turns k (index, weight) pairs `(..., k)` into dense `(..., 313)` vectors.

    Compiled with XLA, which fuses the k one-hot terms into one pass over the output.
    """
    dense = 0.0
    for j in range(indices.shape[-1]):
        dense += tf.one_hot(indices[..., j], c.NUM_BINS, dtype=weights.dtype) * weights[..., j : j + 1]
    return dense


@keras.saving.register_keras_serializable(package="colornet")
class SoftEncode(keras.layers.Layer):
    """Spreads each ab value over its k nearest of the 313 bins (paper Sec. 2.1).

    The weights are a Gaussian of the distance to each of the k nearest bin centres,
    normalised to sum to 1. The loss uses the sparse form (`soft_encode_sparse`);
    calling this layer returns dense targets for users who want them. Computed in
    float32 whatever the mixed-precision policy.

    Args:
      k: bins per value; 5 as the paper says, 10 reproduces the released training.
      sigma: Gaussian width in ab units (5 in the paper).

    Input: `(B, H, W, 2)` ab values. Output: `(B, H, W, 313)` float32 targets,
    each row summing to 1 with exactly k non-zeros.
    """

    def __init__(self, k=c.SOFT_ENCODE_K, sigma=c.SOFT_ENCODE_SIGMA, **kwargs):
        validate_soft_encode_args(k, sigma)
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.k = k
        self.sigma = float(sigma)

    def call(self, ab):
        return densify(*soft_encode_sparse(ab, self.k, self.sigma))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], c.NUM_BINS)

    def get_config(self):
        return {**super().get_config(), "k": self.k, "sigma": self.sigma}
