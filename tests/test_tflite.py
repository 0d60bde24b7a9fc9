"""TFLite conversion: builtin ops only, each quantisation against the Keras model, the
runtime helper and serving/tflite_colorize.py (NumPy + Pillow + LiteRT only).

Error bounds, for the vivid tiny model of tests/helpers/deploy_helpers.py (random weights,
logits with std ~3, |ab| ~40 on average) at 64 x 64, as the mean absolute ab error
per image against eager Keras in float32 (measured values in brackets):
"none" 1e-3 (~2e-5), "float16" 0.1 (0.03), "dynamic" 1.0 (0.37), "int8" 2.0 (0.9,
1.3, 0.9; the "auto" calibration keeps the converter's minimum and maximum here, as
random weights have none of the long activation tails that a percentile cuts off in
a trained model; with the 99.9th percentile 1.6, 2.8, 1.6). See
benchmarks/deploy.py and README for a trained model on real photos.
"""

import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from colornet import cli
from colornet.deploy import tflite
from colornet.layers import decode
from colornet.utils.errors import ColornetError
from tests.helpers import deploy_helpers as h
from tests.helpers.images import smooth_rgb

AB_BOUNDS = {"none": 1e-3, "float16": 0.1, "dynamic": 1.0, "int8": 2.0}
_SCRIPT = os.path.join(os.path.dirname(__file__), "..", "serving", "tflite_colorize.py")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """`(model, {quantize: TFLiteResult})`, calibrated on images unlike the test ones."""
    root = tmp_path_factory.mktemp("tflite")
    representative = root / "representative"
    representative.mkdir()
    for i in range(8):
        image = smooth_rgb(48 + 4 * i, 64, seed=100 + i)
        (representative / f"{i}.png").write_bytes(h.encode(image, "png"))
    model = h.vivid_tiny_model()
    results = {
        q: tflite.convert(model, root / f"{q}.tflite", q, representative, size=h.IMAGE_SIZE)
        for q in tflite.QUANTIZATIONS
    }
    return model, results


@pytest.mark.slow
def test_builtin_ops_only(converted):
    _, results = converted
    for quantize, result in results.items():
        assert result.ops and not [op for op in result.ops if op.startswith("Flex") or op == "CUSTOM"]
        assert {"CONV_2D", "SOFTMAX"} <= set(result.ops), quantize
        assert os.path.getsize(result.path) == result.size_bytes
    assert results["int8"].calibration_images == 8
    assert results["none"].calibration_images == 0
    assert results["int8"].calibration_percentile in tflite.AUTO_PERCENTILES
    assert results["dynamic"].calibration_percentile is None
    assert results["float16"].size_bytes < results["none"].size_bytes


