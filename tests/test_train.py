"""Training: fit, checkpoints, resume after SIGKILL, NaN stop, strategies, multi-worker."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from colornet.models import Colorizer
from colornet.models.loading import load_colorizer, save_compact
from colornet.training import recalibrate, train
from colornet.training.config import TrainConfig
from colornet.utils.errors import ColornetError
from tests.helpers.images import smooth_rgb


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(8):
        png = tf.io.encode_png(smooth_rgb(48, 56, seed=i)).numpy()
        (folder / f"img{i}.png").write_bytes(png)
    return str(folder)


def _config(photos, workdir, **changes):
    base = dict(
        data=photos, workdir=str(workdir), preset="tiny", steps=6, batch_size=4, resize=40, crop=32,
        prior="uniform", checkpoint_every=3, log_every=2, sample_every=3, num_samples=2, verbose=0,
        learning_rate=1e-3,
    )
    return TrainConfig(**{**base, **changes})


def _checkpoint_steps(workdir):
    state = tf.train.get_checkpoint_state(os.path.join(workdir, "checkpoints"))
    return [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths] if state else []


def _event_tags(logdir):
    tags = set()
    for name in os.listdir(logdir):
        for record in tf.compat.v1.train.summary_iterator(os.path.join(logdir, name)):
            tags.update(v.tag for v in record.summary.value)
    return tags


@pytest.mark.slow
def test_train_writes_config_checkpoints_logs_and_model(photos, tmp_path):
    summary = train.train(_config(photos, tmp_path / "run"))
    assert summary["step"] == 6
    assert _checkpoint_steps(tmp_path / "run") == [3, 6]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["preset"] == "tiny" and saved["steps"] == 6
    tags = _event_tags(tmp_path / "run" / "logs")
    for tag in ("train/loss", "train/unweighted_ce", "train/learning_rate", "train/images_per_second",
                "samples/grey_colourised_truth"):
        assert tag in tags
    model = load_colorizer(tmp_path / "run" / "model.keras")
    from_workdir = load_colorizer(tmp_path / "run")
    x = np.random.default_rng(0).uniform(0, 100, (1, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(model(x).numpy(), from_workdir(x).numpy(), atol=1e-5)


@pytest.mark.slow
def test_resume_continues_step_and_optimizer_state(photos, tmp_path):
    workdir = tmp_path / "run"
    train.train(_config(photos, workdir))
    before = load_colorizer(workdir)
    summary = train.train(_config(photos, workdir, steps=9))
    assert summary["step"] == 9
    assert _checkpoint_steps(workdir) == [3, 6, 9]
    # The optimizer's moments came back: a restored Adam takes small steps, a fresh
    # one's first step has size ~lr on every weight.
    after = load_colorizer(workdir)
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints", "ckpt-9"))
    iterations = [k for k in reader.get_variable_to_shape_map() if "iterations" in k]
    assert reader.get_tensor(iterations[0]) == 9
    moved = max(np.abs(a - b).max() for a, b in zip(before.get_weights(), after.get_weights()))
    assert 0 < moved


@pytest.mark.slow
def test_nan_loss_stops_with_message_and_keeps_last_checkpoint(photos, tmp_path):
    workdir = tmp_path / "run"
    train.train(_config(photos, workdir, steps=3))
    with pytest.raises(ColornetError, match="NaN or Inf at step .*ckpt-3"):
        train.train(_config(photos, workdir, steps=30, learning_rate=1e38))
    assert _checkpoint_steps(workdir) == [3]
    assert all(np.all(np.isfinite(w)) for w in load_colorizer(workdir).get_weights())


def test_unwritable_workdir_is_a_clear_error(photos, tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ColornetError, match="cannot write to workdir"):
        train.train(_config(photos, tmp_path / "a_file" / "run"))


_MIRRORED_SCRIPT = """
import sys, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from colornet.training import recalibrate, train
from colornet.training.config import TrainConfig
config = TrainConfig(**eval(sys.argv[1]))
summary = train.train(config)
print("replicas", tf.distribute.MirroredStrategy().num_replicas_in_sync, "step", summary["step"])
"""


@pytest.mark.slow
def test_mirrored_strategy_trains_with_fit(photos, tmp_path):
    # A fresh process: MirroredStrategies made earlier in one process can share
    # collective instance keys and abort each other's all-reduces.
    config = dataclasses.asdict(_config(photos, tmp_path / "run", strategy="mirrored", steps=3))
    run = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT, repr(config)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "replicas 2 step 3" in run.stdout


def test_config_overrides_and_validation():
    base = TrainConfig(data="d", workdir="w", steps=5)
    changed = TrainConfig.from_overrides(base, ["learning_rate=1e-4", "checkpoint_every=7", "prior=uniform"])
    assert changed.learning_rate == 1e-4 and changed.checkpoint_every == 7 and changed.prior == "uniform"
    with pytest.raises(ValueError, match="key=value"):
        TrainConfig.from_overrides(base, ["nonsense=1"])
    with pytest.raises(ValueError, match="exactly one"):
        TrainConfig(data="d", workdir="w")
    with pytest.raises(ValueError, match="strategy"):
        TrainConfig(data="d", workdir="w", steps=1, strategy="magic")


def _cli_args(photos, workdir, steps):
    return [
        sys.executable, "-m", "colornet.cli", "train", "--data", photos, "--workdir", str(workdir),
        "--preset", "tiny", "--steps", str(steps), "--batch-size", "4",
        "--set", "resize=40", "--set", "crop=32", "--set", "prior=uniform",
        "--set", "checkpoint_every=5", "--set", "learning_rate=1e-3", "--set", "verbose=2",
    ]


@pytest.mark.slow
def test_sigkill_mid_run_resumes_from_last_complete_checkpoint(photos, tmp_path):
    workdir = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(_cli_args(photos, workdir, 200), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and max(_checkpoint_steps(workdir) or [0]) < 10:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    killed_at = max(_checkpoint_steps(workdir))
    assert killed_at >= 10
    resumed = subprocess.run(_cli_args(photos, workdir, killed_at + 10), env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"at step {killed_at}" in resumed.stdout
    assert max(_checkpoint_steps(workdir)) == killed_at + 10


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_workers_train_to_identical_weights(photos, tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workdir = tmp_path / "run"
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        args = _cli_args(photos, workdir, 4) + ["--strategy", "multi_worker"]
        processes.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300)[0])
    finally:
        for process in processes:
            process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output
    chief_path = tf.train.latest_checkpoint(workdir / "checkpoints")
    other_path = tf.train.latest_checkpoint(workdir / ".worker-1")
    assert chief_path.endswith("ckpt-4") and other_path.endswith("ckpt-4")
    chief, other = tf.train.load_checkpoint(chief_path), tf.train.load_checkpoint(other_path)
    # Gradients are all-reduced every step and batch norms use the global batch's
    # statistics, so every variable must agree exactly: weights, moving averages,
    # optimizer moments and step count.
    names = [n for n in chief.get_variable_to_shape_map() if n != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert set(names) == set(other.get_variable_to_shape_map()) - {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    moving = [n for n in names if "moving_mean" in n or "moving_variance" in n]
    assert moving and any(n.startswith("optimizer/") for n in names)
    for name in names:
        np.testing.assert_array_equal(chief.get_tensor(name), other.get_tensor(name), err_msg=name)


@pytest.mark.slow
def test_failing_sample_grid_does_not_stop_training(photos, tmp_path, monkeypatch, capsys):
    from colornet import inference

    def broken(*args, **kwargs):
        raise RuntimeError("preview broke")

    monkeypatch.setattr(inference, "colorize_l", broken)
    summary = train.train(_config(photos, tmp_path / "run", steps=3, sample_every=1))
    assert summary["step"] == 3
    assert "sample grid at step 1 not written: preview broke" in capsys.readouterr().out


def _moving_statistics(model):
    return [w.numpy() for norm in recalibrate.batch_norms(model) for w in (norm.moving_mean, norm.moving_variance)]


@pytest.mark.slow
def test_finished_model_has_precise_batch_norm_statistics(photos, tmp_path):
    """The final model's statistics are those of its own weights: recomputing them
    changes nothing. Without recalibration the moving averages of training remain,
    which differ."""
    train.train(_config(photos, tmp_path / "run", recalibrate_images=8))
    train.train(_config(photos, tmp_path / "raw", recalibrate_images=0))
    for name, expect_precise in (("run", True), ("raw", False)):
        model = load_colorizer(tmp_path / name / "model.keras")
        before = _moving_statistics(model)
        recalibrate.recalibrate_on_images(model, photos, images=8)
        after = _moving_statistics(model)
        close = all(np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(before, after))
        assert close == expect_precise, name
    # The workdir's last checkpoint holds the finished model too.
    x = np.random.default_rng(0).uniform(0, 100, (1, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(
        load_colorizer(tmp_path / "run")(x).numpy(),
        load_colorizer(tmp_path / "run" / "model.keras")(x).numpy(),
        atol=1e-5,
    )


@pytest.mark.slow
def test_init_from_branches_a_run_with_its_own_schedule(photos, tmp_path):
    """A decay branch: a new workdir starts from another run's checkpoint (weights,
    optimizer state and step) and goes on with its own schedule; the source is untouched."""
    trunk = tmp_path / "trunk"
    train.train(_config(photos, trunk, lr_schedule="wsd", steps=6, recalibrate_images=0))
    source_files = sorted(os.listdir(trunk / "checkpoints"))
    branch = _config(
        photos, tmp_path / "branch", lr_schedule="wsd", steps=9, decay_start=6,
        init_from=str(trunk / "checkpoints" / "ckpt-3"), recalibrate_images=0,
    )
    summary = train.train(branch)
    assert summary["step"] == 9
    assert _checkpoint_steps(tmp_path / "branch") == [6, 9]  # from step 3, every 3 steps
    assert sorted(os.listdir(trunk / "checkpoints")) == source_files
    with pytest.raises(ColornetError, match="not a checkpoint prefix"):
        train.train(_config(photos, tmp_path / "bad", init_from=str(tmp_path / "nowhere")))


@pytest.mark.slow
def test_init_from_a_model_file_starts_at_step_0_from_its_weights_as_trained(photos, tmp_path):
    """A committed snapshot (compact .npz) continues training in a new workdir: its
    weights, with any rebalancing undone put back, and a fresh optimizer."""
    keras.utils.set_random_seed(5)
    source = Colorizer.from_preset("tiny")
    as_trained = [w.numpy() for w in source.trainable_weights]
    recalibrate.undo_rebalancing(source, 0.3, prior="default")
    snapshot = tmp_path / "snapshot.npz"
    save_compact(source, snapshot, dtype="float32")
    # A negligible learning rate: the run's final weights are the ones it started from.
    summary = train.train(_config(photos, tmp_path / "run", steps=3, learning_rate=1e-12,
                                  init_from=str(snapshot), recalibrate_images=0))
    assert summary["step"] == 3 and _checkpoint_steps(tmp_path / "run") == [3]
    finished = load_colorizer(summary["model"])
    assert finished.model_config.undo_rebalancing == 0.0
    for got, want in zip(finished.trainable_weights, as_trained):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-6)

    other = tmp_path / "other.npz"
    save_compact(Colorizer.from_preset("tiny", shortcut=True), other)
    with pytest.raises(ColornetError, match=r"another network.*shortcut"):
        train.train(_config(photos, tmp_path / "bad", init_from=str(other)))
