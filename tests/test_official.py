"""Importing the authors' released ECCV16 model (`colornet.weights.official`).

The released files cannot be downloaded here, so the oracle is a PyTorch network
written from the published architecture (Table 4 and `colorizers/eccv16.py`'s
parameter names and shapes) with random weights, randomised batch-norm statistics
and `model_out` set to the bin centres / 110 as in the release. Its `state_dict` goes
through `torch.save` and `colornet import-official`, and the Keras model must give
PyTorch's ab (softmax mean, T = 1) on real photos within 1e-3 ab units. Measured
here: logits agree within 5e-5 and ab within 5e-4, which is PyTorch's own float32
error against float64; a flipped transposed-convolution kernel, Keras' "same"
padding or Keras' default batch-norm epsilon each move ab by more than 100 times
the tolerance (`test_the_comparison_detects_conversion_mistakes`).

The Caffe release is checked the same way, on a caffemodel written by protobuf's own
encoder from message descriptors with Caffe's field numbers.
"""

import copy
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")
skimage_data = pytest.importorskip("skimage.data")

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from skimage import color as skcolor
from skimage import transform as sktransform

from colornet import bins, cli
from colornet.inference import upsample_ab
from colornet.layers import decode
from colornet.models import Colorizer
from colornet.models.loading import load_colorizer
from colornet.utils.errors import ColornetError
from colornet.weights import official
from tests.helpers import oracles

AB_TOLERANCE = 1e-3  # ab units, float32 (see the module docstring)

# Table 4: channels, 3x3 convolutions, stride of the last one and dilation, blocks 1-7.
_BLOCKS = (
    (64, 2, 2, 1),
    (128, 2, 2, 1),
    (256, 3, 2, 1),
    (512, 3, 1, 1),
    (512, 3, 1, 2),
    (512, 3, 1, 2),
    (512, 3, 1, 1),
)


class ReferenceECCV16(torch.nn.Module):
    """The published ECCV16 colorizer in PyTorch, with the release's parameter names.

    `model{b}` is an `nn.Sequential` of (conv, ReLU) pairs, then batch norm for
    blocks 1-7; block 8 is the 4x4 stride-2 transposed convolution and two 3x3
    convolutions with ReLUs, then the 1x1 convolution to 313 logits. `model_out`
    (313 -> 2, no bias) maps the softmax to ab / 110.

    Args:
      affine: affine batch norms (the PyTorch port) or none (the Caffe release).
      l_scale: the input is (L - 50) / l_scale: 100 in the port, 1 in Caffe.
    """

    def __init__(self, affine=True, l_scale=100.0):
        super().__init__()
        nn = torch.nn
        self.l_scale = l_scale
        channels_in = 1
        for block, (channels, convs, stride, dilation) in enumerate(_BLOCKS, start=1):
            layers = []
            for i in range(convs):
                layers.append(
                    nn.Conv2d(
                        channels_in,
                        channels,
                        3,
                        stride=stride if i == convs - 1 else 1,
                        padding=dilation,
                        dilation=dilation,
                    )
                )
                layers.append(nn.ReLU())
                channels_in = channels
            layers.append(nn.BatchNorm2d(channels, affine=affine))
            setattr(self, f"model{block}", nn.Sequential(*layers))
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 313, 1),
        )
        self.model_out = nn.Conv2d(313, 2, 1, bias=False)

    def forward(self, l_raw):
        """`(B, 1, H, W)` L -> logits `(B, 313, h, w)` and ab `(B, 2, h, w)` at 1/4."""
        x = (l_raw - 50.0) / self.l_scale
        for block in range(1, 9):
            x = getattr(self, f"model{block}")(x)
        ab = self.model_out(torch.softmax(x, dim=1)) * official.PYTORCH_AB_NORM
        return x, ab


def _photos_l(height, width):
    """L (0..100) of two real photos, `(2, H, W, 1)` float32."""
    images = [skimage_data.astronaut(), skimage_data.coffee()]
    out = []
    for image in images:
        resized = sktransform.resize(image, (height, width), anti_aliasing=True)
        out.append(skcolor.rgb2lab(resized)[..., :1])
    return np.stack(out).astype(np.float32)


