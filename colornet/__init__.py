"""colornet: Colorful Image Colorization (Zhang, Isola, Efros, ECCV 2016) in Keras.

Public names are imported on first use, so `colornet --help` and modules that do
not need TensorFlow start fast.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ab_bins": "colornet.bins",
    "rgb_to_lab": "colornet.color",
    "lab_to_rgb": "colornet.color",
    "SoftEncode": "colornet.layers",
    "AnnealedMeanDecode": "colornet.layers",
    "RebalancedLoss": "colornet.losses",
    "compute_prior": "colornet.prior",
    "Colorizer": "colornet.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'colornet' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
