"""The video options' choices and defaults.

Plain Python, importable without TensorFlow or PyAV, so that a command line can show
them in its help and check them before loading anything.
"""

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
MOTION_MODES = ("camera", "flow", "agreement", "none")
PRECISIONS = ("auto", "float32", "bfloat16", "int8")  # int8: the bundled model's LiteRT form
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")

# Chosen by `benchmarks/video.py --quality` (docs/video.md, "Temporal smoothing").
DEFAULT_TEMPORAL_SMOOTHING = 0.95
DEFAULT_SCENE_THRESHOLD = 0.3
DEFAULT_MOTION = "camera"  # needs OpenCV (the video extra)
DEFAULT_CRF = 18  # x264's scale: 0 lossless, 51 worst; 18 is about visually lossless
DEFAULT_ENCODER_PRESET = "veryfast"
DEFAULT_BATCH_SIZE = 8
