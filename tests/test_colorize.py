"""colorize() on arrays, every model format, EXIF orientation, `colornet colorize`, the demo.

A `tiny` model saved to a temporary .keras file stands in for the bundled one (one
test checks the real bundled model's colours on two sample photos); the other
images are generated. The network runs at 64 x 64 here (256 in use) to stay fast.
"""

import io
import json
import os
import struct
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from colornet import cli, color, data, inference
from colornet.apps import batch, demo
from colornet.deploy import predictors
from colornet.models import Colorizer
from colornet.utils.errors import ColornetError
from tests.helpers import deploy_helpers as h
from tests.helpers.images import smooth_rgb

SIZE = 64
# The same graph in another format (SavedModel, TFLite) differs by float32 rounding
# in another op order: a level where rounding falls on .5, rarely two.
FORMAT_ATOL = 2


@pytest.fixture(scope="module")
def vivid(tmp_path_factory):
    """`(model, path)`: a tiny model with varied logits, saved as .keras."""
    model = h.vivid_tiny_model()
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    model.save(path)
    return model, path


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A freshly initialised tiny model (near-uniform logits: mild, in-gamut ab)."""
    keras.utils.set_random_seed(1)
    return Colorizer.from_preset("tiny")


def _png(rgb):
    return tf.io.encode_png(rgb).numpy()


def _write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)
    return path


# ----------------------------------------------------------------------------
# Arrays.


def test_colorize_matches_the_steps(vivid):
    model, path = vivid
    rgb = smooth_rgb(37, 53, seed=1)
    out = predictors.colorize(rgb, model=path, size=SIZE)
    assert out.shape == (37, 53, 3) and out.dtype == np.uint8
    _, expected, _ = h.reference_colorize(model, h.l_of(rgb)[None], image_size=SIZE)
    # Same ops in the same order: equal but for a level where rounding falls on .5.
    assert np.abs(out.astype(int) - expected[0]).max() <= 1


def test_colorize_keeps_l_and_ignores_colour(plain):
    rgb = smooth_rgb(40, 48, seed=2)
    out = predictors.colorize(rgb, model=plain, size=SIZE)
    l_in = color.rgb_to_lab(rgb)[..., 0].numpy()
    l_out = color.rgb_to_lab(out)[..., 0].numpy()
    # uint8 rounding moves L by well under 1; ab near grey stays in gamut.
    assert np.abs(l_in - l_out).max() < 1.0
    # A grey image with the same L: the same colours (L differs by rounding only).
    grey = inference.grey_rgb(rgb).numpy()
    assert np.abs(predictors.colorize(grey, model=plain, size=SIZE).astype(int) - out).max() <= 2


def test_colorize_input_forms(vivid):
    _, path = vivid
    rgb = smooth_rgb(30, 34, seed=3)
    reference = predictors.colorize(rgb, model=path, size=SIZE)
    rgba = np.concatenate([rgb, np.full((30, 34, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(predictors.colorize(rgba, model=path, size=SIZE), reference)
    # Float input in [0, 1]: L is not rounded to uint8 first, so a level may differ.
    as_float = predictors.colorize(rgb / 255.0, model=path, size=SIZE)
    assert np.abs(as_float.astype(int) - reference).max() <= 1
    grey = rgb[..., 1]
    np.testing.assert_array_equal(
        predictors.colorize(grey, model=path, size=SIZE),
        predictors.colorize(np.repeat(grey[..., None], 3, axis=-1), model=path, size=SIZE),
    )
    np.testing.assert_array_equal(
        predictors.colorize(grey[..., None], model=path, size=SIZE),
        predictors.colorize(grey, model=path, size=SIZE),
    )
    sixteen = predictors.colorize(rgb.astype(np.uint16) * 257, model=path, size=SIZE)
    assert np.abs(sixteen.astype(int) - reference).max() <= 1


def test_decodings_and_argument_errors(vivid):
    _, path = vivid
    rgb = smooth_rgb(24, 24, seed=4)
    results = {
        method: predictors.colorize(rgb, model=path, method=method, size=SIZE)
        for method in inference.DECODE_METHODS
    }
    # The mode is the most saturated, the mean the least.
    sat = {k: float(np.abs(color.rgb_to_lab(v)[..., 1:]).mean()) for k, v in results.items()}
    assert sat["mode"] > sat["annealed-mean"] > sat["mean"]
    hot = predictors.colorize(rgb, model=path, temperature=1.0, size=SIZE)
    np.testing.assert_array_equal(hot, results["mean"])
    for kwargs, message in [
        ({"method": "median"}, "method must be one of"),
        ({"temperature": 0.0}, "temperature"),
        ({"size": 30}, "multiple of 4"),
    ]:
        with pytest.raises(ValueError, match=message):
            predictors.colorize(rgb, model=path, **kwargs)
    for image, message in [
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.full((4, 4, 3), 2.0), r"\[0, 1\]"),
        (np.zeros((4, 4, 3), np.int32), "uint8, uint16 or float"),
    ]:
        with pytest.raises(ValueError, match=message):
            predictors.colorize(image, model=path)


def test_shipped_bundled_model():
    """The model that ships: small enough, and its colours have the truth's direction
    on two sample photos (scikit-image's): the night sky over the rocket is blue (true
    mean b of its top-centre region -21), the cat is warm (true mean ab (11, 20))."""
    from skimage import color as skcolor
    from skimage import data as skdata

    assert os.path.getsize(predictors.BUNDLED_MODEL_PATH) <= 40e6
    predictor = predictors.load_predictor(None)
    rocket = skcolor.rgb2lab(predictors.colorize(skdata.rocket(), model=predictor))
    h, w = rocket.shape[:2]
    assert rocket[: h // 4, w // 3 : 2 * w // 3, 2].mean() < -10
    cat_a, cat_b = skcolor.rgb2lab(predictors.colorize(skdata.chelsea(), model=predictor))[..., 1:].mean((0, 1))
    assert cat_a > 3 and cat_b > 10


def test_bundled_model(vivid, monkeypatch, tmp_path):
    _, path = vivid
    monkeypatch.setattr(predictors, "BUNDLED_MODEL_PATH", str(tmp_path / "missing.keras"))
    with pytest.raises(ColornetError, match="bundled model .*missing.keras.*--model"):
        predictors.colorize(smooth_rgb(8, 8))
    monkeypatch.setattr(predictors, "BUNDLED_MODEL_PATH", path)
    np.testing.assert_array_equal(
        predictors.colorize(smooth_rgb(20, 20), size=SIZE),
        predictors.colorize(smooth_rgb(20, 20), model=path, size=SIZE),
    )


# ----------------------------------------------------------------------------
# Model formats.


def test_workdir_and_checkpoint(vivid, tmp_path):
    model, path = vivid
    workdir = tmp_path / "run"
    _write(str(workdir / "config.json"), json.dumps({"preset": "tiny"}).encode())
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model), str(workdir / "checkpoints"), 2
    )
    prefix = manager.save()
    rgb = smooth_rgb(21, 29, seed=6)
    expected = predictors.colorize(rgb, model=path, size=SIZE)
    for source in (str(workdir), prefix):
        np.testing.assert_array_equal(predictors.colorize(rgb, model=source, size=SIZE), expected)
    with pytest.raises(ColornetError, match="neither a training workdir"):
        predictors.load_predictor(str(tmp_path))
    with pytest.raises(ColornetError, match="expected a .keras file"):
        predictors.load_predictor(str(workdir / "config.json"))
    with pytest.raises(ColornetError, match="no such file"):
        predictors.load_predictor(str(tmp_path / "nothing.keras"))


@pytest.mark.slow
def test_saved_model_and_tflite(vivid, tmp_path_factory):
    from colornet.deploy import tflite

    # The shared export holds the same weights as `vivid` (same seed).
    model, _ = vivid
    _, exported = h.shared_export(tmp_path_factory)
    tflite_path = str(tmp_path_factory.mktemp("tflite") / "tiny.tflite")
    tflite.convert(model, tflite_path, size=h.IMAGE_SIZE)
    rgb = smooth_rgb(45, 31, seed=7)
    expected = {
        method: predictors.colorize(rgb, model=model, method=method, size=h.IMAGE_SIZE)
        for method in ("annealed-mean", "mode")
    }
    # A version directory, the base directory (its largest version), a .tflite file.
    for source in (exported.path, os.path.dirname(exported.path), tflite_path):
        predictor = predictors.load_predictor(source)
        assert predictor.size == h.IMAGE_SIZE
        for method, reference in expected.items():
            got = predictors.colorize(rgb, model=predictor, method=method)
            assert got.shape == (45, 31, 3)
            assert np.abs(got.astype(int) - reference).max() <= FORMAT_ATOL, (source, method)
        with pytest.raises(ValueError, match="exported with"):
            predictors.colorize(rgb, model=predictor, size=2 * h.IMAGE_SIZE)


# ----------------------------------------------------------------------------
# Reading files: EXIF orientation and formats.


def _exif_app1(orientation, byte_order=">"):
    """An APP1 segment holding EXIF with IFD0 = {Orientation: orientation}."""
    mark = b"MM" if byte_order == ">" else b"II"
    tiff = mark + struct.pack(byte_order + "HI", 42, 8)
    tiff += struct.pack(byte_order + "H", 1)  # one IFD entry
    # Tag 0x0112, type SHORT (3), count 1, value in the first 2 of 4 bytes.
    tiff += struct.pack(byte_order + "HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack(byte_order + "I", 0)  # no next IFD
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_with_orientation(rgb, orientation, byte_order=">"):
    jpeg = tf.io.encode_jpeg(rgb, quality=100).numpy()
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + _exif_app1(orientation, byte_order) + jpeg[2:]


def _asymmetric(height=24, width=40):
    """Blocks of distinct colours: every rotation and flip looks different."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[: height // 2, : width // 2] = (220, 30, 30)
    rgb[: height // 2, width // 2 :] = (30, 200, 30)
    rgb[height // 2 :, : width // 2] = (30, 30, 220)
    rgb[height // 2 :, width // 2 :] = (230, 230, 40)
    rgb[:4, :4] = 255
    return rgb


def test_exif_orientation_6_by_hand(tmp_path):
    rgb = _asymmetric()
    path = _write(str(tmp_path / "rotated.jpg"), _jpeg_with_orientation(rgb, 6))
    with open(path, "rb") as f:
        stored = tf.io.decode_jpeg(f.read(), dct_method="INTEGER_ACCURATE").numpy()
    assert stored.shape == (24, 40, 3)  # TF ignores the tag
    upright = data.read_image(path)
    assert upright.shape == (40, 24, 3)
    np.testing.assert_array_equal(upright, np.rot90(stored, -1))
    # 90 degrees clockwise: the stored top-left corner (white) ends up top-right.
    assert upright[0, -1].min() > 200 and upright[-1, 0].max() < 250


@pytest.mark.parametrize("byte_order", [">", "<"])
def test_every_orientation_matches_pillow(byte_order):
    rgb = _asymmetric(10, 16)
    for orientation in range(1, 9):
        jpeg = _jpeg_with_orientation(rgb, orientation, byte_order)
        assert data.jpeg_exif_orientation(jpeg) == orientation
        stored = np.asarray(Image.open(io.BytesIO(jpeg)))
        expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(jpeg))))
        np.testing.assert_array_equal(data.apply_orientation(stored, orientation), expected)


