"""TFLite (LiteRT) conversion and a small runtime helper.

`convert(model, "colornet.tflite", quantize="dynamic")` writes a model with one
signature, `serving_default`: input `l_raw`, float32 `(1, S, S, 1)` (CIE L in
0..100, S = `image_size`, 256 by default), outputs `ab`, float32 `(1, S/4, S/4, 2)`
(annealed mean at the temperature chosen at conversion) and `logits`, float32
`(1, S/4, S/4, 313)` for custom decoding. An app resizes the image's L to S x S,
runs the model, upsamples `ab` bilinearly to the image's size and joins it with the
full-resolution L (`serving/tflite_colorize.py` does exactly that with NumPy and
Pillow).

Quantisation (`quantize`):

* "none": float32 weights and arithmetic.
* "float16": float16 weights (half the size), float32 arithmetic.
* "dynamic": int8 weights, activations quantised on the fly (dynamic range);
  XNNPACK runs the convolutions in int8. No calibration data.
* "int8": int8 weights and activations in the body, calibrated on a
  representative set of images (`representative`); the 1 x 1 convolution that
  computes the logits and the decoding, softmax(logits / T) . centres, stay
  float32, as do the inputs and outputs. A trained model's logits span hundreds of
  units, so an int8 logit step is several units, which the division by T = 0.38
  magnifies. The float ops are chosen by name: those from the op that computes the
  `logits` output on, in the float model's execution order
  (`tf.lite.experimental.QuantizationDebugger` denylists them).
  Activation ranges: a trained network's activations have long tails, and ranges
  from their minimum and maximum (the converter's) stretch every int8 step, the
  more so the more calibration images. `calibration_percentile=p` cuts each range
  to the (100 - p)th..pth percentile of its calibration values; the default,
  "auto", quantises with p = 99.9, 99.99 and 100 (the converter's ranges) and keeps
  the model whose `ab` is nearest the float model's on the calibration images
  (a network with random weights has no long tails, so 100 may win there).

Every variant is converted from the model with its batch norms folded into the
convolutions before them (`colornet.models.folding`): fewer ops, and for "int8" the
difference between a usable model and not, as the release's batch norms (no scale)
multiply channels by very different factors that one int8 scale per tensor cannot
hold. `benchmarks/deploy.py --photos` measures the mean ab error against float32 of
a trained model on real photos, with the converter's ranges
(`--calibration-percentile 100`) or a percentile.

Only TFLite builtin ops are allowed (`TFLITE_BUILTINS`, plus `TFLITE_BUILTINS_INT8`
for "int8"): a model that would need Select TF ops (Flex) fails to convert with a
`ColornetError` instead of producing a file that needs the TF runtime.

Route: the model and the float decoding are exported to a SavedModel with
`keras.export.ExportArchive` and converted with `from_saved_model`, which freezes the
variables. (`from_concrete_functions` on a Keras 3 model keeps variable ops and gave
NaN.)

The runtime side uses `ai_edge_litert` (the `tflite` extra); `tf.lite.Interpreter`
is deprecated.

`TFLiteColorizer` checks L before running the model, as the library and the
SavedModel signatures do (`colornet.inference.checked_l`): NaN or Inf is a
`ValueError`, L outside 0..100 is clipped. The .tflite graph itself takes L as it
comes: TFLite has no builtin op that fails on NaN, and a clip in the graph (MINIMUM
and RELU) would hide NaN on the reference kernels (a NaN came out of it as 100
there, and as NaN under XNNPACK), so the graph has none. An app that feeds the
interpreter itself should check and clip L likewise; L computed from 8-bit RGB (as
in `serving/tflite_colorize.py`) is always finite and in range.
"""

import dataclasses
import os
import shutil
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

from colornet import color, data, inference
from colornet import constants as c
from colornet.deploy.defaults import (
    AUTO_PERCENTILES,
    DEFAULT_CALIBRATION_IMAGES,
    DEFAULT_CALIBRATION_PERCENTILE,
    QUANTIZATIONS,
)
from colornet.hints import HINT_CHANNELS
from colornet.layers import decode
from colornet.utils import console, files
from colornet.utils.errors import ColornetError, renamed

SIGNATURE = "serving_default"
# The decoding's ops (softmax(logits / T) . centres): kept in float32 under "int8".
# The network itself has neither op type.
_FLOAT_DECODE_OPS = ("SOFTMAX", "FULLY_CONNECTED", "BATCH_MATMUL")
_AUTO_SCORING_IMAGES = 16
_HISTOGRAM_BINS = 4096


