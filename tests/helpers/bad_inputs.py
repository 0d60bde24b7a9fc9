"""A corpus of hostile inputs, every one generated here with NumPy, Pillow and tf.io.

`image_cases()` gives the byte-level cases: what a file (or one element of a
`tf.string` batch) may hold. Each `Case` says what every decoding entry point must
do with it: return an image equal to `expected` (a documented handling: first GIF
frame, alpha dropped, CMYK converted, 16 bits reduced to 8, EXIF applied by
`read_image`) or raise an error whose message matches `message`.

`write_path_cases(root)` lays out the file-system cases: a non-UTF-8 and a 250-byte
file name (both valid images), a directory named like an image, a missing path, and
an output location under a regular file (`NotADirectoryError`: tests run as root,
whom `chmod` does not stop).
"""

import dataclasses
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

from tests.helpers.images import smooth_rgb

NOT_AN_IMAGE = "not a JPEG, PNG, GIF, BMP or WebP"


@dataclasses.dataclass(frozen=True)
class Case:
    """One hostile input.

    Attributes:
      content: the bytes.
      suffix: file name extension to store it under.
      expected: `(H, W, 3)` uint8 that decoding must give (as stored, before EXIF
        orientation), or None when decoding must fail.
      message: regex the error message must match (when `expected` is None).
      upright: what `read_image` gives (EXIF applied), when it differs from `expected`.
      atol: tolerance against `expected` (lossy formats compared with Pillow: 0).
    """

    content: bytes
    suffix: str
    expected: np.ndarray | None = None
    message: str = ""
    upright: np.ndarray | None = None
    atol: int = 0

    @property
    def readable(self):
        return self.expected is not None


def _save(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _pillow_rgb(content):
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))


def _png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_claiming(width, height):
    """A PNG whose header declares `width` x `height` RGB, with 1000 zero bytes of data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + _png_chunk(b"IEND", b"")
    )


def cmyk_jpeg(rgb):
    """Pillow's CMYK JPEG (Adobe APP14 marker, transform 0: components stored as is)."""
    return _save(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)


def ycck_jpeg(rgb):
    """A YCCK JPEG: Adobe APP14 transform 2, as Photoshop writes CMYK.

    Pillow cannot write YCCK, so the colour transform is done here: the four stored
    components are the JFIF YCbCr of (255 - C, 255 - M, 255 - Y) and K, where
    C, M, Y, K are what the decoder must hand back (Adobe's inverted CMYK, as
    Pillow and TensorFlow read it: R = C * K / 255). Pillow writes the components
    as CMYK (transform 0, inverting them), then the transform byte is patched to 2,
    which tells the decoder to undo the YCC step.
    """
    cmy = rgb.astype(np.float64)  # Adobe CMYK with K = 255: C = R, M = G, Y = B
    inv = 255.0 - cmy
    y = 0.299 * inv[..., 0] + 0.587 * inv[..., 1] + 0.114 * inv[..., 2]
    cb = 128 - 0.168736 * inv[..., 0] - 0.331264 * inv[..., 1] + 0.5 * inv[..., 2]
    cr = 128 + 0.5 * inv[..., 0] - 0.418688 * inv[..., 1] - 0.081312 * inv[..., 2]
    stored = np.stack([y, cb, cr, np.full_like(y, 255.0)], axis=-1)
    stored = np.clip(np.round(stored), 0, 255).astype(np.uint8)
    content = bytearray(_save(Image.fromarray(255 - stored, "CMYK"), "JPEG", quality=100))
    adobe = content.index(b"\xff\xee\x00\x0eAdobe")
    assert content[adobe + 15] == 0  # FF EE, length, "Adobe", version, 2 flags, transform
    content[adobe + 15] = 2
    return bytes(content)


