"""Input pipelines: listing, decoding, geometry, targets, skipping, TFRecords, CLI.

Every image is generated here (NumPy + Pillow) in a temporary directory.
"""

import io
import json
import os
import resource
import struct
import sys
import types

import numpy as np
import pytest
import skimage.color
import tensorflow as tf
from PIL import Image

from colornet import cli, data
from colornet.data import sources, tfrecords
from colornet.utils.errors import ColornetError
from tests.helpers.bad_inputs import png_claiming
from tests.helpers.images import random_rgb, smooth_rgb

# float32 Lab vs scikit-image's float64: ~6e-5 measured, 1e-3 is the bound
# (as in test_color.py).
LAB_ATOL = 1e-3


def _encode(array, fmt, mode=None, **kwargs):
    image = Image.fromarray(array)
    if mode is not None:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return str(path)


def _jpeg_bomb(width, height):
    """A real JPEG whose SOF0 marker is patched to declare width x height."""
    content = bytearray(_encode(random_rgb((16, 16, 3)), "JPEG"))
    sof = content.index(b"\xff\xc0")
    content[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(content)


def _gif_bomb():
    content = bytearray(_encode(random_rgb((16, 16, 3)), "GIF"))
    content[6:10] = struct.pack("<HH", 65535, 65535)
    return bytes(content)


def _bmp_bomb():
    content = bytearray(_encode(random_rgb((16, 16, 3)), "BMP"))
    content[18:26] = struct.pack("<ii", 100000, -100000)
    return bytes(content)


def _webp_bomb(kind):
    """WebP declaring 16384 x 16384 (268 megapixels), the format's maximum."""
    if kind == "VP8X":  # extended: lossy with alpha
        content = bytearray(_encode(random_rgb((16, 16, 4)), "WEBP", quality=80))
        content[24:30] = (16383).to_bytes(3, "little") * 2
    elif kind == "VP8L":  # lossless: 14-bit (size - 1) fields packed after 0x2f
        content = bytearray(_encode(random_rgb((16, 16, 3)), "WEBP", lossless=True))
        bits = int.from_bytes(content[21:25], "little") & ~((1 << 28) - 1)
        content[21:25] = (bits | 16383 | 16383 << 14).to_bytes(4, "little")
    else:  # lossy key frame: 14-bit sizes after the start code
        content = bytearray(_encode(random_rgb((16, 16, 3)), "WEBP", quality=80))
        content[26:30] = struct.pack("<HH", 16383, 16383)
    assert content[12:16] == kind.encode().ljust(4)
    return bytes(content)


def _animated(fmt, frames, **kwargs):
    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer, fmt, save_all=True, append_images=images[1:], duration=50, **kwargs
    )
    return buffer.getvalue()


def _lab(image):
    return skimage.color.rgb2lab(image)


