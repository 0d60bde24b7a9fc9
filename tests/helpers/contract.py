"""The contract every colornet layer and loss meets (docs/style.md, "Tests": one shared helper)."""

import keras
import numpy as np


def _roundtrip(obj):
    return type(obj).from_config(obj.get_config())


def check_layer_contract(layer, x, tmp_path, atol=1e-6):
    """Symbolic and eager call, config round trip, `.keras` safe load, one fit step."""
    eager = keras.ops.convert_to_numpy(layer(x))

    inputs = keras.Input(shape=x.shape[1:], batch_size=None)
    model = keras.Model(inputs, layer(inputs))
    assert tuple(model.output.shape[1:]) == eager.shape[1:]
    np.testing.assert_allclose(model.predict(x, verbose=0), eager, atol=atol)

    np.testing.assert_allclose(keras.ops.convert_to_numpy(_roundtrip(layer)(x)), eager, atol=atol)

    path = str(tmp_path / "layer.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), eager, atol=atol)

    # One fit step with the layer between two trainable ones (a layer that passes
    # no gradient, like SoftEncode, still trains what follows it).
    front = keras.layers.Dense(x.shape[-1], name="front")
    back = keras.layers.Dense(eager.shape[-1], name="back")
    trainable = keras.Model(inputs, back(layer(front(inputs))))
    trainable.compile(optimizer="sgd", loss="mse")
    before = back.get_weights()[0].copy()
    history = trainable.fit(x, eager + 0.1, epochs=1, batch_size=len(x), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(before, back.get_weights()[0])


def check_loss_contract(loss, model, x, y, tmp_path):
    """Config round trip, one fit step, `.keras` save and safe load with the loss."""
    y_pred = model(x)
    value = float(loss(y, y_pred))
    assert np.isfinite(value)
    np.testing.assert_allclose(float(_roundtrip(loss)(y, y_pred)), value, rtol=1e-6)

    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss=loss)
    history = model.fit(x, y, epochs=1, batch_size=len(x), verbose=0)
    assert np.isfinite(history.history["loss"][0])

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(
        float(loaded.loss(y, loaded(x))), float(loss(y, model(x))), rtol=1e-5
    )
