"""Load any model colornet writes, and colourise image arrays with it.

`load_predictor(model)` takes a `.keras` file, a compact `.npz` weights file, a
training workdir (its latest checkpoint), a checkpoint prefix inside a workdir
(`workdir/checkpoints/ckpt-N`), a SavedModel written by `colornet export` (a version
directory or the base directory, whose largest version is taken) or a `.tflite`
file written by `colornet tflite`, and gives a `Predictor`: L at the network's
native size in, logits out. Every format gives logits, so every decoding and
temperature works with every format. None means the bundled model,
`BUNDLED_MODEL_PATH`.

`colorize(image)`: one image array -> uint8 RGB at the input's own resolution, the
way `colornet.inference` describes. S is 256 (`DEFAULT_SIZE`, the training
resolution) for Keras models and whatever a SavedModel or TFLite file was exported
with.
"""

import functools
import json
import os

import keras
import numpy as np
import tensorflow as tf

from colornet import bins, color, data, inference
from colornet import constants as c
from colornet import hints as hint_maps
from colornet.deploy import export, tflite
from colornet.models.colorizer import Colorizer
from colornet.models.loading import is_workdir, load_colorizer
from colornet.models.siggraph17 import Siggraph17, is_siggraph17_file, load_siggraph17
from colornet.utils.errors import ColornetError

BUNDLED_MODEL_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "bundled.npz")
# Its network without the hint inputs, int8 in LiteRT, with `<path>.json` saying how it
# was made (tools/video_int8.py): what video runs on CPUs without AMX.
BUNDLED_INT8_PATH = os.path.join(os.path.dirname(BUNDLED_MODEL_PATH), "bundled_int8.tflite")
DEFAULT_SIZE = c.TRAIN_RESIZE  # the network's native input side for Keras models


class Predictor:
    """Maps L at the network's native size to 313-way logits, whatever the model format.

    Attributes:
      size: the input side a model requires (SavedModel, TFLite), or None when any
        size works (Keras).
      source: what was loaded, for messages and reports.
    """

    size = None
    source = ""
    takes_hints = False
    # True for a model that gives ab itself (`ab(l_small, hints)`), not logits.
    predicts_ab = False

    def logits(self, l_small, hints=None):
        """`(1, S, S, 1)` float32 L in 0..100 (and, for a model that `takes_hints`,
        an optional `(1, S, S, 3)` hint map) -> `(1, S/4, S/4, 313)` float32 logits."""
        raise NotImplementedError

    def _refuse_hints(self, hints):
        if hints is not None and not self.takes_hints:
            raise ColornetError(
                f"{self.source}: this model takes no hints (a model trained with hints does; "
                "colornet.hints)"
            )


class KerasPredictor(Predictor):
    """A Keras `Colorizer` (or any Keras model from `l_raw` to logits)."""

    def __init__(self, model, source="keras model"):
        self.model = model
        self.source = source
        config = getattr(model, "model_config", None)
        self.takes_hints = bool(getattr(config, "hints", False))

        @tf.function(reduce_retracing=True, autograph=False)
        def logits(l_small):
            return tf.cast(model(l_small, training=False), tf.float32)

        @tf.function(reduce_retracing=True, autograph=False)
        def logits_with_hints(l_small, hints):
            return tf.cast(model([l_small, hints], training=False), tf.float32)

        self._logits = logits
        self._logits_with_hints = logits_with_hints

    def logits(self, l_small, hints=None):
        self._refuse_hints(hints)
        l_small = tf.convert_to_tensor(l_small, tf.float32)
        if hints is None:
            return self._logits(l_small)
        return self._logits_with_hints(l_small, tf.convert_to_tensor(hints, tf.float32))


class SavedModelPredictor(Predictor):
    """A SavedModel written by `colornet.deploy.export`, through its `probabilities` signature."""

    def __init__(self, path):
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

    def logits(self, l_small, hints=None):
        self._refuse_hints(hints)
        return self._signature(l_raw=tf.convert_to_tensor(l_small, tf.float32))["logits"]


