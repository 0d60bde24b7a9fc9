"""The app's HTTP server: the page and the API it uses (docs/app.md).

Starlette (routing, multipart forms, static files, a test client) served by uvicorn:
a small ASGI stack, kept and widely used, that needs no build step and runs
offline. Blocking work (decoding, the network, encoding) runs in Starlette's
thread pool; the network itself runs under the catalog's lock, and each photo is
colourised while holding it, so requests queue instead of running at once.

Every error a request can cause is a JSON `{"error": "..."}` with a 4xx status;
anything else is a 500 with one line (the traceback goes to the server's stderr).
Requests name models by catalog id and jobs by random id; the files the server
reads and writes are the package's `static/` files and its own work directory
(a fresh temporary directory, removed on exit).
"""

import asyncio
import contextlib
import dataclasses
import io
import ipaddress
import json
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import urllib.parse
import webbrowser

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import colornet
from colornet import data
from colornet import hints as hint_points
from colornet.apps.video.defaults import VIDEO_EXTENSIONS
from colornet.utils.errors import ColornetError, first_line
from colornet.web.catalog import ModelCatalog, ModelNotReady, UnknownModel
from colornet.web.jobs import JobQueue, video_work
from colornet.weights import pretrained

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
METHODS = ("annealed-mean", "mean", "mode")
MAX_SUGGESTIONS = 32
_FORM_FIELD_BYTES = 256 * 1024  # hints: MAX_HINTS of them fit with room to spare
_FORM_OVERHEAD = 1024 * 1024  # the other fields and the multipart boundaries
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may send.

    Args:
      image_bytes: largest photo upload, in bytes.
      video_bytes: largest video upload, in bytes.
      max_pixels: largest photo (and video frame), width x height; checked from the
        file's header before any pixel is decoded.
    """

    image_bytes: int = 50 * 1024 * 1024
    video_bytes: int = 1024 * 1024 * 1024
    max_pixels: int = 25_000_000


class ApiError(Exception):
    """A request's fault: answered with `status` and `{"error": message}`."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class _TooLarge(ApiError):
    def __init__(self, message):
        super().__init__(413, message)


class _Guard:
    """ASGI middleware: refuses request bodies over the limit (by Content-Length
    before reading, else while reading), requests from another site (a POST whose
    Origin is not this server: a page elsewhere driving the local app), and, when
    bound to loopback, Host names other than loopback ones (DNS rebinding)."""

    def __init__(self, app, limits, allowed_hosts):
        self.app = app
        self.limits = limits
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.allowed_hosts is not None and _host_name(host) not in self.allowed_hosts:
            return await _send_error(send, 403, f"host {host[:100]!r} is not served here")
        origin = headers.get("origin")
        if scope["method"] not in ("GET", "HEAD") and origin and urllib.parse.urlsplit(origin).netloc != host:
            return await _send_error(send, 403, "requests from other sites are refused")
        video = scope["path"].startswith("/api/jobs")
        limit = (self.limits.video_bytes if video else self.limits.image_bytes) + _FORM_OVERHEAD
        what = "video" if video else "photo"
        too_large = f"the upload is larger than the {what} limit of {_megabytes(limit - _FORM_OVERHEAD)}"
        try:
            declared = int(headers.get("content-length", "0"))
        except ValueError:
            return await _send_error(send, 400, "bad Content-Length")
        if declared > limit:
            return await _send_error(send, 413, too_large)
        received = 0
        started = False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(too_large)
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:  # raised outside an endpoint, where no handler answers it
            if not started:
                await _send_error(send, 413, too_large)


def _host_name(host):
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _megabytes(size):
    return f"{size / (1024 * 1024):g} MB"


