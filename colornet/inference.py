"""From L to a colour image, in TF ops: decode the logits, upsample ab, join the full-res L.

How an image is coloured (the release's demo; `colornet.deploy.export`, `colornet.deploy.tflite`
and `colornet.deploy.predictors` all do it with these functions): the L of the input (a
colour input is decolourised: only its L is used) is resized to the network's
native size S x S (`network_input`: bilinear, antialiased; the aspect ratio is not
kept), the network predicts logits at S/4 x S/4, they are decoded to ab
(`decode_logits`: annealed mean by default), the ab is upsampled bilinearly to the
input's size and joined with the input's own full-resolution L (`join_l_ab`).

A model enters only as something with a `logits(l_small)` method (a
`colornet.deploy.predictors.Predictor`) or as a Keras model; loading model files is
`colornet.deploy.predictors`' job.
"""

import tensorflow as tf

from colornet import color
from colornet import constants as c
from colornet import hints as hint_maps
from colornet.layers import decode

DECODE_METHODS = c.DECODE_METHODS


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


def checked_l(l_raw):
    """L as float32, refused if it holds NaN or Inf and clipped to 0..100 (no image has
    other values; the network's ReLUs may turn NaN into 0, so the logits would not
    show it).

    Raises:
      tf.errors.InvalidArgumentError: "L contains NaN or Inf".
    """
    l_raw = tf.debugging.assert_all_finite(tf.cast(l_raw, tf.float32), "L contains NaN or Inf")
    return tf.clip_by_value(l_raw, 0.0, 100.0)


def colorize_l(model, l_raw, method="annealed-mean", temperature=c.ANNEALED_MEAN_TEMPERATURE):
    """Colourises a batch of L (`checked_l`) with a Keras colorizer; `(B, H, W, 3)`
    float32 sRGB."""
    l_raw = checked_l(l_raw)
    logits = model(l_raw, training=False)
    return join_l_ab(l_raw, decode_logits(logits, method, temperature))


def to_uint8(rgb):
    """Float sRGB in [0, 1] -> uint8, rounded to the nearest level."""
    return tf.cast(tf.round(tf.clip_by_value(tf.cast(rgb, tf.float32), 0.0, 1.0) * 255.0), tf.uint8)


def network_input(l_raw, size):
    """Resizes `(B, H, W, 1)` L to `(B, size, size, 1)` for the network.

    Bilinear with antialiasing, aspect ratio not kept (the release demo's 256 x 256;
    the exported models do the same). Returned unchanged when already that size.
    """
    l_raw = tf.convert_to_tensor(l_raw, tf.float32)
    if tuple(l_raw.shape[1:3]) == (size, size):
        return l_raw
    return tf.image.resize(l_raw, (size, size), method="bilinear", antialias=True)



def validate_decoding(method, temperature):
    """Checks a decoding method and temperature; returns the temperature as a float."""
    if method not in DECODE_METHODS:
        raise ValueError(f"method must be one of {', '.join(DECODE_METHODS)}, got {method!r}")
    return decode.validate_temperature(temperature)


def small_inputs(l_raw, size, hints=None):
    """The network's inputs for one image: `(1, size, size, 1)` L and, with `hints`
    (`(N, 5)` points in the image's pixels, `colornet.hints.parse_hints`), the
    `(1, size, size, 3)` hint map; None without."""
    l_small = network_input(l_raw, size)
    if hints is None:
        return l_small, None
    return l_small, hint_maps.hint_map(hints, tf.shape(l_raw)[1:3], size)[None]


def predict_rgb(
    predictor, l_raw, size, method="annealed-mean", temperature=c.ANNEALED_MEAN_TEMPERATURE, hints=None
):
    """Colourises one image's L with a `Predictor`, keeping its full resolution.

    Args:
      predictor: a `colornet.deploy.predictors.Predictor` (anything with `logits(l_small)`).
      l_raw: `(H, W, 1)` float L in 0..100 (see `checked_l`).
      size: the side the network runs at (`colornet.deploy.predictors.resolve_size`).
      method, temperature: the decoding (`decode_logits`); unused by a predictor that
        `predicts_ab` (the SIGGRAPH 2017 network), whose ab is used as it comes.
      hints: None, or `(N, 5)` hint points (`colornet.hints.parse_hints`) for a model
        that takes hints.

    Returns:
      `(H, W, 3)` uint8 tensor.
    """
    l_raw = checked_l(l_raw)[None]
    l_small, hint_small = small_inputs(l_raw, size, hints)
    if getattr(predictor, "predicts_ab", False):
        ab_small = predictor.ab(l_small, hint_small)
    else:
        logits = predictor.logits(l_small) if hint_small is None else predictor.logits(l_small, hint_small)
        ab_small = decode_logits(logits, method, temperature)
    return to_uint8(join_l_ab(l_raw, ab_small))[0]


def colorize_rgb(
    predictor, rgb, size, method="annealed-mean", temperature=c.ANNEALED_MEAN_TEMPERATURE, hints=None
):
    """`predict_rgb` of an `(H, W, 3)` sRGB image (uint8, or float in [0, 1]): only its L
    is used (a colour input is decolourised first). Returns `(H, W, 3)` uint8."""
    return predict_rgb(predictor, color.rgb_to_lab(rgb)[..., :1], size, method, temperature, hints)


def grey_from_l(l_raw):
    """The grey baseline of `(H, W, 1)` L: ab = 0, as `(H, W, 3)` uint8."""
    l_raw = tf.convert_to_tensor(l_raw, tf.float32)
    zeros = tf.zeros_like(l_raw)
    return to_uint8(color.lab_to_rgb(tf.concat([l_raw, zeros, zeros], axis=-1)))


def grey_rgb(rgb):
    """The grey baseline of an sRGB image: its own L with ab = 0, as `(H, W, 3)` uint8."""
    return grey_from_l(color.rgb_to_lab(rgb)[..., :1])


def has_color(rgb):
    """True when some pixel's abs(a) or abs(b) exceeds 5 (the release's grey-image test)."""
    ab = color.rgb_to_lab(rgb)[..., 1:]
    return bool(tf.reduce_max(tf.abs(ab)) > c.GREY_THRESHOLD)
