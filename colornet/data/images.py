"""Where image bytes become pixels: every decode in colornet goes through here.

`decode_image` (TF ops, so it runs in `tf.data` pipelines and inside the exported
serving graph) handles JPEG, PNG, GIF, BMP and WebP; greyscale, grey+alpha,
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

`read_image` reads one file on the host (what `colornet colorize` does): the same
decode, then the JPEG's EXIF orientation, read by Pillow from the header, is
applied. `as_rgb` brings an image array a caller passes to the same RGB form.

`decode_scaled`, `decode_with_size`, `check_that` and `plain_tf` serve the other
modules of `colornet.data` (pipelines, TFRecords); `colornet.data` does not export
them.
"""

import io
import os

import numpy as np
import tensorflow as tf
from PIL import ExifTags, JpegImagePlugin

from colornet import constants as c
from colornet.utils.errors import ColornetError, first_line

MAX_PIXELS = c.MAX_PIXELS  # 50 megapixels; why: colornet/constants.py

_HEADER_BYTES = 64
_JPEG, _PNG, _GIF, _BMP, _WEBP, _UNKNOWN = range(6)

# The ops below use TF control flow only (tf.cond, tf.while_loop), no Python
# `if` on tensors, so AutoGraph has nothing to convert; skipping it makes the
# tracing that each pipeline does several times faster.
plain_tf = tf.autograph.experimental.do_not_convert


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


@plain_tf
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


@plain_tf
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


def check_that(condition, *parts):
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


@plain_tf
def _validated(image_bytes, max_pixels):
    """Header checks; returns `(fmt, payload, height, width, extra)`.

    `payload` is what to hand to the decoder (for GIF, the first frame only);
    it carries control dependencies on every check, so nothing is decoded
    before they pass.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    length = tf.strings.length(image_bytes)
    empty_check = check_that(length > 0, "decode_image: empty input (0 bytes)")
    with tf.control_dependencies([empty_check]):
        fmt, height, width, extra = _parse_header(image_bytes)
    format_check = check_that(
        tf.not_equal(fmt, _UNKNOWN),
        "decode_image: not a JPEG, PNG, GIF, BMP or WebP file (unrecognised first bytes)",
    )
    with tf.control_dependencies([format_check]):
        animation_check = check_that(
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
    size_check = check_that(
        bounded
        & (
            tf.minimum(height, max_pixels) * tf.minimum(width, max_pixels) <= max_pixels
        ),
        "decode_image: the file declares ",
        width,
        "x",
        height,
        f" pixels; the limit is max_pixels={max_pixels} (colornet.constants.MAX_PIXELS), "
        "and the size must be positive",
    )
    with tf.control_dependencies([size_check]):
        payload = tf.identity(payload)
    return fmt, payload, height, width, extra


@plain_tf
def _to_rgb(image):
    """`(H, W, C)` uint8 with C in 1..4 -> RGB: grey is repeated, alpha dropped."""
    channels = tf.shape(image)[-1]
    index = tf.gather(
        tf.constant([[0, 0, 0], [0, 0, 0], [0, 1, 2], [0, 1, 2]]), channels - 1
    )
    return tf.ensure_shape(tf.gather(image, index, axis=-1), [None, None, 3])


@plain_tf
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


@plain_tf
def decode_scaled(image_bytes, max_pixels=MAX_PIXELS, min_side=None):
    """`decode_image`, optionally letting libjpeg downscale by 2, 4 or 8.

    With `min_side`, a JPEG whose shorter side is at least `2 * min_side` is
    decoded at 1/2, 1/4 or 1/8 scale (DCT scaling: much faster, and an area
    average rather than aliasing), keeping the shorter side >= `min_side`.
    """
    return decode_with_size(image_bytes, max_pixels, min_side)[0]


@plain_tf
def decode_with_size(image_bytes, max_pixels, min_side):
    """`decode_scaled` plus the size the header declares, `(image, height, width)`."""
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


@plain_tf
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
    return decode_scaled(image_bytes, max_pixels)



# ----------------------------------------------------------------------------
# Image files and arrays on the host.


def jpeg_exif_orientation(encoded):
    """The EXIF orientation (1..8) of JPEG bytes; 1 when absent, unreadable or not a JPEG.

    Pillow reads it from the file's header (no pixels are decoded). The JPEG plugin
    is opened directly, which skips `Image.open`'s decompression-bomb check: the
    size limit is `decode_image`'s `max_pixels`, checked before this is called.
    TF's JPEG decoder ignores the orientation.
    """
    try:
        with JpegImagePlugin.JpegImageFile(io.BytesIO(bytes(encoded))) as image:
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 (Pillow raises many types on damaged or foreign headers)
        return 1
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def apply_orientation(image, orientation):
    """Rotates/flips an `(H, W, C)` array as EXIF `orientation` (1..8) says, to upright.

    1 as stored, 2 mirrored, 3 rotated 180, 4 flipped upside down, 5 transposed,
    6 rotated 90 degrees clockwise, 7 transversed, 8 rotated 90 degrees
    counter-clockwise (the transforms of TIFF 6.0 / EXIF 2.3, as Pillow's
    `ImageOps.exif_transpose` applies them).
    """
    image = np.asarray(image)
    transforms = {
        1: lambda x: x,
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: np.swapaxes(x, 0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: np.swapaxes(x[::-1, ::-1], 0, 1),
        8: lambda x: np.rot90(x, 1),
    }
    if orientation not in transforms:
        raise ValueError(f"orientation must be 1..8, got {orientation!r}")
    return np.ascontiguousarray(transforms[orientation](image))


def read_image(path, max_pixels=None):
    """Reads an image file as upright `(H, W, 3)` uint8 RGB.

    Decoding is `decode_image` (JPEG, PNG, GIF, BMP, WebP; grey, palette, 16-bit
    and RGBA become 8-bit RGB, alpha dropped; oversized files refused before
    decoding); a JPEG's EXIF orientation is then applied.

    Raises:
      ColornetError: the file cannot be read or decoded; the message is one line,
        "PATH: reason".
    """
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    path = os.fspath(path)
    # Local files through Python: TF's GFile takes only names that are valid UTF-8.
    opener = tf.io.gfile.GFile if "://" in path else open
    try:
        with opener(path, "rb") as f:
            encoded = f.read()
    except (tf.errors.OpError, OSError) as error:
        raise ColornetError(f"{path}: cannot read the file ({first_line(error)})") from None
    try:
        image = decode_image(tf.constant(encoded), max_pixels).numpy()
    except tf.errors.OpError as error:
        raise ColornetError(f"{path}: {first_line(error)}") from None
    return apply_orientation(image, jpeg_exif_orientation(encoded))


def as_rgb(image):
    """An image array as `(H, W, 3)` RGB: uint8 as is, float in [0, 1] as float32.

    Accepts `(H, W)` or `(H, W, 1)` grey (repeated), `(H, W, 3)` RGB and `(H, W, 4)`
    RGBA (alpha dropped, not composited); uint8, uint16 (scaled to [0, 1]) or float
    in [0, 1].
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must not be empty, got shape {image.shape}")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    image = image[..., :3]
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ValueError("image contains NaN or Inf")
        if image.min() < 0.0 or image.max() > 1.0:
            raise ValueError(
                f"a float image must be in [0, 1], got values in [{image.min():g}, {image.max():g}] "
                "(pass uint8 for 0..255)"
            )
        return image.astype(np.float32)
    raise ValueError(f"image must be uint8, uint16 or float, got {image.dtype}")
