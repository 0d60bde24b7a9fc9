"""Faults in long work: SIGKILL during training steps and checkpoint writes, a full
disk, killed exports and `prepare` runs. Real processes, killed for real.

To hit the checkpoint-write window every time instead of by luck, the training
process of `_DRIVER` kills itself (SIGKILL, as `kill -9` would) at one of two
points inside TensorFlow's save of a chosen checkpoint: after the variables are
written into `ckpt-N_temp/` but before they are merged into `ckpt-N.index/.data`
("shards"), or after the merge but before the `checkpoint` index file names
ckpt-N ("state"). A third kill comes from outside at a random moment.
"""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from colornet import data, export, train
from colornet.errors import ColornetError
from colornet.models.loading import load_colorizer
from tests import deploy_helpers as h
from tests.images import smooth_rgb

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}  # a killed child's output
INTERVAL = 2  # checkpoint_every

_DRIVER = r"""
import json, os, signal, sys
from tensorflow.python.checkpoint import checkpoint_management
from tensorflow.python.ops import gen_io_ops
from colornet import train

config = train.TrainConfig(**json.loads(sys.argv[1]))
kill, kill_step, progress = sys.argv[2], int(sys.argv[3]), sys.argv[4]


def die_at(prefix, point):
    if kill == point and os.fspath(prefix).endswith(f"ckpt-{kill_step}"):
        os.kill(os.getpid(), signal.SIGKILL)


real_merge = gen_io_ops.merge_v2_checkpoints
def merge(checkpoint_prefixes, destination_prefix, *args, **kwargs):
    die_at(destination_prefix.numpy().decode(), "shards")
    return real_merge(checkpoint_prefixes, destination_prefix, *args, **kwargs)
gen_io_ops.merge_v2_checkpoints = merge

real_state = checkpoint_management.update_checkpoint_state_internal
def update_state(save_dir, model_checkpoint_path, *args, **kwargs):
    die_at(model_checkpoint_path, "state")
    return real_state(save_dir, model_checkpoint_path, *args, **kwargs)
checkpoint_management.update_checkpoint_state_internal = update_state

real_batch_end = train._Checkpointer.on_train_batch_end
def batch_end(self, batch, logs=None):
    real_batch_end(self, batch, logs)
    with open(progress, "a") as f:
        f.write(f"{self._step()}\n")
train._Checkpointer.on_train_batch_end = batch_end

print(json.dumps(train.train(config)["step"]))
"""


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(6):
        (folder / f"img{i}.png").write_bytes(tf.io.encode_png(smooth_rgb(24, 28, seed=i)).numpy())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return str(folder)


def _config(photos, workdir, steps):
    return {
        "data": photos, "workdir": str(workdir), "preset": "tiny", "steps": steps, "batch_size": 2,
        "resize": 16, "crop": 16, "prior": "uniform", "checkpoint_every": INTERVAL, "log_every": 2,
        "sample_every": 1000, "num_samples": 2, "verbose": 2, "learning_rate": 1e-3,
    }


def _start(photos, workdir, steps, kill="none", kill_step=0):
    progress = os.path.join(os.path.dirname(workdir), f"progress-{time.monotonic_ns()}")
    args = [sys.executable, "-c", _DRIVER, json.dumps(_config(photos, workdir, steps)), kill,
            str(kill_step), progress]
    process = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, progress


def _reached(progress):
    """The last optimizer step the killed process finished."""
    with open(progress) as f:
        return int(f.read().split()[-1])


def _listed(workdir):
    state = tf.train.get_checkpoint_state(os.path.join(workdir, "checkpoints"))
    return [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths] if state else []


_VARIABLE = "optimizer/{}/.ATTRIBUTES/VARIABLE_VALUE"


def _assert_consistent(workdir, reached):
    """What a kill must leave: the listed checkpoints complete, the newest one loaded
    by `load_colorizer`, and at most one interval of finished steps lost."""
    listed = _listed(workdir)
    assert listed, "no complete checkpoint"
    for step in listed:
        prefix = os.path.join(workdir, "checkpoints", f"ckpt-{step}")
        reader = tf.train.load_checkpoint(prefix)  # index and data readable
        assert reader.get_tensor(_VARIABLE.format("_iterations")) == step
    latest = max(listed)
    # load_colorizer takes the newest listed checkpoint: its weights, read from the file.
    model = load_colorizer(workdir)
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints", f"ckpt-{latest}"))
    for i, weight in enumerate(model.trainable_weights):
        want = reader.get_tensor(_VARIABLE.format(f"_trainable_variables/{i}"))
        np.testing.assert_array_equal(weight.numpy(), want)
    assert 0 <= reached - latest <= INTERVAL, (reached, latest)
    return latest


