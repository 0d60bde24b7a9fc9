"""Downloading one large file into a cache: progress, verification, no half files.

`keras.utils.get_file` is the Keras convention, but for released weights it lacks
what matters here (read in Keras 3.15's `keras/src/utils/file_utils.py`): it has
no timeout (a stalled server hangs it for ever), on a checksum mismatch it raises
but leaves the bad file under its final name, it falls back silently to
`/tmp/.keras` when the cache is not writable, and its progress counts bytes as
Keras "steps" (no MB, no rate). What it does do, `urllib.request` with a progress
hook, is a few lines, so `verified_download` uses `urllib` directly and adds:

- a timeout on connecting and on every read;
- progress on stderr: MB done and total, rate, time left;
- the file is written to a unique hidden temporary name in the target directory
  and handed over only after its size and SHA-256 match, so no later reader can
  mistake a partial or wrong file for the release; it is removed on any failure;
- `lock`, a file lock a caller holds while it fills a cache entry, so that two
  processes asking for the same entry do the work once (the second waits, then
  finds the entry). Without `fcntl` (Windows) there is no lock; the unique names and
  atomic renames still keep the cache consistent, and both processes download.
"""

import contextlib
import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

from colornet.errors import ColornetError
from colornet.version import __version__

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

DEFAULT_TIMEOUT = 60.0  # seconds to connect, and without any data while reading
CHUNK = 1 << 20
_MB = 1e6


class DownloadError(ColornetError):
    """A download that failed or gave the wrong file; the message names the URL."""


@contextlib.contextmanager
def verified_download(url, directory, prefix=".download.", size=None, sha256=None, timeout=DEFAULT_TIMEOUT,
                      quiet=False):
    """Downloads `url` into a temporary file in `directory` and yields its path.

    The path is yielded only once the file has `size` bytes and the SHA-256
    `sha256` (each when given); the file is deleted when the block ends, so the
    caller converts or copies it inside the block.

    Args:
      url: an `http://`, `https://` or `file://` URL.
      directory: an existing directory (the cache) for the temporary file.
      prefix: the start of the temporary name (hidden: a leading dot).
      size: expected size in bytes, or None.
      sha256: expected SHA-256 as 64 hex digits, or None.
      timeout: seconds to wait for a connection and for each read.
      quiet: no progress on stderr.

    Raises:
      DownloadError: no connection, an HTTP error, a timeout, a connection closed
        early, a wrong size or checksum; one line naming `url`.
      ColornetError: the temporary file cannot be created or written (e.g. a full
        disk); one line naming `url` and `directory`.
    """
    def cannot_write(error):
        return ColornetError(f"cannot write the download of {url} into {directory}: {error.strerror}")

    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=directory)
    except OSError as error:  # a cache this process may not write to
        raise cannot_write(error) from None
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                digest = _copy_url(url, out, size, timeout, quiet)
        except OSError as error:  # writing: a full disk, a file size limit
            raise cannot_write(error) from None
        check_file(tmp, size, sha256, what=url, digest=digest)
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def check_file(path, size=None, sha256=None, what=None, digest=None):
    """Checks a file's size and SHA-256 (`digest`: its hashlib object, if already computed).

    Raises:
      DownloadError: one line naming `what` (default: the path).
    """
    what = what or path
    actual = os.path.getsize(path)
    if size is not None and actual != size:
        raise DownloadError(f"{what}: got {actual:,} bytes, expected {size:,} (an incomplete or different file)")
    if sha256 is None:
        return
    if digest is None:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                digest.update(chunk)
    if digest.hexdigest() != sha256.lower():
        raise DownloadError(
            f"{what}: SHA-256 {digest.hexdigest()[:16]}... differs from the published "
            f"{sha256[:16]}... (a damaged or different file)"
        )


def _copy_url(url, out, size, timeout, quiet):
    """Streams `url` into the open file `out`; returns the SHA-256 hash object."""
    request = urllib.request.Request(url, headers={"User-Agent": f"colornet/{__version__}"})
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else size
            if size is not None and total != size:
                raise DownloadError(f"{url}: the server offers {total:,} bytes, expected {size:,} (a different file)")
            progress = _Progress(url, total, quiet)
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
                progress.update(received)
            progress.done(received)
    except urllib.error.HTTPError as error:
        raise DownloadError(f"{url}: HTTP error {error.code} ({error.reason})") from None
    except urllib.error.URLError as error:
        raise DownloadError(f"{url}: cannot connect ({_reason(error.reason)})") from None
    except TimeoutError:
        raise DownloadError(
            f"{url}: timed out after {timeout:g} s without data ({received:,} bytes received)"
        ) from None
    except (http.client.HTTPException, ConnectionError) as error:
        raise DownloadError(f"{url}: connection lost after {received:,} bytes ({_reason(error)})") from None
    if total is not None and received != total:
        raise DownloadError(f"{url}: connection closed after {received:,} of {total:,} bytes")
    return digest


def _reason(reason):
    if isinstance(reason, BaseException):
        return getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return str(reason)


class _Progress:
    """Download progress on stderr: a line rewritten in place on a terminal, a line
    every 10 % elsewhere (logs)."""

    def __init__(self, url, total, quiet):
        self.total, self.quiet = total, quiet
        self.tty = sys.stderr.isatty()
        self.start = self.last = time.monotonic()
        self.next_tenth = 1
        if not quiet:
            of = f" ({total / _MB:.1f} MB)" if total else ""
            print(f"downloading {url}{of}", file=sys.stderr, flush=True)

    def update(self, received):
        if self.quiet:
            return
        now = time.monotonic()
        if self.tty:
            if now - self.last >= 0.25:
                self.last = now
                print(f"\r  {self._status(received, now)}\x1b[K", end="", file=sys.stderr, flush=True)
        elif self.total and received * 10 >= self.next_tenth * self.total:
            self.next_tenth = received * 10 // self.total + 1
            print(f"  {self._status(received, now)}", file=sys.stderr, flush=True)

    def done(self, received):
        if self.quiet:
            return
        seconds = max(time.monotonic() - self.start, 1e-9)
        end = "\r" if self.tty else ""
        print(f"{end}  {received / _MB:.1f} MB in {seconds:.1f} s ({received / _MB / seconds:.1f} MB/s)"
              + ("\x1b[K" if self.tty else ""), file=sys.stderr, flush=True)

    def _status(self, received, now):
        seconds = max(now - self.start, 1e-9)
        rate = received / seconds
        text = f"{received / _MB:.1f}"
        if self.total:
            text += f" / {self.total / _MB:.1f} MB ({100 * received / self.total:.0f} %)"
            if rate > 0:
                text += f", {rate / _MB:.1f} MB/s, {max(self.total - received, 0) / rate:.0f} s left"
        else:
            text += f" MB, {rate / _MB:.1f} MB/s"
        return text


@contextlib.contextmanager
def lock(path, quiet=False):
    """Holds an exclusive lock on the file `path` (created if needed) for the block.

    The kernel drops the lock when its process ends, however it ends, so a killed
    download never blocks the next one. The lock file is left in place: deleting it
    while another process waits on it would let a third take a second lock.
    """
    if fcntl is None:
        yield
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not quiet:
                print(f"waiting for another colornet process (lock {path})", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
