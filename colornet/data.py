"""tf.data input pipelines: image files, TFRecord shards or TFDS -> `(l_raw, ab)`.

Sources (`source` argument of every pipeline):

* image files: a directory (searched recursively), a glob pattern, a `.txt` file
  listing one image path per line, or a list/tuple of these (`list_image_files`).
  Extensions .jpg .jpeg .png .bmp .gif .webp, in any case. Names starting with "."
  (hidden files and folders, macOS `._*` forks, interrupted `prepare` output) are
  ignored.
* a TFRecord directory written by `prepare` (`colornet prepare`), recognised by
  its manifest `MANIFEST_NAME`, which `prepare` writes last.
* `"tfds:NAME[:SPLIT]"`: a TensorFlow Datasets image data set (optional
  dependency, imported only then).

Paths may be local or `gs://` (TensorFlow reads it natively through
`tf.io.gfile`). Other schemes such as `s3://` need tensorflow-io's file-system
plugins, which do not load under TF 2.21: such a path fails early with one
`ColornetError` that says so and what works.

What the training element is (release `train_val` prototxt): the image's
shorter side is resized to `constants.TRAIN_RESIZE` (256), a random
`TRAIN_CROP` (176) square is cut and mirrored with probability 1/2, the crop is
converted to CIE Lab in the graph (`colornet.color.rgb_to_lab`), and the element
is `(l_raw, ab)`: `l_raw` float32 `(B, crop, crop, 1)` in 0..100 at full
resolution and `ab` float32 `(B, crop/4, crop/4, 2)`, the ab channels at every
4th pixel starting at row and column 0. That is what the release's
`data_ab_ss` layer computes (a 1x1 convolution, weight 1, stride 4, no padding,
on the full-resolution ab): no averaging, offset 0. Evaluation uses the centre
crop instead (Caffe's TEST-phase offset `(size - crop) // 2`).

Decoding (`decode_image`): JPEG, PNG, GIF, BMP and WebP; greyscale, grey+alpha,
palette and RGBA images become RGB. Alpha is dropped, not composited: the
colour stored under a transparent pixel is used as is. An animated GIF gives
its first frame (the file is cut after that frame before decoding, so the
other frames cost nothing). Animated WebP is rejected: TF 2.21's WebP decoder
corrupts memory on animations. 1-bit and 4-bit BMPs are not supported by TF and
are skipped like unreadable files. Before any pixel memory is allocated the
dimensions are read from the file header (`tf.io.extract_jpeg_shape` for JPEG;
parsed from the bytes in TF ops for PNG, GIF, BMP and WebP) and files that
declare more than `max_pixels` (default `MAX_PIXELS`, 50 megapixels) are
rejected, so a decompression bomb costs nothing. JPEG is decoded with libjpeg's
accurate integer IDCT (the output equals Pillow's and OpenCV's; TF's generic
decoder uses the fast one, a few levels off); inside the pipelines a JPEG at
least twice the target size is decoded at 1/2, 1/4 or 1/8 scale in the DCT
domain, which makes large photographs several times cheaper.

Unreadable files are skipped, never fatal: a file that cannot be read or
decoded is dropped from the stream, its path is printed once to stderr and it
is recorded in a `SkipCounter`. Pass `skip_counter=SkipCounter()` to a pipeline
and read `counter.count` / `counter.paths` during or after iteration;
`decoded_images` returns its counter. A counter counts distinct files, so a bad
file met again in a later epoch is not counted twice. If every listed file
fails, iteration raises instead of spinning forever.
"""

import dataclasses
import glob as pyglob
import json
import math
import os
import shutil
import sys
import time
import uuid

import numpy as np
import tensorflow as tf

from colornet import constants as c
from colornet.color import rgb_to_lab
from colornet.errors import ColornetError
from colornet.files import hidden_stem

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp")

# 50 megapixels: a decoded RGB image of this size takes 150 MB (200 MB while an
# alpha channel is still attached). Every real photograph we expect is far
# smaller (ImageNet averages 0.2 MP; a 2024 phone camera gives 12 to 50 MP),
# while a bomb declares gigapixels in a few bytes of header.
MAX_PIXELS = 50_000_000

# Written last by `prepare`: a TFRecord directory without it is incomplete.
MANIFEST_NAME = "colornet_tfrecords.json"
MANIFEST_FORMAT = "colornet-tfrecords"
MANIFEST_VERSION = 1
SHARD_PATTERN = "images-{index:05d}-of-{count:05d}.tfrecord"
IMAGES_PER_SHARD = 1024  # when `prepare` chooses the number of shards itself
PREPARE_JPEG_QUALITY = 95  # for images that `prepare(..., resize=N)` downscales

# Records shuffled in memory when training from TFRecords or TFDS (the shard
# order is shuffled too). 1024 photographs of ~100 kB each is ~100 MB.
SHUFFLE_BUFFER = 1024

_RECORD_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "path": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "height": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "width": tf.io.FixedLenFeature([], tf.int64, default_value=0),
}

_HEADER_BYTES = 64
_JPEG, _PNG, _GIF, _BMP, _WEBP, _UNKNOWN = range(6)

# The ops below use TF control flow only (tf.cond, tf.while_loop), no Python
# `if` on tensors, so AutoGraph has nothing to convert; skipping it makes the
# tracing that each pipeline does several times faster.
_plain_tf = tf.autograph.experimental.do_not_convert


# ----------------------------------------------------------------------------
# Decoding, in TF ops.


# Integer fields of the file headers: name -> (first byte, byte count, big-endian).
_HEADER_FIELDS = {
    "png_w": (16, 4, True),
    "png_h": (20, 4, True),
    "gif_w": (6, 2, False),
    "gif_h": (8, 2, False),
    "bmp_header_size": (14, 4, False),
    "bmp_w": (18, 4, False),  # signed
    "bmp_h": (22, 4, False),  # signed, negative for top-down rows
    "bmp_bpp": (28, 2, False),
    "bmp_core_w": (18, 2, False),  # the old 12-byte BITMAPCOREHEADER
    "bmp_core_h": (20, 2, False),
    "bmp_core_bpp": (24, 2, False),
    "vp8_w": (26, 2, False),  # lossy WebP: 14-bit size + 2-bit scale
    "vp8_h": (28, 2, False),
    "vp8l_w": (21, 2, False),  # lossless WebP: 14-bit (size - 1) fields
    "vp8l_h": (22, 3, False),
    "vp8x_flags": (20, 1, False),  # extended WebP: bit 1 = animation
    "vp8x_w": (24, 3, False),  # 24-bit (size - 1)
    "vp8x_h": (27, 3, False),
}


def _header_field_tables():
    index = np.zeros((len(_HEADER_FIELDS), 4), np.int32)
    weight = np.zeros((len(_HEADER_FIELDS), 4), np.int64)
    for row, (start, count, big_endian) in enumerate(_HEADER_FIELDS.values()):
        for k in range(count):
            index[row, k] = start + k
            weight[row, k] = 256 ** (count - 1 - k if big_endian else k)
    return index, weight


