"""`colornet prior`, `prepare`, `train`, `recalibrate`: making a model."""

import dataclasses

from colornet import constants as c
from colornet.models import presets
from colornet.training import config as train_config
from colornet.utils.errors import ColornetError

# TrainConfig's field defaults, the flags' defaults.
_TRAIN_DEFAULTS = {field.name: field.default for field in dataclasses.fields(train_config.TrainConfig)}


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
    parser.add_argument("--resize", type=int, default=c.TRAIN_RESIZE, help="shorter side, in pixels")
    parser.add_argument("--plot", help="also write a PNG of the bins and log-prior here")
    parser.set_defaults(handler=_run_prior)


def _run_prior(args):
    from colornet import prior
    from colornet.utils import files

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
    parser.add_argument("--shards", type=int, help="number of shard files "
                        f"(default: 1 per {c.IMAGES_PER_SHARD} images)")
    parser.add_argument(
        "--resize",
        type=int,
        help="downscale images whose shorter side is larger to this and store them as "
        f"JPEG quality {c.PREPARE_JPEG_QUALITY} (default: keep every file's original bytes)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the order of files in shards")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(handler=_run_prepare)


def _run_prepare(args):
    from colornet import data
    from colornet.data import sources

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
        print(f"  ... and {len(summary.skipped) - 10} more, listed in {sources.MANIFEST_NAME}")
    return 0


def _add_train(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a colorizer (resumes from the workdir's last checkpoint)"
    )
    parser.add_argument("--data", required=True, help="image folder, glob, .txt list, "
                        "a folder written by `colornet prepare`, or tfds:NAME[:SPLIT]")
    parser.add_argument("--workdir", required=True, help="checkpoints, logs and config go here")
    parser.add_argument("--val-data", help="source of the fixed sample batch (default: --data)")
    parser.add_argument("--preset", help=f"network preset ({', '.join(presets.PRESETS)}; default: the "
                        "network of --init-from, else eccv16)")
    parser.add_argument("--init-from", metavar="NAME|FILE|WORKDIR",
                        help="start from a released model's weights (a name of `colornet pretrained`, e.g. "
                        "eccv16_imagenet), a .keras or .npz file (at step 0, learning rate a tenth of the "
                        "paper's unless set), or a workdir or checkpoint (its step and optimizer too)")
    parser.add_argument("--strategy", default=_TRAIN_DEFAULTS["strategy"], choices=train_config.STRATEGIES)
    parser.add_argument("--precision", default=_TRAIN_DEFAULTS["precision"],
                        choices=(*train_config.PRECISIONS, "mixed_bfloat16"),
                        help="bfloat16: mixed precision, weights float32 (mixed_bfloat16: the same, its old name)")
    length = parser.add_mutually_exclusive_group(required=True)
    length.add_argument("--steps", type=int, help="total optimizer steps")
    length.add_argument("--epochs", type=int, help="passes over the training images")
    parser.add_argument("--batch-size", type=int, default=_TRAIN_DEFAULTS["batch_size"], help="global batch size")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any TrainConfig field, e.g. --set checkpoint_every=200")
    parser.set_defaults(handler=_run_train)


def _run_train(args):
    from colornet.training import train

    config = train_config.TrainConfig(
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
    config = train_config.TrainConfig.from_overrides(config, args.set)
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
    parser.add_argument("--images", type=int, default=train_config.RECALIBRATE_IMAGES,
                        help="photos to use (default %(default)s)")
    parser.add_argument("--size", type=int, default=c.TRAIN_RESIZE,
                        help="side the photos are seen at (default %(default)s)")
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
    from colornet.training import recalibrate

    used = recalibrate.recalibrate_file(
        args.model, args.data, args.out, images=args.images, size=args.size, undo_rebalancing=args.undo_rebalancing,
        prior=args.prior,
    )
    undo = "" if args.undo_rebalancing is None else f", rebalancing undone by {args.undo_rebalancing:g}"
    print(f"wrote {args.out}: batch-norm statistics recomputed on {used} images{undo}")
    return 0


def register(subparsers):
    """Adds this group's subcommands to the `colornet` parser."""
    for add in (_add_prior, _add_prepare, _add_train, _add_recalibrate):
        add(subparsers)
