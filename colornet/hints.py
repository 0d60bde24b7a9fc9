"""User hints: sparse ab colours at points of the image, fed to the network beside L.

The authors' follow-up ("Real-Time User-Guided Image Colorization with Learned Deep
Priors", Zhang, Zhu, Isola, Geng, Lin, Yu, Efros, SIGGRAPH 2017, Sec. 3.1) gives the
network, beside L, the ab of a few revealed points and a mask saying where they are;
zeros everywhere mean "no hint", and the network is then an automatic colouriser.

A hint map is `(B, H, W, 3)` float32 at the network's input resolution: channels a
and b in ab units (0 where there is no hint) and a mask (1 at hinted pixels, else 0).

Training reveals true colours at random (`simulate_hints`, Sec. 3.3 of the 2017
paper): a random number of square patches per image (none for a share of the
images), each of a random side, placed uniformly over the image, each carrying its
patch's mean true ab. At inference, `hint_map` draws points given in an image's own
pixel coordinates onto the network's grid.

Every function is TF ops: eager, in `tf.function`, in `tf.data.map`.
"""

import json
import math
import numbers
import os
import re

import numpy as np
import tensorflow as tf

from colornet import color
from colornet.utils.errors import ColornetError

HINT_CHANNELS = 3  # a, b, mask
# Simulated hints (the 2017 paper's release draws the count from a geometric
# distribution with p = 1/8 and patch sides of 1 to 9 pixels).
NO_HINT_RATE = 0.25  # share of training images with no hint at all
POINTS_P = 1.0 / 8.0  # the count of the others is geometric on 1, 2, ...: mean 8
MAX_POINTS = 48  # the count is capped here (P(count > 48) = 0.2 %)
MAX_PATCH = 9  # patch sides are drawn from 1..MAX_PATCH network pixels
# A hint given without a size covers this many network pixels a side.
DEFAULT_PATCH = 3
MAX_HINTS = 1024  # more hints than this in one image is refused, not drawn
AB_LIMIT = 128.0  # |a| and |b| of a hint given as ab
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


def _spans(center, side, length):
    """`(..., length)` float 0/1: which of `length` pixels the spans of `side` pixels
    centred on `center` cover (clipped to the image; at least the centre's pixel)."""
    start = tf.floor(center - (side - 1.0) / 2.0)
    stop = start + tf.maximum(side, 1.0)
    pixels = tf.range(length, dtype=tf.float32)
    inside = (pixels >= start[..., None]) & (pixels < stop[..., None])
    return tf.cast(inside, tf.float32)


def _paint(rows, cols, ab, active):
    """The hint map of patches given by their row and column spans.

    Args:
      rows: `(B, N, H)` 0/1, cols `(B, N, W)` 0/1: patch n covers rows x cols.
      ab: `(B, N, 2)` each patch's colour.
      active: `(B, N)` 0/1: whether patch n is there.

    Returns:
      `(B, H, W, 3)`: where patches overlap, their mean ab.
    """
    rows = rows * active[..., None]
    coloured = rows[..., None] * ab[:, :, None, :]  # (B, N, H, 2)
    summed = tf.einsum("bnhc,bnw->bhwc", coloured, cols)
    cover = tf.einsum("bnh,bnw->bhw", rows, cols)[..., None]
    mask = tf.cast(cover > 0, tf.float32)
    return tf.concat([summed / tf.maximum(cover, 1.0), mask], axis=-1)


