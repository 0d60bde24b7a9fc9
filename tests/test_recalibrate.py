"""Precise batch-norm statistics: the oracle is NumPy float64 moments of each batch
norm's input, and the behaviour that matters, inference output equal to the
batch-statistics output on the calibration photos."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from colornet import color, inference
from colornet import prior as prior_lib
from colornet.models import Colorizer
from colornet.models.loading import load_colorizer, save_compact
from colornet.training import recalibrate
from colornet.utils.errors import ColornetError
from tests.helpers.images import smooth_rgb

SIZE = 48


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(12):
        png = tf.io.encode_png(smooth_rgb(SIZE, SIZE + 8 * (i % 3), seed=i)).numpy()
        (folder / f"img{i:02d}.png").write_bytes(png)
    return str(folder)


def _stale_model(seed=0):
    """A `tiny` colorizer whose moving statistics describe some other network, and
    whose head is scaled up so that the decoded ab varies by tens of units; it records
    the package's prior, as one `colornet train` made with it would."""
    keras.utils.set_random_seed(seed)  # the initial weights, in any process
    model = Colorizer.from_preset("tiny")
    model.model_config = model.model_config.replace(
        rebalancing_weights=tuple(prior_lib.default_prior().weights)
    )
    for norm in recalibrate.batch_norms(model):
        norm.moving_mean.assign(norm.moving_mean + 2.0)
        norm.moving_variance.assign(norm.moving_variance * 4.0)
    head = model.get_layer("conv8_313")
    head.kernel.assign(head.kernel * 40.0)
    return model


def _l_batches(seed=0, batches=3, size=8):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        rgb = np.stack([smooth_rgb(32, 32, seed=int(s)) for s in rng.integers(0, 10_000, size)])
        out.append(color.rgb_to_lab(rgb)[..., :1].numpy())
    return out


