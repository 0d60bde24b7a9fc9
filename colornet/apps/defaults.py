"""The applications' options: choices and defaults of `evaluate` and `demo`.

Plain Python, importable without TensorFlow, so that the command line shows them in
its help and the modules use the same values (the video options are in
`colornet.apps.video.defaults`).
"""

RESOLUTIONS = ("native", "full")  # evaluate: the network's own square, or each image's own size

DEFAULT_OUT_DIR = "colornet_demo"  # demo
MAX_OWN_PHOTOS = 24  # rows of a grid of one's own photos: a page to look at, not a batch job