class TFLitePredictor(Predictor):
    """A `.tflite` file written by `colornet.deploy.tflite.convert`, run with LiteRT."""

    def __init__(self, path, num_threads=None):
        self.source = path
        self.num_threads = num_threads  # None: LiteRT's default (one thread)
        try:
            self._runner = tflite.TFLiteColorizer(path, num_threads=num_threads)
        except ColornetError:
            raise
        except Exception as error:  # noqa: BLE001 (LiteRT raises several types on bad files)
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ColornetError(f"{path}: not a loadable colornet TFLite model ({first})") from None
        self.size = self._runner.image_size
        self.takes_hints = self._runner.takes_hints

    def logits(self, l_small, hints=None):
        """As `Predictor.logits`; a batch of several frames runs one frame at a time
        (the file's signature takes one)."""
        return tf.convert_to_tensor(np.stack(self.frame_logits(l_small, hints)))

    def frame_logits(self, l_small, hints=None):
        """As `logits`, as a list of each frame's `(S/4, S/4, 313)` float32 array (video
        hands them on one by one: no array of the whole batch)."""
        self._refuse_hints(hints)
        l_small = np.asarray(l_small, np.float32)
        hints = None if hints is None else np.asarray(hints, np.float32)
        return [
            self._runner(l_small[i : i + 1], None if hints is None else hints[i : i + 1])["logits"][0]
            for i in range(len(l_small))
        ]


