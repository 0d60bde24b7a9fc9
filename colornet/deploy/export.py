"""SavedModel export for TensorFlow Serving: versioned, atomic, decoding in the graph.

`export_saved_model(model, "models/colornet")` writes `models/colornet/<version>/`,
a SavedModel that `tensorflow_model_server --model_base_path=.../models/colornet`
serves. Every signature decodes with the annealed mean (paper Sec. 2.3) inside the
graph, in float32 whatever precision the network computes in:

* `serving_default`: `image_bytes` (string `[B]`: JPEG, PNG, GIF, BMP or WebP,
  colour or grey, any size, sizes may differ within a batch) and an optional
  `temperature` -> `colorized_png_bytes` (string `[B]`), PNGs of each input's own
  size. The `_bytes` suffix makes TF Serving's REST API return them base64-encoded.
* `colorize_l`: `l_raw` (float32 `(B, H, W, 1)`, CIE L in 0..100) and an optional
  `temperature` -> `ab` (float32 `(B, H, W, 2)`) and `rgb` (uint8 `(B, H, W, 3)`).
* `colorize_rgb`: `rgb` (uint8 `(B, H, W, 3)`) and an optional `temperature` ->
  the same outputs; the colour of the input is ignored, only its L is used.
* `probabilities`: `l_raw` -> `probabilities` (float32 `(B, h, w, 313)`, the
  network's distribution over the ab bins at T = 1), `logits` (same shape) and
  `ab_bins` (float32 `(313, 2)`, the bin centres, a constant). Custom decoding:
  ab = softmax(logits / T) . ab_bins. Because `ab_bins` has no batch axis, ask TF
  Serving's REST API for this signature in the columnar form (`"inputs"`).

A model that takes hints (`ModelConfig.hints`) gets two more (`HINT_SIGNATURES`):

* `colorize_hints`: `image_bytes` (string `[B]`), `hints` (float32 `[B, N, 5]`: x,
  y in each image's own pixels from its top-left corner, a, b, and the hinted
  square's side in pixels, 0 for the default; a row with a negative side is
  padding, so that images can carry different numbers of hints) and an optional
  `temperature` -> `colorized_png_bytes`. `colornet.hints.parse_hints` turns the
  `--hints` JSON into these rows.
* `suggest_colors`: `image_bytes`, `point` (float32 `[B, 2]`, x and y) and `hints`
  -> `ab` (float32 `[B, K, 2]`), `probability` (float32 `[B, K]`) and `rgb` (uint8
  `[B, K, 3]`, that ab at the point's lightness): the K = `SUGGESTIONS` most likely
  colours at the point, most likely first (`colornet.suggest_colors`); rows of
  probability 0 are empty.

How an image is coloured, as the release's demo does: the lightness L is resized
to the network's native size (`ExportConfig.image_size`, 256 by default; bilinear
with antialiasing, the aspect ratio is not kept), the network predicts ab at 1/4 of
that size, the ab is upsampled bilinearly to the input's size and joined with the
input's own full-resolution L. `temperature` (default 0.38, the paper's) is a
scalar or one value per image; each value must be finite and > 0.

Bad input never crashes the server: empty or undecodable bytes, an unknown format,
a file whose header declares more than `ExportConfig.max_pixels` pixels (checked
before any pixel memory is allocated, see `colornet.data.decode_image`), a tensor
input above that size, an `l_raw` holding NaN or Inf ("L contains NaN or Inf") or a
bad temperature give an InvalidArgument error whose message says what is wrong.
Finite L outside 0..100 (no image has it) is clipped to 0..100, before the network
and before joining with ab: the policy of `colornet.inference.checked_l`, which the
graph uses.

The version directory appears atomically: everything is written into a hidden
temporary directory inside the base directory (TF Serving only loads directories
whose names are all digits) and renamed into place at the end. Beside the model,
`assets.extra/` holds TF Serving warm-up requests (`tf_serving_warmup_requests`)
and the resolved export configuration (`colornet_export.json`).

The export goes through `keras.export.ExportArchive`: a SavedModel written with
`tf.saved_model.save` from a `tf.Module` that wraps a Keras 3 model does not load
in the TF1 session loader that TF Serving and `saved_model_cli` use.
"""

import dataclasses
import json
import os
import re
import shutil
import sys
import time
import uuid

