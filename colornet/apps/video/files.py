"""Video files in, video files out: `colorize_video(src, dst, model)` writes a video
with the same frame size, frame rate (each frame keeps its timestamp, so variable
rates stay as they are), frame count and rotation metadata, its first audio stream
copied unchanged, video in H.264 (yuv420p; yuv444p for odd frame sizes, which 4:2:0
cannot hold). The frames are coloured by `colornet.apps.video.frames`.

Streaming: a reader thread decodes, the stages of `colornet.apps.video.frames` (L,
the network, smoothing and rendering) run in theirs, a writer thread encodes and
muxes, with bounded queues between them, so memory does not grow with the length of
the video and the stages overlap (FFmpeg, TensorFlow, OpenCV, NumPy and the compiled
loops release the GIL). A black-and-white film's frames go on as grey levels read
from their luma (`_GreyFrames`). The output is written under a hidden temporary name
and renamed when complete.

Needs the `video` extra (`pip install 'colornet-keras[video]'`): PyAV, whose wheels bring
their own FFmpeg with libx264 and decode and encode frames as arrays in-process.
"""

import collections
import dataclasses
import fractions
import os
import threading
import time

import numpy as np

from colornet import constants as c
from colornet import inference
from colornet.apps.video import lab, threads
from colornet.apps.video.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CRF,
    DEFAULT_ENCODER_PRESET,
    DEFAULT_MOTION,
    DEFAULT_SCENE_THRESHOLD,
    DEFAULT_TEMPORAL_SMOOTHING,
    VIDEO_EXTENSIONS,
    X264_PRESETS,
)
from colornet.apps.video.frames import _colorize_frames, check_precision, load_video_predictor
from colornet.apps.video.smoothing import TemporalSmoother
from colornet.deploy import predictors
from colornet.utils import console
from colornet.utils.errors import ColornetError, first_line
from colornet.utils.files import atomic_path

# WebM may hold only VP8/VP9/AV1 video; Matroska, its superset, holds H.264 and
# every audio codec WebM has, so the audio is still copied unchanged.
_OUTPUT_EXTENSIONS = {".webm": ".mkv"}
_QUEUE_FRAMES = 2  # batches of frames held between the threads, each way


def _require_av():
    try:
        import av
    except ImportError:
        raise ColornetError("video needs PyAV: pip install 'colornet-keras[video]'") from None
    return av


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


_END = object()


def _upright(array, rotation):
    """A stored frame turned as its rotation metadata says (counter-clockwise degrees)."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


def _stored(array, rotation):
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(array, -turns)) if turns else array


def _reason(error):
    """FFmpeg's reason for a PyAV error (or the system's for an OSError), without the
    errno and file name PyAV adds: "[Errno 1094995529] Invalid data found when
    processing input: '/path'" -> "Invalid data found when processing input"."""
    return getattr(error, "strerror", None) or first_line(error)


def _open_input(av, src, max_pixels):
    try:
        container = av.open(src)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise ColornetError(f"{src}: not a readable video ({_reason(error)})") from None
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
        first_size, number = None, 0
        grey = _GreyFrames(av) if lab.available() else None
        for packet in container.demux([video, *audio]):
            if packet.stream.index == video.index:
                for frame in packet.decode():
                    number += 1
                    first_size = first_size or (frame.width, frame.height)
                    if (frame.width, frame.height) != first_size:
                        raise _size_change(src, first_size, frame, number)
                    image = grey.levels(frame) if grey is not None else None
                    image = frame.to_ndarray(format="rgb24") if image is None else image
                    pipe.put(("video", _upright(image, frame.rotation), (frame.pts, frame.rotation)))
            elif packet.dts is not None:  # the demuxer's empty flush packets carry none
                pipe.put(("audio", packet, None))
        pipe.put((_END, None, None))
    except threads.Stop:
        pass
    except (av.error.FFmpegError, OSError) as error:
        pipe.put(("error", ColornetError(f"{src}: cannot decode the video ({_reason(error)})"), None))
    except BaseException as error:  # noqa: BLE001 (handed to the caller's thread, raised there)
        pipe.put(("error", error, None))


class _GreyFrames:
    """Grey frames straight from their luma: a decoded 4:2:0 frame whose chroma is
    neutral everywhere (a black-and-white film; 128 in every chroma sample) is grey,
    R = G = B, each a function of Y alone. The function is read off FFmpeg's own
    conversion to RGB (swscale, for the frame's format and range), so the levels are
    those `to_ndarray(format="rgb24")` gives, without its conversion of every pixel
    and with a tenth of the work for L (`lab.grey_l`)."""

    _FORMATS = ("yuv420p", "yuvj420p")

    def __init__(self, av):
        self.av = av
        self._tables = {}

    def _table(self, frame):
        """Y -> grey level for frames of `frame`'s format and range."""
        key = (frame.format.name, frame.color_range)
        if key not in self._tables:
            planes = np.full((24, 16), 128, np.uint8)  # 16 x 16: Y all 256 values, chroma neutral
            planes[:16] = np.arange(256, dtype=np.uint8).reshape(16, 16)
            probe = self.av.VideoFrame.from_ndarray(planes, format=frame.format.name)
            probe.color_range = frame.color_range
            rgb = probe.to_ndarray(format="rgb24").reshape(256, 3)
            grey = bool((rgb == rgb[:, :1]).all())
            self._tables[key] = np.ascontiguousarray(rgb[:, 0]) if grey else None
        return self._tables[key]

    def levels(self, frame):
        """`(H, W)` uint8 grey levels of a grey frame, else None."""
        import cv2

        if frame.format.name not in self._FORMATS or frame.width % 2 or frame.height % 2:
            return None
        luma, *chroma = (_plane(plane) for plane in frame.planes)
        if any(part.max() != 128 or part.min() != 128 for part in chroma):
            return None
        table = self._table(frame)
        return None if table is None else cv2.LUT(luma, table)


