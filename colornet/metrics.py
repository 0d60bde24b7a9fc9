"""Metrics: training-time cross-entropy without rebalancing."""

import keras
import tensorflow as tf

from colornet import constants as c
from colornet.losses import soft_cross_entropy


@keras.saving.register_keras_serializable(package="colornet")
class UnweightedCrossEntropy(keras.metrics.Mean):
    """Mean per-pixel cross-entropy against the soft targets, without rebalancing.

    In nats per output pixel, so it reads the same at any crop size (the rebalanced
    loss sums over pixels, as the release did). A uniform prediction scores
    ln 313 = 5.75.

    Args:
      k, sigma: soft-encoding neighbours and Gaussian width (ab units).
    """

    def __init__(self, k=c.SOFT_ENCODE_K, sigma=c.SOFT_ENCODE_SIGMA, name="unweighted_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.k = k
        self.sigma = float(sigma)

    def update_state(self, y_true, y_pred, sample_weight=None):
        ce, _ = soft_cross_entropy(y_true, y_pred, self.k, self.sigma)
        return super().update_state(tf.reduce_mean(ce, axis=[1, 2]), sample_weight)

    def get_config(self):
        return {**super().get_config(), "k": self.k, "sigma": self.sigma}
