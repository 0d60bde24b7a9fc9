"""Smoothing colour over time: an exponential moving average of each output pixel's
313-way distribution, carried along the camera's motion (motion "camera", the
default: one shift, turn and zoom for the whole frame, from corners followed between
frames) or along the optical flow of L (motion "flow", OpenCV's DIS flow) or left in
place ("agreement", "none"); held back where L disagrees with the carried previous L
("camera", "flow", "agreement"), so what moved on its own or is new starts afresh;
and started afresh at scene cuts (the L histograms of consecutive frames differ by
more than `scene_threshold`).

Colouring a frame on its own makes colours jump as content shifts; a plain average
drags colour behind moving objects; an average held in place smooths little when the
camera moves. Why the defaults: docs/video.md, "Temporal smoothing", measured by
`benchmarks/video.py --quality`. NumPy, and OpenCV for "camera" and "flow".
"""

import numpy as np

from colornet.apps.video import lab
from colornet.apps.video.defaults import (
    DEFAULT_MOTION,
    DEFAULT_SCENE_THRESHOLD,
    DEFAULT_TEMPORAL_SMOOTHING,
    MOTION_MODES,
)
from colornet.utils.errors import ColornetError

# How far (L units, 0..100) the carried previous L may differ from the current one
# before the running average is held back: the weight falls as exp(-(dL / sigma)^2).
L_AGREEMENT_SIGMA = 12.0
_HISTOGRAM_BINS = 32
# The camera's motion (`camera_motion`): at most this many corners followed, at least
# this many found and agreeing; below this many pixels (network resolution) of motion
# at the frame's corners the camera counts as still, so a still picture is not resampled.
_CORNERS = 200
_MIN_CORNERS = 12
STILL_CAMERA_PIXELS = 0.1
# Each output pixel keeps the unmoved average unless the moved one agrees better with L
# by more than this (in weight, 0..1): on flat L (a wall, the sky) both agree, and in
# place is right behind a large thing that moved on its own and harmless elsewhere.
STAY_PREFERENCE = 0.02


def _require_cv2(motion="camera"):
    try:
        import cv2
    except ImportError:
        raise ColornetError(
            f"motion={motion!r} needs OpenCV: pip install 'colornet-keras[video]' (or motion='agreement')"
        ) from None
    return cv2