def simulate_hints(
    ab,
    seed,
    *,
    no_hint_rate=NO_HINT_RATE,
    points_p=POINTS_P,
    max_points=MAX_POINTS,
    max_patch=MAX_PATCH,
):
    """Hints revealed from the true colours at random, as the 2017 paper trains.

    Args:
      ab: `(B, H, W, 2)` float true ab at the network's input resolution.
      seed: `(2,)` int stateless seed: the same seed gives the same hints.
      no_hint_rate: probability that an image gets no hint.
      points_p: the others get 1, 2, ... patches, geometric with this p.
      max_points: at most this many patches.
      max_patch: patch sides are uniform in 1..max_patch pixels.

    Returns:
      `(B, H, W, 3)` float32 hint map: each patch holds its own mean true ab.
    """
    ab = tf.cast(ab, tf.float32)
    shape = tf.shape(ab)
    batch, height, width = shape[0], shape[1], shape[2]
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 5))
    uniform = tf.random.stateless_uniform
    none = uniform([batch], seeds[0]) < no_hint_rate
    # Inverse CDF of the geometric distribution on 1, 2, ...
    u = uniform([batch], seeds[1], minval=1e-7, maxval=1.0)
    count = tf.floor(tf.math.log(u) / tf.math.log(1.0 - points_p)) + 1.0
    count = tf.where(none, 0.0, tf.minimum(count, float(max_points)))
    active = tf.cast(tf.range(max_points, dtype=tf.float32)[None] < count[:, None], tf.float32)
    centers = uniform([batch, max_points, 2], seeds[2])
    y = tf.floor(centers[..., 0] * tf.cast(height, tf.float32))
    x = tf.floor(centers[..., 1] * tf.cast(width, tf.float32))
    side = tf.floor(uniform([batch, max_points], seeds[3], minval=1.0, maxval=max_patch + 1.0))
    rows = _spans(y, side, height)
    cols = _spans(x, side, width)
    # Each patch's mean true ab: sum over its rows and columns / its area.
    sums = tf.einsum("bnh,bhwc,bnw->bnc", rows, ab, cols)
    area = tf.reduce_sum(rows, -1) * tf.reduce_sum(cols, -1)
    means = sums / tf.maximum(area, 1.0)[..., None]
    return _paint(rows, cols, means, active)


def hint_map(points, image_size, size):
    """Hints given in an image's own pixels, drawn on the network's `size` x `size` grid.

    Args:
      points: `(N, 5)` float: x (to the right), y (down), origin the top-left corner
        of the top-left pixel, in input pixels; a and b in ab units; the patch side in
        input pixels (0: `DEFAULT_PATCH` network pixels). N may be 0.
        A row whose size is negative is padding and is ignored (so that a batch
        of images can carry different numbers of hints).
      image_size: `(H, W)` of the input image.
      size: the network's input side.

    Returns:
      `(size, size, 3)` float32 hint map. A patch covers at least the network pixel
      its point falls in; points outside the image are clamped to its edge.
    """
    points = tf.reshape(tf.cast(points, tf.float32), [-1, 5])
    height = tf.cast(image_size[0], tf.float32)
    width = tf.cast(image_size[1], tf.float32)
    scale_y = size / height
    scale_x = size / width
    x = tf.clip_by_value(points[:, 0] * scale_x, 0.0, size - 1e-3)
    y = tf.clip_by_value(points[:, 1] * scale_y, 0.0, size - 1e-3)
    given = points[:, 4]
    default = tf.fill(tf.shape(given), float(DEFAULT_PATCH))
    side_y = tf.where(given > 0, tf.maximum(tf.round(given * scale_y), 1.0), default)
    side_x = tf.where(given > 0, tf.maximum(tf.round(given * scale_x), 1.0), default)
    rows = _spans(tf.floor(y), side_y, size)[None]
    cols = _spans(tf.floor(x), side_x, size)[None]
    active = tf.cast(given >= 0, tf.float32)[None]
    return _paint(rows, cols, points[None, :, 2:4], active)[0]