def _good_and_bad_folder(root):
    """Three readable images and four that are not; returns (good, bad) path lists."""
    good = [
        _write(root / "a.png", _encode(smooth_rgb(256, 300, seed=1), "PNG")),
        _write(
            root / "b.jpg", _encode(smooth_rgb(280, 256, seed=2), "JPEG", quality=95)
        ),
        _write(root / "sub" / "c.png", _encode(smooth_rgb(256, 256, seed=3), "PNG")),
    ]
    jpeg = _encode(smooth_rgb(256, 256, seed=4), "JPEG")
    bad = [
        _write(root / "truncated.jpg", jpeg[: len(jpeg) // 2]),
        _write(root / "random.png", np.random.default_rng(0).bytes(3000)),
        _write(root / "notes.jpg", b"this is a text file, not an image\n"),
        _write(root / "empty.webp", b""),
    ]
    return sorted(good), sorted(bad)


# ----------------------------------------------------------------------------
# Listing files.


def test_list_image_files_recursive_case_insensitive_and_sorted(tmp_path):
    expected = [
        _write(tmp_path / "a.jpg", b"x"),
        _write(tmp_path / "sub" / "B.PNG", b"x"),
        _write(tmp_path / "sub" / "deeper" / "c.JpEg", b"x"),
        _write(tmp_path / "d.gif", b"x"),
        _write(tmp_path / "e.bmp", b"x"),
        _write(tmp_path / "f.webp", b"x"),
    ]
    _write(tmp_path / "notes.txt", b"x")
    _write(tmp_path / "g.tiff", b"x")
    _write(tmp_path / ".hidden.jpg", b"x")
    _write(tmp_path / ".partial" / "x.jpg", b"x")
    assert data.list_image_files(tmp_path) == sorted(expected)
    assert data.list_image_files(str(tmp_path) + "/") == sorted(expected)


def test_list_image_files_glob_list_and_txt(tmp_path, monkeypatch):
    a = _write(tmp_path / "a.jpg", b"x")
    b = _write(tmp_path / "sub" / "b.png", b"x")
    c = _write(tmp_path / "sub" / "deeper" / "c.png", b"x")
    assert data.list_image_files(str(tmp_path / "**" / "*.png")) == [b, c]
    assert data.list_image_files(str(tmp_path / "sub" / "*")) == [
        b,
        c,
    ]  # a folder match is walked
    # A list is the union, deduplicated and sorted.
    assert data.list_image_files([b, str(tmp_path), a]) == [a, b, c]
    monkeypatch.chdir(tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# training images\n\nsub/b.png\n  {a}  \nsub/b.png\n")
    assert data.list_image_files(str(listing)) == [a, b]
    assert data.list_image_files("list.txt") == [a, b]


def test_list_image_files_errors(tmp_path, monkeypatch):
    with pytest.raises(ColornetError, match="no such file or directory"):
        data.list_image_files(tmp_path / "missing")
    with pytest.raises(ColornetError, match="nothing matches"):
        data.list_image_files(str(tmp_path / "*.jpg"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ColornetError, match="no image files"):
        data.list_image_files(tmp_path / "empty")
    with pytest.raises(ColornetError, match="no image source"):
        data.list_image_files([])
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "list.txt", b"ok.jpg\nmissing.jpg\n")
    _write(tmp_path / "ok.jpg", b"x")
    with pytest.raises(ColornetError, match="line 2: missing.jpg"):
        data.list_image_files("list.txt")
    _write(tmp_path / "comments.txt", b"# nothing\n\n")
    with pytest.raises(ColornetError, match="lists no paths"):
        data.list_image_files("comments.txt")
    with pytest.raises(ColornetError, match="neither an image file"):
        data.list_image_files(_write(tmp_path / "model.keras", b"x"))


def test_s3_path_gives_one_clear_error():
    for call in (
        lambda: data.list_image_files("s3://bucket/photos"),
        lambda: data.train_dataset("s3://bucket/photos", 4),
        lambda: data.prepare("/nonexistent", "s3://bucket/out"),
    ):
        with pytest.raises(ColornetError) as error:
            call()
        message = str(error.value)
        assert "s3://" in message and "tensorflow-io" in message
        assert "gs://" in message and "local" in message and "copy" in message
        assert "\n" not in message


def test_s3_with_a_tensorflow_io_that_does_not_register_it(monkeypatch):
    # What an installed tensorflow-io 0.37 does under TF 2.21: it imports, but its
    # compiled file-system plugins never register s3://.
    monkeypatch.setitem(sys.modules, "tensorflow_io", types.ModuleType("tensorflow_io"))
    with pytest.raises(
        ColornetError, match="installed but its file-system plugins did not"
    ):
        data.list_image_files("s3://bucket/photos")


# ----------------------------------------------------------------------------
# Decoding.


def _decode(content, **kwargs):
    return data.decode_image(tf.constant(content), **kwargs).numpy()


def test_decode_lossless_formats_exactly():
    rgb = random_rgb((21, 34, 3), seed=1)
    for content in (
        _encode(rgb, "PNG"),
        _encode(rgb, "BMP"),
        _encode(rgb, "WEBP", lossless=True),
    ):
        out = _decode(content)
        assert out.dtype == np.uint8 and out.shape == (21, 34, 3)
        np.testing.assert_array_equal(out, rgb)


def test_decode_jpeg_same_as_pillow():
    rgb = smooth_rgb(40, 52, seed=2)
    content = _encode(rgb, "JPEG", quality=90)
    # The accurate integer IDCT, as Pillow (and OpenCV) use: identical output.
    reference = np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))
    np.testing.assert_array_equal(_decode(content), reference)


@pytest.mark.parametrize(
    "mode,fmt,kwargs",
    [
        ("L", "PNG", {}),
        ("LA", "PNG", {}),
        ("RGBA", "PNG", {}),
        ("P", "PNG", {}),
        ("P", "PNG", {"transparency": 0}),
        ("I;16", "PNG", {}),
        ("L", "JPEG", {"quality": 100}),
        ("CMYK", "JPEG", {"quality": 100}),
        ("L", "BMP", {}),
        ("P", "BMP", {}),
        ("RGBA", "BMP", {}),
        ("P", "GIF", {}),
        ("RGBA", "WEBP", {"lossless": True}),
        ("L", "WEBP", {"lossless": True}),
    ],
)
def test_decode_grey_alpha_palette_to_rgb(mode, fmt, kwargs):
    rgba = np.concatenate(
        [random_rgb((18, 26, 3), seed=3), random_rgb((18, 26, 1), seed=4)], -1
    )
    image = Image.fromarray(rgba)
    if mode == "I;16":
        image = Image.fromarray(rgba[..., 0].astype(np.uint16) * 257)
    elif mode != "RGBA":
        image = image.convert("RGB").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    content = buffer.getvalue()
    # Alpha is dropped, not composited: the expected RGB is Pillow's own RGB view.
    expected = np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))
    if mode == "I;16":
        expected = np.repeat(rgba[..., :1], 3, -1)
    out = _decode(content)
    assert out.shape == (18, 26, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_animated_gif_gives_first_frame_and_ignores_later_frames():
    frames = [np.full((12, 20, 3), value, np.uint8) for value in (40, 200, 120)]
    frames[0][:, :10] = (255, 0, 0)
    content = _animated("GIF", frames)
    np.testing.assert_array_equal(_decode(content), frames[0])
    # The file is cut after the first frame before decoding: a damaged second
    # frame does not matter.
    second = content.index(b"\x2c", content.index(b"\x2c") + 12)
    cut = content[: second + 14]
    np.testing.assert_array_equal(_decode(cut), frames[0])


def test_animated_webp_is_rejected_before_decoding():
    # TF 2.21's WebP decoder corrupts the heap on animations; this would crash.
    frames = [np.full((12, 20, 3), value, np.uint8) for value in (40, 200)]
    content = _animated("WEBP", frames, lossless=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="animated WebP"):
        _decode(content)


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "empty input"),
        (np.random.default_rng(0).bytes(500), "not a JPEG, PNG, GIF, BMP or WebP"),
        (b"hello, this is text\n", "not a JPEG, PNG, GIF, BMP or WebP"),
        (_encode(smooth_rgb(64, 64), "JPEG")[:400], "JPEG"),
        (_encode(random_rgb((64, 64, 3)), "PNG")[:300], "PNG"),
    ],
    ids=["empty", "random", "text", "truncated-jpeg", "truncated-png"],
)
def test_decode_errors_are_invalid_argument(content, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _decode(content)


@pytest.mark.parametrize(
    "make",
    [
        lambda: png_claiming(100000, 100000),
        lambda: png_claiming(20000, 20000),
        lambda: png_claiming(2**32 - 1, 2**32 - 1),  # the product overflows int64
        lambda: _jpeg_bomb(60000, 60000),
        _gif_bomb,
        _bmp_bomb,
        lambda: _webp_bomb("VP8X"),
        lambda: _webp_bomb("VP8L"),
        lambda: _webp_bomb("VP8"),
    ],
    ids=[
        "png-10-gigapixels",
        "png-400-megapixels",
        "png-int64-overflow",
        "jpeg",
        "gif",
        "bmp",
        "webp-x",
        "webp-l",
        "webp",
    ],
)
@pytest.mark.slow
def test_decompression_bomb_rejected_from_header(make):
    content = make()
    assert len(content) < 5000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for decode in (data.decode_image, tf.function(data.decode_image)):
        # Our header check fires (its message), so no decoder ran or allocated.
        with pytest.raises(tf.errors.InvalidArgumentError, match="max_pixels=50000000"):
            decode(tf.constant(content)).numpy()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert (
        after - before
    ) * 1024 < 100e6  # ru_maxrss is in KiB on Linux; bombs want GBs


def test_max_pixels_is_configurable():
    content = _encode(random_rgb((30, 40, 3)), "PNG")
    assert _decode(content, max_pixels=1200).shape == (30, 40, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="40x30 pixels"):
        _decode(content, max_pixels=1199)


# ----------------------------------------------------------------------------
# Ops eagerly, in tf.function and in tf.data.map.


def _three_ways(fn, *args):
    eager = fn(*args)
    graph = tf.function(fn)(*args)
    mapped = next(iter(tf.data.Dataset.from_tensors(args).map(fn)))
    return [
        tf.nest.map_structure(lambda t: t.numpy(), x) for x in (eager, graph, mapped)
    ]


@pytest.mark.parametrize(
    "fmt,kwargs",
    [("PNG", {}), ("JPEG", {}), ("BMP", {}), ("GIF", {}), ("WEBP", {"lossless": True})],
)
@pytest.mark.slow
def test_decode_same_eagerly_in_function_and_dataset(fmt, kwargs):
    content = tf.constant(_encode(smooth_rgb(30, 44, seed=5), fmt, **kwargs))
    eager, graph, mapped = _three_ways(data.decode_image, content)
    np.testing.assert_array_equal(eager, graph)
    np.testing.assert_array_equal(eager, mapped)


@pytest.mark.slow
def test_geometry_ops_same_three_ways():
    image = tf.constant(smooth_rgb(300, 420, seed=6))
    seed = tf.constant([7, 11], tf.int64)
    for fn, args in (
        (lambda x: data.resize_shorter_side(x, 256), (image,)),
        (lambda x: data.center_crop(x, 176), (image,)),
        (lambda x, s: data.random_crop_flip(x, 176, s), (image, seed)),
        (data.to_model_inputs, (image,)),
    ):
        eager, graph, mapped = _three_ways(fn, *args)
        for other in (graph, mapped):
            # Integer outputs agree exactly; float32 Lab to rounding (graph fusion).
            tf.nest.map_structure(
                lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4), eager, other
            )