async def _send_error(send, status, message):
    body = json.dumps({"error": message}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


class AppState:
    """What the app's requests share: the models, the jobs, the limits, the work directory."""

    def __init__(self, models=(), predictor=None, limits=None, work_dir=None):
        self.limits = limits or Limits()
        self.catalog = ModelCatalog(models, predictor)
        self.catalog.predictor()  # the default model, loaded before the first request
        self.work_dir = tempfile.mkdtemp(prefix="colornet-app-", dir=work_dir)
        self.jobs = JobQueue(os.path.join(self.work_dir, "jobs"))
        self._closed = False

    def close(self):
        if not self._closed:
            self._closed = True
            self.jobs.close()
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def decode(self, encoded):
        """Upright uint8 RGB of an uploaded photo (`colornet.data`'s decoding)."""
        import tensorflow as tf

        try:
            rgb = data.decode_image(encoded, self.limits.max_pixels).numpy()
        except tf.errors.OpError as error:
            message = first_line(error).removeprefix("decode_image: ")
            size = re.search(r"declares (\d+)x(\d+) pixels", message)
            if size:
                raise ApiError(
                    413,
                    f"the photo is {size[1]} x {size[2]} pixels; this app takes at most "
                    f"{self.limits.max_pixels:,} pixels",
                ) from None
            raise ApiError(400, f"not a photo this app can read: {message}") from None
        return data.apply_orientation(rgb, data.jpeg_exif_orientation(encoded))

    def colorize_png(self, encoded, predictor, hints, temperature, method):
        with self.catalog.lock:  # one photo at a time: memory stays that of one
            rgb = self.decode(encoded)
            result = colornet.colorize(rgb, model=predictor, temperature=temperature, method=method, hints=hints)
        return _png(result)

    def suggest(self, encoded, predictor, hints, x, y, k):
        with self.catalog.lock:
            rgb = self.decode(encoded)
            return colornet.suggest_colors(rgb, x, y, k=k, model=predictor, hints=hints)


def _png(rgb):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)  # speed over size: a local answer
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# Reading a request's form.


async def _form(request):
    try:
        return await request.form(max_files=1, max_fields=16, max_part_size=_FORM_FIELD_BYTES)
    except HTTPException as error:  # a malformed multipart body, too many parts
        raise ApiError(400, f"bad form: {error.detail}") from None
    except ApiError:  # the upload is over the limit
        raise
    except Exception as error:  # noqa: BLE001 (python-multipart raises several types on bad bodies)
        raise ApiError(400, f"bad form: {first_line(error)}") from None


async def _upload(form, name):
    upload = form.get(name)
    if upload is None or isinstance(upload, str):
        raise ApiError(400, f"the form needs a file field {name!r}")
    return upload


def _text(form, name, default=None):
    value = form.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a text field")
    return value


