"""Makes a model take hints with no training: `colornet.models.as_hint_model`.

    python tools/hint_model.py --model MODEL.npz --out OUT.npz [--undo-rebalancing A]

The weights are kept; the 2017 hint inputs are added with their convolutions at zero
and the feature-affinity spread (`colornet.layers.HintSpread`) with the defaults of
`ModelConfig`, so that without hints the model colours exactly as before (up to
`--undo-rebalancing`, which sets the fraction A of the class rebalancing taken out
of the logits, as `colornet recalibrate --undo-rebalancing` does, without touching
the batch-norm statistics). This is how the bundled model became a hint model
(docs/hints.md); written as a compact float16 `.npz` file.
"""

import argparse

from colornet.models import as_hint_model
from colornet.models.loading import load_colorizer, save_compact
from colornet.training import recalibrate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help=".keras file, compact .npz or training workdir")
    parser.add_argument("--out", required=True, help="output compact .npz file")
    parser.add_argument("--undo-rebalancing", type=float, help="A in [0, 1] (default: keep the model's)")
    args = parser.parse_args()
    model = load_colorizer(args.model)
    if args.undo_rebalancing is not None:
        recalibrate.undo_rebalancing(model, args.undo_rebalancing)
    hinted = as_hint_model(model)
    save_compact(hinted, args.out)
    config = hinted.model_config
    print(f"{args.out}: hints on, spread {config.hint_spread:g}, A = {config.undo_rebalancing:g}")


if __name__ == "__main__":
    main()