def test_sigkill_in_checkpoint_writes_and_steps_then_resume(photos, tmp_path):
    workdir = str(tmp_path / "run")
    checkpoints = os.path.join(workdir, "checkpoints")

    # 1. Killed while ckpt-4 is half written: shards in ckpt-4_temp, nothing merged.
    process, progress = _start(photos, workdir, 40, kill="shards", kill_step=4)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == -signal.SIGKILL, output
    assert os.path.isdir(os.path.join(checkpoints, "ckpt-4_temp"))
    assert not os.path.exists(os.path.join(checkpoints, "ckpt-4.index"))
    assert _assert_consistent(workdir, _reached(progress)) == 2

    # 2. Resumed, then killed after ckpt-6 is merged but before the index names it.
    process, progress = _start(photos, workdir, 40, kill="state", kill_step=6)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == -signal.SIGKILL, output
    assert "at step 2" in output
    assert os.path.isfile(os.path.join(checkpoints, "ckpt-6.index"))
    assert _assert_consistent(workdir, _reached(progress)) == 4

    # 3. Resumed, then killed from outside at a random moment while training.
    process, progress = _start(photos, workdir, 10_000)
    deadline = time.time() + 240
    while time.time() < deadline and (not os.path.exists(progress) or _reached(progress) < 6):
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 1.0))
    process.send_signal(signal.SIGKILL)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == -signal.SIGKILL, output
    latest = _assert_consistent(workdir, _reached(progress))
    assert latest >= 4

    # 4. Resumed to the end: the step counter and the optimizer continue from `latest`.
    process, progress = _start(photos, workdir, latest + 4)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 0, output
    assert f"resuming from {checkpoints}/ckpt-{latest} at step {latest}" in output
    with open(progress) as f:
        assert [int(s) for s in f.read().split()] == list(range(latest + 1, latest + 5))
    assert max(_listed(workdir)) == latest + 4
    _assert_consistent(workdir, latest + 4)


def test_full_disk_stops_training_and_keeps_the_last_checkpoint(photos, tmp_path, monkeypatch):
    """Disk full simulated in-process: CheckpointManager.save raises ENOSPC."""
    workdir = tmp_path / "run"
    train.train(train.TrainConfig(**_config(photos, workdir, 2)))

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
    with pytest.raises(ColornetError, match=r"could not write a checkpoint .*No space left on device.*ckpt-2 is intact"):
        train.train(train.TrainConfig(**_config(photos, workdir, 6)))
    assert _listed(str(workdir)) == [2]
    assert load_colorizer(str(workdir)) is not None


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MB tmpfs mounted under tmp_path (root only); skipped where mounting fails."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          check=False, capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount, leave_bytes):
    """Fills the file system at `mount` until `leave_bytes` remain."""
    free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
    with open(os.path.join(mount, "filler"), "wb") as f:
        f.write(b"\0" * max(free - leave_bytes, 0))


def test_real_full_disk_stops_training_cleanly(photos, small_tmpfs):
    """A real ENOSPC: the workdir on a 4 MB tmpfs filled up after the first checkpoint."""
    workdir = small_tmpfs / "run"
    train.train(train.TrainConfig(**_config(photos, workdir, 2)))
    assert _listed(str(workdir)) == [2]
    _fill(small_tmpfs, 16 * 1024)  # room for config.json and the logs, not a checkpoint
    with pytest.raises(ColornetError, match="could not write a checkpoint .*No space left on device.*ckpt-2 is intact") as info:
        train.train(train.TrainConfig(**_config(photos, workdir, 6)))
    assert "\n" not in str(info.value)
    assert "{{function_node" not in str(info.value) and "[Op:" not in str(info.value)
    assert _listed(str(workdir)) == [2]
    os.remove(small_tmpfs / "filler")
    assert load_colorizer(str(workdir)) is not None
    # With room again, training resumes from the intact checkpoint.
    assert train.train(train.TrainConfig(**_config(photos, workdir, 4)))["step"] == 4


def _kill_when(process, condition, timeout=240):
    """SIGKILLs `process` as soon as `condition()` holds; False if it exited first."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            return True
        time.sleep(0.002)
    return False


def test_killed_export_leaves_no_version_tf_serving_would_load(tmp_path):
    model = str(tmp_path / "tiny.keras")
    h.vivid_tiny_model().save(model)
    base = tmp_path / "models" / "colornet"
    process = subprocess.Popen(
        [sys.executable, "-m", "colornet.cli", "export", "--model", model, "--out", str(base),
         "--image-size", "32", "--no-warmup"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )

    def writing():
        return base.is_dir() and any(p.name.startswith(".tmp-") and any(p.iterdir()) for p in base.iterdir())

    assert _kill_when(process, writing), process.communicate()[0]
    assert export.existing_versions(str(base)) == []  # only the hidden .tmp-1-* remains
    assert [p.name for p in base.iterdir() if p.name.isdigit()] == []
    # The next export takes version 1 and ignores the leftover.
    result = export.export_saved_model(model, str(base), image_size=32, warmup=False)
    assert result.version == 1 and export.existing_versions(str(base)) == [1]
    tf.saved_model.load(result.path)


def test_killed_prepare_never_reads_as_complete(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(48):
        (photos / f"img{i:02d}.png").write_bytes(tf.io.encode_png(smooth_rgb(40, 48, seed=i)).numpy())
    out = tmp_path / "records"
    process = subprocess.Popen(
        [sys.executable, "-m", "colornet.cli", "prepare", "--data", str(photos), "--out", str(out),
         "--shards", "4"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )

    def partial_shards():
        return [p for p in tmp_path.glob(".records.partial-*/*.tfrecord")]

    assert _kill_when(process, lambda: bool(partial_shards())), process.communicate()[0]
    assert not out.exists()
    with pytest.raises(ColornetError, match="no such file"):
        data.train_dataset(str(out), batch_size=2, crop=16, resize=16)
    partial = partial_shards()[0].parent
    with pytest.raises(ColornetError, match="not a complete `colornet prepare` output"):
        data.train_dataset(str(partial), batch_size=2, crop=16, resize=16)
    # Run again: the leftover is reported, and the new set is complete.
    summary = data.prepare(str(photos), str(out), shards=4, verbose=0)
    assert summary.images == 48 and data.count_images(str(out)) == 48
