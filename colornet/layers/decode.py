"""From 313-way logits to ab: annealed mean, mean and mode (paper Sec. 2.3).

All decoding runs in float32 whatever the mixed-precision policy: in bfloat16 the
annealed mean errs by up to 1 ab unit.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from colornet import bins
from colornet import constants as c


def validate_temperature(temperature):
    """Checks a Python temperature; returns it as a float."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return float(temperature)


def _finite_float32(logits):
    return tf.debugging.assert_all_finite(tf.cast(logits, tf.float32), "logits contain NaN or Inf")


_SMALLEST_NORMAL = float(np.finfo(np.float32).tiny)


def _centres():
    return tf.constant(bins.ab_bins())


def annealed_mean(logits, temperature=c.ANNEALED_MEAN_TEMPERATURE):
    """ab = softmax(logits / T) . centres.

    Args:
      logits: `(..., 313)` logits (any float dtype).
      temperature: T > 0, a Python number or a scalar tensor (checked at run time).
        T = 1 is the plain mean; T -> 0 tends to the mode. T below the smallest
        normal float32 (1.2e-38, which CPUs flush to 0) is raised to it.

    Returns:
      `(..., 2)` float32 ab. NaN or Inf logits raise InvalidArgumentError; any
      finite logits, however large, give finite ab.
    """
    logits = _finite_float32(logits)
    if isinstance(temperature, (tf.Tensor, tf.Variable)):
        temperature = tf.cast(temperature, tf.float32)
        check = tf.debugging.assert_positive(
            temperature, message="temperature must be > 0"
        )
        with tf.control_dependencies([check]):
            temperature = tf.identity(temperature)
    else:
        temperature = validate_temperature(temperature)
    # Shifted by the maximum before dividing: logits / T alone overflows to Inf (and
    # the softmax to NaN) for finite logits near the float32 limit or a tiny T.
    shifted = logits - tf.reduce_max(logits, axis=-1, keepdims=True)
    probs = tf.nn.softmax(shifted / tf.maximum(temperature, _SMALLEST_NORMAL), axis=-1)
    return tf.einsum("...q,qc->...c", probs, _centres())


def mean(logits):
    """The plain mean of the predicted distribution (T = 1); `(..., 2)` float32."""
    return annealed_mean(logits, 1.0)


def mode(logits):
    """The centre of the most probable bin (the T -> 0 limit); `(..., 2)` float32."""
    return tf.gather(_centres(), tf.argmax(_finite_float32(logits), axis=-1))


@keras.saving.register_keras_serializable(package="colornet")
class AnnealedMeanDecode(keras.layers.Layer):
    """Decodes 313-way logits to ab with the annealed mean (paper Sec. 2.3, Eq. 5).

    ab = softmax(logits / T) . centres, in float32 whatever the precision policy.
    T = 0.38 is the paper's choice (the release deploy net scales logits by 2.606);
    T = 1 is the mean (desaturated), T -> 0 the mode (vivid but patchy).

    Args:
      temperature: default T > 0. `call(logits, temperature=...)` overrides it per
        call with a Python number or a scalar tensor.

    Input: `(B, H, W, 313)` logits. Output: `(B, H, W, 2)` float32 ab.
    """

    def __init__(self, temperature=c.ANNEALED_MEAN_TEMPERATURE, **kwargs):
        temperature = validate_temperature(temperature)
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.temperature = temperature

    def call(self, logits, temperature=None):
        return annealed_mean(logits, self.temperature if temperature is None else temperature)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
