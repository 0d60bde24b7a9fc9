"""The 313 quantised ab bins, nearest-bin search on their grid, and prior weights.

The bin centres lie on a grid of 10 ab units, so the bins that can be among the k
nearest to any point of a small grid cell form a short list that is computed once.
A point's k nearest bins are then found among that cell's few candidates (13 for
k = 5, 20 for k = 10) instead of all 313: that is what makes soft-encoding cheap
enough to run on the device inside the loss.
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


# A candidate packed into one int32: bin index in bits 0-8, then its centre's grid
# coordinates a / 10 and b / 10, each offset by _GRID_OFFSET, in 10 bits apiece. One
# gather per candidate instead of three (index, a, b) is most of the search's cost.
_GRID_OFFSET = 512
_PAD_GRID = 500  # padding candidates sit 5,000 ab units away: never among the k nearest
_MAX_CHAIN_K = 16  # above this k, tf.math.top_k is cheaper than the min/max chain


@functools.cache
def packed_candidate_table(k):
    """`candidate_table(k)` packed for `nearest_bins`: int32 `(C, cells)`."""
    indices, centres = candidate_table(k)
    padding = indices == c.NUM_BINS
    grid = np.where(padding[..., None], _PAD_GRID, np.round(centres / c.AB_GRID_STEP)).astype(np.int64)
    grid += _GRID_OFFSET
    packed = indices | (grid[..., 0] << 9) | (grid[..., 1] << 19)
    return np.ascontiguousarray(packed.T.astype(np.int32))


def _unpack_centre(packed, shift):
    grid = tf.bitwise.bitwise_and(tf.bitwise.right_shift(packed, shift), 1023) - _GRID_OFFSET
    return tf.cast(grid, tf.float32) * c.AB_GRID_STEP


def nearest_bins(ab, k):
    """Finds each ab value's k nearest bin centres, nearest first.

    Each value's grid cell gives a short list of candidate bins (`candidate_table`).
    A candidate's squared distance and bin index are packed into one int64 key (the
    float's bits order non-negative floats as integers do), so ordering the keys
    orders by distance, ties going to the lower index. k running minima, kept by a
    chain of min/max over the candidates, give the k nearest: elementwise work over
    all values at once, which XLA fuses into one vectorised loop.

    Plain TF ops, valid eagerly, in graphs and under XLA; callers that run often
    compile it (the loss does): compiled, it is several times faster.

    Args:
      ab: `(..., 2)` float ab values; clipped to +-AB_LIMIT.
      k: number of neighbours, 1..313.

    Returns:
      `(indices, sq_distances)`: int32 and float32, both `(..., k)`.
    """
    table = packed_candidate_table(k)
    ab = tf.convert_to_tensor(ab)
    batch_shape = tf.shape(ab)[:-1]
    flat = tf.reshape(tf.clip_by_value(tf.cast(ab, tf.float32), -AB_LIMIT, AB_LIMIT), [-1, 2])
    cell = tf.cast(tf.floor((flat + AB_LIMIT) / _CELL), tf.int32)
    cell = tf.clip_by_value(cell, 0, _NUM_CELLS - 1)
    cell = cell[:, 0] * _NUM_CELLS + cell[:, 1]
    packed = tf.gather(tf.constant(table), cell, axis=1)  # (C, N)
    # Direct differences: more accurate than expanding |x|^2 - 2x.c + |c|^2.
    sq_dist = tf.square(_unpack_centre(packed, 9) - flat[:, 0]) + tf.square(_unpack_centre(packed, 19) - flat[:, 1])
    keys = tf.bitwise.bitwise_or(
        tf.bitwise.left_shift(tf.cast(tf.bitcast(sq_dist, tf.int32), tf.int64), 32),
        tf.cast(tf.bitwise.bitwise_and(packed, 511), tf.int64),
    )
    if k <= _MAX_CHAIN_K:
        # best[j] is the j-th smallest key so far; each candidate sinks into place:
        # through the places filled so far, and what falls off the end is dropped.
        best = []
        for candidate in tf.unstack(keys, num=table.shape[0]):
            for j in range(len(best)):
                if j == k - 1:
                    best[j] = tf.minimum(best[j], candidate)
                else:
                    best[j], candidate = tf.minimum(best[j], candidate), tf.maximum(best[j], candidate)
            if len(best) < k:
                best.append(candidate)
        best = tf.stack(best, axis=-1)
    else:  # the chain grows as k * C; keys are non-negative, so negating is exact
        best = -tf.math.top_k(-tf.transpose(keys), k=k, sorted=True).values
    indices = tf.cast(tf.bitwise.bitwise_and(best, 0xFFFFFFFF), tf.int32)
    found_sq = tf.bitcast(tf.cast(tf.bitwise.right_shift(best, 32), tf.int32), tf.float32)
    out_shape = tf.concat([batch_shape, [k]], axis=0)
    return tf.reshape(indices, out_shape), tf.reshape(found_sq, out_shape)


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
