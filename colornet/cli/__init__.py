"""The `colornet` command: an absl app with argparse subcommands.

Each handler parses its arguments, calls one library function and returns an exit
code. Errors a user can cause (`ColornetError`, `ValueError`, `OSError`, and
TensorFlow's `OpError` from a file it cannot read or write) print one line and exit
non-zero, without a traceback; Ctrl-C and SIGTERM stop a command cleanly (exit
codes 130 and 143). On stderr a command prints only its own messages:
TensorFlow's start-up lines are held aside while it loads (`colornet.utils.console`);
`--verbose` shows them.
"""

import argparse
import os
import signal
import sys
import threading

from absl import app, logging
from absl.flags import argparse_flags

from colornet.cli import apps, deploy, training, weights
from colornet.utils import console
from colornet.utils.errors import ColornetError, first_line

# Each module adds its group's subcommands, in this order in `colornet --help`.
_GROUPS = (training, weights, deploy, apps)


def _parse_flags(argv):
    return build_parser().parse_args(argv[1:])


def build_parser():
    """The `colornet` parser with every group's subcommands (`parser.commands`: name -> parser)."""
    parser = argparse_flags.ArgumentParser(
        prog="colornet", description="Colorful Image Colorization in TensorFlow/Keras."
    )
    verbose_help = "show everything TensorFlow prints as well (start-up lines, INFO logs)"
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for group in _GROUPS:
        group.register(subparsers)
    # Also after the subcommand; SUPPRESS keeps a flag given before it.
    for subparser in subparsers.choices.values():
        subparser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    parser.commands = subparsers.choices
    return parser


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
            from colornet.deploy import predictors  # --model NAME: a released model, fetched on first use

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
