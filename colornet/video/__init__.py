"""Colourising video: streaming, smoothed over time, sound kept.

* `colorize_frames(frames, model)`: a generator from RGB frames (any iterable of
  `(H, W, 3)` arrays, for users who decode video themselves) to coloured uint8 RGB
  frames, smoothed over time.
* `colorize_video(src, dst, model)`: a video file to a video file, sound kept.

The modules, one concern each:

  defaults.py   the options' choices and defaults (plain Python, no TensorFlow)
  smoothing.py  `TemporalSmoother`: the 313-way distributions averaged over time,
                held back where L changed, started afresh at scene cuts
  frames.py     `colorize_frames`: the network on batches of frames, then smoothing
                and rendering
  files.py      `colorize_video`, `VideoJob`: decoding, encoding and muxing with
                PyAV in three threads; which paths are videos

Public names are imported on first use, like the package's own (`colornet`), so the
defaults can be read without loading TensorFlow or PyAV.
"""

import importlib

_EXPORTS = {
    "VIDEO_EXTENSIONS": "colornet.video.defaults",
    "MOTION_MODES": "colornet.video.defaults",
    "PRECISIONS": "colornet.video.defaults",
    "X264_PRESETS": "colornet.video.defaults",
    "DEFAULT_TEMPORAL_SMOOTHING": "colornet.video.defaults",
    "DEFAULT_SCENE_THRESHOLD": "colornet.video.defaults",
    "DEFAULT_MOTION": "colornet.video.defaults",
    "DEFAULT_CRF": "colornet.video.defaults",
    "DEFAULT_ENCODER_PRESET": "colornet.video.defaults",
    "DEFAULT_BATCH_SIZE": "colornet.video.defaults",
    "L_AGREEMENT_SIGMA": "colornet.video.smoothing",
    "TemporalSmoother": "colornet.video.smoothing",
    "l_histogram": "colornet.video.smoothing",
    "resolve_precision": "colornet.video.frames",
    "load_video_predictor": "colornet.video.frames",
    "colorize_frames": "colornet.video.frames",
    "is_video_path": "colornet.video.files",
    "output_name": "colornet.video.files",
    "list_videos": "colornet.video.files",
    "VideoSummary": "colornet.video.files",
    "VideoJob": "colornet.video.files",
    "check_options": "colornet.video.files",
    "colorize_video": "colornet.video.files",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'colornet.video' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_EXPORTS})
