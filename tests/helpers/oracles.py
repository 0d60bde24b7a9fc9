"""Independent NumPy float64 implementations of the paper's formulas."""

import numpy as np

from colornet import bins


def soft_encode(ab, k=5, sigma=5.0):
    """Brute force over all 313 bins: dense `(..., 313)` float64 targets."""
    ab = np.asarray(ab, np.float64)
    flat = ab.reshape(-1, 2)
    centres = bins.ab_bins().astype(np.float64)
    d2 = ((flat[:, None, :] - centres[None]) ** 2).sum(-1)
    nearest = np.argsort(d2, axis=1, kind="stable")[:, :k]
    logw = -np.take_along_axis(d2, nearest, 1) / (2 * sigma**2)
    w = np.exp(logw - logw.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    dense = np.zeros((len(flat), 313))
    np.put_along_axis(dense, nearest, w, 1)
    return dense.reshape(*ab.shape[:-1], 313)


def log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def softmax(z):
    return np.exp(log_softmax(z))