def _plane(plane):
    """A PyAV frame's plane as a `(height, width)` uint8 view (its rows may be padded)."""
    rows = np.frombuffer(plane, np.uint8, count=plane.line_size * plane.height).reshape(plane.height, -1)
    return rows[:, : plane.width]


def _size_change(src, first_size, frame, number):
    """The error for a stream whose frames change size (spliced recordings, adaptive
    streams): one output stream holds one size, and the smoothing compares frames."""
    # Frame numbers count decoded frames from 1; timestamps may restart at a splice.
    return ColornetError(
        f"{src}: the frame size changes from {first_size[0]} x {first_size[1]} to {frame.width} x "
        f"{frame.height} pixels at frame {number}; a video is coloured at one frame size "
        "(re-encode it at one size first)"
    )


def encoder_threads():
    """x264's threads: one per 4 cores (its default is 1.5 a core). Its frame threads
    cost CPU time (in a one-off run on 2 cores, 19 CPU ms a 1080p frame on one thread,
    22 to 26 on three), and the pipeline's own threads already keep the cores busy."""
    return max(1, (os.cpu_count() or 1) // 4)


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
        self.video.codec_context.thread_count = encoder_threads()
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
        frame = self._frame(rgb)
        frame.pts, frame.time_base = pts, self.time_base
        for packet in self.video.encode(frame):
            self.output.mux(packet)
        self.frames += 1

    def _frame(self, rgb):
        """An RGB array as the frame x264 takes. For 4:2:0, OpenCV converts it (BT.601,
        limited range, as FFmpeg's swscale does by default: Y within one level, chroma
        averaged over 2 x 2 pixels): 0.7 CPU ms a 1080p frame where swscale takes 8.4
        (`benchmarks/video.py --stages`)."""
        if self.video.pix_fmt == "yuv420p" and lab.available():
            import cv2

            i420 = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
            return self.av.VideoFrame.from_ndarray(i420, format="yuv420p")
        return self.av.VideoFrame.from_ndarray(rgb, format="rgb24")

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
    except threads.Stop:
        pass
    except BaseException as error:  # noqa: BLE001 (raised in the caller's thread)
        errors.append(error)
        stop.set()
    finally:
        try:
            writer.close()
        except Exception as error:  # noqa: BLE001 (a failed close is a failed write)
            errors.append(error)


def _check_encoding(crf, encoder_preset, batch_size):
    if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an int in 0..51, got {crf!r}")
    if encoder_preset not in X264_PRESETS:
        raise ValueError(f"encoder_preset must be one of {', '.join(X264_PRESETS)}, got {encoder_preset!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")


def check_options(model=None, **options):
    """Checks `colorize_video`'s keyword options without any video at hand (needs
    neither PyAV nor a loaded model), as `colornet colorize` does for every run;
    `model` as `colorize_video` takes it (None: the bundled model), for the precision.

    Raises:
      TypeError: an option `colorize_video` does not have.
      ValueError: a value out of range, naming the option.
      ColornetError: precision "int8" for a model that has no int8 form.
    """
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
    check_precision(merged["precision"], model)


class VideoJob:
    """Colourises video files one after another with one model and one set of
    `colorize_video` options, checked here before any work; the network is built once
    (in bfloat16 where that applies) at the first video.

    `job(src, dst)` returns `colorize_video(src, dst, ...)`'s `VideoSummary`.
    """

    def __init__(self, model=None, **options):
        check_options(model, **options)
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
      model, temporal_smoothing, scene_threshold, motion: as for `colorize_frames`.
      temperature, method, size, batch_size, precision: as for `colorize_frames`.
      crf: H.264 quality, 0 (lossless) to 51 (worst).
      encoder_preset: x264's speed preset ("ultrafast" ... "veryslow").
      max_pixels: largest frame accepted (default `colornet.constants.MAX_PIXELS`).
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
    max_pixels = c.MAX_PIXELS if max_pixels is None else max_pixels
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
        in_pipe, out_pipe = threads.Pipe(stop, depth), threads.Pipe(stop, depth)
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
            with bar as progress, atomic_path(dst, os.path.splitext(dst)[1]) as tmp:
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
        except threads.Stop:
            if errors and isinstance(errors[0], (av.error.FFmpegError, OSError)):  # the writer's
                raise ColornetError(f"{src}: cannot write {dst} ({_reason(errors[0])})") from None
            raise ColornetError(f"{src}: {first_line(errors[0])}" if errors else f"{src}: stopped") from None
        except av.error.FFmpegError as error:
            raise ColornetError(f"{src}: cannot write {dst} ({_reason(error)})") from None
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