def test_orientation_parser_is_robust():
    jpeg = tf.io.encode_jpeg(_asymmetric()).numpy()
    assert data.jpeg_exif_orientation(jpeg) == 1
    assert data.jpeg_exif_orientation(_png(_asymmetric())) == 1
    assert data.jpeg_exif_orientation(b"") == 1
    with_tag = _jpeg_with_orientation(_asymmetric(), 6)
    for cut in (3, 10, 20, 30, 40):
        assert data.jpeg_exif_orientation(with_tag[:cut]) in (1, 6)
    assert data.jpeg_exif_orientation(_jpeg_with_orientation(_asymmetric(), 9)) == 1
    with pytest.raises(ValueError, match="1..8"):
        data.apply_orientation(_asymmetric(), 0)


def test_read_image_formats(tmp_path):
    rgb = smooth_rgb(12, 14, seed=8)
    grey = rgb[..., 0]
    buffers = {}
    for name, image in [
        ("grey.png", Image.fromarray(grey)),
        ("rgba.png", Image.fromarray(np.concatenate([rgb, np.full((12, 14, 1), 9, np.uint8)], -1))),
        ("palette.png", Image.fromarray(rgb).quantize(colors=16)),
        ("grey16.png", Image.fromarray(grey.astype(np.uint16) * 257)),
    ]:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        buffers[name] = _write(str(tmp_path / name), buffer.getvalue())
    np.testing.assert_array_equal(
        data.read_image(buffers["grey.png"]), np.repeat(grey[..., None], 3, -1)
    )
    np.testing.assert_array_equal(data.read_image(buffers["rgba.png"]), rgb)
    palette = Image.open(buffers["palette.png"]).convert("RGB")
    np.testing.assert_array_equal(data.read_image(buffers["palette.png"]), np.asarray(palette))
    np.testing.assert_array_equal(
        data.read_image(buffers["grey16.png"]), np.repeat(grey[..., None], 3, -1)
    )
    bad = _write(str(tmp_path / "bad.png"), b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ColornetError):
        data.read_image(bad)
    with pytest.raises(ColornetError, match="cannot read"):
        data.read_image(str(tmp_path / "absent.png"))


