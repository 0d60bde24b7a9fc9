"""Seconds per training step of a `Colorizer` preset on random data.

One step is the whole of `Model.train_on_batch`: forward, the rebalanced loss with
on-device soft-encoding, L2 regularisation, backward and Adam. Steps are timed after
warm-up (tracing and the first oneDNN calls), one at a time, because short `fit()`
calls have a start-up cost of their own. Also printed: CPU seconds per step (all
threads) and the 1-minute load average, since on a shared machine wall time depends
on what else runs; CPU s/step divided by the core count bounds an idle machine's
wall time from below.

With --breakdown it also times, on the same batch, the loss alone: the rebalanced
loss (soft-encoding, cross-entropy, class weights, reduction) and its gradient with
respect to the logits, on float32 logits of the model's output shape, in a
`tf.function` as the training step runs it (not compiled with XLA as a whole; the
soft-encoding inside is its own XLA cluster). Printed as seconds per call and as a
share of the mean step.

    python benchmarks/train_step.py --preset half --batch 16 --precision mixed_bfloat16 [--breakdown]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

from colornet import losses
from colornet.models import PRESETS, Colorizer


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="half", choices=sorted(PRESETS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=176, help="square input side, pixels")
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16"))
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument(
        "--breakdown", action="store_true", help="also time the loss and its gradient alone"
    )
    return parser.parse_args()


def _cpu_seconds():
    # Process CPU time, all threads: unlike wall time, barely affected by other
    # processes sharing the cores.
    t = os.times()
    return t.user + t.system


def _time_loss(loss_fn, ab, logits_shape, steps, warmup):
    """Seconds per call of the loss and its gradient with respect to the logits."""
    logits = tf.random.stateless_normal(logits_shape, seed=(0, 1), stddev=3.0)

    @tf.function
    def loss_and_gradient(ab, logits):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss_fn(ab, logits)
        return value, tape.gradient(value, logits)

    for _ in range(warmup):
        loss_and_gradient(ab, logits)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        value, _ = loss_and_gradient(ab, logits)
        # Runs are synchronous on the CPU; fetching the value only adds certainty.
        value.numpy()
        times.append(time.perf_counter() - start)
    return times


def main():
    args = _parse_args()
    keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(0)
    model = Colorizer.from_preset(args.preset)
    # The class weights do not change the cost; uniform ones need no prior file.
    model.compile(loss=losses.RebalancedLoss(class_weights="uniform"))

    rng = np.random.default_rng(0)
    out_h, out_w = Colorizer.output_size(args.size, args.size)
    l_raw = tf.constant(rng.uniform(0, 100, (args.batch, args.size, args.size, 1)), tf.float32)
    ab = tf.constant(rng.uniform(-80, 80, (args.batch, out_h, out_w, 2)), tf.float32)

    for _ in range(args.warmup):
        model.train_on_batch(l_raw, ab)
    times = []
    cpu_start = _cpu_seconds()
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = model.train_on_batch(l_raw, ab)
        times.append(time.perf_counter() - start)
    cpu_per_step = (_cpu_seconds() - cpu_start) / args.steps

    params = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    mean = float(np.mean(times))
    print(
        f"preset={args.preset} params={params:,} batch={args.batch} size={args.size} "
        f"precision={args.precision} threads={os.cpu_count()}: "
        f"{mean:.3f} s/step (min {min(times):.3f}, max {max(times):.3f}, "
        f"{args.steps} steps after {args.warmup} warm-up), {args.batch / mean:.1f} images/s, "
        f"{cpu_per_step:.2f} CPU s/step, load {os.getloadavg()[0]:.1f}, "
        f"loss {float(np.asarray(loss).ravel()[0]):.1f}"
    )
    if args.breakdown:
        logits_shape = (args.batch, out_h, out_w, model.output_shape[-1])
        loss_times = _time_loss(model.loss, ab, logits_shape, args.steps, args.warmup)
        loss_mean = float(np.mean(loss_times))
        print(
            f"  loss alone (soft-encoding + cross-entropy + weights, forward and gradient to the "
            f"logits {logits_shape}, tf.function): {loss_mean:.4f} s (min {min(loss_times):.4f}), "
            f"{100 * loss_mean / mean:.1f}% of the step"
        )


if __name__ == "__main__":
    main()
