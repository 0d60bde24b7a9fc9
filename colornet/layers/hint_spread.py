"""Spreading user hints over the regions they fall in, by feature affinity.

A hint says "this point is this colour"; the person means the region around it: the
dress, the sky, the wall. The network's last features already group what belongs
together (they are what it colours by), so each output pixel looks for the hints
whose features are like its own and takes their colour in proportion:

    score(i, j) = cos(f_i, f_j) / T - d(i, j)^2 / (2 R^2)      (j: a hinted cell)
    a(i, .)     = softmax over the hinted cells and a "none of them" score s0 / T
    ab_i        = sum_j a(i, j) ab_j / sum_j a(i, j),   m_i = sum_j a(i, j)
    p_i        <- (1 - g m_i) p_i + g m_i q(ab_i)

p is the network's distribution over the 313 bins, q(ab) the hint colour's (a
Gaussian of width sigma over the bins, as the soft targets) and g the strength: where
a pixel matches a hint fully and g = 1, its colour is the hint's, however sure the
network was of another; where it matches none, the network's own.

f are the features of the last convolution before the 313-way head, at the logits'
1/4 resolution; d is the distance between cells in logits pixels (R = 0: none). A
pixel whose features resemble no hint (cosine below s0) keeps its own prediction;
a strong edge separates features, so a hint does not leak past it. The output is
logits again (log p up to a constant per pixel); with no hint they are unchanged,
exactly. Not in the 2017 paper, whose network must learn all
of this from its inputs: measured in `docs/hints.md`, the learned path gained little
from the fine-tune colornet can afford on a CPU, this one a lot with no training.

Cost at 256 x 256: at most `MAX_CELLS` hinted cells are compared with 4,096 pixels
(a 4096 x 128 x C product; C = 128 for the package's presets), small beside the network
itself. Work that never has hints (video) runs the network without its hint
inputs (`colornet.models.without_hints`).
"""

import keras
import numpy as np
import tensorflow as tf

from colornet import bins
from colornet import constants as c

# Hinted cells (logits pixels holding a hint) compared with every pixel; beyond this
# many, the hints of the weakest cells (least covered) are left to the network alone.
MAX_CELLS = 128
_NEGATIVE = -1e9