@dataclasses.dataclass(frozen=True)
class TFLiteResult:
    """What `convert` wrote.

    Attributes:
      path: the .tflite file.
      quantize: the quantisation.
      image_size: S of the `(1, S, S, 1)` input.
      temperature: the annealed-mean temperature of the `ab` output.
      size_bytes: file size.
      ops: the builtin op names in the model, sorted.
      calibration_images: images used for "int8" calibration (0 otherwise).
      calibration_percentile: the percentile that set the int8 activation ranges,
        the one chosen if "auto" was asked for (None unless "int8").
    """

    path: str
    quantize: str
    image_size: int
    temperature: float
    size_bytes: int
    ops: tuple
    calibration_images: int
    calibration_percentile: float = None


def _as_model(model_or_path):
    if isinstance(model_or_path, keras.Model):
        return model_or_path
    from colornet.models.loading import load_colorizer

    return load_colorizer(os.fspath(model_or_path))


def l_for_network(rgb_uint8, image_size):
    """`(H, W, 3)` uint8 RGB -> `(1, S, S, 1)` float32 L, as the exported models do it.

    L is computed at full resolution and resized (bilinear, antialiased; aspect ratio
    not kept), the same steps as the SavedModel signatures.
    """
    return inference.network_input(color.rgb_to_lab(rgb_uint8)[None, ..., :1], image_size)


def representative_l(source, image_size, limit=DEFAULT_CALIBRATION_IMAGES):
    """Calibration inputs from image files: a list of `(1, S, S, 1)` float32 L arrays.

    Args:
      source: what `colornet.data.list_image_files` accepts (folder, glob, .txt list
        or a list of these); unreadable files are skipped.
      image_size: S.
      limit: use at most this many images (the first ones in sorted order).

    Raises:
      ColornetError: no image could be read.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    images, _ = data.decoded_images(source, resize=image_size)
    inputs = [
        l_for_network(image, image_size).numpy()
        for image in images.take(limit).as_numpy_iterator()
    ]
    if not inputs:
        raise ColornetError(f"no readable image in {source} for int8 calibration")
    return inputs


def _write_saved_model(model, directory, image_size, temperature):
    l_spec = tf.TensorSpec([1, image_size, image_size, 1], tf.float32, name="l_raw")
    if len(model.inputs) > 1:
        # A hint model: a second input, the hint map at the network's size.
        def serve(l_raw, hints):
            logits = tf.cast(model([l_raw, hints], training=False), tf.float32)
            return {"ab": decode.annealed_mean(logits, temperature), "logits": logits}

        signature = [l_spec, tf.TensorSpec([1, image_size, image_size, HINT_CHANNELS], tf.float32, name="hints")]
    else:

        def serve(l_raw):
            logits = tf.cast(model(l_raw, training=False), tf.float32)
            return {"ab": decode.annealed_mean(logits, temperature), "logits": logits}

        signature = [l_spec]
    archive = keras.export.ExportArchive()  # not `track(model)`: it saves weights twice
    archive.add_endpoint(SIGNATURE, serve, input_signature=signature)
    archive.write_out(directory, verbose=False)


def _calibration_hints(l_raw):
    """Hint maps for int8 calibration: a few fixed hints, so that the hint path's
    activation ranges are measured too."""
    size = l_raw.shape[1]
    grid = np.zeros([1, size, size, HINT_CHANNELS], np.float32)
    step = max(size // 4, 1)
    grid[0, ::step, ::step] = (40.0, -40.0, 1.0)
    return grid


def _converter(saved_model_dir, quantize, calibration, hints=False):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "none":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":

        def dataset():
            for l_raw in calibration:
                yield {"l_raw": l_raw, **({"hints": _calibration_hints(l_raw)} if hints else {})}

        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    return converter


def _float_tail(float_content):
    """Names of the tensors computed from the logits on, the logits included.

    Ops are stored in execution order, so these are the outputs of the op that
    writes the signature's `logits` output and of every op after it: the head and
    the decoding, which `_convert_int8` keeps in float32.
    """
    interpreter = _interpreter(model_content=float_content, without_delegates=True)
    logits = interpreter.get_signature_runner(SIGNATURE).get_output_details()["logits"]["index"]
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    start = next(i for i, op in enumerate(ops) if logits in op["outputs"])
    return [names[t] for op in ops[start:] for t in op["outputs"]]


def _activation_histograms(calibrated, float_content, calibration):
    """Each activation's values over the calibration inputs, as a histogram.

    Returns `{tensor name: (lo, hi, counts)}`: `_HISTOGRAM_BINS` equal bins over the
    converter's range [lo, hi] of that tensor in `calibrated` (a calibrated TFLite
    model), filled by running the float model (`float_content`) on `calibration`
    with every tensor kept. The model's input is left out: it keeps its full range.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(calibrated).subgraphs[0]
    ranges = {}
    for i, tensor in enumerate(graph.tensors):
        q = tensor.quantization
        if i in graph.inputs or q is None or q.min is None or len(q.min) != 1 or len(q.max) != 1:
            continue
        if q.max[0] > q.min[0]:
            ranges[tensor.name.decode()] = (float(q.min[0]), float(q.max[0]))
    interpreter = _interpreter(
        model_content=float_content, without_delegates=True, experimental_preserve_all_tensors=True
    )
    runner = interpreter.get_signature_runner(SIGNATURE)
    tracked = {
        t["index"]: t["name"]
        for t in interpreter.get_tensor_details()
        if t["name"] in ranges and t["dtype"] == np.float32
    }
    counts = {name: np.zeros(_HISTOGRAM_BINS, np.int64) for name in tracked.values()}
    for l_raw in calibration:
        runner(l_raw=l_raw)
        for index, name in tracked.items():
            lo, hi = ranges[name]
            bins = (interpreter.get_tensor(index).ravel() - lo) * (_HISTOGRAM_BINS / (hi - lo))
            bins = np.clip(bins, 0, _HISTOGRAM_BINS - 1).astype(np.int64)
            counts[name] += np.bincount(bins, minlength=_HISTOGRAM_BINS)
    return {name: (*ranges[name], count) for name, count in counts.items()}


