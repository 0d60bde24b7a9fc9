"""Size, batch-1 latency and ab error of the deployment formats, as a table.

For each variant: the size on disk, the wall time of one 1 x S x S image (median and
minimum over `--runs` after warm-up, S = 256 by default), the process CPU seconds per
image (all threads; barely affected by other processes on a shared machine), and the
mean absolute ab difference from the float32 SavedModel on `--images` generated
photo-like images (the int8 variant is calibrated on other generated images).

Variants:
  savedmodel-f32       the default export (float32, no XLA)
  savedmodel-f32-xla   the export with jit_compile=True
  savedmodel-bf16      the export with precision="bfloat16" (no XLA, its default)
  savedmodel-bf16-xla  the same with jit_compile=True
  tflite-none, tflite-float16, tflite-dynamic, tflite-int8
                       `colornet tflite` outputs run with ai-edge-litert (XNNPACK,
                       `--threads` threads)
  pytorch-f32, pytorch-bf16
                       the same network and weights in PyTorch (the network of
                       benchmarks/pytorch_step.py, weights copied from the Keras
                       model), eval mode, no_grad, float32 or bf16 autocast: the
                       comparison the latency targets are set against. Annealed-mean
                       decoding and the bilinear upsampling in PyTorch too.

SavedModels are run the way TF Serving runs them: the TF1 session loader, signature
`colorize_l` (resize, network, annealed-mean decoding, ab upsampling and Lab -> RGB in
one graph). TFLite models compute ab at S / 4 only; their ab is upsampled with the
same bilinear resize before the comparison.

    python benchmarks/deploy.py                      # eccv16 preset, random weights
    python benchmarks/deploy.py --model model.keras  # any colornet model
    python benchmarks/deploy.py --variants savedmodel-f32 tflite-dynamic
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

from colornet.cli.deploy import calibration_percentile_arg
from colornet.deploy import export, tflite
from colornet.models import PRESETS, Colorizer

VARIANTS = (
    "savedmodel-f32",
    "savedmodel-f32-xla",
    "savedmodel-bf16",
    "savedmodel-bf16-xla",
    "tflite-none",
    "tflite-float16",
    "tflite-dynamic",
    "tflite-int8",
    "pytorch-f32",
    "pytorch-bf16",
)
_EXPORT_OPTIONS = {
    "savedmodel-f32": {"precision": "float32", "jit_compile": False},
    "savedmodel-f32-xla": {"precision": "float32", "jit_compile": True},
    "savedmodel-bf16": {"precision": "bfloat16", "jit_compile": False},
    "savedmodel-bf16-xla": {"precision": "bfloat16", "jit_compile": True},
}
# The figure for the official PyTorch model, batch 1 at 256 x 256, measured on
# another CPU (with AMX). Targets: f32 SavedModel <= 1x, bf16 >= 3x, int8 TFLite >= 5x.
# The pytorch-f32 variant measures the same on the CPU at hand; the last column of the
# table uses it when it was run.
PYTORCH_SECONDS = 0.25


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help=".keras file or training workdir (default: --preset)")
    parser.add_argument("--preset", default="eccv16", choices=sorted(PRESETS))
    parser.add_argument("--size", type=int, default=256, help="network input side, pixels")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    parser.add_argument("--images", type=int, default=4, help="images for the ab error")
    parser.add_argument("--calibration", type=int, default=16, help="int8 calibration images")
    parser.add_argument(
        "--calibration-percentile",
        type=calibration_percentile_arg,
        default=tflite.DEFAULT_CALIBRATION_PERCENTILE,
        help="int8 activation ranges (100: the calibration minimum and maximum)",
    )
    parser.add_argument(
        "--photos",
        help="real photos (folder, glob or .txt list): the first --images for the ab error, the "
        "next --calibration for int8 calibration (default: generated photo-like images)",
    )
    parser.add_argument("--threads", type=int, default=2, help="TFLite interpreter threads")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--workdir", help="keep the exported files here (default: a temp dir)")
    parser.add_argument(
        "--logit-std",
        type=float,
        default=3.0,
        help="with --preset: rescale the random head so logits spread like this (0: leave it)",
    )
    return parser.parse_args()


def _cpu_seconds():
    t = os.times()
    return t.user + t.system


def _photo_like(size, seed):
    """Smooth colour gradients with mild noise, uint8 `(size, size, 3)`."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    channels = []
    for _ in range(3):
        fx, fy = rng.uniform(1, 4, 2)
        px, py = rng.uniform(0, 2 * np.pi, 2)
        channels.append(0.5 + 0.35 * np.sin(2 * np.pi * fx * x + px) * np.cos(2 * np.pi * fy * y + py))
    image = np.stack(channels, -1) + rng.normal(0, 0.02, (size, size, 3))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def _spread_logits(model, std, size):
    """Scales the random 313-way head so that the logits have standard deviation `std`.

    With random weights the logits of every bin are nearly equal: every variant then
    predicts the same grey and the ab errors say nothing. Spread like a trained
    model's, the decoded ab ranges over tens of units and quantisation shows.
    """
    probe = tflite.l_for_network(_photo_like(size, 999), size)
    head = model.get_layer("conv8_313")
    kernel, bias = head.get_weights()
    spread = float(np.std(model(probe, training=False).numpy() - bias))
    rng = np.random.default_rng(0)
    new_bias = rng.normal(0.0, 1.0, bias.shape).astype(np.float32)
    head.set_weights([kernel * (std / max(spread, 1e-12)), new_bias])


