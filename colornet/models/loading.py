"""Loading a colorizer from what users pass as `--model`: a `.keras` file or a workdir."""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from colornet.utils import files
from colornet.utils.errors import ColornetError


def is_workdir(path):
    return os.path.isfile(os.path.join(path, "config.json")) and os.path.isdir(
        os.path.join(path, "checkpoints")
    )


def load_colorizer(path):
    """Loads a Keras `Colorizer` from a `.keras` file, a training workdir or a compact
    `.npz` weights file (`save_compact`).

    A workdir gives its latest complete checkpoint (the one TF's checkpoint index
    names; a save that was interrupted is never listed there). `.keras` files load
    in safe mode: no code in a file is ever executed.

    Raises:
      ColornetError: for a missing path, a workdir without checkpoints, or a file
        that is not a colornet model.
    """
    from colornet.models.colorizer import Colorizer

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ColornetError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        if not is_workdir(path):
            raise ColornetError(
                f"{path}: not a training workdir (no config.json and checkpoints/); "
                "give a .keras file, a workdir, or (where accepted) a SavedModel or .tflite"
            )
        latest = tf.train.latest_checkpoint(os.path.join(path, "checkpoints"))
        if latest is None:
            raise ColornetError(f"{path}: the workdir has no complete checkpoint yet")
        config_path = os.path.join(path, "config.json")
        try:
            with open(config_path) as f:
                train_config = json.load(f)
            preset = train_config["preset"]
            overrides = {"hints": True} if train_config.get("hints") else {}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ColornetError(f"{config_path}: not a training config ({error!r})") from None
        model = Colorizer.from_preset(preset, **overrides)
        model.model_config = model.model_config.replace(
            rebalancing_weights=_workdir_weights(train_config.get("prior"))
        )
        try:
            tf.train.Checkpoint(model=model).restore(latest).expect_partial()
        except (tf.errors.OpError, ValueError, AssertionError) as error:
            message = getattr(error, "message", None) or str(error)
            raise ColornetError(f"{latest}: cannot restore the checkpoint ({message})") from None
        return model
    if path.endswith(".npz"):
        return _load_compact(path)
    if not path.endswith(".keras"):
        raise ColornetError(f"{path}: expected a .keras file, a .npz weights file or a training workdir")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad archive.
        raise ColornetError(f"{path}: not a loadable colornet model ({error})") from None
    if not isinstance(model, Colorizer):
        raise ColornetError(f"{path}: holds a {type(model).__name__}, not a colornet Colorizer")
    return model


def _workdir_weights(prior):
    """The rebalancing weights of a workdir's recorded `prior` (None: the package's
    default), or None if its prior file can no longer be read."""
    from colornet import prior as prior_lib

    try:
        return tuple(prior_lib.rebalancing_weights_of("default" if prior is None else prior))
    except ColornetError:
        return None


def save_compact(model, path, dtype="float16"):
    """Saves a colorizer's config and weights (float16 by default) as a `.npz` file.

    Half the size of a float32 `.keras` file, for shipping a model inside the
    package; weights are cast back to the model's dtype when loaded. An array with
    a value that `dtype` cannot hold (float16 ends at 65504; a batch norm's moving
    variance can exceed it) is stored in float32 instead, as it is. Written
    atomically. Only arrays and JSON: loading executes nothing.
    """
    path = os.fspath(path)
    arrays = {f"w{i:05d}": _narrowed(w, dtype) for i, w in enumerate(model.get_weights())}
    meta = {"format": "colornet-compact", "version": 1, "model_config": model.model_config.to_dict()}
    with files.atomic_path(path, ".npz") as tmp:
        np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)


def _narrowed(array, dtype):
    """`array` cast to `dtype`, or unchanged where that would overflow to infinity."""
    with np.errstate(over="ignore"):
        narrow = array.astype(dtype)
    if np.array_equal(np.isfinite(narrow), np.isfinite(array)):
        return narrow
    return array


def _load_compact(path):
    from colornet.models.colorizer import Colorizer
    from colornet.models.config import ModelConfig

    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            weights = [f[k] for k in sorted(k for k in f.files if k.startswith("w"))]
        if meta.get("format") != "colornet-compact":
            raise ValueError("no colornet-compact marker")
        model = Colorizer(ModelConfig.from_dict(meta["model_config"]))
        model.set_weights([w.astype(np.float32) for w in weights])
    # A meta or model_config that is JSON but not an object: AttributeError, TypeError.
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ColornetError(f"{path}: not a colornet weights file ({error})") from None
    return model
