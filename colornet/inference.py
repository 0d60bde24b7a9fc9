"""From L to a colour image: decode the logits, upsample ab, join the full-res L.

On top of those steps, what a user calls:

* `colorize(image)`: one image array -> uint8 RGB at the input's own resolution.
* `colorize_files(inputs, out_dir)`: files, folders and globs -> PNGs under `out_dir`.
* `load_predictor(model)`: any model format colornet writes, behind one interface.

How an image is coloured (the release's demo, and `colornet.export`/`colornet.tflite`):
the L of the input (a colour input is decolourised: only its L is used) is resized
to the network's native size S x S (bilinear, antialiased; the aspect ratio is not
kept), the network predicts ab at S/4 x S/4, the ab is decoded (annealed mean by
default), upsampled bilinearly to the input's size and joined with the input's own
full-resolution L. S is 256 (`DEFAULT_SIZE`, the training resolution) for Keras
models and whatever a SavedModel or TFLite file was exported with.

Models (`load_predictor`): a `.keras` file, a training workdir (its latest
checkpoint), a checkpoint prefix inside a workdir (`workdir/checkpoints/ckpt-N`), a
SavedModel written by `colornet export` (a version directory or the base directory,
whose largest version is taken) or a `.tflite` file written by `colornet tflite`.
Each gives logits, so every decoding and temperature works with every format. None
means the bundled model, `BUNDLED_MODEL_PATH`.
"""

import dataclasses
import functools
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from colornet import color, files
from colornet import constants as c
from colornet.errors import ColornetError
from colornet.errors import first_line as _first_line
from colornet.layers import decode

BUNDLED_MODEL_PATH = os.path.join(os.path.dirname(__file__), "assets", "colornet_half.npz")
DEFAULT_SIZE = c.TRAIN_RESIZE  # the network's native input side for Keras models
DECODE_METHODS = ("annealed-mean", "mean", "mode")


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


# ----------------------------------------------------------------------------
# Models of every format behind one interface.


class Predictor:
    """Maps L at the network's native size to 313-way logits, whatever the model format.

    Attributes:
      size: the input side a model requires (SavedModel, TFLite), or None when any
        size works (Keras).
      source: what was loaded, for messages and reports.
    """

    size = None
    source = ""

    def logits(self, l_small):
        """`(1, S, S, 1)` float32 L in 0..100 -> `(1, S/4, S/4, 313)` float32 logits."""
        raise NotImplementedError


class KerasPredictor(Predictor):
    """A Keras `Colorizer` (or any Keras model from `l_raw` to logits)."""

    def __init__(self, model, source="keras model"):
        self.model = model
        self.source = source

        @tf.function(reduce_retracing=True, autograph=False)
        def logits(l_small):
            return tf.cast(model(l_small, training=False), tf.float32)

        self._logits = logits

    def logits(self, l_small):
        return self._logits(tf.convert_to_tensor(l_small, tf.float32))


class SavedModelPredictor(Predictor):
    """A SavedModel written by `colornet.export`, through its `probabilities` signature."""

    def __init__(self, path):
        import json

        from colornet import export

        self.source = path
        try:
            loaded = tf.saved_model.load(path)
        except Exception as error:  # noqa: BLE001 (TF raises several types for a bad directory)
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ColornetError(f"{path}: not a loadable SavedModel ({first})") from None
        if "probabilities" not in loaded.signatures:
            raise ColornetError(
                f"{path}: not a colornet SavedModel (no 'probabilities' signature; "
                "write one with `colornet export`)"
            )
        self._loaded = loaded  # the signature needs its variables alive
        self._signature = loaded.signatures["probabilities"]
        config_path = os.path.join(path, export.ASSETS_EXTRA, export.EXPORT_CONFIG_NAME)
        try:
            with open(config_path) as f:
                self.size = int(json.load(f)["export_config"]["image_size"])
        except (OSError, ValueError, KeyError, TypeError):
            # The signature resizes to its own size anyway; any input size works.
            self.size = None

    def logits(self, l_small):
        return self._signature(l_raw=tf.convert_to_tensor(l_small, tf.float32))["logits"]


