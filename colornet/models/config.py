"""The network's configuration: Table 4 of the paper plus the choices a port must make.

Where the Caffe release and Keras differ (padding of stride-2 convolutions, batch
norm settings, input scaling), the choice is a field here, defaulting to the release.
"""

import dataclasses
import math

from colornet import constants as c

# Table 4: output channels and 3x3 convolutions of blocks 1-8. Block 8's count
# includes its 4x4 transposed convolution.
TABLE4_FILTERS = (64, 128, 256, 512, 512, 512, 512, 256)
TABLE4_CONVS = (2, 2, 3, 3, 3, 3, 3, 3)
TABLE4_DILATIONS = (1, 1, 1, 1, 2, 2, 1)  # blocks 1-7
NUM_BLOCKS = 8
# The last convolution of blocks 1-3 has stride 2 and block 8 upsamples by 2: the
# logits are at 1/4 of the input resolution.
DOWNSAMPLING_BLOCKS = 3

# Release `colorization_train_val_v2.prototxt` uses Caffe's BatchNorm defaults:
# moving_average_fraction 0.999 and eps 1e-5 (Keras defaults: 0.99 and 1e-3).
CAFFE_BN_MOMENTUM = 0.999
CAFFE_BN_EPSILON = 1e-5
# Release `train/solver.prototxt`: coupled L2 decay, on biases too (decay_mult 1).
CAFFE_WEIGHT_DECAY = 1e-3

