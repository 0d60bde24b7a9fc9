"""Released models by name (`colornet.weights.pretrained`, `colornet.weights.download`).

The real release files cannot be downloaded here (no network), and no test reaches
the internet. Fake releases in the real formats are served from a local HTTP server
on 127.0.0.1 (or a file:// folder) through `COLORNET_WEIGHTS_MIRROR`: small ones of
the `tiny` network, registered as test releases with their own sizes and checksums,
and one of the real ECCV16 layout (the PyTorch network of tests/test_official.py,
saved by real `torch.save`) fetched under the real name `eccv16_imagenet` with the
fake's checksum swapped into the table for the test. The oracle for weights is the
importer run directly on the in-memory tensors; for the real layout, PyTorch's own
forward pass.
"""

import collections
import dataclasses
import hashlib
import http.server
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from colornet import bins, cli  # noqa: E402
from colornet.deploy import predictors  # noqa: E402
from colornet.layers import decode  # noqa: E402
from colornet.models import Colorizer, presets  # noqa: E402
from colornet.utils.errors import ColornetError  # noqa: E402
from colornet.weights import download, official, pretrained  # noqa: E402

TINY_PYTORCH = presets.get_preset("tiny", l_scale=100.0, norm_affine=True, norm_momentum=0.9)
TINY_CAFFE = presets.get_preset("tiny")