import keras
import numpy as np
import tensorflow as tf

from colornet import bins, color, data, inference
from colornet import constants as c
from colornet import hints as hint_maps
from colornet.deploy.defaults import PRECISIONS, SERVING_MAX_PIXELS
from colornet.layers import decode
from colornet.utils import files
from colornet.utils.errors import ColornetError, renamed

SIGNATURES = ("serving_default", "colorize_l", "colorize_rgb", "probabilities")
HINT_SIGNATURES = ("colorize_hints", "suggest_colors")
SUGGESTIONS = 8  # colours the suggest_colors signature returns
EXPORT_CONFIG_NAME = "colornet_export.json"
WARMUP_NAME = "tf_serving_warmup_requests"
ASSETS_EXTRA = "assets.extra"
EXPORT_FORMAT = "colornet-saved-model"
EXPORT_FORMAT_VERSION = 1
_VERSION_NAME = re.compile(r"^[0-9]+$")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """How `export_saved_model` builds the serving graph.

    Args:
      image_size: side in pixels of the square the network runs at; every input's
        L is resized to it (bilinear, antialiased) and the predicted ab, at 1/4 of
        it, is upsampled to the input's size. 256 is the release demo's.
      temperature: the annealed-mean temperature used when a request gives none.
      max_pixels: largest accepted image, width x height (see `SERVING_MAX_PIXELS`).
      precision: "float32", or "bfloat16" to run the network's convolutions in
        bfloat16 (the `mixed_bfloat16` policy, same weights) while inputs, logits
        and decoding stay float32. Several times faster on CPUs with AVX512_BF16 or
        AMX (see `cpu_supports_bfloat16`); slow where bfloat16 is emulated.
      jit_compile: compile the network with XLA (`tf.function(jit_compile=True)`).
        The SavedModel keeps the attribute and TensorFlow's session loader honours
        it on the CPU (tests/test_export.py runs such an export through
        saved_model_cli), but it needs a model server built with XLA's CPU JIT,
        compiles once per batch size (the warm-up requests cover
        `warmup_batch_sizes`) and was not faster than the default graph, whose
        convolutions TensorFlow's optimiser already fuses (benchmarks/deploy.py).
        Off by default.
      warmup: write TF Serving warm-up requests (needs `tensorflow-serving-api`,
        the `serving` extra).
      warmup_batch_sizes: batch sizes of the `serving_default` warm-up requests;
        match them to the server's `allowed_batch_sizes`.
      model_name: the model name written into the warm-up requests.
    """

    image_size: int = c.TRAIN_RESIZE
    temperature: float = c.ANNEALED_MEAN_TEMPERATURE
    max_pixels: int = SERVING_MAX_PIXELS
    precision: str = PRECISIONS[0]
    jit_compile: bool = False
    warmup: bool = True
    warmup_batch_sizes: tuple = (1, 2, 4, 8)
    model_name: str = "colornet"

    def __post_init__(self):
        for name in ("image_size", "max_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.image_size < c.OUTPUT_STRIDE:
            raise ValueError(f"image_size must be at least {c.OUTPUT_STRIDE}, got {self.image_size}")
        object.__setattr__(self, "temperature", decode.validate_temperature(self.temperature))
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not isinstance(self.jit_compile, bool):
            raise TypeError(f"jit_compile must be True or False, got {self.jit_compile!r}")
        sizes = tuple(self.warmup_batch_sizes)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes):
            raise ValueError(f"warmup_batch_sizes must be positive ints, got {self.warmup_batch_sizes!r}")
        object.__setattr__(self, "warmup_batch_sizes", sizes)
        if not isinstance(self.model_name, str) or not self.model_name:
            raise ValueError(f"model_name must be a non-empty string, got {self.model_name!r}")

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["warmup_batch_sizes"] = list(self.warmup_batch_sizes)
        return values


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `export_saved_model` wrote.

    Attributes:
      path: the version directory, `base_dir/<version>`.
      version: the version number.
      config: the `ExportConfig` used.
      signatures: the signature names.
    """

    path: str
    version: int
    config: ExportConfig
    signatures: tuple


def _cpu_flags():
    """The flags of /proc/cpuinfo, empty where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def cpu_has_amx():
    """True when this machine's CPU has AMX for bfloat16 (Intel Xeon since Sapphire
    Rapids); False where it cannot tell."""
    return bool(re.search(r"\bamx_bf16\b", _cpu_flags()))