def test_int8_body_with_float_decode(converted):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    _, results = converted
    interpreter = Interpreter(
        model_path=results["int8"].path,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    kinds = {}
    for op in interpreter._get_ops_details():
        dtypes = {tensors[i]["dtype"] for i in op["inputs"] if i >= 0 and op["op_name"] != "QUANTIZE"}
        kinds.setdefault(op["op_name"], set()).update(dtypes)
    assert np.int8 in kinds["CONV_2D"]  # int8 activations and weights in the body
    assert kinds["SOFTMAX"] == {np.float32}  # the decoding is float
    assert np.int8 not in kinds["FULLY_CONNECTED"]
    # The head, the last convolution, computes the logits in float32.
    convs = [op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    body, head = convs[:-1], convs[-1]
    assert all(tensors[op["inputs"][1]]["dtype"] == np.int8 for op in body)
    assert {tensors[i]["dtype"] for i in head["inputs"] if i >= 0} == {np.float32}
    assert tensors[head["outputs"][0]]["dtype"] == np.float32


@pytest.mark.parametrize("quantize", tflite.QUANTIZATIONS)
def test_variants_match_keras_within_bounds(converted, quantize):
    model, results = converted
    runner = tflite.TFLiteColorizer(results[quantize].path)
    assert runner.image_size == h.IMAGE_SIZE
    errors = []
    for seed in range(3):
        l_raw = tflite.l_for_network(smooth_rgb(70, 50, seed=seed), h.IMAGE_SIZE).numpy()
        out = runner(l_raw)
        logits = model(l_raw, training=False)
        want = decode.annealed_mean(logits, 0.38).numpy()
        assert out["ab"].shape == (1, 16, 16, 2) and out["logits"].shape == (1, 16, 16, 313)
        errors.append(np.abs(out["ab"] - want).mean())
        if quantize == "none":
            np.testing.assert_allclose(out["logits"], logits.numpy(), atol=1e-4)
    assert max(errors) < AB_BOUNDS[quantize], errors


@pytest.mark.slow
def test_shortcut_network_converts_like_the_others(tmp_path):
    # `half_shortcut`'s extra branch (block 2 into block 8) in a tiny network: builtin
    # ops, folded batch norms and the same error bounds as the paper's layout.
    model = h.vivid_tiny_model(shortcut=True)
    representative = tmp_path / "representative"
    representative.mkdir()
    for i in range(4):
        (representative / f"{i}.png").write_bytes(h.encode(smooth_rgb(56, 64, seed=100 + i), "png"))
    for quantize in ("none", "int8"):
        result = tflite.convert(
            model, tmp_path / f"{quantize}.tflite", quantize, representative, size=h.IMAGE_SIZE
        )
        assert not [op for op in result.ops if op.startswith("Flex") or op == "CUSTOM"], result.ops
        runner = tflite.TFLiteColorizer(result.path)
        l_raw = tflite.l_for_network(smooth_rgb(70, 50, seed=0), h.IMAGE_SIZE).numpy()
        want = decode.annealed_mean(model(l_raw, training=False), 0.38).numpy()
        assert np.abs(runner(l_raw)["ab"] - want).mean() < AB_BOUNDS[quantize], quantize


def test_batch_norms_are_folded_into_the_convolutions(converted):
    # The tiny model has a batch norm after each of its 7 blocks; folded, none leaves
    # a MUL in the network (the only MUL left is the decoding's 1 / T). Their shift
    # is 0 here (untrained statistics), so the converter drops the ADDs as well.
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    _, results = converted
    for quantize in ("none", "int8"):
        interpreter = Interpreter(
            model_path=results[quantize].path,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        names = [op["op_name"] for op in interpreter._get_ops_details()]
        assert names.count("MUL") == 1 and "ADD" not in names, (quantize, names)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _activation_ranges(path):
    """`{tensor name: (min, max)}` of the int8 activations of a .tflite file."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    ranges = {}
    for t in interpreter.get_tensor_details():
        scales, zeros = t["quantization_parameters"]["scales"], t["quantization_parameters"]["zero_points"]
        if t["dtype"] == np.int8 and len(scales) == 1 and "convolution" in t["name"]:
            ranges[t["name"]] = (scales[0] * (-128 - zeros[0]), scales[0] * (127 - zeros[0]))
    return ranges


@pytest.mark.slow
def test_percentile_ranges_are_narrower_and_auto_keeps_the_nearest(converted, tmp_path):
    model, results = converted
    representative = os.path.join(os.path.dirname(results["int8"].path), "representative")
    fixed = {
        p: tflite.convert(
            model, tmp_path / f"{p}.tflite", "int8", representative, size=h.IMAGE_SIZE,
            calibration_percentile=p,
        )  # fmt: skip
        for p in tflite.AUTO_PERCENTILES
    }
    assert [r.calibration_percentile for r in fixed.values()] == list(tflite.AUTO_PERCENTILES)
    cut, whole = _activation_ranges(fixed[99.9].path), _activation_ranges(fixed[100.0].path)
    assert cut.keys() == whole.keys() and len(cut) >= 5
    step = {name: (hi - lo) / 255 for name, (lo, hi) in whole.items()}
    assert all(cut[n][1] <= whole[n][1] + step[n] for n in cut)
    assert sum(cut[n][1] < 0.9 * whole[n][1] for n in cut) >= len(cut) // 2
    # "auto" chose by the ab error on the calibration images: the same model as the
    # fixed choice that wins on them.
    calibration = tflite.representative_l(representative, h.IMAGE_SIZE)
    reference = tflite._ab_outputs(_read(results["none"].path), calibration)
    errors = {p: tflite._ab_error(_read(r.path), calibration, reference) for p, r in fixed.items()}
    best = min(errors, key=errors.get)
    assert results["int8"].calibration_percentile == best, errors
    assert _read(results["int8"].path) == _read(fixed[best].path)


@pytest.mark.parametrize("percentile", [50, 99.5, 99.9, 100])
def test_clipped_range_is_numpys_percentile(percentile):
    values = np.random.default_rng(0).standard_t(3, 200_000) * 4 + 1
    lo, hi = float(values.min()), float(values.max())
    count, _ = np.histogram(values, bins=4096, range=(lo, hi))
    low, high = tflite._clipped_range(count, lo, hi, percentile)
    width = (hi - lo) / 4096
    assert abs(high - np.percentile(values, percentile)) <= 2 * width
    assert abs(low - min(np.percentile(values, 100 - percentile), 0.0)) <= 2 * width


def test_runtime_helper_and_script_agree_with_the_saved_model(converted, tmp_path_factory, tmp_path):
    """The same image through the SavedModel, the TF helper and the NumPy/Pillow script."""
    _, results = converted
    _, exported = h.shared_export(tmp_path_factory)
    rgb = smooth_rgb(90, 70, seed=7)
    from tests.helpers.serving_standin import SessionModel

    served = SessionModel(os.path.dirname(exported.path), "colornet")
    saved = served.predict("colorize_rgb", {"rgb": rgb[None]})["rgb"][0]
    served.session.close()
    helper = tflite.TFLiteColorizer(results["none"].path).colorize(rgb)
    # Same steps and float32 model: at most one level apart (rounding).
    assert np.abs(helper.astype(int) - saved.astype(int)).max() <= 1

    image_path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(image_path)
    out_path = tmp_path / "out.png"
    spec = importlib.util.spec_from_file_location("tflite_colorize", _SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.colorize_file(results["none"].path, image_path, out_path)
    result = np.asarray(Image.open(out_path))
    assert result.shape == rgb.shape
    # Pillow's bilinear resampling (L down to 64 x 64, antialiased; ab up to 90 x 70)
    # is TF's up to float rounding: measured mean 5e-5 levels, max 1.
    difference = np.abs(result.astype(int) - saved.astype(int))
    assert difference.mean() < 0.05 and difference.max() <= 2, (difference.mean(), difference.max())
    # Its Lab conversion is colornet's (scikit-image's formulas).
    from colornet import color

    np.testing.assert_allclose(
        script.rgb_to_lab(rgb), color.rgb_to_lab(rgb).numpy(), atol=2e-3
    )


def _script():
    spec = importlib.util.spec_from_file_location("tflite_colorize", _SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _png16(samples, colour_type):
    """A 16-bit PNG written byte by byte (Pillow cannot write 16-bit RGB or grey+alpha)."""
    import struct
    import zlib

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    height, width = samples.shape[:2]
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in samples)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_script_reads_odd_images_as_the_package_does(tmp_path):
    """Oracle: `colornet.data.read_image` on the same files, the package's odd inputs
    (16-bit, palette, grey + alpha, RGBA, CMYK/YCCK, animated GIF, EXIF orientation)
    plus 16-bit samples that are not multiples of 257 and every EXIF orientation."""
    from colornet import data
    from tests.helpers import bad_inputs

    paths = bad_inputs.write_corpus(tmp_path / "corpus", names=set(bad_inputs.good_cases()))
    rng = np.random.default_rng(0)
    grey16 = rng.integers(0, 65536, (9, 13))
    paths["grey16_any"] = tmp_path / "grey16_any.png"
    Image.fromarray(grey16.astype(np.uint16)).save(paths["grey16_any"])
    for name, samples, colour_type in (("rgb16", rng.integers(0, 65536, (9, 13, 3)), 2),
                                       ("grey_alpha16", rng.integers(0, 65536, (9, 13, 2)), 4),
                                       ("rgba16", rng.integers(0, 65536, (9, 13, 4)), 6)):
        paths[name] = tmp_path / f"{name}.png"
        paths[name].write_bytes(_png16(samples, colour_type))
    asymmetric = smooth_rgb(16, 28, seed=4)
    for orientation in range(1, 9):
        paths[f"exif{orientation}"] = tmp_path / f"exif{orientation}.jpg"
        paths[f"exif{orientation}"].write_bytes(bad_inputs.jpeg_with_orientation(asymmetric, orientation))
    assert {"png16", "palette_png", "grey_alpha_png", "rgba_png", "exif6_jpeg", "animated_gif"} <= set(paths)

    script = _script()
    for name, path in paths.items():
        want = data.read_image(path)
        got = script.read_rgb(path)
        assert got.dtype == np.uint8 and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    # Not white: the 16-bit grey keeps its high byte.
    np.testing.assert_array_equal(script.read_rgb(paths["grey16_any"])[..., 0], grey16 >> 8)


def test_script_needs_no_tensorflow(converted, tmp_path):
    _, results = converted
    image_path = tmp_path / "photo.jpg"
    Image.fromarray(smooth_rgb(40, 60, seed=3)).save(image_path)
    out_path = tmp_path / "out.png"
    code = (
        "import runpy, sys\n"
        "sys.modules['tensorflow'] = None\n"  # any TensorFlow import fails
        "sys.modules['colornet'] = None\n"
        f"sys.argv = ['tflite_colorize.py', {str(image_path)!r}, '--model', "
        f"{results['dynamic'].path!r}, '-o', {str(out_path)!r}]\n"
        f"runpy.run_path({_SCRIPT!r}, run_name='__main__')\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert process.returncode == 0, process.stderr[-2000:]
    assert np.asarray(Image.open(out_path)).shape == (40, 60, 3)


def test_errors(tmp_path):
    model = h.vivid_tiny_model()
    with pytest.raises(ColornetError, match="representative"):
        tflite.convert(model, tmp_path / "m.tflite", "int8")
    with pytest.raises(ValueError, match="quantize"):
        tflite.convert(model, tmp_path / "m.tflite", "int4")
    for bad in (50, 100.5, "99", True, float("nan")):
        with pytest.raises(ValueError, match="calibration_percentile"):
            tflite.convert(model, tmp_path / "m.tflite", "int8", tmp_path, calibration_percentile=bad)
    with pytest.raises(ColornetError, match="no such file"):
        tflite.TFLiteColorizer(tmp_path / "missing.tflite")


@pytest.mark.slow
def test_cli_tflite(tmp_path, capsys):
    model = h.vivid_tiny_model()
    path = tmp_path / "model.keras"
    model.save(path)
    out = tmp_path / "model.tflite"
    argv = ["colornet", "tflite", "--model", str(path), "--out", str(out), "--quantize", "dynamic",
            "--image-size", "32"]  # fmt: skip
    assert cli.main(cli._parse_flags(argv)) == 0
    assert "dynamic" in capsys.readouterr().out
    assert tflite.TFLiteColorizer(out).image_size == 32
    argv[-3:] = ["int8", "--image-size", "32"]
    assert cli.main(cli._parse_flags(argv)) == 1
    assert "representative" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / ".model.tflite.partial")
    representative = tmp_path / "representative"
    representative.mkdir()
    for i in range(3):
        (representative / f"{i}.png").write_bytes(h.encode(smooth_rgb(40, 48, seed=200 + i), "png"))
    assert cli.main(cli._parse_flags([*argv, "--representative", str(representative)])) == 0
    printed = capsys.readouterr().out
    chosen = re.search(r"calibrated on 3 images; activation ranges at percentile ([0-9.]+) \(chosen by auto\)", printed)
    assert chosen and float(chosen.group(1)) in tflite.AUTO_PERCENTILES, printed


def test_bad_output_location_is_refused_before_any_work(tmp_path, monkeypatch, deny_access):
    # The model path does not exist: an error about it would mean the output was
    # checked too late.
    model = tmp_path / "nope.keras"
    somefile = tmp_path / "somefile.txt"
    somefile.write_text("a regular file\n")
    for out, reason in (
        (somefile / "model.tflite", f"{somefile} is not a directory"),
        (somefile / "deeper" / "model.tflite", f"{somefile} is not a directory"),
        (tmp_path, "it is a directory"),
    ):
        with pytest.raises(ColornetError, match=f"^{re.escape(f'cannot write {out}: {reason}')}$"):
            tflite.convert(model, out)
    locked = tmp_path / "locked"
    locked.mkdir()
    deny_access(locked)
    with pytest.raises(ColornetError, match=re.escape(f"directory {locked} is not writable")):
        tflite.convert(model, locked / "new" / "model.tflite")
    assert sorted(os.listdir(tmp_path)) == ["locked", "somefile.txt"] and not os.listdir(locked)


def test_cli_tflite_out_below_a_regular_file(tmp_path, capsys, monkeypatch):
    model = tmp_path / "model.keras"
    h.vivid_tiny_model().save(model)
    somefile = tmp_path / "somefile.txt"
    somefile.write_text("a regular file\n")
    out = somefile / "model.tflite"

    def no_conversion(*args, **kwargs):
        raise AssertionError("the output location must be checked before the conversion")

    monkeypatch.setattr(tflite, "_write_saved_model", no_conversion)
    argv = ["colornet", "tflite", "--model", str(model), "--out", str(out), "--image-size", "32"]
    assert cli.main(cli._parse_flags(argv)) == 1
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"colornet tflite: error: cannot write {out}: {somefile} is not a directory"
    ]
    assert "Traceback" not in captured.out + captured.err
    assert sorted(os.listdir(tmp_path)) == ["model.keras", "somefile.txt"]


@pytest.mark.slow
def test_cli_colorize_with_a_tflite_model_prints_only_its_own_lines(converted, tmp_path):
    # LiteRT announces its XNNPACK delegate on stderr ("INFO: Created TensorFlow Lite
    # XNNPACK delegate for CPU.") whatever TF_CPP_MIN_LOG_LEVEL says.
    _, results = converted
    image = tmp_path / "photo.png"
    image.write_bytes(h.encode(smooth_rgb(40, 48, seed=7), "png"))
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "colornet.cli", "colorize", str(image), "-o", str(tmp_path / "out"),
               "--model", results["none"].path]  # fmt: skip
    quiet = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert os.path.exists(tmp_path / "out" / "photo.png")
    verbose = subprocess.run([*command, "--verbose"], capture_output=True, text=True, env=env, timeout=300,
                             check=False)  # fmt: skip
    assert "XNNPACK" in verbose.stderr


def test_predictor_runs_a_batch_one_frame_at_a_time(converted):
    """Video passes batches of frames: the same logits as one call per frame."""
    from colornet.deploy import predictors

    _, results = converted
    predictor = predictors.load_predictor(results["float16"].path)
    l_small = np.random.default_rng(0).uniform(0, 100, (3, h.IMAGE_SIZE, h.IMAGE_SIZE, 1)).astype(np.float32)
    batch = predictor.logits(l_small).numpy()
    assert batch.shape[0] == 3
    for i in range(3):
        np.testing.assert_array_equal(batch[i : i + 1], predictor.logits(l_small[i : i + 1]).numpy())
