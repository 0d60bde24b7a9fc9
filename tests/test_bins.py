"""The 313 bins as released, and the grid search for nearest bins."""

import numpy as np
import pytest
import tensorflow as tf

from colornet import bins


def test_released_bins_count_ends_and_order():
    centres = bins.ab_bins()
    assert centres.shape == (313, 2) and centres.dtype == np.float32
    np.testing.assert_array_equal(centres[0], [-90, 50])
    np.testing.assert_array_equal(centres[-1], [100, 0])
    np.testing.assert_array_equal(centres[120], [0, 0])
    # a-major, then b ascending; a grid of 10.
    order = np.lexsort((centres[:, 1], centres[:, 0]))
    np.testing.assert_array_equal(order, np.arange(313))
    assert np.all(centres % 10 == 0)
    np.testing.assert_array_equal(np.unique(centres[:, 0]), np.arange(-90, 101, 10))
    # Spot checks from the table: column a = 0 spans b -70..100.
    np.testing.assert_array_equal(centres[centres[:, 0] == 0][[0, -1], 1], [-70, 100])


def _brute_force(ab, k):
    d2 = ((ab[:, None, :].astype(np.float64) - bins.ab_bins()[None].astype(np.float64)) ** 2).sum(-1)
    order = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d2, order, 1)


@pytest.mark.parametrize("k", [1, 5, 10])
def test_grid_search_equals_brute_force(k):
    rng = np.random.default_rng(k)
    # Inside, at the edge of and beyond the bins' hull, up to the clip limit.
    ab = rng.uniform(-bins.AB_LIMIT, bins.AB_LIMIT, size=(20000, 2)).astype(np.float32)
    indices, sq = bins.nearest_bins(ab, k)
    expected_idx, expected_sq = _brute_force(ab, k)
    np.testing.assert_array_equal(indices.numpy(), expected_idx)
    np.testing.assert_allclose(sq.numpy(), expected_sq, rtol=1e-5, atol=1e-3)


def test_grid_search_xla_and_shapes():
    ab = np.random.default_rng(0).uniform(-100, 100, (2, 3, 4, 2)).astype(np.float32)
    eager = bins.nearest_bins(ab, 5)
    compiled = tf.function(bins.nearest_bins, jit_compile=True)(ab, 5)
    assert eager[0].shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(eager[0].numpy(), compiled[0].numpy())


def test_rebalancing_weights_formula():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(313) * 0.3)
    w = bins.rebalancing_weights(p, 0.5)
    expected = 1 / (0.5 * p + 0.5 / 313)
    np.testing.assert_allclose(w / w[0], expected / expected[0], rtol=1e-12)
    np.testing.assert_allclose((p * w).sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(bins.rebalancing_weights(p, 1.0), np.ones(313), rtol=1e-12)
    with pytest.raises(ValueError, match="lam"):
        bins.rebalancing_weights(p, 1.5)
    with pytest.raises(ValueError, match="shape"):
        bins.rebalancing_weights(p[:10])
