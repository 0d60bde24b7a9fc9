"""The hint figures of docs/hints.md: PSNR against revealed points, and a photo
coloured automatically and with three hints.

    python tools/hint_figures.py --scores docs/results/hints_bundled_val_report.json \
        --curve docs/results/hints_psnr.png --picture docs/hints_example.jpg

The curve is drawn from `colornet evaluate --hints --json` output (the bundled model's
beside grey's, dashed). The picture uses scikit-image's astronaut photograph (NASA,
public domain), which `colornet demo` ships too: the grey input, the bundled model's
automatic colours, and the same with the three hints of `HINTS` (an orange suit, a blue
flag, a blue badge), each marked by a dot of its colour.
"""

import argparse
import json

import numpy as np
from PIL import Image, ImageDraw

HINTS = [
    {"x": 100, "y": 380, "color": "#e8642a"},  # the suit
    {"x": 30, "y": 60, "color": "#2a3d8f"},  # the flag's canton
    {"x": 170, "y": 385, "color": "#3d4fb0"},  # the mission badge
]


def curve(scores_path, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(scores_path) as f:
        scores = json.load(f)["points"]
    counts = [int(n) for n in scores["points"]]
    psnr = [scores["points"][str(n)]["psnr_db"] for n in counts]
    figure, axis = plt.subplots(figsize=(5, 3.4), dpi=120)
    axis.plot(counts, psnr, "o-", label="bundled model")
    axis.axhline(scores["grey"]["psnr_db"], linestyle="--", color="grey", label="grey (no colour)")
    axis.set_xscale("symlog", linthresh=1)
    axis.set_xticks(counts, [str(n) for n in counts])
    axis.set_xlabel("points revealed from the true colours")
    axis.set_ylabel("PSNR (dB)")
    axis.set_title(f"{scores['images']} val photos, 256 x 256", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out)


def picture(out):
    import skimage.data

    import colornet
    from colornet import color

    rgb = skimage.data.astronaut()
    grey = np.repeat(np.round(color.rgb_to_lab(rgb).numpy()[..., :1] * 2.55).clip(0, 255).astype(np.uint8), 3, -1)
    automatic = colornet.colorize(rgb)
    hinted = Image.fromarray(colornet.colorize(rgb, hints=HINTS))
    draw = ImageDraw.Draw(hinted)
    for hint in HINTS:
        x, y = hint["x"], hint["y"]
        draw.ellipse([x - 7, y - 7, x + 7, y + 7], fill=hint["color"], outline="white", width=2)
    panels = [grey, automatic, np.asarray(hinted)]
    Image.fromarray(np.concatenate(panels, 1)).resize((1152, 384), Image.Resampling.LANCZOS).save(out, quality=88)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scores", required=True, help="colornet evaluate --hints --json output")
    parser.add_argument("--curve", required=True, help="PSNR curve (.png)")
    parser.add_argument("--picture", required=True, help="the example photo (.jpg)")
    args = parser.parse_args()
    curve(args.scores, args.curve)
    picture(args.picture)


if __name__ == "__main__":
    main()