class Server:
    """Serves `files` (path -> bytes) on 127.0.0.1, answering `Range: bytes=N-` with
    206 and the rest; `modes[path]` misbehaves: "truncate" (announces what it sends,
    sends half of it, closes), "truncate_once" (that, on the first request only),
    "no_range" (ignores Range: 200 and the whole file), "forbidden" (403), "stall"
    (headers, then nothing), "hold" (answers only once the test sets `released`).
    `requests` lists the paths asked for, `ranges` their Range headers (or None)."""

    def __init__(self):
        self.files, self.modes, self.requests, self.ranges = {}, {}, [], []
        self.released = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                server.ranges.append(self.headers.get("Range"))
                data, mode = server.files.get(self.path), server.modes.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                if mode == "forbidden":
                    self.send_error(403, "Forbidden")
                    return
                if mode == "hold":
                    server.released.wait(300)
                first = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if first and mode != "no_range":
                    start = int(first.group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    data = data[start:]
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if mode == "stall":
                    time.sleep(3)
                    return
                if mode == "truncate_once":
                    server.modes[self.path] = None
                cut = mode in ("truncate", "truncate_once")
                self.wfile.write(data[: len(data) // 2] if cut else data)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self):
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    running = Server()
    monkeypatch.setenv(pretrained.MIRROR_ENV, running.url + "/weights")
    yield running
    running.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv(pretrained.CACHE_ENV, str(path))
    return path


@pytest.fixture
def registry(monkeypatch):
    """Test releases are registered into copies of the tables, dropped afterwards."""
    monkeypatch.setattr(pretrained, "RELEASES", dict(pretrained.RELEASES))
    monkeypatch.setattr(presets, "PRETRAINED", dict(presets.PRETRAINED))
    return pretrained.RELEASES


def _tiny_state_dict(seed=0):
    """A state dict of the port's layout (names `model{b}.{i}.*`) for the tiny network."""
    rng = np.random.default_rng(seed)
    state = collections.OrderedDict()
    for sources in official._pytorch_plan(Colorizer(TINY_PYTORCH)).values():
        for name, shape in sources:
            values = rng.normal(size=shape).astype(np.float32)
            if name.endswith("running_var"):
                values = np.abs(values) + 0.5
            state[name] = torch.from_numpy(values)
            if name.endswith("running_var"):
                state[name.replace("running_var", "num_batches_tracked")] = torch.tensor(1000)
    state["model_out.weight"] = torch.from_numpy(
        (bins.ab_bins().T[:, :, None, None] / official.PYTORCH_AB_NORM).astype(np.float32)
    )
    return state


def _pth_bytes(state, tmp_path):
    path = tmp_path / "fake.pth"
    torch.save(state, path)
    return path.read_bytes()


def _tiny_caffemodel(tmp_path, seed=0):
    """Blobs of the tiny network as the Caffe release stores them, with the
    release's layer names (`bw_conv1_1` first, BatchNorm as running sums)."""
    from tests.test_official import _add_layer, _caffe_messages

    rng = np.random.default_rng(seed)
    net = _caffe_messages()["NetParameter"](name="LtoAB")
    layers = {}
    for layer_name, sources in official._caffe_plan(Colorizer(TINY_CAFFE)).items():
        blobs = [rng.normal(size=shape).astype(np.float32) for _, shape in sources]
        if "norm" in layer_name:
            blobs = [blobs[0] * 10, np.abs(blobs[1]) * 10 + 5, np.full(1, 10.0, np.float32)]
        layers[layer_name] = blobs
        _add_layer(net, "bw_conv1_1" if layer_name == "conv1_1" else layer_name, "Convolution", blobs)
    return net.SerializeToString(), layers


def _source(url, data, network, sha256=None, size=None, host="the authors"):
    return pretrained.Source(
        url=url,
        size=len(data) if size is None else size,
        sha256=hashlib.sha256(data).hexdigest() if sha256 is None else sha256,
        checksum_source="the test's own fake",
        host=host,
        network=network,
    )


def _register(name, data, suffix, network, sha256=None, size=None, more=()):
    """A release whose first source is on example.invalid (a name that never resolves),
    so that it is fetched through the mirror; `more`: further sources."""
    source = _source(f"https://example.invalid/releases/{name}{suffix}", data, network, sha256, size)
    return pretrained.register(pretrained.Release(
        name=name, sources=(source, *more), description="a fake release for tests",
    ))


def _same_weights(model, expected):
    assert model.model_config == expected.model_config
    for mine, theirs in zip(model.weights, expected.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def _cache_files(cache):
    return sorted(os.listdir(cache)) if cache.exists() else []


def test_first_use_downloads_converts_and_caches_then_works_offline(server, cache, registry, tmp_path, capfd):
    state = _tiny_state_dict()
    data = _pth_bytes(state, tmp_path)
    release = _register("fake_pth", data, ".pth", TINY_PYTORCH)
    server.files[f"/weights/{release.file_name}"] = data
    model = Colorizer.from_preset("fake_pth")
    _same_weights(model, official.convert_state_dict(state, network=TINY_PYTORCH))
    assert server.requests == [f"/weights/{release.file_name}"]
    progress = capfd.readouterr().err
    assert f"downloading {server.url}/weights/{release.file_name}" in progress
    assert re.search(r"MB in [0-9.]+ s \([0-9.]+ MB/s\)", progress)
    cached = pretrained.cached_path(release)
    assert os.path.basename(cached) == f"fake_pth-{release.sha256[:8]}.keras"
    assert _cache_files(cache) == [f".{os.path.basename(cached)}.lock", os.path.basename(cached)]
    server.stop()
    again = Colorizer.from_preset("fake_pth")  # no server: from the cache
    _same_weights(again, model)
    assert len(server.requests) == 1
    with pytest.raises(ValueError, match="released weights for a fixed network"):
        Colorizer.from_preset("fake_pth", padding="same")


@pytest.mark.slow
def test_caffe_release_through_the_cli_and_the_listing(server, cache, registry, tmp_path, capsys):
    data, layers = _tiny_caffemodel(tmp_path)
    release = _register("fake_caffe", data, ".caffemodel", TINY_CAFFE)
    server.files[f"/weights/{release.file_name}"] = data
    assert cli.main(cli._parse_flags(["colornet", "pretrained"])) == 0
    listing = capsys.readouterr().out
    assert (f"fake_caffe: a fake release for tests\n"
            f"  mirror:   {server.url}/weights/ (COLORNET_WEIGHTS_MIRROR, tried first for {release.file_name})\n"
            f"  source 1: {release.url}\n            the authors\n"
            f"            {release.size:,} bytes, SHA-256 {release.sha256}\n"
            "            (as published in the test's own fake)\n  cached:   no") in listing
    assert "licence:  BSD 2-Clause, Copyright (c) 2016 Richard Zhang" in listing
    image = tmp_path / "grey.png"
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56), np.uint8)).save(image)
    out = tmp_path / "out"
    code = cli.main(cli._parse_flags(["colornet", "colorize", str(image), "-o", str(out), "--model", "fake_caffe"]))
    assert code == 0
    assert (out / "grey.png").is_file()
    expected = official.convert_caffe_blobs(layers, network=TINY_CAFFE)
    _same_weights(pretrained.load("fake_caffe"), expected)
    assert cli.main(cli._parse_flags(["colornet", "pretrained"])) == 0
    assert f"cached:   yes, {pretrained.cached_path(release)}" in capsys.readouterr().out
    tflite = tmp_path / "m.tflite"  # a command that loads Keras models only (not predictors)
    code = cli.main(cli._parse_flags(["colornet", "tflite", "--model", "fake_caffe", "--out", str(tflite),
                                      "--image-size", "32"]))
    assert code == 0 and tflite.stat().st_size > 0
    assert len(server.requests) == 1


def _fetch_error(name):
    with pytest.raises(ColornetError) as error:
        pretrained.fetch(name, quiet=True)
    message = str(error.value)
    assert "\n" not in message
    assert f"run `colornet pretrained {name} --file FILE`, or set COLORNET_WEIGHTS_MIRROR" in message
    return message


def test_a_wrong_checksum_or_size_is_refused_and_nothing_is_cached(server, cache, registry, tmp_path):
    data = _pth_bytes(_tiny_state_dict(), tmp_path)
    _register("bad_hash", data, ".pth", TINY_PYTORCH, sha256="0" * 64)
    server.files["/weights/bad_hash.pth"] = data
    message = _fetch_error("bad_hash")
    # The mirror's file, then the authors' URL: each named with why it failed.
    assert message.startswith(f"no source of bad_hash could be used: (1) {server.url}/weights/bad_hash.pth: SHA-256 ")
    assert "differs from the published 0000000000000000..." in message
    assert "; (2) https://example.invalid/releases/bad_hash.pth: cannot connect (" in message
    assert "instead, download https://example.invalid/releases/bad_hash.pth by hand" in message
    _register("bad_size", data, ".pth", TINY_PYTORCH, size=len(data) + 1)
    server.files["/weights/bad_size.pth"] = data
    assert f"the server offers {len(data):,} bytes, expected {len(data) + 1:,}" in _fetch_error("bad_size")
    assert [f for f in _cache_files(cache) if not f.endswith(".lock")] == []


def test_a_file_of_the_wrong_layout_is_refused_after_download(server, cache, registry, tmp_path):
    data = _pth_bytes({"fc.weight": torch.zeros(3, 4)}, tmp_path)
    _register("not_eccv16", data, ".pth", TINY_PYTORCH)
    server.files["/weights/not_eccv16.pth"] = data
    message = _fetch_error("not_eccv16")
    assert message.startswith(
        f"no source of not_eccv16 could be used: (1) {server.url}/weights/not_eccv16.pth: not the ECCV16 colorizer: "
        "missing")
    assert [f for f in _cache_files(cache) if not f.endswith(".lock")] == []


def test_dropped_connections_http_errors_and_timeouts_keep_only_the_partial_download(
        server, cache, registry, tmp_path, monkeypatch):
    data = _pth_bytes(_tiny_state_dict(), tmp_path)
    release = _register("fake", data, ".pth", TINY_PYTORCH)
    url = f"{server.url}/weights/fake.pth"
    first = f"no source of fake could be used: (1) {url}: "
    partial = f".fake.{release.sha256[:16]}.partial"
    server.files["/weights/fake.pth"] = data
    server.modes["/weights/fake.pth"] = "truncate"
    message = _fetch_error("fake")
    assert message.startswith(f"{first}connection closed after {len(data) // 2:,} of {len(data):,} bytes")
    assert "; (2) https://example.invalid/releases/fake.pth: cannot connect (" in message
    assert [f for f in _cache_files(cache) if not f.endswith(".lock")] == [partial]  # kept, to resume
    server.modes["/weights/fake.pth"] = "stall"
    monkeypatch.setattr(download, "DEFAULT_TIMEOUT", 0.5)
    half = f"{len(data) // 2:,}"  # each attempt resumes what the first one received
    assert _fetch_error("fake").startswith(
        f"{first}timed out after 0.5 s without data ({half} of {len(data):,} bytes received)")
    assert server.ranges[-1] == f"bytes={len(data) // 2}-"
    del server.files["/weights/fake.pth"]
    assert _fetch_error("fake").startswith(f"{first}HTTP error 404 (Not Found)")
    server.stop()  # nothing listens on the port any more: as with no network
    assert _fetch_error("fake").startswith(f"{first}cannot connect (")
    assert [f for f in _cache_files(cache) if not f.endswith(".lock")] == [partial]
    assert (cache / partial).read_bytes() == data[: len(data) // 2]


def test_file_mirror_hand_downloaded_file_and_a_killed_download(cache, registry, tmp_path, monkeypatch, capsys):
    state = _tiny_state_dict(seed=3)
    data = _pth_bytes(state, tmp_path)
    release = _register("fake_file", data, ".pth", TINY_PYTORCH)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / release.file_name).write_bytes(data)
    os.makedirs(cache)
    stale = [  # what a killed conversion leaves, and a download of a file no source holds any more
        cache / ".fake_file.0123456789abcdef.partial",
        cache / f".{os.path.basename(pretrained.cached_path(release))}.def456.tmp.keras",
    ]
    for leftover in stale:
        leftover.write_bytes(data[:100])
    other = cache / ".other_release.0123456789abcdef.partial"  # not this release's: left alone
    other.write_bytes(data[:100])
    monkeypatch.setenv(pretrained.MIRROR_ENV, mirror.as_uri())
    path = pretrained.fetch("fake_file", quiet=True)
    assert not any(leftover.exists() for leftover in stale) and other.exists()
    expected = official.convert_state_dict(state, network=TINY_PYTORCH)
    _same_weights(pretrained.load("fake_file"), expected)
    os.unlink(path)
    monkeypatch.setenv(pretrained.MIRROR_ENV, "ftp://example.invalid/")
    assert "expected a base URL starting with http://, https:// or file://" in _fetch_message("fake_file")
    hand = tmp_path / "downloaded_by_hand.bin"  # the reader follows the release, not the name
    hand.write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])  # one bit flipped
    assert cli.main(cli._parse_flags(["colornet", "pretrained", "fake_file", "--file", str(hand)])) == 1
    assert "SHA-256" in capsys.readouterr().err
    hand.write_bytes(data)
    assert cli.main(cli._parse_flags(["colornet", "pretrained", "fake_file", "--file", str(hand)])) == 0
    assert capsys.readouterr().out.strip() == f"fake_file: {path}"
    _same_weights(pretrained.load("fake_file"), expected)


