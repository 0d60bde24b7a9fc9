"""Writing TFRecord shards (`colornet prepare`), which `colornet.data.sources` reads back.

A shard holds `tf.train.Example` records with the features `image` (the encoded
file), `path`, `height` and `width`; the manifest `MANIFEST_NAME` (JSON) lists
the shards with their counts, the skipped files with the reason, and the
settings. It is written last, so a directory without it is incomplete.
"""

import dataclasses
import glob as pyglob
import json
import math
import os
import shutil
import sys
import time
import uuid

import numpy as np
import tensorflow as tf

from colornet.constants import IMAGES_PER_SHARD, PREPARE_JPEG_QUALITY
from colornet.data.images import MAX_PIXELS, decode_scaled, decode_with_size, plain_tf
from colornet.data.pipelines import SkipCounter, _check_size, _decode_skipping, resize_shorter_side
from colornet.data.sources import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    _scheme,
    _tf_path,
    check_filesystem,
    list_image_files,
)
from colornet.utils.console import progress_bar
from colornet.utils.errors import ColornetError
from colornet.utils.files import hidden_stem

SHARD_PATTERN = "images-{index:05d}-of-{count:05d}.tfrecord"


@dataclasses.dataclass(frozen=True)
class PrepareSummary:
    """What `prepare` wrote.

    Attributes:
      out_dir: the finished directory.
      shards: `((file name, images), ...)` in shard order.
      images: images written.
      skipped: `((path, reason), ...)` for files that could not be read.
      seconds: wall time.
    """

    out_dir: str
    shards: tuple
    images: int
    skipped: tuple
    seconds: float


def _error_reason(error):
    text = getattr(error, "message", None) or str(error)
    text = text.split("}}")[-1].strip()  # drop TF's "{{function_node ...}}" prefix
    text = text.split(" [Op:")[0]
    return text.splitlines()[0] if text else type(error).__name__


def _skip_reason(path, max_pixels):
    try:
        decode_scaled(tf.io.read_file(_tf_path(path)), max_pixels)
    except (tf.errors.OpError, ValueError) as error:
        return _error_reason(error)
    return "could not be read or decoded"


def _split_dir(path):
    path = path.rstrip("/")
    if _scheme(path):
        parent, _, name = path.rpartition("/")
        return parent, name
    path = os.path.abspath(path)
    return os.path.dirname(path), os.path.basename(path)


def _is_nonempty_dir_or_file(path):
    if not tf.io.gfile.exists(path):
        return False
    return not tf.io.gfile.isdir(path) or bool(tf.io.gfile.listdir(path))


def _write_json(path, value):
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(value, indent=1) + "\n")


def _publish(tmp, out_dir, shard_names, overwrite):
    """Moves the finished set from `tmp` to `out_dir` so it appears complete at once."""
    parent, name = _split_dir(out_dir)
    if not _scheme(out_dir):
        old = None
        if _is_nonempty_dir_or_file(out_dir):
            old = os.path.join(
                parent, f"{hidden_stem(name)}.old-{uuid.uuid4().hex[:8]}"
            )
            os.rename(out_dir, old)
        elif os.path.isdir(out_dir):
            os.rmdir(out_dir)
        os.rename(tmp, out_dir)  # atomic on one file system
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return
    # Object stores cannot rename a directory atomically: move the shards, then
    # the manifest last, which is what makes the set read as complete.
    if tf.io.gfile.exists(out_dir) and overwrite:
        manifest = tf.io.gfile.join(out_dir, MANIFEST_NAME)
        if tf.io.gfile.exists(manifest):
            tf.io.gfile.remove(manifest)
        tf.io.gfile.rmtree(out_dir)
    tf.io.gfile.makedirs(out_dir)
    for shard in shard_names:
        tf.io.gfile.rename(
            tf.io.gfile.join(tmp, shard),
            tf.io.gfile.join(out_dir, shard),
            overwrite=True,
        )
    tf.io.gfile.rename(
        tf.io.gfile.join(tmp, MANIFEST_NAME),
        tf.io.gfile.join(out_dir, MANIFEST_NAME),
        overwrite=True,
    )
    tf.io.gfile.rmtree(tmp)


