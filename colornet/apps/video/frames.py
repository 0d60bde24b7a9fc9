"""Colourising a sequence of frames: the network on batches of frames, its
distributions smoothed over time (`colornet.apps.video.smoothing`), then rendered.

Each frame is coloured as an image is (`colornet.inference`: the network sees L at
S x S and predicts a 313-way distribution at S/4 x S/4; ab is decoded, upsampled and
joined with the frame's own full-resolution L), except that the distributions are
smoothed over time first.

Three stages, each but the last in its own thread with one batch queued between
each two, so that the network overlaps the work before and after it: L of a batch of
frames (full resolution, `lab`: a table for grey frames, OpenCV for RGB) and its
resizing to S x S (compiled, `kernels`); the network (TF's pool over the cores, or
for a LiteRT model one single-threaded interpreter a core, batches side by side);
the smoothing, decoding (at S/4, NumPy), upsampling and Lab -> RGB (full
resolution, one compiled pass). Only the first and last conversions touch every
pixel of a frame; everything else runs at S or S/4 whatever the frame size.
"""

import collections
import concurrent.futures
import importlib.util
import os

import numpy as np
import tensorflow as tf

from colornet import bins, color, data, inference
from colornet import constants as c
from colornet.apps.video import lab, threads
from colornet.apps.video.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MOTION,
    DEFAULT_SCENE_THRESHOLD,
    DEFAULT_TEMPORAL_SMOOTHING,
    PRECISIONS,
)
from colornet.apps.video.smoothing import TemporalSmoother
from colornet.deploy import predictors
from colornet.utils.errors import ColornetError

_QUEUED_BATCHES = 1  # between two stages: with one in each stage, 5 batches in flight


def _is_bundled(model):
    """Whether `model` (None, a path or a `Predictor`) is the bundled model."""
    if model is None:
        return True
    source = model.source if isinstance(model, predictors.Predictor) else model
    return isinstance(source, (str, os.PathLike)) and (
        os.path.abspath(os.fspath(source)) == os.path.abspath(predictors.BUNDLED_MODEL_PATH)
    )


