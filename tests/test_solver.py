"""Learning-rate schedules and the weight EMA, against the formulas written out here."""

import math

import keras
import numpy as np
import pytest

from colornet.models import Colorizer
from colornet.models.solver import SolverConfig, WarmupStableDecay
from colornet.training.config import TrainConfig


@pytest.mark.parametrize("step", [0, 4, 9, 10, 55, 99, 100, 130, 159, 160, 500])
def test_warmup_stable_decay_follows_its_formula(step):
    peak, warmup, start, end = 2e-3, 10, 100, 160
    if step < warmup:
        expected = peak * (step + 1) / warmup
    elif step < start:
        expected = peak
    else:
        expected = peak * max(0.0, (end - step) / (end - start))
    schedule = WarmupStableDecay(peak, warmup, start, end)
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-6, abs=1e-12)
    # Without a decay it holds the peak forever.
    assert float(WarmupStableDecay(peak, warmup)(10**6)) == pytest.approx(peak)


def test_warmup_stable_decay_round_trips_through_keras_serialization():
    schedule = WarmupStableDecay(1e-3, 5, 50, 80)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, WarmupStableDecay)
    assert [float(restored(s)) for s in (0, 20, 65, 90)] == [float(schedule(s)) for s in (0, 20, 65, 90)]


def test_cosine_schedule_warms_up_then_follows_a_half_cosine_to_zero():
    peak, warmup, total = 1e-3, 20, 220
    schedule = SolverConfig(learning_rate=peak, schedule="cosine", warmup_steps=warmup, total_steps=total)
    lr = schedule.learning_rate_schedule()
    assert float(lr(0)) == pytest.approx(0.0, abs=1e-12)
    assert float(lr(warmup // 2)) == pytest.approx(peak / 2, rel=1e-5)
    for step in (warmup, 70, 120, 170, total):
        expected = peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        assert float(lr(step)) == pytest.approx(expected, rel=1e-4, abs=1e-10)


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(schedule="linear"), "schedule must be one of"),
        (dict(schedule="cosine"), "needs total_steps"),
        (dict(schedule="cosine", warmup_steps=50, total_steps=50), "needs total_steps"),
        (dict(schedule="wsd", decay_start=10), "needs total_steps"),
        (dict(schedule="wsd", decay_start=200, total_steps=100), "decay_start must be in"),
        (dict(schedule="wsd", warmup_steps=-1), "warmup_steps must be"),
        (dict(ema=1.0), "ema must be in"),
    ],
)
def test_solver_config_rejects_inconsistent_schedules(fields, message):
    with pytest.raises(ValueError, match=message):
        SolverConfig(**fields)


def test_weight_ema_is_the_moving_average_of_the_trained_weights():
    """After `fit`, the model holds the EMA of its weights over the steps, computed
    here from the weights recorded after every step."""
    momentum = 0.6
    keras.utils.set_random_seed(0)
    model = Colorizer.from_preset("tiny")
    model.compile(optimizer=SolverConfig(learning_rate=1e-2, schedule="wsd", ema=momentum).optimizer(),
                  loss="mse")
    rng = np.random.default_rng(0)
    l_raw = rng.uniform(0, 100, (4, 16, 16, 1)).astype("float32")
    target = rng.normal(size=(4, 4, 4, 313)).astype("float32")
    recorded = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            recorded.append([w.numpy() for w in self.model.trainable_weights])

    model.fit(l_raw, target, batch_size=2, epochs=2, verbose=0, shuffle=False, callbacks=[Record()])

    assert len(recorded) == 4
    # Keras starts the average at the weights after the first step.
    average = [w.astype(np.float64) for w in recorded[0]]
    for weights in recorded[1:]:
        average = [momentum * a + (1 - momentum) * w for a, w in zip(average, weights)]
    assert not np.allclose(recorded[-1][0], average[0])  # the average is not the last weights
    for got, want in zip(model.trainable_weights, average):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_train_config_parses_schedule_overrides_by_field_type():
    base = TrainConfig(data="d", workdir="w", steps=10)
    config = TrainConfig.from_overrides(
        base, ["lr_schedule=wsd", "decay_start=6", "warmup_steps=2", "ema=0.99", "learning_rate=1e-3"]
    )
    assert (config.lr_schedule, config.decay_start, config.warmup_steps, config.ema) == ("wsd", 6, 2, 0.99)
    assert isinstance(config.decay_start, int) and isinstance(config.learning_rate, float)
    assert TrainConfig.from_overrides(config, ["decay_start=none"]).decay_start is None
