"""The empirical ab prior and its class-rebalancing weights (paper Sec. 2.2).

Images are converted to Lab at the training resolution and every pixel's ab,
rounded to whole ab units, is counted in a 256 x 256 histogram. The histogram is
smoothed with a Gaussian (sigma = 5 ab units), each histogram cell's mass is given
to its nearest of the 313 bins, and the result, mixed with uniform (lambda = 0.5),
gives the weights w ~ 1 / mix normalised so that sum(p * w) = 1 (Eq. 4).

File format (`.npz`, written atomically by `save_prior`):
  probs     (313,) float64  smoothed bin probabilities p~, summing to 1
  weights   (313,) float64  rebalancing weights w, with sum(p~ * w) = 1
  counts    (313,) int64    unsmoothed pixel counts per nearest bin
  bins      (313, 2) float32 the bin centres the arrays refer to
  metadata  JSON string: format_version, images, skipped, pixels, resize, sigma,
            lambda, source
"""

import dataclasses
import functools
import json
import os

import numpy as np
import tensorflow as tf

from colornet import bins, color
from colornet import constants as c
from colornet.utils import files
from colornet.utils.console import progress_bar
from colornet.utils.errors import ColornetError

FORMAT_VERSION = 1
_AB_OFFSET = 128  # histogram cell i holds ab value i - 128
_AB_CELLS = 256
DEFAULT_PRIOR_PATH = os.path.join(os.path.dirname(__file__), "assets", "prior.npz")


@dataclasses.dataclass(frozen=True)
class Prior:
    """A smoothed ab prior over the 313 bins and its rebalancing weights."""

    probs: np.ndarray
    weights: np.ndarray
    counts: np.ndarray
    metadata: dict


@tf.function(reduce_retracing=True)
def _ab_histogram(rgb):
    """Counts the rounded ab of a `(H, W, 3)` uint8 image in a flat 256*256 histogram."""
    ab = color.rgb_to_lab(rgb)[..., 1:]
    cell = tf.clip_by_value(tf.cast(tf.round(ab), tf.int32) + _AB_OFFSET, 0, _AB_CELLS - 1)
    flat = tf.reshape(cell[..., 0] * _AB_CELLS + cell[..., 1], [-1])
    return tf.math.bincount(flat, minlength=_AB_CELLS**2, maxlength=_AB_CELLS**2, dtype=tf.int64)


