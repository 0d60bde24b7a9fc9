"""The one place where the network's input is normalised."""

import keras

from colornet import constants as c


@keras.saving.register_keras_serializable(package="colornet")
class NormalizeL(keras.layers.Layer):
    """Maps lightness `l_raw` (CIE L, 0..100) to what the network sees, `l_input`.

    l_input = (l_raw - center) / scale. The Caffe release feeds L - 50 (center 50,
    scale 1: -50..50); the PyTorch port feeds (L - 50) / 100 (scale 100: -0.5..0.5).
    The first convolution's weights are tied to the scale: weights trained with
    scale s1 work with scale s2 once that kernel is multiplied by s2 / s1.

    Computes in float32 under any dtype policy (the next convolution casts), so that
    L is not rounded to bfloat16 before the subtraction.

    Args:
      center: subtracted from L, in L units.
      scale: then divides, > 0.

    Input: `(B, H, W, 1)` float L in 0..100. Output: same shape, float32.
    """

    def __init__(self, center=c.L_CENTER, scale=1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        self.center = float(center)
        self.scale = float(scale)

    def call(self, l_raw):
        return (l_raw - self.center) / self.scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "center": self.center, "scale": self.scale}


@keras.saving.register_keras_serializable(package="colornet")
class NormalizeHints(NormalizeL):
    """Scales a hint map (`colornet.hints`: a, b in ab units, a 0/1 mask) to the range
    of the normalised L: a and b divided by `scale` as L is, the mask multiplied by
    `center / scale`, so that every input channel spans about what `l_input` spans and
    a zero-initialised kernel learns at one pace for all of them.

    Args:
      center, scale: `NormalizeL`'s.

    Input: `(B, H, W, 3)` float. Output: same shape, float32.
    """

    def call(self, hints):
        return hints * [1.0 / self.scale, 1.0 / self.scale, self.center / self.scale]
