"""Every entry point against the corpus of hostile inputs (tests/helpers/bad_inputs.py).

What each entry point must do with each input class is written in
docs/robustness.md; these tests check it: a one-line error that names the file and
the reason (the CLI: exit 1, no traceback), or the documented handling (first GIF
frame, alpha dropped, CMYK/YCCK converted, 16 bits to 8, EXIF orientation applied),
and batch operations that skip and report a bad file and finish the rest.
"""

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from colornet import cli, data, inference, prior
from colornet.apps import batch
from colornet.data import sources
from colornet.deploy import predictors
from colornet.utils.errors import ColornetError
from tests.helpers import bad_inputs as b
from tests.helpers import deploy_helpers as h
from tests.helpers.images import smooth_rgb

SIZE = 64  # the network's native size in these tests (256 in use)
CASES = b.image_cases()
BAD = sorted(b.bad_cases())
GOOD = sorted(b.good_cases())


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    h.vivid_tiny_model().save(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """`(folder, {name: path})`: every byte-level case as a file."""
    folder = str(tmp_path_factory.mktemp("corpus"))
    return folder, b.write_corpus(folder)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return b.write_path_cases(tmp_path_factory.mktemp("paths"))


def _stderr_lines(text):
    # libjpeg itself prints "Improper call to JPEG library in state 201" for a damaged
    # JPEG (TF's decoder lets it); that line is not ours.
    return [line for line in text.splitlines() if line.strip() and "JPEG library" not in line]


def _cli(argv, capsys):
    """Runs `colornet ARGV` in this process: (exit code, stdout, stderr lines)."""
    code = cli.main(cli._parse_flags(["colornet", *argv]))
    out, err = capsys.readouterr()
    return code, out, _stderr_lines(err)


def _one_line_error(code, err, command, *needles):
    assert code == 1
    errors = [line for line in err if line.startswith(f"colornet {command}: error:")]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


# ----------------------------------------------------------------------------
# Decoding: the library function, eagerly, in a graph and in tf.data.


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.slow
def test_decode_image_every_case(name):
    case = CASES[name]
    for decode in (data.decode_image, tf.function(data.decode_image)):
        if case.readable:
            out = decode(tf.constant(case.content)).numpy()
            assert out.dtype == np.uint8 and out.shape == case.expected.shape
            np.testing.assert_array_equal(out, case.expected)
        else:
            with pytest.raises(tf.errors.InvalidArgumentError, match=case.message):
                decode(tf.constant(case.content)).numpy()


def test_cmyk_and_ycck_are_converted_like_pillow():
    rgb = smooth_rgb(24, 32, seed=11)
    for make in (b.cmyk_jpeg, b.ycck_jpeg):
        content = make(rgb)
        assert Image.open(io.BytesIO(content)).mode == "CMYK"
        out = data.decode_image(content).numpy()
        np.testing.assert_array_equal(out, np.asarray(Image.open(io.BytesIO(content)).convert("RGB")))
        # JPEG at quality 95/100 of a smooth image: within a few levels of the source.
        assert np.abs(out.astype(int) - rgb).max() <= 6


def test_zero_length_element_in_a_string_batch():
    good = CASES["one_by_one"].content
    batch = tf.constant([good, b"", good])
    dataset = tf.data.Dataset.from_tensor_slices(batch).map(data.decode_image).ignore_errors()
    assert [image.shape for image in dataset.as_numpy_iterator()] == [(1, 1, 3), (1, 1, 3)]
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty input"):
        tf.map_fn(lambda x: tf.shape(data.decode_image(x)), batch, fn_output_signature=tf.int32)


@pytest.mark.parametrize("name", sorted(CASES))
def test_read_image_every_case(name, corpus):
    case, path = CASES[name], corpus[1][name]
    if case.readable:
        want = case.upright if case.upright is not None else case.expected
        np.testing.assert_array_equal(data.read_image(path), want)
    else:
        with pytest.raises(ColornetError, match=case.message) as info:
            data.read_image(path)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "\n" not in message


def test_read_image_path_cases(paths):
    for path in (paths.non_utf8, paths.long_name):
        assert data.read_image(path).shape == (20, 24, 3)
    for path, reason in (
        (paths.directory, "Is a directory"),
        (paths.missing, "No such file"),
        (os.path.join(paths.under_file, "x.png"), "Not a directory"),
    ):
        with pytest.raises(ColornetError, match=reason) as info:
            data.read_image(path)
        assert str(info.value).startswith(f"{path}: cannot read the file")


def test_pipelines_skip_and_count_every_bad_case(corpus, paths):
    folder, written = corpus
    sources = [folder, paths.non_utf8, paths.long_name]
    images, skipped = data.decoded_images(sources, resize=None)
    shapes = [image.shape for image in images.as_numpy_iterator()]
    assert skipped.listed == len(CASES) + 2
    assert skipped.count == len(BAD)
    assert skipped.paths == sorted(written[name] for name in BAD)
    assert len(shapes) == len(GOOD) + 2
    counter = data.SkipCounter()
    batches = data.eval_dataset(sources, batch_size=4, crop=32, resize=32, skip_counter=counter)
    assert sum(int(l_raw.shape[0]) for l_raw, _ in batches) == len(GOOD) + 2
    assert counter.count == len(BAD)
    train = data.train_dataset(sources, batch_size=4, crop=32, resize=32, seed=1)
    for l_raw, ab in train.take(3):
        assert l_raw.shape == (4, 32, 32, 1) and np.isfinite(ab.numpy()).all()


def test_a_folder_of_only_bad_files_raises_instead_of_spinning(tmp_path):
    b.write_corpus(str(tmp_path), names=BAD)
    images, _ = data.decoded_images(str(tmp_path), resize=None)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"none of the {len(BAD)} images"):
        list(images)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"none of the {len(BAD)} images"):
        next(iter(data.train_dataset(str(tmp_path), batch_size=2, crop=8, resize=8, seed=0)))