def _number(form, name, default=None, kind=float):
    text = _text(form, name)
    if text is None:
        if default is None:
            raise ApiError(400, f"the form needs {name}")
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ApiError(400, f"{name} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise ApiError(400, f"{name} must be finite, got {text[:40]!r}")
    return value


def _decoding(form):
    method = _text(form, "method", "annealed-mean")
    if method not in METHODS:
        raise ApiError(400, f"method must be one of {', '.join(METHODS)}, got {method[:40]!r}")
    temperature = _number(form, "temperature", 0.38)
    if not 0 < temperature <= 1:
        raise ApiError(400, f"temperature must be in (0, 1], got {temperature:g}")
    return temperature, method


def _hints(form, predictor):
    text = _text(form, "hints")
    if text is None:
        return None
    try:
        hints = json.loads(text)
    except ValueError as error:
        raise ApiError(400, f"hints: not JSON ({error})") from None
    if hints == []:
        return None
    hint_points.parse_hints(hints)  # the format, before any pixel is decoded
    if not predictor.takes_hints:
        raise ApiError(400, f"the model {predictor.source} takes no hints")
    return hints


async def _model(state, form):
    model_id = _text(form, "model")
    return await run_in_threadpool(state.catalog.predictor, model_id)


# ---------------------------------------------------------------------------
# Endpoints.


async def index(request):
    return FileResponse(os.path.join(STATIC_DIR, "index.html"), headers=_PAGE_HEADERS)


# Nothing but this server's own files: no CDN, no remote font, no other site.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


async def list_models(request):
    state = request.app.state.colornet
    limits = state.limits
    return JSONResponse({
        "default": state.catalog.default,
        "models": state.catalog.list(),
        "limits": {
            "image_bytes": limits.image_bytes,
            "video_bytes": limits.video_bytes,
            "max_pixels": limits.max_pixels,
            "video_extensions": list(VIDEO_EXTENSIONS),
        },
    })


async def get_model(request):
    state = request.app.state.colornet
    entry = state.catalog.entry(request.path_params["model_id"])
    if state.catalog.ready(entry):
        await run_in_threadpool(state.catalog.predictor, entry.id)
    return JSONResponse(state.catalog.describe(entry))


async def fetch_model(request):
    state = request.app.state.colornet
    entry = state.catalog.entry(request.path_params["model_id"])
    if state.catalog.ready(entry):
        return JSONResponse({"model": state.catalog.describe(entry), "job": None})
    job = state.jobs.find("download", entry.id)
    if job is None:
        job = state.jobs.create("download", entry.id)
        job.progress = None
        state.jobs.submit(job, lambda job: state.catalog.fetch(entry.id))
    return JSONResponse({"model": state.catalog.describe(entry), "job": job.as_json()}, status_code=202)


async def colorize(request):
    state = request.app.state.colornet
    async with _form_of(request) as form:
        upload = await _upload(form, "image")
        temperature, method = _decoding(form)
        predictor = await _model(state, form)
        hints = _hints(form, predictor)
        encoded = await upload.read()
    png = await run_in_threadpool(state.colorize_png, encoded, predictor, hints, temperature, method)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


async def suggest(request):
    state = request.app.state.colornet
    async with _form_of(request) as form:
        upload = await _upload(form, "image")
        x, y = _number(form, "x"), _number(form, "y")
        k = _number(form, "k", 8, int)
        if not 1 <= k <= MAX_SUGGESTIONS:
            raise ApiError(400, f"k must be in 1..{MAX_SUGGESTIONS}, got {k}")
        predictor = await _model(state, form)
        hints = _hints(form, predictor)
        encoded = await upload.read()
    suggestions = await run_in_threadpool(state.suggest, encoded, predictor, hints, x, y, k)
    return JSONResponse({"x": x, "y": y, "suggestions": suggestions})


async def create_job(request):
    state = request.app.state.colornet
    async with _form_of(request) as form:
        upload = await _upload(form, "video")
        extension = os.path.splitext(upload.filename or "")[1].lower()
        if extension not in VIDEO_EXTENSIONS:
            raise ApiError(415, f"not a video this app takes (a name ending in {', '.join(VIDEO_EXTENSIONS)})")
        temperature, method = _decoding(form)
        predictor = await _model(state, form)
        name = _display_name(upload.filename)
        job = state.jobs.create("video", name)
        src = os.path.join(job.directory, "input" + extension)
        await run_in_threadpool(_save_upload, upload.file, src)
    job.download_name = os.path.splitext(name)[0] + "_color.mp4"
    options = {"temperature": temperature, "method": method, "max_pixels": state.limits.max_pixels}
    state.jobs.submit(job, video_work(predictor, src, options))
    return JSONResponse(job.as_json(), status_code=202, headers={"Location": f"/api/jobs/{job.id}"})


def _save_upload(file, path):
    file.seek(0)
    with open(path, "wb") as out:
        shutil.copyfileobj(file, out, 1024 * 1024)


def _display_name(filename):
    """A file name for messages and Content-Disposition only: its base name, printable ASCII."""
    base = re.split(r"[\\/]", filename or "")[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._ -]", "_", base).strip(" .")[:100]
    return cleaned or "video"


def _job(request):
    job = request.app.state.colornet.jobs.get(request.path_params["job_id"])
    if job is None:
        raise ApiError(404, "no such job")
    return job


async def job_status(request):
    return JSONResponse(_job(request).as_json())


async def job_result(request):
    job = _job(request)
    if job.state != "done" or job.result is None:
        raise ApiError(409, f"the job is {job.state}; its result is not there")
    return FileResponse(job.result, media_type="video/mp4", filename=job.download_name or "colorized.mp4")


async def cancel_job(request):
    job = _job(request)
    request.app.state.colornet.jobs.cancel(job)
    return JSONResponse(job.as_json())


@contextlib.asynccontextmanager
async def _form_of(request):
    form = await _form(request)
    try:
        yield form
    finally:
        await form.close()  # the spooled upload files, on disk past 1 MB, go now


# ---------------------------------------------------------------------------
# Errors.


async def _api_error(request, error):
    return JSONResponse({"error": error.message}, status_code=error.status)


async def _user_error(request, error):
    status = 404 if isinstance(error, UnknownModel) else 409 if isinstance(error, ModelNotReady) else 400
    return JSONResponse({"error": first_line(error)}, status_code=status)


async def _http_error(request, error):
    return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)