def test_resize_shorter_side():
    landscape = data.resize_shorter_side(smooth_rgb(300, 450), 256)
    assert landscape.shape == (256, 384, 3) and landscape.dtype == tf.uint8
    portrait = data.resize_shorter_side(smooth_rgb(100, 60), 256)  # upscales too
    assert portrait.shape == (427, 256, 3)
    same = smooth_rgb(256, 270)
    np.testing.assert_array_equal(data.resize_shorter_side(same, 256), same)
    batch = data.resize_shorter_side(tf.zeros([2, 40, 80, 3], tf.float32), 20)
    assert batch.shape == (2, 20, 40, 3) and batch.dtype == tf.float32
    # A flat colour stays that colour (the antialiasing kernel is normalised).
    flat = np.full((500, 700, 3), (12, 150, 240), np.uint8)
    np.testing.assert_array_equal(data.resize_shorter_side(flat, 256), flat[:256, :358])


def test_center_crop_offsets_match_caffe():
    image = np.arange(7 * 9).reshape(7, 9, 1).astype(np.uint8)
    np.testing.assert_array_equal(
        data.center_crop(image, 4), image[1:5, 2:6]
    )  # (7-4)//2, (9-4)//2
    with pytest.raises(tf.errors.InvalidArgumentError, match="smaller than the crop"):
        data.center_crop(image, 8)
    with pytest.raises(ValueError, match="crop"):
        data.center_crop(image, 0)


