"""Stand-ins for the app's tests: predictors whose output is known, a server in a thread.

`Flat` paints every pixel with one ab bin (so results are plainly coloured), counts
how many calls run at once and can be held at a gate (a job killed mid-way).
`HintOver` takes hints: where the hint map has one, each output pixel gets the
nearest bin of its block's mean hinted ab, sharply (as tests/test_hints.py's
oracle); elsewhere the wrapped predictor's logits (grey without one).
"""

import contextlib
import io
import os
import threading
import time

import numpy as np
import tensorflow as tf

from colornet import bins
from colornet.deploy.predictors import Predictor

_CENTRES = np.asarray(bins.ab_bins(), np.float32)


def nearest_bin(a, b):
    return int(np.argmin(np.linalg.norm(_CENTRES - [a, b], axis=1)))


def sharp_logits(ab):
    """`(..., 2)` ab -> `(..., 313)` logits peaked on the nearest bins."""
    distance = np.linalg.norm(np.asarray(ab, np.float32)[..., None, :] - _CENTRES, axis=-1)
    return (-distance * 10.0).astype(np.float32)


class Flat(Predictor):
    """Every output pixel: the bin nearest `ab`."""

    source = "flat"

    def __init__(self, ab=(30.0, 45.0), delay=0.0, gate=None):
        self.ab = ab
        self.delay = delay
        self.gate = gate
        self.calls = 0
        self.active = 0
        self.peak = 0
        self._count = threading.Lock()

    def logits(self, l_small, hints=None):
        with self._count:
            self.calls += 1
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            if self.gate is not None:
                self.gate.wait(30)
            time.sleep(self.delay)
            batch, side = int(l_small.shape[0]), int(l_small.shape[1]) // 4
            return tf.constant(np.broadcast_to(sharp_logits(self.ab), (batch, side, side, len(_CENTRES))))
        finally:
            with self._count:
                self.active -= 1


class HintOver(Predictor):
    """Takes hints: the hinted ab where there are hints, `base`'s logits elsewhere."""

    takes_hints = True

    def __init__(self, base=None):
        self.base = base
        self.source = "hint oracle" if base is None else f"hint stand-in over {os.path.basename(base.source)}"
        self.size = None if base is None else base.size

    def logits(self, l_small, hints=None):
        size = int(l_small.shape[1])
        if self.base is not None:
            logits = np.array(self.base.logits(l_small), np.float32)
        else:
            logits = np.broadcast_to(sharp_logits([0.0, 0.0]), (1, size // 4, size // 4, len(_CENTRES))).copy()
        if hints is None:
            return tf.constant(logits)
        blocks = np.asarray(hints, np.float32).reshape(1, size // 4, 4, size // 4, 4, 3)
        mask = blocks[..., 2].sum((2, 4))
        ab = blocks[..., :2].sum((2, 4)) / np.maximum(mask, 1.0)[..., None]
        hinted = mask > 0
        logits[hinted] = sharp_logits(ab[hinted])
        return tf.constant(logits)


def png_bytes(rgb):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(rgb, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@contextlib.contextmanager
def served(app):
    """Serves an ASGI app with uvicorn on 127.0.0.1 (a free port) in a thread; yields its URL."""
    import uvicorn

    from colornet.web import server as app_server

    sock = app_server.bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(300):
            if server.started:
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
