"""Downloading one large file into a cache: progress, verification, resuming.

`keras.utils.get_file` is the Keras convention, but for released weights it lacks
what matters here (read in Keras 3.15's `keras/src/utils/file_utils.py`): it has
no timeout (a stalled server hangs it for ever), on a checksum mismatch it raises
but leaves the bad file under its final name, it falls back silently to
`/tmp/.keras` when the cache is not writable, and its progress counts bytes as
Keras "steps" (no MB, no rate). What it does do, `urllib.request` with a progress
hook, is a few lines, so `resume_download` uses `urllib` directly and adds:

- a timeout on connecting and on every read;
- progress on stderr: MB done and total, rate, time left;
- resuming: the file grows under a partial name the caller chooses (hidden, in the
  cache) and is kept when the connection is lost, so the next attempt, from the
  same URL or another one publishing the same file, asks only for the rest (an
  HTTP Range request); a server that ignores Range, answering 200 with the whole
  file, starts it over. The caller uses the file only once its size and the
  SHA-256 of the whole of it match; a file that does not match is deleted;
- `lock`, a file lock a caller holds while it fills a cache entry, so that two
  processes asking for the same entry do the work once (the second waits, then
  finds the entry). Without `fcntl` (Windows) there is no lock; the unique names and
  atomic renames still keep the cache consistent, and both processes download.
"""

import contextlib
import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request

from colornet.utils.errors import ColornetError
from colornet.version import __version__

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

DEFAULT_TIMEOUT = 60.0  # seconds to connect, and without any data while reading
CHUNK = 1 << 20
_MB = 1e6


class DownloadError(ColornetError):
    """A download that failed or gave the wrong file; the message names the URL.

    `resumable`: the partial file is still good to resume from (a lost connection,
    an HTTP error, a server offering another file); not after a wrong checksum."""

    def __init__(self, message, resumable=False):
        super().__init__(message)
        self.resumable = resumable


def resume_download(url, partial, size, sha256, timeout=DEFAULT_TIMEOUT, quiet=False):
    """Completes the file `partial` from `url` until it has `size` bytes of SHA-256 `sha256`.

    What `partial` already holds (an earlier attempt cut off, from this URL or from
    another holding the same file) is kept: only the rest is asked for, with an HTTP
    `Range` request. A server that ignores it (status 200: the whole file) starts
    the file over. Call it with a lock held on `partial` (two processes must not
    append to one file).

    Args:
      url: an `http://`, `https://` or `file://` URL.
      partial: the path of the file being filled (created if needed).
      size: the complete file's size in bytes.
      sha256: its SHA-256 as 64 hex digits.
      timeout: seconds to wait for a connection and for each read.
      quiet: no progress on stderr.

    Raises:
      DownloadError: no connection, an HTTP error, a timeout, a connection closed
        early (`partial` is kept: the next attempt resumes it), or a wrong size or
        checksum (`partial` is deleted: its bytes cannot be trusted); one line
        naming `url`.
      ColornetError: `partial` cannot be written (e.g. a full disk); one line naming
        `url` and the directory; `partial` is deleted.
    """
    try:
        have = os.path.getsize(partial)
    except FileNotFoundError:
        have = 0
    try:
        if have > size:  # not a beginning of this file
            os.unlink(partial)
            have = 0
        digest = _hash_file(partial) if have else hashlib.sha256()
        if have < size:
            digest = _copy_url(url, partial, have, size, digest, timeout, quiet)
        check_file(partial, size, sha256, what=url, digest=digest)
    except DownloadError as error:
        if not error.resumable:
            _remove(partial)
        raise
    except OSError as error:  # writing: a full disk, a file size limit
        _remove(partial)
        directory = os.path.dirname(os.path.abspath(partial))
        raise ColornetError(f"cannot write the download of {url} into {directory}: {error.strerror}") from None


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def file_sha256(path):
    """The SHA-256 of the file at `path`, as 64 hex digits."""
    return _hash_file(path).hexdigest()


def _hash_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest


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
        digest = _hash_file(path)
    if digest.hexdigest() != sha256.lower():
        raise DownloadError(
            f"{what}: SHA-256 {digest.hexdigest()[:16]}... differs from the published "
            f"{sha256[:16]}... (a damaged or different file)"
        )


def _copy_url(url, partial, have, size, digest, timeout, quiet):
    """Appends the rest of `url`'s file, from byte `have`, to `partial` (or writes it
    anew if the server sends the whole file); returns the SHA-256 hash object of
    the whole file, `digest` being that of its first `have` bytes."""
    headers = {"User-Agent": f"colornet/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    received = have
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if have and getattr(response, "status", None) == 206:
                offered = _content_range(response.headers.get("Content-Range"))
                if offered != (have, size):
                    raise DownloadError(
                        f"{url}: asked for bytes {have:,} on of {size:,}, the server offers "
                        f"{response.headers.get('Content-Range')!r} (a different file)",
                        resumable=True,
                    )
                mode = "ab"
            else:  # the whole file: no Range asked, or the server ignores it (file:// too)
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else size
                if total != size:
                    raise DownloadError(
                        f"{url}: the server offers {total:,} bytes, expected {size:,} (a different file)",
                        resumable=True,  # nothing written: what `partial` holds is still good
                    )
                if have and not quiet:
                    print(f"{url} sends the whole file: starting over", file=sys.stderr, flush=True)
                received, digest, mode = 0, hashlib.sha256(), "wb"
            progress = _Progress(url, size, quiet, start=received)
            with open(partial, mode) as out:
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
        raise DownloadError(f"{url}: HTTP error {error.code} ({error.reason})", resumable=True) from None
    except urllib.error.URLError as error:
        raise DownloadError(f"{url}: cannot connect ({_reason(error.reason)})", resumable=True) from None
    except TimeoutError:
        raise DownloadError(
            f"{url}: timed out after {timeout:g} s without data ({received:,} of {size:,} bytes received)",
            resumable=True,
        ) from None
    except (http.client.HTTPException, ConnectionError) as error:
        raise DownloadError(
            f"{url}: connection lost after {received:,} of {size:,} bytes ({_reason(error)})", resumable=True
        ) from None
    if received != size:
        raise DownloadError(f"{url}: connection closed after {received:,} of {size:,} bytes", resumable=True)
    return digest


def _content_range(header):
    """(first byte, total size) of a `Content-Range: bytes FIRST-LAST/TOTAL` header, or None."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+)\s*", header or "")
    return (int(match.group(1)), int(match.group(3))) if match else None


def _reason(reason):
    if isinstance(reason, BaseException):
        return getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return str(reason)


class _Progress:
    """Download progress on stderr: a line rewritten in place on a terminal, a line
    every 10 % elsewhere (logs)."""

    def __init__(self, url, total, quiet, start=0):
        self.total, self.quiet, self.first = total, quiet, start
        self.tty = sys.stderr.isatty()
        self.start = self.last = time.monotonic()
        self.next_tenth = start * 10 // total + 1 if total else 1
        if not quiet:
            of = f" ({total / _MB:.1f} MB)" if total else ""
            if start:
                print(f"resuming {url} at {start / _MB:.1f} MB{of}", file=sys.stderr, flush=True)
            else:
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
        new = received - self.first
        print(f"{end}  {new / _MB:.1f} MB in {seconds:.1f} s ({new / _MB / seconds:.1f} MB/s)"
              + ("\x1b[K" if self.tty else ""), file=sys.stderr, flush=True)

    def _status(self, received, now):
        seconds = max(now - self.start, 1e-9)
        rate = (received - self.first) / seconds
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
