"""The paper's solver: Adam with a step learning-rate schedule.

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

# Release `train/solver.prototxt`.
BASE_LEARNING_RATE = 3.16e-5
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


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """Adam with lr = learning_rate * decay_rate ** floor(step / decay_steps).

    Args:
      learning_rate: at step 0.
      decay_rate: factor applied every `decay_steps` optimizer steps (Caffe "step"
        policy with gamma).
      decay_steps: steps between decays (Caffe stepsize), >= 1.
      beta_1, beta_2: Adam's decay rates (Caffe momentum, momentum2).
      epsilon: Adam's denominator term (Caffe delta).
    """

    learning_rate: float = BASE_LEARNING_RATE
    decay_rate: float = LEARNING_RATE_GAMMA
    decay_steps: int = LEARNING_RATE_STEPSIZE
    beta_1: float = ADAM_BETA_1
    beta_2: float = ADAM_BETA_2
    epsilon: float = ADAM_EPSILON

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not 0 < self.decay_rate <= 1:
            raise ValueError(f"decay_rate must be in (0, 1], got {self.decay_rate!r}")
        if not isinstance(self.decay_steps, int) or self.decay_steps < 1:
            raise ValueError(f"decay_steps must be a positive integer, got {self.decay_steps!r}")
        for name in ("beta_1", "beta_2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {self.epsilon!r}")

    def optimizer(self):
        """A new `FusedAdam` (a `keras.optimizers.Adam`) with this schedule."""
        schedule = keras.optimizers.schedules.ExponentialDecay(
            self.learning_rate, self.decay_steps, self.decay_rate, staircase=True
        )
        return FusedAdam(
            learning_rate=schedule,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
        )


def paper_optimizer():
    """The release's Adam and step schedule (see the module docstring)."""
    return SolverConfig().optimizer()
