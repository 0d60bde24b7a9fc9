"""Images in, `(l_raw, ab)` out: everything between files on disk and the network.

* `colornet.data.images`: the one place bytes become pixels (`decode_image`, in
  TF ops, for pipelines and the serving graph; `read_image` for one file on the
  host, EXIF orientation applied).
* `colornet.data.sources`: what a source is and how it is listed: folders, globs,
  `.txt` lists, `colornet prepare` folders, `tfds:NAME[:SPLIT]`, `gs://`.
* `colornet.data.pipelines`: the tf.data pipelines for training, evaluation and the
  prior (resize, crop, flip, Lab, every 4th pixel's ab), skipping unreadable files.
* `colornet.data.tfrecords`: writing TFRecord shards (`prepare`).

The names below are the package's public interface; import them from here.
"""

from colornet.data.images import (
    MAX_PIXELS,
    apply_orientation,
    as_rgb,
    decode_image,
    jpeg_exif_orientation,
    read_image,
)
from colornet.data.pipelines import (
    SkipCounter,
    center_crop,
    decoded_images,
    eval_dataset,
    random_crop_flip,
    resize_shorter_side,
    to_model_inputs,
    train_dataset,
)
from colornet.data.sources import (
    IMAGE_EXTENSIONS,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    SHUFFLE_BUFFER,
    check_filesystem,
    count_images,
    list_image_files,
)
from colornet.data.tfrecords import (
    IMAGES_PER_SHARD,
    PREPARE_JPEG_QUALITY,
    SHARD_PATTERN,
    PrepareSummary,
    prepare,
)

__all__ = [
    "IMAGES_PER_SHARD",
    "IMAGE_EXTENSIONS",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "MAX_PIXELS",
    "PREPARE_JPEG_QUALITY",
    "SHARD_PATTERN",
    "SHUFFLE_BUFFER",
    "PrepareSummary",
    "SkipCounter",
    "apply_orientation",
    "as_rgb",
    "center_crop",
    "check_filesystem",
    "count_images",
    "decode_image",
    "decoded_images",
    "eval_dataset",
    "jpeg_exif_orientation",
    "list_image_files",
    "prepare",
    "random_crop_flip",
    "read_image",
    "resize_shorter_side",
    "to_model_inputs",
    "train_dataset",
]
