"""The authors' released ECCV16 model as a colornet `Colorizer`.

Two releases hold the same network (github.com/richzhang/colorization):

- the PyTorch port, `colorization_release_v2-9b330a0b.pth`: a `state_dict` of
  `colorizers/eccv16.py` (`model1.0.weight` ... `model8.6.bias`, `model_out.weight`).
  Batch norms are affine, the input is (L - 50) / 100. Loads into the
  `eccv16_pytorch` preset. Read by `colornet.weights.pth` without PyTorch (tensors and
  containers only: a file that names anything else is refused, no code is run).
- the Caffe release, `colorization_release_v2.caffemodel`: a serialised Caffe
  `NetParameter`. Batch norms have no scale or shift, the input is L - 50. Loads
  into the `eccv16` preset. Read with the decoder below, which needs neither Caffe
  nor a compiled `caffe.proto`; `colorization_deploy_v2.prototxt` is not needed.

What differs between the frameworks and how it is handled:

- Kernels: PyTorch and Caffe store a convolution as (out, in, kH, kW) and a
  transposed convolution as (in, out, kH, kW); Keras as (kH, kW, in, out) and
  (kH, kW, out, in). Both map with the same axis permutation (2, 3, 1, 0) and no
  spatial flip: the three frameworks scatter a transposed convolution's input i to
  outputs 2 i - 1 + k (tests/test_official.py checks it numerically).
- Padding: PyTorch and Caffe pad the stride-2 convolutions by one pixel on every
  side (the presets' "symmetric" padding), and their 4x4 stride-2 transposed
  convolution with padding 1 is Keras' `padding="same"` (both give 2n pixels,
  aligned alike).
- Batch norm: both presets use epsilon 1e-5, as PyTorch and Caffe do. Caffe stores
  the running sums and their weight s; the statistics are sums / s.
- Decoding: the port ends with softmax, a 1x1 convolution `model_out` whose weights
  are the bin centres / 110, and a multiplication by 110 (`unnormalize_ab`), i.e.
  the plain mean of the predicted distribution. colornet's model stops at the
  logits and decodes with softmax(logits / T) . centres, so `model_out` carries no
  information once it is checked to hold colornet's bins (a checkpoint whose
  `model_out` is anything else is refused). Decoding with T = 1 ("mean")
  reproduces the port's output; the Caffe deploy net scales the logits by 2.606,
  i.e. T = 1 / 2.606 = 0.384, close to colornet's default T = 0.38.
"""

import os
from collections.abc import Mapping

import keras
import ml_dtypes
import numpy as np

from colornet import bins
from colornet.models.colorizer import Colorizer
from colornet.utils import files
from colornet.utils.errors import ColornetError
from colornet.weights import pth

PYTORCH_PRESET = "eccv16_pytorch"
CAFFE_PRESET = "eccv16"

# `colorizers/base_color.py`: `unnormalize_ab` multiplies `model_out`'s output by 110.
PYTORCH_AB_NORM = 110.0
PYTORCH_DECODE_WEIGHT = "model_out.weight"
# The Caffe release names its first convolution `bw_conv1_1`.
CAFFE_LAYER_ALIASES = {"bw_conv1_1": "conv1_1"}
# The deploy net's decoding convolution; set from the bins by the demo code, so a
# caffemodel holds it (if at all) as the bins or as Caffe's default all-zero fill.
CAFFE_DECODE_LAYER = "class8_ab"
# How far, in ab units, decoding weights may lie from colornet's bin centres: far
# above float32 rounding of centres / 110 (about 1e-5) and far below a visible
# difference (bins are 10 apart).
BIN_TOLERANCE = 0.01

_ML_FLOATS = {ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2}

# Keras kernels (kH, kW, a, b) from PyTorch/Caffe kernels (b, a, kH, kW), for both
# convolutions and transposed convolutions.
_TO_KERAS_KERNEL = (2, 3, 1, 0)
_FROM_KERAS_KERNEL = (3, 2, 0, 1)


def import_official(path, out=None, network=None):
    """Reads the authors' released ECCV16 model and returns it as a `Colorizer`.

    Args:
      path: the PyTorch port's checkpoint (`.pth`, a `state_dict` saved with
        `torch.save`) or the Caffe release's `.caffemodel` (chosen by extension).
      out: if given, a `.keras` path the model is also saved to, atomically.
      network: the `ModelConfig` to fill, for files of the same layout at another
        width or depth; None for the release's own (`eccv16_pytorch` or `eccv16`).

    Returns:
      an `eccv16_pytorch` (PyTorch) or `eccv16` (Caffe) `Colorizer` with the
      release's weights. Decode with temperature 1 to reproduce the PyTorch port's
      colours exactly, 1 / 2.606 for the Caffe demo's.

    Raises:
      ColornetError: for a missing or unreadable file, a file that is not the ECCV16
        colorizer (wrong parameter names or shapes, non-finite values, decoding
        weights other than colornet's bins), or a bad `out`.
    """
    path = os.fspath(path)
    if out is not None:
        _check_output_path(out)
    if not os.path.isfile(path):
        raise ColornetError(f"{path}: no such file")
    if path.endswith(".caffemodel"):
        model = convert_caffe_blobs(read_caffemodel(path), source=path, network=network)
    else:
        model = convert_state_dict(pth.load(path), source=path, network=network)
    if out is not None:
        save_colorizer(model, out)
    return model


