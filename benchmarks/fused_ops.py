"""What the fused batch norm and fused Adam save in a training step.

colornet's `FusedBatchNorm` (colornet/models/backbone.py) and `FusedAdam`
(colornet/models/solver.py) replace Keras' `BatchNormalization` and `Adam` with
TensorFlow's fused kernels. This script times, for one preset:

1. one optimizer update of all the model's variables, Keras' Adam against
   `FusedAdam` (random gradients, in a `tf.function`);
2. a whole training step (`train_on_batch`, random data) of the same network with
   Keras' batch norm and Adam, and with colornet's fused ones, interleaved round by
   round so that both see the same machine load.

    python benchmarks/fused_ops.py --preset eccv16 --batch 8 --precision mixed_bfloat16
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from colornet import losses  # noqa: E402
from colornet.models import PRESETS, Colorizer, backbone  # noqa: E402
from colornet.models.solver import FusedAdam  # noqa: E402


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="eccv16", choices=sorted(PRESETS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=176)
    parser.add_argument("--precision", default="mixed_bfloat16", choices=("float32", "mixed_bfloat16"))
    parser.add_argument("--rounds", type=int, default=8, help="timed steps of each variant")
    return parser.parse_args()


def _adam(fused):
    options = {"learning_rate": 3.16e-5, "beta_1": 0.9, "beta_2": 0.99, "epsilon": 1e-8}
    return FusedAdam(**options) if fused else keras.optimizers.Adam(**options)


def _build(preset, fused):
    """The preset with colornet's fused layers and optimizer, or Keras' own."""
    keras.utils.set_random_seed(0)
    fused_norm = backbone.FusedBatchNorm
    if not fused:
        backbone.FusedBatchNorm = keras.layers.BatchNormalization
    try:
        model = Colorizer.from_preset(preset)
    finally:
        backbone.FusedBatchNorm = fused_norm
    model.compile(optimizer=_adam(fused), loss=losses.RebalancedLoss(class_weights="uniform"))
    return model


def _time_updates(model, repeats=10):
    variables = model.trainable_variables
    grads = [tf.random.normal(v.shape, stddev=1e-3) for v in variables]
    results = {}
    for name, fused in (("keras Adam", False), ("FusedAdam", True)):
        optimizer = _adam(fused)
        optimizer.build(variables)
        apply = tf.function(lambda g, optimizer=optimizer: optimizer.apply(g, variables))
        apply(grads)
        start = time.perf_counter()
        for _ in range(repeats):
            apply(grads)
        results[name] = (time.perf_counter() - start) / repeats
    return results


def main():
    args = _parse_args()
    keras.mixed_precision.set_global_policy(args.precision)
    models = {"keras": _build(args.preset, False), "fused": _build(args.preset, True)}
    kinds = {
        name: sorted({type(layer).__name__ for layer in model.layers if "norm" in layer.name})
        for name, model in models.items()
    }
    params = sum(int(np.prod(v.shape)) for v in models["fused"].trainable_variables)
    print(f"preset={args.preset} params={params:,} precision={args.precision} norm layers: {kinds}")
    for name, seconds in _time_updates(models["fused"]).items():
        print(f"one update of every variable, {name}: {seconds:.4f} s")

    rng = np.random.default_rng(0)
    out = Colorizer.output_size(args.size, args.size)
    l_raw = tf.constant(rng.uniform(0, 100, (args.batch, args.size, args.size, 1)), tf.float32)
    ab = tf.constant(rng.uniform(-80, 80, (args.batch, *out, 2)), tf.float32)
    for model in models.values():
        for _ in range(2):
            model.train_on_batch(l_raw, ab)
    wall = {name: [] for name in models}
    cpu = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            before, start = os.times(), time.perf_counter()
            model.train_on_batch(l_raw, ab)
            after = os.times()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(after.user + after.system - before.user - before.system)
    print(f"training step, batch {args.batch} at {args.size}, {args.rounds} interleaved rounds, "
          f"load {os.getloadavg()[0]:.1f}:")  # fmt: skip
    for name in models:
        print(f"  {name:6s} median {np.median(wall[name]):.3f} s (min {min(wall[name]):.3f}), "
              f"CPU {np.median(cpu[name]):.2f} s")  # fmt: skip
    ratio = np.median(wall["fused"]) / np.median(wall["keras"])
    cpu_ratio = np.median(cpu["fused"]) / np.median(cpu["keras"])
    print(f"fused / keras: {ratio:.3f} wall, {cpu_ratio:.3f} CPU")


if __name__ == "__main__":
    main()
