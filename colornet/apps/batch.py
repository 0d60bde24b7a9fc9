"""Colourise files, folders and globs into PNGs: planning, output names, skipping, summary.

`colorize_files(inputs, out_dir)` is what `colornet colorize` runs. Each input file
is read by `colornet.data.read_image` (the one decoder, EXIF orientation applied),
coloured by `colornet.inference.colorize_rgb` with a model from
`colornet.deploy.predictors.load_predictor`, and written atomically as a PNG.
"""

import dataclasses
import os
import sys

import numpy as np
import tensorflow as tf

from colornet import constants as c
from colornet import data, inference
from colornet import hints as hint_maps
from colornet.apps import video
from colornet.deploy import predictors
from colornet.utils import files
from colornet.utils.console import progress_bar
from colornet.utils.errors import ColornetError, first_line


def side_by_side(panels, gap=8):
    """Joins same-height `(H, W, 3)` uint8 images left to right with white gaps."""
    panels = [np.asarray(p) for p in panels]
    height = panels[0].shape[0]
    if any(p.shape[0] != height for p in panels):
        raise ValueError(f"panels must have the same height, got {[p.shape[0] for p in panels]}")
    spacer = np.full((height, gap, 3), 255, np.uint8)
    pieces = []
    for i, panel in enumerate(panels):
        if i:
            pieces.append(spacer)
        pieces.append(panel)
    return np.concatenate(pieces, axis=1)


def write_png(path, rgb):
    """Writes `(H, W, 3)` uint8 as a PNG atomically (a temporary file, then a rename)."""
    encoded = tf.io.encode_png(np.asarray(rgb, np.uint8)).numpy()
    with files.atomic_path(path, ".png") as tmp, open(tmp, "wb") as f:
        f.write(encoded)


def _is_glob(path):
    return any(ch in path for ch in "*?[")


def _glob_root(pattern):
    """The directory part of a glob pattern before its first wildcard."""
    parts = pattern.replace(os.sep, "/").split("/")
    fixed = []
    for part in parts[:-1]:
        if _is_glob(part):
            break
        fixed.append(part)
    if not fixed:
        return "."
    return "/".join(fixed) or "/"


def _is_within(path, directory):
    return os.path.commonpath([path, directory]) == directory


def _list_inputs(argument):
    """The image and video files an argument names (videos: `colornet.apps.video`)."""
    videos = video.list_videos(argument)
    try:
        images = data.list_image_files(argument)
    except ColornetError:
        if not videos:
            raise
        images = []
    return sorted(set(images) | set(videos))


def _output_name(path, rel):
    return video.output_name(rel) if video.is_video_path(path) else os.path.splitext(rel)[0] + ".png"


def _plan_argument(argument, out_real):
    """`[(input path, output path relative to out_dir)]` for one command-line argument."""
    argument = os.fspath(argument)
    paths = _list_inputs(argument)
    if os.path.isdir(argument):
        root = os.path.abspath(argument)
    elif not os.path.exists(argument) and _is_glob(argument):
        root = os.path.abspath(_glob_root(argument))
    else:
        root = None  # a file or a .txt list: base names
    planned = []
    for path in paths:
        if os.path.exists(path) and _is_within(os.path.realpath(path), out_real):
            continue  # an earlier output: never colourise what we wrote
        rel = os.path.relpath(path, root) if root is not None else os.path.basename(path)
        planned.append((path, _output_name(path, rel)))
    return planned


@dataclasses.dataclass(frozen=True)
class ColorizeSummary:
    """What `colorize_files` did.

    Attributes:
      out_dir: the output directory (absolute).
      written: `[(input path, output path)]`.
      failed: `[(input or argument, reason)]`, one line each.
    """

    out_dir: str
    written: list
    failed: list

    def describe_written(self):
        """What was written, counted: "3 images", "1 image and 2 videos"."""
        videos = sum(video.is_video_path(path) for path, _ in self.written)
        images = len(self.written) - videos
        counts = [_count(images, "image")] if images or not videos else []
        return " and ".join(counts + ([_count(videos, "video")] if videos else []))


def _count(number, noun):
    return f"{number} {noun}{'' if number == 1 else 's'}"


