"""Colourising video: streaming, smoothed over time, sound kept.

* `colorize_frames(frames, model)`: a generator from RGB or grey frames (any
  iterable of `(H, W, 3)` or `(H, W)` arrays, for users who decode video themselves)
  to coloured uint8 RGB frames, smoothed over time.
* `colorize_video(src, dst, model)`: a video file to a video file, sound kept.

The modules, one concern each:

  defaults.py   the options' choices and defaults (plain Python, no TensorFlow)
  smoothing.py  `TemporalSmoother`: the 313-way distributions averaged over time,
                carried along the camera's motion, held back where L disagrees,
                started afresh at scene cuts
  frames.py     `colorize_frames`: L of batches of frames, the network, then
                smoothing and rendering, each stage in its own thread
  lab.py        sRGB <-> Lab of whole frames (colornet.color's formulas), fast
  kernels.py    the loops over every pixel of a frame, compiled with Numba
  threads.py    bounded queues between threads; a stage moved to its own thread;
                freed memory kept while a video runs
  files.py      `colorize_video`, `VideoJob`: decoding, encoding and muxing with
                PyAV in two more threads; which paths are videos

Public names are imported on first use (`colornet.utils.exports`), so the defaults
(`colornet.apps.video.defaults`) can be read without loading TensorFlow or PyAV.
"""

from colornet.utils.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "TemporalSmoother": "colornet.apps.video.smoothing",
        "l_histogram": "colornet.apps.video.smoothing",
        "resolve_precision": "colornet.apps.video.frames",
        "load_video_predictor": "colornet.apps.video.frames",
        "colorize_frames": "colornet.apps.video.frames",
        "is_video_path": "colornet.apps.video.files",
        "output_name": "colornet.apps.video.files",
        "list_videos": "colornet.apps.video.files",
        "VideoSummary": "colornet.apps.video.files",
        "VideoJob": "colornet.apps.video.files",
        "check_options": "colornet.apps.video.files",
        "colorize_video": "colornet.apps.video.files",
    },
)