def test_moving_statistics_are_the_moments_of_each_norm_input_in_training_mode():
    model = _stale_model()
    batches = _l_batches()
    norms = recalibrate.batch_norms(model)
    inputs_of = keras.Model(model.inputs, [n.input for n in norms])
    # Oracle: every batch through the network in training mode (batch statistics),
    # all pixels of all batches pooled, float64 moments.
    pooled = [[] for _ in norms]
    for l_raw in batches:
        for store, x in zip(pooled, inputs_of(l_raw, training=True)):
            store.append(np.asarray(x, np.float64).reshape(-1, x.shape[-1]))
    trainable_before = [w.numpy() for w in model.trainable_weights]

    used = recalibrate.recalibrate_batch_norm(model, batches)

    assert used == sum(len(b) for b in batches)
    for norm, store in zip(norms, pooled):
        pixels = np.concatenate(store)
        # float32 activations and float32 per-batch moments: relative 1e-5.
        np.testing.assert_allclose(norm.moving_mean.numpy(), pixels.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(norm.moving_variance.numpy(), pixels.var(0), rtol=1e-4, atol=1e-6)
    for before, after in zip(trainable_before, model.trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())


def _mean_ab(model, l_raw, training):
    return inference.decode_logits(model(l_raw, training=training)).numpy().mean(axis=(0, 1, 2))


@pytest.mark.slow
def test_inference_output_matches_batch_statistics_after_recalibration(photos):
    model = _stale_model(seed=1)
    calibration = next(iter(inference_l(photos)))
    batch_stats = _mean_ab(model, calibration, training=True)
    stale = _mean_ab(model, calibration, training=False)
    # The test can fail: stale statistics move the mean colour by several units.
    assert np.abs(stale - batch_stats).max() > 2.0, (stale, batch_stats)

    used = recalibrate.recalibrate_on_images(model, photos, images=12, batch_size=12, size=SIZE)

    assert used == 12
    # The criterion: mean ab within about one unit of the batch-statistics output.
    np.testing.assert_allclose(_mean_ab(model, calibration, training=False), batch_stats, atol=1.0)


def inference_l(photos):
    from colornet import data

    return (l_raw for l_raw, _ in data.eval_dataset(photos, batch_size=12, crop=SIZE, resize=SIZE))


def test_no_images_is_an_error_and_leaves_the_statistics_alone():
    model = _stale_model()
    before = [w.numpy() for w in model.non_trainable_weights]
    with pytest.raises(ColornetError, match="no images"):
        recalibrate.recalibrate_batch_norm(model, [])
    for value, variable in zip(before, model.non_trainable_weights):
        np.testing.assert_array_equal(value, variable.numpy())


def test_max_images_stops_early():
    model = _stale_model()
    assert recalibrate.recalibrate_batch_norm(model, _l_batches(batches=3, size=4), max_images=6) == 6


def _run_cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "colornet.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def _log_w():
    return np.log(prior_lib.default_prior().weights)


def test_undo_rebalancing_shifts_the_logits_by_the_fraction_of_log_w_it_is_given():
    model = _stale_model(seed=3)
    l_raw = _l_batches(batches=1, size=2)[0]
    as_trained = model(l_raw).numpy()

    recalibrate.undo_rebalancing(model, 0.3)
    np.testing.assert_allclose(model(l_raw).numpy(), as_trained - 0.3 * _log_w(), atol=1e-4)
    assert model.model_config.undo_rebalancing == 0.3
    # A new fraction replaces the old one rather than adding to it; 0 undoes it all.
    recalibrate.undo_rebalancing(model, 0.1)
    np.testing.assert_allclose(model(l_raw).numpy(), as_trained - 0.1 * _log_w(), atol=1e-4)
    recalibrate.undo_rebalancing(model, 0.0)
    np.testing.assert_allclose(model(l_raw).numpy(), as_trained, atol=1e-4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        recalibrate.undo_rebalancing(model, 1.5)
    np.testing.assert_allclose(model(l_raw).numpy(), as_trained, atol=1e-4)
    assert model.model_config.undo_rebalancing == 0.0


def test_undoing_all_of_it_turns_the_rebalanced_optimum_back_into_the_true_distribution():
    # The rebalanced loss's optimum for pixels of colour distribution p is p * w,
    # renormalised. A network that predicts exactly that everywhere (zero head
    # kernel, bias log(p * w)), with the rebalancing undone in full, predicts p.
    prior = prior_lib.default_prior()
    model = Colorizer.from_preset("tiny")
    head = model.get_layer("conv8_313")
    head.kernel.assign(np.zeros(head.kernel.shape, np.float32))
    head.bias.assign(np.log(prior.probs * prior.weights + 1e-30).astype(np.float32))
    l_raw = _l_batches(batches=1, size=1)[0]
    rebalanced = tf.nn.softmax(model(l_raw)).numpy()[0, 0, 0]
    assert rebalanced[np.argmax(prior.weights)] > prior.probs[np.argmax(prior.weights)]  # rare colours boosted

    recalibrate.undo_rebalancing(model, 1.0, prior=prior)

    np.testing.assert_allclose(tf.nn.softmax(model(l_raw)).numpy()[0, 0, 0], prior.probs, atol=1e-6)


def test_the_fraction_undone_survives_saving_and_loading(tmp_path):
    model = _stale_model(seed=4)
    recalibrate.undo_rebalancing(model, 0.25)
    l_raw = _l_batches(batches=1, size=2)[0]
    for path in (tmp_path / "m.npz", tmp_path / "m.keras"):
        if path.suffix == ".npz":
            save_compact(model, path, dtype="float32")
        else:
            model.save(path)
        loaded = load_colorizer(path)
        assert loaded.model_config.undo_rebalancing == 0.25
        np.testing.assert_allclose(loaded(l_raw).numpy(), model(l_raw).numpy(), atol=1e-4)


@pytest.mark.slow
def test_command_writes_a_recalibrated_compact_model(photos, tmp_path):
    stale = _stale_model(seed=2)
    source = tmp_path / "stale.npz"
    save_compact(stale, source, dtype="float32")
    out = tmp_path / "fixed.npz"

    result = _run_cli("recalibrate", "--model", str(source), "--data", photos, "--out", str(out),
                      "--images", "12", "--size", str(SIZE), "--undo-rebalancing", "0.2")

    assert result.returncode == 0, result.stderr
    assert "12 images" in result.stdout and "undone by 0.2" in result.stdout
    fixed = load_colorizer(out)
    assert fixed.model_config.undo_rebalancing == 0.2
    stale_head = stale.get_layer("conv8_313").bias.numpy()
    np.testing.assert_allclose(
        fixed.get_layer("conv8_313").bias.numpy(), stale_head - 0.2 * _log_w(), rtol=1e-3, atol=2e-3
    )
    for got, want in zip(fixed.trainable_weights, stale.trainable_weights):
        if got.path.endswith("conv8_313/bias"):
            continue
        # Trained weights are unchanged up to the compact file's float16 rounding.
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-3, atol=1e-4)
    recalibrate.undo_rebalancing(fixed, 0.0)  # as trained again: the statistics agree
    calibration = next(iter(inference_l(photos)))
    np.testing.assert_allclose(
        _mean_ab(fixed, calibration, training=False), _mean_ab(stale, calibration, training=True), atol=1.0
    )


@pytest.mark.slow
def test_command_errors_are_one_line_and_write_nothing(photos, tmp_path):
    source = tmp_path / "m.npz"
    save_compact(_stale_model(), source)
    bad_out = _run_cli("recalibrate", "--model", str(source), "--data", photos, "--out", str(tmp_path / "m.h5"))
    assert bad_out.returncode == 1
    assert bad_out.stderr.strip().splitlines()[-1].startswith("colornet recalibrate: error:")
    bad_fraction = _run_cli("recalibrate", "--model", str(source), "--data", photos, "--out",
                            str(tmp_path / "out.npz"), "--undo-rebalancing", "2")
    assert bad_fraction.returncode == 1
    assert "[0, 1]" in bad_fraction.stderr.strip().splitlines()[-1]
    empty = tmp_path / "empty"
    empty.mkdir()
    no_photos = _run_cli("recalibrate", "--model", str(source), "--data", str(empty), "--out",
                         str(tmp_path / "out.npz"))
    assert no_photos.returncode == 1
    assert "Traceback" not in no_photos.stderr
    assert sorted(os.listdir(tmp_path)) == ["empty", "m.npz"]


def test_a_failing_source_leaves_the_statistics_alone():
    model = _stale_model()
    before = [w.numpy() for w in model.non_trainable_weights]

    def batches():
        yield from _l_batches(batches=2, size=4)
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        recalibrate.recalibrate_batch_norm(model, batches())
    for value, variable in zip(before, model.non_trainable_weights):
        np.testing.assert_array_equal(value, variable.numpy())


# Undoing rebalancing with the prior the model was trained with (issue 24).


def _head_bias(model):
    return model.get_layer("conv8_313").bias.numpy().astype(np.float64)


def _own_prior():
    """A prior unlike the package's: its most probable bins are saturated greens."""
    histogram = np.zeros((256, 256))
    histogram[128 - 60 : 128 - 40, 128 + 40 : 128 + 60] = 1.0  # a around -50, b around +50
    histogram[128, 128] = 10.0
    return prior_lib.prior_from_histogram(histogram)


def _train_tiny(photos, workdir, prior):
    from colornet.training import train
    from colornet.training.config import TrainConfig

    config = TrainConfig(
        data=photos, workdir=str(workdir), preset="tiny", steps=2, batch_size=4, resize=SIZE, crop=32,
        prior=prior, checkpoint_every=2, log_every=1, sample_every=100, num_samples=1, verbose=0,
        recalibrate_images=4,
    )
    return train.train(config)["model"]


def test_training_records_its_prior_and_undoing_rebalancing_uses_it(photos, tmp_path):
    mine = _own_prior()
    prior_file = tmp_path / "mine.npz"
    prior_lib.save_prior(mine, prior_file)
    workdir = tmp_path / "run"
    model_file = _train_tiny(photos, workdir, str(prior_file))

    trained = load_colorizer(model_file)
    np.testing.assert_allclose(trained.model_config.rebalancing_weights, mine.weights, rtol=1e-6)
    assert load_colorizer(workdir).model_config.rebalancing_weights == trained.model_config.rebalancing_weights
    # The package's prior would shift the logits quite otherwise: the test can tell them apart.
    assert np.abs(np.log(mine.weights) - _log_w()).max() > 1.0

    for source in (model_file, workdir):
        out = tmp_path / f"undone-{os.path.basename(source)}.npz"
        recalibrate.recalibrate_file(source, photos, out, images=4, size=SIZE, undo_fraction=0.5)
        undone = load_colorizer(out)
        np.testing.assert_allclose(
            _head_bias(undone), _head_bias(trained) - 0.5 * np.log(mine.weights), atol=2e-3
        )
        np.testing.assert_allclose(undone.model_config.rebalancing_weights, mine.weights, rtol=1e-6)
    # The model file keeps its record when the prior file is gone; the workdir names a
    # file it can no longer read, so its prior is unknown there.
    prior_file.unlink()
    recalibrate.undo_rebalancing(trained, 0.2)
    np.testing.assert_allclose(trained.model_config.rebalancing_weights, mine.weights, rtol=1e-6)
    with pytest.raises(ColornetError, match="--prior"):
        recalibrate.undo_rebalancing(load_colorizer(workdir), 0.2)


def test_a_model_trained_without_rebalancing_has_nothing_undone_through_the_command(photos, tmp_path):
    workdir = tmp_path / "uniform"
    _train_tiny(photos, workdir, "uniform")
    out = tmp_path / "out.npz"
    result = _run_cli("recalibrate", "--model", str(workdir), "--data", photos, "--out", str(out),
                      "--images", "4", "--size", str(SIZE), "--undo-rebalancing", "0.5")
    assert result.returncode == 0, result.stderr
    # Every weight 1: log w = 0, so the logits are the model's as trained.
    np.testing.assert_allclose(_head_bias(load_colorizer(out)), _head_bias(load_colorizer(workdir)), atol=2e-3)


def test_an_unknown_prior_is_one_line_asking_for_prior_and_prior_says_it(photos, tmp_path):
    source = tmp_path / "m.npz"
    unknown = Colorizer.from_preset("tiny")  # a network whose training is not recorded
    save_compact(unknown, source, dtype="float32")
    base = ["recalibrate", "--model", str(source), "--data", photos, "--images", "4", "--size", str(SIZE)]

    refused = _run_cli(*base, "--out", str(tmp_path / "a.npz"), "--undo-rebalancing", "0.2")
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("colornet recalibrate: error:") and "--prior" in last
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "a.npz").exists()
    bad = _run_cli(*base, "--out", str(tmp_path / "b.npz"), "--undo-rebalancing", "0.2", "--prior", "imagenet")
    assert bad.returncode == 1 and "'imagenet'" in bad.stderr.strip().splitlines()[-1]

    # The authors' form: a .npy of 313 smoothed probabilities, mixed with uniform at 0.5.
    probs = np.asarray(_own_prior().probs)
    np.save(tmp_path / "prior_probs.npy", probs)
    mix = 0.5 * probs + 0.5 / 313
    expected_w = (1 / mix) / np.sum(probs / mix)  # Eq. 4: w ~ 1 / mix, E_p[w] = 1
    given = _run_cli(*base, "--out", str(tmp_path / "c.npz"), "--undo-rebalancing", "0.2",
                     "--prior", str(tmp_path / "prior_probs.npy"))
    assert given.returncode == 0, given.stderr
    undone = load_colorizer(tmp_path / "c.npz")
    np.testing.assert_allclose(_head_bias(undone), _head_bias(unknown) - 0.2 * np.log(expected_w), atol=2e-3)
    np.testing.assert_allclose(undone.model_config.rebalancing_weights, expected_w, rtol=1e-9)