# ----------------------------------------------------------------------------
# colorize() on arrays.


@pytest.mark.parametrize(
    "image,message",
    [
        (np.zeros((0, 5, 3), np.uint8), "must not be empty"),
        (np.zeros((4, 4, 2), np.uint8), "must have shape"),
        (np.zeros((2, 4, 4, 3), np.uint8), "must have shape"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN or Inf"),
        (np.full((4, 4, 3), np.inf, np.float64), "NaN or Inf"),
        (np.full((4, 4, 3), 2.0, np.float32), r"in \[0, 1\]"),
        (np.full((4, 4, 3), -0.5, np.float32), r"in \[0, 1\]"),
        (np.zeros((4, 4, 3), np.int64), "uint8, uint16 or float"),
        (np.zeros((4, 4, 3), bool), "uint8, uint16 or float"),
    ],
    ids=["empty", "two-channels", "batch", "nan", "inf", "above-1", "below-0", "int64", "bool"],
)
def test_colorize_rejects_bad_arrays(model_path, image, message):
    with pytest.raises(ValueError, match=message):
        predictors.colorize(image, model=model_path, size=SIZE)


def test_colorize_tiny_and_odd_arrays(model_path):
    for image in (
        np.array([[[200, 30, 60]]], np.uint8),
        smooth_rgb(2, 3, seed=1),
        np.full((3, 2), 65535, np.uint16),
        np.zeros((5, 7, 4), np.float64),
    ):
        out = predictors.colorize(image, model=model_path, size=SIZE)
        assert out.dtype == np.uint8 and out.shape == image.shape[:2] + (3,)


def test_nan_l_into_the_network_is_a_clear_error(model_path):
    predictor = predictors.load_predictor(model_path)
    l_raw = np.full((8, 8, 1), 50.0, np.float32)
    for bad in (np.nan, np.inf):
        l_raw[3, 3] = bad
        with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
            inference.predict_rgb(predictor, l_raw, SIZE)
    # Out-of-range L (no image has it) is clipped to 0..100.
    for value, clipped in ((-1e4, 0.0), (3e38, 100.0)):
        out = inference.predict_rgb(predictor, np.full((8, 8, 1), value, np.float32), SIZE)
        want = inference.predict_rgb(predictor, np.full((8, 8, 1), clipped, np.float32), SIZE)
        np.testing.assert_array_equal(out.numpy(), want.numpy())


# ----------------------------------------------------------------------------
# colorize_files and `colornet colorize`.


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_colorize_files_over_the_corpus(model_path, corpus, paths, tmp_path, capsys):
    folder, written = corpus
    out = str(tmp_path / "out")
    summary = batch.colorize_files(
        [folder, paths.non_utf8, paths.long_name, paths.directory, paths.missing],
        out,
        model=model_path,
        size=SIZE,
    )
    names = {os.path.basename(name) for name in (paths.non_utf8, paths.long_name)}
    assert _files(out) == sorted([f"{name}.png" for name in GOOD] + [os.path.splitext(n)[0] + ".png" for n in names])
    failed = dict(summary.failed)
    assert set(failed) == {written[name] for name in BAD} | {paths.directory, paths.missing}
    for name in BAD:
        reason = failed[written[name]]
        assert "\n" not in reason and not reason.startswith(written[name])
    assert "no such file" in failed[paths.missing]
    assert "no image files" in failed[paths.directory]
    for name in GOOD:
        case = CASES[name]
        want = case.upright if case.upright is not None else case.expected
        assert np.asarray(Image.open(os.path.join(out, name + ".png"))).shape == want.shape
    err = _stderr_lines(capsys.readouterr().err)
    for path in failed:
        assert len([line for line in err if line.startswith(f"colornet: skipped {path}: ")]) == 1


@pytest.mark.slow
def test_cli_colorize_corpus_in_a_fresh_process(model_path, corpus, paths, tmp_path):
    """The real command: exit 1, each bad file on one stderr line, no traceback."""
    folder, written = corpus
    out = str(tmp_path / "out")
    proc = subprocess.run(
        [sys.executable, "-m", "colornet.cli", "colorize", folder, paths.non_utf8, paths.missing,
         "-o", out, "--model", model_path, "--size", str(SIZE)],
        check=False,
        capture_output=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    stderr = proc.stderr.decode("utf-8", "surrogateescape")
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    for name in BAD:
        lines = [line for line in stderr.splitlines() if line.startswith(f"colornet: skipped {written[name]}: ")]
        assert len(lines) == 1, (name, stderr)
    assert len(_files(out)) == len(GOOD) + 1
    assert f"wrote {len(GOOD) + 1} images" in proc.stdout.decode()


def test_cli_colorize_unusable_output_and_model(model_path, corpus, paths, tmp_path, capsys):
    good = corpus[1]["one_by_one"]
    code, _, err = _cli(["colorize", good, "-o", paths.under_file, "--model", model_path], capsys)
    _one_line_error(code, err, "colorize", paths.under_file, "Not a directory")
    code, _, err = _cli(["colorize", good, "-o", corpus[1]["random"], "--model", model_path], capsys)
    _one_line_error(code, err, "colorize", "is not a directory")
    for model, reason in (
        (paths.missing, "no such file"),
        (corpus[1]["random"], "expected a .keras file"),
        (paths.directory, "neither a training workdir"),
    ):
        code, _, err = _cli(["colorize", good, "-o", str(tmp_path / "o"), "--model", model], capsys)
        _one_line_error(code, err, "colorize", model, reason)


def test_cli_colorize_hostile_model_files(corpus, tmp_path, capsys):
    good = corpus[1]["one_by_one"]
    for name, content in (
        ("empty.keras", b""),
        ("random.keras", np.random.default_rng(1).bytes(2000)),
        ("text.keras", b"not a zip archive\n"),
        ("empty.tflite", b""),
        ("random.tflite", np.random.default_rng(2).bytes(2000)),
    ):
        model = str(tmp_path / name)
        with open(model, "wb") as f:
            f.write(content)
        code, _, err = _cli(["colorize", good, "-o", str(tmp_path / "o"), "--model", model], capsys)
        _one_line_error(code, err, "colorize", model, "not a loadable colornet")
    compact = {"format": "colornet-compact", "model_config": {}}
    for name, arrays in (
        ("random.npz", None),
        ("list-meta.npz", {"meta": np.array("[]")}),
        ("list-config.npz", {"meta": np.array(json.dumps({**compact, "model_config": [1]}))}),
        ("unknown-field.npz", {"meta": np.array(json.dumps({**compact, "model_config": {"x": 1}}))}),
        ("wrong-weights.npz", {"meta": np.array(json.dumps(compact)), "w0": np.zeros(3)}),
    ):
        model = str(tmp_path / name)
        if arrays is None:
            with open(model, "wb") as f:
                f.write(np.random.default_rng(3).bytes(500))
        else:
            np.savez(model, **arrays)
        code, _, err = _cli(["colorize", good, "-o", str(tmp_path / "o"), "--model", model], capsys)
        _one_line_error(code, err, "colorize", model, "not a colornet weights file")
    workdir = tmp_path / "workdir"
    (workdir / "checkpoints").mkdir(parents=True)
    (workdir / "config.json").write_text("{not json")
    (workdir / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\n')
    (workdir / "checkpoints" / "ckpt-3.index").write_bytes(b"garbage")
    code, _, err = _cli(["colorize", good, "-o", str(tmp_path / "o"), "--model", str(workdir)], capsys)
    _one_line_error(code, err, "colorize", "config.json")
    (workdir / "config.json").write_text(json.dumps({"preset": "tiny"}))
    code, _, err = _cli(["colorize", good, "-o", str(tmp_path / "o"), "--model", str(workdir)], capsys)
    _one_line_error(code, err, "colorize", "ckpt-3", "cannot restore")


# ----------------------------------------------------------------------------
# The batch commands: evaluate, prior, prepare, train.


@pytest.mark.slow
def test_cli_evaluate_prior_prepare_skip_and_report(model_path, corpus, paths, tmp_path, capsys):
    folder, written = corpus
    code, out, _ = _cli(
        ["evaluate", "--model", model_path, "--data", folder, "--size", str(SIZE),
         "--json", str(tmp_path / "e.json")],
        capsys,
    )
    assert code == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["images"] == len(GOOD) and result["skipped"] == len(BAD)
    assert result["skipped_files"] == sorted(written[name] for name in BAD)
    assert f"{len(BAD)} unreadable, skipped" in out

    code, out, _ = _cli(["prior", "--data", folder, "--out", str(tmp_path / "p.npz"), "--resize", "16"], capsys)
    assert code == 0 and f"images {len(GOOD)}, skipped {len(BAD)}" in out
    assert prior.load_prior(str(tmp_path / "p.npz")).metadata["skipped"] == len(BAD)

    code, out, _ = _cli(["prepare", "--data", folder, "--out", str(tmp_path / "rec")], capsys)
    assert code == 0 and f"{len(GOOD)} images in 1 shards, {len(BAD)} skipped" in out
    with open(tmp_path / "rec" / sources.MANIFEST_NAME) as f:
        manifest = json.load(f)
    reasons = {item["path"]: item["reason"] for item in manifest["skipped"]}
    for name in BAD:
        assert reasons[written[name]] and "\n" not in reasons[written[name]]
    assert "empty input" in reasons[written["empty"]]
    assert "100000x100000" in reasons[written["bomb_png"]]


def test_batch_commands_take_odd_file_names(model_path, paths, tmp_path, capsys):
    """A name that is not UTF-8 and a 250-byte name are read by every pipeline."""
    folder = os.path.dirname(paths.non_utf8)
    code, out, _ = _cli(["prior", "--data", folder, "--out", str(tmp_path / "p.npz"), "--resize", "16"], capsys)
    assert code == 0 and "images 2, skipped 0" in out
    code, out, _ = _cli(["prepare", "--data", folder, "--out", str(tmp_path / "rec")], capsys)
    assert code == 0 and "2 images in 1 shards, 0 skipped" in out
    records = data.decoded_images(str(tmp_path / "rec"), resize=None)[0]
    assert len(list(records)) == 2
    code, _, _ = _cli(["evaluate", "--model", model_path, "--data", folder, "--size", str(SIZE)], capsys)
    assert code == 0
    # A long output name: the hidden temporary directory beside it still fits.
    long_out = str(tmp_path / ("r" * 250))
    code, out, _ = _cli(["prepare", "--data", folder, "--out", long_out], capsys)
    assert code == 0 and os.path.isfile(os.path.join(long_out, sources.MANIFEST_NAME))


@pytest.mark.parametrize("command", ["prior", "prepare", "evaluate"])
def test_batch_commands_bad_paths_are_one_line(command, model_path, corpus, paths, capsys):
    folder = corpus[0]
    extra = ["--model", model_path, "--size", str(SIZE)] if command == "evaluate" else []
    out_flag = {"prior": ["--out", paths.under_file + ".npz"], "prepare": ["--out", paths.under_file],
                "evaluate": ["--json", paths.under_file + ".json"]}[command]
    # prior refuses its --out before it looks at the data; the others find the missing data first.
    named = paths.under_file if command == "prior" else paths.missing
    code, _, err = _cli([command, "--data", paths.missing, *out_flag, *extra], capsys)
    _one_line_error(code, err, command, named)
    code, _, err = _cli([command, "--data", folder, *out_flag, *extra], capsys)
    _one_line_error(code, err, command, "plain_file")
    bad_only = os.path.join(folder, "random.png")
    code, _, err = _cli([command, "--data", bad_only, "--out" if command != "evaluate" else "--json",
                         os.path.join(os.path.dirname(paths.under_file), f"x-{command}"), *extra], capsys)
    _one_line_error(code, err, command)


def test_cli_train_on_bad_data_and_paths(corpus, paths, tmp_path, capsys):
    args = ["--preset", "tiny", "--steps", "2", "--batch-size", "2", "--set", "resize=16",
            "--set", "crop=8", "--set", "prior=uniform", "--set", "verbose=0"]
    bad_only = str(tmp_path / "bad")
    b.write_corpus(bad_only, names=BAD)
    code, _, err = _cli(["train", "--data", bad_only, "--workdir", str(tmp_path / "w"), *args], capsys)
    _one_line_error(code, err, "train", f"none of the {len(BAD)} images")
    code, _, err = _cli(["train", "--data", corpus[0], "--workdir", paths.under_file, *args], capsys)
    _one_line_error(code, err, "train", "cannot write to workdir", "plain_file")
    code, _, err = _cli(["train", "--data", paths.missing, "--workdir", str(tmp_path / "w2"), *args], capsys)
    _one_line_error(code, err, "train", paths.missing)


# ----------------------------------------------------------------------------
# The serving signatures and the TFLite helper (colornet/deploy/export.py, tflite.py).


@pytest.fixture(scope="module")
def loaded_export(tmp_path_factory):
    """The default export (no XLA: tests/test_fuzz.py fuzzes the shared XLA one)."""
    from colornet.deploy import export

    base = tmp_path_factory.mktemp("export") / "colornet"
    result = export.export_saved_model(
        h.vivid_tiny_model(), base, size=SIZE, max_pixels=h.MAX_PIXELS, warmup=False
    )
    return tf.saved_model.load(result.path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_serving_default_every_case(loaded_export, name):
    case = CASES[name]
    signature = loaded_export.signatures["serving_default"]
    batch = tf.constant([CASES["three_by_two"].content, case.content])
    if case.readable:
        pngs = signature(image_bytes=batch, temperature=tf.constant(0.38))["colorized_png_bytes"]
        # Each image at its own size; as decode_image gives it (no EXIF rotation).
        assert tf.io.decode_png(pngs[1]).shape == case.expected.shape
    else:
        message = case.message.replace("max_pixels", f"max_pixels={h.MAX_PIXELS}")
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            signature(image_bytes=batch, temperature=tf.constant(0.38))


def _l_with(value, side=8):
    l_raw = np.full((1, side, side, 1), 50.0, np.float32)
    l_raw[0, 3, 3] = value
    return tf.constant(l_raw)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_exported_tensor_signatures_refuse_nan_l(loaded_export, bad):
    signatures = loaded_export.signatures
    with pytest.raises(tf.errors.InvalidArgumentError, match="L contains NaN or Inf"):
        signatures["colorize_l"](l_raw=_l_with(bad), temperature=tf.constant(0.38))
    with pytest.raises(tf.errors.InvalidArgumentError, match="L contains NaN or Inf"):
        signatures["probabilities"](l_raw=_l_with(bad))


def test_exported_tensor_signatures_clip_out_of_range_l(loaded_export):
    """Finite L outside 0..100 is clipped, as `inference.checked_l` does: the outputs
    equal those of the clipped input exactly (the same graph runs on the same values)."""
    signatures = loaded_export.signatures
    t = tf.constant(0.38)
    for value, clipped in ((-1e4, 0.0), (3e38, 100.0)):
        got = signatures["colorize_l"](l_raw=_l_with(value), temperature=t)
        want = signatures["colorize_l"](l_raw=_l_with(clipped), temperature=t)
        for key in ("ab", "rgb"):
            np.testing.assert_array_equal(got[key].numpy(), want[key].numpy())
        got = signatures["probabilities"](l_raw=_l_with(value))["logits"]
        want = signatures["probabilities"](l_raw=_l_with(clipped))["logits"]
        np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.fixture(scope="module")
def tflite_model(tmp_path_factory):
    from colornet.deploy import tflite

    path = str(tmp_path_factory.mktemp("tflite") / "tiny.tflite")
    return tflite.TFLiteColorizer(tflite.convert(h.vivid_tiny_model(), path, size=SIZE).path)


def test_tflite_helper_on_the_readable_cases(tflite_model, corpus):
    for name in GOOD:
        rgb = data.read_image(corpus[1][name])
        out = tflite_model.colorize(rgb)
        assert out.dtype == np.uint8 and out.shape == rgb.shape
    with pytest.raises(ValueError, match="l_raw must have shape"):
        tflite_model(np.zeros((1, 8, 8, 1), np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_tflite_helper_refuses_nan_l(tflite_model, bad):
    l_raw = _l_with(bad, side=SIZE).numpy()
    with pytest.raises(ValueError, match="L contains NaN or Inf"):
        tflite_model(l_raw)


def test_tflite_helper_clips_out_of_range_l(tflite_model):
    for value, clipped in ((-1e4, 0.0), (3e38, 100.0)):
        got = tflite_model(_l_with(value, side=SIZE).numpy())
        want = tflite_model(_l_with(clipped, side=SIZE).numpy())
        for key in ("ab", "logits"):
            np.testing.assert_array_equal(got[key], want[key])


# ----------------------------------------------------------------------------
# Safety: no code from files is run, nothing is written outside what was asked for.


_PTH_READER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "colornet", "weights", "pth.py")


def test_package_has_no_lambda_layers_or_pickle():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    offenders = []
    for folder in ("colornet", "serving"):
        for directory, _, names in os.walk(os.path.join(root, folder)):
            for name in names:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        code = line.split("#", 1)[0]
                        if "Lambda(" in code or "safe_mode=False" in code or "unsafe_deserialization" in code:
                            offenders.append(f"{path}:{number}: {line.strip()}")
                        # np.load(..., allow_pickle=False) is the one allowed mention, and
                        # colornet/weights/pth.py, whose unpickler admits only tensors (tests/test_pth.py).
                        if "pickle" in code.replace("allow_pickle=False", "") and path != _PTH_READER:
                            offenders.append(f"{path}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_the_docs_say_which_module_unpickles_and_claim_no_pickle_nowhere():
    # The docs' safety claims must describe the code: colornet/weights/pth.py subclasses
    # pickle.Unpickler (restricted to tensors), so "no pickle" would be untrue.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(_PTH_READER, encoding="utf-8") as f:
        assert "pickle.Unpickler" in f.read()
    for doc in (os.path.join("docs", "robustness_summary.md"), os.path.join("docs", "robustness.md")):
        with open(os.path.join(root, doc), encoding="utf-8") as f:
            text = " ".join(f.read().split())
        assert not re.search(r"\bno `?pickle\b", text, re.IGNORECASE), doc
        said = [sentence for sentence in re.split(r"(?<=\.) ", text) if "unpickler" in sentence.lower()]
        assert any("pth.py" in sentence and "restricted" in sentence for sentence in said), doc


def test_keras_file_with_a_lambda_layer_is_refused_unrun(tmp_path, corpus, capsys):
    import keras

    marker = tmp_path / "code-ran"
    # A Lambda whose function leaves a mark when called: built (and called) here once.
    function = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
    inputs = keras.Input((None, None, 1))
    evil = str(tmp_path / "evil.keras")
    keras.Model(inputs, keras.layers.Lambda(function)(inputs)).save(evil)
    marker.unlink()
    from colornet.models.loading import load_colorizer

    with pytest.raises(ColornetError, match="Lambda.*safe_mode|safe_mode.*Lambda") as info:
        load_colorizer(evil)
    assert str(info.value).startswith(f"{evil}: not a loadable colornet model")
    code, _, err = _cli(["colorize", corpus[1]["one_by_one"], "-o", str(tmp_path / "o"), "--model", evil], capsys)
    _one_line_error(code, err, "colorize", evil, "Lambda")
    assert not marker.exists()


class _LeavesAMark:
    """Unpickling this creates the directory `path`."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_prior_file_with_pickled_objects_is_refused_unrun(tmp_path, capsys):
    marker = str(tmp_path / "code-ran")
    evil = str(tmp_path / "evil.npz")
    good = prior.default_prior()
    np.savez(evil, probs=good.probs, weights=np.array([_LeavesAMark(marker)], dtype=object),
             counts=good.counts, bins=np.zeros((313, 2), np.float32), metadata=np.array("{}"))
    code, _, err = _cli(["prior", "--show", evil], capsys)
    _one_line_error(code, err, "prior", evil, "not a colornet prior file")
    assert not os.path.exists(marker)


def _snapshot(root, skip):
    found = {}
    for directory, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(directory, d) not in skip]
        for name in dirs + names:
            path = os.path.join(directory, name)
            if path not in skip:
                stat = os.lstat(path)
                # A directory's mtime changes when an output is created in it.
                found[path] = (stat.st_mode,) if name in dirs else (stat.st_mode, stat.st_size, stat.st_mtime_ns)
    return found


def _official_file(path):
    """A random-weight file of the authors' PyTorch release layout (`import-official`)."""
    import torch

    from tests.test_official import _reference_network

    torch.save(_reference_network(affine=True, l_scale=100.0, seed=0).state_dict(), path)
    return path


@pytest.mark.slow
def test_commands_write_only_where_asked(model_path, tmp_path, capsys, monkeypatch):
    """Every `colornet` command writes only the outputs it was asked for: the working
    directory, HOME, the temporary directory and the weights cache all lie inside the
    watched tree, so a stray file anywhere would show."""
    import tempfile

    from colornet.models import presets
    from colornet.weights import pretrained

    root = tmp_path / "tree"
    inputs = root / "in"
    b.write_corpus(str(inputs), names=["one_by_one", "three_by_two", "rgba_png", "random", "exif6_jpeg"])
    photos = root / "photos"  # readable only, large enough to train and recalibrate on
    photos.mkdir()
    for i in range(3):
        (photos / f"{i}.png").write_bytes(tf.io.encode_png(smooth_rgb(40, 48, seed=i)).numpy())
    official_path = str(_official_file(root / "release.pth"))
    with open(official_path, "rb") as f:
        official_bytes = f.read()
    monkeypatch.setattr(pretrained, "RELEASES", dict(pretrained.RELEASES))
    monkeypatch.setattr(presets, "PRETRAINED", dict(presets.PRETRAINED))
    import hashlib

    pretrained.register(pretrained.Release(
        name="fake_release", description="a fake release for this test",
        sources=(pretrained.Source(
            url="https://example.invalid/fake.pth", size=len(official_bytes),
            sha256=hashlib.sha256(official_bytes).hexdigest(), checksum_source="the test",
            host="the test", network="eccv16_pytorch",
        ),),
    ))
    (root / "prior_out").mkdir()
    for name in ("home", "tmp", "cwd"):
        (root / name).mkdir()
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "home" / ".cache"))
    monkeypatch.setenv("TMPDIR", str(root / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(root / "tmp"))
    monkeypatch.setenv(pretrained.CACHE_ENV, str(root / "cache"))
    monkeypatch.delenv(pretrained.MIRROR_ENV, raising=False)
    monkeypatch.chdir(root / "cwd")
    asked = ("colorized", "records", "prior_out", "models", "eval.json", "run", "recalibrated.npz",
             "official.keras", "model.tflite", "demo", "cache")
    outs = {str(root / name) for name in asked}
    before = _snapshot(str(tmp_path), outs)
    commands = (
        ["colorize", str(inputs), "-o", str(root / "colorized"), "--model", model_path, "--size", str(SIZE)],
        ["prepare", "--data", str(inputs), "--out", str(root / "records")],
        ["prior", "--data", str(inputs), "--out", str(root / "prior_out" / "p.npz"), "--resize", "16"],
        ["evaluate", "--model", model_path, "--data", str(inputs), "--size", str(SIZE),
         "--json", str(root / "eval.json")],
        ["export", "--model", model_path, "--out", str(root / "models"), "--size", "32", "--no-warmup"],
        ["train", "--data", str(photos), "--workdir", str(root / "run"), "--preset", "tiny", "--steps", "1",
         "--batch-size", "2", "--set", "crop=32", "--set", "resize=40", "--set", "recalibrate_images=2",
         "--set", "checkpoint_every=1", "--set", "sample_every=1000"],
        ["recalibrate", "--model", model_path, "--data", str(photos), "--out", str(root / "recalibrated.npz"),
         "--images", "2", "--size", "32"],
        ["import-official", official_path, "-o", str(root / "official.keras")],
        ["tflite", "--model", model_path, "--out", str(root / "model.tflite"), "--size", "32"],
        ["demo", str(photos), "-o", str(root / "demo"), "--model", model_path],
        ["pretrained"],
        ["pretrained", "fake_release", "--file", official_path],
    )
    ran = set()
    for argv in commands:
        code, _, err = _cli(argv, capsys)
        assert code in (0, 1), (argv, err)  # colorize and evaluate exit 1: one input is unreadable
        ran.add(argv[0])
    # `colornet app` serves until stopped: tests/test_app.py checks that it writes only
    # in its own temporary directory and removes it on SIGTERM.
    assert ran == _subcommands() - {"app"}
    after = _snapshot(str(tmp_path), outs)
    # TensorFlow's autograph writes the Python of each function it converts into the
    # temporary directory and removes it when the process ends: TensorFlow's, not ours.
    after = {p: v for p, v in after.items() if not os.path.basename(p).startswith("__autograph_generated_file")}
    assert after == before
    assert sorted(os.listdir(root / "prior_out")) == ["p.npz"]
    assert sorted(os.listdir(root / "models")) == ["1"]
    assert len(os.listdir(root / "colorized")) == 4
    for name in ("run", "recalibrated.npz", "official.keras", "model.tflite", "demo", "cache"):
        assert (root / name).exists(), name


def _subcommands():
    """The names of every `colornet` subcommand, from the parser itself."""
    return set(cli.build_parser().commands)


def test_cli_export_and_tflite_bad_paths(model_path, corpus, paths, tmp_path, capsys):
    for command in ("export", "tflite"):
        out = str(tmp_path / command)
        for model, reason in ((paths.missing, "no such file"), (corpus[1]["random"], "expected a .keras file")):
            code, _, err = _cli([command, "--model", model, "--out", out], capsys)
            _one_line_error(code, err, command, model, reason)
    plain_file = os.path.dirname(paths.under_file)
    code, _, err = _cli(["export", "--model", model_path, "--out", paths.under_file, "--no-warmup"], capsys)
    _one_line_error(code, err, "export", paths.under_file, f"{plain_file} is not a directory")
    out = os.path.join(paths.under_file, "model.tflite")
    code, _, err = _cli(["tflite", "--model", model_path, "--out", out], capsys)
    _one_line_error(code, err, "tflite", out, f"{plain_file} is not a directory")
    code, _, err = _cli(["export", "--model", model_path, "--out", corpus[1]["random"]], capsys)
    _one_line_error(code, err, "export", "is not a directory")
