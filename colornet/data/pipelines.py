"""tf.data input pipelines: any source (`colornet.data.sources`) -> `(l_raw, ab)`.

What the training element is (release `train_val` prototxt): the image's
shorter side is resized to `constants.TRAIN_RESIZE` (256), a random
`TRAIN_CROP` (176) square is cut and mirrored with probability 1/2, the crop is
converted to CIE Lab in the graph (`colornet.color.rgb_to_lab`), and the element
is `(l_raw, ab)`: `l_raw` float32 `(B, crop, crop, 1)` in 0..100 at full
resolution and `ab` float32 `(B, crop/4, crop/4, 2)`, the ab channels at every
4th pixel starting at row and column 0. That is what the release's
`data_ab_ss` layer computes (a 1x1 convolution, weight 1, stride 4, no padding,
on the full-resolution ab): no averaging, offset 0. Evaluation uses the centre
crop instead (Caffe's TEST-phase offset `(size - crop) // 2`). Images are
decoded by `colornet.data.images`.

Unreadable files are skipped, never fatal: a file that cannot be read or
decoded is dropped from the stream, its path is printed once to stderr and it
is recorded in a `SkipCounter`. Pass `skip_counter=SkipCounter()` to a pipeline
and read `counter.count` / `counter.paths` during or after iteration;
`decoded_images` returns its counter. A counter counts distinct files, so a bad
file met again in a later epoch is not counted twice. If every listed file
fails, iteration raises instead of spinning forever.
"""

import os
import sys

import numpy as np
import tensorflow as tf

from colornet import constants as c
from colornet import hints as hint_maps
from colornet.color import rgb_to_lab
from colornet.data.images import MAX_PIXELS, check_that, decode_scaled, plain_tf
from colornet.data.sources import SHUFFLE_BUFFER, _open_source

# ----------------------------------------------------------------------------
# Geometry and the model's inputs.


def _check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _restore_dtype(image, dtype):
    if dtype == tf.uint8:
        return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    return tf.cast(image, dtype)


@plain_tf
def resize_shorter_side(image, size):
    """Resizes so the shorter side is `size`, keeping the aspect ratio.

    Bilinear with antialiasing (an area-weighted kernel when shrinking);
    images whose shorter side already equals `size` are returned unchanged.

    Args:
      image: `(H, W, C)` or `(B, H, W, C)`, uint8 or float.
      size: shorter side in pixels (Python int).

    Returns:
      Same rank and dtype (uint8 is rounded): `(size, round(W * size / H), C)`
      when H <= W, `(round(H * size / W), size, C)` otherwise.
    """
    size = _check_size("size", size)
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    height, width = shape[-3], shape[-2]
    shorter = tf.minimum(height, width)
    scale = size / tf.cast(shorter, tf.float64)

    def scaled(side):
        return tf.where(
            tf.equal(side, shorter),
            size,
            tf.maximum(
                1, tf.cast(tf.round(tf.cast(side, tf.float64) * scale), tf.int32)
            ),
        )

    def resize():
        resized = tf.image.resize(
            image,
            tf.stack([scaled(height), scaled(width)]),
            method="bilinear",
            antialias=True,
        )
        return _restore_dtype(resized, image.dtype)

    return tf.cond(tf.equal(shorter, size), lambda: tf.identity(image), resize)


@plain_tf
def random_crop_flip(image, crop, seed=None):
    """Random `crop` x `crop` window, mirrored left-right with probability 1/2.

    Args:
      image: `(H, W, C)` with H, W >= crop.
      crop: side of the square crop in pixels (Python int).
      seed: shape `(2,)` int32/int64 stateless seed; the same seed gives the same
        crop. None draws one from the global generator.

    Returns:
      `(crop, crop, C)`, same dtype.
    """
    crop = _check_size("crop", crop)
    image = tf.convert_to_tensor(image)
    if seed is None:
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int64)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    channels = tf.shape(image)[-1]
    out = tf.image.stateless_random_crop(
        image, tf.stack([crop, crop, channels]), seed=crop_seed
    )
    out = tf.image.stateless_random_flip_left_right(out, seed=flip_seed)
    return tf.ensure_shape(out, [crop, crop, image.shape[-1]])