def _clipped_range(count, lo, hi, percentile):
    """The (100 - p)th and pth percentiles of a histogram `count` of equal bins over
    [lo, hi], widened to hold 0 (as int8 ranges must)."""
    edges = np.linspace(lo, hi, len(count) + 1)
    cumulative = np.cumsum(count) / count.sum()
    tail = 1.0 - percentile / 100.0
    low = edges[np.searchsorted(cumulative, tail)]
    high = edges[min(np.searchsorted(cumulative, 1.0 - tail) + 1, len(count))]
    return float(min(low, 0.0)), float(max(high, 0.0))


def _with_percentile_ranges(calibrated, histograms, percentile):
    """`calibrated` with each histogrammed activation's range cut to percentiles."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(calibrated)
    by_name = {t.name.decode(): t for t in model.subgraphs[0].tensors}
    for name, (lo, hi, count) in histograms.items():
        low, high = _clipped_range(count, lo, hi, percentile)
        by_name[name].quantization.min, by_name[name].quantization.max = [low], [high]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _ab_outputs(content, inputs):
    """A model's `ab` output for each of `inputs`."""
    runner = _interpreter(model_content=content).get_signature_runner(SIGNATURE)
    return [runner(l_raw=x)["ab"] for x in inputs]


def _ab_error(content, inputs, reference):
    """Mean |ab| difference between a model's `ab` on `inputs` and `reference`."""
    return float(np.mean([np.abs(a - b).mean() for a, b in zip(_ab_outputs(content, inputs), reference)]))


def _convert_int8(converter, float_content, float_nodes, calibration, percentile):
    """The int8 model and the percentile its activation ranges were cut at.

    The converter calibrates once; each candidate percentile (`AUTO_PERCENTILES` for
    "auto") then sets the activation ranges (`_with_percentile_ranges`; 100 keeps the
    converter's minimum and maximum) and quantises. With several candidates, the one
    whose `ab` output is nearest the float model's on the first
    `_AUTO_SCORING_IMAGES` calibration images wins.
    """
    with warnings.catch_warnings():
        # The debugger runs calibration with tf.lite.Interpreter, which warns that it
        # is deprecated; nothing the caller can change.
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=converter.representative_dataset,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(
                denylisted_ops=list(_FLOAT_DECODE_OPS), denylisted_nodes=list(float_nodes)
            ),
        )
        calibrated = debugger.calibrated_model
        candidates = AUTO_PERCENTILES if percentile == "auto" else (float(percentile),)
        histograms = None
        if min(candidates) < 100:
            histograms = _activation_histograms(calibrated, float_content, calibration)
        scoring = calibration[:_AUTO_SCORING_IMAGES]
        reference = _ab_outputs(float_content, scoring) if len(candidates) > 1 else None
        results = []
        for candidate in candidates:
            # `calibrated_model` is what the debugger quantises from.
            debugger.calibrated_model = (
                calibrated if candidate == 100 else _with_percentile_ranges(calibrated, histograms, candidate)
            )
            content = debugger.get_nondebug_quantized_model()
            if len(candidates) == 1:
                return content, candidate
            error = _ab_error(content, scoring, reference)
            results.append((error, candidate, content))
        _, candidate, content = min(results, key=lambda r: r[0])
        return content, candidate