def cpu_supports_bfloat16():
    """True when this machine's CPU has native bfloat16 (AVX512_BF16 or AMX-BF16).

    Reads /proc/cpuinfo; False where it cannot tell.
    """
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", _cpu_flags()))


# ----------------------------------------------------------------------------
# The graph.


def _assert(condition, *parts):
    """An InvalidArgument assertion whose message joins strings and scalar tensors."""
    pieces = [p if isinstance(p, str) else tf.strings.as_string(p) for p in parts]
    return tf.debugging.Assert(condition, [tf.strings.join(pieces)])


def _with_checks(checks, value):
    with tf.control_dependencies(checks):
        return tf.identity(value)


def _temperatures(temperature, batch):
    """A scalar or `[batch]` temperature, checked, as float32 `[batch]`."""
    temperature = tf.convert_to_tensor(temperature, tf.float32)
    flat = tf.reshape(temperature, [-1])
    count = tf.size(flat)
    shape_check = _assert(
        (tf.rank(temperature) <= 1) & ((count == 1) | (count == batch)),
        "temperature must be a scalar or hold one value per image (",
        batch,
        " images), got ",
        count,
        " values",
    )
    with tf.control_dependencies([shape_check]):
        value_check = _assert(
            tf.reduce_all(tf.math.is_finite(flat) & (flat > 0.0)),
            "temperature must be finite and > 0",
        )
    flat = _with_checks([shape_check, value_check], flat)
    return flat * tf.ones([batch], tf.float32)


def _pixel_check(height, width, max_pixels, what):
    height = tf.cast(height, tf.int64)
    width = tf.cast(width, tf.int64)
    return _assert(
        (height > 0) & (width > 0) & (height * width <= max_pixels),
        f"{what} of ",
        width,
        "x",
        height,
        f" pixels: each side must be > 0 and the image at most max_pixels={max_pixels} pixels",
    )


def _to_uint8(rgb):
    return tf.cast(tf.round(tf.clip_by_value(rgb, 0.0, 1.0) * 255.0), tf.uint8)


