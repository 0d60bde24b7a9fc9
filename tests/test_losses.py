"""The rebalanced loss against NumPy float64 formulas, its gradient and tf.distribute."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from colornet import RebalancedLoss
from tests.helpers import oracles
from tests.helpers.contract import check_loss_contract

SHAPE = (3, 6, 5)  # B, h, w


def _data(seed=0):
    rng = np.random.default_rng(seed)
    ab = rng.uniform(-80, 80, (*SHAPE, 2)).astype(np.float32)
    logits = (rng.normal(size=(*SHAPE, 313)) * 2).astype(np.float32)
    return ab, logits


def _numpy_loss(ab, logits, weights, k=5):
    """Mean over images of sum over pixels of w(nearest bin) * CE, in float64."""
    targets = oracles.soft_encode(ab, k)
    ce = -(targets * oracles.log_softmax(logits)).sum(-1)
    nearest = np.argmax(targets, -1)  # the nearest bin carries the largest weight
    return (weights[nearest] * ce).sum((1, 2)).mean()


def test_uniform_weights_equal_plain_soft_cross_entropy():
    ab, logits = _data()
    got = float(RebalancedLoss(class_weights="uniform")(ab, logits))
    np.testing.assert_allclose(got, _numpy_loss(ab, logits, np.ones(313)), rtol=1e-5)


@pytest.mark.parametrize("k", [5, 10])
def test_weighted_loss_matches_numpy(k):
    ab, logits = _data(seed=k)
    weights = np.random.default_rng(1).uniform(0.1, 6.0, 313)
    got = float(RebalancedLoss(class_weights=weights, k=k)(ab, logits))
    np.testing.assert_allclose(got, _numpy_loss(ab, logits, weights, k), rtol=1e-5)


def test_gradient_is_weight_times_softmax_minus_target():
    ab, logits = _data(seed=2)
    weights = np.random.default_rng(3).uniform(0.1, 6.0, 313)
    z = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = RebalancedLoss(class_weights=weights)(ab, z)
    grad = tape.gradient(loss, z).numpy()
    targets = oracles.soft_encode(ab)
    w = weights[np.argmax(targets, -1)][..., None]
    # The reduction averages over the batch: d loss / d z = w (softmax - t) / B.
    expected = w * (oracles.softmax(logits) - targets) / SHAPE[0]
    np.testing.assert_allclose(grad, expected, atol=1e-6)
    # Rebalancing reaches the gradient: it differs from the unweighted one.
    assert np.abs(grad - (oracles.softmax(logits) - targets) / SHAPE[0]).max() > 1e-3


def test_uniform_prediction_costs_log_q_minus_target_entropy():
    ab, _ = _data(seed=4)
    logits = np.zeros((*SHAPE, 313), np.float32)
    per_image = float(RebalancedLoss(class_weights="uniform")(ab, logits))
    pixels = SHAPE[1] * SHAPE[2]
    np.testing.assert_allclose(per_image / pixels, np.log(313), rtol=1e-5)
    targets = oracles.soft_encode(ab)
    entropy = -(targets * np.log(np.where(targets > 0, targets, 1))).sum(-1)
    kl = per_image / pixels - entropy.mean()
    np.testing.assert_allclose(kl, np.log(313) - entropy.mean(), rtol=1e-5)
    # At a bin centre with k = 5 the target is p0 = 1 / (1 + 4 e^-2) and four times
    # p1 = e^-2 p0, so H = -(p0 ln p0 + 4 p1 ln p1) = 1.135 nats; averaged over typical
    # ab values it is ~1.2 nats, the "ln 313 - 1.26" of FIELD_NOTES.
    p0 = 1 / (1 + 4 * np.exp(-2.0))
    p1 = np.exp(-2.0) * p0
    at_centre = keras.ops.convert_to_numpy(
        RebalancedLoss(class_weights="uniform")(np.zeros((1, 1, 1, 2)) + 20.0, np.zeros((1, 1, 1, 313)))
    )
    np.testing.assert_allclose(at_centre, np.log(313), rtol=1e-6)
    target = oracles.soft_encode(np.array([[20.0, 20.0]]))[0]
    h_centre = -(target[target > 0] * np.log(target[target > 0])).sum()
    np.testing.assert_allclose(h_centre, -(p0 * np.log(p0) + 4 * p1 * np.log(p1)), rtol=1e-9)


def test_grey_images_weigh_zero():
    ab, logits = _data(seed=5)
    ab[1] = np.random.default_rng(0).uniform(-5, 5, ab[1].shape)
    losses = RebalancedLoss(class_weights="uniform").call(tf.constant(ab), tf.constant(logits)).numpy()
    assert losses[1] == 0 and losses[0] > 0 and losses[2] > 0


def test_bfloat16_logits_are_computed_in_float32():
    ab, logits = _data(seed=6)
    value = RebalancedLoss(class_weights="uniform")(ab, tf.cast(logits, tf.bfloat16))
    assert value.dtype == tf.float32
    rounded = tf.cast(tf.cast(logits, tf.bfloat16), tf.float32).numpy()
    np.testing.assert_allclose(float(value), _numpy_loss(ab, rounded, np.ones(313)), rtol=1e-5)


def test_rejects_bad_shapes_and_nan_targets():
    ab, logits = _data()
    loss = RebalancedLoss(class_weights="uniform")
    with pytest.raises(ValueError, match="spatial size"):
        loss(ab[:, :4], logits)
    with pytest.raises(ValueError, match="logits"):
        loss(ab, logits[..., :10])
    ab[0, 0, 0, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="ab contains NaN or Inf"):
        loss(ab, logits)
    with pytest.raises(ValueError, match="class_weights"):
        RebalancedLoss(class_weights=[1.0, 2.0])


def _tiny_model():
    inputs = keras.Input((6, 5, 1))
    return keras.Model(inputs, keras.layers.Conv2D(313, 1, kernel_initializer="glorot_uniform")(inputs))


@pytest.mark.slow
def test_loss_contract(tmp_path):
    ab, _ = _data(seed=7)
    x = np.random.default_rng(0).uniform(0, 100, (*SHAPE, 1)).astype(np.float32)
    weights = np.random.default_rng(1).uniform(0.1, 6.0, 313)
    check_loss_contract(RebalancedLoss(class_weights=weights), _tiny_model(), x, ab, tmp_path)


@pytest.mark.slow
def test_same_loss_and_update_on_one_and_two_replicas():
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 100, (4, 6, 5, 1)).astype(np.float32)
    ab = rng.uniform(-80, 80, (4, 6, 5, 2)).astype(np.float32)
    weights = rng.uniform(0.1, 6.0, 313)
    init = _tiny_model().get_weights()

    def run(strategy):
        with strategy.scope():
            model = _tiny_model()
            model.set_weights(init)
            model.compile(optimizer=keras.optimizers.SGD(1e-3), loss=RebalancedLoss(class_weights=weights))
        evaluated = model.evaluate(x, ab, batch_size=4, verbose=0)
        model.fit(x, ab, batch_size=4, epochs=1, verbose=0, shuffle=False)
        return evaluated, model.get_weights()

    devices = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
    assert len(devices) == 2
    one_loss, one_weights = run(tf.distribute.get_strategy())
    two_loss, two_weights = run(tf.distribute.MirroredStrategy(devices))
    np.testing.assert_allclose(two_loss, one_loss, rtol=1e-5)
    for a, b in zip(one_weights, two_weights):
        np.testing.assert_allclose(b, a, atol=1e-6)