# What reading, colouring or writing one file can raise for that file alone: it is
# reported and skipped, the other files are done.
FILE_ERRORS = (ColornetError, OSError, tf.errors.OpError)


def skip_reason(path, error):
    """The one line that says why `path` was skipped (`error`'s first line, without
    the path it may start with)."""
    return first_line(error).removeprefix(f"{path}: ")


def report_skipped(path, reason, progress=None):
    """Prints "colornet: skipped PATH: REASON" on stderr, on a line of its own also
    when `progress` (a `console.ProgressBar`) has a line open."""
    if progress:
        progress.end_line()
    print(f"colornet: skipped {path}: {reason}", file=sys.stderr, flush=True)


def _output_path(out_real, rel):
    target = os.path.normpath(os.path.join(out_real, rel))
    if os.path.isabs(rel) or target == out_real or not _is_within(target, out_real):
        raise ColornetError(f"its output path {rel} would lie outside the output directory")
    parent = os.path.dirname(target)
    # Check what exists before creating anything: a symbolic link inside out_dir
    # must not lead the new folders elsewhere.
    existing = parent
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not _is_within(os.path.realpath(existing), out_real):
        raise ColornetError(f"{existing} leads outside the output directory (a symbolic link)")
    os.makedirs(parent, exist_ok=True)
    if not _is_within(os.path.realpath(parent), out_real):  # a link made in the meantime
        raise ColornetError(f"{parent} leads outside the output directory (a symbolic link)")
    return target