class _Graph:
    """The functions the signatures are made of, for one model and config."""

    def __init__(self, model, config):
        self.model = model
        self.config = config
        size = config.image_size
        self.net_size = (size, size)

        @tf.function(jit_compile=config.jit_compile, autograph=False)
        def logits_fn(l_small, hints=None):
            inputs = l_small if hints is None else [l_small, hints]
            return tf.cast(model(inputs, training=False), tf.float32)

        self.logits_fn = logits_fn

    def resize_l(self, l_raw):
        """`(B, H, W, 1)` L -> `(B, S, S, 1)` at the network's native size."""
        return inference.network_input(l_raw, self.net_size[0])

    def ab_small(self, l_small, temperature, hints=None):
        """`(B, S, S, 1)` L (and `(B, S, S, 3)` hint maps) and `[B]` temperatures ->
        `(B, S/4, S/4, 2)` float32 ab."""
        logits = self.logits_fn(l_small) if hints is None else self.logits_fn(l_small, hints)
        return decode.annealed_mean(logits, temperature[:, None, None, None])

    def colorize_l(self, l_raw, temperature):
        l_raw = tf.convert_to_tensor(l_raw, tf.float32)
        shape = tf.shape(l_raw)
        check = _pixel_check(shape[1], shape[2], self.config.max_pixels, "colorize: an image")
        l_raw = inference.checked_l(_with_checks([check], l_raw))
        temperature = _temperatures(temperature, shape[0])
        ab = inference.upsample_ab(self.ab_small(self.resize_l(l_raw), temperature), shape[1:3])
        rgb = color.lab_to_rgb(tf.concat([l_raw, ab], axis=-1))
        return {"ab": ab, "rgb": _to_uint8(rgb)}

    def l_from_rgb(self, rgb):
        """`(B, H, W, 3)` uint8 sRGB -> `(B, H, W, 1)` float32 L."""
        rgb = tf.convert_to_tensor(rgb, tf.uint8)
        shape = tf.shape(rgb)
        check = _pixel_check(shape[1], shape[2], self.config.max_pixels, "colorize: an image")
        return color.rgb_to_lab(_with_checks([check], rgb))[..., :1]

    def _prepared(self, image_bytes, hints):
        """Each encoded image's L at the network's size, its hint map (zeros when
        `hints` is None), its full-resolution L (flat) and size."""
        max_pixels = self.config.max_pixels
        size = self.config.image_size
        if hints is None:
            hints = tf.zeros([tf.shape(image_bytes)[0], 0, 5], tf.float32)

        def prepare(args):
            encoded, points = args
            rgb = data.decode_image(encoded, max_pixels)
            l_raw = color.rgb_to_lab(rgb)[..., :1]
            l_small = self.resize_l(l_raw[None])[0]
            image_size = tf.shape(l_raw)[:2]
            return l_small, hint_maps.hint_map(points, image_size, size), tf.reshape(l_raw, [-1]), image_size

        # One image at a time: peak memory is that of the largest image, not of all.
        return tf.map_fn(
            prepare,
            (image_bytes, tf.convert_to_tensor(hints, tf.float32)),
            fn_output_signature=(
                tf.TensorSpec([size, size, 1], tf.float32),
                tf.TensorSpec([size, size, hint_maps.HINT_CHANNELS], tf.float32),
                tf.RaggedTensorSpec([None], tf.float32, ragged_rank=0),
                tf.TensorSpec([2], tf.int32),
            ),
            parallel_iterations=1,
        )

    def colorize_bytes(self, image_bytes, temperature, hints=None):
        """`[B]` encoded images (and `[B, N, 5]` hint rows) -> `[B]` PNGs, each image
        at its own size."""
        l_small, hint_small, l_flat, sizes = self._prepared(image_bytes, hints)
        temperature = _temperatures(temperature, tf.shape(image_bytes)[0])
        ab_small = self.ab_small(l_small, temperature, None if hints is None else hint_small)

        def finish(args):
            l_flat_one, size_one, ab_one = args
            l_raw = tf.reshape(l_flat_one, tf.concat([size_one, [1]], axis=0))
            ab = inference.upsample_ab(ab_one[None], size_one)[0]
            rgb = color.lab_to_rgb(tf.concat([l_raw, ab], axis=-1))
            return tf.io.encode_png(_to_uint8(rgb))

        return tf.map_fn(
            finish,
            (l_flat, sizes, ab_small),
            fn_output_signature=tf.TensorSpec([], tf.string),
            parallel_iterations=1,
        )

    def suggest(self, image_bytes, point, hints):
        """The `SUGGESTIONS` most likely colours at one point of each image."""
        l_small, hint_small, l_flat, sizes = self._prepared(image_bytes, hints)
        probabilities = tf.nn.softmax(self.logits_fn(l_small, hint_small), axis=-1)
        size = self.config.image_size

        def one(args):
            p, l_flat_one, size_one, xy = args
            here = hint_maps.distribution_at(p, xy[0], xy[1], size_one, size, c.OUTPUT_STRIDE)
            ab, weight = hint_maps.suggest_from_distribution(here, bins.ab_bins(), SUGGESTIONS)
            row = tf.minimum(tf.cast(xy[1], tf.int32), size_one[0] - 1)
            column = tf.minimum(tf.cast(xy[0], tf.int32), size_one[1] - 1)
            lightness = l_flat_one[row * size_one[1] + column]
            lab = tf.concat([tf.fill([SUGGESTIONS, 1], lightness), ab], -1)
            return ab, weight, _to_uint8(color.lab_to_rgb(lab))

        ab, weight, rgb = tf.map_fn(
            one,
            (probabilities, l_flat, sizes, tf.convert_to_tensor(point, tf.float32)),
            fn_output_signature=(
                tf.TensorSpec([SUGGESTIONS, 2], tf.float32),
                tf.TensorSpec([SUGGESTIONS], tf.float32),
                tf.TensorSpec([SUGGESTIONS, 3], tf.uint8),
            ),
        )
        return {"ab": ab, "probability": weight, "rgb": rgb}

    def probabilities(self, l_raw):
        l_raw = tf.convert_to_tensor(l_raw, tf.float32)
        shape = tf.shape(l_raw)
        check = _pixel_check(shape[1], shape[2], self.config.max_pixels, "probabilities: an image")
        logits = self.logits_fn(self.resize_l(inference.checked_l(_with_checks([check], l_raw))))
        return {
            "probabilities": tf.nn.softmax(logits, axis=-1),
            "logits": logits,
            "ab_bins": tf.constant(bins.ab_bins()),
        }