PADDINGS = ("symmetric", "same")
NORM_POSITIONS = ("after_relu", "before_relu")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What `Colorizer` builds. Defaults are the paper's network as released (Caffe).

    Args:
      filters: output channels of blocks 1-8 (Table 4: 64, 128, 256, 512 x 4, 256).
      convs: convolutions per block 1-8, each >= 1. The last one of blocks 1-3 has
        stride 2; block 8 starts with the 4x4 stride-2 transposed convolution.
      dilations: dilation of the 3x3 convolutions of blocks 1-7 (Table 4: 2 in
        blocks 5 and 6).
      padding: how the stride-2 convolutions pad. "symmetric" pads one pixel on
        every side, as Caffe (`pad: 1`); needed for the release's weights to mean the
        same thing. "same" is Keras' padding, which on even sizes pads 0 before and
        1 after, shifting each stride-2 sampling grid by half an input pixel.
      l_center, l_scale: the network sees `(l_raw - l_center) / l_scale`. The Caffe
        release feeds L - 50 (scale 1); the PyTorch port (L - 50) / 100 (scale 100).
      norm_position: "after_relu" (the release: conv, ReLU, ..., BN) or
        "before_relu" (conv, BN, ReLU, the usual modern order) for the last
        convolution of blocks 1-7.
      norm_affine: learn a scale and shift in the batch norms. The release's have
        none (Caffe BatchNorm alone); the PyTorch port's are affine.
      norm_momentum: Keras momentum of the moving mean and variance. Caffe's
        moving_average_fraction is the same decay, 0.999; Caffe also divides by the
        accumulated weight (an unbiased start) where Keras starts at mean 0,
        variance 1, so Keras' statistics lag during the first few thousand steps.
        The PyTorch port's momentum 0.1 is Keras' 0.9.
      norm_epsilon: added to the variance; 1e-5 in Caffe and PyTorch.
      norm_synchronized: under a distribution strategy, compute the training batch
        statistics over the global batch (an all-reduce per batch norm per step), so
        every replica and worker keeps the same moving averages, as one device would.
        `colornet train` turns it on for the mirrored, multi_worker and tpu
        strategies; without a strategy it changes nothing.
      weight_decay: Caffe's coupled weight decay lambda (gradient lambda * w) on
        every convolution kernel and bias. Implemented as Keras L2 regularisers of
        factor lambda / 2, because Keras' L2(l) adds l * sum(w^2), whose gradient is
        2 * l * w. Batch-norm parameters are not decayed (decay_mult 0 in Caffe).
      shortcut: add to block 8's upsampled features a 3x3 convolution of block 2's
        output, which is at the same 1/4 resolution, before block 8's first ReLU.
        Not in the paper's network: the authors' follow-up (Zhang et al. 2017,
        "Real-Time User-Guided Image Colorization with Learned Deep Priors") adds
        such shortcuts so that the colours follow edges the 1/8-resolution middle
        blocks blur. The output, loss and decoding stay the paper's.
      undo_rebalancing: a record, not a layer: the fraction of the class
        rebalancing's effect that `colornet.training.recalibrate.undo_rebalancing` took out
        of the logits after training, by adding `-undo_rebalancing * log(w)` (w: the
        prior's rebalancing weights) to `conv8_313`'s bias. 0 for a model as
        trained; building a model from a config does not apply it, the weights hold it.
      hints: take user hints beside L, as the authors' follow-up (Zhang et al. 2017,
        Sec. 3.1): a second input `(B, H, W, 3)` (a, b in ab units and a mask, at the
        input resolution; `colornet.hints`), which a 3x3 convolution
        (`conv1_1hint`) adds to `conv1_1`'s output before its ReLU and, averaged
        over 4 x 4 blocks, another (`conv8_1hint`) to block 8's first convolution,
        a short path from a hint to the colours around it. Both have no bias and
        start at zero: with an all-zero hint map the network is the one without
        hints, so released or bundled weights start a hint model where they were.
      rebalancing_weights: a record, not a layer: the 313 class-rebalancing weights w
        of the loss the model was trained with (`colornet train` writes them, from
        its `prior`), which `undo_rebalancing` needs. None: not known (a model built
        from a preset, one trained before colornet recorded them, or the authors'
        ImageNet models, whose prior colornet does not ship).
      hint_spread: with `hints`, the share (0 to 1) of a pixel's colour distribution
        a hint takes where the pixel's last features match the hinted pixel's
        (`colornet.layers.HintSpread`: a hint colours its region, not a dot); 0 turns
        it off (the 2017 network's inputs alone). No weights: with no hint the
        logits are unchanged.
      hint_spread_temperature, hint_spread_threshold, hint_spread_radius: the
        spread's T (cosine similarity scale), s0 (the similarity below which a
        pixel ignores a hint) and R (a distance falloff in logits pixels; 0 none).
    """

    filters: tuple = TABLE4_FILTERS
    convs: tuple = TABLE4_CONVS
    dilations: tuple = TABLE4_DILATIONS
    padding: str = "symmetric"
    l_center: float = c.L_CENTER
    l_scale: float = 1.0
    norm_position: str = "after_relu"
    norm_affine: bool = False
    norm_momentum: float = CAFFE_BN_MOMENTUM
    norm_epsilon: float = CAFFE_BN_EPSILON
    norm_synchronized: bool = False
    weight_decay: float = CAFFE_WEIGHT_DECAY
    shortcut: bool = False
    undo_rebalancing: float = 0.0
    hints: bool = False
    rebalancing_weights: tuple | None = dataclasses.field(default=None, repr=False)
    # Chosen on half of val (docs/hints.md, "How far a hint reaches").
    hint_spread: float = 1.0
    hint_spread_temperature: float = 0.1
    hint_spread_threshold: float = 0.7
    hint_spread_radius: float = 16.0

    def __post_init__(self):
        for field, length in (("filters", NUM_BLOCKS), ("convs", NUM_BLOCKS), ("dilations", 7)):
            value = getattr(self, field)
            if isinstance(value, list):
                # A list from JSON or a user: store the hashable, immutable form.
                object.__setattr__(self, field, tuple(value))
                value = getattr(self, field)
            if (
                not isinstance(value, tuple)
                or len(value) != length
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
            ):
                raise ValueError(f"{field} must be {length} positive integers, got {value!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.norm_position not in NORM_POSITIONS:
            raise ValueError(
                f"norm_position must be one of {NORM_POSITIONS}, got {self.norm_position!r}"
            )
        if not self.l_scale > 0:
            raise ValueError(f"l_scale must be positive, got {self.l_scale!r}")
        if not 0.0 <= self.norm_momentum < 1.0:
            raise ValueError(f"norm_momentum must be in [0, 1), got {self.norm_momentum!r}")
        if not self.norm_epsilon > 0:
            raise ValueError(f"norm_epsilon must be positive, got {self.norm_epsilon!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0.0 <= self.undo_rebalancing <= 1.0:
            raise ValueError(f"undo_rebalancing must be in [0, 1], got {self.undo_rebalancing!r}")
        if self.rebalancing_weights is not None:
            try:
                weights = tuple(float(w) for w in self.rebalancing_weights)
            except (TypeError, ValueError):
                weights = ()
            if len(weights) != c.NUM_BINS or not all(math.isfinite(w) and w > 0 for w in weights):
                raise ValueError(f"rebalancing_weights must be {c.NUM_BINS} finite positive numbers or None")
            object.__setattr__(self, "rebalancing_weights", weights)
        if isinstance(self.hint_spread, bool) or not 0 <= self.hint_spread <= 1:
            raise ValueError(f"hint_spread must be in [0, 1], got {self.hint_spread!r}")
        if isinstance(self.hint_spread_radius, bool) or not 0 <= self.hint_spread_radius < math.inf:
            raise ValueError(f"hint_spread_radius must be a finite number >= 0, got {self.hint_spread_radius!r}")
        if isinstance(self.hint_spread_temperature, bool) or not 0 < self.hint_spread_temperature < math.inf:
            raise ValueError(f"hint_spread_temperature must be positive, got {self.hint_spread_temperature!r}")
        if isinstance(self.hint_spread_threshold, bool) or not -1 <= self.hint_spread_threshold <= 1:
            raise ValueError(f"hint_spread_threshold must be in [-1, 1], got {self.hint_spread_threshold!r}")
        for field in ("norm_affine", "norm_synchronized", "shortcut", "hints"):
            if not isinstance(getattr(self, field), bool):
                raise TypeError(f"{field} must be a bool, got {getattr(self, field)!r}")

    def replace(self, **overrides):
        """Returns a copy with some fields changed; unknown names raise ValueError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}; valid: {sorted(names)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self):
        """JSON-only form (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values):
        """Inverse of `to_dict`; unknown keys raise ValueError."""
        return cls().replace(**values)
