"""A STAND-IN for TensorFlow Serving, for tests only. It is NOT TF Serving.

`tensorflow_model_server` cannot be installed here, so the serving tests run the
client against this small server, which reproduces the parts of TF Serving's
protocol that colornet relies on, as TF Serving documents them:

* it loads the highest version under `--model_base_path` with the TF1 session
  loader (`tf.compat.v1.saved_model.loader.load` in a `tf.compat.v1.Session`), the
  loader TF Serving uses, and replays `assets.extra/tf_serving_warmup_requests`
  before serving, as TF Serving does;
* gRPC: the real `PredictionService` servicer of tensorflow-serving-api (`Predict`
  only), on 127.0.0.1; errors carry TF's status code (INVALID_ARGUMENT, ...);
* REST: `POST /v1/models/<name>[/versions/<v>]:predict` with `signature_name` and
  either the row format (`instances`) or the columnar format (`inputs`); inputs may
  be `{"b64": ...}`, outputs whose alias ends in `_bytes` come back as
  `{"b64": ...}`; errors are `{"error": "..."}` with HTTP 400 (404 for an unknown
  model); `GET /v1/models/<name>` gives the version status.

Signature inputs that a request omits take the SignatureDef's default (the graph
holds them as PlaceholderWithDefault), as in TF Serving.

Run by hand: `python tests/helpers/serving_standin.py --model_name colornet
--model_base_path models/colornet --port 8500 --rest_api_port 8501`.
"""

import argparse
import base64
import http.server
import json
import os
import re
import threading
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

_REST_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(?::(predict))?$")


class RequestError(Exception):
    """A request TF Serving would refuse, with its gRPC status code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _tf_message(error):
    """The message TF Serving's C++ runtime would give (no Python traceback part)."""
    text = error.message
    text = text.replace("Graph execution error:", "")
    text = re.sub(r"Detected at node .*?(?=\n\n|$)", "", text, flags=re.DOTALL)
    return text.strip()


class SessionModel:
    """One model version loaded with the TF1 session loader."""

    def __init__(self, base_path, name):
        versions = sorted(int(v) for v in os.listdir(base_path) if re.fullmatch(r"\d+", v))
        if not versions:
            raise FileNotFoundError(f"no version directory under {base_path}")
        self.name = name
        self.version = versions[-1]
        self.path = os.path.join(base_path, str(self.version))
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], self.path)
        self.signatures = {
            key: sig for key, sig in meta_graph.signature_def.items() if not key.startswith("__")
        }
        self._warm_up()

    def _warm_up(self):
        path = os.path.join(self.path, "assets.extra", "tf_serving_warmup_requests")
        if not os.path.exists(path):
            return
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            log = prediction_log_pb2.PredictionLog.FromString(record)
            request = log.predict_log.request
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            self.predict(request.model_spec.signature_name, inputs)

    def signature(self, signature_name):
        signature_name = signature_name or "serving_default"
        if signature_name not in self.signatures:
            raise RequestError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature_name}" not found.',
            )
        return self.signatures[signature_name]

    def predict(self, signature_name, inputs, output_filter=()):
        """`inputs`: `{alias: ndarray}` -> `{alias: ndarray}`."""
        signature = self.signature(signature_name)
        for alias in inputs:
            if alias not in signature.inputs:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input tensor alias not found in signature: {alias}. Inputs expected to be "
                    f"in the set {{{','.join(sorted(signature.inputs))}}}.",
                )
        missing = sorted(set(signature.inputs) - set(inputs) - set(signature.defaults))
        if missing:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Request inputs do not match required inputs for model `{self.name}`. "
                f"Missing but required: {{{','.join(missing)}}}.",
            )
        outputs = list(output_filter) or sorted(signature.outputs)
        for alias in outputs:
            if alias not in signature.outputs:
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"output tensor alias not found in signature: {alias}",
                )
        feeds = {signature.inputs[k].name: v for k, v in inputs.items()}
        fetches = {k: signature.outputs[k].name for k in outputs}
        try:
            return self.session.run(fetches, feeds)
        except tf.errors.OpError as error:
            raise RequestError(grpc.StatusCode(_grpc_code(error.error_code)), _tf_message(error)) from None
        except (ValueError, TypeError) as error:  # a feed of the wrong shape or type
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None


def _grpc_code(tf_code):
    return next(code for code in grpc.StatusCode if code.value[0] == tf_code)


# ----------------------------------------------------------------------------
# gRPC


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, model):
        self.model = model

    def Predict(self, request, context):
        try:
            if request.model_spec.name != self.model.name:
                raise RequestError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Servable not found for request: Latest({request.model_spec.name})",
                )
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            outputs = self.model.predict(
                request.model_spec.signature_name, inputs, request.output_filter
            )
        except RequestError as error:
            context.abort(error.code, error.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.model.name
        response.model_spec.version.value = self.model.version
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for alias, value in outputs.items():
            response.outputs[alias].CopyFrom(tf.make_tensor_proto(value))
        return response


# ----------------------------------------------------------------------------
# REST


def _decode_json_value(value):
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"unexpected object {value!r} in a value")
    if isinstance(value, list):
        return [_decode_json_value(v) for v in value]
    return value


def _as_array(value, tensor_info):
    dtype = tf.dtypes.as_dtype(tensor_info.dtype)
    try:
        if dtype == tf.string:
            array = np.array(value, dtype=object)
            for index, item in np.ndenumerate(array):
                if isinstance(item, str):
                    array[index] = item.encode("utf-8")
                elif not isinstance(item, bytes):
                    raise TypeError(f"expected strings, got {type(item).__name__}")
            return array
        return np.array(value, dtype=dtype.as_numpy_dtype)
    except (ValueError, TypeError) as error:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT, f"JSON value cannot be converted to {dtype.name}: {error}"
        ) from None


