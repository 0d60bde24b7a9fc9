"""The ab prior: histogram, smoothing, bin assignment and weights vs SciPy/NumPy."""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.ndimage
import skimage.color
import tensorflow as tf

from colornet import bins, prior
from colornet.utils.errors import ColornetError
from tests.helpers import plots
from tests.helpers.images import random_rgb, smooth_rgb


def _oracle_probs(images, sigma=5.0):
    """Rounded-ab histogram, SciPy Gaussian filter, brute-force nearest bin."""
    hist = np.zeros((256, 256))
    for image in images:
        ab = np.rint(skimage.color.rgb2lab(image)[..., 1:]).astype(int) + 128
        np.add.at(hist, (ab[..., 0].ravel(), ab[..., 1].ravel()), 1)
    smooth = scipy.ndimage.gaussian_filter(hist, sigma, mode="constant", truncate=4.0)
    values = np.arange(256) - 128.0
    grid = np.stack(np.meshgrid(values, values, indexing="ij"), -1).reshape(-1, 2)
    d2 = ((grid[:, None] - bins.ab_bins()[None].astype(np.float64)) ** 2).sum(-1)
    nearest = np.argmin(d2, axis=1)
    probs = np.bincount(nearest, weights=smooth.ravel(), minlength=313)
    return probs / probs.sum(), hist


@pytest.mark.slow
def test_prior_matches_scipy_oracle():
    images = [smooth_rgb(48, 64, seed=s) for s in range(3)] + [random_rgb((32, 32, 3), seed=9)]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(images), output_signature=tf.TensorSpec([None, None, 3], tf.uint8)
    )
    result = prior.compute_prior(dataset, verbose=0)
    expected, hist = _oracle_probs(images)
    # Rounding ab to whole units can flip a pixel sitting at x.5 between the two
    # implementations (float32 vs float64 Lab); a handful of pixels move at most.
    np.testing.assert_allclose(result.probs, expected, atol=2e-4)
    assert result.metadata["images"] == 4
    assert result.metadata["pixels"] == hist.sum()
    assert result.counts.sum() == hist.sum()
    np.testing.assert_allclose((result.probs * result.weights).sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(result.weights, bins.rebalancing_weights(result.probs, 0.5), rtol=1e-12)


def test_single_colour_peaks_at_its_bin_and_lambda_bounds_weights():
    # All pixels at ab = (21, -38): smoothing spreads them to neighbouring bins, and
    # the mix with uniform keeps every weight finite and positive.
    hist = np.zeros((256, 256))
    hist[128 + 21, 128 - 38] = 1000
    result = prior.prior_from_histogram(hist, metadata={"images": 1})
    peak = np.flatnonzero((bins.ab_bins() == [20, -40]).all(1))[0]
    assert np.argmax(result.probs) == peak
    assert result.counts[peak] == 1000 and result.counts.sum() == 1000
    # The Gaussian (sigma 5) puts ~ (P(|x| < 4.5 or so)) ~ 0.5 of the mass in the peak bin.
    assert 0.3 < result.probs[peak] < 0.8
    assert np.all(np.isfinite(result.weights)) and result.weights.min() > 0
    assert np.argmin(result.weights) == peak
    # Bins the smoothed mass never reaches share the largest weight, (lambda / Q)^-1 scaled.
    assert np.isclose(result.weights.max() / result.weights.min(), (0.5 * result.probs[peak] + 0.5 / 313) / (0.5 / 313))


def test_save_load_round_trip_is_atomic(tmp_path):
    result = prior.prior_from_histogram(
        prior._ab_histogram(random_rgb((8, 8, 3))).numpy(), metadata={"images": 1}
    )
    path = tmp_path / "p.npz"
    prior.save_prior(result, path)
    assert os.listdir(tmp_path) == ["p.npz"]
    loaded = prior.load_prior(path)
    np.testing.assert_array_equal(loaded.weights, result.weights)
    np.testing.assert_array_equal(loaded.counts, result.counts)
    assert loaded.metadata == result.metadata
    with pytest.raises(ColornetError, match="end with .npz"):
        prior.save_prior(result, tmp_path / "p.txt")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ColornetError, match="not a colornet prior"):
        prior.load_prior(tmp_path / "bad.npz")
    with pytest.raises(ColornetError, match="no such prior"):
        prior.load_prior(tmp_path / "missing.npz")


def test_default_prior_ships_with_the_package():
    default = prior.default_prior()
    assert default.weights.shape == (313,)
    np.testing.assert_allclose((default.probs * default.weights).sum(), 1.0, rtol=1e-9)
    assert default.metadata["images"] > 1000
    # Grey is the most common colour in photos, so (0, 0) gets the smallest weight.
    assert np.argmin(default.weights) == 120


def _write_images(folder):
    folder.mkdir()
    for i in range(3):
        png = tf.io.encode_png(smooth_rgb(40 + i, 50, seed=i)).numpy()
        (folder / f"img{i}.png").write_bytes(png)
    (folder / "broken.jpg").write_bytes(b"this is text, not a JPEG")


