"""The deployment options' choices and defaults.

Plain Python, importable without TensorFlow, so that the command line shows them in
its help (`colornet export --help`, `colornet tflite --help`) and `export.py` and
`tflite.py` use the same values. The first of each list of choices is the default.
"""

# SavedModel (`export.py`).
PRECISIONS = ("float32", "bfloat16")  # bfloat16: the network in bfloat16, for CPUs that have it
# Largest image (width x height, in pixels) the serving signatures accept. The
# graph holds a few float32 copies of a full-resolution image (Lab, upsampled ab,
# RGB), about 60 bytes per pixel at the peak: 16.8 megapixels (4096 x 4096) is
# about 1 GB per image in flight. `colornet.constants.MAX_PIXELS` (50 MP) suits a
# training pipeline, not a server that takes images from anyone.
SERVING_MAX_PIXELS = 4096 * 4096

# TFLite (`tflite.py`).
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
DEFAULT_CALIBRATION_IMAGES = 100
DEFAULT_CALIBRATION_PERCENTILE = "auto"
AUTO_PERCENTILES = (99.9, 99.99, 100.0)  # what "auto" chooses from
