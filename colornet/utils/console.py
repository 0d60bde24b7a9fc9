"""What colornet prints on a terminal: its own messages, and progress bars that end their line.

TensorFlow 2.21 writes 6 to 8 lines to stderr while it loads (the oneDNN notice,
"Could not find cuda drivers", the CPU-feature note, "All log messages before
absl::InitializeLog() is called...") and an `E` line "failed call to cuInit" when it
first looks for GPUs. The first ones come from C++ before absl's logging is set up,
so `TF_CPP_MIN_LOG_LEVEL` does not hide them: `load_tensorflow` holds file
descriptor 2 aside while TensorFlow loads and looks for devices, and replays what
it caught only if that fails.
"""

import contextlib
import os
import sys
import tempfile

# Set for the process when colornet quiets TensorFlow: C++ INFO and WARNING lines
# after start-up are hidden, errors are not.
QUIET_LOG_LEVEL = "2"


@contextlib.contextmanager
def held_stderr():
    """Holds back everything written to file descriptor 2 inside the block (by Python,
    C++ or any library); replays it on stderr if the block raises, drops it otherwise.

    A process killed inside the block (TensorFlow aborting while it loads) loses what
    was held: `colornet --verbose` shows it. Without a file descriptor 2 to hold, the
    block runs as is."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    caught = tempfile.TemporaryFile()
    os.dup2(caught.fileno(), 2)
    failed = True
    try:
        yield
        failed = False
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if failed:
            caught.seek(0)
            sys.stderr.write(caught.read().decode("utf-8", "replace"))
            sys.stderr.flush()
        caught.close()


@contextlib.contextmanager
def quiet_native_info():
    """`held_stderr` for code whose native library prints INFO lines that
    `TF_CPP_MIN_LOG_LEVEL` does not reach (LiteRT's "Created TensorFlow Lite XNNPACK
    delegate for CPU."), when INFO is to be hidden: `TF_CPP_MIN_LOG_LEVEL` 1 or more
    (colornet sets it unless `--verbose`, or the user did); a plain block otherwise."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("", "0"):
        yield
        return
    with held_stderr():
        yield


def load_tensorflow(verbose=False):
    """Imports TensorFlow and Keras for a command without their start-up lines on stderr.

    Does nothing when `verbose` or when the user set `TF_CPP_MIN_LOG_LEVEL`
    themselves (their choice stands). Otherwise sets it to `QUIET_LOG_LEVEL` and
    imports TensorFlow and Keras and lists the physical devices (which is when
    TensorFlow tries CUDA) with stderr held aside (`held_stderr`). Listing physical
    devices leaves logical devices configurable.
    """
    if verbose or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = QUIET_LOG_LEVEL
    with held_stderr():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()


class ProgressBar:
    """`keras.utils.Progbar` whose line `close` always ends, also when the count stops
    short of `total` (skipped files) or an error interrupts the work."""

    def __init__(self, total, unit_name="image", stateful_metrics=None):
        from keras.utils import Progbar  # loads TensorFlow: only once a bar is shown

        self._bar = Progbar(total, unit_name=unit_name, stateful_metrics=stateful_metrics)
        self._current = None
        self._ended = False

    def update(self, current, values=None, finalize=None):
        self._bar.update(current, values, finalize)
        self._current = current
        target = self._bar.target
        self._ended = bool(finalize) or (finalize is None and target is not None and current >= target)

    def end_line(self):
        """Ends the bar's unfinished line, so that a message printed next (on stdout or
        stderr, both often the terminal) starts a line of its own; the next `update`
        draws the bar again below it."""
        if self._current is not None and not self._ended:
            sys.stdout.write("\n")
            sys.stdout.flush()

    def close(self):
        if self._current is not None and not self._ended:
            self.update(self._current, finalize=True)


@contextlib.contextmanager
def progress_bar(total, verbose=1, unit_name="image", stateful_metrics=None):
    """Yields a `ProgressBar` over `total` units (None when not `verbose`) and ends its
    line when the block ends, however it ends. `stateful_metrics`: values shown as
    given (a rate), not averaged over updates."""
    bar = ProgressBar(total, unit_name, stateful_metrics) if verbose else None
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()
