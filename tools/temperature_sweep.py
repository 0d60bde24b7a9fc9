"""Val metrics of one model at several annealed-mean temperatures, the network run once.

    python tools/temperature_sweep.py --model colornet/assets/bundled.npz \
        --data val.txt --temperatures 0.2 0.3 0.38 0.5 0.7 1.0 [--images 200] [--json out.json] \
        [--undo-rebalancing 0 0.1 0.2]

The temperature trades vividness for safety (paper Sec. 2.3, Fig. 3): T -> 0 is the
mode (vivid, patchy), T = 1 the mean (smooth, desaturated). The paper's 0.38 was
chosen for its model; a smaller or shorter-trained model may be best elsewhere. Each
image's logits are computed once and kept (float16) for the other temperatures; the
scoring is `colornet.apps.evaluate`'s at native resolution, beside the grey baseline.
`--images N` takes N files evenly spaced through the sorted list (all by default).

`--undo-rebalancing A...` also scores the model with a fraction A of its class
rebalancing undone (`colornet recalibrate --undo-rebalancing A`, which folds
`-A * log(w)` into the logits; w: the rebalancing weights of the prior the model was
trained with, as its config records them, or `--prior`), without
writing a model per value. A network trained with weight w(q) on class q learns
probabilities about w(q) times the class's true posterior, which is what makes it
vivid; A = 1 removes that factor (about the calibrated posterior, whose mean is the
safest guess), A = 0 is the model as trained. A is absolute: for a Keras model that
already has some undone, the difference is applied. The sweep over A traces the trade
between raw AuC and colourfulness a model allows, which tells whether a model misses
the raw target by its vividness or by its accuracy, and chooses the A a model ships with.
"""

import argparse
import hashlib
import sys

import numpy as np
import tensorflow as tf

from colornet import constants as c
from colornet import prior as prior_lib
from colornet.apps import evaluate
from colornet.deploy import predictors


class CachedPredictor(predictors.Predictor):
    """A predictor that remembers each input's logits (float16), keyed by its bytes."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.size = predictor.size
        self.source = predictor.source
        self.cache = {}

    def logits(self, l_small):
        l_small = tf.convert_to_tensor(l_small, tf.float32)
        key = hashlib.sha1(l_small.numpy().tobytes()).hexdigest()
        if key not in self.cache:
            self.cache[key] = tf.cast(self.predictor.logits(l_small), tf.float16)
        return tf.cast(self.cache[key], tf.float32)


class ShiftedPredictor(predictors.Predictor):
    """Another predictor's logits plus a constant per-bin shift."""

    def __init__(self, predictor, shift):
        self.predictor = predictor
        self.size = predictor.size
        self.source = predictor.source
        self.shift = tf.constant(shift, tf.float32)

    def logits(self, l_small):
        return self.predictor.logits(l_small) + self.shift


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="any model colornet loads (default: the bundled one)")
    parser.add_argument("--data", required=True, help="validation images: folder, glob or .txt list")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.2, 0.3, 0.38, 0.5, 0.7, 1.0])
    parser.add_argument("--images", type=int, help="evenly spaced subset of this size (default: all)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--undo-rebalancing",
        type=float,
        nargs="+",
        default=[0.0],
        metavar="A",
        help="score with this fraction of the class rebalancing undone (default: 0 only, as trained)",
    )
    parser.add_argument(
        "--prior",
        help="the prior the model was trained with, for --undo-rebalancing: default, uniform, a prior .npz "
        "or a .npy of 313 bin probabilities (default: the one the model records)",
    )
    args = parser.parse_args(argv)
    from learning_curve import evenly_spaced  # this folder is on sys.path when run as a script

    source = evenly_spaced(args.data, args.images) if args.images else args.data
    loaded = predictors.load_predictor(args.model)
    config = getattr(getattr(loaded, "model", None), "model_config", None)
    already = config.undo_rebalancing if config is not None else 0.0  # 0: SavedModel, TFLite
    recorded = getattr(config, "rebalancing_weights", None)
    if args.prior is not None:
        weights = prior_lib.rebalancing_weights_of(args.prior)
    elif recorded is not None:
        weights = np.asarray(recorded)
    elif any(undo != already for undo in args.undo_rebalancing):
        parser.error("the model records no prior it was trained with: give --prior for --undo-rebalancing")
    else:
        weights = np.ones(c.NUM_BINS)  # nothing to undo
    # What is already undone came out with the recorded weights; A goes in with `weights`.
    already_shift = already * np.log(np.asarray(recorded if recorded is not None else weights))
    predictor = CachedPredictor(loaded)
    log_weights = np.log(weights)
    rows = []
    print(
        f"{'A':>5} {'T':>6} {'AuC rebal':>10} {'(grey)':>8} {'AuC raw':>8} {'(grey)':>8} {'colour/truth':>13}"
    )
    for undo in args.undo_rebalancing:
        shifted = ShiftedPredictor(predictor, already_shift - undo * log_weights)
        for temperature in args.temperatures:
            result = evaluate.evaluate(
                shifted, source, temperature=temperature, resolutions=("native",), verbose=0
            )["native"]
            model, grey = result["model"], result["grey"]
            rows.append(
                {
                    "undo_rebalancing": undo,
                    "temperature": temperature,
                    "images": result["images"],
                    "model": model,
                    "grey": grey,
                }
            )
            print(
                f"{undo:>5.2f} {temperature:>6.2f} {model['auc_rebalanced']:>10.2f} "
                f"{grey['auc_rebalanced']:>8.2f} {model['auc_raw']:>8.2f} {grey['auc_raw']:>8.2f} "
                f"{model['colorfulness_ratio']:>13.3f}",
                flush=True,
            )
    if args.json:
        evaluate.write_json({"model": predictor.source, "data": args.data, "rows": rows}, args.json)


if __name__ == "__main__":
    main(sys.argv[1:])
