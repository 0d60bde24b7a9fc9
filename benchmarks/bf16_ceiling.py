"""The best bfloat16 speed-up this CPU gives a convolution, whatever the model around it.

Times one representative convolution of the ECCV16 network (by default 3x3, 256 to
256 channels on 44 x 44 maps at batch 8: blocks 3 and 8 at a 176 x 176 input),
forward and backward (gradients with respect to input and kernel), in float32 and
in bfloat16, in TensorFlow and, if it is installed, PyTorch. Rounds alternate the
configurations so that other work on the machine affects all of them alike.

Without AMX tiles the only bfloat16 arithmetic is AVX512_BF16's VDPBF16PS, a dot
product of bfloat16 pairs into float32 that does twice the multiply-adds of a
float32 FMA of the same width: about 2x for a compute-bound convolution, at best.
A whole training step also has memory-bound work (batch norm, ReLU, the loss,
Adam) that gains at most the halved bytes, so its speed-up stays below the
convolution's. AMX (amx_bf16, amx_tile) is what gave the 4-5x figures elsewhere.

`--pass input` or `--pass kernel` times one gradient alone (TF's
Conv2DBackpropInput or Conv2DBackpropFilter, PyTorch's convolution_backward for that
output only), `--pass forward` the forward convolution alone: the same oneDNN
kernels run in both frameworks, so this shows where their times differ.

    python benchmarks/bf16_ceiling.py [--channels 256] [--size 44] [--batch 8] [--rounds 5]
        [--pass all|forward|input|kernel] [--threads N]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

CPU_FLAGS = ("avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_flags():
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


PASSES = ("all", "forward", "input", "kernel")


def _tf_pass(x, kernel, dilation, which):
    """One convolution pass alone, as the op TF's gradient of conv2d runs."""
    x, kernel = tf.constant(x), tf.constant(kernel)
    y = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=dilation)  # stands in for dL/dy
    dilations = [1, dilation, dilation, 1]

    @tf.function
    def step():
        if which == "forward":
            out = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=dilation)
        elif which == "input":
            out = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x), filter=kernel, out_backprop=y, strides=[1, 1, 1, 1],
                padding="SAME", dilations=dilations,
            )
        else:
            out = tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=tf.shape(kernel), out_backprop=y, strides=[1, 1, 1, 1],
                padding="SAME", dilations=dilations,
            )
        return tf.cast(tf.reshape(out, [-1])[0], tf.float32)

    return lambda: step().numpy()


def _torch_pass(x, kernel, dilation, dtype, which):
    import torch

    x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(dtype)
    kernel = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()).to(dtype)
    conv = dict(stride=1, padding=dilation, dilation=dilation)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, kernel, **conv)
    mask = [which == "input", which == "kernel", False]

    def step():
        with torch.no_grad():
            if which == "forward":
                out = torch.nn.functional.conv2d(x, kernel, **conv)
            else:
                grads = torch.ops.aten.convolution_backward(
                    y, x, kernel, None, [1, 1], [dilation] * 2, [dilation] * 2, False, [0, 0], 1, mask
                )
                out = grads[0] if which == "input" else grads[1]
        return float(out.reshape(-1)[0])

    return step


def _tf_step(x, kernel, dilation, which="all"):
    if which != "all":
        return _tf_pass(x, kernel, dilation, which)
    x = tf.Variable(x)
    kernel = tf.Variable(kernel)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            y = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=dilation)
            # Sum in float32: a bfloat16 sum of a million terms would stall on rounding.
            total = tf.reduce_sum(tf.cast(y, tf.float32))
        grads = tape.gradient(total, [x, kernel])
        # Fetching a scalar forces the whole step without copying big tensors out.
        return tf.add_n([tf.reduce_sum(tf.cast(g[..., :1], tf.float32)) for g in grads])

    return lambda: step().numpy()


def _torch_step(x, kernel, dilation, dtype, which="all"):
    if which != "all":
        return _torch_pass(x, kernel, dilation, dtype, which)
    import torch

    x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(dtype).requires_grad_()
    kernel = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()).to(dtype).requires_grad_()

    def step():
        x.grad = kernel.grad = None
        y = torch.nn.functional.conv2d(x, kernel, padding=dilation, dilation=dilation)
        y.float().sum().backward()
        return float(x.grad[0, 0, 0, 0]) + float(kernel.grad[0, 0, 0, 0])

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=256, help="input and output channels")
    parser.add_argument("--size", type=int, default=44, help="square feature map side, pixels")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dilation", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="timed calls per configuration and round")
    parser.add_argument("--no-torch", action="store_true", help="TensorFlow only")
    parser.add_argument("--pass", dest="which", choices=PASSES, default="all",
                        help="time forward and both gradients (all), or one of them alone")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="TF intra-op and PyTorch threads")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    flags = cpu_flags()
    print("CPU flags: " + ", ".join(f"{name} {'yes' if name in flags else 'NO'}" for name in CPU_FLAGS))

    rng = np.random.default_rng(0)
    shape = (args.batch, args.size, args.size, args.channels)
    x = rng.standard_normal(shape).astype(np.float32)
    kernel = (rng.standard_normal((3, 3, args.channels, args.channels)) / (3 * args.channels**0.5)).astype(np.float32)
    steps = {
        "tf float32": _tf_step(x, kernel, args.dilation, args.which),
        "tf bfloat16": _tf_step(tf.cast(x, tf.bfloat16), tf.cast(kernel, tf.bfloat16), args.dilation, args.which),
    }
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch not installed: TensorFlow only")
        else:
            torch.set_num_threads(args.threads)
            steps["torch float32"] = _torch_step(x, kernel, args.dilation, torch.float32, args.which)
            steps["torch bfloat16"] = _torch_step(x, kernel, args.dilation, torch.bfloat16, args.which)

    for step in steps.values():  # warm-up: tracing, oneDNN primitive creation
        step()
        step()
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)

    # Forward, input gradient and kernel gradient: three convolutions' worth.
    passes = 3 if args.which == "all" else 1
    flops = passes * 2 * args.batch * args.size**2 * args.channels**2 * 9
    label = "forward + backward" if args.which == "all" else f"{args.which} pass"
    print(
        f"conv 3x3 {args.channels}->{args.channels}, {args.size}x{args.size}, batch {args.batch}, "
        f"dilation {args.dilation}, {label} = {flops / 1e9:.1f} GFLOP; "
        f"{args.rounds} rounds x {args.steps} calls, threads {args.threads}, load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'configuration':<16}{'median s':>10}{'min s':>10}{'GFLOP/s':>10}")
    for name, values in times.items():
        best = min(values)
        print(f"{name:<16}{statistics.median(values):>10.4f}{best:>10.4f}{flops / best / 1e9:>10.1f}")
    for framework in ("tf", "torch"):
        if f"{framework} float32" in times:
            fp32 = statistics.median(times[f"{framework} float32"])
            bf16 = statistics.median(times[f"{framework} bfloat16"])
            print(f"{framework}: bfloat16 speed-up over float32 {fp32 / bf16:.2f}x (medians)")


if __name__ == "__main__":
    main()
