"""colornet.web without a browser: the HTTP API, its limits and errors, the network
lock, video jobs (done, failed, cancelled mid-way), paths a request cannot reach,
and `colornet app` stopping on SIGTERM.

Stand-in predictors (tests/helpers/app_standins.py) keep it fast and make the colours known:
`Flat` paints one ab bin everywhere, `HintOver` paints the hinted ab where hints are.
"""

import concurrent.futures
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("multipart")

from PIL import Image  # noqa: E402
from skimage.color import rgb2lab  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from colornet.web import jobs, server  # noqa: E402
from tests.helpers.app_standins import Flat, HintOver, png_bytes  # noqa: E402
from tests.helpers.images import smooth_rgb  # noqa: E402

BASE = "http://127.0.0.1"
PHOTO = smooth_rgb(48, 64, seed=3)


@pytest.fixture
def client_for(tmp_path, monkeypatch):
    """`client_for(predictor, **create_app options)`: a TestClient of a fresh app; the
    cache is empty (no released model is downloaded)."""
    monkeypatch.setenv("COLORNET_CACHE", str(tmp_path / "cache"))
    opened = []

    def make(predictor, **options):
        app = server.create_app(predictor=predictor, work_dir=str(tmp_path), **options)
        client = TestClient(app, base_url=BASE)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def _post_photo(client, photo=PHOTO, **fields):
    content = photo if isinstance(photo, bytes) else png_bytes(photo)
    return client.post("/api/colorize", files={"image": ("photo.png", content, "image/png")}, data=fields)


def _image(response):
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def _error(response, status, match):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    assert match in message, message
    assert "Traceback" not in message
    return message


# ---------------------------------------------------------------------------
# Photos.


def test_colorize_gives_a_png_of_the_photo_s_size_in_colour(client_for):
    client = client_for(Flat())
    result = _image(_post_photo(client, temperature="0.5", method="mean"))
    assert result.shape == PHOTO.shape
    ab = rgb2lab(result)[..., 1:].reshape(-1, 2)
    # Flat's bin is the one nearest (30, 45): every pixel's chroma is far from grey.
    assert np.median(np.linalg.norm(ab, axis=1)) > 20
    # The photo's own L is kept: within 8-bit rounding, but for the few pixels where
    # the saturated colour falls outside sRGB and clipping moves L (1.5 % here).
    assert np.percentile(np.abs(rgb2lab(result)[..., 0] - rgb2lab(PHOTO)[..., 0]), 95) < 1.0


def test_models_listing_and_choice(client_for):
    client = client_for(Flat())
    listing = client.get("/api/models").json()
    assert listing["default"] == "given"
    ids = [model["id"] for model in listing["models"]]
    assert ids[:2] == ["given", "bundled"] and "eccv16_imagenet" in ids
    released = next(model for model in listing["models"] if model["id"] == "eccv16_imagenet")
    assert released["ready"] is False and released["download_bytes"] > 100e6
    assert listing["limits"]["max_pixels"] == server.Limits().max_pixels
    assert client.get("/api/models/given").json()["takes_hints"] is False
    _error(client.get("/api/models/nothing"), 404, "no model")
    _error(_post_photo(client, model="../../etc/passwd"), 404, "no model")
    # A released model that is not in the cache is not downloaded by a colourise request.
    _error(_post_photo(client, model="eccv16_imagenet"), 409, "not downloaded yet")


def test_fetching_a_model_is_a_job(client_for, monkeypatch):
    from colornet.weights import pretrained

    fetched = []
    monkeypatch.setattr(pretrained, "fetch", lambda name, quiet=False: fetched.append(name))
    client = client_for(Flat())
    reply = client.post("/api/models/eccv16_imagenet_norebal/fetch")
    assert reply.status_code == 202
    job = _wait(client, reply.json()["job"]["id"])
    assert job["state"] == "done" and fetched == ["eccv16_imagenet_norebal"]
    _error(client.post("/api/models/nothing/fetch"), 404, "no model")


@pytest.mark.parametrize(
    "fields, status, message",
    [
        ({"temperature": "nan"}, 400, "temperature must be finite"),
        ({"temperature": "0"}, 400, "temperature must be in (0, 1]"),
        ({"temperature": "warm"}, 400, "temperature must be a number"),
        ({"method": "median"}, 400, "method must be one of"),
        ({"hints": "[{"}, 400, "hints: not JSON"),
        ({"hints": '[{"x": 1, "y": 2, "color": "#ff0000"}]'}, 400, "takes no hints"),
        ({"hints": '[{"x": 1, "y": 2, "color": "green"}]'}, 400, "is not a colour"),
    ],
)
def test_bad_fields(client_for, fields, status, message):
    _error(_post_photo(client_for(Flat()), **fields), status, message)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty input"),
        (b"this is not an image at all", "not a JPEG, PNG, GIF, BMP or WebP"),
        (png_bytes(PHOTO)[:200], "not a photo this app can read"),  # truncated
    ],
)
def test_bad_files_are_4xx_and_the_server_goes_on(client_for, content, message):
    client = client_for(Flat())
    _error(_post_photo(client, content), 400, message)
    _image(_post_photo(client))


