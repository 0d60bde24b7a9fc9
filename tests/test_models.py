"""The network (Table 4), its presets and `Colorizer`'s training defaults.

Fast: everything but the parameter counts uses the `tiny` preset on small images.
Convolution geometry is checked against a few lines of NumPy float64 that follow
Caffe's definitions (zero padding `pad` on every side; a deconvolution scatters
input i to outputs stride * i - pad + k).
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from colornet import losses
from colornet.models import (
    PRESETS,
    Colorizer,
    CropToStride,
    ModelConfig,
    NormalizeL,
    build_backbone,
    get_preset,
)

CONV_TYPES = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)


def _l_raw(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 100, shape).astype(np.float32)


def _ab(shape, seed=1):
    return np.random.default_rng(seed).uniform(-80, 80, shape).astype(np.float32)


def _previous_layer(model, name):
    # The network is a chain, and `model.layers` lists a chain in order.
    names = [layer.name for layer in model.layers]
    return model.layers[names.index(name) - 1]


def _trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def _uniform_loss():
    # The real loss without the package's prior file, so these tests do not depend
    # on that asset; the defaults test below uses the default loss itself.
    return losses.RebalancedLoss(class_weights="uniform")


def _conv_oracle(x, kernel, stride, pad_before, pad_after):
    """Cross-correlation as Caffe computes it. x `(H, W, Ci)`, kernel `(k, k, Ci, Co)`."""
    x = np.pad(np.asarray(x, np.float64), ((pad_before, pad_after),) * 2 + ((0, 0),))
    k = kernel.shape[0]
    out_h = (x.shape[0] - k) // stride + 1
    out_w = (x.shape[1] - k) // stride + 1
    out = np.zeros((out_h, out_w, kernel.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            window = x[i * stride : i * stride + k, j * stride : j * stride + k]
            out[i, j] = np.tensordot(window, kernel, axes=3)
    return out


def _deconv_oracle(x, kernel, stride, pad):
    """Caffe's Deconvolution. x `(H, W, Ci)`, kernel in Keras layout `(k, k, Co, Ci)`."""
    k = kernel.shape[0]
    h, w, _ = x.shape
    full = np.zeros(((h - 1) * stride + k, (w - 1) * stride + k, kernel.shape[2]))
    for i in range(h):
        for j in range(w):
            full[i * stride : i * stride + k, j * stride : j * stride + k] += np.einsum(
                "c,abdc->abd", x[i, j], kernel
            )
    return full[pad : full.shape[0] - pad, pad : full.shape[1] - pad]


@pytest.fixture(scope="module")
def eccv16():
    return Colorizer.from_preset("eccv16")


# ---- Table 4 ----------------------------------------------------------------


def test_eccv16_trainable_parameters_match_the_release(eccv16):
    # Counted from the release prototxt (FIELD_NOTES): conv weights and biases only.
    assert _trainable_count(eccv16) == 32_230_393


def test_eccv16_pytorch_adds_only_affine_batch_norm_parameters():
    model = Colorizer.from_preset("eccv16_pytorch")
    # gamma and beta for 64 + 128 + 256 + 4 * 512 channels.
    assert _trainable_count(model) == 32_230_393 + 2 * (64 + 128 + 256 + 4 * 512)


def test_eccv16_layers_follow_table_4(eccv16):
    convs = [layer for layer in eccv16.layers if isinstance(layer, keras.layers.Conv2D)]
    expected = []  # (name, filters, kernel, stride, dilation)
    for block, (count, filters, dilation) in enumerate(
        zip((2, 2, 3, 3, 3, 3, 3), (64, 128, 256, 512, 512, 512, 512), (1, 1, 1, 1, 2, 2, 1)),
        start=1,
    ):
        for i in range(1, count + 1):
            stride = 2 if block <= 3 and i == count else 1
            expected.append(
                (f"conv{block}_{i}", filters, (3, 3), (stride, stride), (dilation,) * 2)
            )
    expected += [("conv8_2", 256, (3, 3), (1, 1), (1, 1)), ("conv8_3", 256, (3, 3), (1, 1), (1, 1))]
    expected += [("conv8_313", 313, (1, 1), (1, 1), (1, 1))]
    got = [
        (layer.name, layer.filters, layer.kernel_size, layer.strides, layer.dilation_rate)
        for layer in convs
        if not isinstance(layer, keras.layers.Conv2DTranspose)
    ]
    assert got == expected
    up = eccv16.get_layer("conv8_1")
    assert isinstance(up, keras.layers.Conv2DTranspose)
    assert (up.filters, up.kernel_size, up.strides) == (256, (4, 4), (2, 2))