def _directory_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, files in os.walk(path) for f in files)


def _time(run, inputs, args):
    for _ in range(args.warmup):
        run(inputs[0])
    walls, cpu_start = [], _cpu_seconds()
    for i in range(args.runs):
        start = time.perf_counter()
        run(inputs[i % len(inputs)])
        walls.append(time.perf_counter() - start)
    return float(np.median(walls)), float(np.min(walls)), (_cpu_seconds() - cpu_start) / args.runs


def _saved_model_runner(path):
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    signature = meta_graph.signature_def["colorize_l"]
    feed, fetch = signature.inputs["l_raw"].name, signature.outputs["ab"].name
    return lambda l_raw: session.run(fetch, {feed: l_raw}), session


def _tflite_runner(path, threads, size):
    model = tflite.TFLiteColorizer(path, num_threads=threads)

    def run(l_raw):
        ab = model(l_raw)["ab"]
        return tf.image.resize(ab, (size, size), method="bilinear").numpy()

    return run


def _torch_runner(model, bf16, size, temperature=0.38):
    """The Keras model's network and weights in PyTorch: L -> full-size ab, as NHWC."""
    import torch
    import torch.nn.functional as F
    from pytorch_step import TorchColorizer

    from colornet import ab_bins

    net = TorchColorizer(model.model_config).eval()
    keras_layers = [layer for layer in model.layers if layer.weights]
    kinds = (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.BatchNorm2d)
    torch_layers = [m for m in net.layers if isinstance(m, kinds)]
    if len(keras_layers) != len(torch_layers):
        raise AssertionError(f"{len(keras_layers)} Keras layers with weights, {len(torch_layers)} in PyTorch")
    with torch.no_grad():
        for keras_layer, torch_layer in zip(keras_layers, torch_layers):
            weights = [torch.from_numpy(np.asarray(w, np.float32)) for w in keras_layer.get_weights()]
            if isinstance(torch_layer, torch.nn.BatchNorm2d):
                *affine, mean, variance = weights
                if affine:
                    torch_layer.weight.copy_(affine[0])
                    torch_layer.bias.copy_(affine[1])
                torch_layer.running_mean.copy_(mean)
                torch_layer.running_var.copy_(variance)
                continue
            kernel, bias = weights
            # Keras: (kh, kw, in, out), transposed (kh, kw, out, in); PyTorch: (out, in,
            # kh, kw), transposed (in, out, kh, kw): the same permutation. No spatial
            # flip (see colornet/weights/official.py).
            torch_layer.weight.copy_(kernel.permute(3, 2, 0, 1))
            torch_layer.bias.copy_(bias)
    centres = torch.from_numpy(ab_bins())

    def run(l_raw):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(torch.from_numpy(l_raw).permute(0, 3, 1, 2))
        probs = torch.softmax(logits.float() / temperature, dim=1)
        ab = torch.einsum("bqhw,qc->bchw", probs, centres)
        ab = F.interpolate(ab, size=(size, size), mode="bilinear", align_corners=False)
        return ab.permute(0, 2, 3, 1).numpy()

    return run


