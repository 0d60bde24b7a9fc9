"""The authors' 2017 hint network as a Keras model (`Siggraph17`).

"Real-Time User-Guided Image Colorization with Learned Deep Priors" (Zhang, Zhu,
Isola, Geng, Lin, Yu, Efros, SIGGRAPH 2017, Sec. 3 and the appendix's network
table); the layer list, names and input normalisation follow the authors' released
PyTorch definition (`colorizers/siggraph17.py` and `base_color.py` of
github.com/richzhang/colorization), whose weights `colornet.weights.official17` converts.

The network, every convolution 3x3 with ReLU unless stated:

- input: `[(L - 50) / 100, a / 110, b / 110, mask]` at the input resolution
  (`Siggraph17Input`; the mask is 1 at hinted pixels, 0 elsewhere: the release
  feeds it uncentred);
- blocks 1-7 as ECCV16's (2, 2, 3, 3, 3, 3, 3 convolutions of 64, 128, 256, 512,
  512, 512, 512 channels, dilation 2 in blocks 5 and 6, each block ending in an
  affine batch norm after its last ReLU), but without strided convolutions: blocks
  2, 3 and 4 start by keeping every second pixel (`Subsample`);
- decoder: block 8 = 4x4 stride-2 transposed convolution (512 -> 256) plus a 3x3
  convolution of block 3's output, ReLU, two convolutions, batch norm; block 9 =
  transposed convolution (256 -> 128) plus a convolution of block 2's output,
  ReLU, one convolution, batch norm; block 10 = transposed convolution (128 -> 128)
  plus a convolution (64 -> 128) of block 1's output, ReLU, one convolution with
  LeakyReLU (slope 0.2);
- heads: `class_logits`, a 1x1 convolution of block 8 to 529 classes (a 23 x 23
  grid of ab, `class_ab_centres`) at 1/4 resolution; `ab`, a 1x1 convolution of
  block 10 to 2 channels, tanh, times 110: ab at the input resolution.

Sizes. The release's own forward pass only works where every subsampled size is
even (multiples of 8); here each upsampled map is cropped to its shortcut's size
(`CropToStride` with stride 1), so any size works and multiples of 8 are the
release's network exactly.
"""

import json
import os
import zipfile

import keras
import numpy as np
import tensorflow as tf

from colornet import hints as hint_maps
from colornet.models.backbone import CropToStride, DilatedConv2D
from colornet.utils.errors import ColornetError

# `colorizers/base_color.py`: l_cent, l_norm, ab_norm.
L_CENTER = 50.0
L_SCALE = 100.0
AB_SCALE = 110.0
# The classification head's ab grid (the authors' training code, colorization-pytorch
# `util.encode_ab_ind`: ab_max 110, ab_quant 10, class = a index * 23 + b index).
AB_GRID_MAX = 110.0
AB_GRID_STEP = 10.0
GRID_SIDE = 23  # 2 * 110 / 10 + 1
NUM_CLASSES = GRID_SIDE * GRID_SIDE  # 529
NORM_EPSILON = 1e-5  # PyTorch's BatchNorm2d default, which the release uses

# (block, channels, convolutions, dilation) of the encoder.
ENCODER = (
    (1, 64, 2, 1), (2, 128, 2, 1), (3, 256, 3, 1), (4, 512, 3, 1), (5, 512, 3, 2), (6, 512, 3, 2), (7, 512, 3, 1),
)
# (block, channels, convolutions after the join, shortcut from block, batch norm) of the decoder.
DECODER = ((8, 256, 2, 3, True), (9, 128, 1, 2, True), (10, 128, 1, 1, False))


def class_ab_centres():
    """`(529, 2)` float32: the ab of each class of the `class_logits` head, ordered by
    a then b, each on -110, -100, ..., 110."""
    steps = np.arange(GRID_SIDE, dtype=np.float32) * AB_GRID_STEP - AB_GRID_MAX
    a, b = np.meshgrid(steps, steps, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=-1)


