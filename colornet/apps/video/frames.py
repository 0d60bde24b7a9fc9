"""Colourising a sequence of frames: the network on batches of frames, its
distributions smoothed over time (`colornet.apps.video.smoothing`), then rendered.

Each frame is coloured as an image is (`colornet.inference`: the network sees L at
S x S and predicts a 313-way distribution at S/4 x S/4; ab is decoded, upsampled and
joined with the frame's own full-resolution L), except that the distributions are
smoothed over time first.
"""

import numpy as np
import tensorflow as tf

from colornet import color, data, inference
from colornet import constants as c
from colornet.apps.video.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MOTION,
    DEFAULT_SCENE_THRESHOLD,
    DEFAULT_TEMPORAL_SMOOTHING,
    PRECISIONS,
)
from colornet.apps.video.smoothing import TemporalSmoother
from colornet.deploy import predictors


def resolve_precision(precision):
    """"auto" -> "bfloat16" where the CPU has it natively, else "float32"."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        from colornet.deploy import export

        return "bfloat16" if export.cpu_supports_bfloat16() else "float32"
    return precision


def load_video_predictor(model=None, precision="auto"):
    """`predictors.load_predictor(model)`, its network rebuilt in bfloat16 when
    `precision` says so and the model is a Keras `Colorizer` (other formats run as
    they were exported), without the hint inputs of a hint model (frames take no
    hints). Build it once for many videos."""
    from colornet.models.colorizer import Colorizer, without_hints

    predictor = predictors.load_predictor(model)
    wrapped = getattr(predictor, "model", None)
    if not isinstance(wrapped, Colorizer):
        return predictor
    # Frames have no hints: a hint model's network without its hint inputs is the
    # same network for an empty hint map, and cheaper.
    network = without_hints(wrapped)
    if resolve_precision(precision) == "bfloat16" and network.dtype_policy.name != "mixed_bfloat16":
        from colornet.deploy import export

        network = export.with_precision(network, "bfloat16")
    return predictor if network is wrapped else predictors.KerasPredictor(network, source=predictor.source)


# The colour conversions at full resolution are chains of elementwise ops: XLA fuses
# them (and skips X and Z where only L is used): a quarter of the CPU time without XLA
# on 854 x 480 frames (L: 93 -> 26 ms a frame, docs/results/video_stages.json). Batches
# keep one shape (`_pad`), so each video compiles once. `as_rgb` has refused NaN
# already. The bilinear upsampling stays out of XLA: XLA's version differed from TF's
# by up to 90 ab units on 16 -> 48 pixels.
@tf.function(jit_compile=True, autograph=False)
def _frame_l(rgb):
    return tf.clip_by_value(color.rgb_to_lab(rgb)[..., :1], 0.0, 100.0)


@tf.function(jit_compile=True, autograph=False)
def _lab_to_rgb8(l_raw, ab):
    return inference.to_uint8(color.lab_to_rgb(tf.concat([l_raw, ab], axis=-1)))


@tf.function(autograph=False)
def _render(l_raw, logits, method, temperature):
    ab_small = inference.decode_logits(logits, method, temperature)
    return _lab_to_rgb8(l_raw, inference.upsample_ab(ab_small, tf.shape(l_raw)[1:3]))


def _pad(rgb, batch_size):
    """A short last batch filled up with copies of its last frame."""
    missing = batch_size - len(rgb)
    return np.concatenate([rgb, np.repeat(rgb[-1:], missing, axis=0)]) if missing > 0 else rgb


def _batches(frames, batch_size):
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _stack(batch, shape):
    arrays = [data.as_rgb(frame) for frame in batch]
    shape = shape or arrays[0].shape
    for array in arrays:
        if array.shape != shape:
            raise ValueError(f"every frame must have the first frame's size {shape[:2]}, got {array.shape[:2]}")
    if any(a.dtype != np.uint8 for a in arrays):
        arrays = [a if a.dtype != np.uint8 else a.astype(np.float32) / 255.0 for a in arrays]
    return np.stack(arrays), shape


def colorize_frames(
    frames,
    model=None,
    *,
    temporal_smoothing=DEFAULT_TEMPORAL_SMOOTHING,
    scene_threshold=DEFAULT_SCENE_THRESHOLD,
    motion=DEFAULT_MOTION,
    temperature=c.ANNEALED_MEAN_TEMPERATURE,
    method="annealed-mean",
    size=None,
    batch_size=DEFAULT_BATCH_SIZE,
    precision="auto",
    smoother=None,
):
    """Colourises a sequence of frames, smoothing colour over time; a generator.

    Args:
      frames: an iterable of same-size frames, each as `colornet.colorize` takes an
        image (`(H, W)`, `(H, W, 1)`, `(H, W, 3)` or `(H, W, 4)`; uint8, uint16 or
        float in [0, 1]). Only their L is used. Read lazily, `batch_size` at a time.
      model: None (the bundled model), a path, a `keras.Model` or a `Predictor`
        (`load_video_predictor` builds one to reuse).
      temporal_smoothing: 0 colours each frame on its own; up to < 1, the weight of
        the running average (see `TemporalSmoother`).
      scene_threshold, motion: see `TemporalSmoother`.
      temperature, method, size: as for `colornet.colorize`.
      batch_size: frames per network call.
      precision: "auto" (bfloat16 where the CPU has it), "float32" or "bfloat16".
      smoother: a `TemporalSmoother` to use instead (its `cuts` can be read after).

    Yields:
      `(H, W, 3)` uint8 RGB frames, one per input frame, in order.
    """
    temperature = inference.validate_decoding(method, temperature)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    smoother = smoother or TemporalSmoother(temporal_smoothing, scene_threshold, motion)
    predictor = load_video_predictor(model, precision)
    size = predictors.resolve_size(predictor, size)
    return _colorize_frames(frames, predictor, smoother, size, method, temperature, batch_size)


def _colorize_frames(frames, predictor, smoother, size, method, temperature, batch_size):
    shape = None
    for batch in _batches(frames, batch_size):
        rgb, shape = _stack(batch, shape)
        l_raw = _frame_l(tf.convert_to_tensor(_pad(rgb, batch_size)))
        l_small = inference.network_input(l_raw, size)
        logits = tf.cast(predictor.logits(l_small), tf.float32)
        if smoother.strength > 0:
            probabilities = tf.nn.softmax(logits).numpy()
            l_small = l_small.numpy()
            smoothed = [smoother(p, l) for p, l in zip(probabilities[: len(batch)], l_small)]
            # Decoding takes logits; the log of a distribution is one (softmax undoes it).
            logits = np.log(np.maximum(_pad(np.stack(smoothed), batch_size), np.finfo(np.float32).tiny))
        yield from _render(l_raw, tf.convert_to_tensor(logits, tf.float32), method, temperature).numpy()[: len(batch)]

