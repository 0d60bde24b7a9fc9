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

from colornet import data
from colornet.deploy import export
from colornet.models.loading import load_colorizer
from colornet.training import train
from colornet.training.config import TrainConfig
from colornet.utils.errors import ColornetError
from tests.helpers import deploy_helpers as h
from tests.helpers.images import smooth_rgb

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}  # a killed child's output
INTERVAL = 2  # checkpoint_every

_DRIVER = r"""
import json, os, signal, sys
from tensorflow.python.checkpoint import checkpoint_management
from tensorflow.python.ops import gen_io_ops
from colornet.training import train
from colornet.training.config import TrainConfig

config = TrainConfig(**json.loads(sys.argv[1]))
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
    """What a kill must leave: the newest listed checkpoint complete and the one
    `load_colorizer` loads, and at most one interval of finished steps lost.

    Older entries are not checked: killed while deleting the oldest checkpoint
    (`max_to_keep`), TensorFlow's index may still list it, by design (it writes the
    index with the new checkpoint before deleting, and again after); nothing reads it.
    """
    state = tf.train.get_checkpoint_state(os.path.join(workdir, "checkpoints"))
    assert state is not None and state.model_checkpoint_path, "no complete checkpoint"
    latest = int(state.model_checkpoint_path.rsplit("-", 1)[1])
    reader = tf.train.load_checkpoint(state.model_checkpoint_path)  # index and data readable
    assert reader.get_tensor(_VARIABLE.format("_iterations")) == latest
    # load_colorizer takes the newest listed checkpoint: its weights, read from the file.
    model = load_colorizer(workdir)
    for i, weight in enumerate(model.trainable_weights):
        want = reader.get_tensor(_VARIABLE.format(f"_trainable_variables/{i}"))
        np.testing.assert_array_equal(weight.numpy(), want)
    assert 0 <= reached - latest <= INTERVAL, (reached, latest)
    return latest


@pytest.mark.slow
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


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """`(directory, fill)`: a workdir location and a function that makes its disk full.

    A real one where a 4 MB tmpfs can be mounted (root): `fill()` fills it up to
    16 kB, room for config.json and the logs but not a checkpoint. Elsewhere
    simulated: `fill()` makes CheckpointManager.save raise OSError(ENOSPC).
    `fill` returns the function that makes room again.
    """
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    try:
        mounted = not subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                                     check=False, capture_output=True).returncode
    except OSError:  # no mount command
        mounted = False
    if not mounted:
        def fill():
            def full(self, *args, **kwargs):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
            return monkeypatch.undo

        yield mount, fill
        return

    def fill():
        free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
        filler = mount / "filler"
        with open(filler, "wb") as f:
            f.write(b"\0" * max(free - 16 * 1024, 0))
        return filler.unlink

    try:
        yield mount, fill
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_full_disk_stops_training_and_keeps_the_last_checkpoint(photos, full_disk):
    directory, fill = full_disk
    workdir = directory / "run"
    finished = train.train(TrainConfig(**_config(photos, workdir, 2)))["model"]
    # The .keras file written at the end holds what the last checkpoint holds.
    step_2 = [w.numpy() for w in load_colorizer(finished).weights]
    make_room = fill()
    pattern = "could not write a checkpoint .*No space left on device.*ckpt-2 is intact"
    with pytest.raises(ColornetError, match=pattern) as info:
        train.train(TrainConfig(**_config(photos, workdir, 6)))
    message = str(info.value)
    assert "\n" not in message and "{{function_node" not in message and "[Op:" not in message
    assert _listed(str(workdir)) == [2]
    make_room()
    # The workdir loads as it was: checkpoint 2's weights, untouched by the failed run.
    for kept, before in zip(load_colorizer(str(workdir)).weights, step_2, strict=True):
        np.testing.assert_array_equal(kept.numpy(), before)
    # With room again, training resumes from the intact checkpoint.
    assert train.train(TrainConfig(**_config(photos, workdir, 4)))["step"] == 4


def _kill_when(process, condition, timeout=240):
    """SIGKILLs `process` as soon as `condition()` holds; False if it exited first."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            return True
        time.sleep(0.01)  # the windows last a second or more; polling must not steal the CPU
    return False


@pytest.mark.slow
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
        names = os.listdir(base) if base.is_dir() else []
        return any(name.startswith(".tmp-") and os.listdir(base / name) for name in names)

    assert _kill_when(process, writing), process.communicate()[0]
    assert export.existing_versions(str(base)) == []  # only the hidden .tmp-1-* remains
    assert [p.name for p in base.iterdir() if p.name.isdigit()] == []
    # The next export takes version 1 and ignores the leftover.
    result = export.export_saved_model(model, str(base), size=32, warmup=False)
    assert result.version == 1 and export.existing_versions(str(base)) == [1]
    assert os.path.isfile(os.path.join(result.path, "saved_model.pb"))


@pytest.mark.slow
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
        partial = [name for name in os.listdir(tmp_path) if name.startswith(".records.partial-")]
        return [tmp_path / name / shard for name in partial for shard in os.listdir(tmp_path / name)
                if shard.endswith(".tfrecord")]

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