async def _internal_error(request, error):
    # Starlette raises it again after this answer, and uvicorn logs the traceback.
    return JSONResponse({"error": f"internal error: {first_line(error)}"}, status_code=500)


def create_app(models=(), *, predictor=None, limits=None, host="127.0.0.1", work_dir=None):
    """The app: a Starlette ASGI application.

    Args:
      models: model paths and release names (`ModelCatalog`); the first is the default.
      predictor: a `Predictor` offered as the default model "given" (tests use
        stand-ins that take hints).
      limits: `Limits` of uploads.
      host: the address it will be served on; on a loopback address only loopback
        Host names are answered.
      work_dir: where its temporary directory is made (default: the system's).

    The default model is loaded here: a model that does not load fails before any
    request. Closing (the ASGI lifespan's shutdown) cancels jobs and removes the
    temporary directory.
    """
    state = AppState(models, predictor, limits, work_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, state.close)

    routes = [
        Route("/", index),
        Route("/api/models", list_models),
        Route("/api/models/{model_id}", get_model),
        Route("/api/models/{model_id}/fetch", fetch_model, methods=["POST"]),
        Route("/api/colorize", colorize, methods=["POST"]),
        Route("/api/suggest", suggest, methods=["POST"]),
        Route("/api/jobs", create_job, methods=["POST"]),
        Route("/api/jobs/{job_id}", job_status),
        Route("/api/jobs/{job_id}", cancel_job, methods=["DELETE"]),
        Route("/api/jobs/{job_id}/result", job_result),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: _api_error,
            ColornetError: _user_error,
            ValueError: _user_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        lifespan=lifespan,
    )
    app.state.colornet = state
    guarded = _Guard(app, state.limits, _allowed_hosts(host))
    guarded.state = state
    return guarded


def _allowed_hosts(host):
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return set(LOOPBACK_NAMES) if loopback else None


def bind(host, port):
    """A listening socket on `host:port` (0: any free port).

    Raises:
      ColornetError: the address cannot be bound (the port is taken).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ColornetError(f"cannot listen on {host}:{port} ({error.strerror or error}); try --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(models=(), host="127.0.0.1", port=8080, open_browser=True, predictor=None, limits=None):
    """Serves the app until Ctrl-C or SIGTERM; opens the page in a browser unless told not to.

    uvicorn stops gracefully on either signal (the lifespan's shutdown removes the
    temporary files) and raises the signal again afterwards, so `colornet app`
    exits as its other commands do (130, 143).
    """
    import uvicorn

    sock = bind(host, port)
    try:
        if models and pretrained.is_pretrained_name(models[0]):
            pretrained.fetch(models[0])  # the default model, as other commands fetch theirs
        app = create_app(models, predictor=predictor, limits=limits, host=host)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{sock.getsockname()[1]}/"
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
        print(f"colornet app: serving on {url} (Ctrl-C stops)", flush=True)
        if _allowed_hosts(host) is None:
            print(f"colornet app: note: anyone who can reach {host} can use this app", file=sys.stderr, flush=True)
        if open_browser:
            threading.Thread(target=_open_when_started, args=(server, url), daemon=True).start()
        server.run(sockets=[sock])
    finally:
        sock.close()


def _open_when_started(server, url):
    import time

    for _ in range(600):
        if server.started:
            webbrowser.open(url)
            return
        time.sleep(0.1)