class TFLitePredictor(Predictor):
    """A `.tflite` file written by `colornet.tflite.convert`, run with LiteRT."""

    def __init__(self, path, num_threads=None):
        from colornet import tflite

        self.source = path
        try:
            self._runner = tflite.TFLiteColorizer(path, num_threads=num_threads)
        except ColornetError:
            raise
        except Exception as error:  # noqa: BLE001 (LiteRT raises several types on bad files)
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ColornetError(f"{path}: not a loadable colornet TFLite model ({first})") from None
        self.size = self._runner.image_size

    def logits(self, l_small):
        return tf.convert_to_tensor(self._runner(np.asarray(l_small, np.float32))["logits"])


def _saved_model_dir(path):
    """`path` if it holds a SavedModel, else its largest numbered version, else None."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [
        int(name)
        for name in os.listdir(path)
        if name.isdigit() and os.path.isfile(os.path.join(path, name, "saved_model.pb"))
    ]
    return os.path.join(path, str(max(versions))) if versions else None


def _load_checkpoint(prefix):
    """A Keras `Colorizer` from one checkpoint of a training workdir (`.../checkpoints/ckpt-N`)."""
    import json

    from colornet.models.colorizer import Colorizer

    workdir = os.path.dirname(os.path.dirname(os.path.abspath(prefix)))
    config_path = os.path.join(workdir, "config.json")
    try:
        with open(config_path) as f:
            preset = json.load(f)["preset"]
    except (OSError, ValueError, KeyError) as error:
        raise ColornetError(
            f"{prefix}: a checkpoint needs its workdir's config.json ({config_path}: {error})"
        ) from None
    model = Colorizer.from_preset(preset)
    try:
        tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
    except (tf.errors.OpError, ValueError, AssertionError) as error:
        raise ColornetError(f"{prefix}: cannot restore the checkpoint ({error})") from None
    return model


def _load_path(path):
    from colornet.models.loading import is_workdir, load_colorizer

    if os.path.isfile(path + ".index") and not os.path.isdir(path):
        return KerasPredictor(_load_checkpoint(path), source=path)
    if not os.path.exists(path):
        raise ColornetError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        if is_workdir(path):
            return KerasPredictor(load_colorizer(path), source=path)
        saved_model = _saved_model_dir(path)
        if saved_model is not None:
            return SavedModelPredictor(saved_model)
        raise ColornetError(
            f"{path}: neither a training workdir (config.json and checkpoints/) nor a "
            "SavedModel directory (saved_model.pb, or numbered versions holding one)"
        )
    if path.endswith(".tflite"):
        return TFLitePredictor(path)
    if path.endswith((".keras", ".npz")):
        return KerasPredictor(load_colorizer(path), source=path)
    raise ColornetError(
        f"{path}: expected a .keras file, a .npz weights file, a .tflite file, a training workdir, a checkpoint "
        "prefix (workdir/checkpoints/ckpt-N) or a SavedModel directory"
    )


@functools.lru_cache(maxsize=4)
def _cached_load(path, mtime):
    del mtime  # part of the cache key: a rewritten file is loaded again
    return _load_path(path)


def load_predictor(model=None):
    """A `Predictor` for what users pass as a model (see the module docstring).

    Args:
      model: None (the bundled model), a path, a `keras.Model` or a `Predictor`.
        Model files are loaded once and cached (until the file changes);
        directories are loaded on every call, so keep the returned `Predictor`.

    Raises:
      ColornetError: the bundled model is missing, the path does not exist or is not
        a model colornet can load.
    """
    if isinstance(model, Predictor):
        return model
    if isinstance(model, keras.Model):
        return KerasPredictor(model)
    if model is None:
        if not os.path.isfile(BUNDLED_MODEL_PATH):
            raise ColornetError(
                f"the bundled model {BUNDLED_MODEL_PATH} is not installed (it ships once "
                "training finishes); pass a model instead (--model PATH: a .keras file, a "
                "training workdir, a SavedModel directory or a .tflite file)"
            )
        model = BUNDLED_MODEL_PATH
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"model must be None, a path, a keras.Model or a Predictor, got {type(model).__name__}"
        )
    path = os.path.abspath(os.fspath(model))
    if not os.path.isfile(path):
        return _load_path(path)  # directories change without their mtime changing
    return _cached_load(path, os.stat(path).st_mtime_ns)


def resolve_size(predictor, size=None):
    """The side the network runs at: `size`, the model's fixed size, or `DEFAULT_SIZE`.

    Raises:
      ValueError: `size` is not a positive multiple of 4, or differs from a fixed-size
        model's.
    """
    if size is None:
        return predictor.size or DEFAULT_SIZE
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < c.OUTPUT_STRIDE:
        raise ValueError(f"size must be an int >= {c.OUTPUT_STRIDE}, got {size!r}")
    if size % c.OUTPUT_STRIDE:
        raise ValueError(f"size must be a multiple of {c.OUTPUT_STRIDE}, got {size}")
    if predictor.size is not None and size != predictor.size:
        raise ValueError(
            f"size {size} differs from the {predictor.size} x {predictor.size} input that "
            f"{predictor.source} was exported with; leave size unset"
        )
    return int(size)


def validate_decoding(method, temperature):
    """Checks a decoding method and temperature; returns the temperature as a float."""
    if method not in DECODE_METHODS:
        raise ValueError(f"method must be one of {', '.join(DECODE_METHODS)}, got {method!r}")
    return decode.validate_temperature(temperature)


# ----------------------------------------------------------------------------
# Colourising arrays.


def predict_rgb(predictor, l_raw, size, method="annealed-mean", temperature=c.ANNEALED_MEAN_TEMPERATURE):
    """Colourises one image's L with a `Predictor`, keeping its full resolution.

    Args:
      predictor: a `Predictor` (`load_predictor`).
      l_raw: `(H, W, 1)` float L in 0..100 (see `checked_l`).
      size: the side the network runs at (`resolve_size`).
      method, temperature: the decoding (`decode_logits`).

    Returns:
      `(H, W, 3)` uint8 tensor.
    """
    l_raw = checked_l(l_raw)[None]
    logits = predictor.logits(network_input(l_raw, size))
    ab_small = decode_logits(logits, method, temperature)
    return to_uint8(join_l_ab(l_raw, ab_small))[0]


def colorize_rgb(predictor, rgb, size, method="annealed-mean", temperature=c.ANNEALED_MEAN_TEMPERATURE):
    """`predict_rgb` of an `(H, W, 3)` sRGB image (uint8, or float in [0, 1]): only its L
    is used (a colour input is decolourised first). Returns `(H, W, 3)` uint8."""
    return predict_rgb(predictor, color.rgb_to_lab(rgb)[..., :1], size, method, temperature)


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


def colorize(image, model=None, temperature=c.ANNEALED_MEAN_TEMPERATURE, method="annealed-mean", size=None):
    """Colourises an image array at its own resolution (see the module docstring).

    Args:
      image: `(H, W)`, `(H, W, 1)`, `(H, W, 3)` or `(H, W, 4)`; uint8, uint16 or float
        in [0, 1]. Colour is ignored: only the image's L is used.
      model: None for the bundled model, a path (`.keras`, workdir, checkpoint,
        SavedModel, `.tflite`), a `keras.Model` or a `Predictor`.
      temperature: annealed-mean temperature T > 0 (paper: 0.38).
      method: "annealed-mean", "mean" or "mode".
      size: side the network runs at; None for the model's (256 for Keras models).

    Returns:
      `(H, W, 3)` uint8 NumPy array.

    For many images with one model, pass `model=load_predictor(...)` once: a model
    file given by path is cached, a `keras.Model` is wrapped (and traced) per call.
    """
    temperature = validate_decoding(method, temperature)
    rgb = as_rgb(image)
    predictor = load_predictor(model)
    size = resolve_size(predictor, size)
    return colorize_rgb(predictor, rgb, size, method, temperature).numpy()


# ----------------------------------------------------------------------------
# Reading image files, with their EXIF orientation.


def _tiff_orientation(tiff):
    """The Orientation tag (0x0112) of IFD0 of a TIFF structure (EXIF), or 1."""
    if len(tiff) < 8:
        return 1
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or int.from_bytes(tiff[2:4], order) != 42:
        return 1

    def number(at, size):
        return int.from_bytes(tiff[at : at + size], order)

    ifd = number(4, 4)
    if ifd + 2 > len(tiff):
        return 1
    for entry in range(ifd + 2, ifd + 2 + 12 * number(ifd, 2), 12):
        if entry + 12 > len(tiff):
            return 1
        if number(entry, 2) == 0x0112:
            # Type SHORT (3), one value, stored in the first 2 bytes of the value field.
            if number(entry + 2, 2) != 3:
                return 1
            value = number(entry + 8, 2)
            return value if 1 <= value <= 8 else 1
    return 1


def jpeg_exif_orientation(data):
    """The EXIF orientation (1..8) of JPEG bytes; 1 when absent, unreadable or not a JPEG.

    Walks the JPEG marker segments up to the image data and reads the Orientation tag
    of the first EXIF APP1 segment. TF's JPEG decoder ignores it.
    """
    data = bytes(data)
    if not data.startswith(b"\xff\xd8"):
        return 1
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return 1
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan, end of image: no EXIF follows
            return 1
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return 1
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment.startswith(b"Exif\x00\x00"):
            return _tiff_orientation(segment[6:])
        pos += 2 + length
    return 1


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

    Decoding is `colornet.data.decode_image` (JPEG, PNG, GIF, BMP, WebP; grey,
    palette, 16-bit and RGBA become 8-bit RGB, alpha dropped; oversized files refused
    before decoding); a JPEG's EXIF orientation is then applied.

    Raises:
      ColornetError: the file cannot be read or decoded; the message is one line,
        "PATH: reason".
    """
    from colornet import data

    max_pixels = data.MAX_PIXELS if max_pixels is None else max_pixels
    path = os.fspath(path)
    # Local files through Python: TF's GFile takes only names that are valid UTF-8.
    opener = tf.io.gfile.GFile if data._scheme(path) else open
    try:
        with opener(path, "rb") as f:
            encoded = f.read()
    except (tf.errors.OpError, OSError) as error:
        raise ColornetError(f"{path}: cannot read the file ({_first_line(error)})") from None
    try:
        image = data.decode_image(tf.constant(encoded), max_pixels).numpy()
    except tf.errors.OpError as error:
        raise ColornetError(f"{path}: {_first_line(error)}") from None
    return apply_orientation(image, jpeg_exif_orientation(encoded))