@keras.saving.register_keras_serializable(package="colornet")
class Siggraph17Input(keras.layers.Layer):
    """The 2017 network's input: normalised L, hint ab and mask, concatenated.

    Computes `[(l_raw - l_center) / l_scale, a / ab_scale, b / ab_scale, mask]`, the
    release's `normalize_l` and `normalize_ab`, in float32 under any dtype policy.

    Args:
      l_center, l_scale: L normalisation, in L units; `l_scale` > 0.
      ab_scale: ab normalisation, in ab units, > 0.

    Inputs: `[l_raw (B, H, W, 1), hints (B, H, W, 3)]`: L in 0..100 and a hint map
    (`colornet.hints`: a, b in ab units, mask 0/1). Output: `(B, H, W, 4)` float32.
    """

    def __init__(self, l_center=L_CENTER, l_scale=L_SCALE, ab_scale=AB_SCALE, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        for name, value in (("l_scale", l_scale), ("ab_scale", ab_scale)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self.l_center = float(l_center)
        self.l_scale = float(l_scale)
        self.ab_scale = float(ab_scale)

    def call(self, inputs):
        l_raw, hints = inputs
        l_input = (l_raw - self.l_center) / self.l_scale
        ab_input = hints[..., :2] / self.ab_scale
        return tf.concat([l_input, ab_input, hints[..., 2:3]], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:3], 4)

    def get_config(self):
        return {
            **super().get_config(),
            "l_center": self.l_center,
            "l_scale": self.l_scale,
            "ab_scale": self.ab_scale,
        }


@keras.saving.register_keras_serializable(package="colornet")
class Subsample(keras.layers.Layer):
    """Keeps every `stride`-th row and column from the first: `x[:, ::s, ::s]`.

    Args:
      stride: >= 1.

    Input: `(B, H, W, C)`. Output: `(B, ceil(H / s), ceil(W / s), C)`, same dtype.
    """

    def __init__(self, stride=2, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        self.stride = stride

    def call(self, x):
        return x[:, :: self.stride, :: self.stride, :]

    def compute_output_shape(self, input_shape):
        height, width = (None if n is None else -(-n // self.stride) for n in input_shape[1:3])
        return (input_shape[0], height, width, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}


def _conv(filters, name, dilation=1, kernel=3, **kwargs):
    layer = DilatedConv2D if dilation > 1 else keras.layers.Conv2D
    return layer(filters, kernel, padding="same", dilation_rate=dilation, name=name, **kwargs)


def _norm(name):
    return keras.layers.BatchNormalization(epsilon=NORM_EPSILON, momentum=0.9, name=name)


def apply_siggraph17(l_raw, hints):
    """Builds the 2017 network on symbolic inputs.

    Returns:
      `{"ab": (B, H, W, 2), "class_logits": (B, ceil(H / 4), ceil(W / 4), 529)}`,
      both float32.
    """
    x = Siggraph17Input(name="siggraph17_input")([l_raw, hints])
    features = {}
    for block, filters, convs, dilation in ENCODER:
        if block in (2, 3, 4):
            x = Subsample(2, name=f"subsample{block}")(x)
        for i in range(1, convs + 1):
            x = _conv(filters, f"conv{block}_{i}", dilation)(x)
            x = keras.layers.ReLU(name=f"relu{block}_{i}")(x)
        x = _norm(f"norm{block}")(x)
        features[block] = x
    for block, filters, convs, shortcut, normalised in DECODER:
        up = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", name=f"conv{block}_up")(x)
        skip = _conv(filters, f"short{shortcut}_{block}")(features[shortcut])
        up = CropToStride(1, name=f"crop{block}")([up, skip])
        x = keras.layers.Add(name=f"add{block}")([up, skip])
        x = keras.layers.ReLU(name=f"relu{block}_0")(x)
        for i in range(1, convs + 1):
            x = _conv(filters, f"conv{block}_{i}")(x)
            if block == 10:
                x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"leaky{block}_{i}")(x)
            else:
                x = keras.layers.ReLU(name=f"relu{block}_{i}")(x)
        if normalised:
            x = _norm(f"norm{block}")(x)
        features[block] = x
    class_logits = _conv(NUM_CLASSES, "class_out", kernel=1, dtype="float32")(features[8])
    ab = _conv(2, "ab_out", kernel=1, activation="tanh", dtype="float32")(features[10])
    ab = keras.layers.Rescaling(AB_SCALE, name="ab", dtype="float32")(ab)
    return {"ab": ab, "class_logits": class_logits}


@keras.saving.register_keras_serializable(package="colornet")
class Siggraph17(keras.Model):
    """The SIGGRAPH 2017 user-guided colorization network (see the module docstring).

    Inputs: `[l_raw (B, H, W, 1), hints (B, H, W, 3)]` float: L in 0..100 and a hint
    map (`colornet.hints`: a, b in ab units where hinted, mask 1 there, zeros
    elsewhere); `l_raw` alone means no hints. Outputs: a dict, `"ab"` `(B, H, W, 2)`
    ab by regression at the input resolution and `"class_logits"` `(B, ceil(H / 4),
    ceil(W / 4), 529)` over `class_ab_centres()`, both float32. The release's forward
    pass returns `"ab"` only; its classification head is kept with the weights.

    Not trainable with colornet's `RebalancedLoss` (which is for 313-bin logits):
    built for the released weights (`colornet.weights.official17`).

    Args:
      **kwargs: `keras.Model` arguments (`name`, `trainable`).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("name", "siggraph17")
        l_raw = keras.Input((None, None, 1), name="l_raw")
        hints = keras.Input((None, None, hint_maps.HINT_CHANNELS), name="hints")
        super().__init__(inputs=[l_raw, hints], outputs=apply_siggraph17(l_raw, hints), **kwargs)

    def __call__(self, inputs, *args, **kwargs):
        if not isinstance(inputs, (list, tuple, dict)):
            inputs = tf.convert_to_tensor(inputs)
            inputs = [inputs, tf.cast(hint_maps.no_hints(inputs), inputs.dtype)]
        elif isinstance(inputs, (list, tuple)):
            # Keras refuses a list mixing arrays and tensors.
            inputs = [tf.convert_to_tensor(x) if isinstance(x, np.ndarray) else x for x in inputs]
        return super().__call__(inputs, *args, **kwargs)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def is_siggraph17_file(path):
    """True for a `.keras` archive whose model is a `Siggraph17` (read from its
    config.json, nothing loaded)."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    return isinstance(config, dict) and config.get("class_name") == "Siggraph17"


def load_siggraph17(path):
    """Loads a `Siggraph17` from a `.keras` file, in safe mode.

    Raises:
      ColornetError: a missing file, or one that does not hold a `Siggraph17`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ColornetError(f"{path}: no such file")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 (Keras raises many types for a bad archive)
        raise ColornetError(f"{path}: not a loadable colornet model ({error})") from None
    if not isinstance(model, Siggraph17):
        raise ColornetError(f"{path}: holds a {type(model).__name__}, not the SIGGRAPH 2017 network")
    return model