def _check_fraction(name, value, upper_open):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not (0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1{')' if upper_open else ']'}, got {value}")
    return value


class TemporalSmoother:
    """Exponential moving average of per-pixel colour distributions over frames.

    For each frame, with p its `(h, w, Q)` distributions and s the running average:
    s = w * carried(s_prev) + (1 - w) * p, w = `strength` * agreement, where
    `carried` moves the previous average along the camera's motion ("camera",
    `camera_motion`: a similarity for the whole frame; the blur of resampling it is
    taken back, and each output pixel keeps whichever of moved and unmoved agrees
    better with L), along the optical flow of L ("flow"), or leaves it in place
    ("agreement", "none"); agreement = exp(-(dL / sigma)^2) per output pixel, dL the
    mean |L - carried(L_prev)| over the pixels it covers (1 for "none"; 0 for what
    was outside the previous frame). The average starts afresh at the first frame
    and at scene cuts: when the L histograms (32 bins) of consecutive frames differ
    by more than `scene_threshold` in total variation (half the L1 distance;
    0 = identical, 1 = disjoint).

    Args:
      strength: 0 (each frame on its own) to < 1 (longer memory).
      scene_threshold: in [0, 1]; 1 never cuts.
      motion: "camera", "flow", "agreement" or "none" ("camera" and "flow" need
        OpenCV, the `video` extra).
      sigma: L units of the agreement weight.

    Call with `(h, w, Q)` float32 distributions and the `(S, S)` float32 L (0..100)
    the network saw (and `out`, an `(h, w, Q)` float32 array to write into, which may
    be the previous call's result); returns the smoothed `(h, w, Q)` float32
    distributions.
    Attributes: `cuts`, the number of scene cuts seen (the first frame not counted).
    """

    def __init__(self, strength=DEFAULT_TEMPORAL_SMOOTHING, scene_threshold=DEFAULT_SCENE_THRESHOLD,
                 motion=DEFAULT_MOTION, sigma=L_AGREEMENT_SIGMA):
        self.strength = _check_fraction("temporal_smoothing", strength, upper_open=True)
        self.scene_threshold = _check_fraction("scene_threshold", scene_threshold, upper_open=False)
        if motion not in MOTION_MODES:
            raise ValueError(f"motion must be one of {', '.join(MOTION_MODES)}, got {motion!r}")
        self.motion = motion
        self.sigma = float(sigma)
        self._flow = None
        if motion in ("flow", "camera") and self.strength > 0:
            self._cv2 = _require_cv2(motion)
        if motion == "flow" and self.strength > 0:
            self._flow = self._cv2.DISOpticalFlow_create(self._cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self.cuts = 0
        self.reset()

    def reset(self):
        """Forgets the past: the next frame starts a new average."""
        self._state = self._l8 = self._histogram = None
        self._carried = None  # the moved average's array, reused from frame to frame

    def _scene_cut(self, histogram):
        distance = 0.5 * float(np.abs(histogram - self._histogram).sum())
        return distance > self.scene_threshold

    def __call__(self, probabilities, l_small, out=None):
        probabilities = np.asarray(probabilities, np.float32)
        if self.strength == 0.0:
            return _into(out, probabilities)
        l8 = _l8(l_small)
        histogram = l_histogram(l8)
        fresh = self._state is None
        if not fresh and self._scene_cut(histogram):
            self.cuts += 1
            fresh = True
        if fresh:
            state = _into(out, probabilities)
        else:
            previous, previous_l = self._state, self._l8.astype(np.float32)
            weight = np.full(probabilities.shape[:2], self.strength, np.float32)
            if self.motion == "flow":
                previous, previous_l = self._carry(previous, previous_l, l8)
            if self.motion != "none":
                weight *= self._agreement(l8, previous_l, probabilities.shape[:2])
            stays = None
            if self.motion == "camera":
                previous, weight, stays = self._follow_camera(previous, l8, weight)
            state = _blend(previous, probabilities, weight, out, self._state, stays)
        self._state, self._l8, self._histogram = state, l8, histogram
        return state

    def _carry(self, state, previous_l, l8):
        """The previous average and L moved to where their content is in this frame."""
        cv2 = self._cv2
        # flow(x): where the content at x of this frame was in the previous one.
        flow = self._flow.calc(l8, self._l8, None)
        big_h, big_w = l8.shape
        grid_y, grid_x = np.mgrid[0:big_h, 0:big_w].astype(np.float32)
        warped_l = cv2.remap(previous_l, grid_x + flow[..., 0], grid_y + flow[..., 1],
                             cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        h, w = state.shape[:2]
        # Each output pixel covers a block of input pixels: average the flow over it
        # and express it in output pixels.
        small = _area_mean(flow, (h, w)) * np.array([w / big_w, h / big_h], np.float32)
        small_y, small_x = np.mgrid[0:h, 0:w].astype(np.float32)
        map_x, map_y = small_x + small[..., 0], small_y + small[..., 1]
        # OpenCV remaps at most 128 channels at a time.
        carried = np.concatenate(
            [
                cv2.remap(np.ascontiguousarray(part), map_x, map_y, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE).reshape(h, w, -1)
                for part in np.array_split(state, -(-state.shape[-1] // 128), axis=-1)
            ],
            axis=-1,
        )
        return carried, warped_l

    def _agreement(self, l8, previous_l, shape):
        """exp(-(dL / sigma)^2) per output pixel, dL its mean |L - previous L|."""
        difference = np.abs(l8.astype(np.float32) - previous_l) / 2.55
        return np.exp(-np.square(_area_mean(difference, shape) / self.sigma))

    def _follow_camera(self, state, l8, weight):
        """The previous average moved along the camera's motion, its weight, and where
        leaving it in place agrees better with this frame's L (None: everywhere)."""
        carried = self._carry_camera(state, self._l8.astype(np.float32), l8)
        if carried is None:
            return state, weight, None
        carried, carried_l, inside = carried
        moved_weight = self.strength * self._agreement(l8, carried_l, weight.shape) * inside
        # Where leaving it in place agrees as well (something that did not move with the
        # camera, a still background behind a large moving thing, flat L), it stays;
        # the weight is the better of the two agreements (within STAY_PREFERENCE of
        # each other where it stays).
        stays = weight >= moved_weight - STAY_PREFERENCE
        return carried, np.maximum(weight, moved_weight), stays

    def _carry_camera(self, state, previous_l, l8):
        """The previous average and L moved along the camera's motion (`camera_motion`),
        and the share of each output pixel that was inside the previous frame."""
        matrix = camera_motion(self._l8, l8)
        if matrix is None:
            return None
        cv2 = self._cv2
        big_h, big_w = l8.shape
        h, w = state.shape[:2]
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warped_l = cv2.warpAffine(previous_l, matrix, (big_w, big_h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        small = _rescaled(matrix, big_w / w, big_h / h)
        if self._carried is None or self._carried.shape != state.shape:
            self._carried = np.empty(state.shape, np.float32)
        carried = _warp_channels(cv2, state, small, _unblur_kernels(small, h, w), out=self._carried)
        inside = cv2.warpAffine(np.ones((h, w), np.float32), small, (w, h), flags=flags,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        return carried, warped_l, inside


def camera_motion(previous_l8, l8):
    """The camera's motion between two `(S, S)` uint8 L images, as the `(2, 3)` float32
    similarity (shift, turn, zoom) that maps this frame's pixel coordinates to the
    previous frame's, or None when it is below `STILL_CAMERA_PIXELS` or not found.

    Corners of the previous frame (Shi-Tomasi) are followed into this one (pyramidal
    Lucas-Kanade), and a similarity is fitted to them with RANSAC, so that what moves
    on its own (a person, a car) is left out as long as most of the corners are on the
    background. Needs OpenCV."""
    cv2 = _require_cv2()
    points = cv2.goodFeaturesToTrack(previous_l8, _CORNERS, 0.01, 8, blockSize=7)
    if points is None or len(points) < _MIN_CORNERS:
        return None
    moved, found, _ = cv2.calcOpticalFlowPyrLK(previous_l8, l8, points, None, winSize=(15, 15), maxLevel=3)
    found = found.ravel() == 1
    if found.sum() < _MIN_CORNERS:
        return None
    matrix, inliers = cv2.estimateAffinePartial2D(moved[found], points[found], method=cv2.RANSAC,
                                                  ransacReprojThreshold=1.0)
    if matrix is None or inliers.sum() < _MIN_CORNERS:
        return None
    h, w = l8.shape
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64)
    if np.abs(corners @ matrix.T - corners[:, :2]).max() < STILL_CAMERA_PIXELS:
        return None
    return matrix.astype(np.float32)


def _rescaled(matrix, scale_x, scale_y):
    """An affine map between pixel coordinates of one image, for an image `scale`
    times smaller (pixel centres: x_big = scale * x_small + (scale - 1) / 2)."""
    to_big = np.array([[scale_x, 0, (scale_x - 1) / 2], [0, scale_y, (scale_y - 1) / 2], [0, 0, 1]], np.float64)
    full = np.vstack([matrix, [0, 0, 1]]).astype(np.float64)
    return (np.linalg.inv(to_big) @ full @ to_big)[:2].astype(np.float32)


def _unblur_kernels(matrix, h, w):
    """The separable kernels (x, y) that undo, to second order, the blur of a bilinear
    resampling of an `(h, w)` image by the affine `matrix` (destination -> source
    pixels), or None where it hardly blurs.

    Sampling between pixels at a fraction f (0..1) of the way blurs by a kernel of
    variance f (1 - f) along that axis; carried frame after frame, the blur adds up
    (at a third of a pixel a frame and S = 0.95, a spread of about 2 output pixels)
    and the colours fade. The kernel [-a, 1 + 2a, -a] has variance -2a: a = f (1 - f)
    / 2, with f (1 - f) averaged over the image, takes that blur back."""
    grid = np.stack(np.meshgrid(np.arange(0, w, 8), np.arange(0, h, 8)), -1).reshape(-1, 2)  # pixels' own places
    source = grid @ matrix[:, :2].T.astype(np.float64) + matrix[:, 2]
    fraction = source - np.floor(source)
    a_x, a_y = (fraction * (1 - fraction)).mean(axis=0) / 2
    if max(a_x, a_y) < 0.005:
        return None
    return tuple(np.array([-a, 1 + 2 * a, -a], np.float32) for a in (a_x, a_y))


def _warp_channels(cv2, image, matrix, kernels=None, out=None):
    """`cv2.warpAffine` of an `(h, w, C)` image (bilinear, `matrix` mapping output
    pixels to input ones, edges repeated), then filtered by the separable `kernels`
    (x, y) if given, negative values set to 0; into `out` if given (not `image`).
    Compiled where Numba is (`kernels.warp_channels`: one pass each, where OpenCV
    takes at most 128 channels at a time, each block copied out and back; the same
    but for OpenCV's rounding of places to 1/32 pixel)."""
    h, w = image.shape[:2]
    out = np.empty(image.shape, np.float32) if out is None else out
    if lab.available() and image.dtype == np.float32:
        from colornet.apps.video import kernels as compiled

        taps = kernels or (np.empty(0, np.float32),) * 2
        between = out if kernels is None else np.empty(image.shape, np.float32)
        return compiled.warp_channels(image, np.asarray(matrix, np.float32), *taps, between, out)
    for start in range(0, image.shape[-1], 128):
        part = cv2.warpAffine(np.ascontiguousarray(image[..., start : start + 128]), matrix, (w, h),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        if kernels is not None:
            part = cv2.sepFilter2D(part, -1, *kernels, borderType=cv2.BORDER_REPLICATE)
            np.maximum(part.reshape(h, w, -1), 0.0, out=out[..., start : start + 128])
        else:
            out[..., start : start + 128] = part.reshape(h, w, -1)
    return out


def _blend(previous, probabilities, weight, out, kept, stays):
    """w * previous + (1 - w) * p for each pixel's `(Q,)` distribution (`kept`
    instead of `previous` where `stays`, if given), 1.3 M values a frame; element by
    element, so `out` may be `previous` or `kept`. Compiled where Numba is (the `video`
    extra): one pass where NumPy takes four."""
    out = np.empty(probabilities.shape, np.float32) if out is None else out
    weight = weight.astype(np.float32, copy=False)
    if lab.available():
        from colornet.apps.video import kernels

        stays = np.zeros(weight.shape, bool) if stays is None else stays
        return kernels.blend(previous, kept, stays, probabilities, weight, out)
    if stays is not None:
        previous = np.where(stays[..., None], kept, previous)
    state = np.subtract(previous, probabilities, out=out, dtype=np.float32)
    state *= weight[..., None]
    state += probabilities
    return state


def _into(out, array):
    """`array`, or a copy of it in `out` if `out` is given."""
    if out is None:
        return array
    np.copyto(out, array)
    return out


def _l8(l_small):
    """`(S, S[, 1])` L (0..100) as `(S, S)` uint8 (0..255)."""
    l_small = np.asarray(l_small, np.float32)
    return np.clip(np.rint(l_small.reshape(l_small.shape[:2]) * 2.55), 0, 255).astype(np.uint8)


def l_histogram(l8):
    """The share of pixels of uint8 L in each of 32 equal bins, as the scene-cut test
    compares them (`TemporalSmoother`)."""
    return np.bincount(l8.ravel() // (256 // _HISTOGRAM_BINS), minlength=_HISTOGRAM_BINS) / l8.size


def _area_mean(image, shape):
    """`image` `(H, W[, C])` averaged down to `shape` `(h, w)` (OpenCV's INTER_AREA
    where available, else block means of a divisible size)."""
    h, w = shape
    if image.shape[:2] == (h, w):
        return image
    try:
        import cv2
    except ImportError:
        big_h, big_w = image.shape[:2]
        blocks = image.reshape(h, big_h // h, w, big_w // w, *image.shape[2:])
        return blocks.mean(axis=(1, 3)).astype(np.float32)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)

