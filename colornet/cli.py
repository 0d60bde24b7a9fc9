"""The `colornet` command: an absl app with argparse subcommands.

Each handler parses its arguments, calls one library function and returns an exit
code. Errors a user can cause (`ColornetError`, `ValueError`, `OSError`, and
TensorFlow's `OpError` from a file it cannot read or write) print one line and exit
non-zero, without a traceback; Ctrl-C and SIGTERM stop a command cleanly (exit
codes 130 and 143). On stderr a command prints only its own messages:
TensorFlow's start-up lines are held aside while it loads (`colornet.console`);
`--verbose` shows them.
"""

import argparse
import os
import signal
import sys
import threading

from absl import app, logging
from absl.flags import argparse_flags

from colornet import console
from colornet.errors import ColornetError, first_line


def _add_prior(subparsers):
    parser = subparsers.add_parser(
        "prior", help="compute the ab prior and rebalancing weights from images, or show one"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="image folder (recursive), glob, .txt list of paths, "
                        "a `colornet prepare` folder or tfds:NAME[:SPLIT]")
    source.add_argument("--show", metavar="FILE", help="summarise an existing prior .npz "
                        "('default' for the package's)")
    parser.add_argument("--out", help="output .npz file (with --data)")
    parser.add_argument("--resize", type=int, default=256, help="shorter side, in pixels")
    parser.add_argument("--plot", help="also write a PNG of the bins and log-prior here")
    parser.set_defaults(handler=_run_prior)