def test_random_crop_flip_is_a_window_or_its_mirror_and_seeded():
    image = random_rgb((40, 50, 3), seed=8)
    windows = set()
    for s in range(40):
        out = data.random_crop_flip(image, 16, tf.constant([s, 0])).numpy()
        found = None
        for top in range(25):
            for left in range(35):
                window = image[top : top + 16, left : left + 16]
                if np.array_equal(out, window):
                    found = (top, left, False)
                elif np.array_equal(out, window[:, ::-1]):
                    found = (top, left, True)
        assert found is not None
        windows.add(found)
        again = data.random_crop_flip(image, 16, tf.constant([s, 0])).numpy()
        np.testing.assert_array_equal(out, again)
    assert len(windows) > 30 and {w[2] for w in windows} == {False, True}


# ----------------------------------------------------------------------------
# The model's inputs and targets.


def test_to_model_inputs_matches_skimage_every_fourth_pixel_from_zero():
    image = random_rgb((44, 36, 3), seed=9)
    l_raw, ab = data.to_model_inputs(image)
    assert l_raw.shape == (44, 36, 1) and ab.shape == (11, 9, 2)
    assert l_raw.dtype == tf.float32 and ab.dtype == tf.float32
    lab = _lab(image)
    np.testing.assert_allclose(l_raw[..., 0], lab[..., 0], atol=LAB_ATOL)
    np.testing.assert_allclose(ab, lab[::4, ::4, 1:], atol=LAB_ATOL)
    # Offset 0, no averaging: any other phase or a 4x4 mean is far away on noise.
    assert np.abs(ab - lab[2::4, 2::4, 1:]).max() > 10
    pooled = lab[..., 1:].reshape(11, 4, 9, 4, 2).mean((1, 3))
    assert np.abs(ab - pooled).max() > 10
    batched_l, batched_ab = data.to_model_inputs(np.stack([image, image]))
    np.testing.assert_array_equal(batched_ab[1], ab)
    np.testing.assert_array_equal(batched_l[0], l_raw)


