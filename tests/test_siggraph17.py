"""The SIGGRAPH 2017 network (`colornet.models.siggraph17`) and its release's import
(`colornet.official17`).

The released file cannot be downloaded here, so the oracle is a PyTorch network
written below from the paper and the release's layer list (parameter names and
shapes as the release's `state_dict` has them), with random weights, realistic
activations and randomised batch-norm statistics. Its `state_dict` goes through
`torch.save`, `colornet.pth` (no PyTorch) and the importer; the Keras model must
then give PyTorch's outputs on real photos, without hints and with hints revealed
from the photos' own colours.

Tolerance: the brief's bound is 1/255 of each output's range, 220 / 255 = 0.86 ab
units for the regression ab (-110..110) and 1 / 255 for the class probabilities.
The asserted bounds are far tighter (`AB_TOLERANCE`, `PROBABILITY_TOLERANCE`); measured
here (float32, both frameworks on CPU): at most 2.8e-4 ab and 7.1e-6 in probability
over 176 x 240 and 256 x 256, with and without hints. A flipped transposed-convolution
kernel (30 ab), Keras' default batch-norm epsilon (7 ab) or a and b swapped in the
hints (46 ab) each move ab by more than 100 times the tolerance.
"""

import hashlib
import os

import keras
import numpy as np
import pytest

from colornet import hints
from colornet.deploy import predictors
from colornet.models import presets
from colornet.models.siggraph17 import (
    NUM_CLASSES,
    Siggraph17,
    Siggraph17Input,
    Subsample,
    class_ab_centres,
    load_siggraph17,
)
from colornet.utils.errors import ColornetError
from colornet.weights import official17, pretrained
from tests.helpers import oracles
from tests.helpers.contract import check_layer_contract

torch = pytest.importorskip("torch")
skimage_data = pytest.importorskip("skimage.data")
skcolor = pytest.importorskip("skimage.color")
sktransform = pytest.importorskip("skimage.transform")

AB_RANGE = 220.0  # the regression output spans -110..110
AB_TOLERANCE = 2e-3  # ab units (see the module docstring)
PROBABILITY_TOLERANCE = 5e-5


class ReferenceSiggraph17(torch.nn.Module):
    """The SIGGRAPH 2017 generator in PyTorch, parameters named as in the release.

    Encoder block b: `model{b}` = (conv, ReLU) * n, then BatchNorm2d; blocks 2-4 see
    every second pixel of the previous block's output. Decoder block b: `model{b}up`
    (4x4 stride-2 transposed conv) + `model{s}short{b}` (3x3 conv of encoder block
    s), then `model{b}` = ReLU, (conv, ReLU|LeakyReLU) * n, [BatchNorm2d]. Heads:
    `model_class` (1x1 to 529) on block 8, `model_out` (1x1 to 2, tanh) on block 10.
    """

    ENCODER = ((4, 64, 2, 1), (64, 128, 2, 1), (128, 256, 3, 1), (256, 512, 3, 1),
               (512, 512, 3, 2), (512, 512, 3, 2), (512, 512, 3, 1))
    # (block, in, out, convs, shortcut block, shortcut channels, batch norm)
    DECODER = ((8, 512, 256, 2, 3, 256, True), (9, 256, 128, 1, 2, 128, True), (10, 128, 128, 1, 1, 64, False))

    def __init__(self):
        super().__init__()
        nn = torch.nn
        for block, (cin, cout, convs, dilation) in enumerate(self.ENCODER, start=1):
            layers = []
            for i in range(convs):
                layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=dilation, dilation=dilation), nn.ReLU()]
            setattr(self, f"model{block}", nn.Sequential(*layers, nn.BatchNorm2d(cout)))
        for block, cin, cout, convs, short, short_in, norm in self.DECODER:
            setattr(self, f"model{block}up", nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)))
            setattr(self, f"model{short}short{block}", nn.Sequential(nn.Conv2d(short_in, cout, 3, padding=1)))
            layers = [nn.ReLU()]
            for _ in range(convs):
                act = nn.LeakyReLU(0.2) if block == 10 else nn.ReLU()
                layers += [nn.Conv2d(cout, cout, 3, padding=1), act]
            if norm:
                layers.append(nn.BatchNorm2d(cout))
            setattr(self, f"model{block}", nn.Sequential(*layers))
        self.model_class = nn.Sequential(nn.Conv2d(256, NUM_CLASSES, 1))
        self.model_out = nn.Sequential(nn.Conv2d(128, 2, 1), nn.Tanh())

    def forward(self, l_raw, ab_hint, mask):
        """NCHW L (0..100), hint ab (ab units), mask -> (ab, class logits)."""
        x = torch.cat([(l_raw - 50.0) / 100.0, ab_hint / 110.0, mask], dim=1)
        encoded = {}
        for block in range(1, 8):
            if block in (2, 3, 4):
                x = x[:, :, ::2, ::2]
            x = getattr(self, f"model{block}")(x)
            encoded[block] = x
        for block, _, _, _, short, _, _ in self.DECODER:
            x = getattr(self, f"model{block}up")(x) + getattr(self, f"model{short}short{block}")(encoded[short])
            x = getattr(self, f"model{block}")(x)
            encoded[block] = x
        return self.model_out(x) * 110.0, self.model_class(encoded[8])