def test_bad_requests(client_for):
    client = client_for(Flat())
    _error(client.post("/api/colorize", data={"temperature": "0.3"}), 400, "needs a file field 'image'")
    _error(client.post("/api/colorize", files={"image": ("a", b"x")}, data={"image": "text"}), 400, "")
    broken = {"content-type": "multipart/form-data; boundary=x"}
    _error(client.post("/api/colorize", content=b"--x\r\nbroken", headers=broken), 400, "")
    _error(client.get("/api/colorize"), 405, "Method Not Allowed")
    _error(client.get("/api/nothing"), 404, "Not Found")


def test_upload_and_pixel_limits(client_for):
    limits = server.Limits(image_bytes=4000, video_bytes=5000, max_pixels=40 * 40)
    client = client_for(Flat(), limits=limits)
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)  # > 4000 bytes as PNG
    _error(_post_photo(client, png_bytes(noisy)[:4000] * 300), 413, "larger than the photo limit")

    # Without a Content-Length (chunked): refused while it streams in.
    def chunks():
        yield b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
        for _ in range(2000):
            yield b"\0" * 1024

    response = client.post(
        "/api/colorize", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    _error(response, 413, "larger than the photo limit")
    # 40 x 41 pixels (width x height): over max_pixels, refused from the header.
    _error(_post_photo(client, np.zeros([41, 40, 3], np.uint8)), 413, "40 x 41 pixels; this app takes at most 1,600")
    assert _image(_post_photo(client, np.zeros([40, 40, 3], np.uint8))).shape == (40, 40, 3)


def test_requests_from_other_sites_and_hosts_are_refused(client_for):
    client = client_for(Flat())
    photo = {"image": ("p.png", png_bytes(PHOTO))}
    _error(client.post("/api/colorize", files=photo, headers={"Origin": "http://example.com"}), 403, "other sites")
    _error(client.get("/api/models", headers={"Host": "attacker.example:8080"}), 403, "not served here")
    assert client.post("/api/colorize", files=photo, headers={"Origin": BASE}).status_code == 200


def test_concurrent_requests_run_the_network_one_at_a_time(client_for):
    predictor = Flat(delay=0.05)
    client = client_for(predictor)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: _post_photo(client), range(6)))
    assert [r.status_code for r in responses] == [200] * 6
    assert predictor.calls == 6 and predictor.peak == 1


def test_hints_move_the_colour_at_the_point(client_for):
    client = client_for(HintOver())
    grey = _image(_post_photo(client))
    assert np.abs(rgb2lab(grey)[..., 1:]).max() < 8  # the oracle is grey without hints
    hints = [{"x": 40, "y": 20, "color": "#1060ff", "size": 12}]
    coloured = _image(_post_photo(client, hints=json.dumps(hints)))
    target = rgb2lab(np.array([[[0x10, 0x60, 0xFF]]], np.uint8))[0, 0, 1:]
    before, after = rgb2lab(grey)[20, 40, 1:], rgb2lab(coloured)[20, 40, 1:]
    # Toward the hint's ab: this saturated blue is outside sRGB at the photo's
    # lightness there, so the clipped result keeps its hue but not all its chroma.
    assert np.linalg.norm(after - target) < 0.5 * np.linalg.norm(before - target)
    assert np.dot(after, target) / np.linalg.norm(after) / np.linalg.norm(target) > 0.95
    assert np.abs(rgb2lab(coloured)[:, :10, 1:]).max() < 8  # far from the hint: still grey
    _error(_post_photo(client, hints=json.dumps([{"x": 64, "y": 2, "color": "#000000"}])), 400, "outside")


def test_suggestions(client_for):
    client = client_for(Flat(ab=(-30.0, 40.0)))
    photo = {"image": ("p.png", png_bytes(PHOTO))}
    reply = client.post("/api/suggest", files=photo, data={"x": "10", "y": "5", "k": "3"})
    assert reply.status_code == 200, reply.text
    suggestions = reply.json()["suggestions"]
    assert 1 <= len(suggestions) <= 3
    assert suggestions[0]["probability"] > 0.9 and suggestions[0]["color"].startswith("#")
    np.testing.assert_allclose(suggestions[0]["ab"], [-30, 40], atol=8)  # its bin, within a grid step
    _error(client.post("/api/suggest", files=photo, data={"x": "99", "y": "5"}), 400, "outside the 64 x 48 image")
    _error(client.post("/api/suggest", files=photo, data={"x": "1", "y": "5", "k": "0"}), 400, "k must be in 1..32")
    _error(client.post("/api/suggest", files=photo, data={"y": "5"}), 400, "needs x")


