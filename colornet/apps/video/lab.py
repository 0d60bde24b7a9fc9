"""sRGB <-> CIE Lab on whole frames with OpenCV: the formulas and constants of
`colornet.color` (scikit-image's), at a fraction of the cost.

Video spends most of its work outside the network at full resolution: L of every
input pixel and Lab -> RGB of every output pixel. As TF ops (even fused by XLA) the
two took 130 CPU ms a 1920 x 1080 frame, five times the bfloat16 network; here they
take about 25 (`benchmarks/video.py --stages`).

* `frame_l`: uint8 sRGB -> L. Linearising is a 256-entry table (`cv2.LUT`), the
  luminance Y a weighted sum of the channels (`cv2.transform`), then L = f(Y): the
  same arithmetic as `colornet.color.rgb_to_lab` in float32 (L within 0.001).
* `lab_to_rgb8`: L and ab -> uint8 sRGB with OpenCV's float Lab -> RGB, whose
  formulas are scikit-image's except one: scikit-image clamps f(Z) at 0 and OpenCV
  does not, so b is clamped first where that matters (very yellow dark colours, out
  of the sRGB gamut), which makes the two the same. OpenCV clips linear RGB to
  [0, 1], as `colornet.color.lab_to_rgb` clips sRGB, and both round to the nearest
  level; they agree within one level (tests/test_video.py).

Needs OpenCV (the `video` extra); `available()` says whether it is there.
"""

import numpy as np

from colornet import constants as c


def available():
    try:
        import cv2  # noqa: F401
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


def lab_to_rgb8(l_raw, ab_small, scratch=None):
    """`(H, W)` float32 L and `(h, w, 2)` float32 ab -> `(H, W, 3)` uint8 sRGB, ab
    upsampled bilinearly with half-pixel centres, as `colornet.inference.upsample_ab`
    (tf.image.resize) does it."""
    import cv2

    scratch = scratch or Scratch()
    height, width = shape = l_raw.shape
    ab = cv2.resize(ab_small, (width, height), dst=scratch("ab", (*shape, 2)), interpolation=cv2.INTER_LINEAR)
    a, b = scratch("a", shape), scratch("b", shape)
    cv2.split(ab, [a, b])
    # scikit-image clamps f(Z) = (L + 16) / 116 - b / 200 at 0; OpenCV does not.
    highest = np.add(l_raw, 16.0, out=scratch("highest_b", shape))
    highest *= 200.0 / 116.0
    np.minimum(b, highest, out=b)
    lab = cv2.merge([l_raw, a, b], dst=scratch("lab", (*shape, 3)))
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB, dst=scratch("rgb", (*shape, 3)))
    # In [0, 1] already: the absolute value changes nothing; rounds to nearest.
    return cv2.convertScaleAbs(rgb, alpha=255.0)