def op_names(model_content):
    """The op names of a TFLite flatbuffer (bytes), sorted; needs ai_edge_litert."""
    # Without the default XNNPACK delegate, which would replace ops by "DELEGATE".
    interpreter = _interpreter(model_content=model_content, without_delegates=True)
    return tuple(sorted({op["op_name"] for op in interpreter._get_ops_details()}))


def _check_builtin(ops):
    foreign = [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")]
    if foreign:
        raise ColornetError(f"the TFLite model contains non-builtin ops {foreign}")


def convert(
    model_or_path,
    out_path,
    quantize="none",
    representative=None,
    *,
    size=None,
    temperature=c.ANNEALED_MEAN_TEMPERATURE,
    calibration_images=DEFAULT_CALIBRATION_IMAGES,
    calibration_percentile=DEFAULT_CALIBRATION_PERCENTILE,
    image_size=None,
):
    """Converts a colorizer to a TFLite model (see the module docstring).

    Args:
      model_or_path: a Keras `Colorizer`, a `.keras` file or a training workdir.
      out_path: the .tflite file to write (written to a temporary name, then
        renamed); missing parent directories are created. A location that cannot be
        written is refused before the model is loaded.
      quantize: one of `QUANTIZATIONS`.
      representative: image source for "int8" calibration (folder, glob, .txt list);
        required for "int8", unused otherwise.
      size: S, the side of the square input (default 256).
      temperature: annealed-mean temperature of the `ab` output (> 0).
      calibration_images: at most this many images are used for calibration.
      calibration_percentile: "int8" activation ranges span this percentile of the
        calibration values (and the mirror one below), in (50, 100]; 100 for the
        converter's own minimum and maximum; "auto" tries each of
        `AUTO_PERCENTILES` and keeps the model whose `ab` output is nearest the float
        model's on the calibration images.
      image_size: the old name of `size` (deprecated).

    Returns:
      a `TFLiteResult`.

    Raises:
      ColornetError: `out_path` cannot be written, a model that would need Select TF
        ops, "int8" without representative images, or a model that cannot be loaded.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    image_size = renamed("convert", "image_size", "size", image_size, size)
    image_size = 256 if image_size is None else image_size
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < c.OUTPUT_STRIDE:
        raise ValueError(f"size must be an int >= {c.OUTPUT_STRIDE}, got {image_size!r}")
    temperature = decode.validate_temperature(temperature)
    percentile_ok = calibration_percentile == "auto" or (
        isinstance(calibration_percentile, (int, float))
        and not isinstance(calibration_percentile, bool)
        and 50 < calibration_percentile <= 100
    )
    if not percentile_ok:
        raise ValueError(f"calibration_percentile must be 'auto' or in (50, 100], got {calibration_percentile!r}")
    if quantize == "int8" and representative is None:
        raise ColornetError("int8 quantisation needs representative images (--representative DIR)")
    from colornet.deploy.export import with_precision
    from colornet.models.folding import fold_batch_norms

    out_path = os.fspath(out_path)
    if os.path.isdir(out_path):
        raise ColornetError(f"cannot write {out_path}: it is a directory")
    files.check_output_location(out_path)
    model = fold_batch_norms(with_precision(_as_model(model_or_path), "float32"))
    calibration = (
        representative_l(representative, image_size, calibration_images) if quantize == "int8" else []
    )
    chosen_percentile = None
    workdir = tempfile.mkdtemp(prefix="colornet-tflite-")
    try:
        saved_model_dir = os.path.join(workdir, "saved_model")
        _write_saved_model(model, saved_model_dir, image_size, temperature)
        hints = len(model.inputs) > 1
        converter = _converter(saved_model_dir, quantize, calibration, hints)
        try:
            if quantize == "int8":
                float_content = _converter(saved_model_dir, "none", [], hints).convert()
                content, chosen_percentile = _convert_int8(
                    converter,
                    float_content,
                    _float_tail(float_content),
                    calibration,
                    calibration_percentile,
                )
            else:
                content = converter.convert()
        # The converter raises its ConverterError (not public API), ValueError and others.
        except Exception as error:  # noqa: BLE001
            raise ColornetError(
                "TFLite conversion with builtin ops only failed (a model that needs Select "
                f"TF ops is not supported): {str(error).strip().splitlines()[0]}"
            ) from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ops = op_names(content)
    _check_builtin(ops)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with files.atomic_path(out_path, ".tflite") as tmp, open(tmp, "wb") as f:
        f.write(content)
    return TFLiteResult(
        path=os.path.abspath(out_path),
        quantize=quantize,
        image_size=image_size,
        temperature=temperature,
        size_bytes=len(content),
        ops=ops,
        calibration_images=len(calibration),
        calibration_percentile=chosen_percentile,
    )


def _interpreter(without_delegates=False, **kwargs):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise ColornetError(
            "running TFLite models needs ai-edge-litert (pip install 'colornet-keras[tflite]')"
        ) from None
    if without_delegates:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    # Allocating applies the XNNPACK delegate, which announces itself on stderr at INFO.
    with console.quiet_native_info():
        interpreter = Interpreter(**kwargs)
        interpreter.allocate_tensors()
    return interpreter


class TFLiteColorizer:
    """Runs a model written by `convert` with the LiteRT interpreter.

    Args:
      path: the .tflite file.
      num_threads: interpreter threads; None for LiteRT's default.

    Attributes:
      image_size: S of the `(1, S, S, 1)` input.
    """

    def __init__(self, path, num_threads=None):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise ColornetError(f"{self.path}: no such file")
        self._interpreter = _interpreter(model_path=self.path, num_threads=num_threads)
        self._runner = self._interpreter.get_signature_runner(SIGNATURE)
        inputs = self._runner.get_input_details()
        shape = inputs["l_raw"]["shape"]
        self.image_size = int(shape[1])
        self.takes_hints = "hints" in inputs

    def __call__(self, l_raw, hints=None):
        """`(1, S, S, 1)` float32 L (and, for a hint model, an optional `(1, S, S, 3)`
        hint map; zeros when None) -> `{"ab": (1, S/4, S/4, 2), "logits": ...}`.

        L is checked as `colornet.inference.checked_l` does it, before the
        interpreter runs: NaN or Inf is refused, values outside 0..100 are clipped.

        Raises:
          ValueError: a shape other than `(1, S, S, 1)`, or NaN or Inf in `l_raw`;
            hints for a model that takes none.
        """
        l_raw = np.asarray(l_raw, dtype=np.float32)
        expected = (1, self.image_size, self.image_size, 1)
        if l_raw.shape != expected:
            raise ValueError(f"l_raw must have shape {expected}, got {l_raw.shape}")
        if not np.isfinite(l_raw).all():
            raise ValueError("L contains NaN or Inf")
        if not self.takes_hints:
            if hints is not None:
                raise ValueError(f"{self.path} takes no hints")
            return self._runner(l_raw=np.clip(l_raw, 0.0, 100.0))
        hints = np.zeros(expected[:3] + (HINT_CHANNELS,), np.float32) if hints is None else hints
        hints = np.asarray(hints, np.float32)
        if hints.shape != expected[:3] + (HINT_CHANNELS,):
            raise ValueError(f"hints must have shape {expected[:3] + (HINT_CHANNELS,)}, got {hints.shape}")
        return self._runner(l_raw=np.clip(l_raw, 0.0, 100.0), hints=hints)

    def colorize(self, rgb_uint8):
        """`(H, W, 3)` uint8 RGB -> `(H, W, 3)` uint8 RGB with predicted colours."""
        l_raw = color.rgb_to_lab(tf.convert_to_tensor(rgb_uint8, tf.uint8))[None, ..., :1]
        ab_small = self(inference.network_input(l_raw, self.image_size).numpy())["ab"]
        rgb = inference.join_l_ab(l_raw, ab_small)[0]
        return tf.cast(tf.round(rgb * 255.0), tf.uint8).numpy()
