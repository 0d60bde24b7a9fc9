"""Images per second that the training input pipeline delivers on its own (no model).

Times `colornet.data.train_dataset` (resize to 256, random crop, flip, Lab, ab
subsampling, batching) from an image folder and from TFRecord shards made by
`colornet.data.prepare`. Without --tfrecords the shards are written to a
temporary directory first, and that is timed too.

    python benchmarks/input_pipeline.py --data /work/shared/data/photos --rounds 3

The first --warmup batches (thread pools, autotuning, shuffle buffers) are not
timed. Each run also reports the process's CPU time per image (all threads),
which depends much less than images/s on what else the machine runs. On a
shared machine use --rounds: the two sources are measured alternately and the
medians are reported with every round's figure and the load average.
"""

import argparse
import os
import statistics
import tempfile
import time

import tensorflow as tf

from colornet import data


def measure(source, batch_size, crop, batches, warmup, seed):
    dataset = data.train_dataset(
        source, batch_size, crop=crop, seed=seed, deterministic=False
    )
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(batches):
        l_raw, ab = next(iterator)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    assert l_raw.shape == (batch_size, crop, crop, 1) and ab.shape[-1] == 2
    images = batches * batch_size
    return images / seconds, 1000 * cpu_seconds / images


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="image folder, glob or .txt list")
    parser.add_argument(
        "--tfrecords", help="TFRecord directory from `colornet prepare`"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--crop", type=int, default=176)
    parser.add_argument(
        "--batches", type=int, default=100, help="timed batches per run"
    )
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs")
    parser.add_argument("--shards", type=int, default=8, help="for temporary TFRecords")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs")
    print(
        f"batch {args.batch_size}, crop {args.crop}, {args.batches} timed batches "
        f"after {args.warmup}, {args.rounds} round(s)"
    )
    files = len(data.list_image_files(args.data))
    with tempfile.TemporaryDirectory() as tmp:
        records = args.tfrecords
        if records is None:
            records = os.path.join(tmp, "records")
            summary = data.prepare(args.data, records, shards=args.shards, verbose=0)
            print(
                f"prepare: {summary.images} images, {len(summary.skipped)} skipped, "
                f"{len(summary.shards)} shards in {summary.seconds:.1f} s "
                f"({summary.images / summary.seconds:.0f} images/s)"
            )
        sources = {
            f"folder {args.data} ({files} files)": args.data,
            f"tfrecords {records}": records,
        }
        rates = {name: [] for name in sources}
        costs = {name: [] for name in sources}
        for _ in range(args.rounds):
            for name, source in sources.items():
                rate, cost = measure(
                    source,
                    args.batch_size,
                    args.crop,
                    args.batches,
                    args.warmup,
                    args.seed,
                )
                rates[name].append(rate)
                costs[name].append(cost)
                load = os.getloadavg()[0]
                print(
                    f"  {name.split()[0]}: {rate:.0f} images/s, {cost:.1f} CPU ms/image "
                    f"(load average {load:.1f})",
                    flush=True,
                )
        for name, values in rates.items():
            rounds = ", ".join(f"{v:.0f}" for v in values)
            print(
                f"{name}: median {statistics.median(values):.0f} images/s "
                f"(rounds: {rounds}), {statistics.median(costs[name]):.1f} CPU ms/image"
            )


if __name__ == "__main__":
    main()