# ----------------------------------------------------------------------------
# Colourising files.


def side_by_side(panels, gap=8):
    """Joins same-height `(H, W, 3)` uint8 images left to right with white gaps."""
    panels = [np.asarray(p) for p in panels]
    height = panels[0].shape[0]
    if any(p.shape[0] != height for p in panels):
        raise ValueError(f"panels must have the same height, got {[p.shape[0] for p in panels]}")
    spacer = np.full((height, gap, 3), 255, np.uint8)
    pieces = []
    for i, panel in enumerate(panels):
        if i:
            pieces.append(spacer)
        pieces.append(panel)
    return np.concatenate(pieces, axis=1)


def write_png(path, rgb):
    """Writes `(H, W, 3)` uint8 as a PNG atomically (a temporary file, then a rename)."""
    encoded = tf.io.encode_png(np.asarray(rgb, np.uint8)).numpy()
    with files.atomic_path(path, ".png") as tmp, open(tmp, "wb") as f:
        f.write(encoded)


def _is_glob(path):
    return any(ch in path for ch in "*?[")


def _glob_root(pattern):
    """The directory part of a glob pattern before its first wildcard."""
    parts = pattern.replace(os.sep, "/").split("/")
    fixed = []
    for part in parts[:-1]:
        if _is_glob(part):
            break
        fixed.append(part)
    if not fixed:
        return "."
    return "/".join(fixed) or "/"


