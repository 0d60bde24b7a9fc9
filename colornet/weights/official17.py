"""The authors' released SIGGRAPH 2017 model as a colornet `Siggraph17`.

The release, `siggraph17-df00044c.pth` (github.com/richzhang/colorization,
`colorizers/siggraph17.py`), is a `state_dict` of that file's `SIGGRAPHGenerator`:
`nn.Sequential` blocks whose parameters are named by their index in the block,

- `model1` ... `model7`: (conv, ReLU) pairs, then an affine batch norm, so
  convolution i of block b is `model{b}.{2 (i - 1)}` and the batch norm
  `model{b}.{2 n}` for n convolutions;
- `model8up.0`, `model9up.0`, `model10up.0`: the 4x4 stride-2 transposed
  convolutions; `model3short8.0`, `model2short9.0`, `model1short10.0`: the
  shortcuts' convolutions;
- `model8`, `model9`, `model10`: a ReLU first, then (conv, ReLU) pairs, so
  convolution i is `model{b}.{2 i - 1}`; `model8.5` and `model9.3` are batch norms,
  `model10` has none;
- `model_out.0` (128 -> 2, then tanh) and `model_class.0` (256 -> 529).

It is read by `colornet.weights.pth` without PyTorch and checked name by name and shape
by shape before anything is set. Kernels map to Keras as in `colornet.weights.official`
(axes (2, 3, 1, 0), no spatial flip for the transposed convolutions).
"""

import os

import keras

from colornet.models.siggraph17 import DECODER, ENCODER, Siggraph17
from colornet.utils.errors import ColornetError
from colornet.weights import official, pth

NETWORK = "the SIGGRAPH17 colorizer"


def import_siggraph17(path, out=None):
    """Reads the authors' released SIGGRAPH 2017 model (`.pth`) as a `Siggraph17`.

    Args:
      path: the release's checkpoint (a `state_dict` saved with `torch.save`).
      out: if given, a `.keras` path the model is also saved to, atomically.

    Raises:
      ColornetError: for a missing or unreadable file, a file that is not the 2017
        network (wrong parameter names or shapes, non-finite values), or a bad `out`.
    """
    path = os.fspath(path)
    if out is not None:
        official._check_output_path(out)
    if not os.path.isfile(path):
        raise ColornetError(f"{path}: no such file")
    model = convert_state_dict(pth.load(path), source=path)
    if out is not None:
        official.save_colorizer(model, out)
    return model


def release_modules():
    """Keras layer name -> the release's module name, in the network's order."""
    modules = {}
    for block, _, convs, _ in ENCODER:
        for i in range(1, convs + 1):
            modules[f"conv{block}_{i}"] = f"model{block}.{2 * (i - 1)}"
        modules[f"norm{block}"] = f"model{block}.{2 * convs}"
    for block, _, convs, shortcut, normalised in DECODER:
        modules[f"conv{block}_up"] = f"model{block}up.0"
        modules[f"short{shortcut}_{block}"] = f"model{shortcut}short{block}.0"
        for i in range(1, convs + 1):
            modules[f"conv{block}_{i}"] = f"model{block}.{2 * i - 1}"
        if normalised:
            modules[f"norm{block}"] = f"model{block}.{2 * convs + 1}"
    modules["ab_out"] = "model_out.0"
    modules["class_out"] = "model_class.0"
    return modules


def release_plan(model):
    """Keras layer name -> [(release parameter, its PyTorch shape)] in Keras' order."""
    plan = {}
    for layer_name, module in release_modules().items():
        layer = model.get_layer(layer_name)
        if isinstance(layer, keras.layers.BatchNormalization):
            names = ("weight", "bias", "running_mean", "running_var")
        else:
            names = ("weight", "bias")
        plan[layer_name] = [
            (f"{module}.{suffix}", official._source_shape(weight.shape))
            for suffix, weight in zip(names, layer.weights, strict=True)
        ]
    return plan


def convert_state_dict(state_dict, source="state_dict"):
    """Builds a `Siggraph17` from the release's `state_dict`.

    Args:
      state_dict: mapping of the release's parameter names to tensors or arrays
        (`num_batches_tracked` entries are optional and ignored).
      source: how error messages name the input (e.g. its path).

    Raises:
      ColornetError: for missing, unexpected or misshapen parameters, or non-finite
        values.
    """
    arrays = official.state_dict_arrays(state_dict, source)
    model = Siggraph17()
    plan = release_plan(model)
    expected = {name: shape for sources in plan.values() for name, shape in sources}
    official._check_parameters(arrays, expected, source, allow_extra=False, network=NETWORK)
    for layer_name, sources in plan.items():
        official._set_weights(model.get_layer(layer_name), [arrays[name] for name, _ in sources])
    return model
