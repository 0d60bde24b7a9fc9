"""Learning curve of training runs: val metrics of their checkpoints against images seen.

    python tools/learning_curve.py --workdir runs/trunk [--workdir runs/cooldown ...] \
        --data val.txt --images 200 --out docs/results/learning_curve.png

Each checkpoint (every `--every` steps) is scored as the finished model would be:
weights averaged as training kept them (the EMA, when the run kept one), batch-norm
statistics recomputed on `--calibration-images` training photos
(`colornet.training.recalibrate`), then `colornet.apps.evaluate` at the native 256 x 256 on a fixed
subset of `--data`: `--images` files evenly spaced through its sorted list (the
split mixes sources in blocks; the first N would be one source). Plotted: rebalanced
AuC and raw AuC beside grey's, and colourfulness as a ratio to the truth's.

Scores are cached in each workdir (`curve.json`, keyed by step and by what was
measured), so re-running scores only new checkpoints; or, with `--scores FILE`, in
one file for all runs, keyed by each workdir's name: commit it, and a run whose
workdir is gone is still plotted from it. The same scalars go to the run's
TensorBoard logs under `val/`.
"""

import argparse
import json
import os
import sys

import keras
import tensorflow as tf

from colornet import data
from colornet.apps import evaluate
from colornet.training import recalibrate, train
from colornet.training.config import TrainConfig
from colornet.utils import files

METRICS = (
    ("auc_rebalanced", "rebalanced AuC (%)"),
    ("auc_raw", "raw AuC (%)"),
    ("colorfulness_ratio", "colourfulness / truth"),
)


def evenly_spaced(source, count):
    """`count` paths evenly spaced through the sorted files of `source`."""
    paths = sorted(data.list_image_files(source))
    if count >= len(paths):
        return paths
    return [paths[(i * len(paths)) // count] for i in range(count)]


def checkpoint_steps(workdir):
    state = tf.train.get_checkpoint_state(os.path.join(workdir, "checkpoints"))
    paths = state.all_model_checkpoint_paths if state else []
    return {int(p.rsplit("-", 1)[1]): p for p in paths}


def finished_model(config, checkpoint_path, calibration_images):
    """The model of a checkpoint as training would finish it (EMA weights, precise
    batch-norm statistics)."""
    keras.mixed_precision.set_global_policy("float32")
    model = train.build_model(config)
    tf.train.Checkpoint(model=model, optimizer=model.optimizer).restore(checkpoint_path).expect_partial()
    if model.optimizer.use_ema:
        model.optimizer.finalize_variable_values(model.trainable_variables)
    recalibrate.recalibrate_on_images(model, config.data, images=calibration_images)
    return model


def score(workdir, subset, args):
    """`{step: {metric: value}}` for the checkpoints of `workdir`, cached in its
    curve.json or in `args.scores`."""
    name = os.path.basename(os.path.normpath(workdir))
    cache_path = args.scores or os.path.join(workdir, "curve.json")
    key = f"images={len(subset)} calibration={args.calibration_images} data={os.path.basename(args.data)}"
    cache = {}
    if os.path.exists(cache_path):
        with open(cache_path) as f:
            cache = json.load(f)
    runs = cache.setdefault(name, {}) if args.scores else cache
    scores = runs.setdefault(key, {})
    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        if not scores:
            raise SystemExit(f"{workdir}: no such workdir, and no scores for {name!r} in {cache_path}")
        print(f"{workdir}: no workdir; plotting its {len(scores)} recorded scores")
        return {int(step): value for step, value in scores.items()}
    with open(config_path) as f:
        config = TrainConfig(**json.load(f))
    writer = tf.summary.create_file_writer(os.path.join(workdir, "logs", "val"))
    for step, path in sorted(checkpoint_steps(workdir).items()):
        if str(step) in scores or step % args.every:
            continue
        model = finished_model(config, path, args.calibration_images)
        result = evaluate.evaluate(model, subset, resolutions=("native",), verbose=0)["native"]
        scores[str(step)] = {
            "images_seen": step * config.batch_size,
            **{name: result["model"][name] for name, _ in METRICS},
            "grey": {name: result["grey"][name] for name, _ in METRICS},
        }
        with writer.as_default(step=step):
            for name, _ in METRICS:
                tf.summary.scalar(f"val/{name}", result["model"][name])
        print(f"{workdir} step {step}: " + ", ".join(f"{n} {scores[str(step)][n]:.3f}" for n, _ in METRICS))
        with files.atomic_path(cache_path, ".json") as tmp, open(tmp, "w") as f:
            json.dump(cache, f, indent=1)
    writer.flush()
    return {int(step): value for step, value in scores.items()}


def plot(series, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 4))
    grey = None
    for label, scores in series.items():
        steps = sorted(scores)
        seen = [scores[s]["images_seen"] / 1000 for s in steps]
        for ax, (name, _) in zip(axes, METRICS):
            ax.plot(seen, [scores[s][name] for s in steps], marker="o", markersize=3, label=label)
        grey = grey or (scores[steps[0]]["grey"] if steps else None)
    for ax, (name, title) in zip(axes, METRICS):
        if name == "colorfulness_ratio":
            ax.axhline(1.0, color="k", linestyle="--", label="truth")
        elif grey:
            ax.axhline(grey[name], color="grey", linestyle="--", label="grey (ab = 0)")
        # Issue 13's targets: rebalanced AuC >= grey + 5, raw AuC >= grey, colourfulness >= 0.7.
        target = {"auc_rebalanced": grey and grey[name] + 5, "colorfulness_ratio": 0.7}.get(name)
        if target:
            ax.axhline(target, color="green", linestyle=":", label="target")
        ax.set_title(title)
        ax.set_xlabel("training images seen (thousands)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with files.atomic_path(out, ".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", action="append", required=True, help="a training workdir (repeatable)")
    parser.add_argument("--data", required=True, help="validation images: folder, glob or .txt list")
    parser.add_argument("--images", type=int, default=200, help="size of the fixed val subset")
    parser.add_argument("--calibration-images", type=int, default=128,
                        help="training photos for the batch-norm statistics of each checkpoint")
    parser.add_argument("--every", type=int, default=1, help="score only checkpoints whose step is a multiple")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--scores", help="one JSON cache for all runs (default: curve.json in each workdir)")
    args = parser.parse_args(argv)
    subset = evenly_spaced(args.data, args.images)
    series = {os.path.basename(os.path.normpath(w)): score(w, subset, args) for w in args.workdir}
    plot(series, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
