"""sRGB <-> CIE Lab on whole frames: the formulas and constants of `colornet.color`
(scikit-image's), at a fraction of the cost.

Video spends most of its work outside the network at full resolution: L of every
input pixel and Lab -> RGB of every output pixel. As TF ops (even fused by XLA) the
two took 130 CPU ms a 1920 x 1080 frame, five times the bfloat16 network; here they
take about 20, and L of a grey frame about 1 (`benchmarks/video.py --stages`).

* `frame_l`: uint8 sRGB -> L, with OpenCV. Linearising is a 256-entry table
  (`cv2.LUT`), the luminance Y a weighted sum of the channels (`cv2.transform`), then
  L = f(Y): the same arithmetic as `colornet.color.rgb_to_lab` in float32 (L within
  0.001).
* `grey_l`: a uint8 grey frame (R = G = B) -> L: one 256-entry table, the values
  `frame_l` gives.
* `lab_to_rgb8`: L and ab (upsampled bilinearly) -> uint8 sRGB in one pass
  (`kernels`), the formulas of `colornet.color.lab_to_rgb`, and sRGB's curve as a
  table that rounds linear values to the nearest level exactly; within one level of
  `colornet.color` (tests/test_video.py), the rest float32 rounding.

Needs OpenCV and Numba (the `video` extra); `available()` says whether they are there.
"""

import functools

import numpy as np

from colornet import constants as c


@functools.cache  # asked on every frame: a missing package is looked for once
def available():
    try:
        import cv2  # noqa: F401
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _linear_table():
    """uint8 sRGB level -> linear RGB, computed as `colornet.color` does, in float64."""
    v = np.arange(256, dtype=np.float64) / 255.0
    linear = np.where(v > c.SRGB_LINEAR_THRESHOLD, ((v + 0.055) / 1.055) ** 2.4, v / 12.92)
    return linear.astype(np.float32).reshape(1, 256)


_LINEAR = _linear_table()
# Y of linear RGB, relative to the white's (D65's Y is 1).
_Y_FROM_LINEAR = (np.asarray(c.XYZ_FROM_LINEAR_RGB, np.float64)[1] / c.D65_WHITE[1]).astype(np.float32)[None]


def _grey_l_table():
    """uint8 grey level -> L: f(Y) of Y = the level's linear value, in float64."""
    y = _LINEAR.ravel().astype(np.float64)
    f = np.where(y > c.LAB_EPSILON, np.cbrt(y), c.LAB_KAPPA_SLOPE * y + 16.0 / 116.0)
    return np.clip(116.0 * f - 16.0, 0.0, 100.0).astype(np.float32).reshape(1, 256)


_GREY_L = _grey_l_table()
# XYZ relative to the white (as Lab gives it) -> linear RGB.
_RGB_FROM_XYZ = (np.linalg.inv(np.asarray(c.XYZ_FROM_LINEAR_RGB, np.float64)) * c.D65_WHITE).astype(np.float32)


def _srgb_levels(bins=8192):
    """Linear RGB in [0, 1] -> the nearest uint8 sRGB level, as two tables over `bins`
    equal bins (`kernels.upsample_lab_to_rgb8`): the level at each bin's start, and
    where in the bin (times `bins`) the next level starts (2 * bins: not in it). The
    steps between levels are at least 1 / (255 * 12.92) apart (the steepest part of
    sRGB's curve), more than a bin, so a bin holds at most one."""
    middles = (np.arange(255) + 0.5) / 255.0  # sRGB values where rounding steps up a level
    steps = np.where(middles > c.SRGB_ENCODE_THRESHOLD * 12.92, ((middles + 0.055) / 1.055) ** 2.4, middles / 12.92)
    levels = np.searchsorted(steps, np.arange(bins + 1) / bins, side="right")
    following = np.where(levels < 255, steps[np.minimum(levels, 254)] * bins, 2.0 * bins)
    return levels.astype(np.uint8), following.astype(np.float32)


_SRGB_LEVELS = _srgb_levels()


class Scratch:
    """Work arrays kept from frame to frame (a video's frames share a size), so that
    each frame does not allocate, and the kernel zero, tens of megabytes afresh. One
    per thread."""

    def __init__(self):
        self._arrays = {}

    def __call__(self, name, shape, dtype=np.float32):
        array = self._arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self._arrays[name] = np.empty(shape, dtype)
        return array


def frame_l(rgb, out=None, scratch=None):
    """`(H, W, 3)` uint8 sRGB -> `(H, W)` float32 CIE L (0..100), into `out` if given."""
    import cv2

    scratch = scratch or Scratch()
    shape = rgb.shape[:2]
    y = cv2.transform(cv2.LUT(rgb, _LINEAR, dst=scratch("linear", rgb.shape)), _Y_FROM_LINEAR,
                      dst=scratch("y", shape))
    # f(Y): the cube root above (6/29)^3, a line below.
    out = np.empty(shape, np.float32) if out is None else out
    np.multiply(y, c.LAB_KAPPA_SLOPE, out=out)
    out += 16.0 / 116.0
    above = np.greater(y, c.LAB_EPSILON, out=scratch("above", shape, bool))
    np.copyto(out, np.cbrt(y, out=scratch("cube_root", shape)), where=above)
    out *= 116.0
    out -= 16.0
    return np.clip(out, 0.0, 100.0, out=out)


def grey_l(grey, out=None):
    """`(H, W)` uint8 grey sRGB levels -> `(H, W)` float32 CIE L, into `out` if given."""
    import cv2

    return cv2.LUT(grey, _GREY_L, dst=out)


def _axis_taps(length, size):
    """Bilinear upsampling with half-pixel centres (`tf.image.resize`'s, OpenCV's) of
    one axis, `size` -> `length` pixels: per output pixel its two source pixels and
    the second's weight."""
    source = np.clip((np.arange(length) + 0.5) * size / length - 0.5, 0, size - 1)
    first = np.floor(source).astype(np.int32)
    return first, np.minimum(first + 1, size - 1).astype(np.int32), (source - first).astype(np.float32)


def lab_to_rgb8(l_raw, ab_small):
    """`(H, W)` float32 L and `(h, w, 2)` float32 ab -> `(H, W, 3)` uint8 sRGB, ab
    upsampled bilinearly with half-pixel centres, as `colornet.inference.upsample_ab`
    (tf.image.resize) does it."""
    from colornet.apps.video import kernels

    shape = l_raw.shape
    ab_small = np.ascontiguousarray(ab_small, np.float32)
    out = np.empty((*shape, 3), np.uint8)  # a new array: the frame is handed on to the encoder
    rows, columns = _axis_taps(shape[0], ab_small.shape[0]), _axis_taps(shape[1], ab_small.shape[1])
    return kernels.upsample_lab_to_rgb8(np.ascontiguousarray(l_raw, np.float32), ab_small, rows, columns,
                                        _RGB_FROM_XYZ, *_SRGB_LEVELS, out)
