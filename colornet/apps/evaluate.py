"""Evaluation on a folder of photographs: the paper's AuC metrics, PSNR, colourfulness.

`evaluate(model, source)` colourises every readable image of `source` and scores the
result against the photograph, always beside the grey baseline (the image's own L
with ab = 0) on the same images, at two resolutions:

* "native": the network's input size S (256 for Keras models, the training
  resolution; an exported model's own size otherwise). The shorter side is resized
  to S (bilinear, antialiased) and the central S x S square is cut (Caffe's offset
  `(size - S) // 2`), as `colornet.data.eval_dataset` does. That square is the
  ground truth and the network sees its L directly.
* "full": the image at its own size, coloured exactly as `colornet colorize` does
  (L resized to S x S for the network, ab upsampled and joined with the full-res L).

Each prediction is the uint8 RGB image a user would get; its ab (converted back to
Lab) is compared with the ab of the uint8 ground truth, so gamut clipping and
rounding count as they would in use. Metrics (definitions in `colornet.metrics`):

* `auc_raw`: AuC (percent) of the share of pixels within ab distance t, t = 0..150,
  trapezoid rule.
* `auc_rebalanced`: the same with each pixel weighted by 1 / p(class of its true ab),
  p over all evaluated pixels of this run at this resolution (lambda = 0).
* `psnr_db`: mean over images of each image's PSNR on RGB (peak 255), each capped
  at `PSNR_CAP_DB` (an exact match would be infinite: grey photographs with the grey
  baseline).
* `colorfulness`: mean over images of Hasler and Suesstrunk's measure, and
  `colorfulness_ratio`: that mean divided by the ground truth's mean (a ratio of
  means, not a mean of ratios; null when the ground truth has no colour at all).

Pixels and classes are counted in fixed-size tables and per-image values are summed,
so memory does not grow with the number of images. Unreadable files are skipped,
reported on stderr and counted.
"""

import json
import os

import numpy as np
import tensorflow as tf

from colornet import color, data, inference, metrics
from colornet import constants as c
from colornet import hints as hint_maps
from colornet.apps.defaults import RESOLUTIONS
from colornet.deploy import predictors
from colornet.utils import files
from colornet.utils.console import progress_bar
from colornet.utils.errors import ColornetError, first_line

PSNR_CAP_DB = 100.0
FORMAT_VERSION = 1
_SUBJECTS = ("model", "grey")


class _Tally:
    """Running sums for one resolution."""

    def __init__(self):
        self.auc = {name: metrics.AucAccumulator() for name in _SUBJECTS}
        self.psnr = dict.fromkeys(_SUBJECTS, 0.0)
        self.colorfulness = dict.fromkeys((*_SUBJECTS, "ground_truth"), 0.0)
        self.images = 0

    def add(self, truth, lab_true, predictions):
        """`truth` `(H, W, 3)` uint8, its Lab, and `{subject: (H, W, 3) uint8 prediction}`."""
        ab_true = lab_true[..., 1:]
        classes = metrics.pixel_classes(ab_true)
        self.colorfulness["ground_truth"] += float(metrics.colorfulness(truth))
        for name, rgb in predictions.items():
            self.auc[name].update(color.rgb_to_lab(rgb)[..., 1:], ab_true, classes)
            self.psnr[name] += min(float(metrics.psnr(rgb, truth)), PSNR_CAP_DB)
            self.colorfulness[name] += float(metrics.colorfulness(rgb))
        self.images += 1

    def summary(self, size):
        truth = self.colorfulness["ground_truth"] / self.images
        result = {
            "size": size,
            "images": self.images,
            "pixels": self.auc["model"].pixels,
            "classes_present": self.auc["model"].classes_present(),
            "ground_truth": {"colorfulness": truth},
        }
        for name in _SUBJECTS:
            mean_colorfulness = self.colorfulness[name] / self.images
            result[name] = {
                "auc_raw": self.auc[name].auc(),
                "auc_rebalanced": self.auc[name].auc(rebalanced=True),
                "psnr_db": self.psnr[name] / self.images,
                "colorfulness": mean_colorfulness,
                "colorfulness_ratio": mean_colorfulness / truth if truth > 0 else None,
            }
        return result

    def curves(self):
        return {
            name: {
                "raw": [round(float(v), 6) for v in self.auc[name].curve()],
                "rebalanced": [round(float(v), 6) for v in self.auc[name].curve(rebalanced=True)],
            }
            for name in _SUBJECTS
        }


