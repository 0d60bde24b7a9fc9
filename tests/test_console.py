"""What `colornet` prints: its own messages only (unless asked), and progress bars that end their line."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from colornet import cli

# glog's prefix: severity, date, time, thread id, e.g. "I0000 00:00:1796213867.522283    5847 ".
from colornet.utils import console

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


@pytest.mark.slow
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


@pytest.mark.slow
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


def _photos(folder, count):
    folder.mkdir()
    for i in range(count):
        pixels = np.random.default_rng(i).integers(0, 256, (24, 30, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return sorted(folder.iterdir())


@pytest.mark.slow
def test_a_skipped_file_is_reported_on_a_line_of_its_own(tmp_path):
    from tests.helpers import deploy_helpers as h

    model = tmp_path / "tiny.keras"
    h.vivid_tiny_model().save(model)
    good = _photos(tmp_path / "photos", 2)
    bad = tmp_path / "photos" / "bad.png"
    bad.write_bytes(b"not an image")
    # stdout (the bar) and stderr (the skip) into one pipe, as on a terminal; Keras
    # draws the bar dynamically there too (it redraws its line with \r).
    run = subprocess.run(
        [sys.executable, "-m", "colornet.cli", "colorize", str(good[0]), str(bad), str(good[1]),
         "-o", str(tmp_path / "out"), "--model", str(model), "--size", "32"],
        check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_environment(),
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout
    skipped = f"colornet: skipped {bad}: "
    assert run.stdout.count(skipped) == 1, run.stdout
    before = run.stdout.split(skipped)[0]
    assert before.endswith("\n") and "1/3" in before, repr(run.stdout)
    assert sorted(os.listdir(tmp_path / "out")) == ["0.png", "1.png"]


def test_sigterm_stops_a_command_as_ctrl_c_does(tmp_path, capsys, monkeypatch):
    import signal

    from colornet.apps import batch
    from tests.helpers import deploy_helpers as h

    model = tmp_path / "tiny.keras"
    h.vivid_tiny_model().save(model)
    photos = _photos(tmp_path / "photos", 3)
    write_png = batch.write_png

    def terminated_while_writing(path, rgb):
        def write_and_be_killed(tmp_path_arg, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)  # `kill PID`, `timeout`, `docker stop`
            return real_open(tmp_path_arg, *args, **kwargs)

        monkeypatch.setattr("builtins.open", write_and_be_killed)
        try:
            write_png(path, rgb)
        finally:
            monkeypatch.setattr("builtins.open", real_open)

    real_open = open
    monkeypatch.setattr(batch, "write_png", terminated_while_writing)
    before = signal.getsignal(signal.SIGTERM)
    argv = ["colornet", "colorize", *map(str, photos), "-o", str(tmp_path / "out"), "--model", str(model),
            "--size", "32"]  # fmt: skip
    assert cli.main(cli._parse_flags(argv)) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.strip().splitlines() == ["colornet colorize: terminated"]
    assert os.listdir(tmp_path / "out") == []  # not even the hidden temporary file
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the command's only
