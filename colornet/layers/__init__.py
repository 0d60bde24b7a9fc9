"""Registered Keras layers of colornet."""

from colornet.layers.decode import AnnealedMeanDecode
from colornet.layers.hint_spread import HintSpread
from colornet.layers.soft_encode import SoftEncode

__all__ = ["AnnealedMeanDecode", "HintSpread", "SoftEncode"]
