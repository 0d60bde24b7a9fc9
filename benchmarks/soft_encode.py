"""Soft-encoding throughput: colornet's grid search vs the release's way.

The release (`caffe_traininglayers.py`: `NNEncLayer` over `NNEncode`) received the
ab target as a Caffe blob (batch, 2, H, W), flattened it to (pixels, 2), found the k
nearest of the 313 bins with scikit-learn's NearestNeighbors (ball tree) on the CPU,
wrote Gaussian weights into a preallocated float64 (pixels, 313) array (zeroed on
each call) and copied that, as (batch, 313, H, W), into the float32 top blob the
loss read. This script times that, written afresh here, and a leaner variant of it
(same search, float32 (batch, H, W, 313) output, no layout changes), against
colornet's sparse encoding (what the loss uses) and its dense `SoftEncode` layer, on
a batch of 40 at 64 x 64 (the release's batch at 256 x 256 input). Speed-ups are
against the release as written. Needs scikit-learn (`pip install 'colornet-keras[bench]'`).

    python benchmarks/soft_encode.py [--k 5] [--repeats 20]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from colornet import ab_bins  # noqa: E402
from colornet.layers.soft_encode import SoftEncode, soft_encode_sparse  # noqa: E402


def gaussian_weights(neighbours, flat, sigma):
    distances, indices = neighbours.kneighbors(flat)
    weights = np.exp(-(distances**2) / (2 * sigma**2))
    return indices, weights / weights.sum(axis=1, keepdims=True)


class ReleaseEncoder:
    """The release's target layer: NCHW blob in, float64 scratch, NCHW float32 blob out."""

    def __init__(self, neighbours, blob_shape, sigma):
        batch, _, height, width = blob_shape
        self.neighbours, self.sigma = neighbours, sigma
        self.scratch = np.zeros((batch * height * width, 313))  # float64, kept between calls
        self.rows = np.arange(len(self.scratch))[:, None]
        self.top = np.zeros((batch, 313, height, width), np.float32)  # the Caffe top blob

    def __call__(self, blob):
        batch, _, height, width = blob.shape
        flat = blob.transpose(0, 2, 3, 1).reshape(-1, 2)
        indices, weights = gaussian_weights(self.neighbours, flat, self.sigma)
        self.scratch[...] = 0
        self.scratch[self.rows, indices] = weights
        self.top[...] = self.scratch.reshape(batch, height, width, 313).transpose(0, 3, 1, 2)
        return self.top


def lean_release_encode(neighbours, ab, sigma):
    flat = ab.reshape(-1, 2)
    indices, weights = gaussian_weights(neighbours, flat, sigma)
    dense = np.zeros((len(flat), 313), np.float32)
    dense[np.arange(len(flat))[:, None], indices] = weights
    return dense.reshape(*ab.shape[:-1], 313)


def seconds_per_call(fn, repeats):
    fn()  # warm-up: tracing and XLA compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--sigma", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    # ab of real-looking colours: uniform over the bins' range.
    ab = rng.uniform(-100, 100, (args.batch, args.size, args.size, 2)).astype(np.float32)
    ab_tensor = tf.constant(ab)
    neighbours = NearestNeighbors(n_neighbors=args.k, algorithm="ball_tree").fit(ab_bins())

    blob = np.ascontiguousarray(ab.transpose(0, 3, 1, 2))
    release = ReleaseEncoder(neighbours, blob.shape, args.sigma)
    sparse = tf.function(lambda x: soft_encode_sparse(x, args.k, args.sigma))
    dense = tf.function(SoftEncode(k=args.k, sigma=args.sigma))
    release_repeats = max(3, args.repeats // 4)
    figures = {
        "release as written (NCHW, float64 scratch)": seconds_per_call(lambda: release(blob), release_repeats),
        "release's search, lean float32 NHWC output": seconds_per_call(
            lambda: lean_release_encode(neighbours, ab, args.sigma), release_repeats
        ),
        # Eager TF on the CPU returns when the result is computed; the targets stay
        # on the device, where the loss uses them.
        "colornet sparse (what the loss uses)": seconds_per_call(lambda: sparse(ab_tensor), args.repeats),
        "colornet dense SoftEncode layer": seconds_per_call(lambda: dense(ab_tensor), args.repeats),
    }
    baseline = figures["release as written (NCHW, float64 scratch)"]
    pixels = args.batch * args.size * args.size
    print(f"soft-encoding, batch {args.batch} at {args.size}x{args.size} ({pixels} pixels), k = {args.k}, "
          f"{os.cpu_count()} CPU cores, median of repeats")
    print(f"{'method':44s} {'ms/batch':>9s} {'Mpixel/s':>9s} {'speed-up':>9s}")
    for name, seconds in figures.items():
        print(f"{name:44s} {seconds * 1e3:9.1f} {pixels / seconds / 1e6:9.1f} {baseline / seconds:8.1f}x")


if __name__ == "__main__":
    main()