def _endpoints(graph):
    """`{name: (function, input_signature)}` for `ExportArchive.add_endpoint`."""
    # A tensor default becomes a PlaceholderWithDefault in the SavedModel: TF Serving
    # and saved_model_cli use it when a request omits the input (a direct TF2 call of
    # the loaded function does not).
    default_t = tf.constant(graph.config.temperature, tf.float32)
    t_spec = tf.TensorSpec(None, tf.float32, name="temperature")

    def serving_default(image_bytes, temperature=default_t):
        return {"colorized_png_bytes": graph.colorize_bytes(image_bytes, temperature)}

    def colorize_l(l_raw, temperature=default_t):
        return graph.colorize_l(l_raw, temperature)

    def colorize_rgb(rgb, temperature=default_t):
        return graph.colorize_l(graph.l_from_rgb(rgb), temperature)

    def probabilities(l_raw):
        return graph.probabilities(l_raw)

    l_spec = tf.TensorSpec([None, None, None, 1], tf.float32, name="l_raw")
    endpoints = {
        "serving_default": (
            serving_default,
            [tf.TensorSpec([None], tf.string, name="image_bytes"), t_spec],
        ),
        "colorize_l": (colorize_l, [l_spec, t_spec]),
        "colorize_rgb": (
            colorize_rgb,
            [tf.TensorSpec([None, None, None, 3], tf.uint8, name="rgb"), t_spec],
        ),
        "probabilities": (probabilities, [l_spec]),
    }
    if takes_hints(graph.model):
        bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
        hints_spec = tf.TensorSpec([None, None, 5], tf.float32, name="hints")

        def colorize_hints(image_bytes, hints, temperature=default_t):
            return {"colorized_png_bytes": graph.colorize_bytes(image_bytes, temperature, hints)}

        def suggest_colors(image_bytes, point, hints):
            return graph.suggest(image_bytes, point, hints)

        endpoints["colorize_hints"] = (colorize_hints, [bytes_spec, hints_spec, t_spec])
        endpoints["suggest_colors"] = (
            suggest_colors,
            [bytes_spec, tf.TensorSpec([None, 2], tf.float32, name="point"), hints_spec],
        )
    return endpoints


def takes_hints(model):
    """Whether a Keras model takes hint maps beside L (`ModelConfig.hints`)."""
    return bool(getattr(getattr(model, "model_config", None), "hints", False))


def signatures_of(model):
    """The signature names an export of `model` holds."""
    return SIGNATURES + (HINT_SIGNATURES if takes_hints(model) else ())


# ----------------------------------------------------------------------------
# The model.


def _as_model(model_or_path):
    if isinstance(model_or_path, keras.Model):
        return model_or_path, None
    from colornet.models.loading import load_colorizer

    path = os.fspath(model_or_path)
    return load_colorizer(path), os.path.abspath(path)


def with_precision(model, precision):
    """The model computing in `precision`, with the same weights.

    Returns `model` itself when it already does; otherwise rebuilds the `Colorizer`
    from its `ModelConfig` under the matching Keras dtype policy ("float32" or
    "mixed_bfloat16") and copies the weights. The logits stay float32 either way.
    """
    policy = {"float32": "float32", "bfloat16": "mixed_bfloat16"}[precision]
    if model.dtype_policy.name == policy:
        return model
    from colornet.models.colorizer import Colorizer, rebuild

    if not isinstance(model, Colorizer):
        raise TypeError(
            f"precision={precision!r} needs a colornet Colorizer to rebuild, got a "
            f"{type(model).__name__} computing in {model.dtype_policy.name}"
        )
    return rebuild(model, policy=policy)


def build_archive(model, config=None):
    """A `keras.export.ExportArchive` holding every signature (see the module docstring).

    Args:
      model: a Keras model mapping `l_raw (B, H, W, 1)` to logits `(B, h, w, 313)`,
        normally a `Colorizer`.
      config: an `ExportConfig`; None for the defaults.
    """
    config = ExportConfig() if config is None else config
    model = with_precision(model, config.precision)
    graph = _Graph(model, config)
    archive = keras.export.ExportArchive()
    # No `archive.track(model)`: the endpoints' variables are tracked anyway, and
    # tracking the model as well saves every weight twice (Keras 3.15 keeps the Keras
    # variables and the tf.Variables under them as two separate trackables).
    for name, (function, signature) in _endpoints(graph).items():
        archive.add_endpoint(name, function, input_signature=signature)
    return archive


