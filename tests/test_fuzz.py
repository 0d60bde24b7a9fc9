"""Property-based fuzzing of the decode paths and the numeric entry points.

Random bytes and mutations of small valid PNG, JPEG, GIF, BMP and WebP files go to
`colornet.data.decode_image`, to `read_image` (what `colornet colorize` runs on each
file) and to an exported model's `serving_default` signature loaded in this process.
Every call must return an image (of at most `max_pixels` pixels) or raise
InvalidArgumentError (ColornetError from `read_image`) within `TIME_BOUND_S`; a
crash would take the test process with it.

CI runs the derandomised "ci" profile registered in tests/conftest.py (200 examples
per property, the same ones every run). A fuzzing campaign:

    HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py   # 5000 per property
"""

import io
import struct
import time

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from colornet import data, inference, losses
from colornet.deploy import predictors
from colornet.layers import decode, soft_encode
from colornet.utils.errors import ColornetError
from tests.helpers import deploy_helpers as h
from tests.helpers.images import smooth_rgb

# A decode of a 16 x 16 file takes milliseconds; a call that takes seconds is a hang
# in the making. Generous, because CI shares two cores with other work.
TIME_BOUND_S = 10.0
MAX_PIXELS = 64 * 64  # seeds are 16 x 16: mutated headers easily claim more


def _save(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _seeds():
    rgb = Image.fromarray(smooth_rgb(12, 16, seed=21))
    frames = [Image.fromarray(np.full((12, 16, 3), v, np.uint8)) for v in (20, 200)]
    return [
        _save(rgb, "PNG"),
        _save(rgb.convert("LA"), "PNG"),
        _save(rgb.quantize(colors=8), "PNG"),
        _save(rgb, "JPEG", quality=80),
        _save(rgb, "JPEG", quality=80, progressive=True),
        _save(rgb.convert("CMYK"), "JPEG"),
        _save(rgb, "GIF"),
        _save(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        _save(rgb, "BMP"),
        _save(rgb.quantize(colors=16), "BMP"),
        _save(rgb, "WEBP", quality=70),
        _save(rgb, "WEBP", lossless=True),
        _save(rgb.convert("RGBA"), "WEBP", quality=70),
    ]


SEEDS = _seeds()


@st.composite
def image_bytes(draw):
    """Random bytes (bare, or behind a real signature) or a valid file mutated 1-4 times."""
    kind = draw(st.sampled_from(["random", "signature", "mutated", "mutated", "mutated"]))
    if kind == "random":
        return draw(st.binary(max_size=512))
    if kind == "signature":
        seed = draw(st.sampled_from(SEEDS))
        return seed[: draw(st.integers(2, 40))] + draw(st.binary(max_size=512))
    content = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "header", "splice"]))
        at = draw(st.integers(0, max(len(content) - 1, 0)))
        if op == "flip" and content:
            content[at] = draw(st.integers(0, 255))
        elif op == "truncate":
            del content[at:]
        elif op == "insert":
            content[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "header" and len(content) >= 8:
            # Size and length fields live in the first bytes: make them extreme.
            at = draw(st.integers(0, min(len(content), 64) - 4))
            value = draw(st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 40000]))
            content[at : at + 4] = struct.pack(draw(st.sampled_from([">I", "<I"])), value)
        elif op == "splice" and content:
            end = draw(st.integers(at, len(content)))
            content[at:at] = content[at:end]
    return bytes(content)


def _check_image(image):
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
    assert 0 < image.shape[0] * image.shape[1] <= MAX_PIXELS


@given(image_bytes())
@pytest.mark.slow
def test_decode_image_returns_an_image_or_invalid_argument(content):
    start = time.perf_counter()
    try:
        _check_image(data.decode_image(tf.constant(content), MAX_PIXELS).numpy())
    except tf.errors.InvalidArgumentError as error:
        assert error.message
    assert time.perf_counter() - start < TIME_BOUND_S