_HEADER_INDEX, _HEADER_WEIGHT = _header_field_tables()


@_plain_tf
def _parse_header(image_bytes):
    """Format and declared size from the first bytes, without decoding pixels.

    Returns `(fmt, height, width, extra)`; `height` and `width` are int64 and 0
    where the format is unknown or its size comes from elsewhere (JPEG).
    `extra` holds the BMP fields needed for palettes and the WebP animation flag.
    """
    padded = tf.strings.substr(
        tf.strings.join(
            [tf.strings.substr(image_bytes, 0, _HEADER_BYTES), b"\0" * _HEADER_BYTES]
        ),
        0,
        _HEADER_BYTES,
    )
    h = tf.cast(tf.io.decode_raw(padded, tf.uint8), tf.int64)
    values = tf.reduce_sum(tf.gather(h, _HEADER_INDEX) * _HEADER_WEIGHT, axis=1)
    f = dict(zip(_HEADER_FIELDS, tf.unstack(values, num=len(_HEADER_FIELDS))))

    def starts(prefix, at=0):
        return tf.equal(tf.strings.substr(padded, at, len(prefix)), prefix)

    fmt = tf.where(
        starts(b"\xff\xd8\xff"),
        _JPEG,
        tf.where(
            starts(b"\x89PNG\r\n\x1a\n") & starts(b"IHDR", 12),
            _PNG,
            tf.where(
                starts(b"GIF87a") | starts(b"GIF89a"),
                _GIF,
                tf.where(
                    starts(b"BM"),
                    _BMP,
                    tf.where(starts(b"RIFF") & starts(b"WEBP", 8), _WEBP, _UNKNOWN),
                ),
            ),
        ),
    )
    zero = tf.constant(0, tf.int64)

    def signed32(v):
        return tf.abs(tf.where(v >= 2**31, v - 2**32, v))

    core = tf.equal(f["bmp_header_size"], 12)
    bmp_w = tf.where(core, f["bmp_core_w"], signed32(f["bmp_w"]))
    bmp_h = tf.where(core, f["bmp_core_h"], signed32(f["bmp_h"]))
    vp8 = starts(b"VP8 ", 12)
    vp8l = starts(b"VP8L", 12)
    vp8x = starts(b"VP8X", 12)
    webp_w = tf.where(
        vp8,
        f["vp8_w"] % 16384,
        tf.where(vp8l, 1 + f["vp8l_w"] % 16384, tf.where(vp8x, 1 + f["vp8x_w"], zero)),
    )
    webp_h = tf.where(
        vp8,
        f["vp8_h"] % 16384,
        tf.where(
            vp8l, 1 + (f["vp8l_h"] // 64) % 16384, tf.where(vp8x, 1 + f["vp8x_h"], zero)
        ),
    )
    height = tf.gather(
        tf.stack([zero, f["png_h"], f["gif_h"], bmp_h, webp_h, zero]), fmt
    )
    width = tf.gather(
        tf.stack([zero, f["png_w"], f["gif_w"], bmp_w, webp_w, zero]), fmt
    )
    extra = {
        "bmp_bpp": tf.where(core, f["bmp_core_bpp"], f["bmp_bpp"]),
        "bmp_header_size": f["bmp_header_size"],
        "webp_animated": tf.equal(fmt, _WEBP)
        & vp8x
        & tf.equal((f["vp8x_flags"] // 2) % 2, 1),
    }
    return fmt, height, width, extra


@_plain_tf
def _gif_first_frame(image_bytes):
    """Cuts a GIF after its first image and returns `(bytes, height, width)`.

    Walks the block structure (extensions and image data are chains of
    length-prefixed sub-blocks) with one loop step per sub-block. When no
    complete first frame is found the input comes back unchanged (the decoder
    then reports the damage) with a size of 0.
    """
    pad = 16
    data = tf.cast(tf.io.decode_raw(image_bytes, tf.uint8), tf.int64)
    size = tf.size(data, out_type=tf.int64)
    data = tf.concat([data, tf.zeros([pad], tf.int64)], 0)

    def at(i):
        return tf.gather(data, tf.minimum(tf.cast(i, tf.int64), size + pad - 1))

    def u16(i):
        return at(i) + 256 * at(i + 1)

    def color_table_bytes(flags):
        size = 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), flags % 8)
        return tf.where(flags >= 128, size, tf.constant(0, tf.int64))

    def i64(value):
        return tf.constant(value, tf.int64)

    # States: 0 at a block, 1 in extension sub-blocks, 2 in image sub-blocks,
    # 3 first image complete, 4 damaged or no image.
    start = 13 + color_table_bytes(at(10))

    def body(pos, state, frame_h, frame_w):
        byte = at(pos)
        is_ext = tf.equal(byte, 0x21)
        is_img = tf.equal(byte, 0x2C)
        block_pos = tf.where(
            is_ext,
            pos + 2,
            tf.where(is_img, pos + 10 + color_table_bytes(at(pos + 9)) + 1, pos),
        )
        block_state = tf.where(is_ext, i64(1), tf.where(is_img, i64(2), i64(4)))
        sub_end_state = tf.where(tf.equal(state, 1), i64(0), i64(3))
        sub_state = tf.where(tf.equal(byte, 0), sub_end_state, state)
        at_block = tf.equal(state, 0)
        new_state = tf.where(
            pos >= size, i64(4), tf.where(at_block, block_state, sub_state)
        )
        new_pos = tf.where(at_block, block_pos, pos + byte + 1)
        frame_w = tf.where(at_block & is_img, u16(pos + 5), frame_w)
        frame_h = tf.where(at_block & is_img, u16(pos + 7), frame_h)
        return new_pos, new_state, frame_h, frame_w

    zero = i64(0)
    pos, state, frame_h, frame_w = tf.while_loop(
        lambda pos, state, fh, fw: state < 3, body, (start, zero, zero, zero)
    )
    complete = tf.equal(state, 3)
    first = tf.strings.join([tf.strings.substr(image_bytes, i64(0), pos), b"\x3b"])
    return (
        tf.where(complete, first, image_bytes),
        tf.where(complete, frame_h, i64(0)),
        tf.where(complete, frame_w, i64(0)),
    )


def _check(condition, *parts):
    """Asserts `condition`, raising InvalidArgumentError with `parts` (strings, scalars) joined.

    Eagerly the message is raised as is; in a graph TF prefixes "assertion failed".
    """
    pieces = [p if isinstance(p, str) else tf.strings.as_string(p) for p in parts]
    if tf.executing_eagerly():
        if not bool(condition):
            message = tf.strings.join(pieces).numpy().decode("utf-8", "replace")
            raise tf.errors.InvalidArgumentError(None, None, message)
        return tf.no_op()
    return tf.debugging.Assert(condition, [tf.strings.join(pieces)])


@_plain_tf
def _validated(image_bytes, max_pixels):
    """Header checks; returns `(fmt, payload, height, width, extra)`.

    `payload` is what to hand to the decoder (for GIF, the first frame only);
    it carries control dependencies on every check, so nothing is decoded
    before they pass.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    length = tf.strings.length(image_bytes)
    empty_check = _check(length > 0, "decode_image: empty input (0 bytes)")
    with tf.control_dependencies([empty_check]):
        fmt, height, width, extra = _parse_header(image_bytes)
    format_check = _check(
        tf.not_equal(fmt, _UNKNOWN),
        "decode_image: not a JPEG, PNG, GIF, BMP or WebP file (unrecognised first bytes)",
    )
    with tf.control_dependencies([format_check]):
        animation_check = _check(
            tf.logical_not(extra["webp_animated"]),
            "decode_image: animated WebP is not supported (TensorFlow's WebP decoder "
            "fails on animations); convert it to a still image",
        )

    def jpeg_size():
        shape = tf.cast(tf.io.extract_jpeg_shape(image_bytes), tf.int64)
        return image_bytes, shape[0], shape[1]

    def gif_size():
        first, frame_h, frame_w = _gif_first_frame(image_bytes)
        # The decoder allocates both the logical screen and the frame.
        return first, tf.maximum(height, frame_h), tf.maximum(width, frame_w)

    with tf.control_dependencies([format_check, animation_check]):
        payload, height, width = tf.switch_case(
            tf.cast(tf.clip_by_value(fmt, 0, _UNKNOWN), tf.int32),
            [
                jpeg_size,
                lambda: (image_bytes, height, width),
                gif_size,
                lambda: (image_bytes, height, width),
                lambda: (image_bytes, height, width),
                lambda: (image_bytes, height, width),
            ],
        )
    # Each side is bounded first: two 32-bit PNG sides would overflow the product.
    bounded = (
        (height > 0) & (width > 0) & (height <= max_pixels) & (width <= max_pixels)
    )
    size_check = _check(
        bounded
        & (
            tf.minimum(height, max_pixels) * tf.minimum(width, max_pixels) <= max_pixels
        ),
        "decode_image: the file declares ",
        width,
        "x",
        height,
        f" pixels; the limit is max_pixels={max_pixels} (colornet.data.MAX_PIXELS), "
        "and the size must be positive",
    )
    with tf.control_dependencies([size_check]):
        payload = tf.identity(payload)
    return fmt, payload, height, width, extra


@_plain_tf
def _to_rgb(image):
    """`(H, W, C)` uint8 with C in 1..4 -> RGB: grey is repeated, alpha dropped."""
    channels = tf.shape(image)[-1]
    index = tf.gather(
        tf.constant([[0, 0, 0], [0, 0, 0], [0, 1, 2], [0, 1, 2]]), channels - 1
    )
    return tf.ensure_shape(tf.gather(image, index, axis=-1), [None, None, 3])


@_plain_tf
def _apply_bmp_palette(image, image_bytes, extra):
    """TF decodes 8-bit BMPs to palette indices; look the colours up."""
    length = tf.cast(tf.strings.length(image_bytes), tf.int64)
    offset = tf.minimum(14 + extra["bmp_header_size"], length)
    table = tf.strings.join(
        [
            tf.strings.substr(image_bytes, offset, tf.constant(1024, tf.int64)),
            b"\0" * 1024,
        ]
    )
    palette = tf.reshape(
        tf.io.decode_raw(tf.strings.substr(table, 0, 1024), tf.uint8), [256, 4]
    )
    palette = tf.reverse(palette[:, :3], axis=[1])  # stored as B, G, R, 0
    return tf.gather(palette, tf.cast(image[..., 0], tf.int32))


@_plain_tf
def _decode(image_bytes, max_pixels=MAX_PIXELS, min_side=None):
    """`decode_image`, optionally letting libjpeg downscale by 2, 4 or 8.

    With `min_side`, a JPEG whose shorter side is at least `2 * min_side` is
    decoded at 1/2, 1/4 or 1/8 scale (DCT scaling: much faster, and an area
    average rather than aliasing), keeping the shorter side >= `min_side`.
    """
    return _decode_with_size(image_bytes, max_pixels, min_side)[0]


@_plain_tf
def _decode_with_size(image_bytes, max_pixels, min_side):
    """`_decode` plus the size the header declares, `(image, height, width)`."""
    fmt, payload, height, width, extra = _validated(image_bytes, max_pixels)

    def other_formats():
        image = tf.io.decode_image(payload, channels=0, expand_animations=False)
        image = tf.cond(
            tf.equal(fmt, _BMP)
            & tf.equal(extra["bmp_bpp"], 8)
            & tf.equal(tf.shape(image)[-1], 1),
            lambda: _apply_bmp_palette(image, payload, extra),
            lambda: image,
        )
        return _to_rgb(image)

    # JPEG: libjpeg's accurate integer IDCT (what Pillow and OpenCV use; the
    # generic decoder picks the fast one, a few levels off) and, given
    # `min_side`, DCT-domain downscaling by the largest ratio that keeps the
    # shorter side >= min_side.
    if min_side is None:
        level = tf.constant(0)
    else:
        shorter = tf.minimum(height, width)
        level = tf.reduce_sum(
            tf.cast([(shorter + r - 1) // r >= min_side for r in (2, 4, 8)], tf.int32)
        )

    def jpeg(ratio):
        return lambda: tf.ensure_shape(
            tf.io.decode_jpeg(
                payload, channels=3, ratio=ratio, dct_method="INTEGER_ACCURATE"
            ),
            [None, None, 3],
        )

    image = tf.cond(
        tf.equal(fmt, _JPEG),
        lambda: tf.switch_case(level, [jpeg(1), jpeg(2), jpeg(4), jpeg(8)]),
        other_formats,
    )
    return image, height, width


@_plain_tf
def decode_image(image_bytes, max_pixels=MAX_PIXELS):
    """Decodes an encoded image to RGB, refusing oversized files before decoding.

    Pure TF ops: works eagerly, in `tf.function` and in `tf.data` maps (not
    under XLA: string and decode ops have no XLA kernels).

    Args:
      image_bytes: scalar string tensor, the bytes of a JPEG, PNG, GIF, BMP or
        WebP file.
      max_pixels: Python int; files whose header declares more pixels
        (width x height) are rejected before any pixel memory is allocated.

    Returns:
      uint8 `(H, W, 3)` RGB. Grey and palette images are expanded, alpha is
      dropped (not composited), an animated GIF gives its first frame, JPEG
      uses the accurate IDCT (same pixels as Pillow).

    Raises:
      tf.errors.InvalidArgumentError: on empty input, an unknown format, an
        oversized or animated-WebP file, or data the decoder cannot read.
    """
    return _decode(image_bytes, max_pixels)


# ----------------------------------------------------------------------------
# Geometry and the model's inputs.


def _check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _restore_dtype(image, dtype):
    if dtype == tf.uint8:
        return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    return tf.cast(image, dtype)


@_plain_tf
def resize_shorter_side(image, size):
    """Resizes so the shorter side is `size`, keeping the aspect ratio.

    Bilinear with antialiasing (an area-weighted kernel when shrinking);
    images whose shorter side already equals `size` are returned unchanged.

    Args:
      image: `(H, W, C)` or `(B, H, W, C)`, uint8 or float.
      size: shorter side in pixels (Python int).

    Returns:
      Same rank and dtype (uint8 is rounded): `(size, round(W * size / H), C)`
      when H <= W, `(round(H * size / W), size, C)` otherwise.
    """
    size = _check_size("size", size)
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    height, width = shape[-3], shape[-2]
    shorter = tf.minimum(height, width)
    scale = size / tf.cast(shorter, tf.float64)

    def scaled(side):
        return tf.where(
            tf.equal(side, shorter),
            size,
            tf.maximum(
                1, tf.cast(tf.round(tf.cast(side, tf.float64) * scale), tf.int32)
            ),
        )

    def resize():
        resized = tf.image.resize(
            image,
            tf.stack([scaled(height), scaled(width)]),
            method="bilinear",
            antialias=True,
        )
        return _restore_dtype(resized, image.dtype)

    return tf.cond(tf.equal(shorter, size), lambda: tf.identity(image), resize)


@_plain_tf
def random_crop_flip(image, crop, seed=None):
    """Random `crop` x `crop` window, mirrored left-right with probability 1/2.

    Args:
      image: `(H, W, C)` with H, W >= crop.
      crop: side of the square crop in pixels (Python int).
      seed: shape `(2,)` int32/int64 stateless seed; the same seed gives the same
        crop. None draws one from the global generator.

    Returns:
      `(crop, crop, C)`, same dtype.
    """
    crop = _check_size("crop", crop)
    image = tf.convert_to_tensor(image)
    if seed is None:
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    channels = tf.shape(image)[-1]
    out = tf.image.stateless_random_crop(
        image, tf.stack([crop, crop, channels]), seed=crop_seed
    )
    out = tf.image.stateless_random_flip_left_right(out, seed=flip_seed)
    return tf.ensure_shape(out, [crop, crop, image.shape[-1]])


@_plain_tf
def center_crop(image, crop):
    """The central `crop` x `crop` window, offset `(size - crop) // 2` as Caffe's.

    Args:
      image: `(H, W, C)` or `(B, H, W, C)` with H, W >= crop.
      crop: side in pixels (Python int).

    Returns:
      `(crop, crop, C)` or `(B, crop, crop, C)`, same dtype.
    """
    crop = _check_size("crop", crop)
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    height, width = shape[-3], shape[-2]
    check = _check(
        (height >= crop) & (width >= crop),
        "center_crop: image of ",
        width,
        "x",
        height,
        f" is smaller than the crop {crop}x{crop}",
    )
    with tf.control_dependencies([check]):
        top = (height - crop) // 2
        left = (width - crop) // 2
    out = image[..., top : top + crop, left : left + crop, :]
    return tf.ensure_shape(out, image.shape[:-3] + (crop, crop) + image.shape[-1:])


@_plain_tf
def to_model_inputs(rgb_uint8):
    """RGB -> the model input and its target, as the release's data layers make them.

    Args:
      rgb_uint8: `(H, W, 3)` or `(B, H, W, 3)` uint8 sRGB.

    Returns:
      `(l_raw, ab)`: `l_raw` float32 `(..., H, W, 1)` lightness in 0..100, and
      `ab` float32 `(..., ceil(H/4), ceil(W/4), 2)`: the a, b channels of every
      4th pixel from row and column 0 (release `data_ab_ss`: 1x1 convolution,
      stride 4, no padding; no averaging).
    """
    lab = rgb_to_lab(rgb_uint8)
    stride = c.OUTPUT_STRIDE
    return lab[..., :1], lab[..., ::stride, ::stride, 1:]


# ----------------------------------------------------------------------------
# Listing files and checking file systems.


def _scheme(path):
    return path.split("://", 1)[0].lower() if "://" in path else ""


def _tf_path(path):
    """`path` as bytes for TensorFlow's file ops: a local name that is not valid UTF-8
    (which Python holds as lone surrogates, PEP 383) reaches the OS unchanged, where a
    str would fail to encode."""
    return os.fsencode(path)


def _registered_schemes():
    return set(tf.io.gfile.get_registered_schemes())


def check_filesystem(path):
    """Raises `ColornetError` when TensorFlow cannot read `path`'s URL scheme.

    Local paths and `gs://` work natively. Any other scheme (`s3://`, `hdfs://`,
    `az://`, ...) needs tensorflow-io, which is imported here lazily; it does
    not load under TF 2.21, and the error then says so and what works.
    """
    path = os.fspath(path)
    scheme = _scheme(path)
    if not scheme or scheme in _registered_schemes():
        return
    try:
        import tensorflow_io  # noqa: F401  (registers its file systems on import)
    except ImportError:
        reason = (
            "tensorflow-io, which adds it, is not installed (and its last release, "
            f"0.37, is built for TF 2.16: its file-system plugins do not load under TF {tf.__version__})"
        )
    except Exception as error:  # noqa: BLE001 (a broken binary raises NotFoundError, OSError, ...)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = f"tensorflow-io is installed but failed to load ({type(error).__name__}: {first_line})"
    else:
        if scheme in _registered_schemes():
            return
        reason = (
            "tensorflow-io is installed but its file-system plugins did not load "
            f"(it is built for an older TensorFlow than {tf.__version__})"
        )
    raise ColornetError(
        f"cannot read {path}: TensorFlow {tf.__version__} has no file system for {scheme}:// "
        f"built in, and {reason}. Local paths and gs:// work natively; otherwise copy the "
        "data to a local disk (or a gs:// bucket) first."
    )


def _has_glob(path):
    return any(ch in path for ch in "*?[")


def _is_image_name(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _absolute(path):
    return path if _scheme(path) else os.path.abspath(path)


def _walk(directory):
    found = []
    if _scheme(directory):
        for root, dirs, files in tf.io.gfile.walk(directory):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [
                tf.io.gfile.join(root, f)
                for f in files
                if not f.startswith(".") and _is_image_name(f)
            ]
        return found
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [
            os.path.join(root, f)
            for f in files
            if not f.startswith(".") and _is_image_name(f)
        ]
    return found


def _no_images_error(directory):
    hint = ""
    try:
        names = tf.io.gfile.listdir(_tf_path(directory))
    except tf.errors.OpError:
        names = []
    if any(os.fsdecode(n).endswith(".tfrecord") for n in names):
        hint = (
            f"; it holds .tfrecord shards but no {MANIFEST_NAME}, so it is not a complete "
            "`colornet prepare` output (interrupted?): run prepare again"
        )
    extensions = " ".join(IMAGE_EXTENSIONS)
    return ColornetError(f"no image files ({extensions}) found under {directory}{hint}")


def _read_list_file(list_path):
    if _scheme(list_path):
        with tf.io.gfile.GFile(list_path, "r") as f:
            lines = f.read().splitlines()
    else:  # listed names that are not UTF-8 come back as the same bytes
        with open(list_path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    paths, missing = [], []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = _absolute(line)
        if not _scheme(path) and not os.path.isfile(path):
            missing.append(f"line {number}: {line}")
        paths.append(path)
    if missing:
        examples = "; ".join(missing[:3])
        raise ColornetError(
            f"{len(missing)} of the paths listed in {list_path} are not files "
            f"(relative paths are taken from the current directory {os.getcwd()}): {examples}"
        )
    if not paths:
        raise ColornetError(
            f"{list_path} lists no paths (blank lines and # comments are ignored)"
        )
    for scheme_path in {_scheme(p): p for p in paths if _scheme(p)}.values():
        check_filesystem(scheme_path)
    return paths


def _list_one(item):
    check_filesystem(item)
    if not tf.io.gfile.exists(_tf_path(item)):
        if not _has_glob(item):
            raise ColornetError(f"no such file or directory: {item}")
        matches = (
            tf.io.gfile.glob(item)
            if _scheme(item)
            else pyglob.glob(item, recursive=True)
        )
        if not matches:
            raise ColornetError(f"nothing matches the pattern {item}")
        found = []
        for match in matches:
            if tf.io.gfile.isdir(_tf_path(match)):
                found += _walk(match)
            elif _is_image_name(match):
                found.append(match)
        if not found:
            raise ColornetError(f"no image files match the pattern {item}")
        return [_absolute(p) for p in found]
    if tf.io.gfile.isdir(_tf_path(item)):
        found = _walk(item)
        if not found:
            raise _no_images_error(item)
        return [_absolute(p) for p in found]
    if item.lower().endswith(".txt"):
        return _read_list_file(item)
    if _is_image_name(item):
        return [_absolute(item)]
    raise ColornetError(
        f"{item} is neither an image file ({' '.join(IMAGE_EXTENSIONS)}), a directory, "
        "a glob pattern nor a .txt list of paths"
    )


def list_image_files(source):
    """Lists image files: sorted, without duplicates, as absolute paths (URLs as given).

    Args:
      source: a directory (searched recursively; hidden names skipped), a glob
        pattern (`**` allowed for local paths), a `.txt` file with one image
        path per line (relative paths resolved against the current directory;
        blank lines and `#` comments ignored; missing local files are an
        error), an image file, or a list/tuple of any of these.

    Raises:
      ColornetError: a path does not exist, nothing is found, or the URL scheme
        cannot be read (see `check_filesystem`).
    """
    items = list(source) if isinstance(source, (list, tuple)) else [source]
    if not items:
        raise ColornetError("no image source given (an empty list)")
    found = set()
    for item in items:
        found.update(_list_one(os.fspath(item)))
    return sorted(found)


# ----------------------------------------------------------------------------
# Skipping unreadable files.


class SkipCounter:
    """The files a pipeline skipped because they could not be read or decoded.

    Give one to a pipeline (`train_dataset(..., skip_counter=counter)`;
    `decoded_images` returns its own) and read it during or after iteration.
    Files are counted once each (by path; by record id for TFDS), however many
    epochs meet them. A counter belongs to one dataset.

    Attributes:
      count: number of distinct files skipped so far (int).
      paths: their paths, sorted.
      listed: number of files the source listed (None until attached).
    """

    def __init__(self):
        with tf.device("/cpu:0"):
            self._table = tf.lookup.experimental.MutableHashTable(
                key_dtype=tf.string, value_dtype=tf.int64, default_value=0
            )
        self.listed = None
        self._attached = False

    @property
    def count(self):
        return int(self._table.size())

    @property
    def paths(self):
        keys, _ = self._table.export()
        return sorted(os.fsdecode(k) for k in keys.numpy())

    def __int__(self):
        return self.count

    def __repr__(self):
        return f"SkipCounter(count={self.count}, listed={self.listed})"

    def _attach(self, listed):
        if self._attached:
            raise ValueError(
                "this SkipCounter already belongs to another dataset; make a new one"
            )
        self._attached = True
        self.listed = listed

    def _record(self, key):
        """In-graph: notes a skipped file once and fails when every file was skipped."""
        new = tf.equal(self._table.lookup(key), 0)
        with tf.control_dependencies([new]):
            insert = self._table.insert(key, tf.constant(1, tf.int64))
        with tf.control_dependencies([insert]):
            printed = tf.cond(
                new,
                lambda: _print_skip(key),
                lambda: tf.constant(False),
            )
            size = self._table.size()
        checks = [printed]
        if self.listed is not None:
            checks.append(
                _check(
                    size < self.listed,
                    f"none of the {self.listed} images could be read or decoded "
                    "(each one was reported as skipped on stderr)",
                )
            )
        with tf.control_dependencies(checks):
            return tf.identity(size)


def _print_skip(key):
    op = tf.print(
        tf.strings.join(["colornet: skipping unreadable image: ", key]),
        output_stream=sys.stderr,
    )
    with tf.control_dependencies([op]):
        return tf.constant(True)


def _fallback_like(spec):
    shape = [0 if d is None else d for d in spec.shape]
    return tf.zeros(shape, spec.dtype)


def _ensure_spec(value, spec):
    return tf.nest.map_structure(lambda v, s: tf.ensure_shape(v, s.shape), value, spec)


@_plain_tf
def _decode_skipping(dataset, load, element_spec, counter, deterministic):
    """Maps `load(key, payload, rng) -> image` over `(key, payload, rng)`, dropping failures.

    Each element runs in a one-element dataset whose errors are ignored and
    which falls back to a placeholder flagged `ok=False`; so a failure is seen
    (and counted, and its key printed) instead of vanishing.
    """

    @_plain_tf
    def attempt(key, payload, rng):
        good = (
            tf.data.Dataset.from_tensors((key, payload, rng))
            .map(lambda k, p, r: (load(k, p, r), tf.constant(True), k))
            .ignore_errors()
        )
        fallback = tf.nest.map_structure(_fallback_like, element_spec)
        bad = tf.data.Dataset.from_tensors((fallback, tf.constant(False), key))
        return good.concatenate(bad).take(1)

    @_plain_tf
    def note(image, ok, key):
        ok = tf.cond(ok, lambda: ok, lambda: tf.equal(counter._record(key), -1))
        return image, ok

    dataset = dataset.interleave(
        attempt,
        cycle_length=tf.data.AUTOTUNE,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    dataset = dataset.map(note).filter(lambda image, ok: ok)
    return dataset.map(lambda image, ok: _ensure_spec(image, element_spec))


# ----------------------------------------------------------------------------
# Sources.


@dataclasses.dataclass(frozen=True)
class _Source:
    dataset: tf.data.Dataset  # one pass of (key, payload) string pairs
    size: int | None  # None only for TFDS splits without metadata
    encoded: bool  # payload holds the image bytes (else a path to read)


def _read_manifest(directory):
    path = tf.io.gfile.join(directory, MANIFEST_NAME)
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            manifest = json.load(f)
    except (ValueError, tf.errors.OpError) as error:
        raise ColornetError(f"cannot read the manifest {path}: {error}") from None
    if manifest.get("format") != MANIFEST_FORMAT or "shards" not in manifest:
        raise ColornetError(f"{path} is not a colornet TFRecord manifest")
    return manifest


def _is_tfrecord_dir(source):
    return (
        isinstance(source, (str, os.PathLike))
        and not _has_glob(os.fspath(source))
        and tf.io.gfile.isdir(_tf_path(source))
        and tf.io.gfile.exists(_tf_path(os.path.join(os.fspath(source), MANIFEST_NAME)))
    )


def _tfrecord_source(directory, shuffle, seed, shuffle_buffer, deterministic):
    manifest = _read_manifest(directory)
    shards = [
        tf.io.gfile.join(directory, s["file"])
        for s in manifest["shards"]
        if s["count"] > 0
    ]
    for shard in shards:
        if not tf.io.gfile.exists(shard):
            raise ColornetError(f"{shard}, listed in the manifest, is missing")
    size = sum(s["count"] for s in manifest["shards"])
    if not size:
        raise ColornetError(f"{directory} holds no images")
    files = tf.data.Dataset.from_tensor_slices(shards)
    if shuffle:
        files = files.shuffle(len(shards), seed=seed, reshuffle_each_iteration=True)
    records = files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(shards), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )

    @_plain_tf
    def parse(record):
        example = tf.io.parse_single_example(record, _RECORD_FEATURES)
        return example["path"], example["image"]

    records = records.map(
        parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
    )
    if shuffle:
        records = records.shuffle(
            shuffle_buffer, seed=seed, reshuffle_each_iteration=True
        )
    return _Source(records, size, encoded=True)


def _tfds_source(spec, shuffle, seed, shuffle_buffer, default_split):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ColornetError(
            f"{spec}: TensorFlow Datasets is not installed (pip install tensorflow-datasets)"
        ) from None
    name, _, split = spec[len("tfds:") :].partition(":")
    if not name:
        raise ColornetError(f"{spec}: expected tfds:NAME or tfds:NAME:SPLIT")
    try:
        builder = tfds.builder(name)
    except Exception as error:  # noqa: BLE001 (tfds raises its own error types)
        raise ColornetError(f"{spec}: {error}") from None
    features = builder.info.features
    image_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    if not image_keys:
        raise ColornetError(f"{spec}: data set {name} has no image feature")
    image_key = "image" if "image" in image_keys else image_keys[0]
    try:
        builder.download_and_prepare()
    except Exception as error:  # noqa: BLE001 (tfds raises its own error types)
        raise ColornetError(f"{spec}: {error}") from None
    known = builder.info.splits  # empty only when metadata is missing (e.g. mocked)
    if not split:
        split = next(
            (s for s in default_split if s in known),
            None if known else default_split[0],
        )
        if split is None:
            raise ColornetError(
                f"{spec}: no split named {' or '.join(default_split)}; give one"
            )
    try:
        dataset = builder.as_dataset(
            split=split,
            shuffle_files=shuffle,
            decoders={image_key: tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(shuffle_seed=seed, add_tfds_id=True),
        )
        size = known[split].num_examples if known else None
    except Exception as error:  # noqa: BLE001 (tfds raises its own error types)
        raise ColornetError(f"{spec}: {error}") from None
    dataset = dataset.map(lambda ex: (ex["tfds_id"], ex[image_key]))
    if shuffle:
        dataset = dataset.shuffle(
            shuffle_buffer, seed=seed, reshuffle_each_iteration=True
        )
    return _Source(dataset, size, encoded=True)


def _open_source(
    source, *, shuffle, seed, shuffle_buffer, deterministic, default_split
):
    if isinstance(source, str) and source.startswith("tfds:"):
        return _tfds_source(source, shuffle, seed, shuffle_buffer, default_split)
    if isinstance(source, (str, os.PathLike)):
        check_filesystem(os.fspath(source))
    if _is_tfrecord_dir(source):
        return _tfrecord_source(
            os.fspath(source), shuffle, seed, shuffle_buffer, deterministic
        )
    paths = list_image_files(source)
    files = tf.data.Dataset.from_tensor_slices([_tf_path(p) for p in paths])
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return _Source(files.map(lambda p: (p, p)), len(paths), encoded=False)


def count_images(source):
    """Number of images `source` lists (readable or not): files, manifest count or TFDS split size.

    Cheap: lists files or reads the manifest / TFDS metadata, decodes nothing.
    """
    size = _open_source(
        source,
        shuffle=False,
        seed=0,
        shuffle_buffer=SHUFFLE_BUFFER,
        deterministic=True,
        default_split=("train",),
    ).size
    if size is None:
        raise ColornetError(
            f"{source}: the number of images is not recorded in its metadata"
        )
    return size


def _image_pipeline(
    source,
    transform,
    element_spec,
    *,
    training,
    seed,
    shuffle_buffer,
    deterministic,
    skip_counter,
    default_split,
    max_pixels,
    min_side,
):
    """One pass (or endless passes when training) of transformed images."""
    src = _open_source(
        source,
        shuffle=training,
        seed=seed,
        shuffle_buffer=shuffle_buffer,
        deterministic=deterministic,
        default_split=default_split,
    )
    counter = skip_counter if skip_counter is not None else SkipCounter()
    counter._attach(src.size)
    dataset = src.dataset.repeat() if training else src.dataset
    rng = tf.data.Dataset.random(seed=seed).batch(2)
    dataset = tf.data.Dataset.zip((dataset, rng)).map(lambda kp, r: (kp[0], kp[1], r))

    @_plain_tf
    def load(key, payload, rng_seed):
        encoded = payload if src.encoded else tf.io.read_file(payload)
        return transform(_decode(encoded, max_pixels, min_side=min_side), rng_seed)

    dataset = _decode_skipping(dataset, load, element_spec, counter, deterministic)
    options = tf.data.Options()
    options.deterministic = deterministic
    return dataset.with_options(options), counter


def _check_crop(crop, resize):
    crop = _check_size("crop", crop)
    resize = _check_size("resize", resize)
    if crop % c.OUTPUT_STRIDE:
        raise ValueError(f"crop must be a multiple of {c.OUTPUT_STRIDE}, got {crop}")
    if crop > resize:
        raise ValueError(f"crop must be at most resize ({resize}), got {crop}")
    return crop, resize


def _batched_model_inputs(dataset, batch_size, drop_remainder, deterministic):
    dataset = dataset.batch(
        batch_size,
        drop_remainder=drop_remainder,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    dataset = dataset.map(
        to_model_inputs,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def train_dataset(
    source,
    batch_size,
    crop=c.TRAIN_CROP,
    seed=None,
    *,
    resize=c.TRAIN_RESIZE,
    shuffle_buffer=SHUFFLE_BUFFER,
    deterministic=None,
    skip_counter=None,
    max_pixels=MAX_PIXELS,
):
    """Endless, shuffled training batches `(l_raw, ab)` (see the module docstring).

    Args:
      source: image folder / glob / `.txt` list / list of these, a `prepare`
        TFRecord directory, or `"tfds:NAME[:SPLIT]"` (split defaults to train).
      batch_size: images per batch; the last partial batch of the endless
        stream never occurs, so every batch is full and shapes are static.
      crop: side of the random square crop, a multiple of 4, <= resize.
      seed: int seed for file order, crops and flips; None for a fresh one.
      resize: shorter side before cropping (release: 256).
      shuffle_buffer: records shuffled in memory for TFRecord and TFDS
        sources (file lists are shuffled whole).
      deterministic: element order reproducible (given a seed) at some cost in
        throughput; None means True when a seed is given.
      skip_counter: a fresh `SkipCounter` to record unreadable files in.
      max_pixels: see `decode_image`.

    Returns:
      `tf.data.Dataset` of `(l_raw, ab)`: float32 `(batch, crop, crop, 1)` in
      0..100 and float32 `(batch, crop/4, crop/4, 2)`.
    """
    crop, resize = _check_crop(crop, resize)
    batch_size = _check_size("batch_size", batch_size)
    if deterministic is None:
        deterministic = seed is not None

    @_plain_tf
    def transform(image, rng_seed):
        return random_crop_flip(resize_shorter_side(image, resize), crop, rng_seed)

    images, _ = _image_pipeline(
        source,
        transform,
        tf.TensorSpec([crop, crop, 3], tf.uint8),
        training=True,
        seed=seed,
        shuffle_buffer=shuffle_buffer,
        deterministic=deterministic,
        skip_counter=skip_counter,
        default_split=("train",),
        max_pixels=max_pixels,
        min_side=resize,
    )
    return _batched_model_inputs(images, batch_size, True, deterministic)


def eval_dataset(
    source,
    batch_size,
    crop=c.TRAIN_CROP,
    *,
    resize=c.TRAIN_RESIZE,
    drop_remainder=False,
    deterministic=True,
    skip_counter=None,
    max_pixels=MAX_PIXELS,
):
    """One pass of evaluation batches `(l_raw, ab)`: resize, then centre crop.

    Args:
      source: as for `train_dataset` (a TFDS split defaults to validation, then
        test, then train).
      batch_size: images per batch; the last batch may be smaller unless
        `drop_remainder`.
      crop: side of the centre crop, a multiple of 4, <= resize.
      resize: shorter side before cropping.
      deterministic: keep the source order (default).
      skip_counter: a fresh `SkipCounter` to record unreadable files in.
      max_pixels: see `decode_image`.

    Returns:
      `tf.data.Dataset` of `(l_raw, ab)` as `train_dataset`'s, in source order.
    """
    crop, resize = _check_crop(crop, resize)
    batch_size = _check_size("batch_size", batch_size)

    @_plain_tf
    def transform(image, rng_seed):
        del rng_seed
        return center_crop(resize_shorter_side(image, resize), crop)

    images, _ = _image_pipeline(
        source,
        transform,
        tf.TensorSpec([crop, crop, 3], tf.uint8),
        training=False,
        seed=0,
        shuffle_buffer=SHUFFLE_BUFFER,
        deterministic=deterministic,
        skip_counter=skip_counter,
        default_split=("validation", "test", "train"),
        max_pixels=max_pixels,
        min_side=resize,
    )
    return _batched_model_inputs(images, batch_size, drop_remainder, deterministic)


def decoded_images(source, resize=c.TRAIN_RESIZE, *, max_pixels=MAX_PIXELS):
    """Every readable image once, in source order, resized (for the ab prior).

    Args:
      source: as for `train_dataset` (a TFDS split defaults to train).
      resize: shorter side in pixels, or None to keep the decoded size.
      max_pixels: see `decode_image`.

    Returns:
      `(dataset, skipped)`: a `tf.data.Dataset` of uint8 `(H, W, 3)` images
      and the `SkipCounter` that records the files it skipped (complete once
      the dataset has been iterated to the end; `skipped.listed` is the number
      of files the source listed).
    """
    if resize is not None:
        resize = _check_size("resize", resize)

    @_plain_tf
    def transform(image, rng_seed):
        del rng_seed
        return image if resize is None else resize_shorter_side(image, resize)

    return _image_pipeline(
        source,
        transform,
        tf.TensorSpec([None, None, 3], tf.uint8),
        training=False,
        seed=0,
        shuffle_buffer=SHUFFLE_BUFFER,
        deterministic=True,
        skip_counter=None,
        default_split=("train",),
        max_pixels=max_pixels,
        min_side=resize,
    )


# ----------------------------------------------------------------------------
# Writing TFRecord shards.


@dataclasses.dataclass(frozen=True)
class PrepareSummary:
    """What `prepare` wrote.

    Attributes:
      out_dir: the finished directory.
      shards: `((file name, images), ...)` in shard order.
      images: images written.
      skipped: `((path, reason), ...)` for files that could not be read.
      seconds: wall time.
    """

    out_dir: str
    shards: tuple
    images: int
    skipped: tuple
    seconds: float


def _error_reason(error):
    text = getattr(error, "message", None) or str(error)
    text = text.split("}}")[-1].strip()  # drop TF's "{{function_node ...}}" prefix
    text = text.split(" [Op:")[0]
    return text.splitlines()[0] if text else type(error).__name__


def _skip_reason(path, max_pixels):
    try:
        _decode(tf.io.read_file(_tf_path(path)), max_pixels)
    except (tf.errors.OpError, ValueError) as error:
        return _error_reason(error)
    return "could not be read or decoded"


def _split_dir(path):
    path = path.rstrip("/")
    if _scheme(path):
        parent, _, name = path.rpartition("/")
        return parent, name
    path = os.path.abspath(path)
    return os.path.dirname(path), os.path.basename(path)


def _is_nonempty_dir_or_file(path):
    if not tf.io.gfile.exists(path):
        return False
    return not tf.io.gfile.isdir(path) or bool(tf.io.gfile.listdir(path))


def _write_json(path, value):
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(value, indent=1) + "\n")


def _publish(tmp, out_dir, shard_names, overwrite):
    """Moves the finished set from `tmp` to `out_dir` so it appears complete at once."""
    parent, name = _split_dir(out_dir)
    if not _scheme(out_dir):
        old = None
        if _is_nonempty_dir_or_file(out_dir):
            old = os.path.join(
                parent, f"{hidden_stem(name)}.old-{uuid.uuid4().hex[:8]}"
            )
            os.rename(out_dir, old)
        elif os.path.isdir(out_dir):
            os.rmdir(out_dir)
        os.rename(tmp, out_dir)  # atomic on one file system
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return
    # Object stores cannot rename a directory atomically: move the shards, then
    # the manifest last, which is what makes the set read as complete.
    if tf.io.gfile.exists(out_dir) and overwrite:
        manifest = tf.io.gfile.join(out_dir, MANIFEST_NAME)
        if tf.io.gfile.exists(manifest):
            tf.io.gfile.remove(manifest)
        tf.io.gfile.rmtree(out_dir)
    tf.io.gfile.makedirs(out_dir)
    for shard in shard_names:
        tf.io.gfile.rename(
            tf.io.gfile.join(tmp, shard),
            tf.io.gfile.join(out_dir, shard),
            overwrite=True,
        )
    tf.io.gfile.rename(
        tf.io.gfile.join(tmp, MANIFEST_NAME),
        tf.io.gfile.join(out_dir, MANIFEST_NAME),
        overwrite=True,
    )
    tf.io.gfile.rmtree(tmp)


def _bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def prepare(
    source,
    out_dir,
    shards=None,
    *,
    resize=None,
    seed=0,
    max_pixels=MAX_PIXELS,
    overwrite=False,
    verbose=1,
):
    """Packs image files into TFRecord shards that `train_dataset` / `eval_dataset` read.

    Each image is decoded once to check it; unreadable ones are skipped and
    listed in the manifest with the reason. By default a record holds the
    file's original bytes (lossless, any later resize possible). With
    `resize`, images whose shorter side exceeds it are downscaled to it and
    re-encoded as JPEG quality 95, which makes shards of large photographs
    several times smaller and faster to decode; smaller images keep their
    bytes. Files are assigned to shards in an order shuffled with `seed`, so
    every shard mixes the whole source.

    The output appears atomically: shards and the manifest (`MANIFEST_NAME`,
    JSON: shard files and counts, skipped files, settings) are written into a
    hidden temporary directory beside `out_dir`, the manifest last, and the
    directory is renamed to `out_dir` at the end. A killed run leaves only
    that hidden `.NAME.partial-*` directory (safe to delete), which no
    pipeline reads as complete. On gs://, where directories cannot be renamed,
    the shards are moved first and the manifest last.

    Args:
      source: image folder / glob / `.txt` list / list of these.
      out_dir: directory to create (local or gs://).
      shards: number of shard files; None for one per 1024 images.
      resize: None to store original bytes, or a shorter side in pixels.
      seed: seed of the file order.
      max_pixels: see `decode_image`.
      overwrite: replace an existing non-empty `out_dir`.
      verbose: 1 shows a progress bar, 0 nothing.

    Returns:
      A `PrepareSummary`.
    """
    start = time.time()
    out_dir = os.fspath(out_dir).rstrip("/")
    check_filesystem(out_dir)
    if resize is not None:
        resize = _check_size("resize", resize)
    if shards is not None:
        shards = _check_size("shards", shards)
    if _is_nonempty_dir_or_file(out_dir) and not overwrite:
        raise ColornetError(
            f"{out_dir} already exists and is not empty; choose another output or overwrite it"
        )
    paths = list_image_files(source)
    total = len(paths)
    shards = shards or max(1, math.ceil(total / IMAGES_PER_SHARD))
    ordered = [paths[i] for i in np.random.default_rng(seed).permutation(total)]
    position = {path: i for i, path in enumerate(ordered)}
    names = [SHARD_PATTERN.format(index=i, count=shards) for i in range(shards)]

    @_plain_tf
    def load(key, path, rng_seed):
        del key, rng_seed
        raw = tf.io.read_file(path)
        image, height, width = _decode_with_size(raw, max_pixels, resize)
        if resize is None:
            shape = tf.shape(image, out_type=tf.int64)
            return raw, shape[0], shape[1], path

        def shrink():
            small = resize_shorter_side(image, resize)
            shape = tf.shape(small, out_type=tf.int64)
            return (
                tf.io.encode_jpeg(small, quality=PREPARE_JPEG_QUALITY),
                shape[0],
                shape[1],
            )

        encoded, out_h, out_w = tf.cond(
            tf.minimum(height, width) > resize, shrink, lambda: (raw, height, width)
        )
        return encoded, out_h, out_w, path

    spec = (
        tf.TensorSpec([], tf.string),
        tf.TensorSpec([], tf.int64),
        tf.TensorSpec([], tf.int64),
        tf.TensorSpec([], tf.string),
    )
    counter = SkipCounter()
    counter._attach(total)
    files = tf.data.Dataset.from_tensor_slices([_tf_path(p) for p in ordered])
    rng = tf.data.Dataset.random(seed=seed).batch(2)
    dataset = tf.data.Dataset.zip((files, rng)).map(lambda p, r: (p, p, r))
    dataset = _decode_skipping(
        dataset, load, spec, counter, deterministic=True
    ).prefetch(8)

    parent, name = _split_dir(out_dir)
    if not _scheme(out_dir):
        leftovers = sorted(
            pyglob.glob(
                os.path.join(
                    parent, f"{pyglob.escape(hidden_stem(name))}.partial-*"
                )
            )
        )
        if leftovers and verbose:
            print(
                f"note: leftovers of interrupted runs (safe to delete): {', '.join(leftovers)}",
                file=sys.stderr,
            )
    tmp = f"{parent}/{hidden_stem(name)}.partial-{uuid.uuid4().hex[:8]}"
    tf.io.gfile.makedirs(tmp)
    counts = [0] * shards
    try:
        progbar = None
        if verbose:
            from keras.utils import Progbar

            progbar = Progbar(total, unit_name="image")
        writer, current = None, -1
        try:
            for encoded, height, width, path in dataset.as_numpy_iterator():
                pos = position[os.fsdecode(path)]
                shard = pos * shards // total
                while current < shard:
                    if writer is not None:
                        writer.close()
                    current += 1
                    writer = tf.io.TFRecordWriter(tf.io.gfile.join(tmp, names[current]))
                example = tf.train.Example(
                    features=tf.train.Features(
                        feature={
                            "image": _bytes_feature(encoded),
                            "path": _bytes_feature(path),
                            "height": _int_feature(height),
                            "width": _int_feature(width),
                        }
                    )
                )
                writer.write(example.SerializeToString())
                counts[shard] += 1
                if progbar is not None and (pos % 32 == 0 or pos == total - 1):
                    progbar.update(pos + 1)
        except tf.errors.InvalidArgumentError:
            if counter.count >= total:
                raise ColornetError(
                    f"none of the {total} images could be read or decoded"
                ) from None
            raise
        while current < shards - 1:  # shards left empty by skipped files
            if writer is not None:
                writer.close()
            current += 1
            writer = tf.io.TFRecordWriter(tf.io.gfile.join(tmp, names[current]))
        writer.close()
        if progbar is not None:
            progbar.update(total, finalize=True)
        skipped = tuple((p, _skip_reason(p, max_pixels)) for p in counter.paths)
        images = sum(counts)
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source": [os.fspath(s) for s in source]
            if isinstance(source, (list, tuple))
            else os.fspath(source),
            "images": images,
            "content": "original file bytes"
            if resize is None
            else f"shorter side > {resize} downscaled to {resize}, JPEG quality {PREPARE_JPEG_QUALITY}",
            "resize": resize,
            "seed": seed,
            "max_pixels": max_pixels,
            "shards": [{"file": n, "count": k} for n, k in zip(names, counts)],
            "skipped": [{"path": p, "reason": r} for p, r in skipped],
        }
        _write_json(
            tf.io.gfile.join(tmp, MANIFEST_NAME), manifest
        )  # last: marks completion
        _publish(tmp, out_dir, names, overwrite)
    except BaseException:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.rmtree(tmp)
        raise
    return PrepareSummary(
        out_dir=out_dir if _scheme(out_dir) else os.path.abspath(out_dir),
        shards=tuple(zip(names, counts)),
        images=images,
        skipped=skipped,
        seconds=time.time() - start,
    )
