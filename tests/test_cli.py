"""The `colornet` command and the Python API agree: the same options, one name each
(old spellings kept as aliases), errors that name the option."""

import json
import warnings

import pytest
import tensorflow as tf

from colornet import cli
from colornet.apps import batch
from colornet.deploy import export, tflite
from colornet.training import recalibrate, train
from colornet.training.config import TrainConfig
from colornet.utils.errors import ColornetError
from tests.helpers import deploy_helpers as h
from tests.helpers.images import smooth_rgb

SIZE = h.IMAGE_SIZE


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    h.vivid_tiny_model().save(path)
    return path


@pytest.fixture
def photos(tmp_path):
    """Two photos: 40 x 48 (1,920 pixels) and 60 x 80 (4,800 pixels)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, (height, width) in {"small.png": (40, 48), "large.png": (60, 80)}.items():
        (folder / name).write_bytes(tf.io.encode_png(smooth_rgb(height, width, seed=height)).numpy())
    return folder


def _cli(argv, capsys):
    code = cli.main(cli._parse_flags(["colornet", *argv]))
    out, err = capsys.readouterr()
    return code, out, err


def _error(code, err, command):
    assert code == 1
    (line,) = [line for line in err.splitlines() if line.startswith(f"colornet {command}: error: ")]
    return line


def test_colorize_max_pixels(model_path, photos, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = _cli(["colorize", str(photos), "-o", str(out), "--model", model_path, "--size", str(SIZE),
                         "--max-pixels", "2000"], capsys)
    assert code == 1 and sorted(p.name for p in out.iterdir()) == ["small.png"]
    assert "large.png: decode_image: the file declares 80x60 pixels; the limit is max_pixels=2000" in err
    code, _, err = _cli(["colorize", str(photos), "-o", str(out), "--model", model_path, "--size", str(SIZE),
                         "--max-pixels", "5000"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["large.png", "small.png"]


def test_evaluate_max_pixels(model_path, photos, capsys):
    code, out, err = _cli(["evaluate", "--model", model_path, "--data", str(photos), "--size", str(SIZE),
                           "--resolution", "native", "--max-pixels", "2000"], capsys)
    assert code == 0, err
    summary = json.loads(out[out.index("{"):])
    assert summary["images"] == 1 and summary["skipped"] == 1


@pytest.mark.parametrize("option, value, message", [
    ("--crf", "99", "crf must be an int in 0..51, got 99"),
    ("--temporal-smoothing", "5", "temporal_smoothing"),
    ("--encoder-preset", "warp", "encoder_preset must be one of"),
    ("--batch-size", "0", "batch_size must be an int >= 1, got 0"),
])
def test_video_options_are_checked_without_a_video(model_path, photos, tmp_path, capsys, option, value, message):
    out = tmp_path / "out"
    code, _, err = _cli(["colorize", str(photos), "-o", str(out), "--model", model_path, option, value], capsys)
    assert message in _error(code, err, "colorize")
    assert not out.exists()  # refused before any work


def test_video_precision_and_batch_size_reach_colorize_video(monkeypatch, tmp_path):
    seen = {}

    def fake(inputs, out_dir, model, **kwargs):
        seen.update(kwargs)
        return batch.ColorizeSummary(out_dir=str(out_dir), written=[], failed=[])

    monkeypatch.setattr(batch, "colorize_files", fake)
    argv = ["colornet", "colorize", "clip.mp4", "-o", str(tmp_path), "--precision", "bfloat16", "--batch-size", "3"]
    assert cli.main(cli._parse_flags(argv)) == 0
    assert seen["video_options"] == {"precision": "bfloat16", "batch_size": 3}
    assert cli.main(cli._parse_flags(argv[:5])) == 0
    assert seen["video_options"] == {}  # unset: colorize_video's defaults
    with pytest.raises(SystemExit):
        cli._parse_flags([*argv[:5], "--precision", "mixed_bfloat16"])


def test_one_name_per_concept_old_spellings_kept(model_path, photos, tmp_path, capsys):
    for command in ("colorize", "evaluate"):
        extra = ["-o", str(tmp_path)] if command == "colorize" else ["--data", "d"]
        first = [command, "in"] if command == "colorize" else [command]
        for flag in ("--method", "--decode"):
            assert cli._parse_flags(["colornet", *first, *extra, flag, "mode"]).method == "mode"
    for command in ("export", "tflite"):
        for flag in ("--size", "--image-size"):
            args = cli._parse_flags(["colornet", command, "--model", "m", "--out", "o", flag, "32"])
            assert args.size == 32
    for precision in ("bfloat16", "mixed_bfloat16"):
        args = cli._parse_flags(["colornet", "train", "--data", "d", "--workdir", "w", "--steps", "1",
                                 "--precision", precision])
        assert args.precision == precision
    # Both decode the same way: --decode is --method.
    outputs = []
    for flag in ("--method", "--decode"):
        out = tmp_path / flag.strip("-")
        code, _, err = _cli(["colorize", str(photos / "small.png"), "-o", str(out), "--model", model_path,
                             "--size", str(SIZE), flag, "mode"], capsys)
        assert code == 0, err
        outputs.append((out / "small.png").read_bytes())
    assert outputs[0] == outputs[1]


def test_train_precision_is_bfloat16_mixed_bfloat16_its_old_name(tmp_path):
    base = {"data": "d", "workdir": str(tmp_path), "steps": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert TrainConfig(**base, precision="bfloat16").precision == "bfloat16"
    with pytest.warns(DeprecationWarning, match="mixed_bfloat16.*bfloat16"):
        assert TrainConfig(**base, precision="mixed_bfloat16").precision == "bfloat16"
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(**base, precision="float16")


def test_python_keywords_renamed_with_a_deprecation_warning(model_path, tmp_path):
    model = h.vivid_tiny_model()
    # The old names still work (each call stops at its argument check: no work done).
    with pytest.warns(DeprecationWarning, match=r"convert\(image_size=...\) is deprecated: its name is now size="):
        with pytest.raises(ValueError, match="size must be an int >= 4, got 2"):
            tflite.convert(model, tmp_path / "m.tflite", image_size=2)
    with pytest.warns(DeprecationWarning, match=r"export_saved_model\(image_size=...\)"):
        with pytest.raises(ValueError, match="image_size must be at least 4, got 2"):
            export.export_saved_model(model, tmp_path / "models", image_size=2)
    with pytest.warns(DeprecationWarning, match=r"recalibrate_file\(undo_fraction=...\)"):
        with pytest.raises(Exception, match=r"fraction must be in \[0, 1\], got 2"):
            recalibrate.recalibrate_file(model_path, "photos", str(tmp_path / "m.keras"), undo_fraction=2.0)
    # The new names, without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="size must be an int >= 4, got 2"):
            tflite.convert(model, tmp_path / "m.tflite", size=2)
        with pytest.raises(ValueError, match="image_size must be at least 4, got 2"):
            export.export_saved_model(model, tmp_path / "models", size=2)
        with pytest.raises(Exception, match=r"fraction must be in \[0, 1\], got 2"):
            recalibrate.recalibrate_file(model_path, "photos", str(tmp_path / "m.keras"), undo_rebalancing=2.0)
    with pytest.raises(TypeError, match="got both size= and its old name image_size="):
        tflite.convert(model, tmp_path / "m.tflite", size=32, image_size=32)
    from colornet.utils.errors import renamed

    with pytest.raises(TypeError, match="got both undo_rebalancing= and its old name undo_fraction="):
        renamed("recalibrate_file", "undo_fraction", "undo_rebalancing", 0.5, 0.5)


def test_set_names_the_key_and_the_type(tmp_path, capsys):
    argv = ["train", "--data", str(tmp_path), "--workdir", str(tmp_path / "w"), "--steps", "1"]
    for pair, message in (("k=ten", "--set k: expected an int, got 'ten'"),
                          ("learning_rate=fast", "--set learning_rate: expected a number, got 'fast'"),
                          ("ema=maybe", "--set ema: expected a number, got 'maybe'"),
                          ("verbose=1.5", "--set verbose: expected an int, got '1.5'")):
        code, _, err = _cli([*argv, "--set", pair], capsys)
        assert _error(code, err, "train") == f"colornet train: error: {message}"
    config = TrainConfig(data="d", workdir="w", steps=1)
    assert TrainConfig.from_overrides(config, ["k=7", "learning_rate=1e-3", "prior=none"]).k == 7


@pytest.mark.parametrize("command", ["export", "tflite"])
def test_model_help_names_every_format(command, capsys):
    with pytest.raises(SystemExit):
        cli._parse_flags(["colornet", command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ".keras file, compact .npz, training workdir or a pretrained name" in text


def test_video_options_python_check():
    from colornet.apps import video

    video.check_options(crf=0, batch_size=2, precision="float32")
    with pytest.raises(ValueError, match="crf must be an int in 0..51, got 52"):
        video.check_options(crf=52)
    with pytest.raises(TypeError, match="unknown video options: crff"):
        video.check_options(crff=1)
    video.check_options(None, precision="int8")  # the bundled model has an int8 form; another has not
    with pytest.raises(ColornetError, match="colornet tflite --model MODEL"):
        video.check_options("other.npz", precision="int8")
    summary = batch.colorize_files  # the batch entry point refuses them before any work too
    with pytest.raises(ValueError, match="precision must be one of"):
        summary([], "out", video_options={"precision": "half"})


def test_bfloat16_training_runs_under_keras_mixed_bfloat16(tmp_path, monkeypatch):
    import keras

    policies = []
    monkeypatch.setattr(keras.mixed_precision, "set_global_policy", policies.append)
    monkeypatch.setattr(train, "make_strategy", lambda name: None)

    def stop(config):
        raise RuntimeError("stopped before any work")

    monkeypatch.setattr(train, "_prepare_workdir", stop)
    for precision, policy in (("bfloat16", "mixed_bfloat16"), ("float32", "float32")):
        with pytest.raises(RuntimeError, match="stopped"):
            train.train(TrainConfig(data="d", workdir=str(tmp_path), steps=1, precision=precision))
        assert policies.pop() == policy
