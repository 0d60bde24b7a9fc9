"""`colornet export`, `tflite`: a model in a deployment format."""

import argparse
import sys

from colornet import constants as c
from colornet.deploy import defaults


def _add_export(subparsers):
    parser = subparsers.add_parser(
        "export", help="write a TF Serving SavedModel version (atomically) under a base directory"
    )
    parser.add_argument("--model", required=True, help=".keras file, compact .npz, training workdir "
                        "or a pretrained name (colornet pretrained)")
    parser.add_argument("--out", required=True, help="model base directory, e.g. models/colornet")
    parser.add_argument("--version", type=int, help="version number (default: largest + 1, or 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--size", "--image-size", dest="size", type=int, default=c.TRAIN_RESIZE,
                        help="side the network runs at (--image-size: its old name)")
    parser.add_argument("--temperature", type=float, default=c.ANNEALED_MEAN_TEMPERATURE,
                        help="default temperature")
    parser.add_argument("--max-pixels", type=int, help="largest accepted image, width x height "
                        f"(default {defaults.SERVING_MAX_PIXELS:,})")
    parser.add_argument("--precision", default=defaults.PRECISIONS[0], choices=defaults.PRECISIONS,
                        help="bfloat16: network in bfloat16 (for CPUs with AVX512_BF16 or AMX)")
    parser.add_argument("--jit-compile", action="store_true",
                        help="XLA-compile the network (needs a model server with XLA's CPU JIT)")
    parser.add_argument("--no-warmup", action="store_true", help="write no TF Serving warm-up requests")
    parser.set_defaults(handler=_run_export)


def _run_export(args):
    from colornet.deploy import export

    options = {
        "size": args.size,
        "temperature": args.temperature,
        "precision": args.precision,
        "jit_compile": args.jit_compile,
        "warmup": not args.no_warmup,
    }
    if args.max_pixels is not None:
        options["max_pixels"] = args.max_pixels
    if args.precision == "bfloat16" and not export.cpu_supports_bfloat16():
        print("note: this CPU has no native bfloat16; the export will be slow here", file=sys.stderr)
    result = export.export_saved_model(
        args.model, args.out, args.version, overwrite=args.overwrite, **options
    )
    print(f"wrote {result.path} (version {result.version}; signatures: {', '.join(result.signatures)})")
    return 0


def calibration_percentile_arg(text):
    """argparse type of --calibration-percentile: "auto" or a number."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None


def _percentiles():
    """"99.9, 99.99 and 100": the percentiles "auto" chooses from."""
    *first, last = (f"{p:g}" for p in defaults.AUTO_PERCENTILES)
    return f"{', '.join(first)} and {last}"


def _add_tflite(subparsers):
    parser = subparsers.add_parser("tflite", help="convert a model to TFLite (builtin ops only)")
    parser.add_argument("--model", required=True, help=".keras file, compact .npz, training workdir "
                        "or a pretrained name (colornet pretrained)")
    parser.add_argument("--out", required=True, help="output .tflite file")
    parser.add_argument("--quantize", default=defaults.QUANTIZATIONS[0], choices=defaults.QUANTIZATIONS)
    parser.add_argument("--representative", help="image folder, glob or .txt list (int8 calibration)")
    parser.add_argument("--calibration-images", type=int, default=defaults.DEFAULT_CALIBRATION_IMAGES,
                        help="at most this many")
    parser.add_argument(
        "--calibration-percentile",
        type=calibration_percentile_arg,
        default=defaults.DEFAULT_CALIBRATION_PERCENTILE,
        help="int8 activation ranges cover this percentile of the calibration values (100: "
        f"their minimum and maximum); auto: the best of {_percentiles()} on them",
    )
    parser.add_argument("--size", "--image-size", dest="size", type=int, default=c.TRAIN_RESIZE,
                        help="side of the square input (--image-size: its old name)")
    parser.add_argument("--temperature", type=float, default=c.ANNEALED_MEAN_TEMPERATURE,
                        help="temperature of the ab output")
    parser.set_defaults(handler=_run_tflite)


def _run_tflite(args):
    from colornet.deploy import tflite

    result = tflite.convert(
        args.model,
        args.out,
        args.quantize,
        args.representative,
        size=args.size,
        temperature=args.temperature,
        calibration_images=args.calibration_images,
        calibration_percentile=args.calibration_percentile,
    )
    print(
        f"wrote {result.path}: {result.size_bytes / 1e6:.1f} MB, {result.quantize}, input "
        f"1x{result.image_size}x{result.image_size}x1, ops: {' '.join(result.ops)}"
    )
    if result.calibration_images:
        print(
            f"calibrated on {result.calibration_images} images; activation ranges at percentile "
            f"{result.calibration_percentile:g}"
            + (" (chosen by auto)" if args.calibration_percentile == "auto" else "")
        )
    return 0


def register(subparsers):
    """Adds this group's subcommands to the `colornet` parser."""
    for add in (_add_export, _add_tflite):
        add(subparsers)
