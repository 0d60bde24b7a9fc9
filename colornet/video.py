"""Colourising video: streaming, smoothed over time, sound kept.

* `colorize_frames(frames, model)`: a generator from RGB frames (any iterable of
  `(H, W, 3)` arrays, for users who decode video themselves) to coloured uint8 RGB
  frames, smoothed over time.
* `colorize_video(src, dst, model)`: a video file to a video file with the same frame
  size, frame rate (each frame keeps its timestamp, so variable rates stay as they
  are), frame count and rotation metadata, its first audio stream copied unchanged,
  video in H.264 (yuv420p; yuv444p for odd frame sizes, which 4:2:0 cannot hold).

Each frame is coloured as an image is (`colornet.inference`: the network sees L at
S x S and predicts a 313-way distribution at S/4 x S/4; ab is decoded, upsampled and
joined with the frame's own full-resolution L), except that the distributions are
smoothed over time first (`TemporalSmoother`): an exponential moving average of each
output pixel's 313-way distribution, held back where L changed between consecutive
frames (motion "agreement", the default), optionally also carried along the optical
flow of L (motion "flow", OpenCV's DIS flow), and started afresh at scene cuts (the L
histograms of consecutive frames differ by more than `scene_threshold`). Colouring a
frame on its own makes colours jump as content shifts; a plain average drags colour
behind moving objects. Why the defaults: README, "Video", measured by
`benchmarks/video.py`.

Streaming: a reader thread decodes, the caller's thread runs the network on batches
of frames, a writer thread encodes and muxes, with bounded queues between them, so
memory does not grow with the length of the video and the three overlap (FFmpeg and
TensorFlow release the GIL). The output is written under a hidden temporary name and
renamed when complete.

Needs the `video` extra (`pip install 'colornet[video]'`): PyAV, whose wheels bring
their own FFmpeg with libx264 and decode and encode frames as arrays in-process, and
opencv-python-headless for the optical flow.
"""

import collections
import dataclasses
import fractions
import os
import queue
import threading
import time

import numpy as np
import tensorflow as tf

from colornet import color, console, data, files, inference, predictors
from colornet import constants as c
from colornet.errors import ColornetError, first_line

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
# WebM may hold only VP8/VP9/AV1 video; Matroska, its superset, holds H.264 and
# every audio codec WebM has, so the audio is still copied unchanged.
_OUTPUT_EXTENSIONS = {".webm": ".mkv"}
MOTION_MODES = ("flow", "agreement", "none")
# Chosen by `benchmarks/video.py` (README, "Video").
DEFAULT_TEMPORAL_SMOOTHING = 0.95
DEFAULT_SCENE_THRESHOLD = 0.3
DEFAULT_MOTION = "agreement"
DEFAULT_CRF = 18  # x264's scale: 0 lossless, 51 worst; 18 is about visually lossless
DEFAULT_ENCODER_PRESET = "fast"
DEFAULT_BATCH_SIZE = 8
PRECISIONS = ("auto", "float32", "bfloat16")
# How far (L units, 0..100) the flow-warped previous L may differ from the current
# one before the running average is held back: the weight falls as exp(-(dL / sigma)^2).
L_AGREEMENT_SIGMA = 12.0
_HISTOGRAM_BINS = 32
_QUEUE_FRAMES = 2  # batches of frames held between the threads, each way


def _require_av():
    try:
        import av
    except ImportError:
        raise ColornetError("video needs PyAV: pip install 'colornet[video]'") from None
    return av


def _require_cv2():
    try:
        import cv2
    except ImportError:
        raise ColornetError(
            "motion='flow' needs OpenCV: pip install 'colornet[video]' (or motion='agreement')"
        ) from None
    return cv2


def is_video_path(path):
    """True for a name with a video extension (`VIDEO_EXTENSIONS`, any case)."""
    return os.fspath(path).lower().endswith(VIDEO_EXTENSIONS)


def output_name(name):
    """The output file name for a video: its own extension, but `.mkv` for `.webm`."""
    stem, extension = os.path.splitext(name)
    return stem + _OUTPUT_EXTENSIONS.get(extension.lower(), extension)