def _is_within(path, directory):
    return os.path.commonpath([path, directory]) == directory


def _plan_argument(argument, out_real):
    """`[(input path, output path relative to out_dir)]` for one command-line argument."""
    from colornet import data

    argument = os.fspath(argument)
    paths = data.list_image_files(argument)
    if os.path.isdir(argument):
        root = os.path.abspath(argument)
    elif not os.path.exists(argument) and _is_glob(argument):
        root = os.path.abspath(_glob_root(argument))
    else:
        root = None  # a file or a .txt list: base names
    planned = []
    for path in paths:
        if os.path.exists(path) and _is_within(os.path.realpath(path), out_real):
            continue  # an earlier output: never colourise what we wrote
        rel = os.path.relpath(path, root) if root is not None else os.path.basename(path)
        planned.append((path, os.path.splitext(rel)[0] + ".png"))
    return planned


@dataclasses.dataclass(frozen=True)
class ColorizeSummary:
    """What `colorize_files` did.

    Attributes:
      out_dir: the output directory (absolute).
      written: `[(input path, output path)]`.
      failed: `[(input or argument, reason)]`, one line each.
    """

    out_dir: str
    written: list
    failed: list


def _output_path(out_real, rel):
    target = os.path.normpath(os.path.join(out_real, rel))
    if os.path.isabs(rel) or target == out_real or not _is_within(target, out_real):
        raise ColornetError(f"its output path {rel} would lie outside the output directory")
    parent = os.path.dirname(target)
    # Check what exists before creating anything: a symbolic link inside out_dir
    # must not lead the new folders elsewhere.
    existing = parent
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not _is_within(os.path.realpath(existing), out_real):
        raise ColornetError(f"{existing} leads outside the output directory (a symbolic link)")
    os.makedirs(parent, exist_ok=True)
    if not _is_within(os.path.realpath(parent), out_real):  # a link made in the meantime
        raise ColornetError(f"{parent} leads outside the output directory (a symbolic link)")
    return target