@plain_tf
def center_crop(image, crop):
    """The central `crop` x `crop` window, offset `(size - crop) // 2` as Caffe's.

    Args:
      image: `(H, W, C)` or `(B, H, W, C)` with H, W >= crop.
      crop: side in pixels (Python int).

    Returns:
      `(crop, crop, C)` or `(B, crop, crop, C)`, same dtype.
    """
    crop = _check_size("crop", crop)
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    height, width = shape[-3], shape[-2]
    check = check_that(
        (height >= crop) & (width >= crop),
        "center_crop: image of ",
        width,
        "x",
        height,
        f" is smaller than the crop {crop}x{crop}",
    )
    with tf.control_dependencies([check]):
        top = (height - crop) // 2
        left = (width - crop) // 2
    out = image[..., top : top + crop, left : left + crop, :]
    return tf.ensure_shape(out, image.shape[:-3] + (crop, crop) + image.shape[-1:])


@plain_tf
def to_model_inputs(rgb_uint8):
    """RGB -> the model input and its target, as the release's data layers make them.

    Args:
      rgb_uint8: `(H, W, 3)` or `(B, H, W, 3)` uint8 sRGB.

    Returns:
      `(l_raw, ab)`: `l_raw` float32 `(..., H, W, 1)` lightness in 0..100, and
      `ab` float32 `(..., ceil(H/4), ceil(W/4), 2)`: the a, b channels of every
      4th pixel from row and column 0 (release `data_ab_ss`: 1x1 convolution,
      stride 4, no padding; no averaging).
    """
    lab = rgb_to_lab(rgb_uint8)
    stride = c.OUTPUT_STRIDE
    return lab[..., :1], lab[..., ::stride, ::stride, 1:]


@plain_tf
def to_hint_model_inputs(rgb_uint8, seed):
    """`to_model_inputs` of a batch, with hints revealed from its true colours.

    Args:
      rgb_uint8: `(B, H, W, 3)` uint8 sRGB.
      seed: `(2,)` int stateless seed of `colornet.hints.simulate_hints`.

    Returns:
      `((l_raw, hints), ab)`: `hints` float32 `(B, H, W, 3)`, the others as
      `to_model_inputs`'.
    """
    lab = rgb_to_lab(rgb_uint8)
    stride = c.OUTPUT_STRIDE
    hints = hint_maps.simulate_hints(lab[..., 1:], seed)
    return (lab[..., :1], hints), lab[..., ::stride, ::stride, 1:]


# ----------------------------------------------------------------------------
# Skipping unreadable files.


class SkipCounter:
    """The files a pipeline skipped because they could not be read or decoded.

    Give one to a pipeline (`train_dataset(..., skip_counter=counter)`;
    `decoded_images` returns its own) and read it during or after iteration.
    Files are counted once each (by path; by record id for TFDS), however many
    epochs meet them. A counter belongs to one dataset.

    Attributes:
      count: number of distinct files skipped so far (int).
      paths: their paths, sorted.
      listed: number of files the source listed (None until attached).
    """

    def __init__(self):
        with tf.device("/cpu:0"):
            self._table = tf.lookup.experimental.MutableHashTable(
                key_dtype=tf.string, value_dtype=tf.int64, default_value=0
            )
        self.listed = None
        self._attached = False

    @property
    def count(self):
        return int(self._table.size())

    @property
    def paths(self):
        keys, _ = self._table.export()
        return sorted(os.fsdecode(k) for k in keys.numpy())

    def __int__(self):
        return self.count

    def __repr__(self):
        return f"SkipCounter(count={self.count}, listed={self.listed})"

    def _attach(self, listed):
        if self._attached:
            raise ValueError(
                "this SkipCounter already belongs to another dataset; make a new one"
            )
        self._attached = True
        self.listed = listed

    def _record(self, key):
        """In-graph: notes a skipped file once and fails when every file was skipped."""
        new = tf.equal(self._table.lookup(key), 0)
        with tf.control_dependencies([new]):
            insert = self._table.insert(key, tf.constant(1, tf.int64))
        with tf.control_dependencies([insert]):
            printed = tf.cond(
                new,
                lambda: _print_skip(key),
                lambda: tf.constant(False),
            )
            size = self._table.size()
        checks = [printed]
        if self.listed is not None:
            checks.append(
                check_that(
                    size < self.listed,
                    f"none of the {self.listed} images could be read or decoded "
                    "(each one was reported as skipped on stderr)",
                )
            )
        with tf.control_dependencies(checks):
            return tf.identity(size)


def _print_skip(key):
    op = tf.print(
        tf.strings.join(["colornet: skipping unreadable image: ", key]),
        output_stream=sys.stderr,
    )
    with tf.control_dependencies([op]):
        return tf.constant(True)


def _fallback_like(spec):
    shape = [0 if d is None else d for d in spec.shape]
    return tf.zeros(shape, spec.dtype)


