"""colornet: Colorful Image Colorization (Zhang, Isola, Efros, ECCV 2016) in Keras.

Public names are imported on first use, so `colornet --help` and modules that do
not need TensorFlow start fast. Training and evaluation live in their modules:
`colornet.train.train(config)`, `colornet.evaluate.evaluate(...)`.
"""

import importlib

from colornet.version import __version__ as __version__

_EXPORTS = {
    "ab_bins": "colornet.bins",
    "rgb_to_lab": "colornet.color",
    "lab_to_rgb": "colornet.color",
    "SoftEncode": "colornet.layers",
    "AnnealedMeanDecode": "colornet.layers",
    "RebalancedLoss": "colornet.losses",
    "compute_prior": "colornet.prior",
    "Colorizer": "colornet.models",
    "ModelConfig": "colornet.models",
    "PRESETS": "colornet.models",
    "get_preset": "colornet.models",
    "colorize": "colornet.predictors",
    "load_predictor": "colornet.predictors",
    "suggest_colors": "colornet.predictors",
    "colorize_video": "colornet.video",
    "colorize_frames": "colornet.video",
    "TrainConfig": "colornet.train",
    "train_dataset": "colornet.data",
    "eval_dataset": "colornet.data",
    "decode_image": "colornet.data",
    "import_official": "colornet.official",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        if _EXPORTS[name] == "colornet.models":
            # Registers the released weights as presets of `Colorizer.from_preset`.
            importlib.import_module("colornet.pretrained")
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'colornet' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