def no_hints(l_raw):
    """The empty hint map for `(B, H, W, 1)` L: all zeros, `(B, H, W, 3)` float32."""
    l_raw = tf.convert_to_tensor(l_raw)
    return tf.zeros(tf.concat([tf.shape(l_raw)[:-1], [HINT_CHANNELS]], 0), tf.float32)


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ColornetError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _ab_of_color(value, what):
    """ab of an sRGB colour: "#rrggbb", "rrggbb" or [r, g, b] in 0..255."""
    if isinstance(value, str):
        match = _HEX.fullmatch(value.strip())
        if not match:
            raise ColornetError(f"{what}: {value!r} is not a colour (give \"#rrggbb\" or [r, g, b])")
        rgb = [int(match.group(1)[i : i + 2], 16) for i in (0, 2, 4)]
    elif isinstance(value, (list, tuple)) and len(value) == 3:
        rgb = [_number(v, what) for v in value]
        if not all(0 <= v <= 255 for v in rgb):
            raise ColornetError(f"{what}: RGB values must be in 0..255, got {list(value)}")
    else:
        raise ColornetError(f"{what}: {value!r} is not a colour (give \"#rrggbb\" or [r, g, b])")
    lab = color.rgb_to_lab(tf.constant([rgb], tf.float64) / 255.0)
    return [float(v) for v in lab.numpy()[0, 1:]]


def parse_hints(hints, image_size=None):
    """User hints -> a `(N, 5)` float32 array of `[x, y, a, b, size]` (`hint_map`'s).

    A hint is a dict `{"x": 120, "y": 45, "color": "#3a7d2c"}` (or `"color": [r, g,
    b]`, or `"ab": [a, b]` instead), with an optional `"size"`: the side of the hinted
    square in input pixels (default: `DEFAULT_PATCH` network pixels). x runs to the
    right and y down from the top-left corner of the image, in the input image's own
    pixels. Only a colour's ab is used: the image keeps its own lightness. A sequence
    `(x, y, a, b[, size])` is taken too; so is an `(N, 4)` or `(N, 5)` array.

    Args:
      hints: a list of hints (empty: none), or None.
      image_size: `(H, W)`: when given, points outside the image are refused.

    Raises:
      ColornetError: naming the hint and what is wrong with it.
    """
    if hints is None:
        return np.zeros([0, 5], np.float32)
    if isinstance(hints, np.ndarray):
        hints = hints.tolist()
    if not isinstance(hints, (list, tuple)):
        raise ColornetError(f"hints must be a list of hints, got {type(hints).__name__}")
    if len(hints) > MAX_HINTS:
        raise ColornetError(f"{len(hints)} hints: at most {MAX_HINTS} are taken for one image")
    rows = []
    for i, hint in enumerate(hints):
        what = f"hint {i}"
        if isinstance(hint, dict):
            unknown = sorted(set(hint) - {"x", "y", "color", "ab", "size"})
            if unknown:
                raise ColornetError(f"{what}: unknown keys {unknown} (x, y, color or ab, size)")
            if "x" not in hint or "y" not in hint:
                raise ColornetError(f"{what}: needs x and y")
            if ("color" in hint) == ("ab" in hint):
                raise ColornetError(f"{what}: give exactly one of color and ab")
            x, y = _number(hint["x"], f"{what}: x"), _number(hint["y"], f"{what}: y")
            if "color" in hint:
                a, b = _ab_of_color(hint["color"], what)
            else:
                ab = hint["ab"]
                if not isinstance(ab, (list, tuple)) or len(ab) != 2:
                    raise ColornetError(f"{what}: ab must be [a, b], got {ab!r}")
                a, b = (_number(v, f"{what}: ab") for v in ab)
            size = _number(hint.get("size", 0), f"{what}: size")
        elif isinstance(hint, (list, tuple)) and len(hint) in (4, 5):
            x, y, a, b, *rest = (_number(v, what) for v in hint)
            size = rest[0] if rest else 0.0
        else:
            raise ColornetError(f"{what}: {hint!r} is not a hint (an object with x, y and color or ab)")
        if abs(a) > AB_LIMIT or abs(b) > AB_LIMIT:
            raise ColornetError(f"{what}: ab must be within ±{AB_LIMIT:g}, got [{a:g}, {b:g}]")
        if size < 0:
            raise ColornetError(f"{what}: size must be >= 0, got {size:g}")
        if image_size is not None:
            height, width = image_size
            if not (0 <= x < width and 0 <= y < height):
                raise ColornetError(
                    f"{what}: point ({x:g}, {y:g}) is outside the {width} x {height} image"
                )
        rows.append([x, y, a, b, size])
    return np.array(rows, np.float32).reshape([-1, 5])