@pytest.mark.slow
def test_eval_pipeline_equals_skimage_oracle_on_files(tmp_path):
    # 256-pixel shorter sides are not resampled, and PNG is lossless, so the
    # pipeline's output must be Lab of the centre crop of the array we wrote.
    images = [smooth_rgb(256, 300, seed=10), random_rgb((320, 256, 3), seed=11)]
    for i, image in enumerate(images):
        _write(tmp_path / f"{i}.png", _encode(image, "PNG"))
    batches = list(data.eval_dataset(tmp_path, batch_size=2, crop=176))
    assert len(batches) == 1
    l_raw, ab = batches[0]
    for i, image in enumerate(images):
        top, left = (image.shape[0] - 176) // 2, (image.shape[1] - 176) // 2
        lab = _lab(image[top : top + 176, left : left + 176])
        np.testing.assert_allclose(l_raw[i, ..., 0], lab[..., 0], atol=LAB_ATOL)
        np.testing.assert_allclose(ab[i], lab[::4, ::4, 1:], atol=LAB_ATOL)


@pytest.mark.slow
def test_train_elements_shapes_dtypes_ranges_and_windows(tmp_path):
    image = smooth_rgb(256, 256, seed=12)
    _write(tmp_path / "only.png", _encode(image, "PNG"))
    dataset = data.train_dataset(tmp_path, batch_size=3, crop=96, seed=1)
    assert dataset.element_spec == (
        tf.TensorSpec([3, 96, 96, 1], tf.float32),
        tf.TensorSpec([3, 24, 24, 2], tf.float32),
    )
    lab = _lab(image)
    mirrored = 0
    for l_raw, ab in dataset.take(4):  # endless: one file fills every batch
        assert 0 <= float(tf.reduce_min(l_raw)) and float(tf.reduce_max(l_raw)) <= 100
        assert float(tf.reduce_max(tf.abs(ab))) < 128
        for l_one, ab_one in zip(l_raw.numpy(), ab.numpy()):
            # Each element is a 96-pixel window of the image, maybe mirrored.
            match = None
            for flip in (False, True):
                source = lab[:, ::-1] if flip else lab
                for top in range(161):
                    for left in range(161):
                        if abs(source[top, left, 0] - l_one[0, 0, 0]) > LAB_ATOL:
                            continue
                        window = source[top : top + 96, left : left + 96]
                        if np.abs(window[..., 0] - l_one[..., 0]).max() < LAB_ATOL:
                            match = window
                            mirrored += flip
                            break
                    if match is not None:
                        break
                if match is not None:
                    break
            assert match is not None
            np.testing.assert_allclose(ab_one, match[::4, ::4, 1:], atol=LAB_ATOL)
    assert 0 < mirrored < 12


