#!/usr/bin/env python3
"""A small client for colornet served by TensorFlow Serving.

Command line:

    python serving/client.py --server localhost:8501 photo.jpg -o photo_color.png
    python serving/client.py --server localhost:8500 --grpc a.jpg b.png --out-dir out/
    python serving/client.py --server localhost:8501 --temperature 0.2 photo.jpg -o out.png

Library:

    import client  # with serving/ on sys.path
    pngs = client.colorize_rest("localhost:8501", [open("photo.jpg", "rb").read()])
    pngs = client.colorize_grpc("localhost:8500", [...])

REST (port 8501) needs only the standard library: it posts base64 JSON in TF
Serving's row format, `{"instances": [{"image_bytes": {"b64": ...}}, ...]}`, to
`/v1/models/<model>:predict` and gets `{"predictions": [{"b64": ...}, ...]}` back.
gRPC (port 8500) needs `tensorflow-serving-api` (colornet's `serving` extra), which
pulls in TensorFlow.
"""

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request

SIGNATURE = "serving_default"
INPUT = "image_bytes"
OUTPUT = "colorized_png_bytes"
DEFAULT_MODEL = "colornet"


class ServingError(Exception):
    """The server refused the request (its message) or could not be reached."""


def _instances(images, temperature):
    rows = []
    for image in images:
        row = {INPUT: {"b64": base64.b64encode(image).decode("ascii")}}
        if temperature is not None:
            # Row format: one value per image (the graph takes a scalar or [batch]).
            row["temperature"] = float(temperature)
        rows.append(row)
    return rows


def colorize_rest(server, images, model=DEFAULT_MODEL, temperature=None, timeout=120.0):
    """Colourises encoded images through TF Serving's REST API.

    Args:
      server: "host:port" of the REST API (TF Serving's --rest_api_port, 8501), or
        a URL starting with http:// or https://.
      images: a list of encoded images (bytes: JPEG, PNG, GIF, BMP or WebP).
      model: the served model's name.
      temperature: annealed-mean temperature; None for the model's default.
      timeout: seconds.

    Returns:
      a list of PNG bytes, one per image, each of its input's size.

    Raises:
      ServingError: with the server's message (e.g. an undecodable image).
    """
    images = [bytes(image) for image in images]
    base = server if server.startswith(("http://", "https://")) else f"http://{server}"
    url = f"{base.rstrip('/')}/v1/models/{model}:predict"
    body = json.dumps({"signature_name": SIGNATURE, "instances": _instances(images, temperature)})
    request = urllib.request.Request(
        url, data=body.encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        try:
            message = json.loads(text)["error"]
        except (ValueError, KeyError, TypeError):
            message = text or error.reason
        raise ServingError(f"HTTP {error.code}: {message}") from None
    except (urllib.error.URLError, OSError) as error:
        raise ServingError(f"cannot reach {url}: {error}") from None
    predictions = reply.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(images):
        raise ServingError(f"unexpected reply from {url}: {str(reply)[:200]}")
    # One named output: each prediction is the value itself (TF Serving's row format).
    return [base64.b64decode(p.get(OUTPUT, p)["b64"]) for p in predictions]


def colorize_grpc(server, images, model=DEFAULT_MODEL, temperature=None, timeout=120.0):
    """Like `colorize_rest`, through TF Serving's gRPC API ("host:port", 8500).

    Needs tensorflow-serving-api (and so TensorFlow and grpcio).
    """
    try:
        import grpc
        from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError:
        raise ServingError(
            "gRPC needs tensorflow-serving-api (pip install tensorflow-serving-api), "
            "or use the REST API"
        ) from None
    images = [bytes(image) for image in images]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = SIGNATURE
    request.inputs[INPUT].CopyFrom(
        tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(images))]
            ),
            string_val=images,
        )
    )
    if temperature is not None:
        # One value per image, like the REST rows: TF Serving's batching (when the
        # server enables it) concatenates every input along its first axis, which a
        # scalar does not have.
        request.inputs["temperature"].CopyFrom(
            tensor_pb2.TensorProto(
                dtype=types_pb2.DT_FLOAT,
                tensor_shape=tensor_shape_pb2.TensorShapeProto(
                    dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(images))]
                ),
                float_val=[float(temperature)] * len(images),
            )
        )
    # Colourised PNGs of large photographs exceed gRPC's default 4 MB message limit.
    options = [("grpc.max_receive_message_length", 1 << 30), ("grpc.max_send_message_length", 1 << 30)]
    with grpc.insecure_channel(server, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ServingError(f"{error.code().name}: {error.details()}") from None
    pngs = list(response.outputs[OUTPUT].string_val)
    if len(pngs) != len(images):
        raise ServingError(f"expected {len(images)} images back, got {len(pngs)}")
    return pngs


def colorize(server, images, grpc=False, **kwargs):
    """`colorize_grpc` if `grpc` else `colorize_rest`."""
    return (colorize_grpc if grpc else colorize_rest)(server, images, **kwargs)


def _output_paths(inputs, out, out_dir):
    if out is not None:
        if len(inputs) != 1:
            raise ServingError("-o/--out takes one input image; use --out-dir for several")
        return [out]
    directory = out_dir or "."
    return [
        os.path.join(directory, os.path.splitext(os.path.basename(p))[0] + "_color.png") for p in inputs
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Colourise images with colornet on TF Serving.")
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, GIF, BMP, WebP)")
    parser.add_argument("--server", default="localhost:8501", help="host:port (REST 8501, gRPC 8500)")
    parser.add_argument("--grpc", action="store_true", help="use gRPC instead of REST")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="served model name")
    parser.add_argument("--temperature", type=float, help="annealed-mean temperature (default: the model's)")
    parser.add_argument("-o", "--out", help="output PNG (one input image)")
    parser.add_argument("--out-dir", help="output folder: NAME_color.png per input (default: .)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds")
    args = parser.parse_args(argv)
    try:
        paths = _output_paths(args.images, args.out, args.out_dir)
        images = []
        for path in args.images:
            with open(path, "rb") as f:
                images.append(f.read())
        pngs = colorize(
            args.server,
            images,
            grpc=args.grpc,
            model=args.model,
            temperature=args.temperature,
            timeout=args.timeout,
        )
        for path, png in zip(paths, pngs):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "wb") as f:
                f.write(png)
            print(f"wrote {path}")
    except (ServingError, OSError) as error:
        print(f"client: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