def _run_prior(args):
    from colornet import files, prior

    if args.plot:
        files.check_writable_file(args.plot)
    if args.data:
        if not args.out:
            raise ColornetError("--data needs --out FILE.npz")
        # Before any image is read: counting a large folder takes long.
        prior.check_prior_path(args.out)
        result = prior.compute_prior_from_files(args.data, resize=args.resize)
        prior.save_prior(result, args.out)
        print(f"wrote {args.out}")
    else:
        result = prior.default_prior() if args.show == "default" else prior.load_prior(args.show)
    print(prior.describe(result))
    if args.plot:
        prior.plot_prior(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _add_prepare(subparsers):
    parser = subparsers.add_parser(
        "prepare", help="pack images into sharded TFRecords for fast training input"
    )
    parser.add_argument(
        "--data", required=True, help="image folder (recursive), glob, or .txt list of paths"
    )
    parser.add_argument("--out", required=True, help="directory to create (local or gs://)")
    parser.add_argument("--shards", type=int, help="number of shard files (default: 1 per 1024 images)")
    parser.add_argument(
        "--resize",
        type=int,
        help="downscale images whose shorter side is larger to this and store them as "
        "JPEG quality 95 (default: keep every file's original bytes)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the order of files in shards")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(handler=_run_prepare)


def _run_prepare(args):
    from colornet import data

    summary = data.prepare(
        args.data,
        args.out,
        shards=args.shards,
        resize=args.resize,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {summary.out_dir}: {summary.images} images in {len(summary.shards)} shards, "
        f"{len(summary.skipped)} skipped ({summary.seconds:.1f} s)"
    )
    for path, reason in summary.skipped[:10]:
        print(f"  skipped {path}: {reason}")
    if len(summary.skipped) > 10:
        print(f"  ... and {len(summary.skipped) - 10} more, listed in {data.MANIFEST_NAME}")
    return 0


def _add_train(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a colorizer (resumes from the workdir's last checkpoint)"
    )
    parser.add_argument("--data", required=True, help="image folder, glob, .txt list, "
                        "a folder written by `colornet prepare`, or tfds:NAME[:SPLIT]")
    parser.add_argument("--workdir", required=True, help="checkpoints, logs and config go here")
    parser.add_argument("--val-data", help="source of the fixed sample batch (default: --data)")
    parser.add_argument("--preset", help="network preset (eccv16, half, half_shortcut, tiny; default: the "
                        "network of --init-from, else eccv16)")
    parser.add_argument("--init-from", metavar="NAME|FILE|WORKDIR",
                        help="start from a released model's weights (a name of `colornet pretrained`, e.g. "
                        "eccv16_imagenet), a .keras or .npz file (at step 0, learning rate a tenth of the "
                        "paper's unless set), or a workdir or checkpoint (its step and optimizer too)")
    parser.add_argument("--strategy", default="default",
                        choices=("default", "mirrored", "multi_worker", "tpu"))
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16", "mixed_bfloat16"),
                        help="bfloat16: mixed precision, weights float32 (mixed_bfloat16: the same, its old name)")
    length = parser.add_mutually_exclusive_group(required=True)
    length.add_argument("--steps", type=int, help="total optimizer steps")
    length.add_argument("--epochs", type=int, help="passes over the training images")
    parser.add_argument("--batch-size", type=int, default=40, help="global batch size")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any TrainConfig field, e.g. --set checkpoint_every=200")
    parser.set_defaults(handler=_run_train)


def _run_train(args):
    from colornet import train

    config = train.TrainConfig(
        data=args.data,
        workdir=args.workdir,
        val_data=args.val_data,
        preset=args.preset,
        init_from=args.init_from,
        strategy=args.strategy,
        precision="bfloat16" if args.precision == "mixed_bfloat16" else args.precision,
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
    )
    config = train.TrainConfig.from_overrides(config, args.set)
    summary = train.train(config)
    model = summary.get("model")  # in a multi-worker run only the chief writes one
    print(f"trained to step {summary['step']}" + (f"; model: {model}" if model else ""))
    return 0


def _add_recalibrate(subparsers):
    parser = subparsers.add_parser(
        "recalibrate",
        help="recompute a model's batch-norm statistics for its own weights, on photos",
    )
    parser.add_argument("--model", required=True, help=".keras file, compact .npz or training workdir")
    parser.add_argument("--data", required=True, help="photos: folder (recursive), glob or .txt list of paths")
    parser.add_argument("--out", required=True, help="output .keras or compact .npz file")
    parser.add_argument("--images", type=int, default=256, help="photos to use (default 256)")
    parser.add_argument("--size", type=int, default=256, help="side the photos are seen at (default 256)")
    parser.add_argument(
        "--undo-rebalancing",
        type=float,
        metavar="A",
        help="also take this fraction (0-1) of the class rebalancing's boost of rare colours out of "
        "the logits: less vivid, fewer wrong colours (default: keep the model's; README model card)",
    )
    parser.add_argument(
        "--prior",
        help="the prior the model was trained with, for --undo-rebalancing: default, uniform, a prior .npz "
        "or a .npy of 313 bin probabilities (default: the one the model or workdir records)",
    )
    parser.set_defaults(handler=_run_recalibrate)


def _run_recalibrate(args):
    from colornet import recalibrate

    used = recalibrate.recalibrate_file(
        args.model, args.data, args.out, images=args.images, size=args.size, undo_rebalancing=args.undo_rebalancing,
        prior=args.prior,
    )
    undo = "" if args.undo_rebalancing is None else f", rebalancing undone by {args.undo_rebalancing:g}"
    print(f"wrote {args.out}: batch-norm statistics recomputed on {used} images{undo}")
    return 0


def _add_import_official(subparsers):
    parser = subparsers.add_parser(
        "import-official",
        help="convert the authors' released ECCV16 model (.pth or .caffemodel) to .keras",
    )
    parser.add_argument(
        "path",
        help="colorization_release_v2-9b330a0b.pth (PyTorch port; read without PyTorch) or "
        "colorization_release_v2.caffemodel (Caffe release)",
    )
    parser.add_argument("-o", "--out", required=True, help="output .keras file")
    parser.set_defaults(handler=_run_import_official)


def _run_import_official(args):
    from colornet import official

    official.import_official(args.path, out=args.out)
    print(
        f"wrote {args.out}; decoding at temperature 1 reproduces the PyTorch port's colours, "
        "at 0.384 the Caffe demo's (colornet's default is the paper's 0.38)"
    )
    return 0


def _add_pretrained(subparsers):
    parser = subparsers.add_parser(
        "pretrained",
        help="list the authors' released models usable as --model NAME, or fetch one now",
        description="Without NAME: each release's source, size, checksum, licence and whether it "
        "is cached. With NAME: download, verify, convert and cache it now (e.g. before going "
        "offline), or, with --file, take a copy downloaded by hand.",
    )
    parser.add_argument("name", nargs="?", help="a released model to fetch now")
    parser.add_argument("--file", help="the release file, downloaded by hand: verified, converted, cached")
    parser.set_defaults(handler=_run_pretrained)


def _run_pretrained(args):
    from colornet import pretrained

    if args.name is None:
        if args.file:
            raise ColornetError("--file needs the NAME of the release it is")
        print(pretrained.describe())
        return 0
    path = pretrained.fetch(args.name, local_file=args.file)
    print(f"{args.name}: {path}")
    return 0


def _add_export(subparsers):
    parser = subparsers.add_parser(
        "export", help="write a TF Serving SavedModel version (atomically) under a base directory"
    )
    parser.add_argument("--model", required=True, help=".keras file, compact .npz, training workdir "
                        "or a pretrained name (colornet pretrained)")
    parser.add_argument("--out", required=True, help="model base directory, e.g. models/colornet")
    parser.add_argument("--version", type=int, help="version number (default: largest + 1, or 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--size", "--image-size", dest="size", type=int, default=256,
                        help="side the network runs at (--image-size: its old name)")
    parser.add_argument("--temperature", type=float, default=0.38, help="default temperature")
    parser.add_argument("--max-pixels", type=int, help="largest accepted image (default 4096x4096)")
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                        help="bfloat16: network in bfloat16 (for CPUs with AVX512_BF16 or AMX)")
    parser.add_argument("--jit-compile", action="store_true",
                        help="XLA-compile the network (needs a model server with XLA's CPU JIT)")
    parser.add_argument("--no-warmup", action="store_true", help="write no TF Serving warm-up requests")
    parser.set_defaults(handler=_run_export)


