"""The network: Table 4 backbone, its configuration, presets and the `Colorizer` model."""

from colornet.models.backbone import CropToStride, apply_backbone, build_backbone
from colornet.models.colorizer import Colorizer
from colornet.models.config import ModelConfig
from colornet.models.normalization import NormalizeL
from colornet.models.presets import PRESETS, get_preset
from colornet.models.solver import SolverConfig, paper_optimizer

__all__ = [
    "PRESETS",
    "Colorizer",
    "CropToStride",
    "ModelConfig",
    "NormalizeL",
    "SolverConfig",
    "apply_backbone",
    "build_backbone",
    "get_preset",
    "paper_optimizer",
]
