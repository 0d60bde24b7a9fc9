"""Shared by the export, serving and TFLite tests: a small model, images, one export.

The `tiny` preset with random weights predicts an almost uniform distribution over
the bins, so every decoding gives nearly the same grey ab and comparisons would test
little. `vivid_tiny_model` scales its 313-way head so that the logits vary by a few
units across bins and pixels: ab then ranges over tens of units, like a trained
model's, and errors in resizing, decoding or quantisation show up.
"""

import io
import struct
import zlib

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from colornet import color
from colornet.deploy import export
from colornet.layers import decode
from colornet.models import Colorizer
from tests.helpers.images import smooth_rgb

IMAGE_SIZE = 64  # the network's native size in these tests (256 in production)
MAX_PIXELS = 1_000_000  # serving limit of the shared export, small enough to test
LOGIT_STD = 3.0


def vivid_tiny_model(seed=0, **overrides):
    """A `tiny` Colorizer (`ModelConfig` fields changed by `overrides`) whose logits
    have a standard deviation of about 3."""
    keras.utils.set_random_seed(seed)
    model = Colorizer.from_preset("tiny", **overrides)
    probe = np.stack([tf.image.rgb_to_grayscale(smooth_rgb(64, 64, s)).numpy() for s in range(2)])
    probe = probe.astype(np.float32) * (100.0 / 255.0)
    head = model.get_layer("conv8_313")
    kernel, bias = head.get_weights()
    std = float(np.std(model(probe, training=False).numpy() - bias))
    rng = np.random.default_rng(seed)
    head.set_weights([kernel * (LOGIT_STD / max(std, 1e-6)), rng.normal(0.0, 1.0, bias.shape).astype(np.float32)])
    return model


def encode(rgb, fmt):
    """Encodes `(H, W, 3)` or `(H, W, 1)` uint8 as "png", "jpeg", "gif", "bmp" or "webp"."""
    if fmt == "png":
        return tf.io.encode_png(rgb).numpy()
    if fmt == "jpeg":
        return tf.io.encode_jpeg(rgb, quality=95).numpy()
    image = Image.fromarray(rgb[..., 0] if rgb.shape[-1] == 1 else rgb)
    buffer = io.BytesIO()
    options = {"lossless": True} if fmt == "webp" else {}
    image.save(buffer, format=fmt.upper(), **options)
    return buffer.getvalue()


def png_header_only(width, height):
    """A PNG signature and IHDR chunk declaring `width` x `height`, and no pixels."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))


def bad_images():
    """Inputs `serving_default` must refuse: `{name: (bytes, part of the message)}`."""
    good = encode(smooth_rgb(40, 48, seed=5), "png")
    return {
        "empty": (b"", "empty input"),
        "random": (np.random.default_rng(0).bytes(200), "not a JPEG, PNG"),
        "truncated_png": (good[: len(good) // 2], "Invalid PNG data"),
        "bomb": (png_header_only(100_000, 100_000) + b"\0" * 64, "100000x100000"),
    }


_EXPORTS = {}


def shared_export(tmp_path_factory):
    """`(model, ExportResult)`: the vivid tiny model exported once per test session."""
    if "default" not in _EXPORTS:
        model = vivid_tiny_model()
        base = tmp_path_factory.mktemp("models") / "colornet"
        result = export.export_saved_model(
            model,
            base,
            size=IMAGE_SIZE,
            max_pixels=MAX_PIXELS,
            warmup_batch_sizes=(1, 3),
            jit_compile=True,  # the XLA path through TF Serving's loader is the one to test
        )
        _EXPORTS["default"] = (model, result)
    return _EXPORTS["default"]



def reference_colorize(model, l_raw, temperature=0.38, image_size=IMAGE_SIZE):
    """What the signatures should compute, step by step in eager Keras/TF.

    `(B, H, W, 1)` L -> `(ab (B, H, W, 2) float32, rgb (B, H, W, 3) uint8,
    logits (B, S/4, S/4, 313))`.
    """
    l_raw = tf.convert_to_tensor(l_raw, tf.float32)
    l_small = tf.image.resize(l_raw, (image_size, image_size), method="bilinear", antialias=True)
    logits = model(l_small, training=False)
    ab_small = decode.annealed_mean(logits, temperature)
    ab = tf.image.resize(ab_small, tf.shape(l_raw)[1:3], method="bilinear")
    rgb = color.lab_to_rgb(tf.concat([l_raw, ab], axis=-1))
    rgb = tf.cast(tf.round(rgb * 255.0), tf.uint8)
    return ab.numpy(), rgb.numpy(), logits.numpy()


def l_of(rgb_uint8):
    """`(..., H, W, 3)` uint8 -> `(..., H, W, 1)` float32 L."""
    return color.rgb_to_lab(rgb_uint8)[..., :1].numpy()
