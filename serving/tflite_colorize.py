#!/usr/bin/env python3
"""Colourise an image with a colornet TFLite model: ai-edge-litert, NumPy and Pillow only.

What a mobile or edge app does with a model from `colornet tflite`:

1. read the image as sRGB and compute CIE Lab (D65) in NumPy, with the formulas and
   constants of colornet.color (scikit-image's);
2. resize L to the model's S x S input (Pillow bilinear, which antialiases when
   shrinking, like the exported graphs);
3. run the model: `l_raw (1, S, S, 1)` -> `ab (1, S/4, S/4, 2)`;
4. upsample ab bilinearly to the image's size with Pillow, join it with the image's
   full-resolution L and convert back to sRGB.

    python serving/tflite_colorize.py --model colornet.tflite photo.jpg -o out.png

No TensorFlow and no colornet import: copy this file next to the .tflite model.
"""

import argparse
import sys

import numpy as np
from PIL import Image

# CIE Lab, D65 white, sRGB companding: the constants of colornet/constants.py.
D65_WHITE = np.array([0.95047, 1.0, 1.08883])
XYZ_FROM_LINEAR_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
LINEAR_RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_LINEAR_RGB)
SRGB_LINEAR_THRESHOLD = 0.04045
SRGB_ENCODE_THRESHOLD = 0.0031308
LAB_EPSILON = 0.008856
LAB_KAPPA_SLOPE = 7.787
LAB_F_THRESHOLD = 0.2068966


def rgb_to_lab(rgb_uint8):
    """`(H, W, 3)` uint8 sRGB -> `(H, W, 3)` float32 Lab."""
    rgb = rgb_uint8.astype(np.float32) / 255.0
    linear = np.where(
        rgb > SRGB_LINEAR_THRESHOLD,
        ((np.maximum(rgb, SRGB_LINEAR_THRESHOLD) + 0.055) / 1.055) ** 2.4,
        rgb / 12.92,
    )
    xyz = linear @ XYZ_FROM_LINEAR_RGB.T.astype(np.float32) / D65_WHITE.astype(np.float32)
    f = np.where(
        xyz > LAB_EPSILON,
        np.cbrt(np.maximum(xyz, LAB_EPSILON)),
        LAB_KAPPA_SLOPE * xyz + 16.0 / 116.0,
    )
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1).astype(np.float32)


def lab_to_rgb(lab):
    """`(H, W, 3)` float Lab -> `(H, W, 3)` uint8 sRGB (out-of-gamut clipped)."""
    l_raw, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (l_raw + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = np.maximum(fy - b / 200.0, 0.0)
    f = np.stack([fx, fy, fz], axis=-1)
    xyz = np.where(f > LAB_F_THRESHOLD, f**3, (f - 16.0 / 116.0) / LAB_KAPPA_SLOPE)
    linear = (xyz * D65_WHITE.astype(np.float32)) @ LINEAR_RGB_FROM_XYZ.T.astype(np.float32)
    rgb = np.where(
        linear > SRGB_ENCODE_THRESHOLD,
        1.055 * np.maximum(linear, SRGB_ENCODE_THRESHOLD) ** (1.0 / 2.4) - 0.055,
        12.92 * linear,
    )
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def _resize(channel, width, height):
    """Bilinear resize of a float32 `(h, w)` array with Pillow (mode "F")."""
    image = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32))
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


class Colorizer:
    """A colornet TFLite model and the steps around it.

    Args:
      model_path: the .tflite file from `colornet tflite`.
      num_threads: interpreter threads (None: LiteRT's default).
    """

    def __init__(self, model_path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=model_path, num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner("serving_default")
        inputs = self.runner.get_input_details()
        self.size = int(inputs["l_raw"]["shape"][1])
        # A model that takes hints (the bundled one does) has a second input, the
        # hint map (a, b, mask per pixel): all zeros is "no hints".
        self.takes_hints = "hints" in inputs

    def predict_ab(self, l_raw):
        """`(H, W)` float32 L -> `(h, w, 2)` ab at the model's output resolution."""
        l_small = _resize(l_raw, self.size, self.size)[None, :, :, None]
        if self.takes_hints:
            no_hints = np.zeros((1, self.size, self.size, 3), np.float32)
            return self.runner(l_raw=l_small, hints=no_hints)["ab"][0]
        return self.runner(l_raw=l_small)["ab"][0]

    def colorize(self, rgb_uint8):
        """`(H, W, 3)` uint8 RGB -> `(H, W, 3)` uint8 RGB with predicted colours."""
        lab = rgb_to_lab(rgb_uint8)
        height, width = lab.shape[:2]
        ab_small = self.predict_ab(lab[..., 0])
        ab = np.stack([_resize(ab_small[..., i], width, height) for i in range(2)], axis=-1)
        return lab_to_rgb(np.concatenate([lab[..., :1], ab], axis=-1))


# EXIF orientation (1..8) -> the Pillow transposition that makes the image upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112


def read_rgb(path):
    """Reads an image file as upright `(H, W, 3)` uint8 RGB, as `colornet colorize` does.

    Grey, palette and grey+alpha images are expanded to RGB; alpha is dropped, not
    composited; 16-bit samples keep their high byte (16-bit grey would otherwise
    saturate to white in Pillow's `convert("RGB")`); an animated GIF gives its first
    frame; a JPEG's EXIF orientation is applied. The same pixels as
    `colornet.data.read_image` (tests/test_tflite.py checks them on its odd inputs).
    """
    with Image.open(path) as image:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1) if image.format == "JPEG" else 1
        if image.mode.startswith("I"):  # 16-bit grey ("I;16", "I;16B", or "I" holding 0..65535)
            grey = (np.asarray(image).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
            image = Image.fromarray(grey)
        rgb = image.convert("RGB")
    if orientation in _UPRIGHT:
        rgb = rgb.transpose(_UPRIGHT[orientation])
    return np.asarray(rgb)


def colorize_file(model_path, image_path, out_path, num_threads=None):
    """Reads `image_path` (`read_rgb`), colourises it and writes a PNG."""
    rgb = read_rgb(image_path)
    Image.fromarray(Colorizer(model_path, num_threads).colorize(rgb)).save(out_path, format="PNG")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Colourise an image with a colornet TFLite model.")
    parser.add_argument("image", help="input image (JPEG, PNG, ...)")
    parser.add_argument("--model", required=True, help="the .tflite model")
    parser.add_argument("-o", "--out", required=True, help="output PNG")
    parser.add_argument("--threads", type=int, help="interpreter threads")
    args = parser.parse_args(argv)
    try:
        colorize_file(args.model, args.image, args.out, args.threads)
    except (OSError, ValueError) as error:
        print(f"tflite_colorize: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