def colorize_files(
    inputs,
    out_dir,
    model=None,
    *,
    temperature=c.ANNEALED_MEAN_TEMPERATURE,
    method="annealed-mean",
    size=None,
    compare=False,
    max_pixels=None,
    verbose=1,
):
    """Colourises image files into PNGs under `out_dir`, at each input's resolution.

    Each result is `out_dir/<path of the input relative to its argument>.png`: for a
    folder, relative to that folder (searched recursively); for a glob, relative to
    the pattern's directory before its first wildcard; for a file (or a `.txt` list
    of files), the base name. Outputs are written atomically and never outside
    `out_dir`; files already inside `out_dir` are not taken as inputs.

    A file that cannot be read, decoded or written, or an argument that names
    nothing, is reported (one line on stderr when `verbose`) and skipped; the rest
    are done. Two inputs with the same output name: the first is done, the second
    fails.

    Args:
      inputs: a path, folder or glob, or a list of them.
      out_dir: output directory (created if needed).
      model: as for `colorize`.
      temperature, method, size: as for `colorize`.
      compare: write a side-by-side image instead: grey input | colourised |
        original (the last only when the input has colour, `has_color`).
      max_pixels: largest image accepted (default `colornet.data.MAX_PIXELS`).
      verbose: 1 shows a progress bar and reports failures as they happen.

    Returns:
      a `ColorizeSummary`.

    Raises:
      ColornetError: the model cannot be loaded or `out_dir` is not a directory.
    """
    temperature = validate_decoding(method, temperature)
    predictor = load_predictor(model)
    size = resolve_size(predictor, size)
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not inputs:
        raise ColornetError("no input given")
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ColornetError(f"{out_dir} exists and is not a directory")
    os.makedirs(out_dir, exist_ok=True)
    out_real = os.path.realpath(out_dir)

    failed = []

    def fail(name, reason):
        failed.append((name, reason))
        if verbose:
            print(f"colornet: skipped {name}: {reason}", file=sys.stderr, flush=True)

    jobs, sources, claimed = [], set(), {}
    for argument in inputs:
        try:
            planned = _plan_argument(argument, out_real)
        except ColornetError as error:
            fail(os.fspath(argument), str(error))
            continue
        for path, rel in planned:
            if path in sources:
                continue
            sources.add(path)
            key = os.path.normcase(os.path.normpath(rel))
            if key in claimed:
                fail(path, f"its output {rel} is already the output of {claimed[key]}")
                continue
            claimed[key] = path
            jobs.append((path, rel))

    written = []
    progress = keras.utils.Progbar(len(jobs), unit_name="image") if verbose and jobs else None
    for done, (path, rel) in enumerate(jobs, 1):
        try:
            target = _output_path(out_real, rel)
            rgb = read_image(path, max_pixels)
            result = colorize_rgb(predictor, rgb, size, method, temperature).numpy()
            if compare:
                panels = [grey_rgb(rgb).numpy(), result]
                if has_color(rgb):
                    panels.append(rgb)
                result = side_by_side(panels)
            write_png(target, result)
            written.append((path, target))
        except (ColornetError, OSError, tf.errors.OpError) as error:
            fail(path, _first_line(error).removeprefix(f"{path}: "))
        if progress:
            progress.update(done)
    return ColorizeSummary(out_dir=out_dir, written=written, failed=failed)