def resolve_precision(precision, model=None):
    """The network's form for `precision` and `model` (None: the bundled model).

    "auto" is the fastest form this CPU offers (docs/video.md, "Network precision"):
    bfloat16 on AMX; elsewhere, for the bundled model, its int8 LiteRT form
    (`predictors.BUNDLED_INT8_PATH`; LiteRT is in the `video` extra), and for another
    model bfloat16 where the CPU has it natively (AVX512_BF16), else float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    from colornet.deploy import export

    if export.cpu_has_amx():
        return "bfloat16"
    has_int8 = os.path.isfile(predictors.BUNDLED_INT8_PATH) and importlib.util.find_spec("ai_edge_litert")
    if _is_bundled(model) and has_int8:
        return "int8"
    return "bfloat16" if export.cpu_supports_bfloat16() else "float32"


def check_precision(precision, model=None):
    """`resolve_precision(precision, model)`, refusing "int8" for a model that has no
    int8 form (any but the bundled one, or a .tflite file, which runs as it is).

    Raises:
      ValueError: not one of `PRECISIONS`.
      ColornetError: "int8" for such a model.
    """
    resolved = resolve_precision(precision, model)
    is_tflite = isinstance(model, predictors.TFLitePredictor) or (
        isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".tflite")
    )
    if resolved == "int8" and not _is_bundled(model) and not is_tflite:
        raise ColornetError(
            "precision 'int8' is the bundled model's int8 form; for another model, convert it with `colornet "
            "tflite --model MODEL --out OUT.tflite --quantize int8 --representative PHOTOS` and pass OUT.tflite"
        )
    return resolved


def load_video_predictor(model=None, precision="auto"):
    """`predictors.load_predictor(model)` in the form `resolve_precision` gives: a
    Keras `Colorizer`'s network rebuilt in bfloat16 or float32, without the hint
    inputs of a hint model (frames take no hints); for "int8", the bundled model's
    int8 LiteRT form. Other formats (SavedModel, .tflite) run as they were exported,
    a .tflite file on every core. Build it once for many videos.

    Raises:
      ColornetError: "int8" for a model other than the bundled one (make its int8
        form with `colornet tflite --quantize int8` and pass that file).
    """
    from colornet.models.colorizer import Colorizer, without_hints

    resolved = check_precision(precision, model)
    if resolved == "int8" and _is_bundled(model):
        return predictors.TFLitePredictor(predictors.BUNDLED_INT8_PATH, num_threads=os.cpu_count())
    predictor = predictors.load_predictor(model)
    if isinstance(predictor, predictors.TFLitePredictor):
        # LiteRT's default is one thread: the network would lag behind the rest.
        return predictor if model is predictor else predictors.TFLitePredictor(predictor.source, os.cpu_count())
    wrapped = getattr(predictor, "model", None)
    if not isinstance(wrapped, Colorizer):
        return predictor
    # Frames have no hints: a hint model's network without its hint inputs is the
    # same network for an empty hint map, and cheaper.
    network = without_hints(wrapped)
    if resolved == "bfloat16" and network.dtype_policy.name != "mixed_bfloat16":
        from colornet.deploy import export

        network = export.with_precision(network, "bfloat16")
    return predictor if network is wrapped else predictors.KerasPredictor(network, source=predictor.source)


# Without OpenCV, the colour conversions at full resolution run as TF ops fused by XLA
# (which skips X and Z where only L is used), one frame at a time so that each video
# compiles once. With OpenCV they run in `lab`, several times cheaper.
@tf.function(jit_compile=True, autograph=False)
def _frame_l_tf(rgb):
    return tf.clip_by_value(color.rgb_to_lab(rgb)[..., 0], 0.0, 100.0)


@tf.function(jit_compile=True, autograph=False)
def _lab_to_rgb8_tf(l_raw, ab):
    return inference.to_uint8(color.lab_to_rgb(tf.concat([l_raw[..., None], ab], axis=-1)))


def _frame_l(frame, out, scratch):
    """A frame as `colorize_frames` takes it -> `(H, W)` float32 L, into `out`. A
    uint8 grey frame `(H, W)` is one table (`lab.grey_l`), a tenth of the work of RGB."""
    frame = np.asarray(frame)
    if lab.available() and frame.dtype == np.uint8 and (frame.ndim == 2 or frame.shape[-1] == 1):
        return lab.grey_l(frame.reshape(frame.shape[:2]), out)
    rgb = data.as_rgb(frame)
    if rgb.dtype == np.uint8 and lab.available():
        return lab.frame_l(rgb, out, scratch)
    out[...] = _frame_l_tf(rgb).numpy()
    return out


def _lab_to_rgb8(l_raw, ab_small):
    """`(H, W)` L and `(h, w, 2)` ab -> `(H, W, 3)` uint8 RGB, ab upsampled bilinearly."""
    if lab.available():
        return lab.lab_to_rgb8(l_raw, ab_small)
    # The bilinear upsampling stays out of XLA: XLA's version differed from TF's by up
    # to 90 ab units on 16 -> 48 pixels.
    return _lab_to_rgb8_tf(l_raw, inference.upsample_ab(ab_small[None], l_raw.shape)[0]).numpy()


# The softmax and the decoding run on 313 values a pixel at S/4 x S/4, every frame, in
# NumPy, in the render stage, into arrays kept from frame to frame. A whole batch's
# distributions (41 MB at batch 8) is above the size up to which glibc reuses freed
# memory, so each new one was mapped and page-faulted in afresh (the softmax and the
# log as XLA ops made two a batch), and XLA's ops woke the thread pool's other
# threads for nothing: 4 % more frames/s at 480p with the default smoothing in
# bfloat16, 16 % in int8 (`benchmarks/video.py --speed --against`, docs/video.md).
def _softmax(logits, out=None):
    """`(..., 313)` logits -> their distributions, as `tf.nn.softmax`, into `out` if given."""
    logits = np.asarray(logits, np.float32)
    out = np.subtract(logits, logits.max(axis=-1, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)
    return out


# The annealed mean (and the mean, T = 1) as one exponential and one product:
# exp((s - max s) / T) of each bin times [a, b, 1], then ab over the sum. It is
# softmax(s / T) . centres without normalising all 313 values, and without the check
# for NaN of `decode.annealed_mean` (frames' L is finite); the same ab within 1e-4.
_CENTRES_AND_ONES = np.concatenate([bins.ab_bins(), np.ones((c.NUM_BINS, 1))], axis=1).astype(np.float32)


def _annealed_mean(scores, inverse_temperature, work):
    """`(..., 313)` scores -> `(..., 2)` ab; `work`, an array of their shape (may be
    `scores` itself), is overwritten."""
    np.subtract(scores, scores.max(axis=-1, keepdims=True), out=work)
    work *= inverse_temperature
    np.exp(work, out=work)
    sums = work @ _CENTRES_AND_ONES
    return sums[..., :2] / sums[..., 2:]


def _decode(logits, method, temperature, scratch):
    """`(..., 313)` logits -> `(..., 2)` ab, as `inference.decode_logits`; `scratch`
    (`lab.Scratch`) holds the work array."""
    logits = np.asarray(logits, np.float32)
    if method == "mode":
        return inference.decode_logits(logits, method).numpy()
    inverse_temperature = np.float32(1.0 if method == "mean" else 1.0 / temperature)
    return _annealed_mean(logits, inverse_temperature, scratch("decoding", logits.shape))


# The annealed mean of distributions p is that of their log: p^(1/T) . centres over
# sum p^(1/T), one power where the log, the maximum and the exponential took four
# passes. p is first raised to at least tiny^T, so that no power is a subnormal
# float32 (a power into subnormals runs many times slower): what that adds is below
# 313 * tiny, nothing next to the largest value's power, as that value is at least
# 1/313 (the values sum to 1), down to T = 0.2; below, the log as from logits.
_LOWEST_POWER_TEMPERATURE = 0.2


def _decode_distributions(probabilities, method, temperature, scratch):
    """`(..., 313)` distributions -> `(..., 2)` ab, as `inference.decode_logits` of
    their log (the log of a distribution is logits for it)."""
    work = scratch("decoding", probabilities.shape)
    if method == "mode" or (method == "annealed-mean" and temperature < _LOWEST_POWER_TEMPERATURE):
        log = np.maximum(probabilities, np.finfo(np.float32).tiny, out=work)
        return _decode(np.log(log, out=log), method, temperature, scratch)
    weighted = probabilities
    if method == "annealed-mean":
        floor = np.float32(1.01 * float(np.finfo(np.float32).tiny) ** temperature)
        weighted = np.power(np.maximum(probabilities, floor, out=work), np.float32(1.0 / temperature), out=work)
    sums = weighted @ _CENTRES_AND_ONES
    return sums[..., :2] / sums[..., 2:]


def _pad(array, batch_size):
    """A short last batch filled up with copies of its last item."""
    missing = batch_size - len(array)
    return np.concatenate([array, np.repeat(array[-1:], missing, axis=0)]) if missing > 0 else array


def _batches(frames, batch_size):
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


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
      precision: "auto" (the fastest form on this CPU, `resolve_precision`),
        "float32", "bfloat16" or "int8" (the bundled model's LiteRT form).
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


def _taps(length, size):
    """`inference.network_input`'s resizing of one axis, `length` -> `size` pixels, as
    `(size, k)` source indices and weights (k taps an output pixel, unused ones 0):
    read off TF itself by resizing the identity, a block of columns at a time."""
    weights = np.empty((size, length), np.float32)
    for start in range(0, length, 256):
        block = np.eye(length, min(256, length - start), -start, np.float32)
        weights[:, start : start + block.shape[1]] = tf.image.resize(
            block[None, ..., None], (size, block.shape[1]), method="bilinear", antialias=True)[0, ..., 0]
    count = max(int(np.count_nonzero(weights, axis=1).max()), 1)
    indices, taps = np.zeros((size, count), np.intp), np.zeros((size, count), np.float32)
    for row, row_weights in enumerate(weights):
        used = np.flatnonzero(row_weights)
        indices[row, : len(used)], taps[row, : len(used)] = used, row_weights[used]
    return indices, taps


class _Resize:
    """`(H, W)` L -> `(S, S)` as `inference.network_input` resizes it (bilinear with
    antialiasing), as the two one-axis maps it is, a few taps an output pixel: the
    same values, for a third of the CPU time of TF's op (`benchmarks/video.py
    --stages`, "network_input")."""

    def __init__(self, shape, size):
        self._rows, self._columns = _taps(shape[0], size), _taps(shape[1], size)
        self._between = np.empty((size, shape[1]), np.float32)  # the rows resized, for the compiled loop

    @staticmethod
    def _axis(image, taps):
        """Resizes the first axis of `(n, m)` `image` by `taps`."""
        indices, weights = taps
        out = np.zeros((len(indices), image.shape[1]), np.float32)
        for tap in range(indices.shape[1]):
            out += weights[:, tap, None] * image[indices[:, tap]]
        return out

    def __call__(self, l_raw, out):
        if lab.available():  # compiled: one pass, no array made
            from colornet.apps.video import kernels

            return kernels.resize(l_raw, self._rows, self._columns, self._between, out)
        out[...] = self._axis(np.ascontiguousarray(self._axis(l_raw, self._rows).T), self._columns).T
        return out


def _prepare(frames, size, batch_size):
    """Stage 1: batches of frames -> `(l_raw, l_small (n, S, S, 1))`, l_raw n `(H, W)`
    arrays: one a frame, as a batch's (66 MB at 1080p) would be above what a thread's
    allocator reuses (`threads.freed_memory_kept`) and mapped afresh every batch."""
    shape, scratch, resize = None, lab.Scratch(), None
    for batch in _batches(frames, batch_size):
        for number, frame in enumerate(batch):
            frame = np.asarray(frame)
            if frame.ndim not in (2, 3) or min(frame.shape[:2]) < 1:
                data.as_rgb(frame)  # raises its error for the shape
            if shape is None:
                shape = frame.shape[:2]
                resize = _Resize(shape, size) if shape != (size, size) else None
            if frame.shape[:2] != shape:
                raise ValueError(f"every frame must have the first frame's size {shape}, got {frame.shape[:2]}")
            if number == 0:
                l_raw, l_small = [], np.empty((len(batch), size, size, 1), np.float32)
            l_raw.append(_frame_l(frame, np.empty(shape, np.float32), scratch))
            if resize is None:
                l_small[number, ..., 0] = l_raw[-1]
            else:
                resize(l_raw[-1], l_small[number, ..., 0])
        yield l_raw, l_small


def _workers(predictor):
    """The network's copies that run batches side by side: for a LiteRT model, one
    single-threaded interpreter a core, so that no thread of the network waits for
    another that shares its core with the other stages (one interpreter on every core
    keeps the cores 85 to 90 % busy at 480p); otherwise the predictor itself (TF
    spreads one call over the cores)."""
    if not isinstance(predictor, predictors.TFLitePredictor) or (os.cpu_count() or 1) < 2:
        return [predictor]
    return [predictors.TFLitePredictor(predictor.source, num_threads=1) for _ in range(os.cpu_count())]


def _network(prepared, predictor, batch_size):
    """Stage 2: the network on each batch (for TF, padded to `batch_size`: one shape
    for the whole video) -> `(l_raw, l_small, logits)`, in order; with
    several `_workers`, batch i on worker i mod n, n batches at a time."""

    def run(worker, l_raw, l_small):
        if isinstance(worker, predictors.TFLitePredictor):  # one frame at a time anyway: no padding
            return l_raw, l_small, worker.frame_logits(l_small)  # one array a frame: no batch-sized copy
        return l_raw, l_small, np.asarray(worker.logits(_pad(l_small, batch_size)), np.float32)[: len(l_raw)]

    workers = _workers(predictor)
    if len(workers) == 1:
        for l_raw, l_small in prepared:
            yield run(predictor, l_raw, l_small)
        return
    with concurrent.futures.ThreadPoolExecutor(len(workers), thread_name_prefix="colornet-network") as pool:
        running = collections.deque()
        for number, (l_raw, l_small) in enumerate(prepared):
            # A worker takes its next batch only after its last one was handed on.
            if len(running) == len(workers):
                yield running.popleft().result()
            running.append(pool.submit(run, workers[number % len(workers)], l_raw, l_small))
        while running:
            yield running.popleft().result()


def _render(scored, smoother, method, temperature):
    """Stage 3: smoothing, decoding, upsampling and Lab -> RGB -> uint8 frames."""
    scratch = lab.Scratch()
    for l_raw, l_small, logits in scored:
        if smoother.strength > 0:
            # Into one array kept from batch to batch (the smoother reads only its
            # last result, which the next batch's first frame may overwrite).
            smoothed = scratch("smoothed", (len(logits), *logits[0].shape))
            probabilities = scratch("probabilities", logits[0].shape)
            for z, l, out in zip(logits, l_small, smoothed):
                smoother(_softmax(z, out=probabilities), l, out=out)
            ab_small = [_decode_distributions(frame, method, temperature, scratch) for frame in smoothed]
        else:
            ab_small = [_decode(frame, method, temperature, scratch) for frame in logits]
        for l_one, ab_one in zip(l_raw, ab_small):
            yield _lab_to_rgb8(l_one, ab_one)


def _colorize_frames(frames, predictor, smoother, size, method, temperature, batch_size, threaded=True):
    """The three stages chained, each but the last in its own thread with a batch
    queued between each two (`threaded`; else one after the other, the same frames)."""
    stages = [
        lambda items: _prepare(items, size, batch_size),
        lambda items: _network(items, predictor, batch_size),
    ]
    with threads.freed_memory_kept():
        items = frames
        for number, stage in enumerate(stages):
            items = stage(items)
            if threaded:
                items = threads.in_thread(items, _QUEUED_BATCHES, ("prepare", "network")[number])
        try:
            yield from _render(items, smoother, method, temperature)
        finally:
            items.close()  # stops the threads, also when the caller stops early
