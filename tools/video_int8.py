"""Makes the bundled model's int8 LiteRT form, the network video runs on CPUs without
AMX (`colornet.apps.video.load_video_predictor`, precision "int8" and "auto").

    python tools/video_int8.py --data ../shared/data

The network is the bundled model without its hint inputs (`without_hints`: frames
take no hints), converted by `colornet.deploy.tflite.convert(quantize="int8")` with
its calibration on 100 photographs of the data's suggested train split (evenly
spaced in its manifest's sorted paths; the head and the decoding stay float32, see
that module). Its mean ab error against the float32 network is measured on 100 of
the val split, chosen alike (at the network's output, 64 x 64, as
`benchmarks/video.py --network` measures it) and written with the source's SHA-256
beside the file (`<out>.json`), so that a stale file is noticed (tests/test_video.py).
Both are made beside the target first and replace it only when the error is under
`ERROR_BOUND`; otherwise the committed pair stays as it was.
The photographs stay outside the repository (../shared/data); what they made is
committed.
"""

import argparse
import csv
import datetime
import hashlib
import json
import os

import numpy as np

from colornet import data, inference
from colornet.deploy import predictors, tflite
from colornet.models.colorizer import without_hints

ERROR_BOUND = 1.0  # ab units, the mean error against float32 the int8 form must stay under


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def ab_error(int8_path, keras_model, photos, limit):
    """Mean and 99th percentile of |ab int8 - ab float32| at 64 x 64 on `photos`."""
    images, _ = data.decoded_images(photos, resize=256)
    l_small = np.concatenate([
        tflite.l_for_network(image, 256).numpy() for image in images.take(limit).as_numpy_iterator()
    ])
    reference = predictors.KerasPredictor(keras_model)
    int8 = predictors.TFLitePredictor(int8_path, num_threads=os.cpu_count())
    errors = []
    for start in range(0, len(l_small), 8):
        batch = l_small[start : start + 8]
        ab = [inference.decode_logits(p.logits(batch)).numpy() for p in (reference, int8)]
        errors.append(np.linalg.norm(ab[0] - ab[1], axis=-1).ravel())
    errors = np.concatenate(errors)
    return {"mean": float(errors.mean()), "p99": float(np.percentile(errors, 99)), "photos": len(l_small)}


def spread(data_dir, split, count):
    """`count` paths of a split, evenly spaced in the manifest's sorted paths."""
    with open(os.path.join(data_dir, "manifests", "all_images.csv")) as f:
        paths = sorted(row["path"] for row in csv.DictReader(f) if row["suggested_split"] == split)
    return [os.path.join(data_dir, path) for path in paths[:: max(len(paths) // count, 1)][:count]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="folder with manifests/all_images.csv")
    parser.add_argument("--images", type=int, default=100, help="calibration and check photographs, each")
    parser.add_argument("--out", default=predictors.BUNDLED_INT8_PATH)
    args = parser.parse_args()
    network = without_hints(predictors.load_predictor(None).model)
    # Made and checked beside the target, which changes only once the new file passes.
    staged = args.out + ".new"
    try:
        photos = spread(args.data, "train", args.images)
        result = tflite.convert(network, staged, quantize="int8", representative=photos, calibration_images=args.images)
        error = ab_error(staged, network, spread(args.data, "val", args.images), args.images)
        if error["mean"] >= ERROR_BOUND:
            raise SystemExit(f"mean ab error {error['mean']:.3f} is not under {ERROR_BOUND}: {args.out} left as it was")
        record = {
            "source": os.path.basename(predictors.BUNDLED_MODEL_PATH),
            "source_sha256": sha256(predictors.BUNDLED_MODEL_PATH),
            "tflite_sha256": sha256(staged),
            "made": datetime.date.today().isoformat(),
            "command": f"python tools/video_int8.py --data {args.data} --images {args.images}",
            "calibration_images": result.calibration_images,
            "calibration_percentile": result.calibration_percentile,
            "ab_error_vs_float32": error,
        }
        with open(staged + ".json", "w") as f:
            json.dump(record, f, indent=1)
        os.replace(staged, args.out)
        os.replace(staged + ".json", args.out + ".json")
    finally:
        for path in (staged, staged + ".json"):
            if os.path.exists(path):
                os.remove(path)
    print(json.dumps(record, indent=1))

if __name__ == "__main__":
    main()
