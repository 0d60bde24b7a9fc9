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


_SUBCOMMANDS = (_add_prior,)


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