@pytest.mark.slow
def test_train_is_reproducible_with_a_seed(tmp_path):
    for i in range(5):
        _write(
            tmp_path / f"{i}.jpg", _encode(smooth_rgb(280, 300, seed=20 + i), "JPEG")
        )

    def first_batches(seed):
        dataset = data.train_dataset(tmp_path, batch_size=4, crop=64, seed=seed)
        return [l.numpy() for l, _ in dataset.take(3)]

    a, b, c = first_batches(5), first_batches(5), first_batches(6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c))
    # Later epochs get new crops: batch 3 (images 8..11 = epoch 2) differs from batch 1.
    assert not np.array_equal(a[0], a[2])


def test_argument_errors():
    with pytest.raises(ValueError, match="multiple of 4"):
        data.train_dataset("unused", 4, crop=30)
    with pytest.raises(ValueError, match="at most resize"):
        data.eval_dataset("unused", 4, crop=300)
    with pytest.raises(ValueError, match="batch_size"):
        data.eval_dataset(os.path.dirname(__file__), 0)


# ----------------------------------------------------------------------------
# Unreadable files are skipped and counted.


@pytest.mark.slow
def test_unreadable_files_skipped_counted_and_reported_once(tmp_path, capfd):
    _, bad = _good_and_bad_folder(tmp_path)
    counter = data.SkipCounter()
    batches = list(data.eval_dataset(tmp_path, batch_size=2, skip_counter=counter))
    assert sum(len(l) for l, _ in batches) == 3
    assert counter.count == 4 and counter.paths == bad and counter.listed == 7
    assert int(counter) == 4
    printed = capfd.readouterr().err
    for path in bad:
        assert printed.count(f"colornet: skipping unreadable image: {path}\n") == 1

    # Training repeats the files: each bad file is still counted and printed once.
    counter = data.SkipCounter()
    for _ in data.train_dataset(
        tmp_path, batch_size=4, crop=64, seed=0, skip_counter=counter
    ).take(8):
        pass
    assert counter.count == 4 and counter.paths == bad
    printed = capfd.readouterr().err
    for path in bad:
        assert printed.count(path) == 1
    with pytest.raises(ValueError, match="another dataset"):
        data.eval_dataset(tmp_path, 2, skip_counter=counter)


@pytest.mark.slow
def test_decoded_images_file_order_and_skipped(tmp_path):
    good, bad = _good_and_bad_folder(tmp_path)
    dataset, skipped = data.decoded_images(tmp_path, resize=128)
    shapes = [tuple(image.shape) for image in dataset]
    # a.png 256x300, b.jpg 280x256, sub/c.png 256x256, in path order.
    assert shapes == [(128, 150, 3), (140, 128, 3), (128, 128, 3)]
    assert skipped.count == 4 and skipped.listed == 7 and skipped.paths == bad
    full, _ = data.decoded_images(good[0], resize=None)
    np.testing.assert_array_equal(next(iter(full)), smooth_rgb(256, 300, seed=1))


def test_every_file_unreadable_raises_instead_of_spinning(tmp_path):
    _, bad = _good_and_bad_folder(tmp_path / "x")
    with pytest.raises(tf.errors.InvalidArgumentError, match="none of the 4 images"):
        next(iter(data.train_dataset(bad, batch_size=2, crop=64)))


# ----------------------------------------------------------------------------
# TFRecords written by prepare.


def _records(directory):
    manifest = json.loads((directory / sources.MANIFEST_NAME).read_text())
    out = []
    for shard in manifest["shards"]:
        for record in tf.data.TFRecordDataset(str(directory / shard["file"])):
            example = tf.train.Example.FromString(record.numpy())
            feature = example.features.feature
            out.append(
                (
                    feature["path"].bytes_list.value[0].decode(),
                    feature["image"].bytes_list.value[0],
                    feature["height"].int64_list.value[0],
                    feature["width"].int64_list.value[0],
                )
            )
    return manifest, out