def _run_export(args):
    from colornet import export

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


def _add_tflite(subparsers):
    parser = subparsers.add_parser("tflite", help="convert a model to TFLite (builtin ops only)")
    parser.add_argument("--model", required=True, help=".keras file, compact .npz, training workdir "
                        "or a pretrained name (colornet pretrained)")
    parser.add_argument("--out", required=True, help="output .tflite file")
    parser.add_argument("--quantize", default="none", choices=("none", "float16", "dynamic", "int8"))
    parser.add_argument("--representative", help="image folder, glob or .txt list (int8 calibration)")
    parser.add_argument("--calibration-images", type=int, default=100, help="at most this many")
    parser.add_argument(
        "--calibration-percentile",
        type=calibration_percentile_arg,
        default="auto",
        help="int8 activation ranges cover this percentile of the calibration values (100: "
        "their minimum and maximum); auto: the best of 99.9, 99.99 and 100 on them",
    )
    parser.add_argument("--size", "--image-size", dest="size", type=int, default=256,
                        help="side of the square input (--image-size: its old name)")
    parser.add_argument("--temperature", type=float, default=0.38, help="temperature of the ab output")
    parser.set_defaults(handler=_run_tflite)


def _run_tflite(args):
    from colornet import tflite

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


def _add_colorize(subparsers):
    parser = subparsers.add_parser(
        "colorize",
        help="colourise images into PNGs and videos into videos (files, folders, globs), "
        "at their own resolution",
        description="Each result is OUT/<input path relative to its folder argument (or the "
        "glob's folder; a file's base name)>, with extension .png for an image; a video keeps "
        "its name (.webm becomes .mkv). Only the L of colour inputs is used. Unreadable files "
        "are reported and skipped; the exit code is 1 if any file failed.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image or video files, folders or globs")
    parser.add_argument("-o", "--out", required=True, help="output directory (created if needed)")
    parser.add_argument("--model", help="a .keras file, training workdir, checkpoint, SavedModel "
                        "directory, .tflite file or pretrained name (colornet pretrained; default: "
                        "the bundled model)")
    parser.add_argument("--temperature", type=float, default=0.38, help="annealed-mean temperature")
    parser.add_argument("--method", "--decode", dest="method", default="annealed-mean",
                        choices=("annealed-mean", "mean", "mode"), help="how logits become ab "
                        "(--decode: its old name)")
    parser.add_argument("--compare", action="store_true",
                        help="write grey input | colourised | original (if in colour) side by side")
    parser.add_argument("--size", type=int, help="side the network runs at (default 256, or an "
                        "exported model's own)")
    parser.add_argument("--hints", metavar="FILE|DIR", help="colours to impose, for a model that takes "
                        "hints: a JSON list of {\"x\": 120, \"y\": 45, \"color\": \"#3a7d2c\"} (x, y in "
                        "the image's pixels from its top-left corner; optional \"size\" in pixels; \"ab\": "
                        "[a, b] instead of \"color\") for one image, or a folder of NAME.json files matched to "
                        "images by stem")
    _add_max_pixels(parser)
    _add_video_options(parser)
    parser.set_defaults(handler=_run_colorize)