def list_videos(argument):
    """The video files a command-line argument names: a video file, the videos under a
    folder (recursive; hidden names skipped) or matching a glob. Sorted, absolute."""
    import glob

    argument = os.fspath(argument)
    if os.path.isfile(argument):
        return [os.path.abspath(argument)] if is_video_path(argument) else []
    if os.path.isdir(argument):
        found = []
        for root, dirs, names in os.walk(argument, followlinks=True):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [os.path.join(root, n) for n in names if not n.startswith(".") and is_video_path(n)]
        return sorted(os.path.abspath(p) for p in found)
    found = set()
    for match in glob.glob(argument, recursive=True):
        found.update(list_videos(match) if os.path.isdir(match) else [match] if is_video_path(match) else [])
    return sorted(os.path.abspath(p) for p in found)


# ----------------------------------------------------------------------------
# Smoothing the 313-way distributions over time.


def _check_fraction(name, value, upper_open):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not (0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1{')' if upper_open else ']'}, got {value}")
    return value


class TemporalSmoother:
    """Exponential moving average of per-pixel colour distributions over frames.

    For each frame, with p its `(h, w, Q)` distributions and s the running average:
    s = w * carried(s_prev) + (1 - w) * p, w = `strength` * agreement, where
    `carried` moves the previous average along the optical flow of L ("flow"), or
    leaves it in place ("agreement", "none"), and agreement = exp(-(dL / sigma)^2)
    per output pixel, dL the mean |L - carried(L_prev)| over the pixels it covers
    (1 for "none"). The average starts afresh at the first frame and at scene cuts:
    when the L histograms (32 bins) of consecutive frames differ by more than
    `scene_threshold` in total variation (half the L1 distance; 0 = identical,
    1 = disjoint).

    Args:
      strength: 0 (each frame on its own) to < 1 (longer memory).
      scene_threshold: in [0, 1]; 1 never cuts.
      motion: "flow", "agreement" or "none".
      sigma: L units of the agreement weight.

    Call with `(h, w, Q)` float32 distributions and the `(S, S)` float32 L (0..100)
    the network saw; returns the smoothed `(h, w, Q)` float32 distributions.
    Attributes: `cuts`, the number of scene cuts seen (the first frame not counted).
    """

    def __init__(self, strength=DEFAULT_TEMPORAL_SMOOTHING, scene_threshold=DEFAULT_SCENE_THRESHOLD,
                 motion=DEFAULT_MOTION, sigma=L_AGREEMENT_SIGMA):
        self.strength = _check_fraction("temporal_smoothing", strength, upper_open=True)
        self.scene_threshold = _check_fraction("scene_threshold", scene_threshold, upper_open=False)
        if motion not in MOTION_MODES:
            raise ValueError(f"motion must be one of {', '.join(MOTION_MODES)}, got {motion!r}")
        self.motion = motion
        self.sigma = float(sigma)
        self._flow = None
        if motion == "flow" and self.strength > 0:
            cv2 = _require_cv2()
            self._cv2 = cv2
            self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self.cuts = 0
        self.reset()

    def reset(self):
        """Forgets the past: the next frame starts a new average."""
        self._state = self._l8 = self._histogram = None

    def _scene_cut(self, histogram):
        distance = 0.5 * float(np.abs(histogram - self._histogram).sum())
        return distance > self.scene_threshold

    def __call__(self, probabilities, l_small):
        probabilities = np.asarray(probabilities, np.float32)
        if self.strength == 0.0:
            return probabilities
        l8 = _l8(l_small)
        histogram = l_histogram(l8)
        fresh = self._state is None
        if not fresh and self._scene_cut(histogram):
            self.cuts += 1
            fresh = True
        if fresh:
            state = probabilities
        else:
            previous, previous_l = self._state, self._l8.astype(np.float32)
            if self.motion == "flow":
                previous, previous_l = self._carry(previous, previous_l, l8)
            weight = np.full(probabilities.shape[:2], self.strength, np.float32)
            if self.motion != "none":
                difference = np.abs(l8.astype(np.float32) - previous_l) / 2.55
                weight *= np.exp(-np.square(_area_mean(difference, probabilities.shape[:2]) / self.sigma))
            # w * previous + (1 - w) * p, in place: 1.3 M values a frame.
            state = np.subtract(previous, probabilities, dtype=np.float32)
            state *= weight[..., None]
            state += probabilities
        self._state, self._l8, self._histogram = state, l8, histogram
        return state

    def _carry(self, state, previous_l, l8):
        """The previous average and L moved to where their content is in this frame."""
        cv2 = self._cv2
        # flow(x): where the content at x of this frame was in the previous one.
        flow = self._flow.calc(l8, self._l8, None)
        big_h, big_w = l8.shape
        grid_y, grid_x = np.mgrid[0:big_h, 0:big_w].astype(np.float32)
        warped_l = cv2.remap(previous_l, grid_x + flow[..., 0], grid_y + flow[..., 1],
                             cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        h, w = state.shape[:2]
        # Each output pixel covers a block of input pixels: average the flow over it
        # and express it in output pixels.
        small = _area_mean(flow, (h, w)) * np.array([w / big_w, h / big_h], np.float32)
        small_y, small_x = np.mgrid[0:h, 0:w].astype(np.float32)
        map_x, map_y = small_x + small[..., 0], small_y + small[..., 1]
        # OpenCV remaps at most 128 channels at a time.
        carried = np.concatenate(
            [
                cv2.remap(np.ascontiguousarray(part), map_x, map_y, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE).reshape(h, w, -1)
                for part in np.array_split(state, -(-state.shape[-1] // 128), axis=-1)
            ],
            axis=-1,
        )
        return carried, warped_l


def _l8(l_small):
    """`(S, S[, 1])` L (0..100) as `(S, S)` uint8 (0..255)."""
    l_small = np.asarray(l_small, np.float32)
    return np.clip(np.rint(l_small.reshape(l_small.shape[:2]) * 2.55), 0, 255).astype(np.uint8)


def l_histogram(l8):
    """The share of pixels of uint8 L in each of 32 equal bins, as the scene-cut test
    compares them (`TemporalSmoother`)."""
    return np.bincount(l8.ravel() // (256 // _HISTOGRAM_BINS), minlength=_HISTOGRAM_BINS) / l8.size


def _area_mean(image, shape):
    """`image` `(H, W[, C])` averaged down to `shape` `(h, w)` (OpenCV's INTER_AREA
    where available, else block means of a divisible size)."""
    h, w = shape
    if image.shape[:2] == (h, w):
        return image
    try:
        import cv2
    except ImportError:
        big_h, big_w = image.shape[:2]
        blocks = image.reshape(h, big_h // h, w, big_w // w, *image.shape[2:])
        return blocks.mean(axis=(1, 3)).astype(np.float32)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


# ----------------------------------------------------------------------------
# Frames.


def resolve_precision(precision):
    """"auto" -> "bfloat16" where the CPU has it natively, else "float32"."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        from colornet import export

        return "bfloat16" if export.cpu_supports_bfloat16() else "float32"
    return precision


def load_video_predictor(model=None, precision="auto"):
    """`predictors.load_predictor(model)`, its network rebuilt in bfloat16 when
    `precision` says so and the model is a Keras `Colorizer` (other formats run as
    they were exported). Build it once for many videos."""
    from colornet.models.colorizer import Colorizer

    predictor = predictors.load_predictor(model)
    wrapped = getattr(predictor, "model", None)
    if resolve_precision(precision) == "bfloat16" and isinstance(wrapped, Colorizer):
        from colornet import export

        if wrapped.dtype_policy.name != "mixed_bfloat16":
            return predictors.KerasPredictor(export.with_precision(wrapped, "bfloat16"), source=predictor.source)
    return predictor


# The colour conversions at full resolution are chains of elementwise ops: XLA fuses
# them (and skips X and Z where only L is used): a quarter of the CPU time without XLA
# on 854 x 480 frames (98 -> 25 ms a frame: `benchmarks/video.py --stages`). Batches
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


# ----------------------------------------------------------------------------
# Files.


@dataclasses.dataclass(frozen=True)
class VideoSummary:
    """What `colorize_video` wrote.

    Attributes:
      path: the output file.
      frames: frames written (the input's count).
      width, height: stored frame size (before rotation metadata).
      rate: the frame rate the input declares (frames/s; timestamps are kept as
        they were, so a variable rate stays variable).
      rotation: the input's rotation metadata (degrees counter-clockwise), kept.
      audio: whether an audio stream was copied.
      scene_cuts: cuts where the smoothing started afresh.
      seconds: wall time.
    """

    path: str
    frames: int
    width: int
    height: int
    rate: fractions.Fraction
    rotation: int
    audio: bool
    scene_cuts: int
    seconds: float


class _Stop(Exception):
    """Another stage of the pipeline failed or was interrupted."""


class _Pipe:
    """A bounded queue between two threads that gives up when the run is stopped."""

    def __init__(self, stop, maxsize):
        self._queue = queue.Queue(maxsize)
        self._stop = stop

    def put(self, item):
        while True:
            if self._stop.is_set():
                raise _Stop
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self):
        while True:
            if self._stop.is_set():
                raise _Stop
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                continue


_END = object()


def _upright(array, rotation):
    """A stored frame turned as its rotation metadata says (counter-clockwise degrees)."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


def _stored(array, rotation):
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(array, -turns)) if turns else array


def _open_input(av, src, max_pixels):
    try:
        container = av.open(src)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise ColornetError(f"{src}: not a readable video ({first_line(error)})") from None
    try:
        if not container.streams.video:
            raise ColornetError(f"{src}: holds no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width < 1 or height < 1:
            raise ColornetError(f"{src}: its video stream declares no frame size")
        if width * height > max_pixels:
            raise ColornetError(
                f"{src}: frames of {width} x {height} pixels exceed the limit of {max_pixels} pixels"
            )
    except BaseException:
        container.close()
        raise
    return container


def _read(av, container, src, pipe):
    """The reader thread: demuxes, decodes video frames to upright RGB arrays and
    passes audio packets through, in the file's order."""
    try:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        audio = container.streams.audio[:1]
        for packet in container.demux([video, *audio]):
            if packet.stream.index == video.index:
                for frame in packet.decode():
                    rgb = frame.to_ndarray(format="rgb24")
                    pipe.put(("video", _upright(rgb, frame.rotation), (frame.pts, frame.rotation)))
            elif packet.dts is not None:  # the demuxer's empty flush packets carry none
                pipe.put(("audio", packet, None))
        pipe.put((_END, None, None))
    except _Stop:
        pass
    except (av.error.FFmpegError, OSError) as error:
        pipe.put(("error", ColornetError(f"{src}: cannot decode the video ({first_line(error)})"), None))
    except BaseException as error:  # noqa: BLE001 (handed to the caller's thread, raised there)
        pipe.put(("error", error, None))


class _Writer:
    """Encodes frames to H.264 and muxes them with the copied audio packets; the
    output is opened at the first frame, whose size and rotation it takes."""

    def __init__(self, av, path, video_in, audio_in, crf, preset):
        self.av, self.path, self.video_in, self.audio_in = av, path, video_in, audio_in
        self.crf, self.preset = crf, preset
        self.output = self.video = self.audio = None
        self.rate = video_in.average_rate or video_in.guessed_rate or fractions.Fraction(25)
        # The input's own time base, so each frame keeps its exact timestamp.
        self.time_base = video_in.time_base or fractions.Fraction(1, 1000)
        self.step = max(1, round(1 / (self.rate * self.time_base)))
        self.pending_audio = []
        self.last_pts = None
        self.frames = 0
        self.size = None
        self.rotation = 0

    def _open(self, width, height, rotation):
        self.output = self.av.open(self.path, "w")
        self.video = self.output.add_stream("libx264", rate=self.rate)
        self.video.width, self.video.height = width, height
        # 4:2:0 needs even sides; H.264 holds 4:4:4 at any size.
        self.video.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        self.video.options = {"crf": str(self.crf), "preset": self.preset}
        self.video.codec_context.time_base = self.time_base
        self.video.time_base = self.time_base
        if rotation:
            self.video.set_display_rotation(rotation)
        if self.audio_in is not None:
            self.audio = self.output.add_stream_from_template(self.audio_in)
        self.size, self.rotation = (width, height), rotation

    def write_frame(self, upright, pts, rotation):
        rgb = _stored(upright, rotation)
        if self.output is None:
            self._open(rgb.shape[1], rgb.shape[0], rotation)
            for packet in self.pending_audio:
                self.write_audio(packet)
            self.pending_audio = []
        # Timestamps must increase: fill in missing or repeated ones a frame apart.
        if pts is None or (self.last_pts is not None and pts <= self.last_pts):
            pts = 0 if self.last_pts is None else self.last_pts + self.step
        self.last_pts = pts
        frame = self.av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = pts, self.time_base
        for packet in self.video.encode(frame):
            self.output.mux(packet)
        self.frames += 1

    def write_audio(self, packet):
        if self.output is None:  # before the first coloured frame: only a few packets
            self.pending_audio.append(packet)
            return
        packet.stream = self.audio
        self.output.mux(packet)

    def finish(self):
        for packet in self.video.encode():
            self.output.mux(packet)

    def close(self):
        if self.output is not None:
            self.output.close()


def _write(writer, pipe, errors, stop):
    """The writer thread; closes the output whatever happens, stops the run on an error."""
    try:
        while True:
            kind, payload, extra = pipe.get()
            if kind is _END:
                writer.finish()
                return
            if kind == "video":
                writer.write_frame(payload, *extra)
            else:
                writer.write_audio(payload)
    except _Stop:
        pass
    except BaseException as error:  # noqa: BLE001 (raised in the caller's thread)
        errors.append(error)
        stop.set()
    finally:
        try:
            writer.close()
        except Exception as error:  # noqa: BLE001 (a failed close is a failed write)
            errors.append(error)


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def _check_encoding(crf, encoder_preset, batch_size):
    if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an int in 0..51, got {crf!r}")
    if encoder_preset not in X264_PRESETS:
        raise ValueError(f"encoder_preset must be one of {', '.join(X264_PRESETS)}, got {encoder_preset!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")


class VideoJob:
    """Colourises video files one after another with one model and one set of
    `colorize_video` options, checked here before any work; the network is built once
    (in bfloat16 where that applies) at the first video.

    `job(src, dst)` returns `colorize_video(src, dst, ...)`'s `VideoSummary`.
    """

    def __init__(self, model=None, **options):
        import inspect

        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(colorize_video).parameters.items()
            if parameter.kind is parameter.KEYWORD_ONLY
        }
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise TypeError(f"unknown video options: {', '.join(unknown)}")
        merged = {**defaults, **options}
        _check_encoding(merged["crf"], merged["encoder_preset"], merged["batch_size"])
        inference.validate_decoding(merged["method"], merged["temperature"])
        TemporalSmoother(merged["temporal_smoothing"], merged["scene_threshold"], merged["motion"])
        resolve_precision(merged["precision"])
        self.options = options
        self._model = model
        self._predictor = None

    def __call__(self, src, dst):
        if self._predictor is None:
            self._predictor = load_video_predictor(self._model, self.options.get("precision", "auto"))
        return colorize_video(src, dst, self._predictor, **self.options)


def _declared_seconds(stream):
    """The video stream's length as the file declares it (the stream's duration, or
    Matroska's DURATION tag), or None."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    text = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except (AttributeError, ValueError):
        return None


def _check_complete(src, stream, written, first_pts, last_pts):
    """Refuses a video whose decoded frames fall short of what it declares (a
    truncated file decodes up to the cut without an error)."""
    if not written:
        raise ColornetError(f"{src}: holds no video frames")
    if stream.frames and written < stream.frames:
        raise ColornetError(f"{src}: truncated: {written} of the {stream.frames} frames it declares could be decoded")
    declared = _declared_seconds(stream)
    rate = stream.average_rate or stream.guessed_rate
    if declared and rate and first_pts is not None and stream.time_base:
        decoded = float((last_pts - first_pts) * stream.time_base) + 1 / float(rate)
        if decoded < declared - 2 / float(rate):  # a frame's rounding either side
            raise ColornetError(
                f"{src}: truncated: {decoded:.2f} s of the {declared:.2f} s it declares could be decoded"
            )


def _declared_frames(stream):
    """The frame count a stream declares, or one estimated from its duration, or None."""
    if stream.frames:
        return stream.frames
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration and stream.time_base and rate:
        return max(1, round(float(stream.duration * stream.time_base * rate)))
    return None


def colorize_video(
    src,
    dst,
    model=None,
    *,
    temporal_smoothing=DEFAULT_TEMPORAL_SMOOTHING,
    scene_threshold=DEFAULT_SCENE_THRESHOLD,
    motion=DEFAULT_MOTION,
    temperature=c.ANNEALED_MEAN_TEMPERATURE,
    method="annealed-mean",
    size=None,
    crf=DEFAULT_CRF,
    encoder_preset=DEFAULT_ENCODER_PRESET,
    batch_size=DEFAULT_BATCH_SIZE,
    precision="auto",
    max_pixels=None,
    verbose=1,
):
    """Colourises a video file into `dst` (see the module docstring).

    Args:
      src: a video file FFmpeg can read.
      dst: the output file; its extension picks the container (`.mp4`, `.mkv`,
        `.mov`, ...). Written under a hidden temporary name beside it and renamed
        when complete, so an interrupted or failed run leaves `dst` as it was.
      model, temporal_smoothing, scene_threshold, motion, temperature, method,
        size, batch_size, precision: as for `colorize_frames`.
      crf: H.264 quality, 0 (lossless) to 51 (worst).
      encoder_preset: x264's speed preset ("ultrafast" ... "veryslow").
      max_pixels: largest frame accepted (default `colornet.data.MAX_PIXELS`).
      verbose: 1 shows progress (frames/s, ETA).

    Returns:
      a `VideoSummary`.

    Raises:
      ColornetError: PyAV is missing, the file is unreadable, truncated or holds no
        video frames, its frames are too large, or the output cannot be written.
    """
    _check_encoding(crf, encoder_preset, batch_size)
    temperature = inference.validate_decoding(method, temperature)
    smoother = TemporalSmoother(temporal_smoothing, scene_threshold, motion)
    av = _require_av()
    src, dst = os.fspath(src), os.fspath(dst)
    max_pixels = data.MAX_PIXELS if max_pixels is None else max_pixels
    predictor = load_video_predictor(model, precision)
    size = predictors.resolve_size(predictor, size)
    if os.path.isdir(dst):
        raise ColornetError(f"cannot write {dst}: it is a directory")
    start = time.perf_counter()
    with _open_input(av, src, max_pixels) as container:
        video_in = container.streams.video[0]
        audio_in = container.streams.audio[0] if container.streams.audio else None
        declared = _declared_frames(video_in)
        stop = threading.Event()
        depth = _QUEUE_FRAMES * batch_size
        in_pipe, out_pipe = _Pipe(stop, depth), _Pipe(stop, depth)
        reader = threading.Thread(target=_read, args=(av, container, src, in_pipe), daemon=True)
        timestamps, errors = collections.deque(), []

        def frames():
            while True:
                kind, payload, extra = in_pipe.get()
                if kind is _END:
                    return
                if kind == "error":
                    raise payload
                if kind == "audio":
                    out_pipe.put((kind, payload, None))
                else:
                    timestamps.append(extra)
                    yield payload

        written, span = 0, (None, None)  # frames, (first, last) timestamp
        reader.start()
        bar = console.progress_bar(declared, verbose, unit_name="frame", stateful_metrics=["frames/s"])
        try:
            with bar as progress, files.atomic_path(dst, os.path.splitext(dst)[1]) as tmp:
                writer = _Writer(av, tmp, video_in, audio_in, crf, encoder_preset)
                writing = threading.Thread(target=_write, args=(writer, out_pipe, errors, stop), daemon=True)
                writing.start()
                try:
                    coloured = _colorize_frames(frames(), predictor, smoother, size, method, temperature, batch_size)
                    for rgb in coloured:
                        pts, rotation = timestamps.popleft()
                        if pts is not None:
                            span = (pts if span[0] is None else min(span[0], pts), max(span[1] or pts, pts))
                        out_pipe.put(("video", rgb, (pts, rotation)))
                        written += 1
                        if progress:
                            rate = written / (time.perf_counter() - start)
                            progress.update(min(written, declared or written), values=[("frames/s", rate)])
                    out_pipe.put((_END, None, None))
                    writing.join()
                finally:
                    stop.set()
                    writing.join()
                if errors:
                    raise errors[0]
                _check_complete(src, video_in, written, *span)
        except _Stop:
            raise ColornetError(f"{src}: {first_line(errors[0])}" if errors else f"{src}: stopped") from None
        except av.error.FFmpegError as error:
            raise ColornetError(f"{src}: cannot write {dst} ({first_line(error)})") from None
        finally:
            stop.set()
            reader.join()
    return VideoSummary(
        path=os.path.abspath(dst),
        frames=written,
        width=writer.size[0],
        height=writer.size[1],
        rate=writer.rate,
        rotation=writer.rotation,
        audio=audio_in is not None,
        scene_cuts=smoother.cuts,
        seconds=time.perf_counter() - start,
    )