def test_eccv16_batch_norm_has_no_scale_or_shift_and_follows_relu(eccv16):
    norms = [layer for layer in eccv16.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert [n.name for n in norms] == [
        "conv1_2norm", "conv2_2norm", "conv3_3norm", "conv4_3norm",
        "conv5_3norm", "conv6_3norm", "conv7_3norm",
    ]  # fmt: skip
    for norm in norms:
        assert norm.gamma is None and norm.beta is None
        assert not norm.trainable_weights
        assert norm.momentum == 0.999 and norm.epsilon == 1e-5
        assert isinstance(_previous_layer(eccv16, norm.name), keras.layers.ReLU)


def test_norm_position_before_relu():
    model = Colorizer.from_preset("tiny", norm_position="before_relu", norm_affine=True)
    norm = model.get_layer("conv1_1norm")
    assert isinstance(_previous_layer(model, "conv1_1norm"), keras.layers.Conv2D)
    assert isinstance(_previous_layer(model, "relu1_1"), keras.layers.BatchNormalization)
    assert norm.gamma is not None and norm.beta is not None


# Multiples of 8 only: on other sizes the shortcut network crops block 8 to the
# image before its 3x3 convolutions, the plain one after, so border rows differ.
@pytest.mark.parametrize("size", [(32, 32), (40, 24)])
def test_shortcut_with_zero_weights_is_the_plain_network(size):
    plain = Colorizer.from_preset("tiny")
    short = Colorizer.from_preset("tiny", shortcut=True)
    for layer in plain.layers:
        if layer.weights:
            short.get_layer(layer.name).set_weights(layer.get_weights())
    added = short.get_layer("conv8_1short")
    # Its input is block 2's output, at the logits' 1/4 resolution.
    block2 = f"conv2_{short.model_config.convs[1]}norm"
    assert added.input is short.get_layer(block2).output
    added.set_weights([np.zeros_like(w) for w in added.get_weights()])
    l_raw = _l_raw((2, *size, 1))
    np.testing.assert_allclose(short(l_raw), plain(l_raw), rtol=1e-5, atol=1e-5)
    added.set_weights([np.ones_like(w) for w in added.get_weights()])
    assert np.abs(short(l_raw) - plain(l_raw)).max() > 1e-2
    assert short(_l_raw((1, 33, 37, 1))).shape == (1, 9, 10, 313)


def test_half_shortcut_adds_one_convolution():
    half, short = Colorizer.from_preset("half"), Colorizer.from_preset("half_shortcut")
    assert _trainable_count(short) - _trainable_count(half) == 3 * 3 * 64 * 128 + 128
    restored = Colorizer.from_config(json.loads(json.dumps(short.get_config())))
    assert restored.model_config.shortcut


def test_build_backbone_is_the_same_network():
    config = get_preset("tiny")
    backbone = build_backbone(config)
    model = Colorizer(config)
    assert [layer.name for layer in backbone.layers] == [layer.name for layer in model.layers]
    assert _trainable_count(backbone) == _trainable_count(model)


# ---- geometry ---------------------------------------------------------------


@pytest.mark.parametrize(
    "size, expected",
    [
        ((176, 176), (44, 44)),
        ((224, 224), (56, 56)),
        ((256, 256), (64, 64)),
        ((48, 80), (12, 20)),  # non-square
        ((36, 52), (9, 13)),  # multiples of 4, not of 8: one row/column cropped
        ((33, 50), (9, 13)),  # not multiples of 4: ceil, as ab[::4, ::4]
    ],
)
def test_output_size(size, expected):
    model = Colorizer.from_preset("tiny")
    logits = model(_l_raw((2, *size, 1)))
    assert tuple(logits.shape) == (2, *expected, 313)
    assert logits.dtype == tf.float32
    assert Colorizer.output_size(*size) == expected
    # The output grid is the target grid `ab[::4, ::4]` of an image of this size.
    assert np.zeros(size)[::4, ::4].shape == expected


def test_symbolic_shape_is_flexible():
    model = Colorizer.from_preset("tiny")
    assert tuple(model.input.shape) == (None, None, None, 1)
    assert tuple(model.output.shape) == (None, None, None, 313)


def _first_stride2_conv(padding):
    model = Colorizer.from_preset("tiny", padding=padding)
    # tiny has one conv in block 1: conv1_1 has stride 2.
    conv = model.get_layer("conv1_1")
    assert conv.strides == (2, 2)
    return model, keras.Model(model.input, conv.output)


def test_symmetric_padding_is_caffe_pad_1():
    model, probe = _first_stride2_conv("symmetric")
    conv = model.get_layer("conv1_1")
    kernel = np.random.default_rng(0).normal(size=conv.kernel.shape).astype(np.float32)
    conv.kernel.assign(kernel)
    conv.bias.assign(np.zeros(conv.bias.shape, np.float32))
    for size in (8, 7):  # even sizes are where Keras' "same" differs
        l_raw = _l_raw((1, size, size, 1))
        expected = _conv_oracle(l_raw[0] - 50.0, kernel, stride=2, pad_before=1, pad_after=1)
        # float32 convolution of values up to 50 with 9 unit-variance taps.
        np.testing.assert_allclose(probe(l_raw)[0], expected, atol=1e-3)


def test_impulse_shows_symmetric_and_same_padding_differ():
    # An impulse at odd position 5 of an 8-pixel input. Caffe's windows are centred
    # on even inputs 2j: outputs 2 and 3 see it. Keras "same" pads 0 before, so its
    # windows are centred on 2j + 1: only output 2 sees it.
    l_raw = np.full((1, 8, 8, 1), 50.0, np.float32)
    l_raw[0, 5, 5, 0] = 51.0
    seen = {}
    for padding in ("symmetric", "same"):
        model, probe = _first_stride2_conv(padding)
        conv = model.get_layer("conv1_1")
        conv.kernel.assign(np.ones(conv.kernel.shape, np.float32))
        conv.bias.assign(np.zeros(conv.bias.shape, np.float32))
        response = probe(l_raw).numpy()[0, :, :, 0]
        seen[padding] = np.flatnonzero(response.any(axis=1)).tolist()
    assert seen == {"symmetric": [2, 3], "same": [2]}


def test_transposed_conv_is_caffe_deconvolution_with_pad_1():
    model = Colorizer.from_preset("tiny")
    layer = model.get_layer("conv8_1")
    rng = np.random.default_rng(0)
    layer.kernel.assign(rng.normal(size=layer.kernel.shape).astype(np.float32))
    layer.bias.assign(np.zeros(layer.bias.shape, np.float32))
    x = rng.normal(size=(1, 5, 6, layer.kernel.shape[3])).astype(np.float32)
    expected = _deconv_oracle(x[0], layer.kernel.numpy().astype(np.float64), stride=2, pad=1)
    got = layer(x).numpy()[0]
    assert got.shape == (10, 12, layer.filters)
    np.testing.assert_allclose(got, expected, atol=1e-4)


# ---- normalisation and small layers -----------------------------------------


def test_input_normalisation_caffe_and_pytorch():
    l_raw = _l_raw((2, 4, 4, 1))
    np.testing.assert_allclose(NormalizeL()(l_raw), l_raw - 50.0, atol=1e-5)
    np.testing.assert_allclose(NormalizeL(scale=100.0)(l_raw), (l_raw - 50.0) / 100.0, atol=1e-7)
    assert Colorizer.from_preset("eccv16_pytorch").get_layer("normalize_l").scale == 100.0
    layer = NormalizeL(scale=100.0)
    assert NormalizeL.from_config(layer.get_config()).scale == 100.0
    with pytest.raises(ValueError, match="scale"):
        NormalizeL(scale=0.0)


def test_crop_to_stride():
    layer = CropToStride(4)
    features = np.zeros((1, 10, 12, 3), np.float32)
    reference = np.zeros((1, 36, 41, 1), np.float32)
    assert tuple(layer([features, reference]).shape) == (1, 9, 11, 3)
    assert layer.compute_output_shape([(None, None, None, 3), (None, 36, None, 1)]) == (
        None,
        9,
        None,
        3,
    )
    with pytest.raises(ValueError, match="stride"):
        CropToStride(0)


# ---- configuration and presets ----------------------------------------------


def test_presets_and_overrides():
    assert {"eccv16", "eccv16_pytorch", "half", "tiny"} <= set(PRESETS)
    assert get_preset("eccv16") == ModelConfig()
    assert get_preset("half", padding="same").padding == "same"
    assert Colorizer.from_preset("tiny", l_scale=100.0).model_config.l_scale == 100.0
    assert 1_000 < _trainable_count(Colorizer.from_preset("tiny")) < 10_000
    for name, function in PRESETS.items():
        assert function.__doc__ and "{" not in function.__doc__, name
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("vgg")
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        get_preset("tiny", width=2)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"padding": "valid"}, "padding"),
        ({"filters": (64, 128)}, "filters"),
        ({"convs": (2, 2, 3, 3, 3, 3, 3, 0)}, "convs"),
        ({"norm_position": "after_conv"}, "norm_position"),
        ({"l_scale": -1.0}, "l_scale"),
        ({"norm_momentum": 1.0}, "norm_momentum"),
        ({"weight_decay": -1e-3}, "weight_decay"),
    ],
)
def test_config_validation(overrides, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig().replace(**overrides)


@pytest.mark.slow
def test_get_config_is_json_and_round_trips():
    model = Colorizer.from_preset("tiny", padding="same")
    config = model.get_config()
    assert json.loads(json.dumps(config)) == config
    clone = Colorizer.from_config(config)
    assert clone.model_config == model.model_config
    assert ModelConfig.from_dict(model.model_config.to_dict()) == model.model_config


def test_class_attributes():
    assert Colorizer.output_stride == 4
    assert Colorizer.num_bins == 313


# ---- training defaults --------------------------------------------------------


def test_weight_decay_is_l2_half_lambda_on_kernels_and_biases():
    model = Colorizer.from_preset("tiny")
    convs = [layer for layer in model.layers if isinstance(layer, CONV_TYPES)]
    assert len(convs) == 11
    for conv in convs:
        for regularizer in (conv.kernel_regularizer, conv.bias_regularizer):
            assert isinstance(regularizer, keras.regularizers.L2)
            # Caffe's lambda = 1e-3 has gradient lambda * w; Keras' L2(l) 2 * l * w.
            assert regularizer.l2 == pytest.approx(5e-4)
    assert len(model.losses) == 2 * len(convs)
    undecayed = Colorizer.from_preset("tiny", weight_decay=0.0)
    assert not undecayed.losses


def test_compile_defaults_are_the_papers():
    model = Colorizer.from_preset("tiny")
    model.compile()
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.99, 1e-8)
    assert isinstance(model.loss, losses.RebalancedLoss)
    optimizer.build(model.trainable_variables)
    for step, expected in ((0, 3.16e-5), (214_999, 3.16e-5), (215_000, 3.16e-5 * 0.316)):
        optimizer.iterations.assign(step)
        assert float(optimizer.learning_rate) == pytest.approx(expected, rel=1e-6)


