"""colornet: Colorful Image Colorization (Zhang, Isola, Efros, ECCV 2016) in Keras.

The facade: what users call, imported on first use (`colornet.utils.exports`), so
`colornet --help` and the modules that do not need TensorFlow start fast. The
packages below it say their role: the method's vocabulary at the top (`color`,
`bins`, `hints`, `prior`, `losses`, `metrics`, `layers`, `models`, `data`,
`inference`), then `training`, `deploy`, `weights`, `apps`, `cli` and `utils`
(docs/architecture.md).
"""

import importlib

from colornet.utils.exports import lazy_exports
from colornet.version import __version__ as __version__

_EXPORTS = {
    # The method.
    "ab_bins": "colornet.bins",
    "rgb_to_lab": "colornet.color",
    "lab_to_rgb": "colornet.color",
    "SoftEncode": "colornet.layers",
    "AnnealedMeanDecode": "colornet.layers",
    "HintSpread": "colornet.layers",
    "RebalancedLoss": "colornet.losses",
    "compute_prior": "colornet.prior",
    "Colorizer": "colornet.models",
    "ModelConfig": "colornet.models",
    "PRESETS": "colornet.models",
    "get_preset": "colornet.models",
    "as_hint_model": "colornet.models",
    # Data.
    "train_dataset": "colornet.data",
    "eval_dataset": "colornet.data",
    "decode_image": "colornet.data",
    "prepare": "colornet.data",
    # Training.
    "TrainConfig": "colornet.training.config",
    "train": "colornet.training.train",
    # Deployment.
    "colorize": "colornet.deploy.predictors",
    "load_predictor": "colornet.deploy.predictors",
    "suggest_colors": "colornet.deploy.predictors",
    "export_saved_model": "colornet.deploy.export",
    # Released weights.
    "import_official": "colornet.weights.official",
    # Applications.
    "colorize_files": "colornet.apps.batch",
    "colorize_video": "colornet.apps.video",
    "colorize_frames": "colornet.apps.video",
    "evaluate": "colornet.apps.evaluate",
    # Errors a user can cause.
    "ColornetError": "colornet.utils.errors",
}

_getattr, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)


def __getattr__(name):
    if _EXPORTS.get(name) == "colornet.models":
        # Registers the released weights as presets of `Colorizer.from_preset`.
        importlib.import_module("colornet.weights.pretrained")
    return _getattr(name)