# ----------------------------------------------------------------------------
# Files and the command line.


def _tree(root):
    """A folder of inputs: colour, grey, nested, one EXIF-rotated JPEG, one broken file."""
    _write(f"{root}/a.png", _png(smooth_rgb(20, 30, seed=1)))
    _write(f"{root}/sub/b.png", _png(np.repeat(smooth_rgb(18, 22, seed=2)[..., :1], 3, -1)))
    _write(f"{root}/sub/deeper/c.jpg", _jpeg_with_orientation(_asymmetric(16, 28), 6))
    _write(f"{root}/sub/broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")


def _files(root):
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
    )


def test_colorize_files_layout_and_failures(vivid, tmp_path, capsys):
    _, path = vivid
    src = str(tmp_path / "in")
    _tree(src)
    single = _write(str(tmp_path / "single.png"), _png(smooth_rgb(10, 12, seed=3)))
    out = str(tmp_path / "out")
    summary = batch.colorize_files(
        [src, single, str(tmp_path / "missing.png")], out, model=path, size=SIZE
    )
    assert _files(out) == ["a.png", "single.png", "sub/b.png", "sub/deeper/c.png"]
    failed = dict(summary.failed)
    assert set(failed) == {os.path.join(src, "sub", "broken.jpg"), str(tmp_path / "missing.png")}
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("colornet: skipped")]
    assert len(lines) == 2 and any("broken.jpg" in line for line in lines)
    # Full resolution, EXIF applied.
    assert np.asarray(Image.open(f"{out}/a.png")).shape == (20, 30, 3)
    assert np.asarray(Image.open(f"{out}/sub/deeper/c.png")).shape == (28, 16, 3)