def _reference_network(affine, l_scale, seed):
    """Random weights with realistic activations, then randomised BN statistics.

    He-initialised convolutions keep activations of order 1 through the ReLUs.
    The batch-norm statistics are first measured on the photos (so they are of the
    right size) and then perturbed, so that they do not merely normalise the batch.
    Each variance is floored at its layer's mean variance: channels that are almost
    never active would otherwise be divided by a near-zero variance, amplifying
    float32 rounding tenfold per block (without the floor PyTorch's own float32
    output differs from its float64 output by 0.02 ab units).
    """
    torch.manual_seed(seed)
    net = ReferenceECCV16(affine=affine, l_scale=l_scale)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.1)
        head = net.model8[6]
        head.weight.mul_(3.0)  # logits with a std of about 2 over the bins
        net.model_out.weight.copy_(
            torch.from_numpy(bins.ab_bins().T[:, :, None, None] / official.PYTORCH_AB_NORM)
        )
        for norm in norms:
            norm.momentum = None  # a cumulative average: one batch sets the statistics
        net.train()
        net(torch.from_numpy(_photos_l(128, 128).transpose(0, 3, 1, 2)))
        for norm in norms:
            norm.momentum = 0.1
            norm.running_var.add_(norm.running_var.mean())
            std = norm.running_var.sqrt()
            norm.running_mean.add_(0.3 * std * torch.randn_like(std))
            norm.running_var.mul_(torch.empty_like(std).uniform_(0.5, 2.0))
            if affine:
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.normal_(0.0, 0.2)
    return net.eval()


def _torch_forward(net, l_raw):
    with torch.no_grad():
        logits, ab = net(torch.from_numpy(l_raw.transpose(0, 3, 1, 2)))
    return logits.numpy().transpose(0, 2, 3, 1), ab.numpy().transpose(0, 2, 3, 1)