def native_crop(rgb, size):
    """Shorter side resized to `size`, then the central `size` x `size` square."""
    return data.center_crop(data.resize_shorter_side(rgb, size), size)


def evaluate(
    model=None,
    source=None,
    *,
    limit=None,
    size=None,
    method="annealed-mean",
    temperature=c.ANNEALED_MEAN_TEMPERATURE,
    resolutions=RESOLUTIONS,
    curves=False,
    max_pixels=None,
    verbose=1,
):
    """Scores a model and the grey baseline on image files (see the module docstring).

    Args:
      model: None for the bundled model, a path (`.keras`, training workdir,
        checkpoint prefix, SavedModel directory, `.tflite`), a `keras.Model` or an
        `predictors.Predictor`.
      source: image folder (recursive), glob, `.txt` list of paths or a list of these.
      limit: evaluate at most this many images (the first readable ones, in sorted
        path order).
      size: the native side S; None for the model's (256 for Keras models).
      method, temperature: the decoding.
      resolutions: a subset of `RESOLUTIONS`.
      curves: also return the accuracy curves acc(t), t = 0..150, under "curves".
      max_pixels: largest image accepted, width x height (default
        `colornet.constants.MAX_PIXELS`); larger ones are skipped and reported.
      verbose: 1 shows a progress bar.

    Returns:
      a JSON-ready dict: "model", "data", "images", "skipped", "skipped_files",
      "decode", "native_size", "definitions" and, per resolution, the metrics of
      "model" and "grey" and the ground truth's colourfulness.

    Raises:
      ColornetError: no model, no images, or no image could be read.
    """
    if source is None:
        raise ColornetError("no evaluation images given")
    temperature = inference.validate_decoding(method, temperature)
    resolutions = tuple(resolutions)
    if not resolutions or any(r not in RESOLUTIONS for r in resolutions):
        raise ValueError(
            f"resolutions must be a non-empty subset of {RESOLUTIONS}, got {resolutions!r}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    predictor = predictors.load_predictor(model)
    size = predictors.resolve_size(predictor, size)

    max_pixels = c.MAX_PIXELS if max_pixels is None else max_pixels
    images, skipped = data.decoded_images(source, resize=None, max_pixels=max_pixels)
    total = skipped.listed if limit is None else min(limit, skipped.listed)
    if limit is not None:
        images = images.take(limit)
    tallies = {name: _Tally() for name in resolutions}
    count = 0
    try:
        with progress_bar(total, verbose) as progress:
            for image in images:
                for name, tally in tallies.items():
                    truth = native_crop(image, size) if name == "native" else image
                    lab_true = color.rgb_to_lab(truth)
                    l_raw = lab_true[..., :1]
                    predicted = inference.predict_rgb(predictor, l_raw, size, method, temperature)
                    tally.add(truth, lab_true, {"model": predicted, "grey": inference.grey_from_l(l_raw)})
                count += 1
                if progress:
                    progress.update(count)
    except tf.errors.InvalidArgumentError as error:
        # The pipeline raises this when every listed file was unreadable.
        raise ColornetError(first_line(error)) from None
    if count == 0:
        raise ColornetError(f"no readable image in {source}")
    result = {
        "format_version": FORMAT_VERSION,
        "model": predictor.source,
        "data": (
            [os.fspath(s) for s in source] if isinstance(source, (list, tuple)) else os.fspath(source)
        ),
        "images": count,
        "skipped": skipped.count,
        "skipped_files": skipped.paths,
        "decode": {"method": method, "temperature": temperature},
        "native_size": size,
        "definitions": DEFINITIONS,
    }
    for name, tally in tallies.items():
        result[name] = tally.summary(size if name == "native" else "full")
    if curves:
        result["curves"] = {
            name: {"thresholds": metrics.AUC_THRESHOLDS.tolist(), **tally.curves()}
            for name, tally in tallies.items()
        }
    return result


DEFINITIONS = {
    "auc_raw": "area under acc(t) = share of pixels with ab L2 error <= t, t = 0..150 step 1, "
    "trapezoid rule, divided by 150, in percent",
    "auc_rebalanced": "as auc_raw with pixel weights 1 / p(nearest ab bin of the true ab), "
    "p over this run's pixels (lambda = 0): the mean of each present class's acc(t)",
    "psnr_db": f"mean over images of PSNR on RGB 0..255 (peak 255), each capped at {PSNR_CAP_DB:g} dB",
    "colorfulness": "mean over images of Hasler-Suesstrunk M = sqrt(sd_rg^2 + sd_yb^2) + "
    "0.3 sqrt(mean_rg^2 + mean_yb^2), rg = R - G, yb = (R + G) / 2 - B on 0..255",
    "colorfulness_ratio": "mean colorfulness of the predictions / mean colorfulness of the ground truth",
    "native": "shorter side resized to native_size, central native_size square",
    "full": "each image at its own size; network at native_size, ab upsampled, joined with full-res L",
    "prediction": "the uint8 RGB output, converted back to Lab for the ab metrics",
}

_ROWS = (
    ("AuC raw (%)", "auc_raw", "{:.2f}"),
    ("AuC rebalanced (%)", "auc_rebalanced", "{:.2f}"),
    ("PSNR (dB)", "psnr_db", "{:.2f}"),
    ("colourfulness", "colorfulness", "{:.2f}"),
    ("colourfulness / truth", "colorfulness_ratio", "{:.3f}"),
)


def format_table(result):
    """The metrics of `evaluate` as a text table, model beside the grey baseline."""
    columns = [name for name in RESOLUTIONS if name in result]
    titles = {
        name: (
            f"native {result[name]['size']}x{result[name]['size']}"
            if name == "native"
            else "full resolution"
        )
        for name in columns
    }
    width = 20
    lines = [
        f"{result['images']} images ({result['skipped']} unreadable, skipped); model {result['model']}; "
        f"{result['decode']['method']}"
        + (
            f" T = {result['decode']['temperature']:g}"
            if result["decode"]["method"] == "annealed-mean"
            else ""
        ),
        "".ljust(24) + "".join(titles[name].ljust(width) for name in columns),
        "".ljust(24) + "".join(f"{'model':<10}{'grey':<10}" for _ in columns),
    ]
    for label, key, fmt in _ROWS:
        cells = []
        for name in columns:
            for subject in _SUBJECTS:
                value = result[name][subject][key]
                cells.append(("n/a" if value is None else fmt.format(value)).ljust(10))
        lines.append(label.ljust(24) + "".join(cells))
    truth = "   ".join(
        f"{titles[name]} {result[name]['ground_truth']['colorfulness']:.2f}" for name in columns
    )
    lines.append(f"ground-truth colourfulness: {truth}")
    return "\n".join(lines)


def write_json(result, path):
    """Writes `result` as indented JSON, atomically (a temporary file, then a rename)."""
    path = os.fspath(path)
    with files.atomic_path(path, ".json") as tmp, open(tmp, "w") as f:
        f.write(json.dumps(result, indent=1) + "\n")


HINT_POINTS = (0, 1, 2, 5, 10, 20, 50)


def _hint_predictor(model, source, size, needs_hints):
    """The predictor of `model` and its native size, refused if hints are needed and
    it takes none (or if there are no images to score it on)."""
    if source is None:
        raise ColornetError("no evaluation images given")
    predictor = predictors.load_predictor(model)
    if needs_hints and not predictor.takes_hints:
        raise ColornetError(f"{predictor.source}: this model takes no hints")
    return predictor, predictors.resolve_size(predictor, size)


def _native_crops(source, size, limit, verbose):
    """`(crops, skipped)`: the native crop of each readable image of `source` (at
    most `limit`), a generator that shows progress, and the skipped files' record."""
    images, skipped = data.decoded_images(source, resize=None)
    total = skipped.listed if limit is None else min(limit, skipped.listed)
    if limit is not None:
        images = images.take(limit)

    def crops():
        with progress_bar(total, verbose) as progress:
            for done, image in enumerate(images, 1):
                yield native_crop(image, size)
                if progress:
                    progress.update(done)

    return crops(), skipped


def _hint_record(predictor, source, count, skipped, size, seed):
    """What every hint evaluation's result starts with; refuses a run with no image."""
    if count == 0:
        raise ColornetError(f"no readable image in {source}")
    return {
        "format_version": FORMAT_VERSION,
        "model": predictor.source,
        "data": os.fspath(source) if not isinstance(source, (list, tuple)) else [os.fspath(s) for s in source],
        "images": count,
        "skipped": skipped.count,
        "native_size": size,
        "seed": seed,
    }


def revealed_points(lab_true, count, rng):
    """`count` hints revealed from the truth at random places, as a user's default
    click would give them: each the mean true ab over the `hints.DEFAULT_PATCH`-pixel
    square it covers. Returns `(count, 5)` float32 (`hints.parse_hints`' form)."""
    height, width = lab_true.shape[:2]
    ys = rng.integers(0, height, count)
    xs = rng.integers(0, width, count)
    half = hint_maps.DEFAULT_PATCH // 2
    ab = lab_true[..., 1:].numpy() if hasattr(lab_true, "numpy") else lab_true[..., 1:]
    rows = []
    for y, x in zip(ys, xs):
        patch = ab[max(y - half, 0) : y + half + 1, max(x - half, 0) : x + half + 1]
        a, b = patch.reshape(-1, 2).mean(0)
        rows.append([x + 0.5, y + 0.5, a, b, 0.0])
    return np.array(rows, np.float32).reshape([-1, 5])


def evaluate_hints(model=None, source=None, *, points=HINT_POINTS, limit=None, size=None, seed=0, verbose=1):
    """PSNR and AuC against the number of hints revealed from the truth (the 2017
    paper's Fig. 4 protocol, on colornet's native crop), and hint fidelity.

    For each image (native crop, as `evaluate`'s) and each count n in `points`, n
    places are drawn at random (the same places for every model, `seed`); each
    reveals the mean true ab of the square a default hint covers
    (`revealed_points`).

    Returns:
      a JSON-ready dict: per count, "psnr_db", "auc_raw", "auc_rebalanced" and
      "hint_error_ab" (mean ab distance between the output and the hint over the
      hinted pixels; null for 0), and the grey baseline's.
    """
    points = tuple(int(n) for n in points)
    if not points or any(n < 0 for n in points):
        raise ValueError(f"points must be counts >= 0, got {points!r}")
    predictor, size = _hint_predictor(model, source, size, needs_hints=any(points))
    crops, skipped = _native_crops(source, size, limit, verbose)
    auc = {n: metrics.AucAccumulator() for n in points}
    grey_auc = metrics.AucAccumulator()
    psnr = dict.fromkeys(points, 0.0)
    grey_psnr = 0.0
    hint_error = dict.fromkeys(points, 0.0)
    hinted_pixels = dict.fromkeys(points, 0)
    count = 0
    for truth in crops:
        lab_true = color.rgb_to_lab(truth)
        l_raw = lab_true[..., :1]
        classes = metrics.pixel_classes(lab_true[..., 1:])
        rng = np.random.default_rng([seed, count])
        draws = revealed_points(lab_true, max(points), rng)
        for n in points:
            given = draws[:n] if n else None
            predicted = inference.predict_rgb(predictor, l_raw, size, hints=given)
            ab_pred = color.rgb_to_lab(predicted)[..., 1:]
            auc[n].update(ab_pred, lab_true[..., 1:], classes)
            psnr[n] += min(float(metrics.psnr(predicted, truth)), PSNR_CAP_DB)
            if n:
                grid = hint_maps.hint_map(given, (size, size), size).numpy()
                mask = grid[..., 2] > 0
                error = np.linalg.norm(ab_pred.numpy()[mask] - grid[mask][:, :2], axis=-1)
                hint_error[n] += float(error.sum())
                hinted_pixels[n] += int(mask.sum())
        grey = inference.grey_from_l(l_raw)
        grey_auc.update(color.rgb_to_lab(grey)[..., 1:], lab_true[..., 1:], classes)
        grey_psnr += min(float(metrics.psnr(grey, truth)), PSNR_CAP_DB)
        count += 1
    return {
        **_hint_record(predictor, source, count, skipped, size, seed),
        "protocol": "native crop; n places uniform over the crop, each revealing the mean true ab of the "
        f"{hint_maps.DEFAULT_PATCH} x {hint_maps.DEFAULT_PATCH} square a default hint covers; annealed mean, "
        f"T = {c.ANNEALED_MEAN_TEMPERATURE}",
        "grey": {"psnr_db": grey_psnr / count, "auc_raw": grey_auc.auc(), "auc_rebalanced": grey_auc.auc(True)},
        "points": {
            str(n): {
                "psnr_db": psnr[n] / count,
                "auc_raw": auc[n].auc(),
                "auc_rebalanced": auc[n].auc(rebalanced=True),
                "hint_error_ab": hint_error[n] / hinted_pixels[n] if hinted_pixels[n] else None,
            }
            for n in points
        },
    }


# How far one hint reaches (`evaluate_hint_spread`).
SPREAD_REGION_AB = 12.0  # a region: connected pixels within this ab distance ...
SPREAD_REGION_L = 12.0  # ... and this L distance of the hinted pixel's true colour
SPREAD_CHROMA = 30.0  # the chroma of the counterfactual hint colour
SPREAD_MOVED = 0.5  # a pixel "took" the hint when it moved this share of the way


def _region(lab_true, y, x):
    """The pixels connected (4-neighbours) to (y, x) whose true L and ab are within
    `SPREAD_REGION_L` and `SPREAD_REGION_AB` of its own: the surface a person means."""
    from scipy import ndimage

    lab = np.asarray(lab_true, np.float64)
    alike = (np.linalg.norm(lab[..., 1:] - lab[y, x, 1:], axis=-1) < SPREAD_REGION_AB) & (
        np.abs(lab[..., 0] - lab[y, x, 0]) < SPREAD_REGION_L
    )
    labels, _ = ndimage.label(alike)
    return labels == labels[y, x]


def counterfactual_ab(true_ab, rng):
    """A hint colour the photograph does not have there: the true ab turned half a
    circle, at chroma `SPREAD_CHROMA` (a random hue where the truth is grey)."""
    a, b = float(true_ab[0]), float(true_ab[1])
    if np.hypot(a, b) < 1.0:
        angle = rng.uniform(0, 2 * np.pi)
    else:
        angle = np.arctan2(b, a) + np.pi
    return SPREAD_CHROMA * np.cos(angle), SPREAD_CHROMA * np.sin(angle)


def evaluate_hint_spread(model=None, source=None, *, hints_per_image=3, limit=None, size=None, seed=0, verbose=1):
    """How far one hint reaches: over its region, and past it.

    For each image (native crop) and each of `hints_per_image` random places, one
    default-size hint is given alone, in a colour the photograph does not have there
    (`counterfactual_ab`), as a person recolouring a surface would. A pixel took the
    hint when its output ab moved at least `SPREAD_MOVED` of the way from the
    automatic output towards the hint's colour (measured along that direction). The
    hint's region is the connected surface of like true colour and lightness around
    it (`_region`: ab within `SPREAD_REGION_AB`, L within `SPREAD_REGION_L`).

    Returns:
      a JSON-ready dict: "coverage", the mean share of the region that took the
      hint (1: all of it, not a dot); "leak", the mean share of the pixels outside
      the region that took it (0: it stops at the region's edges); "region_share",
      the mean share of the image the regions cover (for scale).
    """
    predictor, size = _hint_predictor(model, source, size, needs_hints=True)
    crops, skipped = _native_crops(source, size, limit, verbose)
    coverage, leak, region_share = [], [], []
    count = 0
    for crop in crops:
        lab_true = color.rgb_to_lab(crop)
        l_raw = lab_true[..., :1]
        truth = lab_true.numpy()
        automatic = color.rgb_to_lab(inference.predict_rgb(predictor, l_raw, size)).numpy()[..., 1:]
        rng = np.random.default_rng([seed, count])
        for _ in range(hints_per_image):
            y, x = int(rng.integers(0, size)), int(rng.integers(0, size))
            a, b = counterfactual_ab(truth[y, x, 1:], rng)
            given = np.array([[x + 0.5, y + 0.5, a, b, 0.0]], np.float32)
            hinted = color.rgb_to_lab(inference.predict_rgb(predictor, l_raw, size, hints=given)).numpy()[..., 1:]
            wanted = np.array([a, b]) - automatic[y, x]
            reach = np.sum((hinted - automatic) * wanted, -1) / max(float(wanted @ wanted), 1e-6)
            took = reach >= SPREAD_MOVED
            region = _region(truth, y, x)
            coverage.append(float(took[region].mean()))
            leak.append(float(took[~region].mean()) if np.any(~region) else 0.0)
            region_share.append(float(region.mean()))
        count += 1
    return {
        **_hint_record(predictor, source, count, skipped, size, seed),
        "hints_per_image": hints_per_image,
        "protocol": f"native crop; one default hint at a time at a random place, colour: the true ab turned "
        f"half a circle at chroma {SPREAD_CHROMA:g}; took it: moved >= {SPREAD_MOVED:g} of the way; region: "
        f"connected pixels within {SPREAD_REGION_AB:g} ab and {SPREAD_REGION_L:g} L of the hinted pixel's truth",
        "coverage": float(np.mean(coverage)),
        "leak": float(np.mean(leak)),
        "region_share": float(np.mean(region_share)),
    }


def format_hint_table(result):
    """`colornet evaluate --hints`' summary of `evaluate_hints` and `evaluate_hint_spread`."""
    points, spread = result["points"], result["spread"]
    lines = [
        f"{points['images']} images at {points['native_size']} px; {points['protocol']}",
        "points    PSNR dB   AuC raw   AuC rebal   error at hints (ab)",
    ]
    for n, row in points["points"].items():
        error = "n/a" if row["hint_error_ab"] is None else f"{row['hint_error_ab']:.2f}"
        lines.append(
            f"{n:<9} {row['psnr_db']:<9.2f} {row['auc_raw']:<9.2f} {row['auc_rebalanced']:<11.2f} {error}"
        )
    grey = points["grey"]
    lines.append(f"{'grey':<9} {grey['psnr_db']:<9.2f} {grey['auc_raw']:<9.2f} {grey['auc_rebalanced']:<11.2f}")
    lines.append(
        f"one hint: covers {spread['coverage']:.1%} of its region (regions: {spread['region_share']:.1%} "
        f"of an image on average), reaches {spread['leak']:.1%} of the pixels outside it"
    )
    return "\n".join(lines)
