"""sRGB <-> CIE Lab (D65) in TensorFlow ops.

Written here rather than taken from tensorflow-io: its last release is built for
TF 2.16, its compiled parts do not load under TF 2.21 and its colour ops give NaN
gradients at black. The formulas and constants follow scikit-image, which the
original release used to make its training data, so the two agree to float32
precision. Every op works eagerly, in `tf.function`, in `tf.data` and under XLA,
and every branch is guarded so that gradients stay finite (black included).
"""

import numpy as np
import tensorflow as tf

from colornet import constants as c

# Computed once in float64, like scikit-image's `rgb_from_xyz`.
_LINEAR_RGB_FROM_XYZ = np.linalg.inv(np.array(c.XYZ_FROM_LINEAR_RGB, dtype=np.float64))


def _as_float(x):
    x = tf.convert_to_tensor(x)
    if x.dtype == tf.uint8:
        return tf.cast(x, tf.float32) / 255.0
    if x.dtype in (tf.float32, tf.float64):
        return x
    return tf.cast(x, tf.float32)


def _check_channels(x, name):
    if x.shape.rank is not None and x.shape.rank < 1:
        raise ValueError(f"{name} must have a trailing channel axis of size 3, got a scalar")
    if x.shape[-1] is not None and x.shape[-1] != 3:
        raise ValueError(f"{name} must have 3 channels in its last axis, got shape {x.shape}")


def _matmul_channels(x, matrix):
    m = tf.constant(matrix, dtype=x.dtype)
    return tf.einsum("...i,ji->...j", x, m)


def rgb_to_lab(rgb):
    """Converts sRGB to CIE Lab under the D65 white.

    Args:
      rgb: `(..., 3)` sRGB, either uint8 (0..255) or float in [0, 1].

    Returns:
      `(..., 3)` float32 (float64 for float64 input) Lab: L in 0..100, a and b
      roughly -128..127.
    """
    rgb = _as_float(rgb)
    _check_channels(rgb, "rgb")
    threshold = c.SRGB_LINEAR_THRESHOLD
    linear = tf.where(
        rgb > threshold,
        tf.pow((tf.maximum(rgb, threshold) + 0.055) / 1.055, 2.4),
        rgb / 12.92,
    )
    xyz = _matmul_channels(linear, c.XYZ_FROM_LINEAR_RGB)
    xyz = xyz / tf.constant(c.D65_WHITE, dtype=xyz.dtype)
    f = tf.where(
        xyz > c.LAB_EPSILON,
        tf.pow(tf.maximum(xyz, c.LAB_EPSILON), 1.0 / 3.0),
        c.LAB_KAPPA_SLOPE * xyz + 16.0 / 116.0,
    )
    fx, fy, fz = tf.unstack(f, axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab):
    """Converts CIE Lab (D65) to sRGB, clipping out-of-gamut colours to [0, 1].

    Args:
      lab: `(..., 3)` float Lab.

    Returns:
      `(..., 3)` float32 (float64 for float64 input) sRGB in [0, 1].
    """
    lab = _as_float(lab)
    _check_channels(lab, "lab")
    l_raw, a, b = tf.unstack(lab, axis=-1)
    fy = (l_raw + 16.0) / 116.0
    fx = a / 500.0 + fy
    # scikit-image clamps a negative f(z) to 0 before inverting.
    fz = tf.maximum(fy - b / 200.0, 0.0)
    f = tf.stack([fx, fy, fz], axis=-1)
    xyz = tf.where(
        f > c.LAB_F_THRESHOLD,
        tf.pow(f, 3.0),
        (f - 16.0 / 116.0) / c.LAB_KAPPA_SLOPE,
    )
    xyz = xyz * tf.constant(c.D65_WHITE, dtype=xyz.dtype)
    linear = _matmul_channels(xyz, _LINEAR_RGB_FROM_XYZ)
    threshold = c.SRGB_ENCODE_THRESHOLD
    rgb = tf.where(
        linear > threshold,
        1.055 * tf.pow(tf.maximum(linear, threshold), 1.0 / 2.4) - 0.055,
        12.92 * linear,
    )
    return tf.clip_by_value(rgb, 0.0, 1.0)