def jpeg_with_orientation(rgb, orientation):
    """A JPEG with an EXIF APP1 segment holding only the Orientation tag."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\x00\x00" + tiff
    plain = _save(Image.fromarray(rgb), "JPEG", quality=95)
    return plain[:2] + app1 + plain[2:]


def animated_gif(frames):
    images = [Image.fromarray(f) for f in frames]
    return _save(images[0], "GIF", save_all=True, append_images=images[1:], duration=50)


def image_cases():
    """`{name: Case}`: the byte-level corpus (see the module docstring)."""
    rgb = smooth_rgb(24, 32, seed=11)
    jpeg = _save(Image.fromarray(rgb), "JPEG", quality=90)
    png = _save(Image.fromarray(rgb), "PNG")
    cases = {
        "empty": Case(b"", ".png", message="empty input"),
        "nul_bytes": Case(b"\0" * 4096, ".jpg", message=NOT_AN_IMAGE),
        "random": Case(np.random.default_rng(0).bytes(3000), ".png", message=NOT_AN_IMAGE),
        "truncated_jpeg": Case(jpeg[: len(jpeg) // 2], ".jpg", message="JPEG"),
        "truncated_png": Case(png[: len(png) // 2], ".png", message="PNG"),
        "text_as_jpg": Case(b"this is a text file, not an image\n" * 4, ".jpg", message=NOT_AN_IMAGE),
        "bomb_png": Case(png_claiming(100_000, 100_000), ".png", message="100000x100000 pixels.*max_pixels"),
    }
    one = np.array([[[200, 30, 60]]], np.uint8)
    cases["one_by_one"] = Case(_save(Image.fromarray(one), "PNG"), ".png", expected=one)
    three_by_two = smooth_rgb(2, 3, seed=3)  # 3 wide, 2 high
    cases["three_by_two"] = Case(_save(Image.fromarray(three_by_two), "BMP"), ".bmp", expected=three_by_two)
    for name, make in (("cmyk_jpeg", cmyk_jpeg), ("ycck_jpeg", ycck_jpeg)):
        content = make(rgb)
        cases[name] = Case(content, ".jpg", expected=_pillow_rgb(content))
    grey16 = (smooth_rgb(24, 32, seed=12)[..., 0].astype(np.uint16) * 257)
    cases["png16"] = Case(
        _save(Image.fromarray(grey16), "PNG"),
        ".png",
        expected=np.repeat((grey16 // 257).astype(np.uint8)[..., None], 3, -1),
    )
    palette = Image.fromarray(rgb).quantize(colors=32)
    cases["palette_png"] = Case(_save(palette, "PNG"), ".png", expected=np.asarray(palette.convert("RGB")))
    grey = rgb[..., 0]
    alpha = np.tile(np.arange(32, dtype=np.uint8)[None] * 8, (24, 1))  # transparent at the left
    cases["grey_alpha_png"] = Case(
        _save(Image.fromarray(np.stack([grey, alpha], -1), "LA"), "PNG"),
        ".png",
        expected=np.repeat(grey[..., None], 3, -1),
    )
    cases["rgba_png"] = Case(
        _save(Image.fromarray(np.concatenate([rgb, alpha[..., None]], -1), "RGBA"), "PNG"),
        ".png",
        expected=rgb,  # alpha dropped, not composited
    )
    frames = [np.full((24, 32, 3), value, np.uint8) for value in (30, 220, 120)]
    frames[0][:, :16] = (250, 10, 10)
    cases["animated_gif"] = Case(animated_gif(frames), ".gif", expected=frames[0])
    asymmetric = smooth_rgb(16, 28, seed=4)
    exif = jpeg_with_orientation(asymmetric, 6)
    stored = _pillow_rgb(exif)
    cases["exif6_jpeg"] = Case(exif, ".jpg", expected=stored, upright=np.rot90(stored, -1))
    return cases


def bad_cases():
    return {name: case for name, case in image_cases().items() if not case.readable}


def good_cases():
    return {name: case for name, case in image_cases().items() if case.readable}


@dataclasses.dataclass(frozen=True)
class PathCases:
    """File-system cases laid out by `write_path_cases`."""

    non_utf8: str  # a readable PNG whose name is not valid UTF-8 (bytes 0xff 0xfe)
    long_name: str  # a readable PNG whose name is 250 bytes long
    directory: str  # a directory called like an image
    missing: str  # nothing there
    under_file: str  # an output path below a regular file: NotADirectoryError


def write_path_cases(root):
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    png = _save(Image.fromarray(smooth_rgb(20, 24, seed=7)), "PNG")
    non_utf8 = os.path.join(root, os.fsdecode(b"caf\xff\xfe.png"))
    long_name = os.path.join(root, "l" * 246 + ".png")
    for path in (non_utf8, long_name):
        with open(path, "wb") as f:
            f.write(png)
    directory = os.path.join(root, "folder.jpg")
    os.makedirs(directory, exist_ok=True)
    plain_file = os.path.join(root, "plain_file")
    with open(plain_file, "w") as f:
        f.write("a regular file, not a directory\n")
    return PathCases(
        non_utf8=non_utf8,
        long_name=long_name,
        directory=directory,
        missing=os.path.join(root, "missing.png"),
        under_file=os.path.join(plain_file, "out"),
    )


def write_corpus(folder, names=None):
    """Writes the byte-level cases as `folder/<name><suffix>`; returns `{name: path}`."""
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, case in image_cases().items():
        if names is not None and name not in names:
            continue
        path = os.path.join(folder, name + case.suffix)
        with open(path, "wb") as f:
            f.write(case.content)
        paths[name] = path
    return paths
