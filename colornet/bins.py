"""The 313 quantised ab bins, nearest-bin search on their grid, and prior weights.

The bin centres lie on a grid of 10 ab units, so the bins that can be among the k
nearest to any point of a small grid cell form a short list that is computed once.
A point's k nearest bins are then found among that cell's few candidates (about 20
for k = 5) instead of all 313: that is what makes soft-encoding cheap enough to run
on the device inside the loss.
"""

import functools

import numpy as np
import tensorflow as tf

from colornet import constants as c

# Search table geometry. ab values are clipped to +-AB_LIMIT before the search: every
# sRGB colour has |a|, |b| < 128, so clipping only affects values that are not colours.
AB_LIMIT = 140.0
_CELL = 5.0  # ab units per table cell; smaller cells mean fewer candidates per cell
_NUM_CELLS = int(2 * AB_LIMIT / _CELL)
_FAR = 1.0e4  # centre of the padding candidate: never among the k nearest


@functools.cache
def _bins_float64():
    rows = [
        (a, b)
        for a, b_min, b_max in c.AB_BIN_TABLE
        for b in range(b_min, b_max + 1, int(c.AB_GRID_STEP))
    ]
    bins = np.array(rows, dtype=np.float64)
    if len(bins) != c.NUM_BINS:
        raise AssertionError(f"bin table has {len(bins)} rows, expected {c.NUM_BINS}")
    bins.flags.writeable = False
    return bins


def ab_bins():
    """Returns the released 313 ab bin centres as a `(313, 2)` float32 array.

    Ordered a-major, then b ascending; index 120 is (0, 0).
    """
    return _bins_float64().astype(np.float32)


@functools.cache
def candidate_table(k):
    """For each search cell, the bins that can be among the k nearest of its points.

    Returns:
      `(indices, centres)`: int32 `(cells, C)` and float32 `(cells, C, 2)`, where
      cells = `_NUM_CELLS ** 2` (a-major) and C is the longest list; shorter lists
      are padded with index `NUM_BINS` at a far-away centre.
    """
    if not 1 <= k <= c.NUM_BINS:
        raise ValueError(f"k must be in [1, {c.NUM_BINS}], got {k}")
    bins = _bins_float64()
    lows = -AB_LIMIT + _CELL * np.arange(_NUM_CELLS)
    a0, b0 = [x.ravel() for x in np.meshgrid(lows, lows, indexing="ij")]
    lo = np.stack([a0, b0], axis=-1)[:, None, :]  # (cells, 1, 2)
    hi = lo + _CELL
    # Farthest and nearest distance from each bin to each cell (a rectangle).
    far = np.maximum(np.abs(bins - lo), np.abs(bins - hi))
    near = np.maximum(np.maximum(lo - bins, bins - hi), 0.0)
    far_dist = np.sqrt((far**2).sum(-1))
    near_dist = np.sqrt((near**2).sum(-1))
    # Any point of the cell has k bins within the k-th smallest farthest distance,
    # so a bin nearer than that to no point of the cell is never among its k nearest.
    bound = np.sort(far_dist, axis=1)[:, k - 1 : k]
    is_candidate = near_dist <= bound + 1e-6
    width = int(is_candidate.sum(1).max())
    indices = np.full((len(lo), width), c.NUM_BINS, dtype=np.int32)
    for cell, mask in enumerate(is_candidate):
        found = np.flatnonzero(mask)
        indices[cell, : len(found)] = found
    padded = np.concatenate([bins, [[_FAR, _FAR]]]).astype(np.float32)
    return indices, padded[indices]


def nearest_bins(ab, k):
    """Finds each ab value's k nearest bin centres, nearest first.

    Plain TF ops, valid eagerly, in graphs and under XLA. The k passes of min and
    mask over the cell's short candidate list beat `tf.math.top_k` several times
    over once XLA fuses them, so callers that run often compile it (the loss does).

    Args:
      ab: `(..., 2)` float ab values; clipped to +-AB_LIMIT.
      k: number of neighbours, 1..313.

    Returns:
      `(indices, sq_distances)`: int32 and float32, both `(..., k)`.
    """
    indices_table, centres_table = candidate_table(k)
    ab = tf.convert_to_tensor(ab)
    batch_shape = tf.shape(ab)[:-1]
    flat = tf.reshape(tf.clip_by_value(tf.cast(ab, tf.float32), -AB_LIMIT, AB_LIMIT), [-1, 2])
    cell = tf.cast(tf.floor((flat + AB_LIMIT) / _CELL), tf.int32)
    cell = tf.clip_by_value(cell, 0, _NUM_CELLS - 1)
    cell = cell[:, 0] * _NUM_CELLS + cell[:, 1]
    candidates = tf.gather(tf.constant(indices_table), cell)  # (N, C)
    centres = tf.gather(tf.constant(centres_table), cell)  # (N, C, 2)
    # Direct differences: more accurate than expanding |x|^2 - 2x.c + |c|^2.
    sq_dist = tf.reduce_sum(tf.square(centres - flat[:, None, :]), axis=-1)
    columns = tf.range(indices_table.shape[1])[None, :]
    found_indices, found_sq = [], []
    for _ in range(k):
        best = tf.argmin(sq_dist, axis=1, output_type=tf.int32)
        found_sq.append(tf.reduce_min(sq_dist, axis=1))
        found_indices.append(tf.gather(candidates, best, batch_dims=1))
        sq_dist = tf.where(tf.equal(columns, best[:, None]), np.float32(np.inf), sq_dist)
    out_shape = tf.concat([batch_shape, [k]], axis=0)
    return (
        tf.reshape(tf.stack(found_indices, axis=-1), out_shape),
        tf.reshape(tf.stack(found_sq, axis=-1), out_shape),
    )


def rebalancing_weights(probs, lam=c.PRIOR_LAMBDA):
    """Class-rebalancing weights from a smoothed prior (paper Eq. 4).

    w = ((1 - lam) * p + lam / Q)^-1, scaled so that sum(p * w) = 1.

    Args:
      probs: `(313,)` smoothed ab-bin probabilities (non-negative, summing to 1).
      lam: weight of the uniform distribution in the mix, in [0, 1].

    Returns:
      `(313,)` float64 weights.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (c.NUM_BINS,):
        raise ValueError(f"probs must have shape ({c.NUM_BINS},), got {probs.shape}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0) or probs.sum() <= 0:
        raise ValueError("probs must be finite, non-negative and not all zero")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    if lam == 0.0 and np.any(probs == 0):
        raise ValueError("lam = 0 needs every bin to have non-zero probability")
    probs = probs / probs.sum()
    weights = 1.0 / ((1.0 - lam) * probs + lam / c.NUM_BINS)
    return weights / np.sum(probs * weights)
