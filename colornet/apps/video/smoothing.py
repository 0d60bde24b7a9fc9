"""Smoothing colour over time: an exponential moving average of each output pixel's
313-way distribution, held back where L changed between consecutive frames (motion
"agreement", the default), optionally also carried along the optical flow of L
(motion "flow", OpenCV's DIS flow), and started afresh at scene cuts (the L
histograms of consecutive frames differ by more than `scene_threshold`).

Colouring a frame on its own makes colours jump as content shifts; a plain average
drags colour behind moving objects. Why the defaults: README, "Video", measured by
`benchmarks/video.py`. NumPy only (OpenCV for "flow" and fast block averages).
"""

import numpy as np

from colornet.apps.video.defaults import (
    DEFAULT_MOTION,
    DEFAULT_SCENE_THRESHOLD,
    DEFAULT_TEMPORAL_SMOOTHING,
    MOTION_MODES,
)
from colornet.utils.errors import ColornetError

# How far (L units, 0..100) the flow-warped previous L may differ from the current
# one before the running average is held back: the weight falls as exp(-(dL / sigma)^2).
L_AGREEMENT_SIGMA = 12.0
_HISTOGRAM_BINS = 32


def _require_cv2():
    try:
        import cv2
    except ImportError:
        raise ColornetError(
            "motion='flow' needs OpenCV: pip install 'colornet-keras[video]' (or motion='agreement')"
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
    `carried` moves the previous average along the optical flow of L ("flow"), or
    leaves it in place ("agreement", "none"), and agreement = exp(-(dL / sigma)^2)
    per output pixel, dL the mean |L - carried(L_prev)| over the pixels it covers
    (1 for "none"). The average starts afresh at the first frame and at scene cuts:
    when the L histograms (32 bins) of consecutive frames differ by more than
    `scene_threshold` in total variation (half the L1 distance; 0 = identical,
    1 = disjoint).

    Args:
      strength: 0 (each frame on its own) to < 1 (longer memory).
      scene_threshold: in [0, 1]; 1 never cuts.
      motion: "flow", "agreement" or "none".
      sigma: L units of the agreement weight.

    Call with `(h, w, Q)` float32 distributions and the `(S, S)` float32 L (0..100)
    the network saw; returns the smoothed `(h, w, Q)` float32 distributions.
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
        if motion == "flow" and self.strength > 0:
            cv2 = _require_cv2()
            self._cv2 = cv2
            self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self.cuts = 0
        self.reset()

    def reset(self):
        """Forgets the past: the next frame starts a new average."""
        self._state = self._l8 = self._histogram = None

    def _scene_cut(self, histogram):
        distance = 0.5 * float(np.abs(histogram - self._histogram).sum())
        return distance > self.scene_threshold

    def __call__(self, probabilities, l_small):
        probabilities = np.asarray(probabilities, np.float32)
        if self.strength == 0.0:
            return probabilities
        l8 = _l8(l_small)
        histogram = l_histogram(l8)
        fresh = self._state is None
        if not fresh and self._scene_cut(histogram):
            self.cuts += 1
            fresh = True
        if fresh:
            state = probabilities
        else:
            previous, previous_l = self._state, self._l8.astype(np.float32)
            if self.motion == "flow":
                previous, previous_l = self._carry(previous, previous_l, l8)
            weight = np.full(probabilities.shape[:2], self.strength, np.float32)
            if self.motion != "none":
                difference = np.abs(l8.astype(np.float32) - previous_l) / 2.55
                weight *= np.exp(-np.square(_area_mean(difference, probabilities.shape[:2]) / self.sigma))
            # w * previous + (1 - w) * p, in place: 1.3 M values a frame.
            state = np.subtract(previous, probabilities, dtype=np.float32)
            state *= weight[..., None]
            state += probabilities
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