def _gaussian_smooth(histogram, sigma):
    radius = int(np.ceil(4 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    smooth = np.apply_along_axis(np.convolve, 0, histogram, kernel, mode="same")
    return np.apply_along_axis(np.convolve, 1, smooth, kernel, mode="same")


@functools.lru_cache(maxsize=1)
def _cell_to_bin():
    values = np.arange(_AB_CELLS, dtype=np.float32) - _AB_OFFSET
    grid = np.stack(np.meshgrid(values, values, indexing="ij"), axis=-1)
    nearest, _ = bins.nearest_bins(grid, 1)
    return nearest.numpy()[..., 0].ravel()


def prior_from_histogram(histogram, sigma=c.PRIOR_SIGMA, lam=c.PRIOR_LAMBDA, metadata=None):
    """Builds a `Prior` from a flat or `(256, 256)` histogram of rounded ab values.

    Cell `[i, j]` counts pixels with a = i - 128, b = j - 128.
    """
    histogram = np.asarray(histogram, dtype=np.float64).reshape(_AB_CELLS, _AB_CELLS)
    if histogram.sum() <= 0:
        raise ColornetError("no pixels were counted: the prior needs at least one readable image")
    cell_to_bin = _cell_to_bin()
    counts = np.bincount(cell_to_bin, weights=histogram.ravel(), minlength=c.NUM_BINS)
    smooth = _gaussian_smooth(histogram, sigma) if sigma > 0 else histogram
    probs = np.bincount(cell_to_bin, weights=smooth.ravel(), minlength=c.NUM_BINS)
    probs /= probs.sum()
    metadata = {
        "format_version": FORMAT_VERSION,
        **(metadata or {}),
        "pixels": int(histogram.sum()),
        "sigma": float(sigma),
        "lambda": float(lam),
    }
    return Prior(
        probs=probs,
        weights=bins.rebalancing_weights(probs, lam),
        counts=np.rint(counts).astype(np.int64),
        metadata=metadata,
    )


def compute_prior(
    images, sigma=c.PRIOR_SIGMA, lam=c.PRIOR_LAMBDA, total=None, metadata=None, verbose=1
):
    """Computes the ab prior of a stream of images.

    Args:
      images: iterable (e.g. a `tf.data.Dataset`) of `(H, W, 3)` uint8 RGB images at
        the resolution to count at (the training resolution).
      sigma: Gaussian smoothing in ab units.
      lam: weight of the uniform distribution in the mix.
      total: number of images, for the progress bar.
      metadata: extra entries to record (e.g. source, resize).
      verbose: 1 shows a progress bar.

    Returns:
      A `Prior`.
    """
    histogram = np.zeros(_AB_CELLS**2, dtype=np.int64)
    count = 0
    with progress_bar(total, verbose) as progress:
        for image in images:
            histogram += _ab_histogram(image).numpy()
            count += 1
            if progress:
                progress.update(count)
    return prior_from_histogram(
        histogram, sigma, lam, {**(metadata or {}), "images": count}
    )


def compute_prior_from_files(source, resize=c.TRAIN_RESIZE, sigma=c.PRIOR_SIGMA, lam=c.PRIOR_LAMBDA, verbose=1):
    """Computes the prior of image files, resized so the shorter side is `resize`.

    Unreadable files are skipped and counted in `metadata["skipped"]`.
    """
    from colornet import data

    images, skipped = data.decoded_images(source, resize=resize)
    prior = compute_prior(
        images,
        sigma,
        lam,
        total=skipped.listed,
        metadata={"resize": resize, "source": str(source)},
        verbose=verbose,
    )
    prior.metadata["skipped"] = skipped.count
    return prior


def check_prior_path(path):
    """`files.check_writable_file`, and the name must end with `.npz`; returns the path."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        raise ColornetError(f"prior file name must end with .npz, got {path!r}")
    return files.check_writable_file(path)


def save_prior(prior, path):
    """Writes a prior `.npz` atomically (a temporary file, then a rename).

    Raises:
      ColornetError: `check_prior_path` refuses `path`.
    """
    path = check_prior_path(path)
    with files.atomic_path(path, ".npz") as tmp:
        np.savez(
            tmp,
            probs=prior.probs,
            weights=prior.weights,
            counts=prior.counts,
            bins=bins.ab_bins(),
            metadata=np.array(json.dumps(prior.metadata, sort_keys=True)),
        )


def load_prior(path):
    """Reads a prior `.npz` written by `save_prior`, checking it fits the 313 bins."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in ("probs", "weights", "counts", "bins", "metadata")}
    except FileNotFoundError:
        raise ColornetError(f"{path}: no such prior file") from None
    except (OSError, ValueError, KeyError) as error:
        raise ColornetError(f"{path}: not a colornet prior file ({error})") from None
    if not np.array_equal(arrays["bins"], bins.ab_bins()):
        raise ColornetError(f"{path}: its bins differ from colornet's 313 ab bins")
    if arrays["weights"].shape != (c.NUM_BINS,) or not np.all(np.isfinite(arrays["weights"])):
        raise ColornetError(f"{path}: weights must be {c.NUM_BINS} finite numbers")
    return Prior(
        probs=arrays["probs"],
        weights=arrays["weights"],
        counts=arrays["counts"],
        metadata=json.loads(str(arrays["metadata"])),
    )


@functools.lru_cache(maxsize=1)
def default_prior():
    """The package's prior, computed on the train split of our photo pool (README)."""
    return load_prior(DEFAULT_PRIOR_PATH)


PRIOR_NAMES = ("default", "uniform")


def rebalancing_weights_of(prior):
    """The 313 class-rebalancing weights a training run used, from what names its prior.

    Args:
      prior: "default" (the package's prior, what `colornet train` uses unless told
        otherwise), "uniform" (no rebalancing: every weight 1), the path of a prior
        `.npz` written by `colornet prior`, the path of a `.npy` of 313 smoothed bin
        probabilities (the form of the authors' `prior_probs.npy`, mixed with uniform
        at lambda = 0.5 as they trained), a `Prior`, or 313 weights.

    Returns:
      `(313,)` float64 weights.

    Raises:
      ColornetError: a name or file that is none of these.
    """
    if isinstance(prior, Prior):
        return np.asarray(prior.weights, np.float64)
    if isinstance(prior, (str, os.PathLike)):
        name = os.fspath(prior)
        if name == "default":
            return np.asarray(default_prior().weights, np.float64)
        if name == "uniform":
            return np.ones(c.NUM_BINS)
        if name.endswith(".npy"):
            return _weights_of_probabilities_file(name)
        if name.endswith(".npz"):
            return np.asarray(load_prior(name).weights, np.float64)
        raise ColornetError(
            f"prior {name!r}: give 'default', 'uniform', a prior .npz (colornet prior) or a .npy of "
            f"{c.NUM_BINS} bin probabilities"
        )
    weights = np.asarray(prior, np.float64)
    if weights.shape != (c.NUM_BINS,) or not np.all(np.isfinite(weights)) or np.any(weights <= 0):
        raise ColornetError(f"prior weights must be {c.NUM_BINS} finite positive numbers, got shape {weights.shape}")
    return weights


def _weights_of_probabilities_file(path):
    try:
        probs = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ColornetError(f"{path}: no such prior file") from None
    except (OSError, ValueError) as error:
        raise ColornetError(f"{path}: not a .npy array ({error})") from None
    try:
        return bins.rebalancing_weights(np.ravel(probs))
    except (ValueError, TypeError) as error:
        raise ColornetError(f"{path}: not {c.NUM_BINS} bin probabilities ({error})") from None


def describe(prior):
    """A few lines summarising a prior: its data, peak bins and weight range."""
    centres = bins.ab_bins()
    meta = prior.metadata
    top = np.argsort(prior.probs)[::-1][:3]
    peaks = ", ".join(f"({centres[i][0]:g}, {centres[i][1]:g}) {prior.probs[i]:.4f}" for i in top)
    low, high = np.argmin(prior.weights), np.argmax(prior.weights)
    return "\n".join([
        f"images {meta.get('images')}, skipped {meta.get('skipped', 0)}, pixels {meta.get('pixels')}, "
        f"shorter side {meta.get('resize')}, sigma {meta.get('sigma')}, lambda {meta.get('lambda')}",
        f"bins with pixels: {int((prior.counts > 0).sum())} of {c.NUM_BINS}",
        f"most probable bins (a, b) p: {peaks}",
        f"weights: min {prior.weights[low]:.4f} at ({centres[low][0]:g}, {centres[low][1]:g}), "
        f"max {prior.weights[high]:.4f} at ({centres[high][0]:g}, {centres[high][1]:g})",
    ])


def plot_prior(prior, path):
    """Writes a PNG of the bins coloured by their colour (L = 50) and by log10 p~.

    The two panels of the paper's Figure 3, to sanity-check a prior.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ColornetError(
            "--plot needs matplotlib: pip install 'colornet-keras[plot]'"
        ) from None
    centres = bins.ab_bins()
    lab = np.concatenate([np.full((c.NUM_BINS, 1), 50.0, np.float32), centres], axis=1)
    colours = color.lab_to_rgb(lab).numpy()
    step = c.AB_GRID_STEP
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), constrained_layout=True)
    square = dict(marker="s", s=60, edgecolors="none")
    axes[0].scatter(centres[:, 1], centres[:, 0], c=colours, **square)
    axes[0].set_title("ab bins coloured at L = 50")
    # Bins the data never reaches would stretch the scale to the float floor.
    log_p = np.log10(np.maximum(prior.probs, 1e-7))
    points = axes[1].scatter(centres[:, 1], centres[:, 0], c=log_p, cmap="jet", vmin=-7, **square)
    axes[1].set_title(f"log10 prior ({prior.metadata.get('images', '?')} images)")
    fig.colorbar(points, ax=axes[1])
    for ax in axes:
        ax.set_xlabel("b")
        ax.set_ylabel("a")
        ax.invert_yaxis()
        ax.set_aspect("equal")
        ax.set_xlim(-120 - step, 110 + step)
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)
