"""evaluate(): both resolutions, the grey baseline, agreement with colorize, the CLI.

Images are generated; the network runs at 64 x 64 (native size) to stay fast.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from colornet import cli, color, inference, metrics
from colornet.apps import evaluate
from colornet.deploy import predictors
from colornet.utils.errors import ColornetError
from tests.helpers import deploy_helpers as h
from tests.helpers.images import smooth_rgb

SIZE = 64
EXACT = 1e-9


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    h.vivid_tiny_model().save(path)
    return path


def _write_png(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(tf.io.encode_png(rgb).numpy())


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three colour images of different sizes, a grey one and an unreadable file."""
    root = str(tmp_path_factory.mktemp("photos"))
    images = {
        "a.png": smooth_rgb(50, 70, seed=1),
        "b.png": smooth_rgb(80, 60, seed=2),
        "sub/c.png": smooth_rgb(64, 64, seed=3),
        "sub/grey.png": np.repeat(smooth_rgb(40, 40, seed=4)[..., :1], 3, axis=-1),
    }
    for name, rgb in images.items():
        _write_png(os.path.join(root, name), rgb)
    with open(os.path.join(root, "broken.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 broken")
    return root, images


def test_evaluate_reports_both_resolutions_and_the_grey_baseline(model_path, photos):
    root, images = photos
    result = evaluate.evaluate(model_path, root, size=SIZE, verbose=0)
    assert result["images"] == 4 and result["skipped"] == 1
    assert result["skipped_files"] == [os.path.join(root, "broken.jpg")]
    assert result["native"]["pixels"] == 4 * SIZE * SIZE
    assert result["full"]["pixels"] == sum(rgb.shape[0] * rgb.shape[1] for rgb in images.values())
    for resolution in evaluate.RESOLUTIONS:
        for subject in ("model", "grey"):
            values = result[resolution][subject]
            assert 0 <= values["auc_raw"] <= 100 and 0 <= values["auc_rebalanced"] <= 100
            assert 0 < values["psnr_db"] < evaluate.PSNR_CAP_DB
        # The grey baseline has (almost) no colour: only uint8 rounding.
        assert result[resolution]["grey"]["colorfulness_ratio"] < 0.01
        assert result[resolution]["model"]["colorfulness_ratio"] > 0.1
    json.dumps(result, allow_nan=False)  # JSON-ready, finite


def test_full_resolution_is_the_colorize_path(model_path, photos):
    """One image at full resolution: the metrics of exactly what colorize() returns."""
    root, images = photos
    rgb = images["a.png"]
    result = evaluate.evaluate(model_path, os.path.join(root, "a.png"), size=SIZE, verbose=0)
    predicted = predictors.colorize(rgb, model=model_path, size=SIZE)
    ab_true = color.rgb_to_lab(rgb)[..., 1:]
    ab_pred = color.rgb_to_lab(predicted)[..., 1:]
    full = result["full"]["model"]
    assert full["auc_raw"] == pytest.approx(metrics.raw_auc(ab_pred, ab_true), abs=EXACT)
    assert full["auc_rebalanced"] == pytest.approx(
        metrics.rebalanced_auc(ab_pred, ab_true), abs=EXACT
    )
    assert full["psnr_db"] == pytest.approx(float(metrics.psnr(predicted, rgb)), abs=EXACT)
    ratio = float(metrics.colorfulness(predicted)) / float(metrics.colorfulness(rgb))
    assert full["colorfulness_ratio"] == pytest.approx(ratio, rel=1e-9)
    # Native: shorter side to 64, central 64 x 64 (a 50 x 70 image becomes 64 x 90).
    crop = evaluate.native_crop(rgb, SIZE).numpy()
    assert crop.shape == (SIZE, SIZE, 3)
    grey = inference.grey_rgb(crop)
    expected = metrics.raw_auc(color.rgb_to_lab(grey)[..., 1:], color.rgb_to_lab(crop)[..., 1:])
    assert result["native"]["grey"]["auc_raw"] == pytest.approx(expected, abs=EXACT)


def test_grey_images_with_the_grey_baseline(model_path, photos):
    """On grey photographs the grey baseline is exact: AuC 100, PSNR at its cap."""
    root, _ = photos
    result = evaluate.evaluate(
        model_path, os.path.join(root, "sub", "grey.png"), size=SIZE, verbose=0
    )
    for resolution in evaluate.RESOLUTIONS:
        grey = result[resolution]["grey"]
        assert grey["auc_raw"] == 100.0 and grey["auc_rebalanced"] == 100.0
        assert grey["psnr_db"] == evaluate.PSNR_CAP_DB
        assert result[resolution]["ground_truth"]["colorfulness"] == 0.0
        assert grey["colorfulness_ratio"] is None  # no colour to compare with
        assert result[resolution]["classes_present"] == 1


def test_limit_resolution_and_errors(model_path, photos, tmp_path):
    root, _ = photos
    result = evaluate.evaluate(
        model_path, root, limit=2, size=SIZE, resolutions=("native",), verbose=0
    )
    assert (
        result["images"] == 2
        and "full" not in result
        and result["native"]["pixels"] == 2 * SIZE * SIZE
    )
    with pytest.raises(ValueError, match="resolutions"):
        evaluate.evaluate(model_path, root, resolutions=("half",), verbose=0)
    with pytest.raises(ValueError, match="limit"):
        evaluate.evaluate(model_path, root, limit=0, verbose=0)
    with open(tmp_path / "bad.png", "wb") as f:
        f.write(b"not a png")
    with pytest.raises(ColornetError, match="none of the 1 images"):
        evaluate.evaluate(model_path, str(tmp_path / "bad.png"), size=SIZE, verbose=0)
    with pytest.raises(ColornetError, match="no such file"):
        evaluate.evaluate(model_path, str(tmp_path / "nothing"), verbose=0)


def test_cli_evaluate(model_path, photos, tmp_path, capsys):
    root, _ = photos
    out = str(tmp_path / "metrics.json")
    args = cli._parse_flags(
        [
            "colornet",
            "evaluate",
            "--model",
            model_path,
            "--data",
            root,
            "--size",
            "64",
            "--limit",
            "3",
            "--json",
            out,
        ]
    )
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "AuC rebalanced (%)" in printed and "grey" in printed
    with open(out) as f:
        saved = json.load(f)
    assert saved["images"] == 3
    assert len(saved["curves"]["full"]["model"]["raw"]) == 151
    # The JSON on stdout is the file's content without curves and definitions.
    start = printed.index("{")
    shown = json.loads(printed[start : printed.rindex("}") + 1])
    assert shown["native"] == saved["native"] and "curves" not in shown
    table = evaluate.format_table(saved)
    assert f"{saved['native']['grey']['auc_raw']:.2f}" in table

    args = cli._parse_flags(
        ["colornet", "evaluate", "--model", str(tmp_path / "x.keras"), "--data", root]
    )
    assert cli.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and err[0].startswith("colornet evaluate: error:")
        and "no such file" in err[0]
    )