def test_colorize_files_glob_compare_and_safety(vivid, tmp_path, capsys):
    _, path = vivid
    src = str(tmp_path / "in")
    _tree(src)
    # Same output name as a.png; a.jpg comes first in sorted order and wins.
    _write(f"{src}/a.jpg", tf.io.encode_jpeg(smooth_rgb(8, 8), quality=100).numpy())
    out = os.path.join(src, "results")  # inside the input folder
    summary = batch.colorize_files(
        [os.path.join(src, "*.*"), os.path.join(src, "sub", "*.png")],
        out,
        model=path,
        size=SIZE,
        compare=True,
    )
    assert _files(out) == ["a.png", "b.png"]
    assert [os.path.basename(p) for p, _ in summary.failed] == ["a.png"]
    assert "already the output of" in summary.failed[0][1]
    # Colour input: grey | colourised | original; grey input: two panels (8-pixel gaps).
    assert np.asarray(Image.open(f"{out}/a.png")).shape == (8, 3 * 8 + 2 * 8, 3)
    assert np.asarray(Image.open(f"{out}/b.png")).shape == (18, 2 * 22 + 8, 3)
    # Running again over the folder does not take the results as inputs.
    again = batch.colorize_files([src], out, model=path, size=SIZE)
    assert all(not p.startswith(out) for p, _ in again.written)
    assert not [f for f in _files(out) if f.startswith(".") or ".tmp" in f]
    # An output directory that leads elsewhere through a symbolic link is refused.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    trap = tmp_path / "trap"
    (trap).mkdir()
    os.symlink(outside, trap / "sub")
    escaped = batch.colorize_files([src], str(trap), model=path, size=SIZE, verbose=0)
    assert not os.listdir(outside)
    assert any("outside the output directory" in reason for _, reason in escaped.failed)
    with pytest.raises(ColornetError, match="outside"):
        batch._output_path(os.path.realpath(str(tmp_path)), "../x.png")
    capsys.readouterr()


@pytest.mark.slow
def test_cli_colorize_subprocess(vivid, tmp_path):
    _, path = vivid
    good = _write(str(tmp_path / "good.png"), _png(smooth_rgb(16, 20)))
    bad = _write(str(tmp_path / "bad.jpg"), b"garbage")
    out = str(tmp_path / "out")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "colornet.cli",
            "colorize",
            good,
            bad,
            "-o",
            out,
            "--model",
            path,
            "--size",
            "64",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    reported = [line for line in proc.stderr.splitlines() if bad in line]
    assert len(reported) == 1 and "not a JPEG, PNG" in reported[0]
    assert os.listdir(out) == ["good.png"]
    assert "wrote 1 image to" in proc.stdout and "1 failed" in proc.stdout


