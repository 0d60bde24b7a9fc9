"""colornet.apps.video: the temporal smoother against NumPy recurrences, frames and video
files end to end, and bad inputs.

Clips are made here with PyAV: a few frames of 64 x 48 generated images. A tiny model
with varied logits stands in for the bundled one, at a network size of 64 (256 in
use), in float32 so runs are deterministic.
"""

import fractions
import itertools
import os

import numpy as np
import pytest
import tensorflow as tf

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

from colornet import bins, cli, color, inference  # noqa: E402
from colornet import constants as c  # noqa: E402
from colornet.apps import batch, video  # noqa: E402
from colornet.deploy import predictors  # noqa: E402
from colornet.utils.errors import ColornetError  # noqa: E402
from tests.helpers import deploy_helpers as h  # noqa: E402
from tests.helpers.images import smooth_rgb  # noqa: E402

SIZE = 64
W, H = 64, 48
RATE = 10
OPTIONS = {"size": SIZE, "precision": "float32", "verbose": 0}


@pytest.fixture(scope="module")
def model():
    return h.vivid_tiny_model()


@pytest.fixture(scope="module")
def model_path(model, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    model.save(path)
    return path


def moving_frames(count=12, width=W, height=H, seed=0):
    """A smooth colour image panning one pixel per frame."""
    wide = smooth_rgb(height, width + count, seed)
    return [np.ascontiguousarray(wide[:, i : i + width]) for i in range(count)]


def write_clip(path, frames, rate=RATE, audio=True, rotation=0, pts=None, pix_fmt="yuv420p", codec="libx264",
               preset="medium"):
    """Encodes `frames` (near-lossless) with an optional mono AAC tone; returns the path.
    4:2:0 frames are converted as colornet's writer converts them (OpenCV)."""
    import cv2

    out = av.open(str(path), "w")
    stream = out.add_stream(codec, rate=rate)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = pix_fmt
    if codec == "libx264":
        stream.options = {"crf": "1", "preset": preset}
    if pts is not None:
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
    if rotation:
        stream.set_display_rotation(rotation)
    sound = None
    if audio:
        sound = out.add_stream("aac", rate=8000)
        sound.layout = "mono"
    for i, rgb in enumerate(frames):
        if pix_fmt == "yuv420p":
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        else:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if pts is None:
            frame.pts = i
        else:
            frame.pts, frame.time_base = pts[i], fractions.Fraction(1, 1000)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    if sound is not None:
        samples = 8000 * len(frames) // rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 8000)).astype(np.float32)
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, start
            for packet in sound.encode(frame):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
    out.close()
    return str(path)


def read_clip(path):
    """`(frames as stored, video pts, rotation, stream types, audio packet bytes, rate)`."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        decoded = list(container.decode(video=0))
        types = [s.type for s in container.streams]
    with av.open(str(path)) as container:
        audio = [bytes(p) for p in container.demux(audio=0) if p.size] if "audio" in types else []
    frames = [f.to_ndarray(format="rgb24") for f in decoded]
    return frames, [f.pts for f in decoded], (decoded[0].rotation if decoded else 0), types, audio, rate


def l_of(rgb):
    return color.rgb_to_lab(np.asarray(rgb))[..., 0].numpy()


def leftovers(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith("."))


# ----------------------------------------------------------------------------
# The smoother, against NumPy recurrences.


def _distributions(count, h=4, w=4, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.random((count, h, w, c.NUM_BINS)).astype(np.float32)
    return p / p.sum(-1, keepdims=True)


def test_plain_average_is_the_exponential_moving_average():
    p = _distributions(5)
    l_flat = np.full((16, 16), 50.0, np.float32)
    smoother = video.TemporalSmoother(0.7, scene_threshold=1.0, motion="none")
    expected = p[0].astype(np.float64)
    np.testing.assert_array_equal(smoother(p[0], l_flat), p[0])  # the first frame as it is
    for frame in p[1:]:
        expected = 0.7 * expected + 0.3 * frame
        # float32 arithmetic over 5 steps on values below 1.
        np.testing.assert_allclose(smoother(frame, l_flat), expected, atol=1e-6)


def test_strength_zero_returns_each_frame():
    p = _distributions(3)
    smoother = video.TemporalSmoother(0.0, motion="flow")
    for frame in p:
        np.testing.assert_array_equal(smoother(frame, np.zeros((16, 16), np.float32)), frame)


def test_agreement_holds_back_where_l_changed():
    p = _distributions(2)
    l0 = np.full((16, 16), 40.0, np.float32)
    l1 = l0.copy()
    l1[:4, :4] = 44.0  # output pixel (0, 0) covers this 4 x 4 block: dL = 4
    smoother = video.TemporalSmoother(0.8, scene_threshold=1.0, motion="agreement", sigma=6.0)
    smoother(p[0], l0)
    out = smoother(p[1], l1)
    # L is quantised to 1/2.55 L units, so dL is 4 +- 0.2 there: weight 0.8 exp(-(dL/6)^2).
    for dl in (4.0,):
        weight = 0.8 * np.exp(-((dl / 6.0) ** 2))
        np.testing.assert_allclose(out[0, 0], weight * p[0, 0, 0] + (1 - weight) * p[1, 0, 0], atol=2e-4)
    # Elsewhere L agrees: the plain average.
    np.testing.assert_allclose(out[1:, 1:], 0.8 * p[0, 1:, 1:] + 0.2 * p[1, 1:, 1:], atol=1e-6)


def test_scene_cut_starts_afresh():
    p = _distributions(3)
    dark, bright = np.full((16, 16), 10.0, np.float32), np.full((16, 16), 90.0, np.float32)
    smoother = video.TemporalSmoother(0.9, scene_threshold=0.5, motion="none")
    smoother(p[0], dark)
    assert not np.allclose(smoother(p[1], dark), p[1])
    np.testing.assert_array_equal(smoother(p[2], bright), p[2])  # histograms disjoint: distance 1
    assert smoother.cuts == 1


def test_flow_carries_colour_with_the_moving_object():
    """A bright square moving right with its own colour (bin A) over a dark background
    (bin B): carried along the flow, the square's colour stays with it; a plain
    average leaves it behind."""
    side, out = 64, 16
    a, b = 200, 100

    def frame(x):
        l_big = np.full((side, side), 20.0, np.float32)
        l_big[24:40, x : x + 16] = 80.0
        p = np.full((out, out, c.NUM_BINS), 1e-4, np.float32)
        p[..., b] = 1.0
        p[6:10, x // 4 : x // 4 + 4, a], p[6:10, x // 4 : x // 4 + 4, b] = 1.0, 1e-4
        return p / p.sum(-1, keepdims=True), l_big

    trails = {}
    for motion in ("flow", "none"):
        smoother = video.TemporalSmoother(0.8, scene_threshold=1.0, motion=motion)
        for x in range(8, 40, 4):  # one output pixel per frame
            p, l_big = frame(x)
            result = smoother(p, l_big)
        left = result[6:10, (x // 4) - 4 : x // 4, a]  # what the square left in the last 4 frames
        inside = result[6:10, x // 4 + 1 : x // 4 + 3, a]
        trails[motion] = (float(left.mean()), float(inside.mean()))
    assert trails["none"][0] > 0.3  # the plain average trails: the oracle for the test
    assert trails["flow"][0] < 0.1 and trails["flow"][1] > 0.8


# The camera's motion: a textured L canvas seen through a moving window, with one
# distribution per surface point, so what the smoother carries can be checked against
# the truth moved by the known motion.
CANVAS = 384


def _texture(seed=0):
    """`(CANVAS, CANVAS)` float32 L (0..100): blurred noise, corners everywhere."""
    noise = np.random.default_rng(seed).random((CANVAS, CANVAS)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 2.0) * 400.0 - 150.0


def _surface(seed=1):
    """`(CANVAS // 4, CANVAS // 4, Q)`: a distribution per surface block of 4 x 4 L pixels."""
    return _distributions(1, CANVAS // 4, CANVAS // 4, seed)[0]


def _view(l_canvas, field, x, y, side=256):
    """The window at (x, y) (whole output pixels, 4 L pixels each): its L and its
    distributions."""
    return (np.clip(l_canvas[4 * y : 4 * y + side, 4 * x : 4 * x + side], 0, 100),
            field[y : y + side // 4, x : x + side // 4])


def test_camera_motion_finds_a_known_shift_and_turn():
    l_canvas = np.clip(_texture(), 0, 100)
    previous = np.rint(l_canvas[64:320, 64:320] * 2.55).astype(np.uint8)
    current = np.rint(l_canvas[67:323, 59:315] * 2.55).astype(np.uint8)  # content moved 5 right, 3 up
    matrix = video.smoothing.camera_motion(previous, current)
    # this frame's (x, y) was at (x - 5, y + 3): to a tenth of a pixel (corner tracking
    # on 8-bit L is good to a few hundredths; RANSAC keeps the consistent ones).
    np.testing.assert_allclose(matrix, [[1, 0, -5], [0, 1, 3]], atol=0.1)
    turn = cv2.getRotationMatrix2D((128, 128), 3.0, 1.05)  # previous -> this frame
    turned = cv2.warpAffine(previous, turn, (256, 256), flags=cv2.INTER_LINEAR)
    matrix = video.smoothing.camera_motion(previous, turned)
    expected = cv2.invertAffineTransform(turn)
    corners = np.array([[40, 40, 1], [216, 40, 1], [40, 216, 1], [216, 216, 1]], np.float64)
    np.testing.assert_allclose(corners @ matrix.T, corners @ expected.T, atol=0.25)
    # A still picture: no motion (so nothing is resampled).
    assert video.smoothing.camera_motion(previous, previous) is None


def test_camera_carries_a_moved_distribution_field_exactly(monkeypatch):
    """The window moves one output pixel right and one down: the carried average is
    the previous frame's distributions moved by that, so where the new frame sees the
    same surface the average is exactly that surface's distribution; what entered
    the frame (a bright band, unlike what was in its place) starts afresh."""
    # Stripes of 8 L pixels: a 4-pixel shift turns them over, so left in place the
    # average disagrees with L everywhere (30 +- 30 L units).
    y, x = np.mgrid[0:CANVAS, 0:CANVAS] * (2 * np.pi / 8)
    l_canvas, field = (30 + 15 * np.sin(x + 0.3) + 15 * np.sin(y + 0.7)).astype(np.float32), _surface()
    l_canvas[:, 4 * 75 - 4 : 4 * 75] = l_canvas[4 * 75 - 4 : 4 * 75, :] = 100.0  # the last column and row at (11, 11)
    # The motion as it is (`camera_motion` finds it to a few hundredths of a pixel:
    # the test above), this frame's pixels -> the previous frame's.
    monkeypatch.setattr(video.smoothing, "camera_motion", lambda *_: np.float32([[1, 0, 4], [0, 1, 4]]))
    smoother = video.TemporalSmoother(0.8, scene_threshold=1.0, motion="camera")
    l_before, p_before = _view(l_canvas, field, 10, 10)
    smoother(p_before, l_before)
    l_now, p_now = _view(l_canvas, field, 11, 11)
    out = smoother(p_now, l_now)
    # 0.8 * carried + 0.2 * p with carried = p: a whole-pixel shift is carried without
    # resampling error (float32 rounding only).
    np.testing.assert_allclose(out[:-1, :-1], p_now[:-1, :-1], atol=1e-6)
    # New: nothing carried (outside the previous frame), and what was in its place
    # differs by 40 L units or more (weight 0.8 exp(-(40 / 12)^2) < 2e-5, times
    # distributions below 0.01).
    np.testing.assert_allclose(out[:, -1], p_now[:, -1], atol=1e-6)
    np.testing.assert_allclose(out[-1, :], p_now[-1, :], atol=1e-6)
    # Held in place (agreement), the average mixes in the neighbouring surfaces: a
    # share of the difference between the two frames' distributions (the oracle: the
    # weight where L agrees is at most 0.8; here it averages 0.1 to 0.2).
    agreement = video.TemporalSmoother(0.8, scene_threshold=1.0, motion="agreement")
    agreement(p_before, l_before)
    mixed = np.abs(agreement(p_now, l_now) - p_now)[:-1, :-1].mean() / np.abs(p_before - p_now)[:-1, :-1].mean()
    assert 0.05 < mixed < 0.8, mixed


@pytest.mark.parametrize("unblur", [False, True])
def test_compiled_warp_is_opencv_s(unblur):
    """`kernels.warp_channels` (the carried average's resampling) against OpenCV's
    warpAffine, sepFilter2D and a floor at 0 on 313 channels: the same but for
    OpenCV's rounding of each place to 1/32 pixel, which moves a value by at most
    half of that times the field's slope (0.4 (1/5 + 1/7) a pixel here): 2.2e-3."""
    from colornet.apps.video import kernels

    yy, xx = np.mgrid[0:24, 0:32].astype(np.float32)
    phases = np.random.default_rng(0).uniform(0, 6, 313).astype(np.float32)
    image = (0.5 + 0.4 * np.sin(xx[..., None] / 5 + phases) * np.cos(yy[..., None] / 7 - phases)).astype(np.float32)
    angle = np.deg2rad(3.0)
    matrix = np.float32([[np.cos(angle), -np.sin(angle), 1.3], [np.sin(angle), np.cos(angle), -0.6]])
    taps = (np.float32([-0.1, 1.2, -0.1]), np.float32([-0.05, 1.1, -0.05]))
    taps = taps if unblur else (np.empty(0, np.float32),) * 2
    got = kernels.warp_channels(image, matrix, *taps, np.empty_like(image), np.empty_like(image))
    expected = np.concatenate([
        cv2.warpAffine(np.ascontiguousarray(image[..., start : start + 128]), matrix, (32, 24),
                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        for start in range(0, 313, 128)], axis=-1)
    if unblur:
        expected = np.concatenate([
            np.maximum(cv2.sepFilter2D(np.ascontiguousarray(expected[..., start : start + 128]), -1, *taps,
                                       borderType=cv2.BORDER_REPLICATE), 0) for start in range(0, 313, 128)], axis=-1)
    np.testing.assert_allclose(got, expected, atol=2.5e-3)


def _pan_flicker(motion, steps=8, noise=0.5, seed=0):
    """A pan 3/4 of an output pixel right and 1/2 down a frame (3 and 2 L pixels) over
    surfaces with fixed distributions, seen through a network that adds fresh noise
    every frame: the mean |change| of the smoothed distributions at the same surface
    point between consecutive frames (the flicker after the true motion), over the
    points seen in both, and the noise's own."""
    rng = np.random.default_rng(seed)
    l_canvas = _texture()
    field = _surface()
    smoother = video.TemporalSmoother(0.9, scene_threshold=1.0, motion=motion)
    outputs, inputs = [], []
    for t in range(steps):
        x, y = 40 + 3 * t, 40 + 2 * t
        l_now = np.clip(l_canvas[y : y + 256, x : x + 256], 0, 100)
        # The network's view: each output pixel's 4 x 4 L pixels overlap up to four
        # surface blocks, by area; with noise.
        (row, fy), (col, fx) = divmod(y, 4), divmod(x, 4)
        blocks = field[row : row + 65, col : col + 65]
        clean = ((1 - fy / 4) * ((1 - fx / 4) * blocks[:-1, :-1] + fx / 4 * blocks[:-1, 1:])
                 + fy / 4 * ((1 - fx / 4) * blocks[1:, :-1] + fx / 4 * blocks[1:, 1:]))
        noisy = clean * np.exp(noise * rng.standard_normal(clean.shape)).astype(np.float32)
        inputs.append(noisy / noisy.sum(-1, keepdims=True))
        outputs.append(smoother(inputs[-1], l_now))

    def flicker(frames):
        # Surface points on the output grid of frame t, 4 output pixels in from the edges:
        # their place in frame t - 1 is (x + 0.75, y + 0.5), read bilinearly.
        grid_y, grid_x = np.mgrid[4:60, 4:60].astype(np.float32)
        changes = []
        for t in range(steps // 2, steps):  # once the average has settled
            before = np.stack([cv2.remap(np.ascontiguousarray(frames[t - 1][..., q : q + 1]), grid_x + 0.75,
                                         grid_y + 0.5, cv2.INTER_LINEAR) for q in range(0, c.NUM_BINS, 16)], -1)
            changes.append(np.abs(frames[t][4:60, 4:60, ::16] - before).mean())
        return float(np.mean(changes))

    return flicker(outputs), flicker(inputs)


def test_camera_steadies_a_pan_where_agreement_does_not():
    camera, noise = _pan_flicker("camera")
    agreement, _ = _pan_flicker("agreement")
    # The noise has a fresh draw every frame: an average over about 1 / (1 - S) frames
    # along the motion cuts its frame-to-frame change several times (0.13 of the
    # noise's here); held in place on textured L, `agreement` averages little (0.75).
    assert camera < 0.2 * noise, (camera, noise)
    assert agreement > 0.6 * noise, (agreement, noise)


@pytest.mark.parametrize("motion", ["camera", "agreement", "none"])
def test_smoothing_into_given_arrays_is_the_same(motion):
    """`out` arrays give the same average as new arrays, also when each frame's `out`
    is the previous frame's result (one array for all), across a scene cut."""
    rng = np.random.default_rng(0)
    l_canvas, field = _texture(), _surface()
    views = [_view(l_canvas, field, 10 + t, 10 + (t % 3)) for t in range(5)]
    views.append(_view(np.clip(l_canvas, 0, 100) * 0.3, field[::-1], 12, 12))  # a cut: a darker scene
    frames = [(p * np.exp(0.3 * rng.standard_normal(p.shape)), l_now) for l_now, p in views]
    frames = [((p / p.sum(-1, keepdims=True)).astype(np.float32), l_now) for p, l_now in frames]
    plain, shared, alternating = (video.TemporalSmoother(0.9, motion=motion) for _ in range(3))
    one, two = np.empty_like(frames[0][0]), [np.empty_like(frames[0][0]) for _ in range(2)]
    for number, (p, l_now) in enumerate(frames):
        expected = plain(p, l_now).copy()
        np.testing.assert_allclose(shared(p, l_now, out=one), expected, atol=1e-7)
        np.testing.assert_allclose(alternating(p, l_now, out=two[number % 2]), expected, atol=1e-7)
    assert plain.cuts == shared.cuts == 1


def test_camera_on_a_still_picture_is_agreement():
    p = _distributions(3, 64, 64)
    l_still = np.clip(_texture()[:256, :256], 0, 100)
    outputs = {}
    for motion in ("camera", "agreement"):
        smoother = video.TemporalSmoother(0.9, motion=motion)
        outputs[motion] = [smoother(frame, l_still) for frame in p]
    np.testing.assert_array_equal(outputs["camera"], outputs["agreement"])


def test_camera_restarts_at_scene_cuts():
    p = _distributions(3, 64, 64)
    l_canvas = _texture()
    dark = np.clip(l_canvas[:256, :256] * 0.2, 0, 100)
    bright = np.clip(l_canvas[:256, :256] * 0.2 + 70, 0, 100)
    smoother = video.TemporalSmoother(0.9, scene_threshold=0.5, motion="camera")
    smoother(p[0], dark)
    smoother(p[1], dark)
    np.testing.assert_array_equal(smoother(p[2], bright), p[2])
    assert smoother.cuts == 1


def test_motion_needing_opencv_says_so(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    for motion in ("camera", "flow"):
        with pytest.raises(ColornetError, match=f"motion='{motion}' needs OpenCV.*colornet-keras\\[video\\]"):
            video.TemporalSmoother(0.9, motion=motion)
    video.TemporalSmoother(0.9, motion="agreement")  # NumPy only


def test_smoother_validates():
    for strength in (-0.1, 1.0, "0.5", True):
        with pytest.raises(ValueError, match="temporal_smoothing"):
            video.TemporalSmoother(strength)
    with pytest.raises(ValueError, match="scene_threshold"):
        video.TemporalSmoother(0.5, scene_threshold=1.5)
    with pytest.raises(ValueError, match="motion"):
        video.TemporalSmoother(0.5, motion="warp")


# ----------------------------------------------------------------------------
# Frames.


@pytest.mark.parametrize("method", c.DECODE_METHODS)
def test_video_decoding_is_the_library_s(method):
    """The video pipeline's own decoding (one exponential or power and one product)
    gives `inference.decode_logits`'s ab, from logits and from distributions."""
    from colornet.apps.video import frames as stages
    from colornet.apps.video import lab

    rng = np.random.default_rng(0)
    # Peaked and flat pixels, and logits far from 0 (a trained model's span hundreds).
    logits = (rng.normal(0, 1, (2, 5, 7, c.NUM_BINS)) * rng.choice([0.1, 3, 30], (2, 5, 7, 1)) + 200).astype(np.float32)
    expected = inference.decode_logits(tf.constant(logits), method, 0.38).numpy()
    scratch = lab.Scratch()
    np.testing.assert_allclose(stages._decode(logits, method, 0.38, scratch), expected, atol=1e-3)
    probabilities = stages._softmax(logits)
    np.testing.assert_allclose(probabilities, tf.nn.softmax(logits).numpy(), atol=1e-6)
    np.testing.assert_allclose(stages._decode_distributions(probabilities, method, 0.38, scratch), expected, atol=1e-2)
    # Through a power, and at a temperature too low for it (the log, as from logits).
    for temperature in (0.05, 0.1, 1.0):
        expected = inference.decode_logits(tf.constant(logits), method, temperature).numpy()
        got = stages._decode_distributions(probabilities, method, temperature, scratch)
        np.testing.assert_allclose(got, expected, atol=1e-2)


@pytest.mark.parametrize("shape", [(480, 854), (1080, 1920), (48, 64), (300, 17), (256, 300), (1, 5)])
def test_video_resizing_is_the_library_s(shape):
    """The prepare stage's resizing of L to the network's size gives
    `inference.network_input`'s values, down, up and mixed."""
    from colornet.apps.video import frames as stages

    l_raw = np.random.default_rng(0).uniform(0, 100, shape).astype(np.float32)
    expected = inference.network_input(l_raw[None, ..., None], 256).numpy()[0, ..., 0]
    out = stages._Resize(shape, 256)(l_raw, np.empty((256, 256), np.float32))
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_frame_by_frame_equals_image_colorization(model):
    frames = moving_frames(5)
    outputs = list(video.colorize_frames(frames, model, temporal_smoothing=0.0, size=SIZE,
                                         precision="float32", batch_size=2))
    assert len(outputs) == 5
    for frame, out in zip(frames, outputs):
        # A batch of 2 against batch 1: the same float32 graph, rounding may move a level.
        np.testing.assert_allclose(out.astype(int), predictors.colorize(frame, model, size=SIZE).astype(int), atol=1)


def test_smoothed_frames_decode_the_averaged_distributions(model):
    """Output = the annealed mean of the EMA of the network's distributions, computed
    here in NumPy float64 from the network's logits, upsampled and joined with L."""
    frames = moving_frames(4)
    outputs = list(video.colorize_frames(frames, model, temporal_smoothing=0.6, motion="none", size=SIZE,
                                         precision="float32", scene_threshold=1.0))
    predictor = predictors.load_predictor(model)
    centres = bins.ab_bins().astype(np.float64)
    state = None
    for frame, out in zip(frames, outputs):
        l_raw = color.rgb_to_lab(frame)[..., :1][None]
        logits = predictor.logits(inference.network_input(l_raw, SIZE)).numpy()[0].astype(np.float64)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        state = p if state is None else 0.6 * state + 0.4 * p
        annealed = np.exp(np.log(state) / c.ANNEALED_MEAN_TEMPERATURE)
        annealed /= annealed.sum(-1, keepdims=True)
        ab_small = annealed @ centres
        expected = inference.to_uint8(inference.join_l_ab(l_raw, ab_small[None]))[0].numpy()
        np.testing.assert_allclose(out.astype(int), expected.astype(int), atol=1)  # float32 vs float64


def test_frames_are_read_lazily(model):
    """An endless source: the first outputs arrive (the generator streams)."""
    endless = itertools.cycle(moving_frames(3))
    first = list(itertools.islice(video.colorize_frames(endless, model, size=SIZE, batch_size=2,
                                                        precision="float32"), 3))
    assert len(first) == 3 and first[0].shape == (H, W, 3)


def test_threaded_pipeline_yields_the_serial_frames(model):
    """The stages in their own threads give exactly the frames they give one after
    the other, with smoothing and a short last batch."""
    from colornet.apps.video.frames import _colorize_frames

    frames = moving_frames(7)
    predictor = predictors.load_predictor(model)

    def run(threaded):
        smoother = video.TemporalSmoother()
        return list(_colorize_frames(iter(frames), predictor, smoother, SIZE, "annealed-mean",
                                     c.ANNEALED_MEAN_TEMPERATURE, 3, threaded=threaded))

    threaded, serial = run(True), run(False)
    assert len(threaded) == len(serial) == 7
    for a, b in zip(threaded, serial):
        np.testing.assert_array_equal(a, b)


def test_litert_network_runs_batches_side_by_side_in_order():
    """A LiteRT model runs on one single-threaded interpreter a core, batches side by
    side: the stage hands them on in order, each as the model alone gives it, and
    stops cleanly when the consumer stops early."""
    from colornet.apps.video import frames as stages

    predictor = video.load_video_predictor(None, "int8")
    assert len(stages._workers(predictor)) == (os.cpu_count() if os.cpu_count() >= 2 else 1)
    rng = np.random.default_rng(0)
    batches = [(np.zeros((n, 4, 4), np.float32), rng.uniform(0, 100, (n, 256, 256, 1)).astype(np.float32))
               for n in (2, 2, 2, 1)]
    out = list(stages._network(iter(batches), predictor, 2))
    assert len(out) == len(batches)
    for (_, l_small), (_, l_out, logits) in zip(batches, out):
        assert l_out is l_small and len(logits) == len(l_small)
        expected = tf.nn.softmax(predictor.logits(l_small)).numpy()
        np.testing.assert_allclose(stages._softmax(np.stack(logits)), expected, atol=1e-5)
    stage = stages._network(iter(batches), predictor, 2)
    next(stage)
    stage.close()  # shuts its pool down: returns, with nothing left running


@pytest.mark.skipif(video.threads._libc() is None, reason="glibc's allocator only")
def test_freed_memory_is_reused_while_a_video_runs():
    """Within `freed_memory_kept`, a freed 64 MB array's memory serves the next one
    (no page faults to speak of); without it glibc maps every such array afresh."""
    import resource

    def faults_of_a_second_array():
        np.ones(16 << 20, np.float32)  # 64 MB, freed at once
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        np.ones(16 << 20, np.float32)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    with video.threads.freed_memory_kept():
        assert faults_of_a_second_array() < 100  # THP aside, a fresh 64 MB mapping is 16,384 pages


def test_stopping_early_stops_the_threads(model):
    import threading

    before = threading.active_count()
    outputs = video.colorize_frames(itertools.cycle(moving_frames(3)), model, size=SIZE, batch_size=2,
                                    precision="float32")
    next(outputs)
    outputs.close()
    assert threading.active_count() == before


def test_a_failing_stage_raises_in_the_caller(model):
    class Failing(predictors.Predictor):
        def logits(self, l_small):
            raise RuntimeError("network down")

    with pytest.raises(RuntimeError, match="network down"):
        list(video.colorize_frames(moving_frames(5), Failing(), size=SIZE, batch_size=2))


def test_frame_l_and_lab_to_rgb8_against_colornet_color():
    """OpenCV's conversions (apps/video/lab.py) against colornet.color's TF ops, which
    follow scikit-image: L within 0.001 (float32 rounding); RGB within one level
    (OpenCV's table-based gamma), also far out of the gamut."""
    from colornet.apps.video import lab

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 50, 3), np.uint8)
    expected_l = color.rgb_to_lab(rgb)[..., 0].numpy()
    np.testing.assert_allclose(lab.frame_l(rgb), expected_l, atol=1e-3)
    l_raw = rng.uniform(0, 100, (40, 50)).astype(np.float32)
    for spread in (10.0, 60.0, 128.0):
        ab = rng.normal(0, spread, (40, 50, 2)).astype(np.float32)
        expected = inference.to_uint8(color.lab_to_rgb(np.dstack([l_raw, ab]))).numpy()
        # ab at the output size: the bilinear upsampling is the identity.
        got = lab.lab_to_rgb8(l_raw, ab)
        assert np.abs(got.astype(int) - expected).max() <= 1
    ab_small = rng.normal(0, 30, (10, 12, 2)).astype(np.float32)
    upsampled = inference.upsample_ab(ab_small[None], (40, 50))[0]
    expected = inference.to_uint8(color.lab_to_rgb(tf.concat([l_raw[..., None], upsampled], -1))).numpy()
    assert np.abs(lab.lab_to_rgb8(l_raw, ab_small).astype(int) - expected).max() <= 1


def test_srgb_rounding_tables_give_the_nearest_level():
    """The tables `lab.lab_to_rgb8` rounds linear RGB with: the nearest sRGB level,
    sRGB's curve in float64, over [0, 1] and on either side of every step."""
    from colornet.apps.video import lab

    levels, following = lab._SRGB_LEVELS
    bins = len(levels) - 1

    def encode(v):
        return np.where(v > c.SRGB_ENCODE_THRESHOLD, 1.055 * v ** (1 / 2.4) - 0.055, 12.92 * v)

    middles = (np.arange(255) + 0.5) / 255
    steps = np.where(middles > 0.04045, ((middles + 0.055) / 1.055) ** 2.4, middles / 12.92)
    assert np.abs(encode(steps) - middles).max() < 1e-12
    assert np.diff(steps).min() > 1 / bins  # the tables' premise: a bin holds at most one step
    linear = np.concatenate([np.linspace(0, 1, 100_001), steps * (1 - 1e-5), steps * (1 + 1e-5)])
    scaled = linear.astype(np.float32) * np.float32(bins)
    index = scaled.astype(np.int64)
    got = levels[index] + (scaled >= following[index])
    np.testing.assert_array_equal(got, np.floor(255 * encode(linear) + 0.5))


def test_grey_l_is_frame_l_of_the_grey_rgb():
    from colornet.apps.video import lab

    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    np.testing.assert_allclose(lab.grey_l(grey), lab.frame_l(rgb), atol=1e-4)
    np.testing.assert_allclose(lab.grey_l(grey), l_of(rgb), atol=1e-3)


def test_lab_to_rgb8_survives_nan():
    """A broken model's NaN ab gives some colour, not a read outside the tables."""
    from colornet.apps.video import lab

    ab = np.full((4, 4, 2), np.nan, np.float32)
    ab[0, 0] = np.inf
    out = lab.lab_to_rgb8(np.full((16, 16), 50.0, np.float32), ab)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8


def test_grey_frames_are_coloured_as_their_rgb(model):
    grey = [np.ascontiguousarray(frame[..., 1]) for frame in moving_frames(4)]
    rgb = [np.repeat(frame[..., None], 3, axis=-1) for frame in grey]
    options = {"size": SIZE, "precision": "float32", "batch_size": 2}
    coloured = zip(video.colorize_frames(grey, model, **options), video.colorize_frames(rgb, model, **options))
    for got, expected in coloured:
        assert np.abs(got.astype(int) - expected).max() <= 1  # L within 1e-4: the network may move a level


@pytest.mark.parametrize("pix_fmt, color_range", [("yuv420p", 1), ("yuv420p", 2), ("yuvj420p", 2)])
def test_reader_takes_grey_frames_from_their_luma(pix_fmt, color_range):
    """A 4:2:0 frame with neutral chroma becomes its grey levels, those FFmpeg's own
    conversion to RGB gives (limited and full range); any other chroma, RGB."""
    from colornet.apps.video import files

    rng = np.random.default_rng(0)
    planes = np.full((H * 3 // 2, W), 128, np.uint8)
    planes[:H] = rng.integers(0, 256, (H, W))
    planes[:16, :16] = np.arange(256).reshape(16, 16)  # every luma value
    frame = av.VideoFrame.from_ndarray(planes, format=pix_fmt)
    frame.color_range = color_range
    rgb = frame.to_ndarray(format="rgb24")
    grey = files._GreyFrames(av)
    np.testing.assert_array_equal(grey.levels(frame), rgb[..., 0])
    assert (rgb == rgb[..., :1]).all()
    planes[-1, -1] = 129
    assert grey.levels(av.VideoFrame.from_ndarray(planes, format=pix_fmt)) is None
    assert grey.levels(av.VideoFrame.from_ndarray(rgb, format="rgb24")) is None


def test_grey_clip_colours_as_without_the_grey_path(model, tmp_path, monkeypatch):
    from colornet.apps.video import files

    frames = [np.repeat(frame[..., 1:2], 3, axis=-1) for frame in moving_frames(5)]
    src = write_clip(tmp_path / "grey.mp4", frames, audio=False)
    with av.open(src) as container:
        assert all(files._GreyFrames(av).levels(frame) is not None for frame in container.decode(video=0))
    video.colorize_video(src, tmp_path / "grey_path.mp4", model, **OPTIONS)
    monkeypatch.setattr(files._GreyFrames, "levels", lambda self, frame: None)
    video.colorize_video(src, tmp_path / "rgb_path.mp4", model, **OPTIONS)
    got, *_ = read_clip(tmp_path / "grey_path.mp4")
    expected, *_ = read_clip(tmp_path / "rgb_path.mp4")
    assert len(got) == 5 and all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_frames_must_share_a_size(model):
    frames = moving_frames(2) + [smooth_rgb(32, 32)]
    with pytest.raises(ValueError, match="first frame's size"):
        list(video.colorize_frames(frames, model, size=SIZE, precision="float32"))


def test_bfloat16_network(model):
    frames = moving_frames(2)
    f32 = list(video.colorize_frames(frames, model, size=SIZE, precision="float32"))
    bf16 = list(video.colorize_frames(frames, model, size=SIZE, precision="bfloat16"))
    difference = np.abs(f32[1].astype(int) - bf16[1].astype(int))
    # bf16 convolutions move this tiny model's logits (std 3) by a few hundredths:
    # a few levels at most, and not none (the network did run in bfloat16).
    assert difference.mean() < 2
    assert difference.max() > 0 and np.count_nonzero(difference) > 0.01 * difference.size
    assert video.load_video_predictor(model, "bfloat16").model.dtype_policy.name == "mixed_bfloat16"
    assert video.load_video_predictor(model, "float32").model.dtype_policy.name == "float32"


def test_auto_precision_follows_the_cpu(monkeypatch, model):
    """"auto": bfloat16 on AMX; elsewhere the bundled model's int8 form for the
    bundled model, and bfloat16 where the CPU computes it natively (AVX512_BF16),
    else float32, for any other; a named precision is taken as it is."""
    from colornet.deploy import export

    for amx, native, bundled, other in (
        (True, True, "bfloat16", "bfloat16"),
        (False, True, "int8", "bfloat16"),
        (False, False, "int8", "float32"),
    ):
        monkeypatch.setattr(export, "cpu_has_amx", lambda amx=amx: amx)
        monkeypatch.setattr(export, "cpu_supports_bfloat16", lambda native=native: native)
        assert video.resolve_precision("auto") == bundled
        assert video.resolve_precision("auto", predictors.BUNDLED_MODEL_PATH) == bundled
        assert video.resolve_precision("auto", model) == other
        assert video.resolve_precision("auto", "model.keras") == other
        for named in ("float32", "bfloat16", "int8"):
            assert video.resolve_precision(named) == named
    # Without the int8 file (or LiteRT) the bundled model falls back as any other does.
    monkeypatch.setattr(predictors, "BUNDLED_INT8_PATH", "/nonexistent/bundled_int8.tflite")
    assert video.resolve_precision("auto") == "float32"
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16, int8, got 'int4'"):
        video.resolve_precision("int4")


def test_int8_is_the_bundled_model_s_and_runs_on_every_core(model, model_path):
    # The bundled model as the CLI hands it over (loaded) is the bundled model too.
    for bundled in (None, predictors.load_predictor(None)):
        predictor = video.load_video_predictor(bundled, "int8")
        assert isinstance(predictor, predictors.TFLitePredictor)
        assert predictor.source == predictors.BUNDLED_INT8_PATH
        assert predictor.num_threads == os.cpu_count()
    for other in (model, model_path):
        with pytest.raises(ColornetError, match="colornet tflite .* --quantize int8"):
            video.load_video_predictor(other, "int8")
        with pytest.raises(ColornetError, match="--quantize int8"):
            video.VideoJob(other, precision="int8")


def test_bundled_int8_form_is_of_the_bundled_model_and_close_to_it():
    """The int8 file was made from the bundled model as it is now (its record names the
    model's SHA-256), and its colours are within the 1 ab bound of the float32
    network's on photographs it was not calibrated on (scikit-image's)."""
    import hashlib
    import json

    from skimage import data as samples

    from colornet.deploy import tflite
    from colornet.models.colorizer import without_hints

    with open(predictors.BUNDLED_INT8_PATH + ".json") as f:
        record = json.load(f)
    for key, path in (("source_sha256", predictors.BUNDLED_MODEL_PATH),
                      ("tflite_sha256", predictors.BUNDLED_INT8_PATH)):
        with open(path, "rb") as f:
            assert record[key] == hashlib.sha256(f.read()).hexdigest(), f"{path} changed: run tools/video_int8.py"
    l_small = np.concatenate([tflite.l_for_network(getattr(samples, name)(), 256).numpy()
                              for name in ("astronaut", "coffee", "chelsea", "rocket")])
    network = predictors.KerasPredictor(without_hints(predictors.load_predictor(None).model))
    int8 = video.load_video_predictor(None, "int8")
    ab = [inference.decode_logits(p.logits(l_small)).numpy() for p in (network, int8)]
    error = np.linalg.norm(ab[0] - ab[1], axis=-1)
    assert error.mean() < 1.0
    assert error.mean() > 0.01  # it is int8: not the float network under another name


# ----------------------------------------------------------------------------
# Video files.


def test_colorize_video_keeps_size_rate_count_timestamps_and_sound(model, tmp_path):
    frames = moving_frames(12)
    src = write_clip(tmp_path / "clip.mp4", frames)
    dst = tmp_path / "out" / "clip.mp4"
    dst.parent.mkdir()
    summary = video.colorize_video(src, dst, model, crf=1, **OPTIONS)
    assert summary.frames == 12 and (summary.width, summary.height) == (W, H) and summary.audio
    decoded_in, pts_in, _, _, audio_in, rate_in = read_clip(src)
    decoded, pts, rotation, types, audio, rate = read_clip(dst)
    assert types == ["video", "audio"] and rate == rate_in == RATE and rotation == 0
    assert len(decoded) == 12 and decoded[0].shape == (H, W, 3) and pts == pts_in
    assert audio == audio_in and len(audio) > 0  # packets copied byte for byte
    # Colour as colorize_frames gives it for the decoded input, put through the same
    # encoder (4:2:0 alone costs these noisy 64 x 48 frames about 7 levels).
    expected = list(video.colorize_frames(decoded_in, model, size=SIZE, precision="float32"))
    expected, *_ = read_clip(write_clip(tmp_path / "expected.mp4", expected, audio=False,
                                        preset=video.defaults.DEFAULT_ENCODER_PRESET))
    errors = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(decoded, expected)]
    assert max(errors) < 1.0, errors
    # The colour is the model's, not the input's: far from the original frames.
    assert np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(decoded, frames)]) > 5
    assert leftovers(dst.parent) == []


def test_variable_frame_rate_keeps_timestamps(model, tmp_path):
    pts = [0, 120, 160, 280, 320, 440]  # ms
    src = write_clip(tmp_path / "vfr.mkv", moving_frames(6), pts=pts, audio=False)
    video.colorize_video(src, tmp_path / "out.mkv", model, **OPTIONS)
    _, out_pts, _, types, _, _ = read_clip(tmp_path / "out.mkv")
    assert out_pts == pts and types == ["video"]


def test_rotation_kept_and_network_sees_frames_upright(model, tmp_path):
    """Stored landscape with a bright block top left, rotation 90 (counter-clockwise):
    upright, the block is bottom left. The network must see it there; the output is
    stored as the input was, with the same rotation."""
    frame = np.full((H, W, 3), 30, np.uint8)
    frame[:12, :16] = 230
    src = write_clip(tmp_path / "rot.mp4", [frame] * 3, rotation=90, audio=False)
    seen = []

    class Recording(predictors.Predictor):
        def logits(self, l_small):
            seen.append(np.asarray(l_small))
            return predictors.load_predictor(model).logits(l_small)

    video.colorize_video(src, tmp_path / "out.mp4", Recording(), **OPTIONS)
    upright = seen[0][0, ..., 0]
    assert upright[-8:, :8].mean() > 70 and upright[:8, :8].mean() < 40  # bottom left, not top left
    decoded, _, rotation, _, _, _ = read_clip(tmp_path / "out.mp4")
    assert rotation == 90 and decoded[0].shape == (H, W, 3)
    assert l_of(decoded[0])[:12, :16].mean() > 70


def test_odd_frame_size(model, tmp_path):
    frames = moving_frames(3, width=63, height=47)
    src = write_clip(tmp_path / "odd.mp4", frames, pix_fmt="yuv444p", audio=False)
    summary = video.colorize_video(src, tmp_path / "out.mp4", model, **OPTIONS)
    decoded, *_ = read_clip(tmp_path / "out.mp4")
    assert (summary.width, summary.height) == (63, 47) and decoded[0].shape == (47, 63, 3) and len(decoded) == 3


def test_output_keeps_l(model, tmp_path):
    """Only ab changes: the output's L is the input's, up to H.264 rounding."""
    frames = moving_frames(4)
    src = write_clip(tmp_path / "clip.mp4", frames, audio=False)
    video.colorize_video(src, tmp_path / "out.mp4", model, crf=0, **OPTIONS)
    decoded_in, *_ = read_clip(src)
    decoded, *_ = read_clip(tmp_path / "out.mp4")
    # yuv420p keeps luma at full resolution, chroma at half: L moves by about 1 unit.
    assert np.abs(l_of(decoded[2]) - l_of(decoded_in[2])).mean() < 1.5


# FFmpeg's reason, as users see it: without PyAV's "[Errno 1094995529]" and the path
# it repeats.
NOT_READABLE = "not a readable video (Invalid data found when processing input)"


@pytest.mark.parametrize("content", [b"", b"this is not a video at all" * 40], ids=["empty", "text"])
def test_unreadable_files(model, tmp_path, content):
    src = tmp_path / "bad.mp4"
    src.write_bytes(content)
    with pytest.raises(ColornetError) as raised:
        video.colorize_video(src, tmp_path / "out.mp4", model, **OPTIONS)
    assert str(raised.value) == f"{src}: {NOT_READABLE}"
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("extension, message", [(".mkv", "truncated: "), (".mp4", NOT_READABLE)], ids=["mkv", "mp4"])
def test_truncated_file(model, tmp_path, extension, message):
    """Matroska decodes up to the cut (refused against its declared duration); MP4
    keeps its index at the end, so a cut one does not open."""
    write_clip(tmp_path / f"clip{extension}", moving_frames(12))
    data = (tmp_path / f"clip{extension}").read_bytes()
    src = tmp_path / f"cut{extension}"
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(ColornetError) as raised:
        video.colorize_video(src, tmp_path / f"out{extension}", model, **OPTIONS)
    assert str(raised.value).startswith(f"{src}: {message}") and "Errno" not in str(raised.value)
    assert not (tmp_path / f"out{extension}").exists() and leftovers(tmp_path) == []


def test_no_video_frames(model, tmp_path):
    out = av.open(str(tmp_path / "sound.mp4"), "w")
    sound = out.add_stream("aac", rate=8000)
    sound.layout = "mono"
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    frame.sample_rate, frame.pts = 8000, 0
    for packet in [*sound.encode(frame), *sound.encode()]:
        out.mux(packet)
    out.close()
    with pytest.raises(ColornetError, match="no video stream"):
        video.colorize_video(tmp_path / "sound.mp4", tmp_path / "out.mp4", model, **OPTIONS)
    empty = av.open(str(tmp_path / "empty.mkv"), "w")
    stream = empty.add_stream("libx264", rate=RATE)
    stream.width, stream.height = W, H
    empty.close()
    with pytest.raises(ColornetError, match="empty.mkv"):
        video.colorize_video(tmp_path / "empty.mkv", tmp_path / "out.mkv", model, **OPTIONS)
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.mkv").exists()
    assert leftovers(tmp_path) == []


def test_frames_beyond_the_pixel_limit(model, tmp_path):
    src = write_clip(tmp_path / "clip.mp4", moving_frames(2), audio=False)
    with pytest.raises(ColornetError, match="exceed the limit of 3000 pixels"):
        video.colorize_video(src, tmp_path / "out.mp4", model, max_pixels=3000, **OPTIONS)
    assert not (tmp_path / "out.mp4").exists()


def test_interrupted_run_leaves_nothing(model, tmp_path):
    src = write_clip(tmp_path / "clip.mp4", moving_frames(12), audio=False)
    (tmp_path / "out").mkdir()
    calls = []

    class Interrupted(predictors.Predictor):
        def logits(self, l_small):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return predictors.load_predictor(model).logits(l_small)

    with pytest.raises(KeyboardInterrupt):
        video.colorize_video(src, tmp_path / "out" / "clip.mp4", Interrupted(), batch_size=2, **OPTIONS)
    assert os.listdir(tmp_path / "out") == []


def test_options_checked(model, tmp_path):
    with pytest.raises(ValueError, match="crf"):
        video.VideoJob(model, crf=60)
    with pytest.raises(ValueError, match="encoder_preset"):
        video.VideoJob(model, encoder_preset="quick")
    with pytest.raises(TypeError, match="unknown video options: fps"):
        video.VideoJob(model, fps=3)


# ----------------------------------------------------------------------------
# Files and the command line.


def test_cli_mixes_videos_and_images(model_path, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_clip(inputs / "film.mp4", moving_frames(6))
    write_clip(inputs / "clip.webm", moving_frames(4), audio=False, codec="libvpx", pix_fmt="yuv420p")
    tf.io.write_file(str(inputs / "still.png"), tf.io.encode_png(smooth_rgb(H, W)))
    (inputs / "broken.mov").write_bytes(b"nope")
    args = cli._parse_flags(["colornet", "colorize", str(inputs), "-o", str(tmp_path / "out"), "--model",
                             model_path, "--size", str(SIZE), "--temporal-smoothing", "0.5", "--crf", "23"])
    assert cli.main(args) == 1  # broken.mov failed; the rest done
    assert sorted(os.listdir(tmp_path / "out")) == ["clip.mkv", "film.mp4", "still.png"]
    decoded, _, _, types, audio, _ = read_clip(tmp_path / "out" / "film.mp4")
    assert len(decoded) == 6 and types == ["video", "audio"] and audio
    assert len(read_clip(tmp_path / "out" / "clip.mkv")[0]) == 4


def spliced_clip(path, first, second):
    """Two H.264 recordings of different frame sizes, one after the other in one
    MPEG-TS stream (as broadcast and adaptive streams change size), under `path`
    (FFmpeg goes by the content, not the extension)."""
    parts = []
    for number, frames in enumerate((first, second)):
        part = os.path.join(os.path.dirname(path), f"part{number}.ts")
        out = av.open(part, "w", format="mpegts")
        stream = out.add_stream("libx264", rate=RATE)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        out.close()
        with open(part, "rb") as f:
            parts.append(f.read())
        os.remove(part)
    with open(path, "wb") as f:
        f.write(b"".join(parts))
    return str(path)


def test_frame_size_change_skips_that_file_only(model, model_path, tmp_path, capsys):
    """A size change partway refuses that video with one line naming the file and the
    frame; the other inputs are done and nothing of the refused one is left."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    src = spliced_clip(inputs / "spliced.mp4", moving_frames(5), moving_frames(4, width=48, height=32))
    write_clip(inputs / "good.mp4", moving_frames(4), audio=False)
    message = (f"{src}: the frame size changes from {W} x {H} to 48 x 32 pixels at frame 6; a video is "
               "coloured at one frame size (re-encode it at one size first)")
    (tmp_path / "lib").mkdir()
    with pytest.raises(ColornetError) as raised:
        video.colorize_video(src, tmp_path / "lib" / "spliced.mp4", model, batch_size=2, **OPTIONS)
    assert str(raised.value) == message
    assert os.listdir(tmp_path / "lib") == []

    args = cli._parse_flags(["colornet", "colorize", str(inputs), "-o", str(tmp_path / "out"), "--model",
                             model_path, "--size", str(SIZE)])
    assert cli.main(args) == 1
    assert os.listdir(tmp_path / "out") == ["good.mp4"]  # no hidden temporary file either
    assert len(read_clip(tmp_path / "out" / "good.mp4")[0]) == 4
    err = capsys.readouterr().err
    assert f"colornet: skipped {src}: {message.removeprefix(f'{src}: ')}" in err.splitlines()


def test_cli_video_options_defaults_match_the_library():
    """The CLI states colornet.apps.video's defaults in its help."""
    import argparse

    parser = argparse.ArgumentParser()
    cli.apps._add_video_options(parser)
    help_text = " ".join(parser.format_help().split())
    assert f"default {video.defaults.DEFAULT_TEMPORAL_SMOOTHING}" in help_text
    assert f"default {video.defaults.DEFAULT_SCENE_THRESHOLD}" in help_text
    assert f"default {video.defaults.DEFAULT_CRF}" in help_text
    assert f"default {video.defaults.DEFAULT_ENCODER_PRESET}" in help_text
    assert f"default {video.defaults.DEFAULT_MOTION}" in help_text


def test_defaults_load_without_tensorflow_or_pyav():
    """A command line can read the defaults cheaply: they need neither."""
    import subprocess
    import sys

    code = ("import sys; from colornet.apps.video import defaults; defaults.DEFAULT_CRF, defaults.MOTION_MODES; "
            "print(sorted({'tensorflow', 'av', 'numpy'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_without_pyav_a_video_gets_one_line(model_path, tmp_path, monkeypatch, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_clip(inputs / "film.mp4", moving_frames(3), audio=False)
    tf.io.write_file(str(inputs / "still.png"), tf.io.encode_png(smooth_rgb(H, W)))
    monkeypatch.setitem(__import__("sys").modules, "av", None)  # import av fails
    summary = batch.colorize_files(inputs, tmp_path / "out", model_path, size=SIZE, verbose=1)
    assert [os.path.basename(p) for p, _ in summary.written] == ["still.png"]
    assert [os.path.basename(p) for p, _ in summary.failed] == ["film.mp4"]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"colornet: skipped {inputs / 'film.mp4'}: video needs PyAV: pip install 'colornet-keras[video]'"]