def state_dict_arrays(state_dict, source="state_dict"):
    """A PyTorch `state_dict` as `{name: float32 array}`, without `num_batches_tracked`.

    Raises:
      ColornetError: not a mapping, a name that is not a string, or a value that is
        not a numeric tensor.
    """
    if not isinstance(state_dict, Mapping):
        raise ColornetError(
            f"{source}: holds a {type(state_dict).__name__}, not a state_dict (a mapping "
            "of parameter names to tensors)"
        )
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise ColornetError(f"{source}: parameter name {name!r} is not a string")
        if not name.endswith(".num_batches_tracked"):
            arrays[name] = _to_numpy(value, name, source)
    return arrays


def convert_state_dict(state_dict, source="state_dict", network=None):
    """Builds an `eccv16_pytorch` `Colorizer` from the PyTorch port's `state_dict`.

    Args:
      state_dict: mapping of the port's parameter names to tensors or arrays
        (`num_batches_tracked` entries are optional and ignored).
      source: how error messages name the input (e.g. its path).
      network: the `ModelConfig` to fill; None for `eccv16_pytorch`.

    Raises:
      ColornetError: for missing, unexpected or misshapen parameters, non-finite
        values, or a `model_out` that is not colornet's bins / 110.
    """
    arrays = state_dict_arrays(state_dict, source)
    model = Colorizer(network) if network else Colorizer.from_preset(PYTORCH_PRESET)
    plan = _pytorch_plan(model)
    expected = {name: shape for sources in plan.values() for name, shape in sources}
    expected[PYTORCH_DECODE_WEIGHT] = (2, bins.ab_bins().shape[0], 1, 1)
    _check_parameters(arrays, expected, source, allow_extra=False)
    _check_bins(
        arrays[PYTORCH_DECODE_WEIGHT][:, :, 0, 0].T * PYTORCH_AB_NORM,
        f"{source}: {PYTORCH_DECODE_WEIGHT} x {PYTORCH_AB_NORM:g}",
    )
    for layer_name, sources in plan.items():
        _set_weights(model.get_layer(layer_name), [arrays[name] for name, _ in sources])
    return model


def convert_caffe_blobs(layers, source="caffemodel", network=None):
    """Builds an `eccv16` `Colorizer` from the Caffe release's parameter blobs.

    Args:
      layers: mapping of Caffe layer names to their lists of blobs (arrays in
        Caffe's shapes), as `read_caffemodel` returns. Layers the network does not
        use (the training net's data and loss layers) are ignored.
      source: how error messages name the input.
      network: the `ModelConfig` to fill; None for `eccv16`.

    Raises:
      ColornetError: for missing or misshapen blobs, non-finite values, or a
        non-zero `class8_ab` that is not colornet's bins.
    """
    blobs = {}
    for layer_name, layer_blobs in layers.items():
        layer_name = CAFFE_LAYER_ALIASES.get(layer_name, layer_name)
        for index, blob in enumerate(layer_blobs):
            blobs[_caffe_key(layer_name, index)] = np.asarray(blob, dtype=np.float32)
    model = Colorizer(network) if network else Colorizer.from_preset(CAFFE_PRESET)
    plan = _caffe_plan(model)
    expected = {name: shape for sources in plan.values() for name, shape in sources}
    _check_parameters(blobs, expected, source, allow_extra=True)
    decode_key = _caffe_key(CAFFE_DECODE_LAYER, 0)
    if decode_key in blobs and np.any(blobs[decode_key]):
        decode = blobs[decode_key]
        if decode.shape != (2, bins.ab_bins().shape[0], 1, 1):
            raise ColornetError(
                f"{source}: {CAFFE_DECODE_LAYER} has shape {decode.shape}, expected (2, 313, 1, 1)"
            )
        _check_bins(decode[:, :, 0, 0].T, f"{source}: {CAFFE_DECODE_LAYER}")
    for layer_name, sources in plan.items():
        layer = model.get_layer(layer_name)
        values = [blobs[name] for name, _ in sources]
        if isinstance(layer, keras.layers.BatchNormalization):
            # Caffe keeps running sums and their total weight, as its BatchNormLayer reads.
            total = float(values[2][0])
            factor = 0.0 if total == 0 else 1.0 / total
            values = [values[0] * factor, values[1] * factor]
        _set_weights(layer, values)
    return model