class _HintSource:
    """Hints for `colorize_files`: one JSON file, or a folder of `NAME.json` files."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            self.files = {
                os.path.splitext(name)[0]: os.path.join(self.path, name)
                for name in sorted(os.listdir(self.path))
                if name.lower().endswith(".json")
            }
            self.single = None
        elif os.path.isfile(self.path):
            self.files = None
            self.single = hint_maps.read_hints_file(self.path)
        else:
            raise ColornetError(f"--hints {self.path}: no such file or folder")
        self.chosen = {}

    def match(self, image_paths):
        """Assigns hint files to images; returns `(name, reason)` of what cannot be used."""
        if self.single is not None:
            if len(image_paths) != 1:
                raise ColornetError(
                    f"--hints {self.path}: one hint file is for one image, got {len(image_paths)} image "
                    "inputs; give a folder of NAME.json files, one per image"
                )
            self.chosen[image_paths[0]] = self.single
            return []
        stems = {}
        for path in image_paths:
            stems.setdefault(os.path.splitext(os.path.basename(path))[0], []).append(path)
        problems = []
        for stem, hint_file in self.files.items():
            if stem not in stems:
                problems.append((hint_file, "no image input is named like this hint file"))
                continue
            try:
                given = hint_maps.read_hints_file(hint_file)
            except ColornetError as error:
                given = error
            for path in stems[stem]:
                self.chosen[path] = given
        return problems

    def points(self, path, image_size):
        """The `(N, 5)` hints of one image (None: none); ColornetError for bad ones."""
        given = self.chosen.get(path)
        if isinstance(given, ColornetError):
            raise given
        if given is None:
            return None
        try:
            return hint_maps.parse_hints(given, image_size)
        except ColornetError as error:
            raise ColornetError(f"hints: {error}") from None


def colorize_files(
    inputs,
    out_dir,
    model=None,
    *,
    temperature=c.ANNEALED_MEAN_TEMPERATURE,
    method="annealed-mean",
    size=None,
    compare=False,
    max_pixels=None,
    verbose=1,
    video_options=None,
    hints=None,
):
    """Colourises image files into PNGs under `out_dir`, at each input's resolution.

    Video files (`colornet.apps.video.defaults.VIDEO_EXTENSIONS`) become videos of the same name
    (`.webm` becomes `.mkv`), coloured by `colornet.apps.video.colorize_video` with
    `video_options` (its keyword arguments, checked before any work; `compare`
    applies to images only).

    Each result is `out_dir/<path of the input relative to its argument>.png`: for a
    folder, relative to that folder (searched recursively); for a glob, relative to
    the pattern's directory before its first wildcard; for a file (or a `.txt` list
    of files), the base name. Outputs are written atomically and never outside
    `out_dir`; files already inside `out_dir` are not taken as inputs.

    A file that cannot be read, decoded or written, or an argument that names
    nothing, is reported (one line on stderr when `verbose`) and skipped; the rest
    are done. Two inputs with the same output name: the first is done, the second
    fails.

    Args:
      inputs: a path, folder or glob, or a list of them.
      out_dir: output directory (created if needed).
      model: as for `colorize`.
      temperature, method, size: as for `colorize`.
      compare: write a side-by-side image instead: grey input | colourised |
        original (the last only when the input has colour, `has_color`).
      video_options: keyword arguments of `colorize_video` for video inputs,
        checked (`colornet.apps.video.check_options`) even when no input is a video.
      max_pixels: largest image accepted (default `colornet.constants.MAX_PIXELS`).
      verbose: 1 shows a progress bar and reports failures as they happen.
      hints: for a model that takes hints, a JSON file of hints
        (`colornet.hints.parse_hints`' format) for the one image input, or a folder
        of `NAME.json` files, each for the image input whose file name's stem is
        NAME (images without one are coloured without hints; a file that matches no
        input is reported). Images only. A hint outside its image fails that image.

    Returns:
      a `ColorizeSummary`.

    Raises:
      ColornetError: the model cannot be loaded or `out_dir` is not a directory.
    """
    temperature = inference.validate_decoding(method, temperature)
    # Whether or not an input is a video: a wrong option is wrong before any work.
    video.check_options(model, **(video_options or {}))
    hint_source = _HintSource(hints) if hints is not None else None
    predictor = predictors.load_predictor(model)
    if hint_source is not None and not predictor.takes_hints:
        raise ColornetError(f"--hints: {predictor.source} takes no hints (a model trained with hints does)")
    size = predictors.resolve_size(predictor, size)
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not inputs:
        raise ColornetError("no input given")
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ColornetError(f"{out_dir} exists and is not a directory")
    os.makedirs(out_dir, exist_ok=True)
    out_real = os.path.realpath(out_dir)

    failed = []

    def fail(name, reason, progress=None):
        failed.append((name, reason))
        if verbose:
            report_skipped(name, reason, progress)

    jobs, sources, claimed = [], set(), {}
    for argument in inputs:
        try:
            planned = _plan_argument(argument, out_real)
        except ColornetError as error:
            fail(os.fspath(argument), str(error))
            continue
        for path, rel in planned:
            if path in sources:
                continue
            sources.add(path)
            key = os.path.normcase(os.path.normpath(rel))
            if key in claimed:
                fail(path, f"its output {rel} is already the output of {claimed[key]}")
                continue
            claimed[key] = path
            jobs.append((path, rel))
    if hint_source is not None:
        for problem in hint_source.match([path for path, _ in jobs if not video.is_video_path(path)]):
            fail(*problem)

    colorize_video = None
    if any(video.is_video_path(path) for path, _ in jobs):
        colorize_video = video.VideoJob(
            predictor, temperature=temperature, method=method, size=size, max_pixels=max_pixels,
            verbose=verbose, **(video_options or {}),
        )
    written = []
    with progress_bar(len(jobs), verbose and bool(jobs)) as progress:
        for done, (path, rel) in enumerate(jobs, 1):
            try:
                target = _output_path(out_real, rel)
                if colorize_video and video.is_video_path(path):
                    colorize_video(path, target)
                else:
                    rgb = data.read_image(path, max_pixels)
                    points = hint_source.points(path, rgb.shape[:2]) if hint_source else None
                    result = inference.colorize_rgb(predictor, rgb, size, method, temperature, points).numpy()
                    if compare:
                        panels = [inference.grey_rgb(rgb).numpy(), result]
                        if inference.has_color(rgb):
                            panels.append(rgb)
                        result = side_by_side(panels)
                    write_png(target, result)
                written.append((path, target))
            except FILE_ERRORS as error:
                fail(path, skip_reason(path, error), progress)
            if progress:
                progress.update(done)
    return ColorizeSummary(out_dir=out_dir, written=written, failed=failed)