def test_cli_colorize_without_bundled_model(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(predictors, "BUNDLED_MODEL_PATH", str(tmp_path / "absent.keras"))
    _write(str(tmp_path / "x.png"), _png(smooth_rgb(8, 8)))
    args = cli._parse_flags(
        ["colornet", "colorize", str(tmp_path / "x.png"), "-o", str(tmp_path / "o")]
    )
    assert cli.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("colornet colorize: error: the bundled model")


# ----------------------------------------------------------------------------
# The demo.


def test_demo(vivid, tmp_path, capsys):
    pytest.importorskip("skimage")
    _, path = vivid
    args = cli._parse_flags(["colornet", "demo", "-o", str(tmp_path / "demo"), "--model", path])
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "index.html" in out
    names = [name for name, _, _ in demo.PHOTOS]
    assert sorted(os.listdir(tmp_path / "demo")) == sorted(
        ["grid.png", "index.html"] + [f"{n}.png" for n in names]
    )
    grid = np.asarray(Image.open(tmp_path / "demo" / "grid.png"))
    rows = len(names)
    assert grid.shape[0] == rows * demo.GRID_ROW_HEIGHT + (rows - 1) * 8
    from skimage import data as skdata

    assert np.asarray(Image.open(tmp_path / "demo" / "coffee.png")).shape == skdata.coffee().shape
    page = (tmp_path / "demo" / "index.html").read_text()
    assert "grid.png" in page and all(f"{n}.png" in page for n in names)


def test_demo_of_ones_own_photos(vivid, tmp_path, capsys):
    _, path = vivid
    for folder, seed in (("a", 1), ("b", 2)):  # two photos with the same name
        (tmp_path / folder).mkdir()
        Image.fromarray(smooth_rgb(40, 56, seed=seed)).save(tmp_path / folder / "x.png")
    (tmp_path / "b" / "broken.jpg").write_bytes(b"\xff\xd8 not a whole JPEG")
    out = tmp_path / "demo"
    args = cli._parse_flags(["colornet", "demo", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out),
                             "--model", path])  # fmt: skip
    assert cli.main(args) == 1  # a photo was skipped
    captured = capsys.readouterr()
    assert f"colornet: skipped {tmp_path / 'b' / 'broken.jpg'}: " in captured.err
    assert "2 colourised photos" in captured.out and "1 skipped" in captured.out
    assert sorted(os.listdir(out)) == ["grid.png", "index.html", "x-2.png", "x.png"]
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape[0] == 2 * demo.GRID_ROW_HEIGHT + 8
    # The same colours as `colornet colorize` gives the photo.
    colorize_args = cli._parse_flags(["colornet", "colorize", str(tmp_path / "b" / "x.png"), "-o",
                                      str(tmp_path / "colorized"), "--model", path])  # fmt: skip
    assert cli.main(colorize_args) == 0
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / "x-2.png")), np.asarray(Image.open(tmp_path / "colorized" / "x.png"))
    )
    page = (out / "index.html").read_text()
    assert "your own" in page and "scikit-image" not in page


def test_demo_refuses_more_photos_than_a_page_shows(vivid, tmp_path):
    _, path = vivid
    for i in range(demo.MAX_OWN_PHOTOS + 1):
        Image.fromarray(smooth_rgb(8, 8, seed=i)).save(tmp_path / f"{i}.png")
    with pytest.raises(ColornetError, match=f"{demo.MAX_OWN_PHOTOS + 1} photos given; the demo shows at most"):
        demo.run_demo(tmp_path / "demo", model=path, photos=tmp_path)
    assert not (tmp_path / "demo").exists()


def test_summary_counts_images_and_videos():
    from colornet.apps.batch import ColorizeSummary

    def described(*names):
        return ColorizeSummary("out", [(name, "out/" + name) for name in names], []).describe_written()

    assert described() == "0 images"
    assert described("a.png") == "1 image"
    assert described("a.png", "b.jpg") == "2 images"
    assert described("film.mp4") == "1 video"
    assert described("a.png", "film.mp4", "old.MOV") == "1 image and 2 videos"