def _encode_json_value(array, alias):
    if array.dtype == object:
        if alias.endswith("_bytes"):
            convert = np.vectorize(lambda b: {"b64": base64.b64encode(b).decode("ascii")}, otypes=[object])
        else:
            convert = np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])
        return convert(array).tolist() if array.size else array.tolist()
    return array.tolist()


def _parse_request(body, signature):
    """JSON body -> `{alias: ndarray}` and whether it used the row format."""
    if "instances" in body and "inputs" in body:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT, "Request can have either 'instances' or 'inputs', not both"
        )
    names = sorted(signature.inputs)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "'instances' must be a non-empty list")
        if all(isinstance(r, dict) and "b64" not in r for r in rows):
            keys = set(rows[0])
            if any(set(r) != keys for r in rows):
                raise RequestError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "Failed to process element: all instances must have the same named inputs",
                )
            columns = {k: [_decode_json_value(r[k]) for r in rows] for k in keys}
        elif len(names) == 1 or (len(names) > 1 and len(set(names) - set(signature.defaults)) == 1):
            # One (required) input: each instance is its value.
            required = sorted(set(names) - set(signature.defaults)) or names
            columns = {required[0]: [_decode_json_value(r) for r in rows]}
        else:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "instances must be objects of named inputs when the signature has several inputs",
            )
        row_format = True
    elif "inputs" in body:
        value = body["inputs"]
        if isinstance(value, dict) and "b64" not in value:
            columns = {k: _decode_json_value(v) for k, v in value.items()}
        else:
            required = sorted(set(names) - set(signature.defaults)) or names
            columns = {required[0]: _decode_json_value(value)}
        row_format = False
    else:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "Missing 'inputs' or 'instances' key")
    for alias in columns:
        if alias not in signature.inputs:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input tensor alias not found in signature: {alias}. Inputs expected to be "
                f"in the set {{{','.join(names)}}}.",
            )
    return {k: _as_array(v, signature.inputs[k]) for k, v in columns.items()}, row_format


def _format_response(outputs, row_format):
    if not row_format:
        if len(outputs) == 1:
            ((alias, value),) = outputs.items()
            return {"outputs": _encode_json_value(value, alias)}
        return {"outputs": {k: _encode_json_value(v, k) for k, v in outputs.items()}}
    sizes = {k: (v.shape[0] if v.ndim else None) for k, v in outputs.items()}
    batch = set(sizes.values())
    if len(batch) != 1 or None in batch:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Batch size of output tensors is not the same for all outputs {sizes}; use the "
            "columnar format ('inputs') for this signature",
        )
    encoded = {k: _encode_json_value(v, k) for k, v in outputs.items()}
    (size,) = batch
    if len(encoded) == 1:
        return {"predictions": next(iter(encoded.values()))}
    return {"predictions": [{k: v[i] for k, v in encoded.items()} for i in range(size)]}


_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
}


def _rest_handler(model):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _send(self, status, body):
            payload = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _route(self, want_predict):
            match = _REST_PATH.match(self.path)
            if not match or bool(match.group(3)) != want_predict:
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {self.command} {self.path}")
            name, version = match.group(1), match.group(2)
            if name != model.name or (version is not None and int(version) != model.version):
                label = f"Specific({name}, {version})" if version else f"Latest({name})"
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {label}")

        def do_GET(self):
            try:
                self._route(want_predict=False)
            except RequestError as error:
                return self._send(_HTTP_STATUS.get(error.code, 500), {"error": error.message})
            self._send(
                200,
                {
                    "model_version_status": [
                        {
                            "version": str(model.version),
                            "state": "AVAILABLE",
                            "status": {"error_code": "OK", "error_message": ""},
                        }
                    ]
                },
            )

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                self._route(want_predict=True)
                try:
                    body = json.loads(raw)
                except ValueError as error:
                    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"JSON Parse error: {error}") from None
                if not isinstance(body, dict):
                    raise RequestError(
                        grpc.StatusCode.INVALID_ARGUMENT, "JSON body must be an object"
                    )
                signature_name = body.get("signature_name") or "serving_default"
                inputs, row_format = _parse_request(body, model.signature(signature_name))
                outputs = model.predict(signature_name, inputs)
                response = _format_response(outputs, row_format)
            except RequestError as error:
                return self._send(_HTTP_STATUS.get(error.code, 500), {"error": error.message})
            self._send(200, response)

    return Handler


class StandInServer:
    """The stand-in's gRPC and REST servers on 127.0.0.1 (free ports unless given)."""

    def __init__(self, model_base_path, model_name="colornet", grpc_port=0, rest_port=0):
        self.model = SessionModel(model_base_path, model_name)
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self.model), self._grpc
        )
        self.grpc_port = self._grpc.add_insecure_port(f"127.0.0.1:{grpc_port}")
        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", rest_port), _rest_handler(self.model))
        self._http.daemon_threads = True
        self.rest_port = self._http.server_address[1]
        self._thread = None

    def start(self):
        self._grpc.start()
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(grace=None)
        self.model.session.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    parser = argparse.ArgumentParser(description="STAND-IN for tensorflow_model_server (tests only)")
    parser.add_argument("--model_name", default="colornet")
    parser.add_argument("--model_base_path", required=True)
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--rest_api_port", type=int, default=8501)
    args = parser.parse_args()
    server = StandInServer(args.model_base_path, args.model_name, args.port, args.rest_api_port).start()
    print(
        f"stand-in (not TF Serving): {args.model_name} version {server.model.version}; "
        f"gRPC 127.0.0.1:{server.grpc_port}, REST 127.0.0.1:{server.rest_port}",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