@pytest.mark.slow
def test_prepare_round_trip(tmp_path):
    good, bad = _good_and_bad_folder(tmp_path / "photos")
    out = tmp_path / "records"
    summary = data.prepare(tmp_path / "photos", out, shards=2, verbose=0)
    assert summary.images == 3 and len(summary.shards) == 2
    assert sorted(p for p, _ in summary.skipped) == bad
    reasons = dict(summary.skipped)
    assert "not a JPEG, PNG" in reasons[str(tmp_path / "photos" / "notes.jpg")]
    assert "empty input" in reasons[str(tmp_path / "photos" / "empty.webp")]
    manifest, records = _records(out)
    assert manifest["images"] == 3 and sum(s["count"] for s in manifest["shards"]) == 3
    assert sorted(s["path"] for s in manifest["skipped"]) == bad
    # Original bytes, every good file once, sizes recorded.
    assert sorted(p for p, *_ in records) == good
    for path, content, height, width in records:
        with open(path, "rb") as f:
            assert content == f.read()
        assert (height, width) == Image.open(path).size[::-1]
    assert not [
        n for n in os.listdir(tmp_path) if n.startswith(".")
    ]  # no temporary left

    # The pipelines read the shards like the folder: the same images come back.
    def sorted_eval(source):
        l_raw = np.concatenate([l.numpy() for l, _ in data.eval_dataset(source, 2)])
        return l_raw[np.argsort(l_raw.reshape(len(l_raw), -1).sum(1))]

    np.testing.assert_array_equal(sorted_eval(out), sorted_eval(tmp_path / "photos"))
    decoded, skipped = data.decoded_images(out, resize=None)
    assert skipped.listed == 3 and len(list(decoded)) == 3
    assert data.count_images(out) == 3 and data.count_images(tmp_path / "photos") == 7
    batch = next(iter(data.train_dataset(out, batch_size=5, crop=64, seed=0)))
    assert batch[0].shape == (5, 64, 64, 1)


def test_prepare_resize_reencodes_only_large_images(tmp_path):
    big = _write(tmp_path / "in" / "big.png", _encode(smooth_rgb(300, 400), "PNG"))
    small = _write(tmp_path / "in" / "small.png", _encode(smooth_rgb(100, 120), "PNG"))
    data.prepare(tmp_path / "in", tmp_path / "out", shards=1, resize=128, verbose=0)
    manifest, records = _records(tmp_path / "out")
    stored = {path: (content, h, w) for path, content, h, w in records}
    assert stored[big][0][:3] == b"\xff\xd8\xff" and stored[big][1:] == (128, 171)
    with open(small, "rb") as f:
        assert stored[small] == (f.read(), 100, 120)
    assert manifest["resize"] == 128


def test_prepare_writes_manifest_last_then_renames(tmp_path, monkeypatch):
    _good_and_bad_folder(tmp_path / "photos")
    out = tmp_path / "records"
    seen = {}
    write_json = tfrecords._write_json

    def spy(path, value):
        directory = os.path.dirname(path)
        seen["out_exists"] = out.exists()
        seen["shards_done"] = all(
            os.path.getsize(os.path.join(directory, s["file"])) > 0
            for s in value["shards"]
        )
        seen["partial"] = os.path.basename(directory)
        write_json(path, value)

    monkeypatch.setattr(tfrecords, "_write_json", spy)
    data.prepare(tmp_path / "photos", out, shards=1, verbose=0)
    assert seen == {
        "out_exists": False,
        "shards_done": True,
        "partial": seen["partial"],
    }
    assert seen["partial"].startswith(".records.partial-")
    assert (out / sources.MANIFEST_NAME).exists()


def test_interrupted_prepare_is_not_read_as_complete(tmp_path, monkeypatch):
    _good_and_bad_folder(tmp_path / "photos")
    out = tmp_path / "records"

    def killed(path, value):
        raise KeyboardInterrupt

    monkeypatch.setattr(tfrecords, "_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        data.prepare(tmp_path / "photos", out, shards=2, verbose=0)
    assert not out.exists()
    monkeypatch.undo()

    # What SIGKILL would leave: shards without a manifest, under the hidden name
    # or (moved by hand) under the real one. Neither reads as a shard set.
    data.prepare(tmp_path / "photos", out, shards=2, verbose=0)
    partial = tmp_path / ".records.partial-0000"
    partial.mkdir()
    for name in os.listdir(out):
        if name.endswith(".tfrecord"):
            (partial / name).write_bytes((out / name).read_bytes())
    (out / sources.MANIFEST_NAME).unlink()
    for directory in (out, partial):
        with pytest.raises(
            ColornetError, match="no colornet_tfrecords.json.*interrupted"
        ):
            data.eval_dataset(directory, 2)
    # The parent folder lists images only from photos/, never the hidden partial.
    assert all("partial" not in p for p in data.list_image_files(tmp_path))


def test_prepare_refuses_to_overwrite_unless_asked(tmp_path):
    _good_and_bad_folder(tmp_path / "photos")
    out = tmp_path / "records"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ColornetError, match="already exists"):
        data.prepare(tmp_path / "photos", out, verbose=0)
    summary = data.prepare(tmp_path / "photos", out, verbose=0, overwrite=True)
    assert summary.images == 3 and not (out / "keep.txt").exists()
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith(".")) == []


