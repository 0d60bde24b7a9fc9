"""Checking what a written plot shows, from its pixels."""

import numpy as np


def _near(pixels, colour):
    # Agg rounds channel values at .5 the other way from NumPy: one level of slack.
    return np.abs(pixels.astype(int) - colour).max(-1) <= 1


def scatter_drawn(panel, points, colours, window=2):
    """Share of `points` ((N, 2) data coordinates) drawn in their `colours` ((N, 3)
    uint8) in `panel` ((H, W, 3) uint8 pixels of one axes' region).

    The affine map from data to pixels is fitted on the colours that occur once,
    located by the median of their pixels (outliers, e.g. the same colour in a
    colour bar, dropped); each point then counts if its colour is within `window`
    pixels of where the map puts it. Right colours in wrong places score near 0.
    """
    colours = np.asarray(colours).astype(int)
    keys = [tuple(c) for c in colours]
    once = [i for i, key in enumerate(keys) if keys.count(key) == 1]
    found, centres = [], []
    for i in once:
        ys, xs = np.nonzero(_near(panel, colours[i]))
        if len(ys) >= 10:
            found.append(i)
            centres.append((np.median(xs), np.median(ys)))
    if len(found) < 3:
        return 0.0
    found, centres = np.array(found), np.array(centres)
    design = np.c_[points[found], np.ones(len(found))]
    keep = np.ones(len(found), bool)
    for _ in range(2):
        fit, *_ = np.linalg.lstsq(design[keep], centres[keep], rcond=None)
        keep = np.abs(design @ fit - centres).max(1) < 3
        if keep.sum() < 3:
            return 0.0
    xy = np.rint(np.c_[points, np.ones(len(points))] @ fit).astype(int)
    hits = [
        _near(panel[max(y - window, 0): y + window + 1, max(x - window, 0): x + window + 1], colour).any()
        for (x, y), colour in zip(xy, colours)
    ]
    return float(np.mean(hits))


def pixels_of(image, colour):
    """Number of pixels of `image` ((H, W, 3) uint8) in `colour` (within one level)."""
    return int(_near(image, np.asarray(colour)).sum())