def test_a_prior_given_for_a_model_with_some_undone_replaces_the_recorded_one():
    model = _stale_model(seed=5)  # records the package's prior
    as_trained = _head_bias(model)
    recalibrate.undo_rebalancing(model, 0.3)
    recalibrate.undo_rebalancing(model, 0.3, prior="uniform")  # the package's 0.3 out, nothing in
    np.testing.assert_allclose(_head_bias(model), as_trained, atol=1e-4)
    assert model.model_config.rebalancing_weights == (1.0,) * 313


def test_the_bundled_model_records_the_package_prior_it_was_trained_with():
    from colornet.deploy import predictors

    bundled = load_colorizer(predictors.BUNDLED_MODEL_PATH)
    np.testing.assert_array_equal(bundled.model_config.rebalancing_weights, prior_lib.default_prior().weights)


def test_released_models_record_their_prior_where_colornet_ships_it(tmp_path):
    from colornet.weights import pretrained

    assert pretrained.get_release("eccv16_imagenet_norebal").prior == "uniform"
    # The ImageNet models' prior is the authors', not shipped: --prior is asked for.
    assert pretrained.get_release("eccv16_imagenet").prior is None
    assert pretrained.get_release("eccv16_imagenet_caffe").prior is None
    pytest.importorskip("torch")
    from tests.test_pretrained import TINY_CAFFE, _tiny_caffemodel

    data, _ = _tiny_caffemodel(tmp_path)
    raw = tmp_path / "norebal.caffemodel"
    raw.write_bytes(data)
    source = pretrained.Source(
        url="https://example.invalid/fake_norebal.caffemodel", size=len(data), sha256="0" * 64,
        checksum_source="test", network=TINY_CAFFE,
    )
    model = pretrained._convert(source, str(raw), str(raw), str(tmp_path / "converted.keras"), True, "uniform")
    pretrained._save(model, str(tmp_path / "converted.keras"))
    converted = load_colorizer(tmp_path / "converted.keras")
    assert converted.model_config.rebalancing_weights == (1.0,) * 313
