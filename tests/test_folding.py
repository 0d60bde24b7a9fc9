"""Batch norms folded into convolutions (colornet.models.folding) against the model
they came from, with batch-norm statistics far from the identity."""

import keras
import numpy as np
import pytest

from colornet.models import Colorizer
from colornet.models.folding import FoldedNorm, fold_batch_norms


def _with_statistics(model, seed=0, negative_scale=False):
    """Gives every batch norm random moving statistics (and scales and shifts)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 2.0, channels))
            layer.moving_variance.assign(rng.uniform(0.01, 50.0, channels))
            if layer.scale:
                gamma = rng.uniform(0.5, 2.0, channels)
                if negative_scale:
                    gamma[0] = -1.0
                layer.gamma.assign(gamma)
                layer.beta.assign(rng.normal(0.0, 1.0, channels))
    return model


def _inputs():
    return np.random.default_rng(1).uniform(0, 100, (2, 40, 48, 1)).astype(np.float32)


def _has_batch_norm(model):
    return any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"norm_position": "before_relu"}, {"norm_affine": True}, {"padding": "same"}],
    ids=["release", "before_relu", "affine", "same_padding"],
)
def test_folded_model_computes_the_same_logits(overrides):
    model = _with_statistics(Colorizer.from_preset("tiny", **overrides))
    folded = fold_batch_norms(model)
    x = _inputs()
    want = model(x, training=False).numpy()
    got = folded(x).numpy()
    assert not _has_batch_norm(folded)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # The original model is untouched and still has its batch norms.
    assert _has_batch_norm(model)
    np.testing.assert_array_equal(model(x, training=False).numpy(), want)


def test_before_relu_norms_vanish_after_relu_norms_leave_a_bias():
    before = fold_batch_norms(_with_statistics(Colorizer.from_preset("tiny", norm_position="before_relu")))
    after = fold_batch_norms(_with_statistics(Colorizer.from_preset("tiny")))
    assert {layer.shift for layer in before.layers if isinstance(layer, FoldedNorm)} == {False}
    assert {layer.shift for layer in after.layers if isinstance(layer, FoldedNorm)} == {True}
    assert not [w for layer in before.layers if isinstance(layer, FoldedNorm) for w in layer.weights]


def test_a_negative_scale_after_relu_is_left_unfolded():
    # s * relu(z) = relu(s * z) needs s > 0; such a batch norm stays as it is.
    model = _with_statistics(Colorizer.from_preset("tiny", norm_affine=True), negative_scale=True)
    folded = fold_batch_norms(model)
    assert _has_batch_norm(folded)
    x = _inputs()
    want = model(x, training=False).numpy()
    np.testing.assert_allclose(folded(x).numpy(), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_mixed_precision_model_folds_in_its_policy(bfloat16_policy):
    model = _with_statistics(Colorizer.from_preset("tiny"))
    folded = fold_batch_norms(model)
    assert folded.get_layer("conv1_1").dtype_policy.name == "mixed_bfloat16"
    x = _inputs()
    want = model(x, training=False).numpy()
    # bfloat16 keeps ~3 significant digits; the fold rounds in different places.
    assert np.abs(folded(x).numpy() - want).mean() < 0.05 * np.abs(want).mean()
