"""The paper's solver: Adam with a step learning-rate schedule, and schedules for
short budgets.

Release `train/solver.prototxt`: type "Adam", momentum 0.9, momentum2 0.99, base_lr
3.16e-5, lr_policy "step" with gamma 0.316 and stepsize 215000, weight_decay 0.001,
no `delta` (Caffe's default, 1e-8). An earlier version of that file had base_lr 3e-5,
gamma 0.1, stepsize 225000. Weight decay is not here: Keras applies it as L2
regularisers on the layers (`ModelConfig.weight_decay`), which is Caffe's coupled
decay. Caffe's and Keras' Adam are the same update, bias correction included.
"""

import dataclasses

import keras
import tensorflow as tf

SCHEDULES = ("step", "cosine", "wsd")

# Release `train/solver.prototxt`.
BASE_LEARNING_RATE = 3.16e-5
# Fine-tuning a trained network: a tenth of the rate it was trained with, the common
# choice (Caffe's `finetune_flickr_style` example starts at base_lr 0.001, a tenth of
# CaffeNet's 0.01; Keras' transfer-learning guide fine-tunes at Adam 1e-5, lower
# still), so that the first steps on a few new photos do not undo what the weights hold.
FINETUNE_LEARNING_RATE = BASE_LEARNING_RATE / 10
LEARNING_RATE_GAMMA = 0.316
LEARNING_RATE_STEPSIZE = 215_000
ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.99
ADAM_EPSILON = 1e-8  # Caffe's default `delta`; Keras' default is 1e-7


@keras.saving.register_keras_serializable(package="colornet")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose update is TensorFlow's fused Adam kernel.

    Keras' Adam updates each variable with about ten separate elementwise ops, each
    a pass over the variable in memory; `tf.raw_ops.ResourceApplyAdam` does the same
    update in one. The update is the same formula (Keras' and TF's Adam both fold
    the bias correction into the step size, epsilon outside the square root), with
    the same slot variables and configuration, so checkpoints and `.keras` files
    are interchangeable with Adam's (tests/test_models.py compares the two).
    On the `eccv16` preset (32 M parameters) an update took 0.088 s with Keras'
    ops and 0.027 s fused on this project's 2-core machine
    (`benchmarks/fused_ops.py`). AMSGrad, and backends other than TensorFlow, use
    Keras' code.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or keras.backend.backend() != "tensorflow":
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )


