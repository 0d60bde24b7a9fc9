"""The scripts under tools/ that make README's training figures."""

import json
import os
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from colornet import prior
from colornet.apps import evaluate
from colornet.deploy import predictors
from colornet.models import Colorizer
from colornet.training import recalibrate, train
from colornet.training.config import TrainConfig
from tests.helpers import plots
from tests.helpers.images import smooth_rgb

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import learning_curve  # noqa: E402
import temperature_sweep  # noqa: E402


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(6):
        (folder / f"img{i}.png").write_bytes(tf.io.encode_png(smooth_rgb(40, 48, seed=i)).numpy())
    return str(folder)


def test_evenly_spaced_spreads_the_subset_over_the_sorted_list(photos):
    paths = sorted(os.listdir(photos))
    picked = [os.path.basename(p) for p in learning_curve.evenly_spaced(photos, 3)]
    assert picked == [paths[0], paths[2], paths[4]]
    assert len(learning_curve.evenly_spaced(photos, 100)) == len(paths)


@pytest.mark.slow
def test_learning_curve_scores_each_checkpoint_once_and_plots(photos, tmp_path):
    workdir = tmp_path / "run"
    config = TrainConfig(
        data=photos, workdir=str(workdir), preset="tiny", steps=4, batch_size=2, resize=40, crop=32,
        prior="uniform", checkpoint_every=2, sample_every=100, verbose=0, learning_rate=1e-3, ema=0.9,
        recalibrate_images=0,
    )
    train.train(config)
    out = tmp_path / "curve.png"
    argv = ["--workdir", str(workdir), "--data", photos, "--images", "3", "--calibration-images", "4",
            "--out", str(out)]
    learning_curve.main(argv)
    cache = json.loads((workdir / "curve.json").read_text())
    (scores,) = cache.values()
    assert sorted(scores) == ["2", "4"]
    assert scores["4"]["images_seen"] == 8
    # The step-4 score is the evaluation of the finished checkpoint, recomputed here.
    model = learning_curve.finished_model(config, str(workdir / "checkpoints" / "ckpt-4"), 4)
    expected = evaluate.evaluate(model, learning_curve.evenly_spaced(photos, 3), resolutions=("native",),
                                 verbose=0)["native"]["model"]
    assert scores["4"]["auc_raw"] == pytest.approx(expected["auc_raw"], abs=1e-6)
    _check_curve_plot(out)
    mtime = os.path.getmtime(workdir / "curve.json")
    learning_curve.main(argv)  # nothing new to score: the cache is not rewritten
    assert os.path.getmtime(workdir / "curve.json") == mtime

    # One scores file for all runs: it outlives the workdir, which is then plotted from it.
    scores_file = tmp_path / "scores.json"
    learning_curve.main([*argv, "--scores", str(scores_file)])
    assert json.loads(scores_file.read_text())["run"][next(iter(cache))] == scores
    shutil.rmtree(workdir)
    os.remove(out)
    learning_curve.main([*argv, "--scores", str(scores_file)])
    _check_curve_plot(out)
    with pytest.raises(SystemExit, match="no such workdir"):
        learning_curve.main([*argv, "--workdir", str(tmp_path / "gone"), "--scores", str(scores_file)])


def _check_curve_plot(path):
    """One panel per metric (5 x 4 inches each at 100 dpi), each with the run's curve
    (matplotlib's first colour, C0) and its reference lines: grey for the grey
    baseline, black for the truth's colourfulness, green for the targets."""
    image = np.asarray(Image.open(path).convert("RGB"))
    width = 500 * len(learning_curve.METRICS)
    assert image.shape == (400, width, 3)
    panels = [image[:, i : i + 500] for i in range(0, width, 500)]
    run, grey, black, green = (31, 119, 180), (128, 128, 128), (0, 0, 0), (0, 128, 0)
    # Thresholds: a line across a panel is 400 to 600 pixels; text and tick marks
    # give about 100 grey pixels by antialiasing and 2,000 black ones.
    assert all(plots.pixels_of(panel, run) > 300 for panel in panels)
    auc_rebalanced, auc_raw, colourfulness = panels
    assert min(plots.pixels_of(auc_rebalanced, grey), plots.pixels_of(auc_raw, grey)) > 400
    assert plots.pixels_of(colourfulness, grey) < 300
    assert plots.pixels_of(auc_rebalanced, green) > 100 and plots.pixels_of(colourfulness, green) > 100
    assert plots.pixels_of(auc_raw, green) == 0
    assert plots.pixels_of(colourfulness, black) > plots.pixels_of(auc_raw, black) + 300