def read_hints_file(path):
    """The hints of a JSON file (a list of hints, `parse_hints`' format), unchecked
    against any image.

    Raises:
      ColornetError: unreadable, not JSON, or not hints.
    """
    try:
        with open(path, encoding="utf-8") as f:
            hints = json.load(f)
    except OSError as error:
        raise ColornetError(f"{os.fspath(path)}: cannot read hints ({error.strerror or error})") from None
    except ValueError as error:
        raise ColornetError(f"{os.fspath(path)}: not JSON ({error})") from None
    try:
        parse_hints(hints)
    except ColornetError as error:
        raise ColornetError(f"{os.fspath(path)}: {error}") from None
    return hints


def distribution_at(probabilities, x, y, image_size, size, stride=4):
    """The predicted distribution at a point of the input image, bilinear between the
    four nearest output pixels (output pixel i covers input rows stride * i .. stride * i
    + stride - 1 of the network's `size` x `size` input).

    Args:
      probabilities: `(h, w, Q)` float, one image's distribution over the bins.
      x, y: the point in the image's own pixels.
      image_size: `(H, W)` of the image.
      size: the network's input side.

    Returns:
      `(Q,)` float32.
    """
    p = tf.convert_to_tensor(probabilities, tf.float32)
    image_size = tf.cast(image_size, tf.float32)
    grid = tf.cast(tf.shape(p)[:2], tf.float32)
    gy = tf.clip_by_value((tf.cast(y, tf.float32) + 0.5) * size / image_size[0] / stride - 0.5, 0.0, grid[0] - 1.0)
    gx = tf.clip_by_value((tf.cast(x, tf.float32) + 0.5) * size / image_size[1] / stride - 0.5, 0.0, grid[1] - 1.0)
    y0, x0 = tf.floor(gy), tf.floor(gx)
    y1, x1 = tf.minimum(y0 + 1.0, grid[0] - 1.0), tf.minimum(x0 + 1.0, grid[1] - 1.0)
    dy, dx = gy - y0, gx - x0

    def at(row, column):
        return p[tf.cast(row, tf.int32), tf.cast(column, tf.int32)]

    return (
        at(y0, x0) * (1 - dy) * (1 - dx) + at(y0, x1) * (1 - dy) * dx
        + at(y1, x0) * dy * (1 - dx) + at(y1, x1) * dy * dx
    )


SUGGESTION_RADIUS = 15.0  # ab units: bins this close are one suggestion (1.5 grid steps)


def suggest_from_distribution(probabilities, bin_centres, k, radius=SUGGESTION_RADIUS):
    """Gathers a distribution over the ab bins into k colours to choose from.

    The most likely bin not yet taken, with every remaining bin within `radius` ab
    units of it, becomes one suggestion: their probability-weighted mean ab and their
    summed probability. Repeated k times (a fixed number, so that it runs in a
    SavedModel); then sorted, most likely first.

    Args:
      probabilities: `(313,)` float, summing to 1.
      bin_centres: `(313, 2)` float ab of the bins.
      k: Python int >= 1.

    Returns:
      `(ab, weight)`: `(k, 2)` and `(k,)` float32; a suggestion with nothing left to
      gather has weight 0 (and should be dropped).
    """
    left = tf.cast(probabilities, tf.float32)
    centres = tf.cast(bin_centres, tf.float32)
    abs_, weights = [], []
    for _ in range(k):
        top = tf.argmax(left)
        near = tf.cast(tf.norm(centres - centres[top], axis=-1) <= radius, tf.float32) * tf.cast(left > 0, tf.float32)
        mass = left * near
        weight = tf.reduce_sum(mass)
        abs_.append(tf.reduce_sum(centres * mass[:, None], 0) / tf.maximum(weight, 1e-12))
        weights.append(weight)
        left = left * (1.0 - near)
    ab, weight = tf.stack(abs_), tf.stack(weights)
    order = tf.argsort(weight, direction="DESCENDING", stable=True)
    return tf.gather(ab, order), tf.gather(weight, order)
