"""sRGB <-> Lab against scikit-image (the release builds its data with it)."""

import numpy as np
import pytest
import skimage.color
import skimage.data
import tensorflow as tf

from colornet import color
from tests.helpers.images import random_rgb, smooth_rgb

# float32 arithmetic on values up to ~100 loses about 1e-5 relative; 1e-3 Lab units
# is the bound and leaves a 10x margin over what we measure (~6e-5).
LAB_ATOL = 1e-3


def _photos():
    return [skimage.data.astronaut()[::4, ::4], skimage.data.coffee()[::4, ::4], smooth_rgb(40, 56)]


@pytest.mark.parametrize(
    "image", [random_rgb((3, 17, 23, 3)), *_photos()], ids=["random", "astronaut", "coffee", "smooth"]
)
def test_rgb_to_lab_matches_skimage(image):
    np.testing.assert_allclose(color.rgb_to_lab(image).numpy(), skimage.color.rgb2lab(image), atol=LAB_ATOL)


def test_float_input_equals_uint8_input():
    image = random_rgb((8, 9, 3))
    np.testing.assert_allclose(
        color.rgb_to_lab(image.astype(np.float32) / 255).numpy(), color.rgb_to_lab(image).numpy(), atol=1e-4
    )


def test_lab_to_rgb_matches_skimage():
    lab = skimage.color.rgb2lab(random_rgb((2, 16, 16, 3), seed=3))
    # Out-of-gamut Lab values exercise the clipping and the negative-z clamp.
    rng = np.random.default_rng(4)
    wild = np.stack([rng.uniform(0, 100, 500), rng.uniform(-110, 110, 500), rng.uniform(-110, 110, 500)], -1)
    for values in (lab, wild):
        np.testing.assert_allclose(
            color.lab_to_rgb(values.astype(np.float32)).numpy(), skimage.color.lab2rgb(values), atol=1e-5
        )


@pytest.mark.parametrize(
    "image", [random_rgb((2, 31, 19, 3), seed=1), *_photos()], ids=["random", "astronaut", "coffee", "smooth"]
)
def test_round_trip_within_one_level(image):
    back = color.lab_to_rgb(color.rgb_to_lab(image)).numpy() * 255.0
    assert np.abs(back - image).max() <= 1.0


def test_shapes_batched_and_unbatched():
    assert color.rgb_to_lab(random_rgb((5, 3))).shape == (5, 3)
    assert color.rgb_to_lab(random_rgb((2, 3, 4, 5, 3))).shape == (2, 3, 4, 5, 3)
    with pytest.raises(ValueError, match="3 channels"):
        color.rgb_to_lab(np.zeros((4, 4, 4), np.uint8))


def test_graph_tfdata_and_xla_agree_with_eager():
    image = random_rgb((2, 12, 12, 3), seed=2)
    eager = color.rgb_to_lab(image).numpy()
    graph = tf.function(color.rgb_to_lab)(image).numpy()
    xla = tf.function(color.rgb_to_lab, jit_compile=True)(image).numpy()
    mapped = next(iter(tf.data.Dataset.from_tensors(image).map(color.rgb_to_lab))).numpy()
    for other in (graph, xla, mapped):
        np.testing.assert_allclose(other, eager, atol=1e-4)
    back = tf.function(color.lab_to_rgb, jit_compile=True)(eager).numpy()
    np.testing.assert_allclose(back, color.lab_to_rgb(eager).numpy(), atol=1e-5)


@pytest.mark.parametrize("value", [0.0, 1e-4, 0.04045, 0.5, 1.0])
def test_gradients_finite_including_black(value):
    rgb = tf.fill([2, 2, 3], value)
    with tf.GradientTape() as tape:
        tape.watch(rgb)
        lab = color.rgb_to_lab(rgb)
        back = color.lab_to_rgb(lab)
        total = tf.reduce_sum(lab) + tf.reduce_sum(back)
    grad = tape.gradient(total, rgb).numpy()
    assert np.all(np.isfinite(grad))
    lab_in = tf.constant([[0.0, 0.0, 0.0], [50.0, 120.0, -120.0], [100.0, 0.0, 0.0]])
    with tf.GradientTape() as tape:
        tape.watch(lab_in)
        out = tf.reduce_sum(color.lab_to_rgb(lab_in))
    assert np.all(np.isfinite(tape.gradient(out, lab_in).numpy()))
