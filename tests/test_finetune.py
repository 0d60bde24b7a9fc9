"""Fine-tuning from released weights: `colornet train --init-from NAME|FILE|WORKDIR`.

The release is a file of the real ECCV16 layout with random weights (the PyTorch
network of tests/test_official.py, saved by real `torch.save`), served by a local
HTTP server on 127.0.0.1 as `COLORNET_WEIGHTS_MIRROR`, under the real name
`eccv16_imagenet` with the fake's size and checksum swapped into the table. The
oracle for "the init took" is Adam's first step: it moves each weight by at most the
learning rate, so after one step the trained weights must lie within the fine-tuning
rate (3.16e-6) of the released ones, which random initial weights miss by far.
"""

import dataclasses
import hashlib
import io
import json

import numpy as np
import pytest
import tensorflow as tf

torch = pytest.importorskip("torch")

from colornet import cli  # noqa: E402
from colornet.models import Colorizer, solver  # noqa: E402
from colornet.models.loading import load_colorizer, save_compact  # noqa: E402
from colornet.training import train  # noqa: E402
from colornet.training.config import TrainConfig  # noqa: E402
from colornet.utils.errors import ColornetError  # noqa: E402
from colornet.weights import pretrained  # noqa: E402
from tests.helpers.images import smooth_rgb  # noqa: E402
from tests.test_pretrained import Server  # noqa: E402


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(4):
        (folder / f"img{i}.png").write_bytes(tf.io.encode_png(smooth_rgb(40, 48, seed=i)).numpy())
    return str(folder)


@pytest.fixture
def release_on_a_mirror(tmp_path, monkeypatch):
    """`eccv16_imagenet` served from 127.0.0.1; yields the PyTorch state dict as arrays."""
    from tests.test_official import _reference_network

    reference = _reference_network(affine=True, l_scale=100.0, seed=4)
    buffer = io.BytesIO()
    torch.save(reference.state_dict(), buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    real = pretrained.RELEASES["eccv16_imagenet"]
    fake = dataclasses.replace(real, sources=(dataclasses.replace(
        real.sources[0], size=len(data), sha256=hashlib.sha256(data).hexdigest()),))
    monkeypatch.setitem(pretrained.RELEASES, "eccv16_imagenet", fake)
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))
    server = Server()
    server.files[f"/mirror/{real.file_name}"] = data
    monkeypatch.setenv(pretrained.MIRROR_ENV, server.url + "/mirror")
    yield server
    server.stop()


def _train_args(photos, workdir, *extra):
    return ["colornet", "train", "--data", photos, "--workdir", str(workdir), "--steps", "1", "--batch-size", "1",
            "--set", "resize=32", "--set", "crop=32", "--set", "prior=uniform", "--set", "recalibrate_images=0",
            "--set", "checkpoint_every=1", "--set", "num_samples=1", "--set", "verbose=0", *extra]


@pytest.mark.slow
def test_train_init_from_a_release_name_through_a_mirror(photos, release_on_a_mirror, tmp_path, capsys):
    workdir = tmp_path / "run"
    code = cli.main(cli._parse_flags(_train_args(photos, workdir, "--init-from", "eccv16_imagenet")))
    assert code == 0, capsys.readouterr().err
    assert release_on_a_mirror.requests == ["/mirror/colorization_release_v2-9b330a0b.pth"]
    saved = json.loads((workdir / "config.json").read_text())
    # The network followed the weights; the learning rate is the fine-tuning default.
    assert saved["preset"] == "eccv16_pytorch" and saved["init_from"] == "eccv16_imagenet"
    assert saved["learning_rate"] == solver.FINETUNE_LEARNING_RATE == pytest.approx(3.16e-6)
    released = pretrained.load("eccv16_imagenet")
    trained = load_colorizer(workdir / "model.keras")
    # The same network; the fine-tuned model records the prior of its own training.
    assert trained.model_config.replace(rebalancing_weights=None) == released.model_config
    assert trained.model_config.rebalancing_weights == (1.0,) * 313
    moved = [np.max(np.abs(t.numpy() - r.numpy()))
             for t, r in zip(trained.trainable_weights, released.trainable_weights, strict=True)]
    # Adam's first step moves a weight by at most the learning rate (float32 rounding aside).
    assert max(moved) <= solver.FINETUNE_LEARNING_RATE * 1.01 + 1e-6
    assert max(moved) > 0  # and it did train
    fresh = Colorizer.from_preset("eccv16_pytorch")
    assert np.max(np.abs(fresh.trainable_weights[0].numpy() - released.trainable_weights[0].numpy())) > 1e-3

    # A preset that contradicts the weights is one clear line, before any training.
    code = cli.main(cli._parse_flags(_train_args(photos, tmp_path / "other", "--init-from", "eccv16_imagenet",
                                                 "--preset", "eccv16")))
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("colornet train: error: init_from eccv16_imagenet holds the 'eccv16_pytorch' network, not "
                       "the preset 'eccv16' asked for: leave the preset out (the network follows the weights)")
    assert len(release_on_a_mirror.requests) == 1  # from the cache


@pytest.mark.slow
def test_the_preset_follows_a_model_file_and_a_workdir(photos, tmp_path):
    snapshot = tmp_path / "half.npz"
    save_compact(Colorizer.from_preset("tiny"), snapshot, dtype="float32")
    base = dict(data=photos, steps=1, batch_size=2, resize=32, crop=32, prior="uniform", recalibrate_images=0,
                checkpoint_every=1, num_samples=1, verbose=0)
    first = tmp_path / "first"
    train.train(TrainConfig(workdir=str(first), init_from=str(snapshot), **base))
    saved = json.loads((first / "config.json").read_text())
    assert saved["preset"] == "tiny" and saved["learning_rate"] == solver.FINETUNE_LEARNING_RATE
    second = tmp_path / "second"  # from a workdir: its checkpoint, step and optimizer included
    train.train(TrainConfig(workdir=str(second), init_from=str(first), **{**base, "steps": 2}))
    saved = json.loads((second / "config.json").read_text())
    assert saved["preset"] == "tiny" and saved["learning_rate"] == solver.BASE_LEARNING_RATE
    with pytest.raises(ColornetError, match="holds the 'tiny' network, not the preset 'half'"):
        train.train(TrainConfig(workdir=str(tmp_path / "x"), init_from=str(first), preset="half", **base))
    odd = tmp_path / "odd.npz"  # a network that is no preset: the preset must be named
    save_compact(Colorizer.from_preset("tiny", shortcut=True), odd)
    with pytest.raises(ColornetError, match="its network is none of the presets"):
        train.train(TrainConfig(workdir=str(tmp_path / "y"), init_from=str(odd), **base))
    with pytest.raises(ColornetError, match=r"nor a pretrained name \(eccv16_imagenet, "):
        train.train(TrainConfig(workdir=str(tmp_path / "z"), init_from="eccv16_imagnet", **base))