def _add_max_pixels(parser):
    from colornet.constants import MAX_PIXELS  # plain Python: the help loads no TensorFlow

    parser.add_argument("--max-pixels", type=int, help="largest image (or video frame) accepted, "
                        f"width x height (default {MAX_PIXELS:,})")


VIDEO_OPTIONS = ("temporal_smoothing", "scene_threshold", "motion", "crf", "encoder_preset", "precision", "batch_size")


def _add_video_options(parser):
    """Options of video inputs. Unset ones take colornet.video's defaults (chosen by
    benchmarks/video.py, README "Video"); its `defaults` module is plain Python, so
    the help shows them without loading TensorFlow."""
    from colornet.video import defaults

    extensions = ", ".join(ext.lstrip(".") for ext in defaults.VIDEO_EXTENSIONS)
    group = parser.add_argument_group(f"video inputs ({extensions}; need `pip install 'colornet[video]'`)")
    unset = argparse.SUPPRESS
    group.add_argument("--temporal-smoothing", type=float, default=unset, metavar="S",
                       help="weight of the running average of colour over frames: 0 colours each frame "
                       f"on its own, up to < 1 (default {defaults.DEFAULT_TEMPORAL_SMOOTHING})")
    group.add_argument("--scene-threshold", type=float, default=unset, metavar="D",
                       help="start the average afresh where consecutive frames' L histograms differ by "
                       f"more than D (total variation, 0..1; default {defaults.DEFAULT_SCENE_THRESHOLD})")
    group.add_argument("--motion", default=unset, choices=defaults.MOTION_MODES,
                       help="agreement: hold the average back where L changed; flow: also carry it "
                       f"along the optical flow; none: plain average (default {defaults.DEFAULT_MOTION})")
    group.add_argument("--crf", type=int, default=unset, help="H.264 quality: 0 lossless .. 51 worst "
                       f"(default {defaults.DEFAULT_CRF})")
    group.add_argument("--encoder-preset", default=unset,
                       help=f"x264 speed preset (default {defaults.DEFAULT_ENCODER_PRESET})")
    group.add_argument("--precision", default=unset, choices=defaults.PRECISIONS,
                       help="the network's precision on video frames; auto: bfloat16 where the CPU has it "
                       "natively (default auto)")
    group.add_argument("--batch-size", type=int, default=unset, metavar="N",
                       help=f"video frames per network call (default {defaults.DEFAULT_BATCH_SIZE})")


def _run_colorize(args):
    from colornet import batch

    summary = batch.colorize_files(
        args.inputs,
        args.out,
        args.model,
        temperature=args.temperature,
        method=args.method,
        size=args.size,
        compare=args.compare,
        max_pixels=args.max_pixels,
        video_options={name: getattr(args, name) for name in VIDEO_OPTIONS if hasattr(args, name)},
        hints=args.hints,
    )
    print(f"wrote {summary.describe_written()} to {summary.out_dir}"
          + (f"; {len(summary.failed)} failed (listed above)" if summary.failed else ""))
    return 1 if summary.failed else 0


def _add_evaluate(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="AuC (raw, rebalanced), PSNR and colourfulness of a model beside the grey baseline",
    )
    parser.add_argument("--model", help="a .keras file, training workdir, checkpoint, SavedModel "
                        "directory, .tflite file or pretrained name (colornet pretrained; default: "
                        "the bundled model)")
    parser.add_argument("--data", required=True, help="image folder (recursive), glob or .txt list of paths")
    parser.add_argument("--limit", type=int, help="evaluate the first N readable images")
    parser.add_argument("--json", metavar="FILE", help="also write the results, with the "
                        "accuracy curves, to this JSON file")
    parser.add_argument("--resolution", default="both", choices=("native", "full", "both"),
                        help="native: shorter side to the network's size, centre square; "
                        "full: each image at its own size")
    parser.add_argument("--size", type=int, help="the network's native side (default 256, or an "
                        "exported model's own)")
    parser.add_argument("--temperature", type=float, default=0.38, help="annealed-mean temperature")
    parser.add_argument("--method", "--decode", dest="method", default="annealed-mean",
                        choices=("annealed-mean", "mean", "mode"), help="how logits become ab "
                        "(--decode: its old name)")
    _add_max_pixels(parser)
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args):
    import json

    from colornet import evaluate

    result = evaluate.evaluate(
        args.model,
        args.data,
        limit=args.limit,
        size=args.size,
        method=args.method,
        temperature=args.temperature,
        resolutions=evaluate.RESOLUTIONS if args.resolution == "both" else (args.resolution,),
        curves=bool(args.json),
        max_pixels=args.max_pixels,
    )
    if args.json:
        evaluate.write_json(result, args.json)
    print(evaluate.format_table(result))
    summary = {key: value for key, value in result.items() if key not in ("curves", "definitions")}
    print(json.dumps(summary, indent=1))
    if args.json:
        print(f"wrote {args.json}")
    return 0


