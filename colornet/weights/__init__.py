"""Weights from outside: the authors' released files and the released models by name.

* `official.py`: the authors' `.pth` and `.caffemodel` files as a `Colorizer`.
* `pretrained.py`: released models by name (`eccv16_imagenet`, ...): sources,
  checksums, the cache; fetched, verified and converted on first use.
* `pth.py`: reading a PyTorch `.pth` file without PyTorch.
* `download.py`: one large file into the cache: resume, checksum, a lock.

Importing `pretrained` registers the released names as presets of
`Colorizer.from_preset` (the facade `colornet` does it for you). Public names are
imported on first use (`colornet.utils.exports`).
"""

from colornet.utils.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "import_official": "colornet.weights.official",
        "fetch": "colornet.weights.pretrained",
        "describe": "colornet.weights.pretrained",
        "model_path": "colornet.weights.pretrained",
        "is_pretrained_name": "colornet.weights.pretrained",
    },
)
