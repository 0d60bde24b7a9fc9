"""Compares the logged training curves of two workdirs, step by step.

For the bf16-vs-float32 check of issue #7: train the same preset, data and seed
twice, once per precision, then compare the TensorBoard scalars both logged:

    colornet train --data runs/train.txt --workdir runs/curve_mixed_bfloat16 --preset half --steps 60 \\
        --precision mixed_bfloat16 --batch-size 16 --set learning_rate=3e-4 --set log_every=5
    colornet train ... --workdir runs/curve_float32 --precision float32 ...   # same flags otherwise
    python benchmarks/compare_runs.py runs/curve_mixed_bfloat16 runs/curve_float32

Prints both series and their relative difference, beside the second run's own
step-to-step relative change (how much the curve moves between logged steps).
"""

import argparse
import glob
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def scalars(workdir, tag):
    """`{step: value}` of one scalar over every event file of a workdir (latest wins)."""
    values = {}
    for path in sorted(glob.glob(os.path.join(workdir, "logs", "events*")), key=os.path.getmtime):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second", help="the reference run")
    parser.add_argument("--tags", nargs="+", default=["train/loss", "train/unweighted_ce"])
    args = parser.parse_args()
    for tag in args.tags:
        first, second = scalars(args.first, tag), scalars(args.second, tag)
        steps = sorted(set(first) & set(second))
        if not steps:
            print(f"{tag}: no common logged steps")
            continue
        x = np.array([first[s] for s in steps])
        y = np.array([second[s] for s in steps])
        relative = np.abs(x - y) / np.abs(y)
        print(f"{tag}, steps {steps[0]}..{steps[-1]} ({len(steps)} logged)")
        print(f"  {args.first}: {np.round(x, 3).tolist()}")
        print(f"  {args.second}: {np.round(y, 3).tolist()}")
        line = f"  |first - second| / second: mean {relative.mean():.4f}, max {relative.max():.4f}"
        if len(steps) > 1:
            change = np.abs(np.diff(y)) / np.abs(y[1:])
            line += f"; second's step-to-step change: mean {change.mean():.4f}"
        print(line)


if __name__ == "__main__":
    main()
