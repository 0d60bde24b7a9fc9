"""What `colornet` prints: its own messages only (unless asked), and progress bars that end their line."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from colornet import cli, console

# glog's prefix: severity, date, time, thread id, e.g. "I0000 00:00:1796213867.522283    5847 ".
_GLOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ ")


def _environment(**extra):
    # conftest.py sets TF_CPP_MIN_LOG_LEVEL for this process; a user's shell has none.
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return {**env, **extra}


def _run(command, **extra_env):
    return subprocess.run(
        command, check=False, capture_output=True, text=True, env=_environment(**extra_env), timeout=300
    )


def _colornet(*args, **extra_env):
    return _run([sys.executable, "-m", "colornet.cli", *args], **extra_env)


def _normalised(stderr):
    return [_GLOG_PREFIX.sub("", line) for line in stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def tensorflow_start_up_lines():
    """What TensorFlow and Keras print on stderr by themselves while loading and looking
    for devices, in a fresh process without colornet: the oracle of the noise."""
    script = "import keras, tensorflow as tf; tf.config.list_physical_devices()"
    lines = _normalised(_run([sys.executable, "-c", script]).stderr)
    if not lines:
        pytest.skip("TensorFlow prints nothing while it loads on this machine")
    return lines


def test_a_command_prints_only_its_own_messages_and_ends_progress_lines(tensorflow_start_up_lines, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 256, (24, 30, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    bad = folder / "bad.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "prior.npz"
    run = _colornet("prior", "--data", str(folder), "--out", str(out), "--resize", "16")
    assert run.returncode == 0, run.stderr
    # The skipped file is colornet's own message; TensorFlow's lines are gone.
    assert run.stderr.splitlines() == [f"colornet: skipping unreadable image: {bad}"]
    # 3 of the 4 listed images: the bar stopped short of its total and still ended its line.
    lines = run.stdout.split("\n")
    assert f"wrote {out}" in lines, run.stdout
    assert "3/4" in run.stdout


def test_verbose_and_the_users_own_log_level_show_tensorflow(tensorflow_start_up_lines):
    runs = [
        (["prior", "--show", "default", "--verbose"], {}),
        (["prior", "--show", "default"], {"TF_CPP_MIN_LOG_LEVEL": "0"}),
    ]
    for args, env in runs:
        run = _colornet(*args, **env)
        assert run.returncode == 0, run.stderr
        shown = _normalised(run.stderr)
        missing = [line for line in tensorflow_start_up_lines if line not in shown]
        assert not missing, (args, env, run.stderr)


def test_verbose_before_or_after_the_subcommand():
    def verbose(*argv):
        return cli._parse_flags(["colornet", *argv]).verbose

    assert verbose("--verbose", "prior", "--show", "default")
    assert verbose("prior", "--show", "default", "--verbose")
    assert not verbose("prior", "--show", "default")


def test_held_stderr_drops_what_it_caught_unless_the_block_fails(capfd):
    with console.held_stderr():
        os.write(2, b"noise from C++\n")  # TensorFlow writes to the descriptor, not sys.stderr
    print("after", file=sys.stderr)
    assert capfd.readouterr().err == "after\n"
    with pytest.raises(ImportError), console.held_stderr():
        os.write(2, b"why the import failed\n")
        raise ImportError("broken")
    assert capfd.readouterr().err == "why the import failed\n"


def test_progress_bar_ends_its_line_however_the_work_ends(capsys):
    with console.progress_bar(5) as bar:
        bar.update(3)  # stops short: files skipped
    assert capsys.readouterr().out.endswith("\n")
    with pytest.raises(RuntimeError), console.progress_bar(5) as bar:
        bar.update(1)
        raise RuntimeError
    assert capsys.readouterr().out.endswith("\n")
    with console.progress_bar(2) as bar:
        bar.update(1)
        bar.update(2)  # complete: Keras ends the line, close adds nothing
    assert capsys.readouterr().out.count("\n") == 1
    with console.progress_bar(5, verbose=0) as bar:
        assert bar is None
    assert capsys.readouterr().out == ""