def save_colorizer(model, path):
    """Saves a model as a `.keras` file atomically: a temporary file, then a rename."""
    path = _check_output_path(path)
    with files.atomic_path(path, ".keras") as tmp:
        model.save(tmp)


def _check_output_path(path):
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ColornetError(f"output file name must end with .keras, got {path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ColornetError(f"cannot write {path}: directory {directory} does not exist")
    return path


# --- PyTorch -----------------------------------------------------------------------


def _to_numpy(value, name, source):
    if hasattr(value, "detach"):  # a torch.Tensor; numpy has no bfloat16
        value = value.detach().cpu().float().numpy()
    array = np.asarray(value)
    # ml_dtypes' bfloat16 and float8 (as `colornet.weights.pth` reads them) have kind "V".
    if array.dtype.kind not in "fiu" and array.dtype.type not in _ML_FLOATS:
        raise ColornetError(f"{source}: {name} is not a numeric tensor ({type(value).__name__})")
    return array.astype(np.float32)


def _pytorch_modules(config):
    """Keras layer name -> module name in `colorizers/eccv16.py`.

    Blocks are `nn.Sequential`s in which every convolution is followed by a ReLU,
    so convolution i of block b is `model{b}.{2 (i - 1)}`, and blocks 1-7 end with
    their batch norm; block 8 ends with the 313-way convolution.
    """
    modules = {}
    for block in range(1, 9):
        count = config.convs[block - 1]
        for i in range(1, count + 1):
            modules[f"conv{block}_{i}"] = f"model{block}.{2 * (i - 1)}"
        last = f"conv{block}_{count}norm" if block < 8 else "conv8_313"
        modules[last] = f"model{block}.{2 * count}"
    return modules


def _pytorch_plan(model):
    """Keras layer name -> [(PyTorch parameter, its expected shape)] in Keras order."""
    plan = {}
    for layer_name, module in _pytorch_modules(model.model_config).items():
        layer = model.get_layer(layer_name)
        if isinstance(layer, keras.layers.BatchNormalization):
            names = ("weight", "bias", "running_mean", "running_var")
        else:
            names = ("weight", "bias")
        plan[layer_name] = [
            (f"{module}.{suffix}", _source_shape(weight.shape))
            for suffix, weight in zip(names, layer.weights, strict=True)
        ]
    return plan


# --- Caffe -------------------------------------------------------------------------


def _caffe_key(layer_name, index):
    return f"{layer_name} blob {index}"


def _caffe_plan(model):
    """Keras layer name -> [(Caffe blob, its expected shape)] in Caffe order."""
    plan = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            (channels,) = layer.weights[0].shape
            shapes = [(channels,), (channels,), (1,)]
        else:
            shapes = [_source_shape(weight.shape) for weight in layer.weights]
        plan[layer.name] = [(_caffe_key(layer.name, i), shape) for i, shape in enumerate(shapes)]
    return plan


# NetParameter.layer = 100; LayerParameter name = 1, blobs = 7; BlobProto shape = 7,
# data = 5 (packed float), double_data = 8 (packed double); BlobShape dim = 1
# (packed int64). Field numbers from Caffe's `src/caffe/proto/caffe.proto`.
_NET_LAYER, _LAYER_NAME, _LAYER_BLOBS = 100, 1, 7
_BLOB_SHAPE, _BLOB_DATA, _BLOB_DOUBLE_DATA, _SHAPE_DIM = 7, 5, 8, 1
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


class _WireError(ValueError):
    pass


def read_caffemodel(path):
    """Reads the parameter blobs of a binary Caffe model (`.caffemodel`).

    Decodes the protobuf wire format directly, reading only the fields listed above
    and skipping all others, so neither Caffe nor its compiled `caffe.proto` is
    needed. Models in Caffe's pre-2015 layout (`layers`, 4-D legacy blob sizes) are
    not supported; the ECCV16 release, which uses BatchNorm layers, is newer.

    Returns:
      dict of layer name -> list of float32 arrays in Caffe's shapes, for every
      layer that has blobs.

    Raises:
      ColornetError: for a missing file or one that is not a Caffe model.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ColornetError(f"{path}: no such file")
    with open(path, "rb") as f:
        data = memoryview(f.read())
    layers = {}
    try:
        for number, wire, value in _fields(data):
            if number == _NET_LAYER and wire == _LENGTH_DELIMITED:
                name, blobs = _parse_layer(value)
                if blobs:
                    layers[name] = blobs
    except (_WireError, UnicodeDecodeError) as error:
        raise ColornetError(f"{path}: not a Caffe model file ({error})") from None
    if not layers:
        raise ColornetError(f"{path}: not a Caffe model file (no layer with parameters)")
    return layers


def _parse_layer(data):
    name, blobs = "", []
    for number, wire, value in _fields(data):
        if number == _LAYER_NAME and wire == _LENGTH_DELIMITED:
            name = bytes(value).decode("utf-8")
        elif number == _LAYER_BLOBS and wire == _LENGTH_DELIMITED:
            blobs.append(_parse_blob(value))
    return name, blobs


def _parse_blob(data):
    shape, floats, doubles = None, [], []
    for number, wire, value in _fields(data):
        if number == _BLOB_SHAPE and wire == _LENGTH_DELIMITED:
            shape = _parse_shape(value)
        elif number == _BLOB_DATA:
            floats.append(_scalars(value, wire, "<f4", _FIXED32))
        elif number == _BLOB_DOUBLE_DATA:
            doubles.append(_scalars(value, wire, "<f8", _FIXED64))
    if shape is None:
        raise _WireError("a blob without a shape (legacy 4-D blob sizes are not supported)")
    values = np.concatenate(floats or doubles or [np.zeros(0)]).astype(np.float32)
    if values.size != int(np.prod(shape)):
        raise _WireError(f"a blob of shape {shape} holds {values.size} values")
    return values.reshape(shape)


def _parse_shape(data):
    dims = []
    for number, wire, value in _fields(data):
        if number != _SHAPE_DIM:
            continue
        if wire == _VARINT:
            dims.append(value)
        elif wire == _LENGTH_DELIMITED:  # packed
            position = 0
            while position < len(value):
                dim, position = _varint(value, position)
                dims.append(dim)
    return tuple(dims)


def _scalars(value, wire, dtype, unpacked_wire):
    if wire == _LENGTH_DELIMITED:  # packed, as Caffe writes them
        if len(value) % np.dtype(dtype).itemsize:
            raise _WireError("a packed array of a length that is not a whole number of values")
        return np.frombuffer(value, dtype=dtype)
    if wire == unpacked_wire:
        return np.frombuffer(value, dtype=dtype)
    raise _WireError(f"blob values with wire type {wire}")


def _varint(data, position):
    result = shift = 0
    while True:
        if position >= len(data):
            raise _WireError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise _WireError("varint longer than 10 bytes")


def _fields(data):
    """Yields (field number, wire type, value) of one serialised message.

    The value is an int for varints and a memoryview of the bytes for fixed-size and
    length-delimited fields.
    """
    position, end = 0, len(data)
    while position < end:
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _WireError("field number 0")
        if wire == _VARINT:
            value, position = _varint(data, position)
            yield number, wire, value
            continue
        if wire == _FIXED64:
            size = 8
        elif wire == _FIXED32:
            size = 4
        elif wire == _LENGTH_DELIMITED:
            size, position = _varint(data, position)
        else:
            raise _WireError(f"unsupported wire type {wire}")
        if position + size > end:
            raise _WireError("truncated field")
        yield number, wire, data[position : position + size]
        position += size


# --- Shared ------------------------------------------------------------------------


def _source_shape(keras_shape):
    """The PyTorch/Caffe shape of a Keras weight of shape `keras_shape`."""
    shape = tuple(keras_shape)
    return tuple(shape[i] for i in _FROM_KERAS_KERNEL) if len(shape) == 4 else shape


def _check_parameters(arrays, expected, source, allow_extra, network="the ECCV16 colorizer"):
    problems = []
    missing = [name for name in expected if name not in arrays]
    if missing:
        problems.append(f"missing {len(missing)} of {len(expected)} parameters ({_some(missing)})")
    if not allow_extra:
        extra = [name for name in arrays if name not in expected]
        if extra:
            problems.append(f"{len(extra)} unexpected parameters ({_some(extra)})")
    wrong = [
        f"{name} has shape {arrays[name].shape}, expected {shape}"
        for name, shape in expected.items()
        if name in arrays and arrays[name].shape != tuple(shape)
    ]
    if wrong:
        problems.append(_some(wrong))
    if problems:
        raise ColornetError(f"{source}: not {network}: " + "; ".join(problems))
    bad = [name for name in expected if not np.all(np.isfinite(arrays[name]))]
    if bad:
        raise ColornetError(f"{source}: non-finite values in {_some(bad)}")


def _some(items, limit=3):
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, ..."


def _check_bins(centres, what):
    """Refuses decoding weights that are not colornet's bins, in colornet's order."""
    distance = float(np.max(np.abs(centres - bins.ab_bins())))
    if distance > BIN_TOLERANCE:
        raise ColornetError(
            f"{what} is not colornet's 313 ab bin centres (off by up to {distance:.3g} ab "
            "units): this model decodes to other colours and cannot be converted"
        )


def _set_weights(layer, values):
    layer.set_weights(
        [np.transpose(value, _TO_KERAS_KERNEL) if value.ndim == 4 else value for value in values]
    )