def _ensure_spec(value, spec):
    return tf.nest.map_structure(lambda v, s: tf.ensure_shape(v, s.shape), value, spec)


@plain_tf
def _decode_skipping(dataset, load, element_spec, counter, deterministic):
    """Maps `load(key, payload, rng) -> image` over `(key, payload, rng)`, dropping failures.

    Each element runs in a one-element dataset whose errors are ignored and
    which falls back to a placeholder flagged `ok=False`; so a failure is seen
    (and counted, and its key printed) instead of vanishing.
    """

    @plain_tf
    def attempt(key, payload, rng):
        good = (
            tf.data.Dataset.from_tensors((key, payload, rng))
            .map(lambda k, p, r: (load(k, p, r), tf.constant(True), k))
            .ignore_errors()
        )
        fallback = tf.nest.map_structure(_fallback_like, element_spec)
        bad = tf.data.Dataset.from_tensors((fallback, tf.constant(False), key))
        return good.concatenate(bad).take(1)

    @plain_tf
    def note(image, ok, key):
        ok = tf.cond(ok, lambda: ok, lambda: tf.equal(counter._record(key), -1))
        return image, ok

    dataset = dataset.interleave(
        attempt,
        cycle_length=tf.data.AUTOTUNE,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    dataset = dataset.map(note).filter(lambda image, ok: ok)
    return dataset.map(lambda image, ok: _ensure_spec(image, element_spec))



# ----------------------------------------------------------------------------
# Pipelines.


def _image_pipeline(
    source,
    transform,
    element_spec,
    *,
    training,
    seed,
    shuffle_buffer,
    deterministic,
    skip_counter,
    default_split,
    max_pixels,
    min_side,
):
    """One pass (or endless passes when training) of transformed images."""
    src = _open_source(
        source,
        shuffle=training,
        seed=seed,
        shuffle_buffer=shuffle_buffer,
        deterministic=deterministic,
        default_split=default_split,
    )
    counter = skip_counter if skip_counter is not None else SkipCounter()
    counter._attach(src.size)
    dataset = src.dataset.repeat() if training else src.dataset
    rng = tf.data.Dataset.random(seed=seed).batch(2)
    dataset = tf.data.Dataset.zip((dataset, rng)).map(lambda kp, r: (kp[0], kp[1], r))

    @plain_tf
    def load(key, payload, rng_seed):
        encoded = payload if src.encoded else tf.io.read_file(payload)
        return transform(decode_scaled(encoded, max_pixels, min_side=min_side), rng_seed)

    dataset = _decode_skipping(dataset, load, element_spec, counter, deterministic)
    options = tf.data.Options()
    options.deterministic = deterministic
    return dataset.with_options(options), counter


def _check_crop(crop, resize):
    crop = _check_size("crop", crop)
    resize = _check_size("resize", resize)
    if crop % c.OUTPUT_STRIDE:
        raise ValueError(f"crop must be a multiple of {c.OUTPUT_STRIDE}, got {crop}")
    if crop > resize:
        raise ValueError(f"crop must be at most resize ({resize}), got {crop}")
    return crop, resize


def _batched_model_inputs(dataset, batch_size, drop_remainder, deterministic, hints_seed=None):
    """Batches of `to_model_inputs`; with `hints_seed` (an int, or -1 for a fresh
    one), of `to_hint_model_inputs`, each batch with its own stateless seed."""
    dataset = dataset.batch(
        batch_size,
        drop_remainder=drop_remainder,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if hints_seed is None:
        mapped = dataset.map(to_model_inputs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    else:
        seeds = tf.data.Dataset.random(seed=None if hints_seed < 0 else hints_seed).batch(2)
        mapped = tf.data.Dataset.zip((dataset, seeds)).map(
            to_hint_model_inputs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
        )
    return mapped.prefetch(tf.data.AUTOTUNE)


def train_dataset(
    source,
    batch_size,
    crop=c.TRAIN_CROP,
    seed=None,
    *,
    resize=c.TRAIN_RESIZE,
    shuffle_buffer=SHUFFLE_BUFFER,
    deterministic=None,
    skip_counter=None,
    max_pixels=MAX_PIXELS,
    hints=False,
):
    """Endless, shuffled training batches `(l_raw, ab)` (see the module docstring).

    Args:
      source: image folder / glob / `.txt` list / list of these, a `prepare`
        TFRecord directory, or `"tfds:NAME[:SPLIT]"` (split defaults to train).
      batch_size: images per batch; the last partial batch of the endless
        stream never occurs, so every batch is full and shapes are static.
      crop: side of the random square crop, a multiple of 4, <= resize.
      seed: int seed for file order, crops and flips; None for a fresh one.
      resize: shorter side before cropping (release: 256).
      shuffle_buffer: records shuffled in memory for TFRecord and TFDS
        sources (file lists are shuffled whole).
      deterministic: element order reproducible (given a seed) at some cost in
        throughput; None means True when a seed is given.
      skip_counter: a fresh `SkipCounter` to record unreadable files in.
      max_pixels: see `decode_image`.
      hints: also reveal true colours at random points (`colornet.hints.simulate_hints`),
        for a model that takes hints (`ModelConfig.hints`).

    Returns:
      `tf.data.Dataset` of `(l_raw, ab)`: float32 `(batch, crop, crop, 1)` in
      0..100 and float32 `(batch, crop/4, crop/4, 2)`; with `hints`, of
      `((l_raw, hints), ab)`, `hints` float32 `(batch, crop, crop, 3)`.
    """
    crop, resize = _check_crop(crop, resize)
    batch_size = _check_size("batch_size", batch_size)
    if deterministic is None:
        deterministic = seed is not None

    @plain_tf
    def transform(image, rng_seed):
        return random_crop_flip(resize_shorter_side(image, resize), crop, rng_seed)

    images, _ = _image_pipeline(
        source,
        transform,
        tf.TensorSpec([crop, crop, 3], tf.uint8),
        training=True,
        seed=seed,
        shuffle_buffer=shuffle_buffer,
        deterministic=deterministic,
        skip_counter=skip_counter,
        default_split=("train",),
        max_pixels=max_pixels,
        min_side=resize,
    )
    hints_seed = (-1 if seed is None else seed + 1) if hints else None
    return _batched_model_inputs(images, batch_size, True, deterministic, hints_seed)


def eval_dataset(
    source,
    batch_size,
    crop=c.TRAIN_CROP,
    *,
    resize=c.TRAIN_RESIZE,
    drop_remainder=False,
    deterministic=True,
    skip_counter=None,
    max_pixels=MAX_PIXELS,
):
    """One pass of evaluation batches `(l_raw, ab)`: resize, then centre crop.

    Args:
      source: as for `train_dataset` (a TFDS split defaults to validation, then
        test, then train).
      batch_size: images per batch; the last batch may be smaller unless
        `drop_remainder`.
      crop: side of the centre crop, a multiple of 4, <= resize.
      resize: shorter side before cropping.
      deterministic: keep the source order (default).
      skip_counter: a fresh `SkipCounter` to record unreadable files in.
      max_pixels: see `decode_image`.

    Returns:
      `tf.data.Dataset` of `(l_raw, ab)` as `train_dataset`'s, in source order.
    """
    crop, resize = _check_crop(crop, resize)
    batch_size = _check_size("batch_size", batch_size)

    @plain_tf
    def transform(image, rng_seed):
        del rng_seed
        return center_crop(resize_shorter_side(image, resize), crop)

    images, _ = _image_pipeline(
        source,
        transform,
        tf.TensorSpec([crop, crop, 3], tf.uint8),
        training=False,
        seed=0,
        shuffle_buffer=SHUFFLE_BUFFER,
        deterministic=deterministic,
        skip_counter=skip_counter,
        default_split=("validation", "test", "train"),
        max_pixels=max_pixels,
        min_side=resize,
    )
    return _batched_model_inputs(images, batch_size, drop_remainder, deterministic)


def decoded_images(source, resize=c.TRAIN_RESIZE, *, max_pixels=MAX_PIXELS):
    """Every readable image once, in source order, resized (for the ab prior).

    Args:
      source: as for `train_dataset` (a TFDS split defaults to train).
      resize: shorter side in pixels, or None to keep the decoded size.
      max_pixels: see `decode_image`.

    Returns:
      `(dataset, skipped)`: a `tf.data.Dataset` of uint8 `(H, W, 3)` images
      and the `SkipCounter` that records the files it skipped (complete once
      the dataset has been iterated to the end; `skipped.listed` is the number
      of files the source listed).
    """
    if resize is not None:
        resize = _check_size("resize", resize)

    @plain_tf
    def transform(image, rng_seed):
        del rng_seed
        return image if resize is None else resize_shorter_side(image, resize)

    return _image_pipeline(
        source,
        transform,
        tf.TensorSpec([None, None, 3], tf.uint8),
        training=False,
        seed=0,
        shuffle_buffer=SHUFFLE_BUFFER,
        deterministic=True,
        skip_counter=None,
        default_split=("train",),
        max_pixels=max_pixels,
        min_side=resize,
    )
