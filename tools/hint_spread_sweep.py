"""Chooses the hint spread's threshold: `colornet evaluate --hints` figures of one model
at several `hint_spread_threshold` values (and strengths), the network unchanged.

    python tools/hint_spread_sweep.py --data val_tune.txt --images 30 \
        --thresholds 0.5 0.6 0.7 0.8 [--strengths 1.0] [--json out.json]

Each setting rebuilds the model with `colornet.models.as_hint_model` and scores PSNR
with 0, 1 and 10 revealed points, the error at the hinted pixels (10 points), and how
far one counterfactual hint reaches (coverage of its region, leak past it), as
`colornet.apps.evaluate` defines them. `--images N` takes N files evenly spaced
through the list. A higher threshold keeps a hint to the pixels most like the hinted
one: less leak, less reach.
"""

import argparse
import json

from colornet.apps.evaluate import evaluate_hint_spread, evaluate_hints
from colornet.models import as_hint_model
from colornet.models.loading import load_colorizer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a .keras, .npz or workdir (default: the bundled model)")
    parser.add_argument("--data", required=True, help=".txt list of photos (a split you do not report on)")
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8])
    parser.add_argument("--strengths", type=float, nargs="+", default=[1.0])
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    from colornet.deploy.predictors import BUNDLED_MODEL_PATH

    base = load_colorizer(args.model or BUNDLED_MODEL_PATH)
    with open(args.data) as f:
        paths = [line.strip() for line in f if line.strip()]
    step = max(len(paths) // args.images, 1)
    subset = paths[::step][: args.images]
    rows = []
    print("strength  threshold  PSNR 0  PSNR 1  PSNR 10  error 10 (ab)  coverage  leak")
    for strength in args.strengths:
        for threshold in args.thresholds:
            model = as_hint_model(base, hint_spread=strength, hint_spread_threshold=threshold)
            points = evaluate_hints(model, subset, points=(0, 1, 10), verbose=0)["points"]
            spread = evaluate_hint_spread(model, subset, verbose=0)
            row = {
                "strength": strength,
                "threshold": threshold,
                "psnr_db": {n: points[n]["psnr_db"] for n in points},
                "hint_error_ab_10": points["10"]["hint_error_ab"],
                "coverage": spread["coverage"],
                "leak": spread["leak"],
            }
            rows.append(row)
            psnr = row["psnr_db"]
            print(f"{strength:<9} {threshold:<10} {psnr['0']:<7.2f} {psnr['1']:<7.2f} {psnr['10']:<8.2f} "
                  f"{row['hint_error_ab_10']:<14.2f} {row['coverage']:<9.3f} {row['leak']:.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model or "bundled", "data": args.data, "images": len(subset), "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