def _bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def prepare(
    source,
    out_dir,
    shards=None,
    *,
    resize=None,
    seed=0,
    max_pixels=MAX_PIXELS,
    overwrite=False,
    verbose=1,
):
    """Packs image files into TFRecord shards that `train_dataset` / `eval_dataset` read.

    Each image is decoded once to check it; unreadable ones are skipped and
    listed in the manifest with the reason. By default a record holds the
    file's original bytes (lossless, any later resize possible). With
    `resize`, images whose shorter side exceeds it are downscaled to it and
    re-encoded as JPEG quality 95, which makes shards of large photographs
    several times smaller and faster to decode; smaller images keep their
    bytes. Files are assigned to shards in an order shuffled with `seed`, so
    every shard mixes the whole source.

    The output appears atomically: shards and the manifest (`MANIFEST_NAME`,
    JSON: shard files and counts, skipped files, settings) are written into a
    hidden temporary directory beside `out_dir`, the manifest last, and the
    directory is renamed to `out_dir` at the end. A killed run leaves only
    that hidden `.NAME.partial-*` directory (safe to delete), which no
    pipeline reads as complete. On gs://, where directories cannot be renamed,
    the shards are moved first and the manifest last.

    Args:
      source: image folder / glob / `.txt` list / list of these.
      out_dir: directory to create (local or gs://).
      shards: number of shard files; None for one per 1024 images.
      resize: None to store original bytes, or a shorter side in pixels.
      seed: seed of the file order.
      max_pixels: see `decode_image`.
      overwrite: replace an existing non-empty `out_dir`.
      verbose: 1 shows a progress bar, 0 nothing.

    Returns:
      A `PrepareSummary`.
    """
    start = time.time()
    out_dir = os.fspath(out_dir).rstrip("/")
    check_filesystem(out_dir)
    if resize is not None:
        resize = _check_size("resize", resize)
    if shards is not None:
        shards = _check_size("shards", shards)
    if _is_nonempty_dir_or_file(out_dir) and not overwrite:
        raise ColornetError(
            f"{out_dir} already exists and is not empty; choose another output or overwrite it"
        )
    paths = list_image_files(source)
    total = len(paths)
    shards = shards or max(1, math.ceil(total / IMAGES_PER_SHARD))
    ordered = [paths[i] for i in np.random.default_rng(seed).permutation(total)]
    position = {path: i for i, path in enumerate(ordered)}
    names = [SHARD_PATTERN.format(index=i, count=shards) for i in range(shards)]

    @plain_tf
    def load(key, path, rng_seed):
        del key, rng_seed
        raw = tf.io.read_file(path)
        image, height, width = decode_with_size(raw, max_pixels, resize)
        if resize is None:
            shape = tf.shape(image, out_type=tf.int64)
            return raw, shape[0], shape[1], path

        def shrink():
            small = resize_shorter_side(image, resize)
            shape = tf.shape(small, out_type=tf.int64)
            return (
                tf.io.encode_jpeg(small, quality=PREPARE_JPEG_QUALITY),
                shape[0],
                shape[1],
            )

        encoded, out_h, out_w = tf.cond(
            tf.minimum(height, width) > resize, shrink, lambda: (raw, height, width)
        )
        return encoded, out_h, out_w, path

    spec = (
        tf.TensorSpec([], tf.string),
        tf.TensorSpec([], tf.int64),
        tf.TensorSpec([], tf.int64),
        tf.TensorSpec([], tf.string),
    )
    counter = SkipCounter()
    counter._attach(total)
    files = tf.data.Dataset.from_tensor_slices([_tf_path(p) for p in ordered])
    rng = tf.data.Dataset.random(seed=seed).batch(2)
    dataset = tf.data.Dataset.zip((files, rng)).map(lambda p, r: (p, p, r))
    dataset = _decode_skipping(
        dataset, load, spec, counter, deterministic=True
    ).prefetch(8)

    parent, name = _split_dir(out_dir)
    if not _scheme(out_dir):
        leftovers = sorted(
            pyglob.glob(
                os.path.join(
                    parent, f"{pyglob.escape(hidden_stem(name))}.partial-*"
                )
            )
        )
        if leftovers and verbose:
            print(
                f"note: leftovers of interrupted runs (safe to delete): {', '.join(leftovers)}",
                file=sys.stderr,
            )
    tmp = f"{parent}/{hidden_stem(name)}.partial-{uuid.uuid4().hex[:8]}"
    tf.io.gfile.makedirs(tmp)
    counts = [0] * shards
    try:
        writer, current = None, -1
        with progress_bar(total, verbose) as progbar:
            try:
                for encoded, height, width, path in dataset.as_numpy_iterator():
                    pos = position[os.fsdecode(path)]
                    shard = pos * shards // total
                    while current < shard:
                        if writer is not None:
                            writer.close()
                        current += 1
                        writer = tf.io.TFRecordWriter(tf.io.gfile.join(tmp, names[current]))
                    example = tf.train.Example(
                        features=tf.train.Features(
                            feature={
                                "image": _bytes_feature(encoded),
                                "path": _bytes_feature(path),
                                "height": _int_feature(height),
                                "width": _int_feature(width),
                            }
                        )
                    )
                    writer.write(example.SerializeToString())
                    counts[shard] += 1
                    if progbar is not None and (pos % 32 == 0 or pos == total - 1):
                        progbar.update(pos + 1)
            except tf.errors.InvalidArgumentError:
                if counter.count >= total:
                    raise ColornetError(
                        f"none of the {total} images could be read or decoded"
                    ) from None
                raise
            if progbar is not None:
                progbar.update(total)
        while current < shards - 1:  # shards left empty by skipped files
            if writer is not None:
                writer.close()
            current += 1
            writer = tf.io.TFRecordWriter(tf.io.gfile.join(tmp, names[current]))
        writer.close()
        skipped = tuple((p, _skip_reason(p, max_pixels)) for p in counter.paths)
        images = sum(counts)
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source": [os.fspath(s) for s in source]
            if isinstance(source, (list, tuple))
            else os.fspath(source),
            "images": images,
            "content": "original file bytes"
            if resize is None
            else f"shorter side > {resize} downscaled to {resize}, JPEG quality {PREPARE_JPEG_QUALITY}",
            "resize": resize,
            "seed": seed,
            "max_pixels": max_pixels,
            "shards": [{"file": n, "count": k} for n, k in zip(names, counts)],
            "skipped": [{"path": p, "reason": r} for p, r in skipped],
        }
        _write_json(
            tf.io.gfile.join(tmp, MANIFEST_NAME), manifest
        )  # last: marks completion
        _publish(tmp, out_dir, names, overwrite)
    except BaseException:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.rmtree(tmp)
        raise
    return PrepareSummary(
        out_dir=out_dir if _scheme(out_dir) else os.path.abspath(out_dir),
        shards=tuple(zip(names, counts)),
        images=images,
        skipped=skipped,
        seconds=time.time() - start,
    )
