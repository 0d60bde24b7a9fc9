"""The network: Table 4 backbone, its configuration, presets and the `Colorizer` model.

`config.py` and `presets.py` are plain Python: the command line reads the preset
names from them without loading TensorFlow. The building blocks (`CropToStride`,
`NormalizeL`, `build_backbone`) are the registered Keras layers and functions a
custom network reuses.
"""

from colornet.utils.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "Colorizer": "colornet.models.colorizer",
        "as_hint_model": "colornet.models.colorizer",
        "without_hints": "colornet.models.colorizer",
        "CropToStride": "colornet.models.backbone",
        "apply_backbone": "colornet.models.backbone",
        "build_backbone": "colornet.models.backbone",
        "NormalizeL": "colornet.models.normalization",
        "ModelConfig": "colornet.models.config",
        "PRESETS": "colornet.models.presets",
        "get_preset": "colornet.models.presets",
        "SolverConfig": "colornet.models.solver",
        "paper_optimizer": "colornet.models.solver",
    },
)
