"""`colornet colorize`, `evaluate`, `demo`: a model used on photos and videos."""

import argparse

from colornet import constants as c
from colornet.apps import defaults as app_defaults
from colornet.utils.errors import ColornetError


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
    _add_model(parser)
    _add_decoding(parser)
    parser.add_argument("--compare", action="store_true",
                        help="write grey input | colourised | original (if in colour) side by side")
    parser.add_argument("--size", type=int, help=f"side the network runs at (default {c.TRAIN_RESIZE}, or an "
                        "exported model's own)")
    parser.add_argument("--hints", metavar="FILE|DIR", help="colours to impose, for a model that takes "
                        "hints: a JSON list of {\"x\": 120, \"y\": 45, \"color\": \"#3a7d2c\"} (x, y in "
                        "the image's pixels from its top-left corner; optional \"size\" in pixels; \"ab\": "
                        "[a, b] instead of \"color\") for one image, or a folder of NAME.json files matched to "
                        "images by stem")
    _add_max_pixels(parser)
    _add_video_options(parser)
    parser.set_defaults(handler=_run_colorize)


def _add_model(parser):
    parser.add_argument("--model", help="a .keras file, training workdir, checkpoint, SavedModel "
                        "directory, .tflite file or pretrained name (colornet pretrained; default: "
                        "the bundled model)")


def _add_decoding(parser):
    parser.add_argument("--temperature", type=float, default=c.ANNEALED_MEAN_TEMPERATURE,
                        help="annealed-mean temperature")
    parser.add_argument("--method", "--decode", dest="method", default=c.DECODE_METHODS[0],
                        choices=c.DECODE_METHODS, help="how logits become ab "
                        "(--decode: its old name)")


def _add_max_pixels(parser):
    from colornet.constants import MAX_PIXELS  # plain Python: the help loads no TensorFlow

    parser.add_argument("--max-pixels", type=int, help="largest image (or video frame) accepted, "
                        f"width x height (default {MAX_PIXELS:,})")


VIDEO_OPTIONS = ("temporal_smoothing", "scene_threshold", "motion", "crf", "encoder_preset", "precision", "batch_size")


def _add_video_options(parser):
    """Options of video inputs. Unset ones take colornet.apps.video's defaults (chosen by
    benchmarks/video.py, README "Video"); its `defaults` module is plain Python, so
    the help shows them without loading TensorFlow."""
    from colornet.apps.video import defaults

    extensions = ", ".join(ext.lstrip(".") for ext in defaults.VIDEO_EXTENSIONS)
    group = parser.add_argument_group(f"video inputs ({extensions}; need `pip install 'colornet-keras[video]'`)")
    unset = argparse.SUPPRESS
    group.add_argument("--temporal-smoothing", type=float, default=unset, metavar="S",
                       help="weight of the running average of colour over frames: 0 colours each frame "
                       f"on its own, up to < 1 (default {defaults.DEFAULT_TEMPORAL_SMOOTHING})")
    group.add_argument("--scene-threshold", type=float, default=unset, metavar="D",
                       help="start the average afresh where consecutive frames' L histograms differ by "
                       f"more than D (total variation, 0..1; default {defaults.DEFAULT_SCENE_THRESHOLD})")
    group.add_argument("--motion", default=unset, choices=defaults.MOTION_MODES,
                       help="camera: carry the average along the camera's motion and hold it back where "
                       "L disagrees; flow: the same along the optical flow; agreement: hold it back where L "
                       f"changed; none: plain average (default {defaults.DEFAULT_MOTION})")
    group.add_argument("--crf", type=int, default=unset, help="H.264 quality: 0 lossless .. 51 worst "
                       f"(default {defaults.DEFAULT_CRF})")
    group.add_argument("--encoder-preset", default=unset,
                       help=f"x264 speed preset (default {defaults.DEFAULT_ENCODER_PRESET})")
    group.add_argument("--precision", default=unset, choices=defaults.PRECISIONS,
                       help="the network's form on video frames; auto: bfloat16 on AMX, else the bundled "
                       "model's int8 LiteRT form (another model: bfloat16 where the CPU has it natively, else "
                       "float32) (default auto)")
    group.add_argument("--batch-size", type=int, default=unset, metavar="N",
                       help=f"video frames per network call (default {defaults.DEFAULT_BATCH_SIZE})")


def _run_colorize(args):
    from colornet.apps import batch

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
    _add_model(parser)
    parser.add_argument("--data", required=True, help="image folder (recursive), glob or .txt list of paths")
    parser.add_argument("--limit", type=int, help="evaluate the first N readable images")
    parser.add_argument("--json", metavar="FILE", help="also write the results, with the "
                        "accuracy curves, to this JSON file")
    parser.add_argument("--resolution", default="both", choices=(*app_defaults.RESOLUTIONS, "both"),
                        help="native: shorter side to the network's size, centre square; "
                        "full: each image at its own size")
    parser.add_argument("--size", type=int, help=f"the network's native side (default {c.TRAIN_RESIZE}, or an "
                        "exported model's own)")
    _add_decoding(parser)
    parser.add_argument("--hints", action="store_true", help="score a model that takes hints as the "
                        "2017 paper does instead: PSNR and AuC against 0 to 50 points revealed from the "
                        "truth, the error at the hinted pixels, and how far one hint reaches (native "
                        "resolution; docs/hints.md)")
    _add_max_pixels(parser)
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate_hints(args):
    from colornet.apps import evaluate
    from colornet.deploy import predictors

    predictor = predictors.load_predictor(args.model)  # loaded once for both measures
    result = {
        "points": evaluate.evaluate_hints(predictor, args.data, limit=args.limit, size=args.size),
        "spread": evaluate.evaluate_hint_spread(predictor, args.data, limit=args.limit, size=args.size),
    }
    if args.json:
        evaluate.write_json(result, args.json)
    print(evaluate.format_hint_table(result))
    return 0


def _run_evaluate(args):
    import json

    from colornet.apps import evaluate

    if args.hints:
        return _run_evaluate_hints(args)
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
                        f"folders, globs; at most {app_defaults.MAX_OWN_PHOTOS}) instead of the samples")
    parser.add_argument("-o", "--out", default=app_defaults.DEFAULT_OUT_DIR, help="output directory")
    parser.add_argument("--model", help="a model (or pretrained name) instead of the bundled one")
    parser.set_defaults(handler=_run_demo)


def _run_demo(args):
    from colornet.apps import demo

    result = demo.run_demo(args.out, model=args.model, photos=args.photos or None)
    print(f"wrote {len(result.images)} colourised photos, {result.grid} and {result.index}"
          + (f"; {len(result.skipped)} skipped (listed above)" if result.skipped else ""))
    print(f"open file://{result.index}")
    return 1 if result.skipped else 0


def _add_app(subparsers):
    parser = subparsers.add_parser(
        "app", help="colourise photos and videos in a web page served on this machine (docs/app.md)",
        description="Serves the page and its HTTP API (docs/app.md) until Ctrl-C; everything it needs "
        "ships with colornet, so it works offline. Needs `pip install 'colornet-keras[app]'`.",
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
        from colornet.web import server
    except ImportError as error:
        raise ColornetError(
            f"the app needs its extra ({error.name} is missing): pip install 'colornet-keras[app]'"
        ) from None
    server.serve(args.models, host=args.host, port=args.port, open_browser=not args.no_browser)
    return 0


def register(subparsers):
    """Adds this group's subcommands to the `colornet` parser."""
    for add in (_add_colorize, _add_evaluate, _add_demo, _add_app):
        add(subparsers)