# ----------------------------------------------------------------------------
# Writing a version.


def existing_versions(base_dir):
    """The version numbers under `base_dir` (directories named by digits only), sorted."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(
        int(name)
        for name in os.listdir(base_dir)
        if _VERSION_NAME.match(name) and os.path.isdir(os.path.join(base_dir, name))
    )


def next_version(base_dir):
    """One more than the largest version under `base_dir`, or 1."""
    versions = existing_versions(base_dir)
    return versions[-1] + 1 if versions else 1


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"version must be a positive int, got {version!r}")
    return int(version)


def _warmup_images(config):
    """Small PNGs of different sizes for the warm-up requests."""
    rng = np.random.default_rng(0)
    images = []
    for i in range(max(config.warmup_batch_sizes)):
        height, width = 24 + 8 * (i % 3), 32 + 4 * (i % 2)
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        images.append(tf.io.encode_png(pixels).numpy())
    return images


def _warmup_requests(config, hints=False):
    """`PredictionLog` protos: `serving_default` at each warm-up batch size, and the
    other signatures once."""
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError:
        raise ColornetError(
            "writing TF Serving warm-up requests needs tensorflow-serving-api "
            "(pip install 'colornet-keras[serving]'), or export without warm-up (--no-warmup)"
        ) from None
    images = _warmup_images(config)
    l_raw = np.linspace(0.0, 100.0, 32 * 32, dtype=np.float32).reshape(1, 32, 32, 1)
    rgb = np.random.default_rng(1).integers(0, 256, size=(1, 32, 32, 3), dtype=np.uint8)
    requests = [
        ("serving_default", {"image_bytes": np.array(images[:n], dtype=object)})
        for n in config.warmup_batch_sizes
    ]
    requests += [
        ("colorize_l", {"l_raw": l_raw}),
        ("colorize_rgb", {"rgb": rgb}),
        ("probabilities", {"l_raw": l_raw}),
    ]
    if hints:
        rows = np.array([[[4.0, 5.0, 20.0, -10.0, 0.0], [0.0, 0.0, 0.0, 0.0, -1.0]]], np.float32)
        image = np.array(images[:1], dtype=object)
        requests += [
            ("colorize_hints", {"image_bytes": image, "hints": rows}),
            ("suggest_colors", {"image_bytes": image, "point": np.array([[4.0, 5.0]], np.float32), "hints": rows}),
        ]
    logs = []
    for signature, inputs in requests:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = config.model_name
        request.model_spec.signature_name = signature
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        logs.append(
            prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        )
    return logs


def _signature_summary(saved_model_dir):
    """`{signature: {"inputs": {name: [dtype, shape]}, "outputs": ...}}` from the file."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())

    def describe(infos):
        return {
            name: [
                tf.dtypes.as_dtype(info.dtype).name,
                None
                if info.tensor_shape.unknown_rank
                else [d.size if d.size >= 0 else None for d in info.tensor_shape.dim],
            ]
            for name, info in sorted(infos.items())
        }

    summary = {}
    for name, signature in sorted(proto.meta_graphs[0].signature_def.items()):
        if name.startswith("__"):
            continue
        summary[name] = {"inputs": describe(signature.inputs), "outputs": describe(signature.outputs)}
    return summary


def _write_extras(tmp, config, model, source):
    extra = os.path.join(tmp, ASSETS_EXTRA)
    os.makedirs(extra, exist_ok=True)
    if config.warmup:
        with tf.io.TFRecordWriter(os.path.join(extra, WARMUP_NAME)) as writer:
            for log in _warmup_requests(config, takes_hints(model)):
                writer.write(log.SerializeToString())
    model_config = getattr(model, "model_config", None)
    description = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": source,
        "model_config": model_config.to_dict() if model_config is not None else None,
        "export_config": config.to_dict(),
        "signatures": _signature_summary(tmp),
        "decoding": "annealed mean, softmax(logits / temperature) . ab_bins, float32",
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": sys.version.split()[0],
        },
    }
    with open(os.path.join(extra, EXPORT_CONFIG_NAME), "w") as f:
        f.write(json.dumps(description, indent=1) + "\n")


