"""Images in, `(l_raw, ab)` out: everything between files on disk and the network.

* `colornet.data.images`: the one place bytes become pixels (`decode_image`, in
  TF ops, for pipelines and the serving graph; `read_image` for one file on the
  host, EXIF orientation applied).
* `colornet.data.sources`: what a source is and how it is listed: folders, globs,
  `.txt` lists, `colornet prepare` folders, `tfds:NAME[:SPLIT]`, `gs://`.
* `colornet.data.pipelines`: the tf.data pipelines for training, evaluation and the
  prior (resize, crop, flip, Lab, every 4th pixel's ab), skipping unreadable files.
* `colornet.data.tfrecords`: writing TFRecord shards (`prepare`).

The names below are the package's public interface, imported on first use; the
modules' constants (`sources.MANIFEST_NAME`, `sources.SHUFFLE_BUFFER`, ...) are read
from their modules, and the pixel limit from `colornet.constants.MAX_PIXELS`.
"""

from colornet.utils.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "apply_orientation": "colornet.data.images",
        "as_rgb": "colornet.data.images",
        "decode_image": "colornet.data.images",
        "jpeg_exif_orientation": "colornet.data.images",
        "read_image": "colornet.data.images",
        "SkipCounter": "colornet.data.pipelines",
        "center_crop": "colornet.data.pipelines",
        "decoded_images": "colornet.data.pipelines",
        "eval_dataset": "colornet.data.pipelines",
        "random_crop_flip": "colornet.data.pipelines",
        "resize_shorter_side": "colornet.data.pipelines",
        "to_model_inputs": "colornet.data.pipelines",
        "train_dataset": "colornet.data.pipelines",
        "check_filesystem": "colornet.data.sources",
        "count_images": "colornet.data.sources",
        "list_image_files": "colornet.data.sources",
        "PrepareSummary": "colornet.data.tfrecords",
        "prepare": "colornet.data.tfrecords",
    },
)
