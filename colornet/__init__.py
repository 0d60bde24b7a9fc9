"""colornet: Colorful Image Colorization (Zhang, Isola, Efros, ECCV 2016) in Keras."""

from colornet.bins import ab_bins
from colornet.color import lab_to_rgb, rgb_to_lab
from colornet.layers import AnnealedMeanDecode, SoftEncode
from colornet.losses import RebalancedLoss
from colornet.prior import compute_prior

__version__ = "0.1.0"

__all__ = [
    "AnnealedMeanDecode",
    "RebalancedLoss",
    "SoftEncode",
    "ab_bins",
    "compute_prior",
    "lab_to_rgb",
    "rgb_to_lab",
]