class Siggraph17Predictor(Predictor):
    """The authors' SIGGRAPH 2017 network (`colornet.models.siggraph17`): ab by
    regression at the input size, so no decoding method or temperature applies, and
    no 313-bin logits (colour suggestions need them)."""

    takes_hints = True
    predicts_ab = True

    def __init__(self, model, source="SIGGRAPH 2017 model"):
        self.model = model
        self.source = source

        @tf.function(reduce_retracing=True, autograph=False)
        def ab(l_small, hints):
            return tf.cast(model([l_small, hints], training=False)["ab"], tf.float32)

        self._ab = ab

    def ab(self, l_small, hints=None):
        """`(1, S, S, 1)` L in 0..100 (and an optional `(1, S, S, 3)` hint map) ->
        `(1, S, S, 2)` float32 ab."""
        l_small = tf.convert_to_tensor(l_small, tf.float32)
        hints = hint_maps.no_hints(l_small) if hints is None else tf.convert_to_tensor(hints, tf.float32)
        return self._ab(l_small, hints)

    def logits(self, l_small, hints=None):
        raise ColornetError(
            f"{self.source}: the SIGGRAPH 2017 network predicts ab by regression, not colornet's "
            "313-bin distribution (decoding methods and colour suggestions need one)"
        )


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
    if path.endswith(".keras") and is_siggraph17_file(path):
        return Siggraph17Predictor(load_siggraph17(path), source=path)
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
      model: None (the bundled model), a path, a pretrained name (`colornet.weights.pretrained`;
        downloaded on first use), a `keras.Model` or a `Predictor`.
        Model files are loaded once and cached (until the file changes);
        directories are loaded on every call, so keep the returned `Predictor`.

    Raises:
      ColornetError: the bundled model is missing, the path does not exist or is not
        a model colornet can load.
    """
    if isinstance(model, Predictor):
        return model
    if isinstance(model, Siggraph17):
        return Siggraph17Predictor(model)
    if isinstance(model, keras.Model):
        return KerasPredictor(model)
    if model is None:
        if not os.path.isfile(BUNDLED_MODEL_PATH):
            raise ColornetError(
                f"the bundled model {BUNDLED_MODEL_PATH} is missing: reinstall colornet, "
                "or pass a model (--model PATH: a .keras file, a "
                "training workdir, a SavedModel directory or a .tflite file)"
            )
        model = BUNDLED_MODEL_PATH
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"model must be None, a path, a keras.Model or a Predictor, got {type(model).__name__}"
        )
    if isinstance(model, str) and not os.path.exists(model):
        from colornet.weights import pretrained  # a released model's name: fetched, then its .keras file

        if pretrained.is_pretrained_name(model):
            # Through `pretrained.load`: a cached file that does not load is fetched again.
            return pretrained.load(model, loader=_load_file)
        model = pretrained.model_path(model)
    path = os.path.abspath(os.fspath(model))
    if not os.path.isfile(path):
        return _load_path(path)  # directories change without their mtime changing
    return _load_file(path)


def _load_file(path):
    return _cached_load(path, os.stat(path).st_mtime_ns)


def model_file(value):
    """What `--model VALUE` names on the command line: for a pretrained name, its
    cached `.keras` file, loaded once here so that a cached file that does not load
    is fetched again, as `load_predictor(name)` does (the load is cached, so a
    command that loads the file again by its path reuses it); anything else as
    `pretrained.model_path` says.
    """
    from colornet.weights import pretrained

    if pretrained.is_pretrained_name(value):
        return pretrained.load(value, loader=_load_file).source
    return pretrained.model_path(value)


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



def colorize(
    image, model=None, temperature=c.ANNEALED_MEAN_TEMPERATURE, method="annealed-mean", size=None, hints=None
):
    """Colourises an image array at its own resolution (see the module docstring).

    Args:
      image: `(H, W)`, `(H, W, 1)`, `(H, W, 3)` or `(H, W, 4)`; uint8, uint16 or float
        in [0, 1]. Colour is ignored: only the image's L is used.
      model: None for the bundled model, a path (`.keras`, workdir, checkpoint,
        SavedModel, `.tflite`), a `keras.Model` or a `Predictor`.
      temperature: annealed-mean temperature T > 0 (paper: 0.38).
      method: "annealed-mean", "mean" or "mode".
      size: side the network runs at; None for the model's (256 for Keras models).
      hints: colours to impose at points, for a model that takes hints: a list of
        `{"x": 120, "y": 45, "color": "#3a7d2c"}` (`colornet.hints.parse_hints`; x, y
        in the image's own pixels from its top-left corner, optional "size" in pixels,
        "ab": [a, b] instead of "color"). None or [] for none.

    Returns:
      `(H, W, 3)` uint8 NumPy array.

    For many images with one model, pass `model=load_predictor(...)` once: a model
    file given by path is cached, a `keras.Model` is wrapped (and traced) per call.
    """
    temperature = inference.validate_decoding(method, temperature)
    rgb = data.as_rgb(image)
    points = hint_maps.parse_hints(hints, rgb.shape[:2]) if hints is not None else None
    predictor = load_predictor(model)
    size = resolve_size(predictor, size)
    return inference.colorize_rgb(predictor, rgb, size, method, temperature, points).numpy()


def suggest_colors(image, x, y, k=8, model=None, hints=None, size=None):
    """The k colours the network finds most likely at one point of an image, for a
    person to pick a hint from (the 2017 paper's colour suggestions, Sec. 3.4).

    The predicted distribution over the 313 ab bins at the point (bilinear between the
    four nearest output pixels) is gathered into clusters: the most likely bin not yet
    taken, with every remaining bin within `colornet.hints.SUGGESTION_RADIUS` ab units of it, becomes
    one suggestion whose ab is their probability-weighted mean. Suggestions come most
    likely first.

    Args:
      image: as for `colorize`.
      x, y: the point, in the image's own pixels (x right, y down, from the top-left).
      k: how many suggestions, >= 1.
      model, size: as for `colorize`.
      hints: hints already placed (`colorize`'s), for a model that takes them.

    Returns:
      a list of up to k dicts: `"ab"` [a, b], `"color"` "#rrggbb" (that ab at the
      point's own lightness), `"probability"` (the cluster's share, 0..1).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    rgb = data.as_rgb(image)
    height, width = rgb.shape[:2]
    hint_maps.parse_hints([{"x": x, "y": y, "ab": [0, 0]}], (height, width))
    points = hint_maps.parse_hints(hints, (height, width)) if hints is not None else None
    predictor = load_predictor(model)
    size = resolve_size(predictor, size)
    l_raw = inference.checked_l(color.rgb_to_lab(rgb)[..., :1])[None]
    l_small, hint_small = inference.small_inputs(l_raw, size, points)
    logits = predictor.logits(l_small) if hint_small is None else predictor.logits(l_small, hint_small)
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))[0]
    here = hint_maps.distribution_at(probabilities, x, y, (height, width), size, c.OUTPUT_STRIDE)
    lightness = float(l_raw[0, min(int(y), height - 1), min(int(x), width - 1), 0])
    return _suggestions(here, lightness, k)


def _suggestions(probabilities, lightness, k):
    ab, weight = hint_maps.suggest_from_distribution(probabilities, bins.ab_bins(), k)
    keep = weight.numpy() > 1e-6
    ab, weight = ab.numpy()[keep], weight.numpy()[keep]
    lab = np.concatenate([np.full([len(ab), 1], lightness, np.float32), ab], -1)
    rgb = inference.to_uint8(color.lab_to_rgb(lab)).numpy()
    return [
        {
            "ab": [round(float(a), 2), round(float(b), 2)],
            "color": "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb[i])),
            "probability": round(float(weight[i]), 4),
        }
        for i, (a, b) in enumerate(ab)
    ]