@keras.saving.register_keras_serializable(package="colornet")
class HintSpread(keras.layers.Layer):
    """Mixes into each pixel's distribution the colours of the hints whose features
    match its own (the module docstring's formula).

    Inputs: `[logits (B, h, w, 313), features (B, h, w, C), hints (B, H, W, 3)]`,
    the hint map at the input resolution (`colornet.hints`: a, b in ab units and a
    0/1 mask) with h = ceil(H / 4). Output: logits, float32, of the mixed
    distributions (the input logits, unchanged, where no hint reaches).

    Args:
      strength: g in [0, 1], the share of a fully matched pixel's distribution the hint's
        colour takes (0: off).
      temperature: T, the cosine similarity's scale.
      threshold: s0, the similarity below which a pixel ignores a hint.
      radius: R in logits pixels (0: no distance term).
      sigma: width, in ab units, of the hint colour's soft encoding over the bins.
    """

    def __init__(self, strength, temperature, threshold, radius=0.0, sigma=c.SOFT_ENCODE_SIGMA, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength!r}")
        self.strength = float(strength)
        self.temperature = float(temperature)
        self.threshold = float(threshold)
        self.radius = float(radius)
        self.sigma = float(sigma)
        centres = np.asarray(bins.ab_bins(), np.float32)
        self._centres = tf.constant(centres)
        self._half_centre_norms = tf.constant(0.5 * np.square(centres).sum(-1))

    def call(self, inputs):
        logits, features, hints = inputs
        logits = tf.cast(logits, tf.float32)
        if self.strength == 0.0:
            return logits
        shape = tf.shape(logits)
        # Each cell's share of hinted input pixels and their mean ab.
        pooled = tf.nn.avg_pool2d(tf.cast(hints, tf.float32), c.OUTPUT_STRIDE, c.OUTPUT_STRIDE, "SAME")
        pooled = tf.reshape(pooled[:, : shape[1], : shape[2]], [shape[0], -1, 3])
        return logits + self._mixed(logits, pooled, features, shape)

    def _mixed(self, logits, pooled, features, shape):
        """What mixing each pixel's distribution with its hints' colour adds to its logits."""
        batch, height, width = shape[0], shape[1], shape[2]
        cells = height * width
        features = tf.reshape(tf.cast(features, tf.float32), [batch, cells, -1])
        # Centred on the image's mean feature: ReLU features all point into one orthant,
        # so raw cosines are high between unrelated regions.
        features = tf.math.l2_normalize(features - tf.reduce_mean(features, 1, keepdims=True), -1)
        cover = pooled[..., 2]
        cell_ab = pooled[..., :2] / tf.maximum(cover, 1e-6)[..., None]
        cover, chosen = tf.math.top_k(cover, tf.minimum(MAX_CELLS, cells))
        queries = features / self.temperature
        keys = tf.gather(features, chosen, batch_dims=1)  # (B, K, C)
        if self.radius > 0.0:
            # -|p - q|^2 / (2 R^2) = p.q / R^2 - |p|^2 / (2 R^2) - |q|^2 / (2 R^2), as one
            # more product: queries [p / R^2, -|p|^2 / (2 R^2), 1], keys [q, 1, -|q|^2 / (2 R^2)].
            grid = tf.stack(tf.meshgrid(tf.range(height), tf.range(width), indexing="ij"), -1)
            where = tf.broadcast_to(tf.cast(tf.reshape(grid, [1, cells, 2]), tf.float32), [batch, cells, 2])
            half_norm = tf.reduce_sum(tf.square(where), -1, keepdims=True) / (2.0 * self.radius**2)
            ones = tf.ones_like(half_norm)
            queries = tf.concat([queries, where / self.radius**2, -half_norm, ones], -1)
            key_where = tf.gather(tf.concat([where, ones, -half_norm], -1), chosen, batch_dims=1)
            keys = tf.concat([keys, key_where], -1)
        scores = tf.matmul(queries, keys, transpose_b=True)  # (B, N, K)
        scores += tf.where(cover > 0.0, 0.0, _NEGATIVE)[:, None, :]
        none = tf.fill([batch, cells, 1], self.threshold / self.temperature)
        weights = tf.nn.softmax(tf.concat([scores, none], -1), -1)[..., :-1]
        mass = tf.reduce_sum(weights, -1, keepdims=True)
        ab = tf.matmul(weights, tf.gather(cell_ab, chosen, batch_dims=1))
        ab /= tf.maximum(mass, 1e-6)
        # The colour as a distribution over the bins: a Gaussian of width sigma, its
        # exponent -|ab - centre|^2 / (2 sigma^2) up to a per-pixel constant (softmax drops it).
        exponent = (tf.matmul(ab, self._centres, transpose_b=True) - self._half_centre_norms) / self.sigma**2
        hinted = tf.nn.softmax(exponent, -1)
        share = tf.reshape(self.strength * mass, [batch, height, width, 1])
        hinted = tf.reshape(hinted, [batch, height, width, c.NUM_BINS])
        # log((1 - s) p + s q) = logits + log(1 - s + s q / p) up to a constant, with
        # q / p = q exp(logsumexp(logits) - logits), its exponent bounded (float32).
        inverse_p = tf.exp(tf.minimum(tf.reduce_logsumexp(logits, -1, keepdims=True) - logits, 80.0))
        return tf.math.log(1.0 - share + share * hinted * inverse_p)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def get_config(self):
        return {
            **super().get_config(),
            "strength": self.strength,
            "temperature": self.temperature,
            "threshold": self.threshold,
            "radius": self.radius,
            "sigma": self.sigma,
        }