def _colornet(*args):
    return subprocess.run(
        [sys.executable, "-m", "colornet.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def reference():
    return _reference_network(affine=True, l_scale=100.0, seed=0)


@pytest.fixture(scope="module")
def checkpoint(reference, tmp_path_factory):
    path = tmp_path_factory.mktemp("release") / "colorization_release_v2-test.pth"
    torch.save(reference.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def converted(checkpoint, tmp_path_factory):
    """The checkpoint converted by the real command, then loaded from its .keras file."""
    out = tmp_path_factory.mktemp("converted") / "eccv16_official.keras"
    run = _colornet("import-official", str(checkpoint), "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert f"wrote {out}" in run.stdout
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary left
    return load_colorizer(out)


def test_reference_has_the_release_parameter_names_and_shapes(reference):
    state = reference.state_dict()
    assert state["model1.0.weight"].shape == (64, 1, 3, 3)
    assert state["model1.4.running_var"].shape == (64,)
    assert state["model3.6.weight"].shape == (256,)
    assert state["model5.0.weight"].shape == (512, 512, 3, 3)
    assert state["model8.0.weight"].shape == (512, 256, 4, 4)
    assert state["model8.6.weight"].shape == (313, 256, 1, 1)
    assert state["model_out.weight"].shape == (2, 313, 1, 1)
    params = [name for name in state if not name.endswith("num_batches_tracked")]
    # 23 convolutions (weight, bias), 7 batch norms (4 tensors), model_out.
    assert len(params) == 23 * 2 + 7 * 4 + 1


@pytest.mark.parametrize("size", [(256, 256), (176, 240)])
@pytest.mark.slow
def test_converted_model_reproduces_pytorch(reference, converted, size):
    assert isinstance(converted, Colorizer)
    l_raw = _photos_l(*size)
    torch_logits, torch_ab = _torch_forward(reference, l_raw)
    logits = converted(l_raw, training=False).numpy()
    assert logits.shape == torch_logits.shape == (2, size[0] // 4, size[1] // 4, 313)
    ab = decode.mean(logits).numpy()  # T = 1, what the port computes
    # The test has power: logits spread over units, colours vary over the image.
    assert torch_logits.std(axis=-1).mean() > 1.0
    assert torch_ab.std(axis=(1, 2)).min() > 3.0
    np.testing.assert_allclose(logits, torch_logits, rtol=0, atol=2e-4)
    np.testing.assert_allclose(ab, torch_ab, rtol=0, atol=AB_TOLERANCE)
    # Full resolution: the port's `upsample4` and colornet's upsampling agree too.
    with torch.no_grad():
        torch_full = torch.nn.functional.interpolate(
            torch.from_numpy(torch_ab.transpose(0, 3, 1, 2)),
            scale_factor=4,
            mode="bilinear",
            align_corners=False,
        )
    full = upsample_ab(ab, size).numpy()
    np.testing.assert_allclose(full, torch_full.numpy().transpose(0, 2, 3, 1), atol=AB_TOLERANCE)


def test_float32_error_is_that_of_pytorch_itself(reference, converted):
    """Against PyTorch in float64, colornet's float32 errs no more than PyTorch's."""
    l_raw = _photos_l(128, 128)
    with torch.no_grad():
        _, exact = copy.deepcopy(reference).double()(
            torch.from_numpy(l_raw.transpose(0, 3, 1, 2)).double()
        )
    exact = exact.numpy().transpose(0, 2, 3, 1)
    torch_error = np.abs(_torch_forward(reference, l_raw)[1] - exact).max()
    colornet_error = np.abs(decode.mean(converted(l_raw, training=False)).numpy() - exact).max()
    assert colornet_error <= 2 * torch_error + 1e-5


def test_the_comparison_detects_conversion_mistakes(reference, converted):
    l_raw = _photos_l(128, 128)
    _, torch_ab = _torch_forward(reference, l_raw)
    weights = converted.get_weights()
    kernel, bias = converted.get_layer("conv8_1").get_weights()
    mistakes = {
        "flipped conv8_1 kernel": ({}, {"conv8_1": [kernel[::-1, ::-1], bias]}),
        "same padding": ({"padding": "same"}, {}),
        "Keras' BN epsilon": ({"norm_epsilon": 1e-3}, {}),
    }
    for mistake, (overrides, layer_weights) in mistakes.items():
        model = Colorizer.from_preset(official.PYTORCH_PRESET, **overrides)
        model.set_weights(weights)
        for name, values in layer_weights.items():
            model.get_layer(name).set_weights(values)
        error = np.abs(decode.mean(model(l_raw, training=False)).numpy() - torch_ab).max()
        assert error > 100 * AB_TOLERANCE, mistake


def test_sizes_not_multiple_of_8_match_pytorch_after_the_crop(reference, converted):
    # PyTorch computes 2 * ceil(n / 8) rows; colornet crops them to ceil(n / 4).
    l_raw = _photos_l(60, 92)
    _, torch_ab = _torch_forward(reference, l_raw)
    assert torch_ab.shape[1:3] == (16, 24)
    ab = decode.mean(converted(l_raw, training=False)).numpy()
    assert ab.shape[1:3] == (15, 23)
    np.testing.assert_allclose(ab, torch_ab[:, :15, :23], atol=AB_TOLERANCE)


def test_import_official_function_and_atomic_save(checkpoint, converted, tmp_path):
    out = tmp_path / "model.keras"
    out.write_bytes(b"an older file")
    model = official.import_official(checkpoint, out=out)
    assert model.model_config == converted.model_config
    for mine, theirs in zip(model.weights, converted.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    assert isinstance(load_colorizer(out), Colorizer)


def test_transposed_convolution_maps_without_a_spatial_flip():
    """PyTorch's ConvTranspose2d(4, stride 2, padding 1) is Keras' "same", unflipped."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 5, 7, 3)).astype(np.float32)
    weight = rng.normal(size=(3, 2, 4, 4)).astype(np.float32)  # (in, out, kH, kW)
    with torch.no_grad():
        expected = (
            torch.nn.functional.conv_transpose2d(
                torch.from_numpy(x.transpose(0, 3, 1, 2)),
                torch.from_numpy(weight),
                stride=2,
                padding=1,
            )
            .numpy()
            .transpose(0, 2, 3, 1)
        )
    layer = keras.layers.Conv2DTranspose(2, 4, strides=2, padding="same", use_bias=False)
    layer.build(x.shape)
    kernel = weight.transpose(official._TO_KERAS_KERNEL)  # (kH, kW, out, in)
    layer.set_weights([kernel])
    np.testing.assert_allclose(layer(x).numpy(), expected, atol=1e-5)
    layer.set_weights([kernel[::-1, ::-1]])
    assert np.abs(layer(x).numpy() - expected).max() > 0.1


def _state_dict(reference):
    return {name: value.clone() for name, value in reference.state_dict().items()}


def test_model_out_that_is_not_the_bins_is_refused(reference):
    state = _state_dict(reference)
    state["model_out.weight"] += 0.5 / official.PYTORCH_AB_NORM
    with pytest.raises(ColornetError, match=r"model_out.weight .*not colornet's 313 ab bin"):
        official.convert_state_dict(state)
    state["model_out.weight"] = state["model_out.weight"][:, torch.randperm(313)]
    with pytest.raises(ColornetError, match="off by up to"):
        official.convert_state_dict(state)


def test_wrong_names_shapes_and_values_are_refused(reference):
    state = _state_dict(reference)
    state["model1.0.kernel"] = state.pop("model1.0.weight")
    state["model8.0.weight"] = state["model8.0.weight"].transpose(0, 1)
    with pytest.raises(ColornetError) as error:
        official.convert_state_dict(state, source="ckpt.pth")
    message = str(error.value)
    assert message.startswith("ckpt.pth: not the ECCV16 colorizer")
    assert "missing 1 of 75 parameters (model1.0.weight)" in message
    assert "unexpected parameters (model1.0.kernel)" in message
    assert "model8.0.weight has shape (256, 512, 4, 4), expected (512, 256, 4, 4)" in message
    state = _state_dict(reference)
    state["model4.6.running_var"][3] = float("nan")
    with pytest.raises(ColornetError, match="non-finite values in model4.6.running_var"):
        official.convert_state_dict(state)
    with pytest.raises(ColornetError, match="holds a list, not a state_dict"):
        official.convert_state_dict([1, 2])


def _cli_error(capsys, *args):
    code = cli.main(cli._parse_flags(["colornet", "import-official", *args]))
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("colornet import-official: error: ")
    return lines[0]


def test_cli_errors_are_one_line(tmp_path, capsys):
    out = str(tmp_path / "m.keras")
    assert "no such file" in _cli_error(capsys, str(tmp_path / "missing.pth"), "-o", out)
    text = tmp_path / "notes.pth"
    text.write_text("this is not a checkpoint\n" * 10)
    assert "not a PyTorch checkpoint" in _cli_error(capsys, str(text), "-o", out)
    small = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 4)}, small)
    line = _cli_error(capsys, str(small), "-o", out)
    assert "not the ECCV16 colorizer: missing 75 of 75" in line and "fc.weight" in line
    assert "must end with .keras" in _cli_error(capsys, str(small), "-o", str(tmp_path / "m.h5"))
    assert not os.path.exists(out)


@pytest.mark.slow
def test_cli_error_in_a_real_process_has_no_traceback(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_bytes(b"\x80\x02not a pickle at all")
    run = _colornet("import-official", str(text), "-o", str(tmp_path / "m.keras"))
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    # TensorFlow's C++ start-up lines may precede it; ours is the only one of its own.
    ours = [line for line in run.stderr.splitlines() if line.startswith("colornet")]
    assert len(ours) == 1 and ours[0].startswith("colornet import-official: error: ")
    assert "not a PyTorch checkpoint" in ours[0]


def test_legacy_serialisation_loads_and_pickled_modules_are_refused(tmp_path):
    state = {"model1.0.bias": torch.arange(3.0), "model1.4.num_batches_tracked": torch.tensor(7)}
    legacy = tmp_path / "legacy.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(ColornetError, match="missing 74 of 75 parameters"):
        official.import_official(legacy)  # read (torch's legacy format), then checked
    module = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), module)  # a whole pickled model, not a state_dict
    with pytest.raises(ColornetError, match=r"loads safely \(UnpicklingError: refusing to load") as error:
        official.import_official(module)
    assert "\x1b" not in str(error.value) and "\n" not in str(error.value)


@pytest.mark.slow
def test_the_release_converts_without_pytorch(checkpoint, converted):
    """PyTorch stays the test oracle only: the import runs with `import torch` failing."""
    got = oracles.weights_converted_without_torch(
        "official", f"import_official({str(checkpoint)!r})", checkpoint.parent / "weights.npy"
    )
    expected = np.concatenate([w.numpy().ravel() for w in converted.weights])
    np.testing.assert_array_equal(got, expected)


# --- Caffe -------------------------------------------------------------------------

_FIELD = descriptor_pb2.FieldDescriptorProto


def _caffe_messages():
    """NetParameter, LayerParameter, BlobProto, BlobShape with caffe.proto's numbers.

    Only the fields the converter reads plus a few it must skip (`type`, `bottom`,
    `top`); protobuf writes repeated numbers packed, as Caffe declares them.
    """
    proto = descriptor_pb2.FileDescriptorProto(name="caffe_test.proto", package="caffe_test")
    specs = {
        "BlobShape": [("dim", 1, _FIELD.TYPE_INT64, True, None)],
        "BlobProto": [
            ("shape", 7, _FIELD.TYPE_MESSAGE, False, "BlobShape"),
            ("data", 5, _FIELD.TYPE_FLOAT, True, None),
            ("double_data", 8, _FIELD.TYPE_DOUBLE, True, None),
        ],
        "LayerParameter": [
            ("name", 1, _FIELD.TYPE_STRING, False, None),
            ("type", 2, _FIELD.TYPE_STRING, False, None),
            ("bottom", 3, _FIELD.TYPE_STRING, True, None),
            ("top", 4, _FIELD.TYPE_STRING, True, None),
            ("blobs", 7, _FIELD.TYPE_MESSAGE, True, "BlobProto"),
        ],
        "NetParameter": [
            ("name", 1, _FIELD.TYPE_STRING, False, None),
            ("layer", 100, _FIELD.TYPE_MESSAGE, True, "LayerParameter"),
        ],
    }
    for message, fields in specs.items():
        descriptor = proto.message_type.add(name=message)
        for name, number, kind, repeated, type_name in fields:
            field = descriptor.field.add(name=name, number=number, type=kind)
            field.label = _FIELD.LABEL_REPEATED if repeated else _FIELD.LABEL_OPTIONAL
            if type_name:
                field.type_name = f".caffe_test.{type_name}"
            if repeated and kind not in (_FIELD.TYPE_MESSAGE, _FIELD.TYPE_STRING):
                field.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe_test.{name}"))
        for name in specs
    }


def _add_layer(net, name, kind, blobs, double=False):
    layer = net.layer.add(name=name, type=kind)
    layer.bottom.append("below")
    layer.top.append(name)
    for blob in blobs:
        proto = layer.blobs.add()
        proto.shape.dim.extend(blob.shape)
        values = np.asarray(blob).ravel().tolist()
        (proto.double_data if double else proto.data).extend(values)


def _write_caffemodel(net_module, path, decode_weights=None, bn_weight=999.98):
    """The reference network's weights as the Caffe release stores them."""
    messages = _caffe_messages()
    net = messages["NetParameter"](name="LtoAB")
    # Training-net layers with blobs that the converter must ignore.
    _add_layer(net, "data_l_meansub", "Scale", [np.ones(1), np.full(1, -50.0)])
    for block in range(1, 9):
        convs = 0
        for module in getattr(net_module, f"model{block}"):
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                convs += 1
                name = f"conv{block}_{convs}" if module.out_channels != 313 else "conv8_313"
                name = "bw_conv1_1" if name == "conv1_1" else name
                kind = (
                    "Deconvolution"
                    if isinstance(module, torch.nn.ConvTranspose2d)
                    else "Convolution"
                )
                _add_layer(
                    net, name, kind, [module.weight.detach().numpy(), module.bias.detach().numpy()]
                )
            elif isinstance(module, torch.nn.BatchNorm2d):
                # Caffe keeps running sums and their weight; statistics = sums / weight.
                sums = [
                    module.running_mean.numpy() * bn_weight,
                    module.running_var.numpy() * bn_weight,
                ]
                _add_layer(
                    net, f"conv{block}_{convs}norm", "BatchNorm", [*sums, np.full(1, bn_weight)]
                )
    if decode_weights is not None:
        _add_layer(net, "class8_ab", "Convolution", [decode_weights], double=True)
    path.write_bytes(net.SerializeToString())


@pytest.fixture(scope="module")
def caffe_reference():
    return _reference_network(affine=False, l_scale=1.0, seed=1)


@pytest.fixture(scope="module")
def caffemodel(caffe_reference, tmp_path_factory):
    path = tmp_path_factory.mktemp("caffe") / "colorization_release_v2.caffemodel"
    _write_caffemodel(caffe_reference, path, decode_weights=bins.ab_bins().T[:, :, None, None])
    return path


@pytest.mark.slow
def test_caffe_release_converts_and_matches(caffe_reference, caffemodel):
    model = official.import_official(caffemodel)
    assert model.model_config == Colorizer.from_preset("eccv16").model_config
    l_raw = _photos_l(128, 176)
    torch_logits, torch_ab = _torch_forward(caffe_reference, l_raw)
    logits = model(l_raw, training=False).numpy()
    assert torch_ab.std(axis=(1, 2)).min() > 3.0
    np.testing.assert_allclose(logits, torch_logits, rtol=0, atol=2e-4)
    np.testing.assert_allclose(decode.mean(logits).numpy(), torch_ab, rtol=0, atol=AB_TOLERANCE)


def test_read_caffemodel_returns_named_blobs(caffe_reference, caffemodel):
    layers = official.read_caffemodel(caffemodel)
    assert "bw_conv1_1" in layers and "data_l_meansub" in layers
    np.testing.assert_array_equal(
        layers["conv8_1"][0], caffe_reference.model8[0].weight.detach().numpy()
    )
    assert layers["conv3_3norm"][2].shape == (1,)
    np.testing.assert_array_equal(layers["class8_ab"][0][:, :, 0, 0].T, bins.ab_bins())


def test_caffe_decoding_weights_that_are_not_the_bins_are_refused(caffemodel):
    layers = official.read_caffemodel(caffemodel)
    layers["class8_ab"] = [layers["class8_ab"][0][::-1]]  # a and b swapped
    with pytest.raises(ColornetError, match="class8_ab is not colornet's 313 ab bin"):
        official.convert_caffe_blobs(layers)
    del layers["conv5_2"]
    with pytest.raises(ColornetError, match=r"missing 2 of .* \(conv5_2 blob 0, conv5_2 blob 1\)"):
        official.convert_caffe_blobs(layers)


def test_files_that_are_not_caffe_models_are_refused(tmp_path):
    for content in (b"\xff" * 20, b"\x0a\x50short", b""):
        path = tmp_path / "bad.caffemodel"
        path.write_bytes(content)
        with pytest.raises(ColornetError, match="not a Caffe model file"):
            official.read_caffemodel(path)
    messages = _caffe_messages()
    net = messages["NetParameter"](name="other")
    _add_layer(net, "fc", "InnerProduct", [np.zeros((3, 4)), np.zeros(3)])
    (tmp_path / "other.caffemodel").write_bytes(net.SerializeToString())
    with pytest.raises(ColornetError, match="not the ECCV16 colorizer: missing"):
        official.import_official(tmp_path / "other.caffemodel")