def _grey_image(tmp_path):
    from PIL import Image

    image = tmp_path / "grey.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56), np.uint8)).save(image)
    return image


def test_a_damaged_cache_entry_is_reported_moved_aside_and_fetched_again(server, cache, registry, tmp_path, capsys):
    state = _tiny_state_dict(seed=5)
    data = _pth_bytes(state, tmp_path)
    release = _register("fake_damaged", data, ".pth", TINY_PYTORCH)
    url = f"{server.url}/weights/{release.file_name}"
    server.files[f"/weights/{release.file_name}"] = data
    expected = official.convert_state_dict(state, network=TINY_PYTORCH)
    path = pretrained.fetch("fake_damaged", quiet=True)
    sound = pathlib.Path(path).read_bytes()
    aside = path + ".damaged"
    notice = f"colornet: the cached {path} is damaged ("

    pathlib.Path(path).write_bytes(b"garbage" * 100)  # the listing says so; fetching now replaces it
    assert cli.main(cli._parse_flags(["colornet", "pretrained"])) == 0
    assert (f"cached:   damaged, {path} (not a readable .keras archive: File is not a zip file; "
            "fetched again on next use)") in capsys.readouterr().out
    assert cli.main(cli._parse_flags(["colornet", "pretrained", "fake_damaged"])) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"fake_damaged: {path}"
    assert f"{notice}not a readable .keras archive: File is not a zip file); moved it to {aside}" in captured.err
    assert pathlib.Path(aside).read_bytes() == b"garbage" * 100 and len(server.requests) == 2
    _same_weights(pretrained.load("fake_damaged"), expected)

    damaged = bytearray(sound)
    damaged[len(sound) // 2] ^= 1  # one bit in the weights: through `load_predictor`
    pathlib.Path(path).write_bytes(damaged)
    _same_weights(predictors.load_predictor("fake_damaged").model, expected)
    assert f"{notice}model.weights.h5 fails its CRC check)" in capsys.readouterr().err
    assert len(server.requests) == 3

    with zipfile.ZipFile(path, "w") as archive:  # a sound archive Keras cannot load
        for member in ("config.json", "metadata.json", "model.weights.h5"):
            archive.writestr(member, "{}")
    _same_weights(Colorizer.from_preset("fake_damaged"), expected)
    assert f"{notice}not a loadable colornet model" in capsys.readouterr().err
    assert len(server.requests) == 4

    server.stop()  # offline: a truncated model is reported, then the fetch fails naming the URLs
    pathlib.Path(path).write_bytes(sound[: len(sound) // 2])
    code = cli.main(cli._parse_flags(["colornet", "colorize", str(_grey_image(tmp_path)), "-o", str(tmp_path / "out"),
                                      "--model", "fake_damaged"]))
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith(notice) and f"moved it to {aside}" in line for line in err), err
    error = [line for line in err if line.startswith("colornet colorize: error: ")]
    assert len(error) == 1 and error[0].startswith(
        f"colornet colorize: error: no source of fake_damaged could be used: (1) {url}: cannot connect (")
    assert f"download {release.url} by hand" in error[0]
    assert not os.path.exists(path) and pathlib.Path(aside).stat().st_size == len(sound) // 2


@pytest.mark.slow
def test_a_cached_file_that_does_not_load_is_fetched_again_through_the_cli(server, cache, registry, tmp_path,
                                                                         capsys):
    """As through the Python API (above): a sound archive that Keras cannot load."""
    state = _tiny_state_dict(seed=6)
    data = _pth_bytes(state, tmp_path)
    release = _register("fake_unloadable", data, ".pth", TINY_PYTORCH)
    server.files[f"/weights/{release.file_name}"] = data
    expected = official.convert_state_dict(state, network=TINY_PYTORCH)
    path = pretrained.fetch("fake_unloadable", quiet=True)
    notice = f"colornet: the cached {path} is damaged (not a loadable colornet model"
    image = _grey_image(tmp_path)
    for number, argv in enumerate((["colorize", str(image), "-o", str(tmp_path / "out"), "--model", "fake_unloadable"],
                                   ["tflite", "--model", "fake_unloadable", "--out", str(tmp_path / "m.tflite"),
                                    "--size", "32"]), 2):
        with zipfile.ZipFile(path, "w") as archive:
            for member in ("config.json", "metadata.json", "model.weights.h5"):
                archive.writestr(member, "{}")
        code = cli.main(cli._parse_flags(["colornet", *argv]))
        err = capsys.readouterr().err
        assert code == 0, err
        assert notice in err and len(server.requests) == number
        _same_weights(pretrained.load("fake_unloadable"), expected)
    assert (tmp_path / "out" / "grey.png").is_file() and (tmp_path / "m.tflite").stat().st_size > 0


def test_a_temporary_file_of_a_live_fetch_is_left_alone(cache, registry, tmp_path, monkeypatch):
    data = _pth_bytes(_tiny_state_dict(), tmp_path)
    release = _register("fake_live", data, ".pth", TINY_PYTORCH)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / release.file_name).write_bytes(data)
    monkeypatch.setenv(pretrained.MIRROR_ENV, mirror.as_uri())
    name = os.path.basename(pretrained.cached_path(release))
    os.makedirs(cache)
    writing = cache / f".{name}.abc123.tmp.keras"
    writing.write_bytes(b"half a model")
    with download.lock(str(cache / f".{name}.lock")):  # held by "another process", still converting
        fetching = threading.Thread(target=pretrained.fetch, args=("fake_live",), kwargs={"quiet": True})
        fetching.start()
        fetching.join(timeout=1.0)
        assert fetching.is_alive() and writing.exists()
    fetching.join(timeout=120)  # the lock is free: the file is a dead process's now
    assert not writing.exists() and os.path.isfile(pretrained.cached_path(release))


def test_the_listing_survives_a_bad_mirror(cache, monkeypatch, capsys):
    monkeypatch.setenv(pretrained.MIRROR_ENV, "ftp://example.invalid/")
    assert cli.main(cli._parse_flags(["colornet", "pretrained"])) == 0
    captured = capsys.readouterr()
    real = pretrained.RELEASES["eccv16_imagenet"]
    assert f"eccv16_imagenet: {real.description}\n  source 1: {real.url}\n" in captured.out
    assert "mirror:" not in captured.out
    assert [line for line in captured.err.splitlines() if pretrained.MIRROR_ENV in line] == [
        "colornet: warning: COLORNET_WEIGHTS_MIRROR='ftp://example.invalid/': expected a base URL starting "
        "with http://, https:// or file://; fetching fails until it is fixed"
    ]


def test_a_pretrained_name_before_colornet_pretrained_is_imported_says_how(monkeypatch):
    monkeypatch.setattr(presets, "PRETRAINED", {})  # as in a process that imported colornet.models only
    with pytest.raises(ValueError, match=re.escape(
        "; pretrained names (eccv16_imagenet, eccv16_imagenet_caffe, eccv16_imagenet_norebal, siggraph17_imagenet) "
        "are registered by `import colornet.weights.pretrained` or by using `colornet.Colorizer`"
    )):
        Colorizer.from_preset("eccv16_imagenet")


def _fetch_message(name):
    with pytest.raises(ColornetError) as error:
        pretrained.fetch(name, quiet=True)
    return str(error.value)


_FETCH_IN_A_PROCESS = """
import json, resource, sys
from colornet import cli
from colornet.weights import pretrained
from colornet.models.config import ModelConfig
spec = json.loads(sys.argv[1])
spec["sources"] = tuple(pretrained.Source(**{**source, "network": ModelConfig.from_dict(source["network"])})
                        for source in spec["sources"])
pretrained.register(pretrained.Release(**spec))
if len(sys.argv) > 2:  # a file size limit: writes beyond it fail as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]),) * 2)
sys.exit(cli.main(cli._parse_flags(["colornet", "pretrained", spec["name"]])))
"""


def _fetch_process(release, *extra):
    spec = dataclasses.asdict(release)
    for source, original in zip(spec["sources"], release.sources, strict=True):
        source["network"] = original.network.to_dict()
    return subprocess.Popen(
        [sys.executable, "-c", _FETCH_IN_A_PROCESS, json.dumps(spec), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _read_lines(stream, into):
    for line in stream:
        into.append(line)


@pytest.mark.slow
def test_two_processes_fetching_at_once_both_succeed_with_one_download(server, cache, registry, tmp_path):
    data = _pth_bytes(_tiny_state_dict(), tmp_path)
    release = _register("fake_twice", data, ".pth", TINY_PYTORCH)
    server.files["/weights/fake_twice.pth"] = data
    # The server holds the one download until the other process waits on the lock:
    # both are fetching at once, whatever the two start-up times are.
    server.modes["/weights/fake_twice.pth"] = "hold"
    runs = [_fetch_process(release) for _ in range(2)]
    errs = [[], []]
    readers = [threading.Thread(target=_read_lines, args=(run.stderr, lines), daemon=True)
               for run, lines in zip(runs, errs, strict=True)]
    for reader in readers:
        reader.start()
    waiting = "waiting for another colornet process"
    deadline = time.monotonic() + 300
    while not (server.requests and any(waiting in line for lines in errs for line in lines)):
        assert time.monotonic() < deadline and all(run.poll() is None for run in runs), errs
        time.sleep(0.1)
    server.released.set()
    for run, reader, lines in zip(runs, readers, errs, strict=True):
        out = run.stdout.read()
        assert run.wait(timeout=300) == 0, "".join(lines)
        reader.join(timeout=60)
        assert out.strip() == f"fake_twice: {pretrained.cached_path(release)}"
    assert sorted(any(waiting in line for line in lines) for lines in errs) == [False, True]
    assert server.requests == ["/weights/fake_twice.pth"]  # the waiter then found the other's model
    name = os.path.basename(pretrained.cached_path(release))
    assert _cache_files(cache) == [f".{name}.lock", name]
    _same_weights(pretrained.load("fake_twice"), official.convert_state_dict(_tiny_state_dict(), network=TINY_PYTORCH))


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_nothing(server, cache, registry, tmp_path, monkeypatch):
    data = _pth_bytes(_tiny_state_dict(), tmp_path)
    release = _register("fake_full", data, ".pth", TINY_PYTORCH)
    server.files["/weights/fake_full.pth"] = data
    run = _fetch_process(release, str(len(data) // 3))
    out, err = run.communicate(timeout=300)
    assert run.returncode == 1 and "Traceback" not in err
    ours = [line for line in err.splitlines() if line.startswith("colornet")]
    url = f"{server.url}/weights/fake_full.pth"
    assert len(ours) == 1 and ours[0].startswith(f"colornet pretrained: error: cannot write the download of {url} into")
    assert "File too large" in ours[0] and "colornet pretrained fake_full --file FILE" in ours[0]
    assert [f for f in _cache_files(cache) if not f.endswith(".lock")] == []
    # Room for the download (the limit is its size) but not for the larger converted model:
    # the error is about the cache file, and still names the authors' URL and the mirror's.
    run = _fetch_process(release, str(len(data)))
    out, err = run.communicate(timeout=300)
    assert run.returncode == 1 and "Traceback" not in err
    ours = [line for line in err.splitlines() if line.startswith("colornet")]
    assert len(ours) == 1, err
    cached = pretrained.cached_path(release)
    assert ours[0].startswith(f"colornet pretrained: error: cannot write {cached}: File too large")
    assert f"download {release.url} by hand" in ours[0]
    assert [f for f in _cache_files(cache) if not f.endswith(".lock")] == []
    monkeypatch.setattr(pretrained.shutil, "disk_usage", lambda path: type("U", (), {"free": len(data)})())
    message = _fetch_message("fake_full")
    assert f"needs about {2 * len(data) / 1e6:.0f} MB" in message and f"download {release.url} by hand" in message


@pytest.mark.slow
def test_the_real_layout_end_to_end_under_the_real_name(cache, tmp_path, monkeypatch):
    """The ECCV16 network of the PyTorch release, saved by real `torch.save`, goes
    through the whole path of `eccv16_imagenet` (file:// mirror, checksum, `colornet.weights.pth`,
    the importer, the cache) and must then give PyTorch's colours.

    Saved in torch's legacy format, which the release most likely is: its published
    size is within a few hundred bytes of a legacy save of this layout and about
    15 KB below a zip save (`benchmarks/pth_release_size.py`)."""
    from tests.test_official import AB_TOLERANCE, _photos_l, _reference_network, _torch_forward

    reference = _reference_network(affine=True, l_scale=100.0, seed=2)
    real = pretrained.RELEASES["eccv16_imagenet"]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    path = mirror / real.file_name
    torch.save(reference.state_dict(), path, _use_new_zipfile_serialization=False)
    assert abs(path.stat().st_size - real.size) < 4096  # only pickle bookkeeping differs
    fake = dataclasses.replace(real, sources=(dataclasses.replace(
        real.sources[0], size=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest()),))
    monkeypatch.setitem(pretrained.RELEASES, "eccv16_imagenet", fake)
    monkeypatch.setenv(pretrained.MIRROR_ENV, mirror.as_uri())
    model = Colorizer.from_preset("eccv16_imagenet")
    assert model.model_config == presets.get_preset("eccv16_pytorch")
    l_raw = _photos_l(96, 128)
    _, torch_ab = _torch_forward(reference, l_raw)
    np.testing.assert_allclose(decode.mean(model(l_raw, training=False)).numpy(), torch_ab, rtol=0, atol=AB_TOLERANCE)


def test_the_shipped_table_keeps_the_published_values():
    """Exact URLs and file names from the authors' code, sizes and SHA-256 as published
    (Open Model Zoo's model.yml files: the authors publish none), in the order tried."""
    table = {name: [(s.url, s.size, s.sha256) for s in r.sources] for name, r in pretrained.RELEASES.items()}
    berkeley = "http://eecs.berkeley.edu/~rich.zhang/projects/2016_colorization/files/demo_v2/"
    pth = ("https://colorizers.s3.us-east-2.amazonaws.com/colorization_release_v2-9b330a0b.pth",
           128_976_165, "9b330a0bae53f4ded77b1e23defbf78beaa09c10ebc4c4999e8e4f4a160b93f9")
    caffe = (berkeley + "colorization_release_v2.caffemodel",
             128_946_764, "f5af1e602646328c792e1094f9876fe9cd4c09ac46fa886e5708a1abc89137b1")
    assert table == {
        "eccv16_imagenet": [pth, caffe],
        "eccv16_imagenet_caffe": [caffe, pth],
        "eccv16_imagenet_norebal": [(
            berkeley + "colorization_release_v2_norebal.caffemodel",
            128_946_454, "6ab42a7fa853eb7ca822b9a0a2997a08a29c819c985c3e70b460c6be9c8b2159")],
        "siggraph17_imagenet": [(
            "https://colorizers.s3.us-east-2.amazonaws.com/siggraph17-df00044c.pth",
            136_787_426, "df00044c0a4d7c3edcecf6f75437ce346a66e7a42612d9b968e1a7e17dbc6f66")],
    }
    # torch.hub's convention: the file name carries the first 8 hex digits of the SHA-256.
    release = pretrained.RELEASES["eccv16_imagenet"]
    assert re.search(r"-([0-9a-f]{8})\.pth$", release.url).group(1) == release.sha256[:8]
    assert all(s.network is None for r in pretrained.RELEASES.values() for s in r.sources)
    assert presets.RELEASED_NAMES == tuple(table)  # what models say before this module is imported


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(pretrained.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pretrained.cache_dir() == str(tmp_path / "xdg" / "colornet")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert pretrained.cache_dir() == str(tmp_path / "home" / ".cache" / "colornet")
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "mine"))
    assert pretrained.cache_dir() == str(tmp_path / "mine")


def test_an_existing_path_wins_over_a_name_and_unknown_names_list_the_releases(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert pretrained.is_pretrained_name("eccv16_imagenet")
    os.mkdir("eccv16_imagenet")  # e.g. a training workdir of that name
    assert not pretrained.is_pretrained_name("eccv16_imagenet")
    with pytest.raises(ValueError, match=r"with released weights: \['eccv16_imagenet'"):
        Colorizer.from_preset("eccv16_imagnet")
    with pytest.raises(ColornetError, match="unknown pretrained model 'x'; available: eccv16_imagenet,"):
        pretrained.fetch("x")
    with pytest.raises(ColornetError, match=r"eccv16_imagnet: no such file or directory, nor a pretrained name "
                       r"\(eccv16_imagenet, "):
        pretrained.model_path("eccv16_imagnet")
    assert pretrained.model_path("runs/missing.keras") == "runs/missing.keras"  # a path: its loader says why


def _failure_lines(err):
    return [line for line in err.splitlines() if line.startswith("colornet: ")]


def test_a_source_answering_403_is_reported_and_the_next_ones_are_tried(server, cache, registry, tmp_path, capfd):
    """The authors' `.pth` is forbidden (403) and the mirror lacks both files: each
    failure is one line, and the release comes from its second source, the same
    model in the other framework's format, converted as such."""
    pth = _pth_bytes(_tiny_state_dict(seed=7), tmp_path)
    caffe, layers = _tiny_caffemodel(tmp_path, seed=7)
    other_host = _source(f"{server.url}/other/fake_403.caffemodel", caffe, TINY_CAFFE, host="another host")
    release = _register("fake_403", pth, ".pth", TINY_PYTORCH, more=(other_host,))
    server.files["/weights/fake_403.pth"] = pth
    server.modes["/weights/fake_403.pth"] = "forbidden"
    server.files["/other/fake_403.caffemodel"] = caffe
    capfd.readouterr()
    _same_weights(pretrained.load("fake_403"), official.convert_caffe_blobs(layers, network=TINY_CAFFE))
    failures = _failure_lines(capfd.readouterr().err)
    next_one = "; trying the next source"
    assert failures[0] == f"colornet: {server.url}/weights/fake_403.pth: HTTP error 403 (Forbidden){next_one}"
    assert failures[1] == f"colornet: {server.url}/weights/fake_403.caffemodel: HTTP error 404 (Not Found){next_one}"
    assert failures[2].startswith(f"colornet: {release.url}: cannot connect (") and failures[2].endswith(next_one)
    assert len(failures) == 3
    assert server.requests == ["/weights/fake_403.pth", "/weights/fake_403.caffemodel", "/other/fake_403.caffemodel"]
    assert _cache_files(cache) == [f".{os.path.basename(pretrained.cached_path(release))}.lock",
                                   os.path.basename(pretrained.cached_path(release))]

    del server.files["/other/fake_403.caffemodel"]  # every source fails: the error names each
    message = _fetch_message_after_removing(release)
    assert message.startswith(
        f"no source of fake_403 could be used: (1) {server.url}/weights/fake_403.pth: HTTP error 403 (Forbidden); "
        f"(2) {server.url}/weights/fake_403.caffemodel: HTTP error 404 (Not Found); "
        f"(3) {release.url}: cannot connect (")
    assert f"; (4) {server.url}/other/fake_403.caffemodel: HTTP error 404 (Not Found); instead, download " in message

    hand = tmp_path / "by_hand.bin"  # a file saved by hand is matched to its source by size and checksum
    hand.write_bytes(caffe)
    pretrained.fetch("fake_403", local_file=hand, quiet=True)
    _same_weights(pretrained.load("fake_403"), official.convert_caffe_blobs(layers, network=TINY_CAFFE))


def _fetch_message_after_removing(release):
    os.unlink(pretrained.cached_path(release))
    return _fetch_message(release.name)


@pytest.mark.slow
def test_a_dropped_connection_is_resumed_with_a_range_request(server, cache, registry, tmp_path, capfd):
    """The server drops the connection halfway; the next attempt asks for the rest
    (`Range`) and appends it; the checksum is of the whole file."""
    state = _tiny_state_dict(seed=11)
    data = _pth_bytes(state, tmp_path)
    release = _register("fake_resume", data, ".pth", TINY_PYTORCH)
    path, half = "/weights/fake_resume.pth", len(data) // 2
    server.files[path] = data
    server.modes[path] = "truncate_once"
    assert f"connection closed after {half:,} of {len(data):,} bytes" in _fetch_message("fake_resume")
    partial = cache / f".fake_resume.{release.sha256[:16]}.partial"
    assert partial.read_bytes() == data[:half]
    capfd.readouterr()
    _same_weights(pretrained.load("fake_resume"), official.convert_state_dict(state, network=TINY_PYTORCH))
    assert server.requests[-1] == path and server.ranges[-1] == f"bytes={half}-"  # only the rest
    assert server.ranges[0] is None
    assert f"resuming {server.url}{path} at " in capfd.readouterr().err
    assert not partial.exists()


@pytest.mark.slow
def test_a_server_ignoring_range_starts_over_and_a_bad_beginning_is_caught(server, cache, registry, tmp_path, capfd):
    state = _tiny_state_dict(seed=12)
    data = _pth_bytes(state, tmp_path)
    release = _register("fake_no_range", data, ".pth", TINY_PYTORCH)
    path, third = "/weights/fake_no_range.pth", len(data) // 3
    server.files[path] = data
    server.modes[path] = "no_range"  # answers 200 with the whole file
    os.makedirs(cache)
    partial = cache / f".fake_no_range.{release.sha256[:16]}.partial"
    partial.write_bytes(data[:third])
    capfd.readouterr()
    _same_weights(pretrained.load("fake_no_range"), official.convert_state_dict(state, network=TINY_PYTORCH))
    assert server.ranges == [f"bytes={third}-"]
    assert f"{server.url}{path} sends the whole file: starting over" in capfd.readouterr().err

    # A partial file whose beginning is wrong: resumed, the whole file's checksum
    # fails, the partial is deleted, and the next attempt starts over.
    os.unlink(pretrained.cached_path(release))
    server.modes[path] = None
    partial.write_bytes(b"x" * third)
    message = _fetch_message("fake_no_range")
    assert f"(1) {server.url}{path}: SHA-256 " in message and "differs from the published" in message
    assert server.ranges[-1] == f"bytes={third}-" and not partial.exists()
    _same_weights(pretrained.load("fake_no_range"), official.convert_state_dict(state, network=TINY_PYTORCH))
    assert server.ranges[-1] is None


def test_a_mirror_with_a_wrong_file_is_reported_and_the_authors_url_used(server, cache, registry, tmp_path, capfd):
    state = _tiny_state_dict(seed=13)
    data = _pth_bytes(state, tmp_path)
    wrong = bytearray(data)
    wrong[len(data) // 2] ^= 1  # same size, one bit off
    authors = _source(f"{server.url}/authors/fake_wrong.pth", data, TINY_PYTORCH)
    pretrained.register(pretrained.Release(name="fake_wrong", sources=(authors,), description="a fake"))
    server.files["/weights/fake_wrong.pth"] = bytes(wrong)
    server.files["/authors/fake_wrong.pth"] = data
    capfd.readouterr()
    _same_weights(pretrained.load("fake_wrong"), official.convert_state_dict(state, network=TINY_PYTORCH))
    failures = _failure_lines(capfd.readouterr().err)
    assert len(failures) == 1 and failures[0].startswith(f"colornet: {server.url}/weights/fake_wrong.pth: SHA-256 ")
    assert failures[0].endswith("differs from the published " + authors.sha256[:16]
                                + "... (a damaged or different file); trying the next source")
    assert server.requests == ["/weights/fake_wrong.pth", "/authors/fake_wrong.pth"]
    assert server.ranges == [None, None]  # the wrong file's bytes were not kept to resume from