def _add_demo(subparsers):
    parser = subparsers.add_parser(
        "demo", help="colourise scikit-image's sample photos, or colour photos of your own, and "
        "write a page to look at: grey input | colourised | original",
    )
    parser.add_argument("photos", nargs="*", metavar="PHOTO", help="colour photos of your own (files, "
                        "folders, globs; at most 24) instead of the samples")
    parser.add_argument("-o", "--out", default="colornet_demo", help="output directory")
    parser.add_argument("--model", help="a model (or pretrained name) instead of the bundled one")
    parser.set_defaults(handler=_run_demo)


def _run_demo(args):
    from colornet import demo

    result = demo.run_demo(args.out, model=args.model, photos=args.photos or None)
    print(f"wrote {len(result.images)} colourised photos, {result.grid} and {result.index}"
          + (f"; {len(result.skipped)} skipped (listed above)" if result.skipped else ""))
    print(f"open file://{result.index}")
    return 1 if result.skipped else 0


def _add_app(subparsers):
    parser = subparsers.add_parser(
        "app", help="colourise photos and videos in a web page served on this machine (docs/app.md)",
        description="Serves the page and its HTTP API (docs/app.md) until Ctrl-C; everything it needs "
        "ships with colornet, so it works offline. Needs `pip install 'colornet[app]'`.",
    )
    parser.add_argument("--model", dest="models", action="append", default=[], metavar="NAME|FILE",
                        help="a model to offer (a pretrained name or a model path); repeat for several; the "
                        "first is the default (default: the bundled model)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--no-browser", action="store_true", help="do not open the page in a browser")
    parser.set_defaults(handler=_run_app)


def _run_app(args):
    try:
        from colornet.app import server
    except ImportError as error:
        raise ColornetError(f"the app needs its extra ({error.name} is missing): pip install 'colornet[app]'") from None
    server.serve(args.models, host=args.host, port=args.port, open_browser=not args.no_browser)
    return 0


_SUBCOMMANDS = (_add_prior, _add_prepare, _add_train, _add_recalibrate, _add_import_official, _add_export, _add_tflite,
                _add_colorize, _add_evaluate, _add_demo, _add_pretrained, _add_app)


def _parse_flags(argv):
    parser = argparse_flags.ArgumentParser(
        prog="colornet", description="Colorful Image Colorization in TensorFlow/Keras."
    )
    verbose_help = "show everything TensorFlow prints as well (start-up lines, INFO logs)"
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(subparsers)
    # Also after the subcommand; SUPPRESS keeps a flag given before it.
    for subparser in subparsers.choices.values():
        subparser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    return parser.parse_args(argv[1:])


def _user_errors():
    """The exception types a user can cause. TensorFlow is imported by the handlers,
    not here (it takes seconds), so its OpError is added once it is loaded."""
    tf = sys.modules.get("tensorflow")
    return (ColornetError, ValueError, OSError) + ((tf.errors.OpError,) if tf else ())


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, `docker stop`), raised in the main thread so that a
    command stops as it does on Ctrl-C: temporary files removed, nothing half-written."""


def _raise_terminated(signum, frame):
    raise Terminated()


def main(args):
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args):
    verbose = getattr(args, "verbose", False)
    if not verbose:
        # absl's default INFO level would interleave TF's checkpoint chatter with progress.
        logging.set_verbosity(logging.WARNING)
    try:
        console.load_tensorflow(verbose)
        if getattr(args, "model", None) and not os.path.exists(args.model):
            from colornet import predictors  # --model NAME: a released model, fetched on first use

            args.model = predictors.model_file(args.model)
        return args.handler(args)
    except _user_errors() as error:  # evaluated when an exception arrives
        print(f"colornet {args.command}: error: {first_line(error)}", file=sys.stderr)
        return 1
    except Terminated:
        print(f"colornet {args.command}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"colornet {args.command}: interrupted", file=sys.stderr)
        return 130


def launch():
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    launch()
