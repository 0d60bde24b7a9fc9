"""serving/client.py end to end against the STAND-IN server (tests/helpers/serving_standin.py).

The stand-in is not TF Serving: it loads the export with TF Serving's session loader
behind tensorflow-serving-api's real gRPC `PredictionService` and a REST endpoint with
the JSON shapes TF Serving documents (see its docstring).
"""

import base64
import importlib.util
import json
import os
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import deploy_helpers as h
from tests.helpers.images import smooth_rgb
from tests.helpers.serving_standin import StandInServer

_CLIENT_PATH = os.path.join(os.path.dirname(__file__), "..", "serving", "client.py")


def _load_client():
    spec = importlib.util.spec_from_file_location("colornet_serving_client", _CLIENT_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


client = _load_client()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _, result = h.shared_export(tmp_path_factory)
    # Loading replays the export's warm-up requests, as TF Serving does.
    with StandInServer(os.path.dirname(result.path), "colornet") as running:
        yield running


def _rest(server, path, body=None):
    """(status, JSON) of a REST call."""
    url = f"http://127.0.0.1:{server.rest_port}{path}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _images():
    return [
        h.encode(smooth_rgb(30, 44, seed=1), "jpeg"),
        h.encode(smooth_rgb(52, 20, seed=2), "png"),
    ]


def _direct(server, images, **feeds):
    """What the loaded model returns for `images`, bypassing the protocols."""
    inputs = {"image_bytes": np.array(images, dtype=object)}
    inputs.update({k: np.asarray(v, np.float32) for k, v in feeds.items()})
    return list(server.model.predict("serving_default", inputs)["colorized_png_bytes"])


def test_rest_and_grpc_clients_return_the_models_pngs(server):
    images = _images()
    want = _direct(server, images)
    rest = client.colorize_rest(f"127.0.0.1:{server.rest_port}", images)
    grpc_pngs = client.colorize_grpc(f"127.0.0.1:{server.grpc_port}", images)
    assert rest == want and grpc_pngs == want
    assert [tf.io.decode_png(p).shape for p in rest] == [(30, 44, 3), (52, 20, 3)]
    # A temperature (sent as one value per image).
    want_hot = _direct(server, images, temperature=1.0)
    assert want_hot != want
    assert client.colorize_rest(f"127.0.0.1:{server.rest_port}", images, temperature=1.0) == want_hot
    assert client.colorize_grpc(f"127.0.0.1:{server.grpc_port}", images, temperature=1.0) == want_hot


def test_client_command_line(server, tmp_path):
    paths = []
    for i, image in enumerate(_images()):
        path = tmp_path / f"in{i}.jpg"
        path.write_bytes(image)
        paths.append(str(path))
    out = tmp_path / "out.png"
    assert client.main(["--server", f"127.0.0.1:{server.rest_port}", paths[0], "-o", str(out)]) == 0
    assert out.read_bytes() == _direct(server, _images()[:1])[0]
    out_dir = tmp_path / "colored"
    argv = ["--server", f"127.0.0.1:{server.grpc_port}", "--grpc", *paths, "--out-dir", str(out_dir)]
    assert client.main(argv) == 0
    assert sorted(os.listdir(out_dir)) == ["in0_color.png", "in1_color.png"]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    assert client.main(["--server", f"127.0.0.1:{server.rest_port}", str(bad), "-o", str(out)]) == 1


@pytest.mark.parametrize("name", sorted(h.bad_images()))
def test_bad_images_are_refused_and_the_server_keeps_serving(server, name):
    data, message = h.bad_images()[name]
    good = _images()[:1]
    status, body = _rest(
        server,
        "/v1/models/colornet:predict",
        {"instances": [{"image_bytes": {"b64": base64.b64encode(data).decode()}}]},
    )
    assert status == 400 and message in body["error"]
    with pytest.raises(client.ServingError, match="HTTP 400"):
        client.colorize_rest(f"127.0.0.1:{server.rest_port}", [good[0], data])
    with pytest.raises(client.ServingError, match=f"INVALID_ARGUMENT.*{message}"):
        client.colorize_grpc(f"127.0.0.1:{server.grpc_port}", [data])
    assert client.colorize_rest(f"127.0.0.1:{server.rest_port}", good) == _direct(server, good)


def test_rest_json_formats(server):
    images = _images()
    b64 = [{"b64": base64.b64encode(i).decode()} for i in images]
    want = _direct(server, images, temperature=0.5)
    # Columnar: a scalar temperature; one output, so "outputs" is its value.
    status, body = _rest(
        server, "/v1/models/colornet:predict", {"inputs": {"image_bytes": b64, "temperature": 0.5}}
    )
    assert status == 200
    assert [base64.b64decode(o["b64"]) for o in body["outputs"]] == want
    # Row format with a version in the path and instances given as bare values.
    status, body = _rest(server, "/v1/models/colornet/versions/1:predict", {"instances": b64})
    assert status == 200 and len(body["predictions"]) == 2

    l_raw = h.l_of(np.stack([smooth_rgb(12, 16, seed=s) for s in range(2)]))
    status, body = _rest(
        server,
        "/v1/models/colornet:predict",
        {"signature_name": "colorize_l", "instances": [{"l_raw": x.tolist()} for x in l_raw]},
    )
    assert status == 200
    direct = server.model.predict("colorize_l", {"l_raw": l_raw})
    np.testing.assert_allclose(np.array([p["ab"] for p in body["predictions"]]), direct["ab"], atol=1e-5)
    assert np.array([p["rgb"] for p in body["predictions"]]).tolist() == direct["rgb"].tolist()

    # ab_bins has no batch axis: the row format cannot hold it, the columnar can.
    request = {"signature_name": "probabilities", "instances": [{"l_raw": l_raw[0].tolist()}]}
    status, body = _rest(server, "/v1/models/colornet:predict", request)
    assert status == 400 and "columnar" in body["error"]
    request = {"signature_name": "probabilities", "inputs": {"l_raw": l_raw.tolist()}}
    status, body = _rest(server, "/v1/models/colornet:predict", request)
    assert status == 200 and np.array(body["outputs"]["ab_bins"]).shape == (313, 2)
    assert np.array(body["outputs"]["probabilities"]).shape == (2, 16, 16, 313)


def test_rest_errors_and_status(server):
    status, body = _rest(server, "/v1/models/colornet")
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
    status, body = _rest(server, "/v1/models/other:predict", {"instances": []})
    assert status == 404 and "other" in body["error"]
    status, body = _rest(server, "/v1/models/colornet:predict", {"signature_name": "nope", "instances": [1]})
    assert status == 400 and "nope" in body["error"]
    status, body = _rest(server, "/v1/models/colornet:predict", {"instances": [{"wrong": 1}]})
    assert status == 400 and "wrong" in body["error"]
    with pytest.raises(client.ServingError, match="cannot reach"):
        client.colorize_rest("127.0.0.1:1", _images()[:1], timeout=5)
