"""Batch norms folded into the convolutions before them, for inference.

At inference a batch norm is a per-channel affine map, y = s * x + t with
s = gamma / sqrt(var + eps) and t = beta - s * mean (gamma 1 and beta 0 when it has
no scale or shift, as the release's). `fold_batch_norms` returns the same function
with fewer ops and, which matters for int8, with normalised activations:

* conv, batch norm (`norm_position="before_relu"`): the classic fold,
  kernel * s and bias * s + t, and the batch norm is gone.
* conv, ReLU, batch norm (the release's order): for s > 0, s * relu(z) = relu(s * z),
  so the kernel and bias are multiplied by s and the batch norm becomes a
  per-channel `FoldedNorm` adding t after the ReLU. A batch norm with a channel
  whose s <= 0 (only possible with a learnt scale) is left as it is.

Why int8 needs it: the release's batch norms have no scale, and some channels of
a trained model leave their ReLU at a much smaller scale than others, which the batch
norm then multiplies by large factors. Quantised with one int8 scale per tensor (as
TFLite quantises activations) such channels are lost before the batch norm can
restore them. Folded, the scale moves into the convolution's kernel, which TFLite
quantises per output channel, and the activations are already normalised.

The bias t is not moved on into the next convolution: that convolution pads with
zeros, and a bias moved past the padding would change the border pixels.
"""

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="colornet")
class FoldedNorm(keras.layers.Layer):
    """What is left of a batch norm folded into the convolution before it.

    Args:
      shift: add a per-channel bias `t` (the batch norm came after a ReLU);
        False: the identity (the whole batch norm went into the convolution).

    Called with the batch norm's arguments; `training` and `mask` are ignored.
    """

    def __init__(self, shift=True, **kwargs):
        super().__init__(**kwargs)
        self.shift = bool(shift)

    def build(self, input_shape):
        if self.shift:
            self.bias = self.add_weight(
                shape=(input_shape[-1],), initializer="zeros", trainable=False, name="bias"
            )

    def call(self, x, training=None, mask=None):
        del training, mask
        return x + keras.ops.cast(self.bias, x.dtype) if self.shift else x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "shift": self.shift}


def _producer(layer):
    """The layer whose output is `layer`'s (single) input (Keras 3 functional graph)."""
    return layer.input._keras_history.operation


def _is_plain_relu(layer):
    """max(x, 0): what commutes with a positive per-channel scale."""
    config = layer.get_config()
    return not config["negative_slope"] and not config["threshold"] and config["max_value"] is None


def _affine(norm):
    """`(s, t)` float64 of a batch norm at inference: y = s * x + t."""
    weights = {w.path.rsplit("/", 1)[-1]: np.asarray(w.numpy(), np.float64) for w in norm.weights}
    scale = weights.get("gamma", 1.0) / np.sqrt(weights["moving_variance"] + norm.epsilon)
    return scale, weights.get("beta", 0.0) - scale * weights["moving_mean"]


def _plan(model):
    """For each foldable batch norm: `name -> (conv name, s, t, after_relu)`."""
    plan = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if layer.axis not in (-1, [-1], [3], 3):
            continue
        before = _producer(layer)
        after_relu = isinstance(before, keras.layers.ReLU)
        conv = _producer(before) if after_relu else before
        if not isinstance(conv, keras.layers.Conv2D) or not conv.use_bias:
            continue
        if len(conv._inbound_nodes) != 1 or len(conv._outbound_nodes) != 1:
            continue  # a shared convolution, or one whose output is used elsewhere too
        if after_relu and (len(before._outbound_nodes) != 1 or not _is_plain_relu(before)):
            continue
        scale, shift = _affine(layer)
        if after_relu and not np.all(scale > 0):
            continue
        plan[layer.name] = (conv.name, scale, shift, after_relu)
    return plan


def fold_batch_norms(model):
    """An inference-only copy of `model` with its batch norms folded (module docstring).

    Args:
      model: a functional Keras model, normally a `Colorizer` (float32 or mixed
        precision; the copy computes in the same policy).

    Returns:
      a plain functional `keras.Model` with the same inputs and outputs; `model`
      is not changed. Its outputs equal `model(x, training=False)` up to float
      rounding.
    """
    plan = _plan(model)
    folded_convs = {conv: name for name, (conv, *_rest) in plan.items()}

    def clone(layer):
        if layer.name in plan:
            after_relu = plan[layer.name][3]
            return FoldedNorm(shift=after_relu, name=layer.name, dtype=layer.dtype_policy)
        return layer.__class__.from_config(layer.get_config())

    def single(tensors):
        return tensors[0] if len(tensors) == 1 else tensors

    functional = keras.Model(single(model.inputs), single(model.outputs), name=model.name)
    folded = keras.models.clone_model(functional, clone_function=clone)
    for layer in model.layers:
        target = folded.get_layer(layer.name)
        if layer.name in plan:
            _, _, shift, after_relu = plan[layer.name]
            if after_relu:
                target.set_weights([shift.astype(np.float32)])
        elif layer.name in folded_convs:
            _, scale, shift, after_relu = plan[folded_convs[layer.name]]
            kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
            bias = bias * scale + (0.0 if after_relu else shift)
            target.set_weights([(kernel * scale).astype(np.float32), bias.astype(np.float32)])
        elif layer.weights:
            target.set_weights(layer.get_weights())
    return folded
