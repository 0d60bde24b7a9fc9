"""Finding images: the sources every pipeline, `prepare` and `colornet colorize` read.

A source is:

* image files: a directory (searched recursively), a glob pattern, a `.txt` file
  listing one image path per line, or a list/tuple of these (`list_image_files`).
  Extensions .jpg .jpeg .png .bmp .gif .webp, in any case. Names starting with "."
  (hidden files and folders, macOS `._*` forks, interrupted `prepare` output) are
  ignored.
* a TFRecord directory written by `prepare` (`colornet prepare`), recognised by
  its manifest `MANIFEST_NAME`, which `prepare` writes last.
* `"tfds:NAME[:SPLIT]"`: a TensorFlow Datasets image data set (optional
  dependency, imported only then).

Paths may be local or `gs://` (TensorFlow reads it natively through
`tf.io.gfile`). Other schemes such as `s3://` need tensorflow-io's file-system
plugins, which do not load under TF 2.21: such a path fails early with one
`ColornetError` that says so and what works.

Opening a source (`_open_source`) gives one pass of `(key, payload)` string
pairs: a path to read, or (TFRecords, TFDS) the encoded image itself.
"""

import dataclasses
import glob as pyglob
import json
import os

import tensorflow as tf

from colornet.data.images import plain_tf
from colornet.utils.errors import ColornetError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp")

# Written last by `prepare`: a TFRecord directory without it is incomplete.
MANIFEST_NAME = "colornet_tfrecords.json"
MANIFEST_FORMAT = "colornet-tfrecords"
MANIFEST_VERSION = 1

# Records shuffled in memory when training from TFRecords or TFDS (the shard
# order is shuffled too). 1024 photographs of ~100 kB each is ~100 MB.
SHUFFLE_BUFFER = 1024

_RECORD_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "path": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "height": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "width": tf.io.FixedLenFeature([], tf.int64, default_value=0),
}


# ----------------------------------------------------------------------------
# Listing files and checking file systems.


def _scheme(path):
    return path.split("://", 1)[0].lower() if "://" in path else ""


def _tf_path(path):
    """`path` as bytes for TensorFlow's file ops: a local name that is not valid UTF-8
    (which Python holds as lone surrogates, PEP 383) reaches the OS unchanged, where a
    str would fail to encode."""
    return os.fsencode(path)


def _registered_schemes():
    return set(tf.io.gfile.get_registered_schemes())


def check_filesystem(path):
    """Raises `ColornetError` when TensorFlow cannot read `path`'s URL scheme.

    Local paths and `gs://` work natively. Any other scheme (`s3://`, `hdfs://`,
    `az://`, ...) needs tensorflow-io, which is imported here lazily; it does
    not load under TF 2.21, and the error then says so and what works.
    """
    path = os.fspath(path)
    scheme = _scheme(path)
    if not scheme or scheme in _registered_schemes():
        return
    try:
        import tensorflow_io  # noqa: F401  (registers its file systems on import)
    except ImportError:
        reason = (
            "tensorflow-io, which adds it, is not installed (and its last release, "
            f"0.37, is built for TF 2.16: its file-system plugins do not load under TF {tf.__version__})"
        )
    except Exception as error:  # noqa: BLE001 (a broken binary raises NotFoundError, OSError, ...)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = f"tensorflow-io is installed but failed to load ({type(error).__name__}: {first_line})"
    else:
        if scheme in _registered_schemes():
            return
        reason = (
            "tensorflow-io is installed but its file-system plugins did not load "
            f"(it is built for an older TensorFlow than {tf.__version__})"
        )
    raise ColornetError(
        f"cannot read {path}: TensorFlow {tf.__version__} has no file system for {scheme}:// "
        f"built in, and {reason}. Local paths and gs:// work natively; otherwise copy the "
        "data to a local disk (or a gs:// bucket) first."
    )


def _has_glob(path):
    return any(ch in path for ch in "*?[")