def _photos(height, width):
    """Lab of three real photos, `(3, H, W, 3)` float32."""
    out = []
    for image in (skimage_data.astronaut(), skimage_data.coffee(), skimage_data.chelsea()):
        resized = sktransform.resize(image, (height, width), anti_aliasing=True)
        out.append(skcolor.rgb2lab(resized))
    return np.stack(out).astype(np.float32)


def _inputs(height, width, with_hints, seed=0):
    """L `(3, H, W, 1)` and a hint map `(3, H, W, 3)`: zeros, or patches revealing
    the photos' own colours (`colornet.hints.simulate_hints`, every image hinted)."""
    lab = _photos(height, width)
    l_raw = lab[..., :1]
    if not with_hints:
        return l_raw, np.zeros((*l_raw.shape[:3], 3), np.float32)
    hint_map = hints.simulate_hints(lab[..., 1:], np.array([seed, 1]), no_hint_rate=0.0).numpy()
    assert hint_map[..., 2].sum(axis=(1, 2)).min() > 0
    return l_raw, hint_map


def _torch_forward(net, l_raw, hint_map):
    def nchw(x):
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    with torch.no_grad():
        ab, class_logits = net(nchw(l_raw), nchw(hint_map[..., :2]), nchw(hint_map[..., 2:]))
    return ab.numpy().transpose(0, 2, 3, 1), class_logits.numpy().transpose(0, 2, 3, 1)


def _reference_network(seed):
    """Random weights with realistic activations (see tests/test_official.py: He
    initialisation, batch-norm statistics measured on photos, then perturbed and
    floored), the regression head scaled so that tanh is neither flat nor saturated."""
    torch.manual_seed(seed)
    net = ReferenceSiggraph17()
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                module.bias.normal_(0.0, 0.1)
        net.model_class[0].weight.mul_(3.0)
        net.model_out[0].weight.mul_(0.3)
        for norm in norms:
            norm.momentum = None  # one batch sets the statistics
        net.train()
        l_raw, hint_map = _inputs(128, 128, with_hints=True, seed=seed)
        _torch_forward(net, l_raw, hint_map)
        for norm in norms:
            norm.running_var.add_(norm.running_var.mean())
            std = norm.running_var.sqrt()
            norm.running_mean.add_(0.3 * std * torch.randn_like(std))
            norm.running_var.mul_(torch.empty_like(std).uniform_(0.5, 2.0))
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0.0, 0.2)
    return net.eval()


@pytest.fixture(scope="module")
def reference():
    return _reference_network(seed=0)


