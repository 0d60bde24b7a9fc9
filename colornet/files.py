"""Writing files atomically: readers see the old file or the new one, never half."""

import contextlib
import os
import tempfile

from colornet.errors import ColornetError


def _make_readable(path):
    # mkstemp creates files only their owner can read; give the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def hidden_stem(name):
    """`.NAME`, the start of a temporary name beside `NAME`: shortened to 50 characters
    when NAME is long, so that a suffix still fits the 255-byte limit of a name."""
    return "." + (name if len(os.fsencode(name)) <= 200 else name[:50])


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path beside `path`, renamed to `path` if the block succeeds.

    The temporary file is hidden (a leading dot), ends with `suffix` (writers such as
    `keras.Model.save` check the extension) and is removed if the block fails or is
    interrupted, so `path` is only ever the previous file or the complete new one.

    Raises:
      ColornetError: the directory of `path` does not exist.
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ColornetError(f"cannot write {path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f"{hidden_stem(name)}.", suffix=f".tmp{suffix}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        _make_readable(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
