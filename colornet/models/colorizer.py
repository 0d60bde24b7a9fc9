"""`Colorizer`: the network as a Keras model with the paper's training defaults."""

import keras
import numpy as np
import tensorflow as tf

from colornet import constants as c
from colornet import hints as hint_maps
from colornet.models import presets
from colornet.models.backbone import apply_backbone, model_inputs
from colornet.models.config import ModelConfig
from colornet.models.solver import paper_optimizer


@keras.saving.register_keras_serializable(package="colornet")
class Colorizer(keras.Model):
    """Predicts a distribution over the 313 ab bins for every output pixel.

    The network of Table 4 (paper Sec. 2 and 3): `l_raw (B, H, W, 1)`, float L in
    0..100, maps to logits `(B, ceil(H / 4), ceil(W / 4), 313)`, float32 under any
    dtype policy. Spatial size is free (see `colornet.models.backbone` for sizes that
    are not multiples of 8). The model stops at the logits: soft-encoding belongs to
    the loss and decoding to `colornet.layers.AnnealedMeanDecode`.

    Build it with `Colorizer.from_preset(name, **overrides)`. `compile()` with no
    arguments sets the paper's solver and loss, so

        model = Colorizer.from_preset("tiny")
        model.compile()
        dataset = colornet.train_dataset("photos/", batch_size=40)  # repeats forever
        model.fit(dataset, epochs=10, steps_per_epoch=1000)

    trains as the release did: the dataset yields `(l_raw (B, H, W, 1), ab (B, H/4,
    W/4, 2))` without end, so `fit` needs `steps_per_epoch`. Works under the
    "mixed_bfloat16" policy; the dtype policy in force when the model is built (or
    loaded) is the one it uses.

    Args:
      config: a `ModelConfig` (or its `to_dict()` form); None for the paper's.
      **kwargs: `keras.Model` arguments (`name`, `trainable`).
    """

    output_stride = c.OUTPUT_STRIDE
    num_bins = c.NUM_BINS

    def __init__(self, config=None, **kwargs):
        if config is None:
            config = ModelConfig()
        elif isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        elif not isinstance(config, ModelConfig):
            raise ValueError(f"config must be a ModelConfig, a dict or None, got {config!r}")
        kwargs.setdefault("name", "colorizer")
        inputs = model_inputs(config)
        outputs = apply_backbone(inputs[0], config, *inputs[1:])
        super().__init__(inputs=inputs if config.hints else inputs[0], outputs=outputs, **kwargs)
        self.model_config = config

    def __call__(self, inputs, *args, **kwargs):
        if self.model_config.hints and not isinstance(inputs, (list, tuple, dict)):
            inputs = tf.convert_to_tensor(inputs)
            inputs = [inputs, tf.cast(hint_maps.no_hints(inputs), inputs.dtype)]
        elif isinstance(inputs, (list, tuple)):
            # Keras refuses a list mixing arrays and tensors.
            inputs = [tf.convert_to_tensor(x) if isinstance(x, np.ndarray) else x for x in inputs]
        return super().__call__(inputs, *args, **kwargs)

    @classmethod
    def from_preset(cls, name, **overrides):
        """Builds a preset (`colornet.models.PRESETS`), with `ModelConfig` fields changed,
        or loads released weights by name (`colornet pretrained`; fetched on first use).

        Example: `Colorizer.from_preset("half", padding="same")`.
        """
        if name in presets.PRETRAINED:
            if overrides:
                raise ValueError(f"{name!r} has released weights for a fixed network; got overrides {overrides}")
            return presets.PRETRAINED[name]()
        return cls(presets.get_preset(name, **overrides))

    @classmethod
    def output_size(cls, height, width):
        """The logits' spatial size for an input of `height` x `width` pixels."""
        return -(-height // cls.output_stride), -(-width // cls.output_stride)

    def compile(self, optimizer=None, loss=None, **kwargs):
        """`keras.Model.compile` whose defaults are the paper's.

        Args:
          optimizer: None for `colornet.models.solver.paper_optimizer()`: Adam with
            beta_1 0.9, beta_2 0.99, epsilon 1e-8, learning rate 3.16e-5 times 0.316
            every 215,000 steps. Weight decay is part of the model (L2 regularisers,
            `ModelConfig.weight_decay`), not of the optimizer.
          loss: None for `colornet.losses.RebalancedLoss()` with the package's prior.
          **kwargs: passed on to `keras.Model.compile` unchanged.
        """
        if optimizer is None:
            optimizer = paper_optimizer()
        if loss is None:
            # Imported here: the loss pulls in the prior, which models do not need.
            from colornet import losses

            loss = losses.RebalancedLoss()
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def compile_from_config(self, config):
        # Keras skips a custom compile() on load unless this is overridden.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "config": self.model_config.to_dict(),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def rebuild(model, config=None, policy=None):
    """A new `Colorizer` of `config` (default: `model`'s) under the Keras dtype policy
    `policy` (default: `model`'s), holding `model`'s weights layer by layer; layers
    `model` lacks keep their start (zero for the hint convolutions)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy or model.dtype_policy.name)  # the layers follow the global policy
    try:
        rebuilt = Colorizer(config or model.model_config, name=model.name)
    finally:
        keras.config.set_dtype_policy(previous)
    names = {layer.name for layer in rebuilt.layers}
    for layer in model.layers:
        if layer.weights and layer.name in names:
            rebuilt.get_layer(layer.name).set_weights(layer.get_weights())
    return rebuilt


def as_hint_model(model, **overrides):
    """`model` taking user hints: a new `Colorizer` with `ModelConfig.hints` on (and
    `overrides`, e.g. `hint_spread`), holding `model`'s weights; layers `model` lacks
    (the hint convolutions of a model trained without hints) keep their zero start,
    so with no hint it colours exactly as `model` does. Keeps `model`'s dtype policy.
    This is how the bundled model became a hint model (`docs/hints.md`).
    """
    if not isinstance(model, Colorizer):
        raise TypeError(f"model must be a Colorizer, got {type(model).__name__}")
    return rebuild(model, model.model_config.replace(hints=True, **overrides))


def without_hints(model):
    """A hint model's network without its hint inputs: exactly what it gives for an
    all-zero hint map (the hint convolutions have no bias and the spread adds
    nothing without a hint), minus their cost; for work that never has hints
    (video). A model without hints is returned as it is."""
    if not isinstance(model, Colorizer) or not model.model_config.hints:
        return model
    return rebuild(model, model.model_config.replace(hints=False))
