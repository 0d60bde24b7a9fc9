"""Background jobs of the app: videos colourised, released models downloaded.

One worker thread runs the jobs one after another, in the order they came. Each job
has a random id of 32 hex digits and its own directory under the app's work
directory, named by that id and nothing else: no name a request sends becomes part
of a path (an uploaded video is saved as `input` plus an extension from
`colornet.apps.video.VIDEO_EXTENSIONS`, its result as `colorized.mp4`). A job's input is
deleted when it ends; a failed or cancelled job's directory is emptied; only the
last `KEEP_FINISHED` finished jobs are kept; `close` removes them all.

A job is `queued`, `running`, then `done`, `failed` (with a one-line message) or
`cancelled`. Cancelling a running video stops it at its next batch of frames: the
network is asked through `_Counting`, which also counts the frames for the progress.
"""

import dataclasses
import os
import queue
import re
import secrets
import shutil
import sys
import threading
import traceback

import colornet
from colornet.deploy.predictors import Predictor
from colornet.utils.errors import ColornetError, first_line

JOB_ID = re.compile(r"[0-9a-f]{32}")
KEEP_FINISHED = 20
RESULT_NAME = "colorized.mp4"
FINISHED = ("done", "failed", "cancelled")


class Cancelled(Exception):
    """Raised inside a job's work when it was cancelled."""


@dataclasses.dataclass(eq=False)
class Job:
    """One job; `progress` is 0..1, or None when it cannot be told (a download)."""

    id: str
    kind: str
    name: str
    directory: str
    state: str = "queued"
    progress: float | None = 0.0
    message: str | None = None
    result: str | None = None
    download_name: str | None = None
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)

    def as_json(self):
        done = self.state == "done" and self.result is not None
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "state": self.state,
            "progress": self.progress,
            "message": self.message,
            "result_url": f"/api/jobs/{self.id}/result" if done else None,
        }


class JobQueue:
    """Jobs and the thread that runs them; their files live under `root`."""

    def __init__(self, root):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self._jobs = {}
        self._lock = threading.Lock()
        self._queue = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="colornet-app-jobs", daemon=True)
        self._thread.start()

    def create(self, kind, name):
        """A new job with its (empty) directory; `submit` queues it."""
        job_id = secrets.token_hex(16)
        directory = os.path.join(self.root, job_id)
        os.mkdir(directory)
        return Job(job_id, kind, name, directory)

    def submit(self, job, work):
        """Queues `work(job)`; it may set `job.result`, `job.progress`, and raise."""
        with self._lock:
            if self._closed:
                raise ColornetError("the app is stopping")
            self._jobs[job.id] = job
        self._queue.put((job, work))
        return job

    def get(self, job_id):
        """The job of this id, or None (also for anything that is not an id)."""
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def find(self, kind, name):
        """The unfinished job of this kind and name, or None."""
        with self._lock:
            for job in self._jobs.values():
                if job.kind == kind and job.name == name and job.state not in FINISHED:
                    return job
        return None

    def cancel(self, job):
        job.cancel.set()
        with self._lock:
            if job.state == "queued":
                job.state, job.message = "cancelled", "cancelled"
                _empty(job.directory)

    def close(self, timeout=30.0):
        """Cancels every job, waits for the running one to stop, removes all files."""
        with self._lock:
            self._closed = True
            for job in self._jobs.values():
                job.cancel.set()
        self._queue.put(None)
        self._thread.join(timeout)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, work = item
            with self._lock:
                if job.cancel.is_set():
                    job.state, job.message = "cancelled", "cancelled"
                    _empty(job.directory)
                    continue
                job.state = "running"
            try:
                work(job)
            except Exception as error:  # noqa: BLE001 (a job's failure is reported, never kills the worker)
                if job.cancel.is_set():
                    job.state, job.message = "cancelled", "cancelled"
                elif isinstance(error, (ColornetError, ValueError, OSError)):
                    job.state, job.message = "failed", first_line(error)
                else:
                    print(f"colornet app: job {job.id} failed:", file=sys.stderr)
                    traceback.print_exc()
                    job.state, job.message = "failed", f"internal error: {first_line(error)}"
                job.result = None
                _empty(job.directory)
            else:
                job.state, job.progress = "done", 1.0
            finally:
                for name in os.listdir(job.directory) if os.path.isdir(job.directory) else ():
                    if name.startswith("input"):
                        os.remove(os.path.join(job.directory, name))
                self._expire()

    def _expire(self):
        with self._lock:
            finished = [job for job in self._jobs.values() if job.state in FINISHED]
            for job in finished[: max(0, len(finished) - KEEP_FINISHED)]:
                del self._jobs[job.id]
                shutil.rmtree(job.directory, ignore_errors=True)


def _empty(directory):
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            os.remove(os.path.join(directory, name))


class _Counting(Predictor):
    """Asks `inner` for logits, counting frames into the job's progress; raises
    `Cancelled` at the next batch once the job is cancelled."""

    def __init__(self, inner, job, total_frames):
        self.inner = inner
        self.job = job
        self.total = total_frames
        self.frames = 0
        self.size = inner.size
        self.source = inner.source
        self.takes_hints = inner.takes_hints

    def logits(self, l_small, hints=None):
        if self.job.cancel.is_set():
            raise Cancelled()
        result = self.inner.logits(l_small, hints)
        self.frames += int(l_small.shape[0])
        # The last batch is padded with copies of its last frame; the encoder still runs after it.
        self.job.progress = min(self.frames / self.total, 0.99) if self.total else None
        return result


def frame_count(path):
    """The frames a video declares (or its duration times its rate), or None."""
    try:
        import av

        with av.open(path) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            rate = stream.average_rate or stream.guessed_rate
            if stream.duration and stream.time_base and rate:
                return max(1, round(float(stream.duration * stream.time_base * rate)))
    except Exception:  # noqa: BLE001 (any unreadable file: colorize_video says why)
        return None
    return None


def video_work(predictor, src, options):
    """The work of a video job: `src` colourised into the job's `RESULT_NAME` by
    `colornet.colorize_video` (its temporal smoothing on, at its default) with the
    catalog's `predictor` and `options` (temperature, method, max_pixels)."""

    def work(job):
        counting = _Counting(predictor, job, frame_count(src))
        dst = os.path.join(job.directory, RESULT_NAME)
        colornet.colorize_video(src, dst, model=counting, verbose=0, **options)
        job.result = dst

    return work
