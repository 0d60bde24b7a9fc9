"""Applications: what users run on their photos and videos, built on `deploy.predictors`.

* `batch.py`: `colorize_files`: files, folders and globs to PNGs (videos handed to
  `video/`), output names, skipping, `ColorizeSummary`.
* `video/`: colourising video, streamed and smoothed over time, sound kept.
* `evaluate.py`: the paper's metrics of a model beside the grey baseline.
* `demo.py`: `colornet demo`: sample photos and a page to look at.
* `defaults.py`: the options of `evaluate` and `demo` (plain Python, for the CLI).

Public names are imported on first use (`colornet.utils.exports`); the function
`evaluate` is `colornet.evaluate` (here `colornet.apps.evaluate` is its module).
"""

from colornet.utils.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "ColorizeSummary": "colornet.apps.batch",
        "colorize_files": "colornet.apps.batch",
        "DemoResult": "colornet.apps.demo",
        "run_demo": "colornet.apps.demo",
        "evaluate_hints": "colornet.apps.evaluate",
        "colorize_video": "colornet.apps.video.files",
        "colorize_frames": "colornet.apps.video.frames",
    },
)
