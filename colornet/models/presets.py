"""Named network configurations: plain functions returning a `ModelConfig`.

Costs: multiply-adds counted from the layers; step times measured on this project's
machine (2 cores of an AMD EPYC with AVX512_BF16, no AMX; TF 2.21) with
`python benchmarks/train_step.py --preset NAME --batch 16 --precision P`: one
training step at batch 16, 176 x 176, with the rebalanced loss and Adam.
"""

from colornet.models.config import ModelConfig

PRESETS = {}
# Presets with released weights: name -> function returning a built `Colorizer`.
# `colornet.weights.pretrained` (which downloads, so sits above the models) fills it in when
# imported; `Colorizer.from_preset` looks names up here, so models never import it.
PRETRAINED = {}
# The names it registers, as plain data, so that asking for one before it is
# imported says how (tests/test_pretrained.py keeps the two lists equal).
RELEASED_NAMES = ("eccv16_imagenet", "eccv16_imagenet_caffe", "eccv16_imagenet_norebal", "siggraph17_imagenet")


def register_preset(function):
    """Registers a function returning a `ModelConfig` under its own name."""
    PRESETS[function.__name__] = function
    return function


@register_preset
def eccv16():
    """The paper's network (Table 4) as in the Caffe release.

    32,230,393 trainable parameters (128.9 MB in float32); batch norms without scale
    or shift, symmetric padding, input L - 50. 41.8 G multiply-adds per 256 x 256
    image (19.7 G at 176 x 176), four times `half`'s, and a training step costs
    about four times as much. The release trained it for 10.5 days on a GPU.
    """
    return ModelConfig()


@register_preset
def eccv16_pytorch():
    """The network of the official PyTorch port (`colorizers/eccv16.py`).

    The same layers as `eccv16`, but the port's batch norms are affine (4,992 more
    parameters, 32,235,385 in all), its input is (L - 50) / 100 and its batch-norm
    momentum is PyTorch's 0.1 (Keras 0.9). The structure to load the port's
    published weights into; same cost as `eccv16`.
    """
    return ModelConfig(l_scale=100.0, norm_affine=True, norm_momentum=0.9)


@register_preset
def half():
    """`eccv16` at half the channel width: a network that trains on a CPU.

    Same depth, strides, dilations and receptive field; 64 channels where the paper
    has 128 and so on. 8,080,025 trainable parameters; 10.5 G multiply-adds per
    256 x 256 image (5.0 G at 176 x 176), a quarter of the paper's. One training
    step at batch 16 takes about 1.6 s in mixed_bfloat16 (10 images/s, 36k an hour)
    and 2.7 s in float32.
    """
    return ModelConfig(filters=(32, 64, 128, 256, 256, 256, 256, 128))


@register_preset
def half_shortcut():
    """`half` with a shortcut from block 2 into block 8 (`ModelConfig.shortcut`).

    Not the paper's network: one 3x3 convolution more (73,856 parameters, 8,153,881
    trainable in all; 0.3 G multiply-adds more per 256 x 256 image), which lets block 8 see
    edges at the logits' own resolution. Issue 13 measured it against `half` at
    the same training budget (README, model card).
    """
    return half().replace(shortcut=True)


@register_preset
def tiny():
    """A few thousand parameters with every kind of layer of `eccv16`, for tests.

    One convolution per block 1-7 (4 to 8 channels), block 8 as in the paper but 8
    channels wide. 8,273 trainable parameters, a third of them in the 313-way head;
    a training step at batch 16 takes a fraction of a second. It learns nothing useful.
    """
    return ModelConfig(
        filters=(4, 8, 8, 8, 8, 8, 8, 8),
        convs=(1, 1, 1, 1, 1, 1, 1, 3),
    )


def get_preset(name, **overrides):
    """The `ModelConfig` of a preset, with some fields changed.

    Args:
      name: a key of `PRESETS`.
      **overrides: `ModelConfig` fields to change, e.g. `padding="same"`.

    Raises:
      ValueError: for an unknown preset or field.
    """
    if name not in PRESETS:
        if PRETRAINED:
            pretrained = f"; with released weights: {sorted(PRETRAINED)}"
        else:
            pretrained = (
                f"; pretrained names ({', '.join(RELEASED_NAMES)}) are registered by "
                "`import colornet.weights.pretrained` or by using `colornet.Colorizer`"
            )
        raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}{pretrained}")
    return PRESETS[name]().replace(**overrides)
