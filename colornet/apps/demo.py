"""`colornet demo`: colourise a few sample photographs that ship with scikit-image,
or colour photographs of your own, and show them beside their originals.

The sample photos are scikit-image's bundled public-domain and CC0 samples
(installed with the package, read without any download). Given photos instead
(files, folders, globs, `.txt` lists: at most `MAX_OWN_PHOTOS`), those are used.
Each is decolourised (only its L is used), coloured with the bundled model at its
own resolution, and written as `<name>.png`; `grid.png` shows grey | colourised |
original, one photo per row, and `index.html` shows it all with the photos'
credits. An unreadable photo of one's own is reported and left out.
"""

import dataclasses
import html
import os

import numpy as np
import tensorflow as tf

from colornet import constants as c
from colornet import data, inference
from colornet.apps import batch
from colornet.apps.defaults import DEFAULT_OUT_DIR, MAX_OWN_PHOTOS
from colornet.deploy import predictors
from colornet.utils.errors import ColornetError

GRID_ROW_HEIGHT = 256  # pixels per row of the grid; each photo is scaled to it

# (function in skimage.data, title, credit and licence as scikit-image gives them)
PHOTOS = (
    ("astronaut", "Astronaut Eileen Collins", "NASA; public domain"),
    ("coffee", "A cup of coffee", "Rachel Michetti; CC0"),
    ("chelsea", "Chelsea the cat", "Stefan van der Walt; CC0"),
    ("rocket", "Falcon 9 carrying DSCOVR at launch", "SpaceX; public domain"),
)


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What `run_demo` wrote: the directory, the grid, the page and each colourised photo."""

    out_dir: str
    grid: str
    index: str
    images: list
    skipped: list = dataclasses.field(default_factory=list)  # [(path, reason)] of one's own photos


def sample_photos():
    """`[(name, title, credit, (H, W, 3) uint8)]` from scikit-image's bundled samples.

    Raises:
      ColornetError: scikit-image is not installed.
    """
    try:
        from skimage import data as skdata
    except ImportError:
        raise ColornetError(
            "the demo's photos come with scikit-image, which is not installed: pip install scikit-image"
        ) from None
    photos = []
    for name, title, credit in PHOTOS:
        image = np.asarray(getattr(skdata, name)())
        photos.append((name, title, credit, data.as_rgb(image)))
    return photos


def own_photos(sources, max_pixels=None, verbose=1):
    """`([(name, title, credit, (H, W, 3) uint8)], [(path, reason)])` of the photos
    `sources` names (as `colornet.data.list_image_files` takes them), in sorted
    order: those that could be read, and those that could not.

    Raises:
      ColornetError: `sources` names nothing, more than `MAX_OWN_PHOTOS` photos, or
        no readable one.
    """
    paths = data.list_image_files(sources)
    if len(paths) > MAX_OWN_PHOTOS:
        raise ColornetError(
            f"{len(paths)} photos given; the demo shows at most {MAX_OWN_PHOTOS} "
            "(colornet colorize --compare does any number)"
        )
    photos, skipped, names = [], [], set()
    for path in paths:
        try:
            rgb = data.read_image(path, max_pixels)
        except batch.FILE_ERRORS as error:
            skipped.append((path, batch.skip_reason(path, error)))
            if verbose:
                batch.report_skipped(*skipped[-1])
            continue
        stem = name = os.path.splitext(os.path.basename(path))[0]
        number = 1
        while name in names:  # photos of one name in different folders: x, x-2, x-3
            number += 1
            name = f"{stem}-{number}"
        names.add(name)
        photos.append((name, os.path.basename(path), "your own", rgb))
    if not photos:
        raise ColornetError("none of the photos given could be read")
    return photos, skipped


def _resize_height(rgb, height):
    width = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
    resized = tf.image.resize(rgb, (height, width), method="bilinear", antialias=True)
    return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8).numpy()


def grid(rows, row_height=GRID_ROW_HEIGHT, gap=8):
    """Stacks rows of panels (`[[(H, W, 3) uint8, ...], ...]`), each row scaled to
    `row_height`, on a white background."""
    strips = [
        batch.side_by_side([_resize_height(panel, row_height) for panel in row], gap)
        for row in rows
    ]
    width = max(strip.shape[1] for strip in strips)
    height = len(strips) * row_height + (len(strips) - 1) * gap
    canvas = np.full((height, width, 3), 255, np.uint8)
    for i, strip in enumerate(strips):
        top = i * (row_height + gap)
        canvas[top : top + row_height, : strip.shape[1]] = strip
    return canvas


def _page(photos, temperature, model_name, credits):
    items = "\n".join(
        f'<figure><img src="{html.escape(name)}.png" alt="{html.escape(title)}, colourised">'
        f"<figcaption>{html.escape(title)} (photo: {html.escape(credit)})</figcaption></figure>"
        for name, title, credit, _ in photos
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>colornet demo</title>
<style>
body {{ font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; }}
img {{ max-width: 100%; }}
figure {{ display: inline-block; width: 45%; margin: 1em 2%; vertical-align: top; }}
</style>
</head>
<body>
<h1>colornet demo</h1>
<p>Each photo was turned to grey (only its lightness L was kept) and coloured by
{html.escape(model_name)} (Zhang, Isola, Efros, "Colorful Image Colorization", ECCV 2016;
annealed mean, T = {temperature:g}). Rows: grey input | colourised | original.</p>
<p><img src="grid.png" alt="grey input, colourised and original, one photo per row"></p>
<h2>Colourised at full resolution</h2>
{items}
<p>Photos: {html.escape(credits)}</p>
</body>
</html>
"""