@pytest.fixture(scope="module")
def scratch_file(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fuzz") / "input.jpg")


@given(image_bytes())
def test_read_image_as_colorize_does(scratch_file, content):
    with open(scratch_file, "wb") as f:
        f.write(content)
    start = time.perf_counter()
    try:
        _check_image(data.read_image(scratch_file, MAX_PIXELS))
    except ColornetError as error:
        message = str(error)
        assert message.startswith(f"{scratch_file}: ") and "\n" not in message
    assert time.perf_counter() - start < TIME_BOUND_S


def _examples(share):
    """A share of the loaded profile's example count: slower properties run fewer."""
    return settings(max_examples=max(1, int(settings.default.max_examples * share)))


# The oracle of EXIF orientation, from the EXIF 2.3 / TIFF 6.0 definition of tag 274
# rather than from any image library: where the stored image's row 0 and column 0
# are to be shown.
_ROW0_COL0 = {
    1: ("top", "left"), 2: ("top", "right"), 3: ("bottom", "right"), 4: ("bottom", "left"),
    5: ("left", "top"), 6: ("right", "top"), 7: ("right", "bottom"), 8: ("left", "bottom"),
}
# SHORT tags of IFD0 that are not pointers to other IFDs: company for the orientation.
_OTHER_TAGS = (0x0100, 0x0101, 0x0103, 0x0106, 0x0115, 0x011C, 0x0128, 0x0213)


def _upright_by_the_spec(stored, orientation):
    row0, col0 = _ROW0_COL0[orientation]
    height, width = stored.shape[:2]
    if row0 in ("top", "bottom"):  # stored rows stay rows
        y, x = np.mgrid[:height, :width]
        rows = y if row0 == "top" else height - 1 - y
        cols = x if col0 == "left" else width - 1 - x
    else:  # stored rows become columns
        y, x = np.mgrid[:width, :height]
        rows = x if row0 == "left" else height - 1 - x
        cols = y if col0 == "top" else width - 1 - y
    return stored[rows, cols]


@st.composite
def exif_jpegs(draw):
    """A JPEG with an EXIF APP1 segment in either byte order whose IFD0 holds an
    Orientation (0..12: 0 and 9..12 are not orientations) among other tags."""
    order = draw(st.sampled_from([">", "<"]))
    orientation = draw(st.integers(0, 12))
    others = draw(st.lists(st.sampled_from(_OTHER_TAGS), unique=True, max_size=4))
    entries = sorted([(tag, draw(st.integers(0, 65535))) for tag in others] + [(0x0112, orientation)])
    tiff = (b"MM" if order == ">" else b"II") + struct.pack(order + "HIH", 42, 8, len(entries))
    for tag, value in entries:
        tiff += struct.pack(order + "HHIHH", tag, 3, 1, value, 0)  # SHORT, count 1
    payload = b"Exif\x00\x00" + tiff + struct.pack(order + "I", 0)
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    shape = (draw(st.integers(1, 9)), draw(st.integers(1, 9)), 3)
    rgb = draw(hnp.arrays(np.uint8, shape))
    jpeg = tf.io.encode_jpeg(rgb, quality=95).numpy()
    return jpeg[:2] + app1 + jpeg[2:], orientation


@given(exif_jpegs())
@_examples(0.5)
def test_exif_orientation_against_the_spec(scratch_file, case):
    jpeg, orientation = case
    expected = orientation if 1 <= orientation <= 8 else 1
    assert data.jpeg_exif_orientation(jpeg) == expected
    stored = data.decode_image(tf.constant(jpeg), MAX_PIXELS).numpy()  # TF ignores the tag
    with open(scratch_file, "wb") as f:
        f.write(jpeg)
    np.testing.assert_array_equal(data.read_image(scratch_file, MAX_PIXELS), _upright_by_the_spec(stored, expected))


@pytest.fixture(scope="module")
def serving_default(tmp_path_factory):
    loaded = tf.saved_model.load(h.shared_export(tmp_path_factory)[1].path)
    return loaded, loaded.signatures["serving_default"]


@given(st.lists(image_bytes(), min_size=1, max_size=3))
@_examples(0.75)
@pytest.mark.slow
def test_serving_default_returns_pngs_or_invalid_argument(serving_default, batch):
    _, signature = serving_default
    start = time.perf_counter()
    try:
        pngs = signature(image_bytes=tf.constant(batch), temperature=tf.constant(0.38))
    except tf.errors.InvalidArgumentError as error:
        assert error.message
        # Refused only if some image is: the signature and decode_image agree.
        failures = 0
        for content in batch:
            try:
                data.decode_image(tf.constant(content), h.MAX_PIXELS)
            except tf.errors.InvalidArgumentError:
                failures += 1
        assert failures
    else:
        for content, png in zip(batch, pngs["colorized_png_bytes"].numpy()):
            want = data.decode_image(tf.constant(content), h.MAX_PIXELS).shape
            assert tf.io.decode_png(png).shape == want
    assert time.perf_counter() - start < TIME_BOUND_S


# ----------------------------------------------------------------------------
# Numbers: NaN, Inf and out-of-range values into decoding, encoding and the loss.

_ANY_FLOAT = st.floats(width=32, allow_nan=True, allow_infinity=True)
_FINITE = st.floats(width=32, allow_nan=False, allow_infinity=False)


@given(hnp.arrays(np.float32, (2, 313), elements=_ANY_FLOAT), st.sampled_from([1e-30, 0.01, 0.38, 1.0, 1e30]))
def test_decoding_is_finite_or_refuses_nan_and_inf(logits, temperature):
    centres_bound = 130.0  # every bin centre has |a|, |b| <= 110
    finite = bool(np.isfinite(logits).all())
    for fn in (lambda z: decode.annealed_mean(z, temperature), decode.mode):
        if finite:
            ab = fn(logits).numpy()
            assert np.isfinite(ab).all() and np.abs(ab).max() <= centres_bound
        else:
            with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
                fn(logits)


@given(hnp.arrays(np.float32, (1, 2, 2, 2), elements=_ANY_FLOAT))
@pytest.mark.slow
def test_soft_encoding_and_loss_clamp_or_refuse(ab):
    logits = np.random.default_rng(0).normal(size=(1, 2, 2, 313)).astype(np.float32)
    loss = losses.RebalancedLoss(class_weights="uniform")
    if not np.isfinite(ab).all():
        with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
            soft_encode.soft_encode_sparse(ab)
        with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
            loss(ab, logits)
        return
    # Out-of-gamut ab (beyond +-140) is clipped: weights stay a distribution.
    indices, weights = soft_encode.soft_encode_sparse(ab)
    assert np.isfinite(weights.numpy()).all()
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, atol=1e-5)
    assert 0 <= indices.numpy().min() and indices.numpy().max() < 313
    value = float(loss(ab, logits))
    assert np.isfinite(value) and value >= 0


@given(hnp.arrays(np.float32, (4, 4, 3), elements=_ANY_FLOAT))
@_examples(0.25)
@pytest.mark.slow
def test_colorize_arrays_refuse_nan_and_out_of_range(image):
    model = _tiny_model()
    try:
        out = predictors.colorize(image, model=model, size=16)
    except ValueError as error:
        assert "NaN or Inf" in str(error) or "[0, 1]" in str(error)
        assert not (np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1)
    else:
        assert out.dtype == np.uint8 and out.shape == (4, 4, 3)


_MODEL = []


def _tiny_model():
    if not _MODEL:
        _MODEL.append(predictors.load_predictor(h.vivid_tiny_model()))
    return _MODEL[0]


@given(hnp.arrays(np.float32, (6, 6, 1), elements=_FINITE | st.just(np.float32(np.nan))))
@_examples(0.25)
def test_l_into_the_colorize_path(l_raw):
    try:
        out = inference.predict_rgb(_tiny_model(), l_raw, 16).numpy()
    except tf.errors.InvalidArgumentError as error:
        assert "NaN or Inf" in error.message and not np.isfinite(l_raw).all()
    else:
        assert np.isfinite(l_raw).all() and out.dtype == np.uint8