@keras.saving.register_keras_serializable(package="colornet")
class WarmupStableDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, a constant rate, then a linear decay to zero ("WSD").

    lr(step) = peak * step / warmup_steps       for step < warmup_steps
             = peak                             until decay_start
             = peak * (end - step) / (end - decay_start)   from decay_start to end
             = 0                                after end

    Unlike a cosine, the constant part does not depend on the run's length: a long
    run trains at `peak` and any of its checkpoints can be finished with a short
    decay of its own (Hägele et al. 2024, "Scaling Laws and Compute-Optimal
    Training Beyond Fixed Training Durations", Sec. 3), so a run spread over many
    sessions need not fix its length in advance.

    Args:
      peak: the constant learning rate.
      warmup_steps: steps of the linear warm-up from 0, >= 0.
      decay_start: first step of the decay; None for none (constant to the end).
      end: the step where the rate reaches zero, > decay_start (with decay_start).
    """

    def __init__(self, peak, warmup_steps=0, decay_start=None, end=None):
        if not peak > 0:
            raise ValueError(f"peak must be positive, got {peak!r}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps!r}")
        if decay_start is not None and (end is None or not end > decay_start):
            raise ValueError(f"end must be greater than decay_start {decay_start!r}, got {end!r}")
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.decay_start = None if decay_start is None else int(decay_start)
        self.end = None if end is None else int(end)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        rate = self.peak * tf.minimum(1.0, (step + 1.0) / float(max(self.warmup_steps, 1)))
        if self.decay_start is None:
            return rate
        remaining = (self.end - step) / float(self.end - self.decay_start)
        return rate * tf.clip_by_value(remaining, 0.0, 1.0)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "decay_start": self.decay_start,
            "end": self.end,
        }


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """Adam with a learning-rate schedule.

    Args:
      learning_rate: at step 0 ("step"), or the peak after warm-up ("cosine", "wsd").
      schedule: "step": lr = learning_rate * decay_rate ** floor(step / decay_steps)
        (the release's Caffe "step" policy). "cosine": linear warm-up over
        `warmup_steps`, then a half cosine from learning_rate to zero at
        `total_steps` (Keras' `CosineDecay`). "wsd": `WarmupStableDecay`, decaying
        linearly to zero from `decay_start` to `total_steps` (no decay when
        `decay_start` is None).
      decay_rate: factor applied every `decay_steps` optimizer steps ("step").
      decay_steps: steps between decays (Caffe stepsize), >= 1 ("step").
      warmup_steps: linear warm-up from zero ("cosine", "wsd").
      total_steps: the run's length ("cosine"; "wsd" with `decay_start`).
      decay_start: see "wsd".
      ema: 0 for none, else the momentum of an exponential moving average of the
        weights that Keras keeps beside them (`use_ema`) and writes into the model
        when `fit` ends.
      beta_1, beta_2: Adam's decay rates (Caffe momentum, momentum2).
      epsilon: Adam's denominator term (Caffe delta).
    """

    learning_rate: float = BASE_LEARNING_RATE
    schedule: str = "step"
    decay_rate: float = LEARNING_RATE_GAMMA
    decay_steps: int = LEARNING_RATE_STEPSIZE
    warmup_steps: int = 0
    total_steps: int | None = None
    decay_start: int | None = None
    ema: float = 0.0
    beta_1: float = ADAM_BETA_1
    beta_2: float = ADAM_BETA_2
    epsilon: float = ADAM_EPSILON

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0 < self.decay_rate <= 1:
            raise ValueError(f"decay_rate must be in (0, 1], got {self.decay_rate!r}")
        if not isinstance(self.decay_steps, int) or self.decay_steps < 1:
            raise ValueError(f"decay_steps must be a positive integer, got {self.decay_steps!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        needs_total = self.schedule == "cosine" or (self.schedule == "wsd" and self.decay_start is not None)
        if needs_total and not (isinstance(self.total_steps, int) and self.total_steps > self.warmup_steps):
            raise ValueError(
                f"the {self.schedule} schedule needs total_steps > warmup_steps, got {self.total_steps!r}"
            )
        if self.decay_start is not None and not self.warmup_steps <= self.decay_start < self.total_steps:
            raise ValueError(
                f"decay_start must be in [warmup_steps, total_steps), got {self.decay_start!r}"
            )
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema!r}")
        for name in ("beta_1", "beta_2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {self.epsilon!r}")

    def learning_rate_schedule(self):
        if self.schedule == "cosine":
            return keras.optimizers.schedules.CosineDecay(
                0.0,
                self.total_steps - self.warmup_steps,
                warmup_target=self.learning_rate,
                warmup_steps=self.warmup_steps,
            )
        if self.schedule == "wsd":
            return WarmupStableDecay(
                self.learning_rate, self.warmup_steps, self.decay_start, self.total_steps
            )
        return keras.optimizers.schedules.ExponentialDecay(
            self.learning_rate, self.decay_steps, self.decay_rate, staircase=True
        )

    def optimizer(self):
        """A new `FusedAdam` (a `keras.optimizers.Adam`) with this schedule."""
        return FusedAdam(
            learning_rate=self.learning_rate_schedule(),
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            use_ema=self.ema > 0,
            ema_momentum=self.ema or 0.99,
        )


def paper_optimizer():
    """The release's Adam and step schedule (see the module docstring)."""
    return SolverConfig().optimizer()