def _publish(tmp, final, overwrite):
    """Renames `tmp` to `final`; an existing `final` is replaced only with `overwrite`."""
    old = None
    if os.path.lexists(final):
        if not overwrite:
            raise ColornetError(f"{final} already exists; choose another version or overwrite it")
        old = os.path.join(os.path.dirname(final), f".old-{os.path.basename(final)}-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    try:
        os.rename(tmp, final)
    except OSError as error:
        if old is not None:
            os.rename(old, final)
        # Another export took the version between our check and the rename.
        raise ColornetError(f"could not move the export into {final}: {error}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_saved_model(model_or_path, base_dir, version=None, *, config=None, overwrite=False, size=None, **options):
    """Writes a TF Serving model version `base_dir/<version>/` (see the module docstring).

    Args:
      model_or_path: a Keras `Colorizer` (or any Keras model from `l_raw (B, H, W,
        1)` to logits), or a path that `colornet.models.loading.load_colorizer`
        accepts: a `.keras` file or a training workdir.
      base_dir: the model's base directory (TF Serving's `--model_base_path`);
        created if missing. Local file systems only (the publish is a rename).
      version: positive int; None for one more than the largest existing version,
        or 1.
      config: an `ExportConfig`; None for the defaults.
      overwrite: replace an existing version directory. A server that has loaded
        that version keeps the old one in memory: prefer a new version number.
      size: the side the network runs at (`ExportConfig.image_size`, the name the
        export's record keeps; `image_size=` here is its deprecated spelling).
      **options: other `ExportConfig` fields overriding `config`'s.

    Returns:
      an `ExportResult`.

    Raises:
      ColornetError: `base_dir` cannot be written (checked before the model is
        loaded), the version exists (without `overwrite`), the model cannot be
        loaded, or warm-up requests were asked for without tensorflow-serving-api.
    """
    config = ExportConfig() if config is None else config
    size = renamed("export_saved_model", "image_size", "size", options.pop("image_size", None), size)
    if size is not None:
        options["image_size"] = size
    if options:
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(ExportConfig)})
        if unknown:
            raise ValueError(f"unknown ExportConfig fields {unknown}")
        config = dataclasses.replace(config, **options)
    if "://" in os.fspath(base_dir):
        raise ColornetError(f"{base_dir}: export writes to a local directory (it publishes by rename)")
    base_dir = os.path.abspath(os.fspath(base_dir))
    if os.path.exists(base_dir) and not os.path.isdir(base_dir):
        raise ColornetError(f"{base_dir} exists and is not a directory")
    version = next_version(base_dir) if version is None else _check_version(version)
    final = os.path.join(base_dir, str(version))
    if os.path.lexists(final) and not overwrite:
        raise ColornetError(f"{final} already exists; choose another version or pass overwrite")
    files.check_output_location(final)
    model, source = _as_model(model_or_path)
    os.makedirs(base_dir, exist_ok=True)
    # Hidden and not all digits: TF Serving never takes it for a version.
    tmp = os.path.join(base_dir, f".tmp-{version}-{uuid.uuid4().hex[:8]}")
    try:
        build_archive(model, config).write_out(tmp, verbose=False)
        _write_extras(tmp, config, model, source)
        _publish(tmp, final, overwrite)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(path=final, version=version, config=config, signatures=signatures_of(model))


def saved_model_op_types(saved_model_dir):
    """Every op type in a SavedModel's graphs, function library included (a set)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    ops = set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def non_core_ops(saved_model_dir):
    """Op types of a SavedModel that are not core TensorFlow ops, or that call Python.

    Core means listed in `tf.raw_ops` (what every TensorFlow build, TF Serving
    included, registers). Function-call op types that name a function of the
    library are not ops and are skipped. An empty set means any TF Serving of the
    same TensorFlow version runs the model.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    functions = {
        f.signature.name for mg in proto.meta_graphs for f in mg.graph_def.library.function
    }
    core = set(dir(tf.raw_ops))
    python_ops = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
    return {
        op
        for op in saved_model_op_types(saved_model_dir)
        if op in python_ops or (op not in core and op not in functions)
    }