def run_demo(
    out_dir=DEFAULT_OUT_DIR, model=None, temperature=c.ANNEALED_MEAN_TEMPERATURE, verbose=1, photos=None
):
    """Colourises the sample photos, or `photos`, into `out_dir` (see the module docstring).

    Args:
      out_dir: output directory (created if needed); existing demo files are replaced.
      model: None for the bundled model, or anything `predictors.load_predictor` takes.
      temperature: annealed-mean temperature.
      verbose: 1 prints each photo as it is done.
      photos: None for scikit-image's samples, or colour photos of one's own: files,
        folders, globs or `.txt` lists, at most `MAX_OWN_PHOTOS` in all.

    Returns:
      a `DemoResult`.

    Raises:
      ColornetError: the model cannot be loaded, scikit-image is missing, or
        `photos` holds too many or no readable photo.
    """
    temperature = inference.validate_decoding("annealed-mean", temperature)
    predictor = predictors.load_predictor(model)
    size = predictors.resolve_size(predictor)
    if photos is None:
        photos, skipped = sample_photos(), []
        credits = "scikit-image's sample data (public domain or CC0)."
    else:
        photos, skipped = own_photos(photos, verbose=verbose)
        credits = "your own."
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ColornetError(f"{out_dir} exists and is not a directory")
    os.makedirs(out_dir, exist_ok=True)
    rows, written = [], []
    for name, _, _, rgb in photos:
        coloured = inference.colorize_rgb(
            predictor, rgb, size, "annealed-mean", temperature
        ).numpy()
        path = os.path.join(out_dir, f"{name}.png")
        batch.write_png(path, coloured)
        written.append(path)
        rows.append([inference.grey_rgb(rgb).numpy(), coloured, rgb])
        if verbose:
            print(f"colourised {name} ({rgb.shape[1]}x{rgb.shape[0]})", flush=True)
    grid_path = os.path.join(out_dir, "grid.png")
    batch.write_png(grid_path, grid(rows))
    model_name = "the bundled model" if model is None else f"the model {predictor.source}"
    index_path = os.path.join(out_dir, "index.html")
    _write_text(index_path, _page(photos, temperature, model_name, credits))
    return DemoResult(out_dir=out_dir, grid=grid_path, index=index_path, images=written, skipped=skipped)


def _write_text(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
