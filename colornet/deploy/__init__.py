"""Deployment: the formats a trained model leaves in, and one interface to load any of them.

* `export.py`: a SavedModel for TF Serving, with its serving signatures.
* `tflite.py`: TFLite conversion (float, float16, dynamic, int8) and `TFLiteColorizer`.
* `predictors.py`: `load_predictor`, any model format behind one `Predictor`.
* `defaults.py`: the options' choices and defaults (plain Python, for the CLI's help).

None of them loads training code (`tests/test_imports.py`). Public names are imported
on first use (`colornet.utils.exports`).
"""

from colornet.utils.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "ExportConfig": "colornet.deploy.export",
        "ExportResult": "colornet.deploy.export",
        "export_saved_model": "colornet.deploy.export",
        "TFLiteColorizer": "colornet.deploy.tflite",
        "TFLiteResult": "colornet.deploy.tflite",
        "Predictor": "colornet.deploy.predictors",
        "load_predictor": "colornet.deploy.predictors",
        "colorize": "colornet.deploy.predictors",
        "suggest_colors": "colornet.deploy.predictors",
    },
)
