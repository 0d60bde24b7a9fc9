"""`colornet import-official`, `pretrained`: the authors' released weights."""

from colornet import constants as c
from colornet.utils.errors import ColornetError


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
    from colornet.weights import official

    official.import_official(args.path, out=args.out)
    print(
        f"wrote {args.out}; decoding at temperature 1 reproduces the PyTorch port's colours, "
        f"at {1 / c.CAFFE_DEPLOY_LOGIT_SCALE:.3f} the Caffe demo's (colornet's default is the paper's "
        f"{c.ANNEALED_MEAN_TEMPERATURE})"
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
    from colornet.weights import pretrained

    if args.name is None:
        if args.file:
            raise ColornetError("--file needs the NAME of the release it is")
        print(pretrained.describe())
        return 0
    path = pretrained.fetch(args.name, local_file=args.file)
    print(f"{args.name}: {path}")
    return 0


def register(subparsers):
    """Adds this group's subcommands to the `colornet` parser."""
    for add in (_add_import_official, _add_pretrained):
        add(subparsers)
