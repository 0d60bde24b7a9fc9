"""The video pipeline's plumbing: bounded queues between threads that give up when
the run stops, and a stage of a chain of generators moved to its own thread.

The stages (decoding, L, the network, smoothing and Lab -> RGB, encoding) spend
their time in FFmpeg, TensorFlow, OpenCV and NumPy, which release the GIL, so
threads overlap them on several cores. Each queue holds a bounded number of items,
so memory does not grow with the length of a video.
"""

import contextlib
import ctypes
import functools
import queue
import threading

# glibc's mallopt parameters (malloc.h), and the values set while a video runs.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 1 << 30
_TRIM_THRESHOLD = 1 << 30


class Stop(Exception):
    """Another stage of the pipeline failed or was interrupted."""


class Pipe:
    """A bounded queue between two threads that gives up when `stop` is set."""

    def __init__(self, stop, maxsize):
        self._queue = queue.Queue(maxsize)
        self._stop = stop

    def put(self, item):
        while True:
            if self._stop.is_set():
                raise Stop
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self):
        while True:
            if self._stop.is_set():
                raise Stop
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                continue


_ITEM, _END, _ERROR = range(3)


def in_thread(items, depth, name):
    """Iterates `items` (typically a generator over the previous stage) in a new
    daemon thread, at most `depth` items ahead of the consumer; a generator over
    them in the consumer's thread.

    An exception raised while iterating (KeyboardInterrupt included) is raised in the
    consumer's thread after the items before it. When the consumer stops early
    (closes the generator, or fails while waiting), the thread stops at its next
    hand-over and closes `items`, so the stages before it stop in turn.
    """
    halt = threading.Event()
    pipe = Pipe(halt, depth)

    def run():
        try:
            for item in items:
                pipe.put((_ITEM, item))
            pipe.put((_END, None))
        except Stop:
            pass
        except BaseException as error:  # noqa: BLE001 (raised in the consumer's thread)
            try:
                pipe.put((_ERROR, error))
            except Stop:
                pass
        finally:
            if hasattr(items, "close"):
                items.close()

    thread = threading.Thread(target=run, name=f"colornet-{name}", daemon=True)

    def consume():
        thread.start()
        failed_upstream = False
        try:
            while True:
                kind, payload = pipe.get()
                if kind == _END:
                    return
                if kind == _ERROR:
                    failed_upstream = True
                    raise payload
                yield payload
        except BaseException:
            if not failed_upstream:
                halt.set()
            raise
        finally:
            thread.join()

    return consume()


@functools.cache
def _libc():
    """glibc, or None (another C library: its allocator is left as it is)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextlib.contextmanager
def freed_memory_kept():
    """Within: memory the pipeline frees stays in the process for its next allocation;
    after: what is free is given back to the system.

    glibc maps each allocation above its threshold (which it raises to at most 32 MB)
    afresh and unmaps it when freed, so every such array is page-faulted in again: at
    1080p a batch of frames' L (66 MB at batch 8) and the network's activations
    (docs/video.md, "Speed and memory", has the A/B). The thresholds stay raised for
    the process (glibc has no way back to its own adjusting ones); on leaving,
    `malloc_trim` gives back the free memory. Elsewhere than glibc, nothing changes."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    try:
        yield
    finally:
        if libc is not None:
            libc.malloc_trim(0)
