"""The best int8 speed-up this CPU gives a convolution at inference, whatever the model.

Times a stack of representative convolutions of the network (by default four 3x3,
256 to 256 channel convolutions with ReLU on 32 x 32 maps, batch 1: the half
preset's middle blocks at a 256 x 256 input) as TFLite models run by LiteRT with
XNNPACK, in float32 and in full int8 (int8 input and output, so no conversion is
timed), and in PyTorch float32 (what #3's targets are relative to). Rounds
alternate the configurations so that other work on the machine affects all alike.

On x86 without AMX, int8 convolutions run on AVX512_VNNI's VPDPBUSD: four int8
multiply-adds per 32-bit lane where a float32 FMA does one, so about 4x the
float32 rate at best. A whole model also has memory-bound work (requantisation,
padding, the float32 logits and decoding) that does not gain as much.

    python benchmarks/int8_ceiling.py [--channels 256] [--size 32] [--layers 4] [--rounds 5]
"""

import argparse
import os
import statistics
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bf16_ceiling import cpu_flags  # noqa: E402  (benchmarks/, the script's own folder)

CPU_FLAGS = ("avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8")


def _tflite_model(kernels, biases, shape, int8):
    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def stack(x):
        for kernel, bias in zip(kernels, biases):
            x = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME") + bias)
        return x

    converter = tf.lite.TFLiteConverter.from_concrete_functions([stack.get_concrete_function()], stack)
    if int8:
        rng = np.random.default_rng(1)

        def representative():
            for _ in range(8):
                yield [rng.normal(size=shape).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # The int8 input's scale comes from calibration; the converter still asks for
        # the float statistics of an image input, which this stack has not.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        return converter.convert()


def _tflite_run(content, threads):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    x = np.random.default_rng(2).integers(-20, 20, detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], x)
    return interpreter.invoke


def _torch_run(kernels, biases, x):
    import torch

    weights = [torch.from_numpy(k.transpose(3, 2, 0, 1).copy()) for k in kernels]
    shifts = [torch.from_numpy(b.copy()) for b in biases]
    x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())

    def run():
        with torch.inference_mode():
            y = x
            for weight, bias in zip(weights, shifts):
                y = torch.relu(torch.nn.functional.conv2d(y, weight, bias, padding=1))
            return float(y[0, 0, 0, 0])

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=256, help="input and output channels")
    parser.add_argument("--size", type=int, default=32, help="square feature map side, pixels")
    parser.add_argument("--layers", type=int, default=4, help="3x3 convolutions in the stack")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="LiteRT and PyTorch threads")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="timed calls per configuration and round")
    parser.add_argument("--no-torch", action="store_true", help="LiteRT only")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    c, shape = args.channels, (1, args.size, args.size, args.channels)
    kernels = [(rng.normal(size=(3, 3, c, c)) * np.sqrt(2 / (9 * c))).astype(np.float32) for _ in range(args.layers)]
    biases = [rng.normal(size=c).astype(np.float32) * 0.1 for _ in range(args.layers)]
    runs = {
        "LiteRT float32 (XNNPACK)": _tflite_run(_tflite_model(kernels, biases, shape, int8=False), args.threads),
        "LiteRT int8 (XNNPACK)": _tflite_run(_tflite_model(kernels, biases, shape, int8=True), args.threads),
    }
    if not args.no_torch:
        import torch

        torch.set_num_threads(args.threads)
        runs["PyTorch float32"] = _torch_run(kernels, biases, rng.normal(size=shape).astype(np.float32))
    times = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm-up
    for _ in range(args.rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                run()
            times[name].append((time.perf_counter() - start) / args.steps)

    macs = args.layers * args.size**2 * 9 * c * c
    flags = cpu_flags()
    print(f"{args.layers} x conv 3x3 {c}->{c} at {args.size}x{args.size}, batch 1, {args.threads} threads: "
          f"{macs / 1e9:.2f} GMAC per call; CPU flags: "
          + ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in CPU_FLAGS))
    reference = statistics.median(times.get("PyTorch float32", times["LiteRT float32 (XNNPACK)"]))
    print(f"{'configuration':28s} {'ms/call':>8s} {'GMAC/s':>8s} {'vs reference':>13s}")
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"{name:28s} {seconds * 1e3:8.2f} {macs / seconds / 1e9:8.1f} {reference / seconds:12.2f}x")
    print("reference: PyTorch float32" if not args.no_torch else "reference: LiteRT float32")


if __name__ == "__main__":
    main()
