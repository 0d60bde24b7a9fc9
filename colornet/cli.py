"""The `colornet` command: an absl app with argparse subcommands.

Each handler parses its arguments, calls one library function and returns an exit
code. Errors a user can cause (`ColornetError`, `ValueError`, `OSError`) print one
line and exit non-zero, without a traceback.
"""

import sys

from absl import app
from absl.flags import argparse_flags

from colornet.errors import ColornetError


def _add_prior(subparsers):
    parser = subparsers.add_parser(
        "prior", help="compute the ab prior and rebalancing weights from images"
    )
    parser.add_argument(
        "--data", required=True, help="image folder (recursive), glob, or .txt list of paths"
    )
    parser.add_argument("--out", required=True, help="output .npz file")
    parser.add_argument("--resize", type=int, default=256, help="shorter side, in pixels")
    parser.add_argument("--plot", help="also write a PNG of the bins and log-prior here")
    parser.set_defaults(handler=_run_prior)


def _run_prior(args):
    from colornet import prior

    result = prior.compute_prior_from_files(args.data, resize=args.resize)
    prior.save_prior(result, args.out)
    print(
        f"wrote {args.out}: {result.metadata['images']} images, "
        f"{result.metadata['pixels']} pixels, {result.metadata['skipped']} skipped"
    )
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
    parser.add_argument("--preset", default="eccv16", help="network preset (eccv16, half, tiny)")
    parser.add_argument("--strategy", default="default",
                        choices=("default", "mirrored", "multi_worker", "tpu"))
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16"))
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
        strategy=args.strategy,
        precision=args.precision,
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
    )
    config = train.TrainConfig.from_overrides(config, args.set)
    summary = train.train(config)
    print(f"trained to step {summary['step']}; model: {summary['model']}")
    return 0


def _add_import_official(subparsers):
    parser = subparsers.add_parser(
        "import-official",
        help="convert the authors' released ECCV16 model (.pth or .caffemodel) to .keras",
    )
    parser.add_argument(
        "path",
        help="colorization_release_v2-9b330a0b.pth (PyTorch port; needs torch) or "
        "colorization_release_v2.caffemodel (Caffe release)",
    )
    parser.add_argument("-o", "--out", required=True, help="output .keras file")
    parser.set_defaults(handler=_run_import_official)


def _run_import_official(args):
    from colornet import official

    model = official.import_official(args.path, out=args.out)
    print(
        f"wrote {args.out}: {model.count_params():,} parameters. Temperature 1 reproduces "
        "the PyTorch port's colours, 0.384 the Caffe demo's; colornet's default is 0.38"
    )
    return 0


_SUBCOMMANDS = (_add_prior, _add_prepare, _add_train, _add_import_official)


def _parse_flags(argv):
    parser = argparse_flags.ArgumentParser(
        prog="colornet", description="Colorful Image Colorization in TensorFlow/Keras."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser.parse_args(argv[1:])


def main(args):
    try:
        return args.handler(args)
    except (ColornetError, ValueError, OSError) as error:
        print(f"colornet {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"colornet {args.command}: interrupted", file=sys.stderr)
        return 130


def launch():
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    launch()