def test_page_and_its_assets_are_local(client_for):
    client = client_for(Flat())
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    for name in os.listdir(server.STATIC_DIR):
        text = client.get(f"/static/{name}").text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize(
    "path",
    [
        "/static/../server.py",
        "/static/%2e%2e/server.py",
        "/static/..%2fserver.py",
        "/static/%2e%2e%2f%2e%2e%2fcatalog.py",
        "/api/jobs/..%2f..%2fetc%2fpasswd",
        "/api/jobs/../../etc/passwd/result",
        "/api/jobs/" + "0" * 32,
        "/api/jobs/" + "0" * 32 + "/result",
    ],
)
def test_no_path_outside_the_app_is_reached(client_for, path):
    response = client_for(Flat()).get(path)
    assert response.status_code == 404, (path, response.status_code)
    assert "import" not in response.text


def test_work_directory_is_removed_on_shutdown(tmp_path, monkeypatch):
    app = server.create_app(predictor=Flat(), work_dir=str(tmp_path))
    work_dir = app.state.work_dir
    with TestClient(app, base_url=BASE) as client:
        assert os.path.isdir(work_dir)
        _image(_post_photo(client))
    assert not os.path.exists(work_dir)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# Video jobs.


def _clip(path, count=8):
    pytest.importorskip("av")
    from tests.test_video import write_clip

    frames = [smooth_rgb(48, 64, seed=i) for i in range(count)]
    return write_clip(path, frames, rate=10, audio=False)


def _post_video(client, path, name=None):
    with open(path, "rb") as f:
        return client.post("/api/jobs", files={"video": (name or os.path.basename(path), f.read(), "video/mp4")})


def _wait(client, job_id, until=jobs.FINISHED, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in until or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_video_job_gives_a_coloured_video(client_for, tmp_path):
    av = pytest.importorskip("av")
    client = client_for(Flat())
    src = _clip(tmp_path / "clip.mp4")
    reply = _post_video(client, src, name="../../holiday 1987.mp4")
    assert reply.status_code == 202, reply.text
    job = _wait(client, reply.json()["id"])
    assert job["state"] == "done" and job["progress"] == 1.0, job
    result = client.get(job["result_url"])
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    disposition = result.headers["content-disposition"]
    assert disposition.startswith("attachment;") and disposition.endswith("holiday%201987_color.mp4")
    with av.open(io.BytesIO(result.content)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape == (48, 64, 3)
    assert np.median(np.linalg.norm(rgb2lab(frames[3])[..., 1:], axis=-1)) > 15
    # Nothing was written outside the job's own directory; its input is gone.
    job_dir = os.path.join(client.app.state.jobs.root, job["id"])
    assert os.listdir(job_dir) == [jobs.RESULT_NAME]


def test_a_broken_video_fails_with_a_message(client_for, tmp_path):
    client = client_for(Flat())
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\0\1\2 not a video" * 100)
    job = _wait(client, _post_video(client, path).json()["id"])
    assert job["state"] == "failed"
    assert job["message"] and "Traceback" not in job["message"] and job["result_url"] is None
    _error(client.get(f"/api/jobs/{job['id']}/result"), 409, "the job is failed")
    _error(_post_video(client, path, name="clip.exe"), 415, "not a video this app takes")
    _error(client.post("/api/jobs", data={"temperature": "0.3"}), 400, "needs a file field 'video'")


def test_a_job_killed_mid_way_stops_and_the_next_one_runs(client_for, tmp_path):
    gate = threading.Event()
    predictor = Flat(gate=gate)
    client = client_for(predictor)
    src = _clip(tmp_path / "clip.mp4", count=24)
    first = _post_video(client, src).json()
    second = _post_video(client, src).json()
    queued = _post_video(client, src).json()
    _wait(client, first["id"], until=("running",))
    assert client.delete(f"/api/jobs/{queued['id']}").json()["state"] == "cancelled"  # before it starts
    assert client.delete(f"/api/jobs/{first['id']}").status_code == 200
    gate.set()
    killed = _wait(client, first["id"])
    assert killed["state"] == "cancelled" and killed["result_url"] is None
    assert os.listdir(os.path.join(client.app.state.jobs.root, first["id"])) == []
    assert _wait(client, second["id"])["state"] == "done"
    assert _wait(client, queued["id"])["state"] == "cancelled"
    _image(_post_photo(client))  # the server goes on


# ---------------------------------------------------------------------------
# The command.


def test_colornet_app_serves_and_stops_on_sigterm(tmp_path):
    pytest.importorskip("uvicorn")
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "colornet.cli", "app", "--port", "0", "--no-browser"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    try:
        line = process.stdout.readline()
        assert "serving on http://127.0.0.1:" in line, (line, process.stderr.read() if process.poll() else "")
        url = line.split("serving on ")[1].split()[0]
        import urllib.request

        with urllib.request.urlopen(url + "api/models", timeout=30) as response:
            assert json.load(response)["default"] == "bundled"
        assert [name for name in os.listdir(tmp_path) if name.startswith("colornet-app-")]
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and "colornet app: terminated" in stderr
    assert not [name for name in os.listdir(tmp_path) if name.startswith("colornet-app-")]
