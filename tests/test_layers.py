"""SoftEncode and AnnealedMeanDecode against NumPy oracles, plus the layer contract."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from colornet import bins
from colornet import constants as c
from colornet.layers import AnnealedMeanDecode, SoftEncode, decode
from tests.helpers import oracles
from tests.helpers.contract import check_layer_contract


def _random_ab(shape, seed=0):
    # Continuous uniform values: lattice points and exact ties have probability 0.
    return np.random.default_rng(seed).uniform(-110, 110, size=shape).astype(np.float32)


@pytest.mark.parametrize("k", [5, 10])
@pytest.mark.slow
def test_soft_encode_matches_brute_force(k):
    ab = _random_ab((4, 16, 16, 2), seed=k)
    dense = SoftEncode(k=k)(ab).numpy()
    np.testing.assert_allclose(dense, oracles.soft_encode(ab, k), atol=1e-5)
    np.testing.assert_allclose(dense.sum(-1), 1.0, atol=1e-6)
    assert np.all((dense > 0).sum(-1) == k)


def test_centre_weight_at_a_bin_centre():
    centres = bins.ab_bins()
    interior = _interior_bins()
    dense = SoftEncode(k=5)(centres[None, None]).numpy()[0, 0]
    # exp(0) / (exp(0) + 4 exp(-100 / 50)): the four grid neighbours at distance 10.
    expected = 1 / (1 + 4 * np.exp(-2.0))
    np.testing.assert_allclose(np.diag(dense)[interior], expected, atol=1e-6)
    assert interior.sum() > 200
    assert abs(expected - 0.649) < 1e-3


def test_soft_encode_far_from_bins_is_not_nan():
    ab = np.array([[[[-140.0, -140.0], [140.0, 140.0], [1e6, -1e6]]]], np.float32)
    dense = SoftEncode()(ab).numpy()
    assert np.all(np.isfinite(dense))
    np.testing.assert_allclose(dense.sum(-1), 1.0, atol=1e-6)


def test_soft_encode_runs_under_xla_and_mixed_precision():
    ab = _random_ab((2, 8, 8, 2))
    eager = SoftEncode()(ab).numpy()
    layer = SoftEncode()
    # XLA fuses and reorders float32 arithmetic: agreement to 1e-5, as with the oracle.
    np.testing.assert_allclose(tf.function(layer, jit_compile=True)(ab).numpy(), eager, atol=1e-5)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = SoftEncode()
        assert mixed.compute_dtype == "float32"
        np.testing.assert_allclose(mixed(ab).numpy(), eager, atol=1e-6)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_soft_encode_contract(tmp_path):
    check_layer_contract(SoftEncode(k=5), _random_ab((2, 4, 4, 2)), tmp_path)


@pytest.mark.parametrize("bad", [{"k": 0}, {"k": 400}, {"k": 2.5}, {"sigma": 0}, {"sigma": float("nan")}])
def test_soft_encode_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SoftEncode(**bad)


def _random_logits(shape, seed=0, scale=3.0):
    return (np.random.default_rng(seed).normal(size=(*shape, 313)) * scale).astype(np.float32)


@pytest.mark.parametrize("temperature", [0.38, 1.0, 2.5])
def test_annealed_mean_matches_numpy(temperature):
    logits = _random_logits((2, 5, 6))
    expected = oracles.softmax(logits / temperature) @ bins.ab_bins().astype(np.float64)
    got = AnnealedMeanDecode(temperature)(logits).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_t_one_is_exactly_the_mean_and_small_t_the_mode():
    logits = _random_logits((3, 4, 4), seed=1)
    np.testing.assert_array_equal(AnnealedMeanDecode(1.0)(logits).numpy(), decode.mean(logits).numpy())
    np.testing.assert_allclose(AnnealedMeanDecode(1e-3)(logits).numpy(), decode.mode(logits).numpy(), atol=1e-3)
    np.testing.assert_array_equal(
        decode.mode(logits).numpy(), bins.ab_bins()[np.argmax(logits, -1)]
    )


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan"), "warm"])
def test_temperature_must_be_positive(bad):
    with pytest.raises(ValueError, match="temperature"):
        AnnealedMeanDecode(bad)
    with pytest.raises(ValueError, match="temperature"):
        decode.annealed_mean(_random_logits((1,)), bad if isinstance(bad, str) else bad)


def test_tensor_temperature_is_checked_at_run_time():
    logits = _random_logits((1, 2, 2))
    layer = AnnealedMeanDecode()
    np.testing.assert_allclose(
        layer(logits, temperature=tf.constant(0.5)).numpy(), AnnealedMeanDecode(0.5)(logits).numpy(), atol=1e-6
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature"):
        layer(logits, temperature=tf.constant(0.0))


def test_decode_is_float32_under_bfloat16_logits():
    logits = tf.cast(_random_logits((2, 3, 3)), tf.bfloat16)
    got = AnnealedMeanDecode()(logits)
    assert got.dtype == tf.float32
    # The oracle decodes the same bf16-rounded logits in float64. Decoding in float32
    # sums 313 products of |ab| <= 110 with a relative error of at most 313 float32
    # epsilons: under 2.1e-3. Decoding in bfloat16 errs by tenths of a unit.
    rounded = logits.numpy().astype(np.float64)
    expected = oracles.softmax(rounded / c.ANNEALED_MEAN_TEMPERATURE) @ bins.ab_bins().astype(np.float64)
    atol = 313 * np.finfo(np.float32).eps * 110
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=atol)


def _interior_bins():
    centres = bins.ab_bins()
    present = {tuple(p) for p in centres}
    steps = [(10, 0), (-10, 0), (0, 10), (0, -10)]
    return np.array([all((a + da, b + db) in present for da, db in steps) for a, b in centres])


def test_encode_then_decode_recovers_ab():
    # Values inside the bins' hull: a bin with all four grid neighbours, +- 5.
    rng = np.random.default_rng(5)
    centres = bins.ab_bins()[_interior_bins()]
    ab = centres[rng.integers(0, len(centres), 400)] + rng.uniform(-5, 5, (400, 2))
    ab = ab.reshape(1, 20, 20, 2).astype(np.float32)
    targets = SoftEncode()(ab).numpy()
    # log(targets) as logits: the mean of the soft target itself.
    recovered = AnnealedMeanDecode(1.0)(np.log(np.maximum(targets, 1e-30))).numpy()
    assert np.abs(recovered - ab).max() < 3.0


def test_decode_contract(tmp_path):
    check_layer_contract(AnnealedMeanDecode(0.5), _random_logits((2, 3, 3)), tmp_path, atol=1e-4)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_raise_clear_errors(bad):
    ab = _random_ab((1, 2, 2, 2))
    ab[0, 1, 1, 0] = bad
    with pytest.raises(tf.errors.InvalidArgumentError, match="ab contains NaN or Inf"):
        SoftEncode()(ab)
    logits = _random_logits((1, 2, 2))
    logits[0, 0, 1, 7] = bad
    for decoder in (AnnealedMeanDecode(), decode.mean, decode.mode):
        with pytest.raises(tf.errors.InvalidArgumentError, match="logits contain NaN or Inf"):
            decoder(logits)
