"""Registered Keras layers of colornet."""

from colornet.layers.decode import AnnealedMeanDecode
from colornet.layers.soft_encode import SoftEncode

__all__ = ["AnnealedMeanDecode", "SoftEncode"]
