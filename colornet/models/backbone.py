"""The network of Table 4: lightness in, 313 ab-bin logits per pixel at 1/4 resolution.

Layers are named as in the release's prototxt (`conv1_1`, `conv1_2norm`, ...,
`conv8_313`) so that weights can be matched to it by name.

Output size. Each stride-2 convolution (both paddings) gives ceil(n / 2) for an input
of n pixels and the transposed convolution doubles, so the network computes
2 * ceil(n / 8) rows; the last one is cropped when it lies past the image, leaving
ceil(n / 4), exactly the number of pixels in the target `ab[:, ::4, ::4]`. So any
input size works: 176 -> 44, 224 -> 56, 256 -> 64, 100 -> 25, 36 -> 9, 33 -> 9.
For multiples of 8 nothing is cropped and the network is the release's.
"""

import keras
import tensorflow as tf

from colornet import constants as c
from colornet.hints import HINT_CHANNELS
from colornet.layers.hint_spread import HintSpread
from colornet.models.config import DOWNSAMPLING_BLOCKS, ModelConfig
from colornet.models.normalization import NormalizeHints, NormalizeL


@keras.saving.register_keras_serializable(package="colornet")
class CropToStride(keras.layers.Layer):
    """Crops feature maps to ceil(H / stride) x ceil(W / stride) of a reference image.

    Args:
      stride: the features' stride relative to the reference, >= 1.

    Inputs: `[features (B, h, w, C), reference (B, H, W, ...)]` with h >= ceil(H /
    stride), w >= ceil(W / stride). Output: `(B, ceil(H / stride), ceil(W / stride),
    C)`, the features' dtype.
    """

    def __init__(self, stride=c.OUTPUT_STRIDE, **kwargs):
        # Only the reference's shape is used: do not cast it to the compute dtype.
        super().__init__(autocast=False, **kwargs)
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        self.stride = stride

    def call(self, inputs):
        features, reference = inputs
        size = tf.shape(reference)[1:3]
        height, width = tf.unstack((size + self.stride - 1) // self.stride)
        return features[:, :height, :width, :]

    def compute_output_shape(self, input_shape):
        features_shape, reference_shape = input_shape
        height, width = (None if n is None else -(-n // self.stride) for n in reference_shape[1:3])
        return (features_shape[0], height, width, features_shape[3])

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}


@keras.saving.register_keras_serializable(package="colornet")
class PadToSize(keras.layers.Layer):
    """Pads feature maps with zeros below and to the right to a reference's size.

    Inputs: `[features (B, h, w, C), reference (B, H, W, ...)]` with H >= h, W >= w.
    Output: `(B, H, W, C)`, the features' dtype. The inverse of `CropToStride` for a
    branch computed at the cropped size and added to an uncropped one.
    """

    def __init__(self, **kwargs):
        super().__init__(autocast=False, **kwargs)

    def call(self, inputs):
        features, reference = inputs
        extra = tf.shape(reference)[1:3] - tf.shape(features)[1:3]
        return tf.pad(features, [[0, 0], [0, extra[0]], [0, extra[1]], [0, 0]])

    def compute_output_shape(self, input_shape):
        features_shape, reference_shape = input_shape
        return (features_shape[0], reference_shape[1], reference_shape[2], features_shape[3])


def _decay(config):
    """Kernel and bias regularisers for one convolution."""
    if config.weight_decay == 0:
        return {}
    # Caffe's decay lambda has gradient lambda * w; Keras' L2(l) has 2 * l * w.
    factor = config.weight_decay / 2
    return {
        "kernel_regularizer": keras.regularizers.L2(factor),
        "bias_regularizer": keras.regularizers.L2(factor),
    }


@keras.saving.register_keras_serializable(package="colornet")
class FusedBatchNorm(keras.layers.BatchNormalization):
    """`BatchNormalization` whose training step is TensorFlow's fused kernel.

    Keras' batch norm casts bfloat16 activations to float32, computes the moments,
    normalises and casts back: several passes over the activations, forward and
    backward. In training (4-D input, channels last, not synchronized, no mask, no
    renorm), this layer calls `tf.compat.v1.nn.fused_batch_norm` instead: one fused
    op each way (oneDNN's on x86), on bfloat16 activations directly, with float32
    statistics. Same variables, same moving-average update with the same biased
    batch variance, same output up to rounding (tests/test_models.py compares them);
    inference and every other case are Keras' own code. With `FusedAdam`, an
    `eccv16` bf16 training step took 4.8% less time than with Keras' batch norm and
    Adam (`benchmarks/fused_ops.py`).
    """

    def _fusable(self, inputs, training, mask):
        return (
            training
            and self.trainable
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3, [-1], [3])
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, scale, offset, epsilon=self.epsilon, is_training=True
        )
        # The fused op returns the unbiased (n - 1) variance; Keras averages the biased one.
        count = tf.cast(tf.size(inputs) // channels, tf.float32)
        variance = variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return tf.cast(outputs, self.compute_dtype)


def _norm(x, config, name):
    return FusedBatchNorm(
        momentum=config.norm_momentum,
        epsilon=config.norm_epsilon,
        center=config.norm_affine,
        scale=config.norm_affine,
        synchronized=config.norm_synchronized,
        name=name,
    )(x)


@keras.saving.register_keras_serializable(package="colornet")
class DilatedConv2D(keras.layers.Conv2D):
    """A `Conv2D` (same weights and config) whose dilated convolution is TF's own.

    Keras' TensorFlow backend runs a dilated convolution through
    `tf.nn.convolution`, which off TPUs wraps an undilated one in
    SpaceToBatchND / BatchToSpaceND, which slows its gradient and keeps oneDNN from
    fusing bias and ReLU into it. `tf.nn.conv2d` with `dilations` computes the same
    thing directly (tests/test_models.py compares outputs and gradients) and made an
    eccv16 bf16 training step markedly faster (README, Benchmarks). Channels-last
    only, as the whole network is.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.data_format != "channels_last":
            raise ValueError(f"DilatedConv2D needs channels_last data, got {self.data_format!r}")

    def convolution_op(self, inputs, kernel):
        return tf.nn.conv2d(
            inputs,
            kernel,
            strides=list(self.strides),
            padding=self.padding.upper(),
            dilations=list(self.dilation_rate),
        )


def _conv_block(x, block, config, hints=None):
    """Blocks 1-7: 3x3 convolutions with ReLU, the last one (of 1-3) with stride 2,
    then batch norm. `hints` (block 1 only): the normalised hint map, whose own
    convolution is added to the first one's output."""
    filters = config.filters[block - 1]
    dilation = config.dilations[block - 1]
    count = config.convs[block - 1]
    for i in range(1, count + 1):
        name = f"conv{block}_{i}"
        is_last = i == count
        strides = 2 if is_last and block <= DOWNSAMPLING_BLOCKS else 1
        padding = "same"
        if strides == 2 and config.padding == "symmetric":
            x = keras.layers.ZeroPadding2D(1, name=f"{name}pad")(x)
            if hints is not None and i == 1:
                hints = keras.layers.ZeroPadding2D(1, name=f"{name}hintpad")(hints)
            padding = "valid"
        conv = DilatedConv2D if dilation > 1 else keras.layers.Conv2D
        x = conv(
            filters,
            3,
            strides=strides,
            padding=padding,
            dilation_rate=dilation,
            name=name,
            **_decay(config),
        )(x)
        if hints is not None and i == 1:
            # Zero-initialised: with or without hints, the network starts as without.
            from_hints = keras.layers.Conv2D(
                filters,
                3,
                strides=strides,
                padding=padding,
                use_bias=False,
                kernel_initializer="zeros",
                name=f"{name}hint",
                **{k: v for k, v in _decay(config).items() if k == "kernel_regularizer"},
            )(hints)
            x = keras.layers.Add(name=f"{name}add")([x, from_hints])
        if is_last and config.norm_position == "before_relu":
            x = _norm(x, config, f"{name}norm")
        x = keras.layers.ReLU(name=f"relu{block}_{i}")(x)
        if is_last and config.norm_position == "after_relu":
            x = _norm(x, config, f"{name}norm")
    return x


def apply_backbone(l_raw, config, hints=None):
    """Builds the network on a symbolic input and returns its logits.

    Args:
      l_raw: symbolic `(B, H, W, 1)` float L in 0..100.
      config: a `ModelConfig`.
      hints: symbolic `(B, H, W, 3)` hint map (`colornet.hints`), given exactly when
        `config.hints`.

    Returns:
      symbolic `(B, ceil(H / 4), ceil(W / 4), 313)` float32 logits.
    """
    if (hints is not None) != config.hints:
        raise ValueError(f"config.hints is {config.hints}: give the hints input exactly when it is True")
    x = NormalizeL(config.l_center, config.l_scale, name="normalize_l")(l_raw)
    raw_hints = hints
    if hints is not None:
        hints = NormalizeHints(config.l_center, config.l_scale, name="normalize_hints")(hints)
    for block in range(1, 8):
        x = _conv_block(x, block, config, hints if block == 1 else None)
        if block == 2:
            quarter = x  # block 2's output, at the logits' 1/4 resolution
    # Keras' "same" padding of a 4x4 stride-2 transposed convolution crops one pixel
    # on every side, which is Caffe's `pad: 1`; and Keras' kernel (4, 4, out, in) is
    # applied as Caffe's (in, out, 4, 4) with no spatial flip: input i reaches output
    # 2i - 1 + k through tap k (tests/test_models.py checks both against Caffe).
    filters = config.filters[7]
    x = keras.layers.Conv2DTranspose(
        filters, 4, strides=2, padding="same", name="conv8_1", **_decay(config)
    )(x)
    added = []
    if config.shortcut:
        added.append(
            keras.layers.Conv2D(filters, 3, padding="same", name="conv8_1short", **_decay(config))(quarter)
        )
    if hints is not None:
        # The hints again, at the logits' 1/4 resolution (each 4 x 4 block's mean), into
        # block 8: a short path from a hint to the colours around it, as the 2017
        # network's shortcuts from its first blocks to its last; zero-initialised.
        pooled = keras.layers.AveragePooling2D(4, padding="same", name="pool8_1hint")(hints)
        from_hints = keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=False, kernel_initializer="zeros", name="conv8_1hint",
            **{k: v for k, v in _decay(config).items() if k == "kernel_regularizer"},
        )(pooled)
        if not config.shortcut:
            # Block 8 is not cropped here without the shortcut (its size: 2 * ceil(H / 8)).
            from_hints = PadToSize(name="pad8_1hint")([from_hints, x])
        added.append(from_hints)
    if config.shortcut:
        # Block 2's output has ceil(H / 4) rows, the upsampled 2 * ceil(H / 8): crop first.
        x = CropToStride(c.OUTPUT_STRIDE, name="crop8_1")([x, l_raw])
    if added:
        x = keras.layers.Add(name="add8_1")([x, *added])
    x = keras.layers.ReLU(name="relu8_1")(x)
    for i in range(2, config.convs[7] + 1):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"conv8_{i}", **_decay(config))(x)
        x = keras.layers.ReLU(name=f"relu8_{i}")(x)
    x = CropToStride(c.OUTPUT_STRIDE, name="crop")([x, l_raw])
    # float32 logits under mixed precision: softmax, loss and decoding need them.
    head = keras.layers.Conv2D(c.NUM_BINS, 1, name="conv8_313", dtype="float32", **_decay(config))
    logits = head(x)
    if hints is not None and config.hint_spread > 0:
        spread = HintSpread(
            config.hint_spread,
            config.hint_spread_temperature,
            config.hint_spread_threshold,
            config.hint_spread_radius,
            name="hint_spread",
        )
        # The raw hint map: the spread reads ab in ab units and the mask as 0/1.
        logits = spread([logits, x, raw_hints])
    return logits


def build_backbone(config=None, name="colornet_backbone"):
    """The bare network as a functional `keras.Model` (no training defaults).

    `Colorizer` is the same network with the paper's solver and serialisation; use
    this to embed the network in a larger model.

    Args:
      config: a `ModelConfig`; None for the paper's.
      name: the model's name.

    Returns:
      a `keras.Model` mapping `l_raw (B, H, W, 1)` (and, with `config.hints`, the
      hint map `(B, H, W, 3)`) to logits `(B, ceil(H / 4), ceil(W / 4), 313)`.
    """
    config = ModelConfig() if config is None else config
    inputs = model_inputs(config)
    return keras.Model(inputs, apply_backbone(inputs[0], config, *inputs[1:]), name=name)


def model_inputs(config):
    """The symbolic inputs of the network of `config`: `[l_raw]` or `[l_raw, hints]`."""
    inputs = [keras.Input((None, None, 1), name="l_raw")]
    if config.hints:
        inputs.append(keras.Input((None, None, HINT_CHANNELS), name="hints"))
    return inputs