def main():
    args = _parse_args()
    load_start = os.getloadavg()[0]
    keras.utils.set_random_seed(0)
    if args.model:
        from colornet.models.loading import load_colorizer

        model, label = load_colorizer(args.model), args.model
    else:
        model = Colorizer.from_preset(args.preset)
        label = f"{args.preset} (random weights"
        if args.logit_std > 0:
            _spread_logits(model, args.logit_std, args.size)
            label += f", head rescaled to logit std {args.logit_std:g}"
        label += ")"
    workdir = args.workdir or tempfile.mkdtemp(prefix="colornet-deploy-bench-")
    os.makedirs(workdir, exist_ok=True)
    size = args.size
    calibration_dir = os.path.join(workdir, "calibration")
    if args.photos:
        from colornet.data import list_image_files, read_image

        paths = list_image_files(args.photos)[: args.images + args.calibration]
        images = [read_image(path) for path in paths[: args.images]]
        calibration_dir = os.path.join(workdir, "calibration.txt")
        with open(calibration_dir, "w") as f:
            f.write("\n".join(paths[args.images :]) + "\n")
    else:
        images = [_photo_like(size, seed) for seed in range(args.images)]
        os.makedirs(calibration_dir, exist_ok=True)
        for i in range(args.calibration):
            tf.io.write_file(
                os.path.join(calibration_dir, f"{i}.png"), tf.io.encode_png(_photo_like(size, 1000 + i))
            )
    inputs = [tflite.l_for_network(image, size).numpy() for image in images]

    rows, reference = [], None
    variants = list(args.variants)
    if "savedmodel-f32" not in variants:
        variants.insert(0, "savedmodel-f32")  # the reference for the ab error
    for variant in variants:
        print(f"... {variant}", flush=True)
        session = None
        if variant.startswith("pytorch"):
            path = None
            run = _torch_runner(model, variant.endswith("bf16"), size)
        elif variant in _EXPORT_OPTIONS:
            result = export.export_saved_model(
                model,
                os.path.join(workdir, variant),
                size=size,
                warmup=False,
                overwrite=True,
                version=1,
                **_EXPORT_OPTIONS[variant],
            )
            path = result.path
            run, session = _saved_model_runner(path)
        else:
            quantize = variant.split("-", 1)[1]
            path = os.path.join(workdir, f"{variant}.tflite")
            converted = tflite.convert(
                model,
                path,
                quantize,
                calibration_dir if quantize == "int8" else None,
                size=size,
                calibration_images=args.calibration,
                calibration_percentile=args.calibration_percentile,
            )
            if converted.calibration_percentile is not None:
                print(f"{variant}: activation ranges at percentile {converted.calibration_percentile}")
            run = _tflite_runner(path, args.threads, size)
        outputs = [run(x) for x in inputs]
        if variant == "savedmodel-f32":
            reference = outputs
        error = float(np.mean([np.abs(o - r).mean() for o, r in zip(outputs, reference)]))
        median, best, cpu = _time(run, inputs, args)
        rows.append((variant, _directory_bytes(path) / 1e6 if path else float("nan"), median, best, cpu, error))
        if session is not None:
            session.close()

    load_end = os.getloadavg()[0]
    print()
    print(f"model: {label}; input 1x{size}x{size}; {args.runs} timed runs after {args.warmup}")
    print(f"ab error over {len(inputs)} " + (f"photos from {args.photos}" if args.photos else "generated images"))
    print(f"load average (1 min) at start {load_start:.2f}, at end {load_end:.2f}; {os.cpu_count()} CPUs")
    print(f"mean |ab| of the float32 reference: {np.mean([np.abs(r).mean() for r in reference]):.2f}")
    pytorch = {variant: median for variant, _, median, *_ in rows}.get("pytorch-f32")
    baseline = pytorch or PYTORCH_SECONDS
    source = "pytorch-f32 measured here" if pytorch else f"the issue's {PYTORCH_SECONDS} s"
    print(f"speed-up relative to PyTorch float32: {source}")
    header = ("variant", "size MB", "median s", "min s", "CPU s", "ab err", "x PyTorch")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for variant, megabytes, median, best, cpu, error in rows:
        print(
            f"| {variant} | {megabytes:.1f} | {median:.3f} | {best:.3f} | {cpu:.3f} | "
            f"{error:.3f} | {baseline / median:.2f} |"
        )
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