def _is_image_name(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _absolute(path):
    return path if _scheme(path) else os.path.abspath(path)


def _walk(directory):
    found = []
    if _scheme(directory):
        for root, dirs, files in tf.io.gfile.walk(directory):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [
                tf.io.gfile.join(root, f)
                for f in files
                if not f.startswith(".") and _is_image_name(f)
            ]
        return found
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [
            os.path.join(root, f)
            for f in files
            if not f.startswith(".") and _is_image_name(f)
        ]
    return found


def _no_images_error(directory):
    hint = ""
    try:
        names = tf.io.gfile.listdir(_tf_path(directory))
    except tf.errors.OpError:
        names = []
    if any(os.fsdecode(n).endswith(".tfrecord") for n in names):
        hint = (
            f"; it holds .tfrecord shards but no {MANIFEST_NAME}, so it is not a complete "
            "`colornet prepare` output (interrupted?): run prepare again"
        )
    extensions = " ".join(IMAGE_EXTENSIONS)
    return ColornetError(f"no image files ({extensions}) found under {directory}{hint}")


def _read_list_file(list_path):
    if _scheme(list_path):
        with tf.io.gfile.GFile(list_path, "r") as f:
            lines = f.read().splitlines()
    else:  # listed names that are not UTF-8 come back as the same bytes
        with open(list_path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    paths, missing = [], []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = _absolute(line)
        if not _scheme(path) and not os.path.isfile(path):
            missing.append(f"line {number}: {line}")
        paths.append(path)
    if missing:
        examples = "; ".join(missing[:3])
        raise ColornetError(
            f"{len(missing)} of the paths listed in {list_path} are not files "
            f"(relative paths are taken from the current directory {os.getcwd()}): {examples}"
        )
    if not paths:
        raise ColornetError(
            f"{list_path} lists no paths (blank lines and # comments are ignored)"
        )
    for scheme_path in {_scheme(p): p for p in paths if _scheme(p)}.values():
        check_filesystem(scheme_path)
    return paths


def _list_one(item):
    check_filesystem(item)
    if not tf.io.gfile.exists(_tf_path(item)):
        if not _has_glob(item):
            raise ColornetError(f"no such file or directory: {item}")
        matches = (
            tf.io.gfile.glob(item)
            if _scheme(item)
            else pyglob.glob(item, recursive=True)
        )
        if not matches:
            raise ColornetError(f"nothing matches the pattern {item}")
        found = []
        for match in matches:
            if tf.io.gfile.isdir(_tf_path(match)):
                found += _walk(match)
            elif _is_image_name(match):
                found.append(match)
        if not found:
            raise ColornetError(f"no image files match the pattern {item}")
        return [_absolute(p) for p in found]
    if tf.io.gfile.isdir(_tf_path(item)):
        found = _walk(item)
        if not found:
            raise _no_images_error(item)
        return [_absolute(p) for p in found]
    if item.lower().endswith(".txt"):
        return _read_list_file(item)
    if _is_image_name(item):
        return [_absolute(item)]
    raise ColornetError(
        f"{item} is neither an image file ({' '.join(IMAGE_EXTENSIONS)}), a directory, "
        "a glob pattern nor a .txt list of paths"
    )


def list_image_files(source):
    """Lists image files: sorted, without duplicates, as absolute paths (URLs as given).

    Args:
      source: a directory (searched recursively; hidden names skipped), a glob
        pattern (`**` allowed for local paths), a `.txt` file with one image
        path per line (relative paths resolved against the current directory;
        blank lines and `#` comments ignored; missing local files are an
        error), an image file, or a list/tuple of any of these.

    Raises:
      ColornetError: a path does not exist, nothing is found, or the URL scheme
        cannot be read (see `check_filesystem`).
    """
    items = list(source) if isinstance(source, (list, tuple)) else [source]
    if not items:
        raise ColornetError("no image source given (an empty list)")
    found = set()
    for item in items:
        found.update(_list_one(os.fspath(item)))
    return sorted(found)



# ----------------------------------------------------------------------------
# Sources.


@dataclasses.dataclass(frozen=True)
class _Source:
    dataset: tf.data.Dataset  # one pass of (key, payload) string pairs
    size: int | None  # None only for TFDS splits without metadata
    encoded: bool  # payload holds the image bytes (else a path to read)


def _read_manifest(directory):
    path = tf.io.gfile.join(directory, MANIFEST_NAME)
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            manifest = json.load(f)
    except (ValueError, tf.errors.OpError) as error:
        raise ColornetError(f"cannot read the manifest {path}: {error}") from None
    if manifest.get("format") != MANIFEST_FORMAT or "shards" not in manifest:
        raise ColornetError(f"{path} is not a colornet TFRecord manifest")
    return manifest


def _is_tfrecord_dir(source):
    return (
        isinstance(source, (str, os.PathLike))
        and not _has_glob(os.fspath(source))
        and tf.io.gfile.isdir(_tf_path(source))
        and tf.io.gfile.exists(_tf_path(os.path.join(os.fspath(source), MANIFEST_NAME)))
    )


def _tfrecord_source(directory, shuffle, seed, shuffle_buffer, deterministic):
    manifest = _read_manifest(directory)
    shards = [
        tf.io.gfile.join(directory, s["file"])
        for s in manifest["shards"]
        if s["count"] > 0
    ]
    for shard in shards:
        if not tf.io.gfile.exists(shard):
            raise ColornetError(f"{shard}, listed in the manifest, is missing")
    size = sum(s["count"] for s in manifest["shards"])
    if not size:
        raise ColornetError(f"{directory} holds no images")
    files = tf.data.Dataset.from_tensor_slices(shards)
    if shuffle:
        files = files.shuffle(len(shards), seed=seed, reshuffle_each_iteration=True)
    records = files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(shards), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )

    @plain_tf
    def parse(record):
        example = tf.io.parse_single_example(record, _RECORD_FEATURES)
        return example["path"], example["image"]

    records = records.map(
        parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
    )
    if shuffle:
        records = records.shuffle(
            shuffle_buffer, seed=seed, reshuffle_each_iteration=True
        )
    return _Source(records, size, encoded=True)


def _tfds_source(spec, shuffle, seed, shuffle_buffer, default_split):
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ColornetError(
            f"{spec}: TensorFlow Datasets is not installed (pip install tensorflow-datasets)"
        ) from None
    name, _, split = spec[len("tfds:") :].partition(":")
    if not name:
        raise ColornetError(f"{spec}: expected tfds:NAME or tfds:NAME:SPLIT")
    try:
        builder = tfds.builder(name)
    except Exception as error:  # noqa: BLE001 (tfds raises its own error types)
        raise ColornetError(f"{spec}: {error}") from None
    features = builder.info.features
    image_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    if not image_keys:
        raise ColornetError(f"{spec}: data set {name} has no image feature")
    image_key = "image" if "image" in image_keys else image_keys[0]
    try:
        builder.download_and_prepare()
    except Exception as error:  # noqa: BLE001 (tfds raises its own error types)
        raise ColornetError(f"{spec}: {error}") from None
    known = builder.info.splits  # empty only when metadata is missing (e.g. mocked)
    if not split:
        split = next(
            (s for s in default_split if s in known),
            None if known else default_split[0],
        )
        if split is None:
            raise ColornetError(
                f"{spec}: no split named {' or '.join(default_split)}; give one"
            )
    try:
        dataset = builder.as_dataset(
            split=split,
            shuffle_files=shuffle,
            decoders={image_key: tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(shuffle_seed=seed, add_tfds_id=True),
        )
        size = known[split].num_examples if known else None
    except Exception as error:  # noqa: BLE001 (tfds raises its own error types)
        raise ColornetError(f"{spec}: {error}") from None
    dataset = dataset.map(lambda ex: (ex["tfds_id"], ex[image_key]))
    if shuffle:
        dataset = dataset.shuffle(
            shuffle_buffer, seed=seed, reshuffle_each_iteration=True
        )
    return _Source(dataset, size, encoded=True)


def _open_source(
    source, *, shuffle, seed, shuffle_buffer, deterministic, default_split
):
    if isinstance(source, str) and source.startswith("tfds:"):
        return _tfds_source(source, shuffle, seed, shuffle_buffer, default_split)
    if isinstance(source, (str, os.PathLike)):
        check_filesystem(os.fspath(source))
    if _is_tfrecord_dir(source):
        return _tfrecord_source(
            os.fspath(source), shuffle, seed, shuffle_buffer, deterministic
        )
    paths = list_image_files(source)
    files = tf.data.Dataset.from_tensor_slices([_tf_path(p) for p in paths])
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return _Source(files.map(lambda p: (p, p)), len(paths), encoded=False)


def count_images(source):
    """Number of images `source` lists (readable or not): files, manifest count or TFDS split size.

    Cheap: lists files or reads the manifest / TFDS metadata, decodes nothing.
    """
    size = _open_source(
        source,
        shuffle=False,
        seed=0,
        shuffle_buffer=SHUFFLE_BUFFER,
        deterministic=True,
        default_split=("train",),
    ).size
    if size is None:
        raise ColornetError(
            f"{source}: the number of images is not recorded in its metadata"
        )
    return size