@pytest.fixture(scope="module")
def checkpoint(reference, tmp_path_factory):
    path = tmp_path_factory.mktemp("release") / "siggraph17-test.pth"
    torch.save(reference.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def converted(checkpoint, tmp_path_factory):
    """The checkpoint converted, saved as .keras and loaded back in safe mode."""
    out = tmp_path_factory.mktemp("converted") / "siggraph17.keras"
    official17.import_siggraph17(checkpoint, out=out)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary left
    return load_siggraph17(out)


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_reference_has_the_release_layout(reference):
    state = reference.state_dict()
    shapes = {name: tuple(value.shape) for name, value in state.items()}
    assert shapes["model1.0.weight"] == (64, 4, 3, 3)
    assert shapes["model1.4.running_var"] == (64,)
    assert shapes["model3.6.weight"] == (256,)
    assert shapes["model5.4.weight"] == (512, 512, 3, 3)
    assert shapes["model8up.0.weight"] == (512, 256, 4, 4)
    assert shapes["model3short8.0.weight"] == (256, 256, 3, 3)
    assert shapes["model8.1.weight"] == shapes["model8.3.weight"] == (256, 256, 3, 3)
    assert shapes["model8.5.running_mean"] == (256,)
    assert shapes["model9.3.weight"] == (128,)
    assert shapes["model1short10.0.weight"] == (128, 64, 3, 3)
    assert shapes["model10.1.weight"] == (128, 128, 3, 3)
    assert shapes["model_out.0.weight"] == (2, 128, 1, 1)
    assert shapes["model_class.0.weight"] == (529, 256, 1, 1)
    params = [name for name in state if not name.endswith("num_batches_tracked")]
    # 31 convolutions (weight, bias), 9 batch norms (4 tensors each).
    assert len(params) == 31 * 2 + 9 * 4
    # 34.19 M parameters (the paper: 34.2 M); 34.05 M without the classification head
    # (Open Model Zoo's "MParams 34.0511" of the exported, class-less network).
    trainable = sum(p.numel() for p in reference.parameters())
    assert trainable == 34_187_027
    assert trainable - 256 * 529 - 529 == 34_051_074
    # With the running statistics, 4 bytes a value within 20 KB of the published file size.
    stored = sum(state[name].numel() for name in params)
    assert 0 < pretrained.RELEASES["siggraph17_imagenet"].size - 4 * stored < 20_000


def test_keras_model_has_the_same_parameter_count(converted):
    assert sum(int(np.prod(w.shape)) for w in converted.trainable_weights) == 34_187_027
    assert official17.release_modules()["norm8"] == "model8.5"
    assert official17.release_modules()["conv10_1"] == "model10.1"


@pytest.mark.parametrize(("size", "with_hints"), [((176, 240), False), ((176, 240), True), ((256, 256), True)])
def test_converted_model_reproduces_pytorch(reference, converted, size, with_hints):
    l_raw, hint_map = _inputs(*size, with_hints=with_hints)
    torch_ab, torch_logits = _torch_forward(reference, l_raw, hint_map)
    out = converted([l_raw, hint_map], training=False)
    ab, logits = out["ab"].numpy(), out["class_logits"].numpy()
    assert ab.shape == torch_ab.shape == (3, *size, 2)
    assert logits.shape == torch_logits.shape == (3, size[0] // 4, size[1] // 4, NUM_CLASSES)
    # The test has power: colours vary over each image and are not saturated,
    # logits spread over units.
    assert torch_ab.std(axis=(1, 2)).min() > 5.0
    assert np.mean(np.abs(torch_ab) > 100.0) < 0.05
    assert torch_logits.std(axis=-1).mean() > 1.0
    ab_error = np.abs(ab - torch_ab).max()
    probability_error = np.abs(_softmax(logits) - _softmax(torch_logits)).max()
    print(f"size {size}, hints {with_hints}: max |ab| error {ab_error:.2e}, probability {probability_error:.2e}")
    assert ab_error <= AB_TOLERANCE < AB_RANGE / 255
    assert probability_error <= PROBABILITY_TOLERANCE < 1 / 255
    if with_hints:  # the hints matter: without them the output differs
        unhinted = converted(l_raw, training=False)["ab"].numpy()
        assert np.abs(unhinted - ab).max() > 100 * AB_TOLERANCE


def test_the_comparison_detects_conversion_mistakes(reference, converted):
    l_raw, hint_map = _inputs(128, 128, with_hints=True)
    torch_ab, _ = _torch_forward(reference, l_raw, hint_map)

    def error(model, hint_map=hint_map):
        return np.abs(model([l_raw, hint_map], training=False)["ab"].numpy() - torch_ab).max()

    weights = converted.get_weights()
    model = Siggraph17()
    model.set_weights(weights)
    kernel, bias = model.get_layer("conv9_up").get_weights()
    model.get_layer("conv9_up").set_weights([kernel[::-1, ::-1], bias])
    print(f"flipped kernel: {error(model):.3g}")
    assert error(model) > 100 * AB_TOLERANCE, "flipped transposed kernel"
    model.set_weights(weights)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.epsilon = 1e-3
    print(f"Keras' batch-norm epsilon: {error(model):.3g}")
    assert error(model) > 100 * AB_TOLERANCE, "Keras' batch-norm epsilon"
    print(f"a and b swapped: {error(converted, hint_map[..., [1, 0, 2]]):.3g}")
    assert error(converted, hint_map[..., [1, 0, 2]]) > 100 * AB_TOLERANCE, "a and b swapped"


def test_sizes_not_multiple_of_8_work(converted):
    l_raw, hint_map = _inputs(60, 92, with_hints=True)
    out = converted([l_raw, hint_map], training=False)
    assert out["ab"].shape == (3, 60, 92, 2)
    assert out["class_logits"].shape == (3, 15, 23, NUM_CLASSES)
    assert np.all(np.isfinite(out["ab"].numpy()))


def test_the_release_converts_without_pytorch(checkpoint, converted):
    """PyTorch stays the test oracle only: the import runs with `import torch` failing."""
    got = oracles.weights_converted_without_torch(
        "official17", f"import_siggraph17({str(checkpoint)!r})", checkpoint.parent / "weights.npy"
    )
    np.testing.assert_array_equal(got, np.concatenate([w.numpy().ravel() for w in converted.weights]))


def _state_dict(reference):
    return {name: value.clone() for name, value in reference.state_dict().items()}


def test_wrong_names_shapes_and_values_are_refused(reference):
    state = _state_dict(reference)
    state["model1.0.kernel"] = state.pop("model1.0.weight")
    state["model9up.0.weight"] = state["model9up.0.weight"].transpose(0, 1)
    with pytest.raises(ColornetError) as error:
        official17.convert_state_dict(state, source="ckpt.pth")
    message = str(error.value)
    assert message.startswith("ckpt.pth: not the SIGGRAPH17 colorizer")
    assert "missing 1 of 98 parameters (model1.0.weight)" in message
    assert "unexpected parameters (model1.0.kernel)" in message
    assert "model9up.0.weight has shape (128, 256, 4, 4), expected (256, 128, 4, 4)" in message
    state = _state_dict(reference)
    del state["model_class.0.bias"]
    with pytest.raises(ColornetError, match=r"missing 1 of 98 parameters \(model_class.0.bias\)"):
        official17.convert_state_dict(state)
    state = _state_dict(reference)
    state["model8.5.running_var"][3] = float("nan")
    with pytest.raises(ColornetError, match="non-finite values in model8.5.running_var"):
        official17.convert_state_dict(state)
    with pytest.raises(ColornetError, match="holds a list, not a state_dict"):
        official17.convert_state_dict([1, 2])


def test_the_eccv16_layout_is_refused_by_name(tmp_path):
    """An ECCV16 file given as the 2017 release: one message naming what differs."""
    from tests.test_official import ReferenceECCV16

    path = tmp_path / "colorization_release_v2.pth"
    torch.save(ReferenceECCV16().state_dict(), path)
    with pytest.raises(ColornetError, match=r"not the SIGGRAPH17 colorizer: missing .* unexpected"):
        official17.import_siggraph17(path)
    with pytest.raises(ColornetError, match="no such file"):
        official17.import_siggraph17(tmp_path / "missing.pth")
    with pytest.raises(ColornetError, match="must end with .keras"):
        official17.import_siggraph17(path, out=tmp_path / "model.h5")


def test_class_grid_is_the_training_code_encoding():
    centres = class_ab_centres()
    assert centres.shape == (529, 2)
    # colorization-pytorch `encode_ab_ind`: round((ab + 110) / 10), a index * 23 + b index.
    for a, b in [(-110, -110), (0, 0), (20, -40), (110, 110)]:
        index = round((a + 110) / 10) * 23 + round((b + 110) / 10)
        np.testing.assert_array_equal(centres[index], [a, b])


def test_input_layer_normalises_as_the_release(tmp_path):
    layer = Siggraph17Input()
    l_raw = np.array([[[[0.0], [50.0], [100.0]]]], np.float32)
    hint_map = np.array([[[[110.0, -55.0, 1.0], [0.0, 0.0, 0.0], [-110.0, 22.0, 1.0]]]], np.float32)
    out = layer([l_raw, hint_map]).numpy()
    np.testing.assert_allclose(out[0, 0], [[-0.5, 1.0, -0.5, 1.0], [0.0, 0.0, 0.0, 0.0], [0.5, -1.0, 0.2, 1.0]])
    again = Siggraph17Input.from_config(layer.get_config())
    np.testing.assert_array_equal(again([l_raw, hint_map]).numpy(), out)
    with pytest.raises(ValueError, match="ab_scale must be positive, got 0"):
        Siggraph17Input(ab_scale=0)


def test_subsample_layer_contract(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 5, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(Subsample(2)(x).numpy(), x[:, ::2, ::2])
    check_layer_contract(Subsample(2), x, tmp_path)
    with pytest.raises(ValueError, match="stride must be a positive integer, got 0"):
        Subsample(0)


def test_safe_mode_keras_file_reloads_with_equal_outputs(converted, checkpoint, tmp_path):
    out = tmp_path / "again.keras"
    official17.import_siggraph17(checkpoint, out=out)
    loaded = keras.saving.load_model(out, safe_mode=True, compile=False)
    assert isinstance(loaded, Siggraph17)
    l_raw, hint_map = _inputs(64, 64, with_hints=True)
    for key in ("ab", "class_logits"):
        np.testing.assert_array_equal(
            loaded([l_raw, hint_map])[key].numpy(), converted([l_raw, hint_map])[key].numpy()
        )
    with pytest.raises(ColornetError, match="not the SIGGRAPH 2017 network"):
        load_siggraph17(_a_colorizer_file(tmp_path))


def _a_colorizer_file(tmp_path):
    from colornet.models import Colorizer

    path = tmp_path / "tiny.keras"
    Colorizer.from_preset("tiny").save(path)
    return path


def test_predictor_colours_with_ab_and_hints(converted, checkpoint, tmp_path):
    """`colornet.colorize` with the 2017 network: its ab, upsampled bilinearly to the
    image and joined with the image's own L (as the release's demo does)."""
    from colornet import color, inference

    rgb = (sktransform.resize(skimage_data.coffee(), (96, 128), anti_aliasing=True) * 255).astype(np.uint8)
    predictor = predictors.load_predictor(converted)
    assert isinstance(predictor, predictors.Siggraph17Predictor) and predictor.takes_hints
    given = [{"x": 30, "y": 40, "ab": [60, -40], "size": 8}]
    out = predictors.colorize(rgb, model=predictor, size=64, hints=given)
    l_raw = color.rgb_to_lab(rgb)[..., :1].numpy()[None]
    l_small, hint_small = inference.small_inputs(l_raw, 64, hints.parse_hints(given, rgb.shape[:2]))
    ab = converted([l_small, hint_small])["ab"]
    expected = inference.to_uint8(inference.join_l_ab(l_raw, ab))[0].numpy()
    # One uint8 level: the predictor's traced graph and the eager call round apart.
    np.testing.assert_allclose(out.astype(int), expected.astype(int), rtol=0, atol=1)
    assert not np.array_equal(out, predictors.colorize(rgb, model=predictor, size=64))
    with pytest.raises(ColornetError, match="predicts ab by regression"):
        predictors.suggest_colors(rgb, 10, 10, model=predictor)
    # A .keras file of the 2017 network is recognised by path too.
    path = tmp_path / "siggraph17.keras"
    official17.import_siggraph17(checkpoint, out=path)
    assert isinstance(predictors.load_predictor(str(path)), predictors.Siggraph17Predictor)


def test_the_release_entry_and_first_use_through_a_mirror(reference, tmp_path, monkeypatch):
    """`siggraph17_imagenet`: the published record, then the whole first-use path
    (file:// mirror, size and checksum, `colornet.pth`, the importer, the cache) on a
    file of the release's layout whose record is replaced by its own."""
    import dataclasses

    real = pretrained.RELEASES["siggraph17_imagenet"]
    assert [(s.url, s.size, s.sha256) for s in real.sources] == [(
        "https://colorizers.s3.us-east-2.amazonaws.com/siggraph17-df00044c.pth",
        136_787_426,
        "df00044c0a4d7c3edcecf6f75437ce346a66e7a42612d9b968e1a7e17dbc6f66",
    )]
    assert real.sha256.startswith("df00044c")  # torch.hub's naming
    assert "siggraph17_imagenet" in presets.RELEASED_NAMES
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    path = mirror / real.file_name
    torch.save(reference.state_dict(), path)
    fake = dataclasses.replace(real, sources=(dataclasses.replace(
        real.sources[0], size=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest()),))
    monkeypatch.setitem(pretrained.RELEASES, "siggraph17_imagenet", fake)
    monkeypatch.setenv(pretrained.MIRROR_ENV, mirror.as_uri())
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))
    model = pretrained.load("siggraph17_imagenet")
    assert isinstance(model, Siggraph17)
    assert os.path.isfile(pretrained.cached_path(fake))
    l_raw, hint_map = _inputs(64, 96, with_hints=True)
    torch_ab, _ = _torch_forward(reference, l_raw, hint_map)
    np.testing.assert_allclose(model([l_raw, hint_map])["ab"].numpy(), torch_ab, rtol=0, atol=AB_TOLERANCE)
    predictor = predictors.load_predictor("siggraph17_imagenet")
    assert isinstance(predictor, predictors.Siggraph17Predictor)
