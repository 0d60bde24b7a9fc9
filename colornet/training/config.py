"""The configuration of a training run: `TrainConfig` and the choices of its fields.

Plain Python, importable without TensorFlow, so that the command line shows these
choices and defaults in its help (`colornet train --help`) from this one source.
"""

import dataclasses
import typing
import warnings

from colornet import constants as c

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "bfloat16")  # bfloat16: Keras' mixed_bfloat16 policy, weights float32
RECALIBRATE_IMAGES = 256  # photos batch-norm statistics are recomputed on (recalibrate.py)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; written to `workdir/config.json`.

    Defaults are the paper's solver and data (Sec. 3, release `solver.prototxt`).
    """

    data: str
    workdir: str
    val_data: str | None = None  # source of the fixed sample batch; None: `data`
    preset: str | None = None  # None: the network of `init_from`, else "eccv16"
    hints: bool = False  # the preset with user-hint inputs, trained on simulated hints
    strategy: str = "default"
    precision: str = "float32"
    steps: int | None = None  # total optimiser steps; exclusive with `epochs`
    epochs: int | None = None  # passes over the training images
    batch_size: int = 40  # global, summed over replicas
    resize: int = c.TRAIN_RESIZE  # shorter side before the random crop
    crop: int = c.TRAIN_CROP
    prior: str | None = None  # None: package prior; "uniform": no rebalancing; or .npz
    k: int = c.SOFT_ENCODE_K
    # At step 0 ("step"), the peak ("cosine", "wsd"). None: the paper's 3.16e-5 from
    # scratch, a tenth of it when starting from another model's weights (`init_from`).
    learning_rate: float | None = None
    lr_schedule: str = "step"  # "step" (the paper's), "cosine" or "wsd": see SolverConfig
    lr_decay_every: int = 215_000  # "step" only
    lr_decay: float = 0.316  # "step" only
    warmup_steps: int = 0  # "cosine" and "wsd"
    decay_start: int | None = None  # "wsd": step where the linear decay to 0 at `steps` begins
    ema: float = 0.0  # momentum of a moving average of the weights (0: none)
    recalibrate_images: int = RECALIBRATE_IMAGES  # precise batch-norm statistics at the end (0: skip)
    # A new run starts from the weights alone of a released model (a name of `colornet
    # pretrained`, e.g. "eccv16_imagenet": fetched and converted on first use) or of a
    # model file (.npz, .keras), at step 0 with a fresh optimizer: fine-tuning, or going
    # on from a committed snapshot. Or from a checkpoint (prefix, or a workdir: its
    # latest), step and optimizer state included, e.g. to finish a long "wsd" run with a
    # decay branch. The network (`preset`) follows what it names.
    init_from: str | None = None
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 50
    sample_every: int = 1000
    num_samples: int = 6
    seed: int = 0
    verbose: int = 1

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.precision == "mixed_bfloat16":  # its name before it was bfloat16, as in export and video
            warnings.warn('precision="mixed_bfloat16" is deprecated: its name is now "bfloat16"',
                          DeprecationWarning, stacklevel=3)
            object.__setattr__(self, "precision", "bfloat16")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of steps and epochs")
        for name in ("steps", "epochs", "batch_size", "checkpoint_every", "log_every", "sample_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.crop < 8 or self.crop % c.OUTPUT_STRIDE:
            raise ValueError(f"crop must be a multiple of {c.OUTPUT_STRIDE} >= 8, got {self.crop}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_overrides(cls, base, pairs):
        """Applies `key=value` strings (the CLI's `--set`), parsed by field type."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        changes = {}
        for pair in pairs:
            key, sep, text = pair.partition("=")
            if not sep or key not in fields:
                raise ValueError(f"--set expects key=value with key one of {sorted(fields)}, got {pair!r}")
            kinds = typing.get_args(fields[key].type) or (fields[key].type,)
            if text.lower() in ("none", "null"):
                changes[key] = None
            elif bool in kinds:
                if text.lower() not in ("1", "true", "yes", "0", "false", "no"):
                    raise ValueError(f"--set {key}: expected true or false, got {text!r}")
                changes[key] = text.lower() in ("1", "true", "yes")
            else:
                kind = next((k for k in (int, float) if k in kinds), str)
                try:
                    changes[key] = kind(text)
                except ValueError:
                    expected = {int: "an int", float: "a number"}[kind]
                    raise ValueError(f"--set {key}: expected {expected}, got {text!r}") from None
        return base.replace(**changes)
