"""Test images generated on the fly: random noise and smooth, photo-like scenes."""

import numpy as np


def random_rgb(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def smooth_rgb(height, width, seed=0):
    """A photo-like image: smooth colour gradients, blobs and mild noise, uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = []
    for _ in range(3):
        freq = rng.uniform(1, 4, size=2)
        phase = rng.uniform(0, 2 * np.pi, size=2)
        channels.append(
            0.5 + 0.35 * np.sin(2 * np.pi * freq[0] * x + phase[0]) * np.cos(2 * np.pi * freq[1] * y + phase[1])
        )
    image = np.stack(channels, axis=-1)
    image += rng.normal(0, 0.02, image.shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)
