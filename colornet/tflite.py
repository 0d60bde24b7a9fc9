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
  magnifies: with a `half` model trained 900 steps, on real photos
  (`benchmarks/deploy.py --photos`), the mean ab error against float32 was 4.2
  with the head in int8 and 0.6 with the head float as well. The float ops
  are chosen by name: those from the op that computes the `logits` output on, in
  the float model's execution order (`tf.lite.experimental.QuantizationDebugger`
  denylists them). Known limit: the bundled model (2,000 steps) still errs by
  about 4 ab units in "int8", because its batch norms, which have no scale or
  shift, multiply some channels by large factors that one int8 scale per tensor
  cannot hold; "dynamic" errs by about 1 on it (README, Benchmarks).

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

from colornet import color, data, files
from colornet import constants as c
from colornet.errors import ColornetError
from colornet.layers import decode

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
SIGNATURE = "serving_default"
# The decoding's ops (softmax(logits / T) . centres): kept in float32 under "int8".
# The network itself has neither op type.
_FLOAT_DECODE_OPS = ("SOFTMAX", "FULLY_CONNECTED", "BATCH_MATMUL")
DEFAULT_CALIBRATION_IMAGES = 100


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
    """

    path: str
    quantize: str
    image_size: int
    temperature: float
    size_bytes: int
    ops: tuple
    calibration_images: int


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
    l_raw = color.rgb_to_lab(rgb_uint8)[..., :1]
    return tf.image.resize(l_raw[None], (image_size, image_size), method="bilinear", antialias=True)


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
    def serve(l_raw):
        logits = tf.cast(model(l_raw, training=False), tf.float32)
        return {"ab": decode.annealed_mean(logits, temperature), "logits": logits}

    archive = keras.export.ExportArchive()  # not `track(model)`: it saves weights twice
    archive.add_endpoint(
        SIGNATURE,
        serve,
        input_signature=[tf.TensorSpec([1, image_size, image_size, 1], tf.float32, name="l_raw")],
    )
    archive.write_out(directory, verbose=False)


def _converter(saved_model_dir, quantize, calibration):
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
                yield {"l_raw": l_raw}

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


def _convert_int8(converter, float_nodes):
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
        return debugger.get_nondebug_quantized_model()


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
    image_size=256,
    temperature=c.ANNEALED_MEAN_TEMPERATURE,
    calibration_images=DEFAULT_CALIBRATION_IMAGES,
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
      image_size: S, the side of the square input.
      temperature: annealed-mean temperature of the `ab` output (> 0).
      calibration_images: at most this many images are used for calibration.

    Returns:
      a `TFLiteResult`.

    Raises:
      ColornetError: `out_path` cannot be written, a model that would need Select TF
        ops, "int8" without representative images, or a model that cannot be loaded.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < c.OUTPUT_STRIDE:
        raise ValueError(f"image_size must be an int >= {c.OUTPUT_STRIDE}, got {image_size!r}")
    temperature = decode.validate_temperature(temperature)
    if quantize == "int8" and representative is None:
        raise ColornetError("int8 quantisation needs representative images (--representative DIR)")
    from colornet.export import with_precision

    out_path = os.fspath(out_path)
    if os.path.isdir(out_path):
        raise ColornetError(f"cannot write {out_path}: it is a directory")
    files.check_output_location(out_path)
    model = with_precision(_as_model(model_or_path), "float32")
    calibration = (
        representative_l(representative, image_size, calibration_images) if quantize == "int8" else []
    )
    workdir = tempfile.mkdtemp(prefix="colornet-tflite-")
    try:
        saved_model_dir = os.path.join(workdir, "saved_model")
        _write_saved_model(model, saved_model_dir, image_size, temperature)
        converter = _converter(saved_model_dir, quantize, calibration)
        try:
            if quantize == "int8":
                float_nodes = _float_tail(_converter(saved_model_dir, "none", []).convert())
                content = _convert_int8(converter, float_nodes)
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
    )


def _interpreter(without_delegates=False, **kwargs):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise ColornetError(
            "running TFLite models needs ai-edge-litert (pip install 'colornet[tflite]')"
        ) from None
    if without_delegates:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(**kwargs)


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
        shape = self._runner.get_input_details()["l_raw"]["shape"]
        self.image_size = int(shape[1])

    def __call__(self, l_raw):
        """`(1, S, S, 1)` float32 L -> `{"ab": (1, S/4, S/4, 2), "logits": ...}`.

        L is checked as `colornet.inference.checked_l` does it, before the
        interpreter runs: NaN or Inf is refused, values outside 0..100 are clipped.

        Raises:
          ValueError: a shape other than `(1, S, S, 1)`, or NaN or Inf in `l_raw`.
        """
        l_raw = np.asarray(l_raw, dtype=np.float32)
        expected = (1, self.image_size, self.image_size, 1)
        if l_raw.shape != expected:
            raise ValueError(f"l_raw must have shape {expected}, got {l_raw.shape}")
        if not np.isfinite(l_raw).all():
            raise ValueError("L contains NaN or Inf")
        return self._runner(l_raw=np.clip(l_raw, 0.0, 100.0))

    def colorize(self, rgb_uint8):
        """`(H, W, 3)` uint8 RGB -> `(H, W, 3)` uint8 RGB with predicted colours."""
        rgb_uint8 = tf.convert_to_tensor(rgb_uint8, tf.uint8)
        ab_small = self(l_for_network(rgb_uint8, self.image_size).numpy())["ab"]
        l_raw = color.rgb_to_lab(rgb_uint8)[..., :1]
        from colornet.inference import join_l_ab

        rgb = join_l_ab(l_raw[None], ab_small)[0]
        return tf.cast(tf.round(rgb * 255.0), tf.uint8).numpy()
