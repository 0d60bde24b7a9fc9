"""Wall time of `colornet.colorize` on one photo: what a user of the library waits for.

    python benchmarks/colorize_photo.py [--model colornet/assets/...npz] [--side 512] [--runs 10]

The photo is scikit-image's astronaut resized to `--side` x `--side` (a real photo,
so decoding does the work it does on real input); the model is loaded once, then
`colornet.colorize(rgb, model=predictor)` is timed `--runs` times after `--warmup`
untimed calls. It includes everything after loading: L extraction, resizing to the
network's 256 x 256, the network, annealed-mean decoding, ab upsampling to the
photo's size, Lab -> RGB. Prints the CPU model, the median and minimum wall time and
the process CPU seconds per call (all threads).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
import skimage.transform  # noqa: E402
from video import cpu_name  # noqa: E402  (this folder is on sys.path when run as a script)

import colornet  # noqa: E402
from colornet.deploy import predictors  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model path or pretrained name (default: the bundled model)")
    parser.add_argument("--side", type=int, default=512, help="photo side, pixels")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    photo = skimage.transform.resize(skimage.data.astronaut(), (args.side, args.side), anti_aliasing=True)
    rgb = np.round(photo * 255).astype(np.uint8)
    predictor = predictors.load_predictor(args.model)
    for _ in range(args.warmup):
        colornet.colorize(rgb, model=predictor)
    walls, cpus = [], []
    for _ in range(args.runs):
        wall, cpu = time.perf_counter(), time.process_time()
        out = colornet.colorize(rgb, model=predictor)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    assert out.shape == rgb.shape
    print(f"CPU: {cpu_name()}")
    print(f"model: {predictor.source}")
    print(
        f"{args.side} x {args.side} photo, {args.runs} runs: median {statistics.median(walls):.3f} s, "
        f"min {min(walls):.3f} s wall; {statistics.median(cpus):.3f} CPU s per call"
    )


if __name__ == "__main__":
    main()
