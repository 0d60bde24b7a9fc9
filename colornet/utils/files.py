"""Writing files atomically: readers see the old file or the new one, never half."""

import contextlib
import os
import tempfile

from colornet.utils.errors import ColornetError


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


def check_output_location(path):
    """Refuses, before any work is done, an output that could not be written.

    `path` (a file or directory to create) can be written when its parent directory
    exists or can be created: the nearest existing of its ancestors must be a
    directory this process may write to. Whatever `path` itself is now is left to the
    caller (an existing version may be overwritten, an existing file replaced).

    Raises:
      ColornetError: one line naming `path` and the reason.
    """
    path = os.fspath(path)
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ColornetError(f"cannot write {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ColornetError(f"cannot write {path}: directory {existing} is not writable")


def check_writable_file(path):
    """Refuses, before any work is done, a file that could not be written at `path`:
    its directory must exist and be writable, and `path` must not be a directory.

    Raises:
      ColornetError: one line naming `path` and the reason.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ColornetError(f"cannot write {path}: it is a directory")
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise ColornetError(f"cannot write {path}: {directory} is not a directory")
    if not os.path.isdir(directory):
        raise ColornetError(f"cannot write {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ColornetError(f"cannot write {path}: directory {directory} is not writable")
    return path
