"""From L to a colour image: decode the logits, upsample ab, join the full-res L."""

import tensorflow as tf

from colornet import color
from colornet import constants as c
from colornet.layers import decode


def upsample_ab(ab_small, size):
    """Bilinear upsampling of `(B, h, w, 2)` ab to `size` = (H, W), float32."""
    return tf.image.resize(tf.cast(ab_small, tf.float32), size, method="bilinear")


def join_l_ab(l_raw, ab_small):
    """Joins full-resolution L with low-resolution ab, as every official demo does.

    Args:
      l_raw: `(B, H, W, 1)` L in 0..100.
      ab_small: `(B, h, w, 2)` ab at any lower resolution.

    Returns:
      `(B, H, W, 3)` float32 sRGB in [0, 1].
    """
    l_raw = tf.cast(l_raw, tf.float32)
    ab = upsample_ab(ab_small, tf.shape(l_raw)[1:3])
    return color.lab_to_rgb(tf.concat([l_raw, ab], axis=-1))


def decode_logits(logits, method="annealed-mean", temperature=c.ANNEALED_MEAN_TEMPERATURE):
    """ab from logits by "annealed-mean" (paper), "mean" or "mode"."""
    if method == "annealed-mean":
        return decode.annealed_mean(logits, temperature)
    if method == "mean":
        return decode.mean(logits)
    if method == "mode":
        return decode.mode(logits)
    raise ValueError(f"method must be annealed-mean, mean or mode, got {method!r}")


def colorize_l(model, l_raw, method="annealed-mean", temperature=c.ANNEALED_MEAN_TEMPERATURE):
    """Colourises a batch of L with a Keras colorizer; `(B, H, W, 3)` float32 sRGB."""
    logits = model(l_raw, training=False)
    return join_l_ab(l_raw, decode_logits(logits, method, temperature))