def test_cli_prepare(tmp_path, capsys):
    _good_and_bad_folder(tmp_path / "photos")
    argv = [
        "colornet",
        "prepare",
        "--data",
        str(tmp_path / "photos"),
        "--out",
        str(tmp_path / "r"),
    ]
    assert cli.main(cli._parse_flags(argv + ["--shards", "2"])) == 0
    output = capsys.readouterr().out
    assert "3 images in 2 shards, 4 skipped" in output
    assert data.count_images(tmp_path / "r") == 3
    assert cli.main(cli._parse_flags(argv)) == 1  # exists already
    assert "already exists" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# TFDS (optional dependency) and distribution.


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
    """`tfds:colornet_tiny_photos`: a TFDS builder defined here (registered by its
    class), prepared into a temporary data_dir, nothing downloaded. Its image feature
    is not called "image"; example i of a split is a flat grey of 10 i + offset,
    20 + i rows by 24 columns, stored as PNG (lossless)."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import constants

    class ColornetTinyPhotos(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {"label": tfds.features.ClassLabel(num_classes=2),
                        "photo": tfds.features.Image(shape=(None, None, 3))}
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(6, 0), "test": self._generate_examples(3, 100)}

        def _generate_examples(self, count, offset):
            for i in range(count):
                yield i, {"photo": np.full((20 + i, 24, 3), 10 * i + offset, np.uint8), "label": i % 2}

    patch = pytest.MonkeyPatch()
    patch.setattr(constants, "DATA_DIR", str(tmp_path_factory.mktemp("tfds")))
    yield "tfds:colornet_tiny_photos"
    patch.undo()


@pytest.mark.slow
def test_tfds_source_reads_a_local_builder(tiny_tfds):
    assert data.count_images(tiny_tfds) == 6  # the train split by default
    assert data.count_images(f"{tiny_tfds}:test") == 3
    l_raw, ab = next(iter(data.train_dataset(tiny_tfds, 4, crop=16, resize=32, seed=0)))
    assert l_raw.shape == (4, 16, 16, 1) and ab.shape == (4, 4, 4, 2)
    images, skipped = data.decoded_images(f"{tiny_tfds}:test", resize=None)
    got = sorted((image.shape[0], int(image.numpy().min()), int(image.numpy().max())) for image in images)
    assert got == [(20, 100, 100), (21, 110, 110), (22, 120, 120)]
    assert len(list(data.eval_dataset(f"{tiny_tfds}:test", 1, crop=16, resize=16))) == 3
    with pytest.raises(ColornetError, match=f"^{tiny_tfds}:validation: "):
        data.count_images(f"{tiny_tfds}:validation")


def test_tfds_errors(tiny_tfds, monkeypatch):
    with pytest.raises(ColornetError, match="tfds:no_such_set_anywhere: "):
        data.count_images("tfds:no_such_set_anywhere")
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # as if not installed
    with pytest.raises(ColornetError, match="TensorFlow Datasets is not installed"):
        data.train_dataset(tiny_tfds, 2)


def test_train_dataset_under_mirrored_strategy(tmp_path):
    # conftest.py gives two logical CPUs; Keras fit distributes the dataset like this.
    _good_and_bad_folder(tmp_path)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    counter = data.SkipCounter()
    dataset = data.train_dataset(
        tmp_path, batch_size=4, crop=64, seed=0, skip_counter=counter
    )
    distributed = iter(strategy.experimental_distribute_dataset(dataset))
    l_raw, ab = next(distributed)
    assert [t.shape for t in strategy.experimental_local_results(l_raw)] == [
        (2, 64, 64, 1)
    ] * 2
    assert [t.shape for t in strategy.experimental_local_results(ab)] == [
        (2, 16, 16, 2)
    ] * 2
    assert counter.count == 4
