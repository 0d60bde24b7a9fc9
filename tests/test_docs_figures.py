"""Measured figures in README and the docstrings come from committed files.

A decimal figure quoted in the pages below (the model card, with how the bundled
model was chosen, the benchmarks, the hints' and the video's figures; README itself
quotes none) must equal, at the precision quoted, a number in a committed file under
docs/results/ (the JSON and text outputs of the commands the README names) or in the
record beside a committed model file; a figure whose raw output was never committed
is withdrawn rather than quoted (issue 24). Configuration values a section quotes
(a learning rate, an EMA momentum, a fraction A or temperature T that was chosen,
not measured) are listed in `SETTINGS` with where they are set.
"""

import glob
import json
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Chosen, not measured: the recipe's and the sweep's settings (README model card).
SETTINGS = {
    "0.999",  # ema and Caffe's batch-norm momentum
    "0.15", "0.35", "0.3", "0.5", "0.6", "0.38", "0.1", "0.2", "0.25", "0.4",  # A and T values of the sweeps
    "2.0",  # a version number, not a measurement
    "0.7", "0.8",  # the hint spread's thresholds tried (docs/hints.md)
}
# A signed figure is a difference of two quoted ones ("+5.01" over grey).
_FIGURE = re.compile(r"(?<![\w.+\-−/])(\d+\.\d+)(?![\w.])")


def _committed_numbers():
    numbers = set()

    def walk(value):
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            numbers.add(float(value))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    # The results, and the records of how committed model files were made.
    records = glob.glob(os.path.join(ROOT, "colornet", "assets", "*.json"))
    for path in glob.glob(os.path.join(ROOT, "docs", "results", "*.json")) + records:
        with open(path) as f:
            walk(json.load(f))
    for path in glob.glob(os.path.join(ROOT, "docs", "results", "*.txt")):
        with open(path) as f:
            numbers.update(float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*\.?\d*", f.read()))
    return numbers


def _unbacked(text, numbers):
    missing = []
    for token in _FIGURE.findall(text):
        if token in SETTINGS:
            continue
        places = len(token.split(".")[1])
        value = float(token)
        # A figure may be quoted as a percentage of a stored fraction, or as is.
        if not any(round(n, places) == value or round(100 * n, places) == value for n in numbers):
            missing.append(token)
    return missing


@pytest.mark.parametrize("page", ["README.md", "docs/model_card.md", "docs/benchmarks.md", "docs/hints.md",
                                  "docs/video.md"])
def test_measured_figures_come_from_committed_files(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        text = f.read()
    missing = _unbacked(text, _committed_numbers())
    assert not missing, f"{page}: figures with no committed source: {missing}"


def test_the_tflite_docstring_quotes_no_measurement():
    from colornet.deploy import tflite

    quoted = set(_FIGURE.findall(tflite.__doc__))
    settings = {f"{p:g}" for p in tflite.AUTO_PERCENTILES} | {"0.38"}  # the percentiles tried; T
    assert quoted <= settings, f"measured figures in colornet/deploy/tflite.py's docstring: {sorted(quoted - settings)}"