def test_compile_arguments_override_defaults():
    model = Colorizer.from_preset("tiny")
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert isinstance(model.loss, losses.RebalancedLoss)
    loss = _uniform_loss()
    model.compile(loss=loss, metrics=["mae"])
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.loss is loss


@pytest.mark.slow
def test_compile_fit_with_all_defaults_changes_weights():
    model = Colorizer.from_preset("tiny")
    model.compile()
    dataset = tf.data.Dataset.from_tensor_slices((_l_raw((8, 32, 32, 1)), _ab((8, 8, 8, 2))))
    before = model.get_layer("conv1_1").kernel.numpy().copy()
    history = model.fit(dataset.batch(4), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(model.optimizer.iterations) == 2
    assert not np.array_equal(before, model.get_layer("conv1_1").kernel.numpy())


@pytest.mark.slow
def test_save_and_safe_load_give_equal_outputs(tmp_path):
    model = Colorizer.from_preset("tiny")
    model.compile(loss=_uniform_loss())
    l_raw, ab = _l_raw((4, 32, 32, 1)), _ab((4, 8, 8, 2))
    model.fit(l_raw, ab, batch_size=4, epochs=1, verbose=0)  # moves BN statistics
    path = str(tmp_path / "colorizer.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, Colorizer)
    assert loaded.model_config == model.model_config
    np.testing.assert_array_equal(loaded.predict(l_raw, verbose=0), model.predict(l_raw, verbose=0))
    # The compiled state comes back too: same optimizer, schedule, step and loss.
    assert isinstance(loaded.optimizer, keras.optimizers.Adam)
    assert int(loaded.optimizer.iterations) == 1
    assert float(loaded.optimizer.learning_rate) == pytest.approx(3.16e-5)
    assert isinstance(loaded.loss, losses.RebalancedLoss)
    loaded.fit(l_raw, ab, batch_size=4, epochs=1, verbose=0)
    assert int(loaded.optimizer.iterations) == 2


def test_eager_graph_xla_and_predict_agree():
    model = Colorizer.from_preset("tiny")
    l_raw = _l_raw((2, 32, 40, 1))
    eager = model(l_raw, training=False).numpy()
    for jit_compile in (False, True):
        call = tf.function(lambda x: model(x, training=False), jit_compile=jit_compile)
        np.testing.assert_allclose(call(tf.constant(l_raw)).numpy(), eager, atol=1e-5)
    np.testing.assert_allclose(model.predict(l_raw, verbose=0), eager, atol=1e-5)


def test_mixed_bfloat16_trains_with_float32_logits(bfloat16_policy):
    model = Colorizer.from_preset("tiny")
    assert model.get_layer("conv4_1").compute_dtype == "bfloat16"
    assert model.get_layer("conv4_1").kernel.dtype == "float32"
    assert model.get_layer("conv8_313").compute_dtype == "float32"
    assert model.get_layer("normalize_l").compute_dtype == "float32"
    # 36 x 52 is not a multiple of 8: the crop must keep the target's 9 x 13.
    l_raw, ab = _l_raw((4, 36, 52, 1)), _ab((4, 9, 13, 2))
    logits = model(l_raw)
    assert logits.dtype == tf.float32 and tuple(logits.shape) == (4, 9, 13, 313)
    model.compile(loss=_uniform_loss())
    before = model.get_layer("conv1_1").kernel.numpy().copy()
    history = model.fit(l_raw, ab, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(before, model.get_layer("conv1_1").kernel.numpy())


def test_compact_weights_file_round_trip(tmp_path):
    from colornet.models.loading import load_colorizer, save_compact
    from colornet.utils.errors import ColornetError

    model = Colorizer.from_preset("tiny")
    path = tmp_path / "model.npz"
    save_compact(model, path)
    loaded = load_colorizer(path)
    x = np.random.default_rng(0).uniform(0, 100, (1, 32, 32, 1)).astype(np.float32)
    # float16 storage keeps ~3 significant digits of each weight.
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-3)
    (tmp_path / "other.npz").write_bytes(b"junk")
    with pytest.raises(ColornetError, match="not a colornet weights file"):
        load_colorizer(tmp_path / "other.npz")


def test_compact_weights_keep_values_beyond_float16_in_float32(tmp_path):
    from colornet.models.loading import load_colorizer, save_compact

    model = Colorizer.from_preset("tiny")
    norm = model.get_layer("conv2_1norm")
    variance = np.linspace(0.5, 2.0, norm.moving_variance.shape[0]).astype(np.float32)
    variance[:2] = [7.0e4, 1.0e6]  # a trained batch norm's variance can pass 65,504
    norm.moving_variance.assign(variance)
    save_compact(model, tmp_path / "model.npz")
    loaded = load_colorizer(tmp_path / "model.npz")
    np.testing.assert_array_equal(loaded.get_layer("conv2_1norm").moving_variance.numpy(), variance)
    with np.load(tmp_path / "model.npz") as f:
        dtypes = {str(f[k].dtype) for k in f.files if k != "meta"}
    assert dtypes == {"float16", "float32"}
    x = np.random.default_rng(0).uniform(0, 100, (1, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-3)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_equals_keras_batch_norm(policy, affine):
    from colornet.models.backbone import FusedBatchNorm

    x = tf.constant(np.random.default_rng(0).normal(3.0, 2.0, (4, 9, 7, 6)), tf.float32)
    try:
        keras.mixed_precision.set_global_policy(policy)
        ours = FusedBatchNorm(center=affine, scale=affine, momentum=0.9)
        reference = keras.layers.BatchNormalization(center=affine, scale=affine, momentum=0.9)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for layer in (ours, reference):
        layer.build(x.shape)
        if affine:
            layer.gamma.assign(np.linspace(0.5, 2.0, 6))
            layer.beta.assign(np.linspace(-1.0, 1.0, 6))
    x = tf.cast(x, ours.compute_dtype)
    upstream = tf.constant(np.random.default_rng(1).normal(size=x.shape), tf.float32)
    results = []
    for layer in (ours, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
        grads = tape.gradient(loss, [x] + layer.trainable_weights)
        results.append((y, grads, layer.moving_mean.numpy(), layer.moving_variance.numpy()))
    (y, grads, mean, variance), (y_ref, grads_ref, mean_ref, variance_ref) = results
    assert y.dtype == y_ref.dtype
    # Summation orders differ: to ~1e-5 in float32, one rounding step in bfloat16.
    tolerance = 1e-4 if policy == "float32" else 2.0**-7
    for value, reference_value in zip([y, *grads], [y_ref, *grads_ref]):
        value, reference_value = np.float32(value), np.float32(reference_value)
        scale = max(1.0, float(np.abs(reference_value).max()))
        np.testing.assert_allclose(value, reference_value, rtol=tolerance, atol=tolerance * scale)
    # Both average the biased batch variance into the moving one.
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-6)
    np.testing.assert_allclose(variance, variance_ref, rtol=1e-6)
    # Inference is Keras' own code.
    np.testing.assert_allclose(np.float32(ours(x)), np.float32(reference(x)), atol=1e-5)


def test_fused_adam_equals_keras_adam():
    from colornet.models.solver import FusedAdam

    rng = np.random.default_rng(0)
    shapes = [(3, 3, 2, 4), (4,)]
    start = [rng.normal(size=shape).astype(np.float32) for shape in shapes]
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, 3, 0.5, staircase=True)
    finals = []
    for optimizer in (
        FusedAdam(schedule, beta_1=0.9, beta_2=0.99, epsilon=1e-8),
        keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.99, epsilon=1e-8),
    ):
        variables = [keras.Variable(v) for v in start]
        optimizer.build(variables)
        apply = tf.function(lambda grads: optimizer.apply(grads, variables))  # noqa: B023
        for step in range(7):
            apply([tf.constant(np.random.default_rng(step).normal(size=s), tf.float32) for s in shapes])
        finals.append(([v.numpy() for v in variables], [v.numpy() for v in optimizer.variables]))
    (ours, ours_slots), (reference, reference_slots) = finals
    for a, b in zip(ours + ours_slots, reference + reference_slots):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not np.allclose(ours[0], start[0])


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_dilated_conv_equals_keras_conv2d(policy):
    from colornet.models.backbone import DilatedConv2D

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 13, 11, 8)), tf.float32)
    try:
        keras.mixed_precision.set_global_policy(policy)
        ours = DilatedConv2D(6, 3, padding="same", dilation_rate=2)
        reference = keras.layers.Conv2D(6, 3, padding="same", dilation_rate=2)
        ours.build(x.shape)
        reference.build(x.shape)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    reference.set_weights(ours.get_weights())
    results = []
    for layer in (ours, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cast(layer(x), tf.float32)
            loss = tf.reduce_sum(y * tf.sin(y))
        results.append((y, *tape.gradient(loss, [x, *layer.trainable_weights])))
    # oneDNN's summation order varies with threading, so errors scale with the values:
    # float32 to ~1e-6 of them, bfloat16 to one rounding step (2^-7) here and there.
    tolerance = 1e-5 if policy == "float32" else 2.0**-7
    for ours_value, reference_value in zip(*results):
        scale = max(1.0, float(np.abs(reference_value.numpy()).max()))
        np.testing.assert_allclose(
            ours_value.numpy(), reference_value.numpy(), rtol=tolerance, atol=tolerance * scale
        )
    # Where the backbone uses it: only the dilated blocks (5 and 6 in Table 4).
    model = Colorizer.from_preset("tiny")
    dilated = [layer.name for layer in model.layers if isinstance(layer, DilatedConv2D)]
    assert dilated and all(layer.dilation_rate == (2, 2) for layer in model.layers if layer.name in dilated)
    assert all(layer.dilation_rate == (1, 1) for layer in model.layers
               if isinstance(layer, keras.layers.Conv2D) and layer.name not in dilated)