def _colornet(*args):
    return subprocess.run(
        [sys.executable, "-m", "colornet.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_cli_prior_skips_bad_files_and_plots(tmp_path):
    _write_images(tmp_path / "photos")
    out, plot = tmp_path / "prior.npz", tmp_path / "prior.png"
    run = _colornet("prior", "--data", str(tmp_path / "photos"), "--out", str(out), "--plot", str(plot))
    assert run.returncode == 0, run.stderr
    assert "images 3, skipped 1" in run.stdout
    loaded = prior.load_prior(out)
    assert loaded.metadata["images"] == 3 and loaded.metadata["skipped"] == 1
    _check_prior_plot(plot, loaded)


def _check_prior_plot(path, shown):
    """The figure's two panels: the 313 bins in their colour at L = 50 (scikit-image's
    Lab conversion), and in jet by log10 of the prior, each bin at its (b, a)."""
    import matplotlib
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (460, 1000, 3)  # 10 x 4.6 inches at 100 dpi
    centres = bins.ab_bins().astype(np.float64)
    lab = np.concatenate([np.full((len(centres), 1), 50.0), centres], axis=1)
    bin_colours = np.rint(skimage.color.lab2rgb(lab[None])[0] * 255)
    log_p = np.log10(np.maximum(shown.probs, 1e-7))
    scaled = matplotlib.colors.Normalize(-7, log_p.max())(log_p)
    prior_colours = np.rint(matplotlib.colormaps["jet"](scaled)[:, :3] * 255)
    points = centres[:, ::-1]  # b across, a down
    left, right = image[:, :500], image[:, 500:]
    assert plots.scatter_drawn(left, points, bin_colours) > 0.95
    assert plots.scatter_drawn(right, points, prior_colours) > 0.95


@pytest.mark.slow
def test_cli_prior_show_default():
    run = _colornet("prior", "--show", "default")
    assert run.returncode == 0, run.stderr
    assert "most probable bins (a, b) p: (0, 0)" in run.stdout


@pytest.mark.slow
def test_cli_prior_missing_folder_is_one_line_error(tmp_path):
    run = _colornet("prior", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p.npz"))
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert "nowhere" in run.stderr
    assert not (tmp_path / "p.npz").exists()


def test_cli_prior_refuses_a_bad_out_before_reading_images(tmp_path, capsys, monkeypatch, deny_access):
    from colornet import cli

    _write_images(tmp_path / "photos")
    somefile = tmp_path / "somefile.txt"
    somefile.write_text("a regular file\n")
    locked = tmp_path / "locked"
    locked.mkdir()
    deny_access(locked)

    def no_counting(*args, **kwargs):
        raise AssertionError("the output must be checked before any image is read")

    monkeypatch.setattr(prior, "compute_prior_from_files", no_counting)
    cases = [
        (["--out", str(somefile / "p.npz")], f"cannot write {somefile / 'p.npz'}: {somefile} is not a directory"),
        (["--out", str(tmp_path / "nowhere" / "p.npz")],
         f"cannot write {tmp_path / 'nowhere' / 'p.npz'}: directory {tmp_path / 'nowhere'} does not exist"),
        (["--out", str(locked / "p.npz")], f"cannot write {locked / 'p.npz'}: directory {locked} is not writable"),
        (["--out", str(tmp_path / "photos")], f"prior file name must end with .npz, got {str(tmp_path / 'photos')!r}"),
        (["--out", str(tmp_path / "d.npz")], f"cannot write {tmp_path / 'd.npz'}: it is a directory"),
        (["--out", str(tmp_path / "p.npz"), "--plot", str(somefile / "p.png")],
         f"cannot write {somefile / 'p.png'}: {somefile} is not a directory"),
    ]
    (tmp_path / "d.npz").mkdir()
    before = sorted(os.listdir(tmp_path))
    for out, message in cases:
        argv = ["colornet", "prior", "--data", str(tmp_path / "photos"), *out]
        assert cli.main(cli._parse_flags(argv)) == 1
        captured = capsys.readouterr()
        assert captured.err.strip().splitlines() == [f"colornet prior: error: {message}"]
        assert captured.out == ""
    # Nothing written, not even a hidden temporary file.
    assert sorted(os.listdir(tmp_path)) == before
    assert not os.listdir(locked) and not os.listdir(tmp_path / "d.npz")


def test_save_prior_refuses_what_it_cannot_write(tmp_path):
    result = prior.prior_from_histogram(
        prior._ab_histogram(random_rgb((8, 8, 3))).numpy(), metadata={"images": 1}
    )
    (tmp_path / "somefile.txt").write_text("a regular file\n")
    with pytest.raises(ColornetError, match="somefile.txt is not a directory"):
        prior.save_prior(result, tmp_path / "somefile.txt" / "p.npz")
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(ColornetError, match="it is a directory"):
        prior.save_prior(result, tmp_path / "d.npz")
    assert sorted(os.listdir(tmp_path)) == ["d.npz", "somefile.txt"]