def test_cached_predictor_runs_the_network_once_per_image():
    calls = []

    class Counting(predictors.KerasPredictor):
        def logits(self, l_small):
            calls.append(1)
            return super().logits(l_small)

    tf.random.set_seed(0)
    base = Counting(Colorizer.from_preset("tiny"))
    cached = temperature_sweep.CachedPredictor(base)
    l_small = np.random.default_rng(0).uniform(0, 100, (1, 32, 32, 1)).astype(np.float32)
    first = cached.logits(l_small)
    again = cached.logits(l_small.copy())
    assert len(calls) == 1
    np.testing.assert_array_equal(first, again)
    # float16 storage: relative error of at most 2^-11.
    np.testing.assert_allclose(first, base.logits(l_small), rtol=2**-11, atol=1e-6)


@pytest.mark.slow
def test_sweep_undoing_rebalancing_decodes_shifted_logits(photos, tmp_path):
    tf.random.set_seed(0)
    model = Colorizer.from_preset("tiny")
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    out = tmp_path / "sweep.json"
    temperature_sweep.main(["--model", path, "--data", photos, "--temperatures", "0.38", "1.0",
                            "--undo-rebalancing", "0", "1", "--prior", "default", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [(r["undo_rebalancing"], r["temperature"]) for r in rows] == [(0, 0.38), (0, 1.0), (1, 0.38), (1, 1.0)]

    class Divided(predictors.KerasPredictor):  # probabilities divided by the weights
        def logits(self, l_small):
            weights = np.load(prior.DEFAULT_PRIOR_PATH)["weights"]
            return super().logits(l_small) - np.log(weights).astype(np.float32)

    for row, predictor in ((rows[0], predictors.KerasPredictor(model)), (rows[3], Divided(model))):
        expected = evaluate.evaluate(predictor, photos, temperature=row["temperature"],
                                     resolutions=("native",), verbose=0)["native"]["model"]
        # The sweep keeps the logits in float16: AuC agrees to a few hundredths.
        assert row["model"]["auc_raw"] == pytest.approx(expected["auc_raw"], abs=0.05)
        assert row["model"]["colorfulness_ratio"] == pytest.approx(expected["colorfulness_ratio"], abs=0.01)
    assert rows[3]["model"]["colorfulness_ratio"] != pytest.approx(rows[1]["model"]["colorfulness_ratio"], abs=1e-3)

    # A is absolute: a model saved with half of it undone, swept at A = 0, is scored as trained.
    recalibrate.undo_rebalancing(model, 0.5, prior="default")  # now recorded in the model
    model.save(path)
    temperature_sweep.main(["--model", path, "--data", photos, "--temperatures", "0.38",
                            "--undo-rebalancing", "0", "--json", str(out)])
    (again,) = json.loads(out.read_text())["rows"]
    assert again["model"]["auc_raw"] == pytest.approx(rows[0]["model"]["auc_raw"], abs=0.05)
    assert again["model"]["colorfulness_ratio"] == pytest.approx(rows[0]["model"]["colorfulness_ratio"], abs=0.01)


@pytest.mark.slow
def test_video_int8_replaces_its_file_only_when_the_new_one_passes(tmp_path, monkeypatch):
    """tools/video_int8.py makes the int8 file and its record beside the target and
    moves them into place once the error is under the bound; a file over the bound
    (another calibration, another file) leaves the previous pair as it was, and no
    staged file behind."""
    import hashlib

    import video_int8

    data_dir = tmp_path / "data"
    (data_dir / "manifests").mkdir(parents=True)
    rows = ["path,suggested_split"]
    for i in range(4):
        Image.fromarray(smooth_rgb(64, 64, seed=i)).save(data_dir / f"{i}.png")
        rows.append(f"{i}.png,{'train' if i < 2 else 'val'}")
    (data_dir / "manifests" / "all_images.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "int8.tflite"
    argv = ["video_int8.py", "--data", str(data_dir), "--images", "2", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    video_int8.main()
    record = json.loads((tmp_path / "int8.tflite.json").read_text())
    assert record["tflite_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert 0 < record["ab_error_vs_float32"]["mean"] < video_int8.ERROR_BOUND
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    monkeypatch.setattr(video_int8, "ERROR_BOUND", 0.0)  # every file fails it now
    argv[argv.index("--images") + 1] = "1"  # calibrated otherwise: a file with other bytes
    with pytest.raises(SystemExit, match="left as it was"):
        video_int8.main()
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == before
