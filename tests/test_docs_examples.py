"""Every ```python and ```bash block of README.md and docs/**/*.md runs, on tiny data.

A block that is not meant to run here (a 129 MB download, Docker, several machines,
the project's photo pool) has an HTML comment `<!-- not-run: reason -->` on the line
before its fence (blank lines allowed between), so every skipped block says why. A
fenced block without a language that starts like a command is an error: label it.

The blocks of one file run in order in one temporary folder, so that a later block
finds what an earlier one made (`runs/mine` from the Train block, for Evaluate, Export
and TFLite); run the whole module, not a single block. The folder holds small
generated stand-ins for the names the docs use (`photos/`, `val_photos/`,
`photo.jpg`, `film.mp4`, ...) and links to the repository's `serving/`, `tools/` and
`benchmarks/`. Python blocks get a few arrays the prose assumes (`image`, `frames`,
`rgb_uint8`, `ab`, `logits`: `PYTHON_PRELUDE`). The text of each block is changed only
by `SUBSTITUTIONS` below, each with its reason: smaller networks, batches and step
counts, and no package installs; the commands, options and API calls are the docs'
own. Each block runs in a fresh process under a time limit, so an example that never
ends (a `fit` on an endless dataset without `steps_per_epoch`) fails.

`markdown_blocks` and `docs_files` take any list of files, for a docs site as well.
"""

import dataclasses
import glob
import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from tests.helpers.images import smooth_rgb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 300  # per block; the slowest (training the tiny network) takes well under a minute
RUN_LANGUAGES = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
# Fenced blocks without a language that look like these are code and must be labelled.
_COMMAND_START = re.compile(r"^\s*(colornet|python|pip|import|from|docker)\b", re.MULTILINE)
_NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.*?)\s*-->\s*$")
_FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)\s*$")

# (pattern, replacement, why): the only changes made to a block's text.
SUBSTITUTIONS = (
    (r"--preset (eccv16|half_shortcut|half)\b", "--preset tiny", "the tiny network: seconds, not hours"),
    (r'from_preset\("(eccv16|half_shortcut|half)"\)', 'from_preset("tiny")', "the same, in Python"),
    (r"--steps [0-9]+", "--steps 2", "two optimiser steps show the command works"),
    (r"--batch-size [0-9]+", "--batch-size 2", "a batch the stand-in photos fill"),
    (r"\bbatch_size=[0-9]+", "batch_size=2", "the same, in Python"),
    (r"\bsteps_per_epoch=[0-9]+", "steps_per_epoch=2", "two steps per epoch"),
    (r"\bepochs=[0-9]+", "epochs=1", "one epoch"),
    (r"(python -m )?pip install [^&#\n]*", ": ", "the package and its extras are installed already"),
    (r"^tensorboard .*$", ": ", "TensorBoard serves until stopped"),
)

PYTHON_PRELUDE = """
import numpy as np
_rng = np.random.default_rng(0)
image = _rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)    # a photo
rgb_uint8 = image
frames = [np.roll(image, 2 * i, axis=1) for i in range(3)]    # a few video frames
ab = _rng.uniform(-60, 60, (1, 8, 8, 2)).astype(np.float32)  # (B, H, W, 2)
logits = _rng.normal(size=(1, 8, 8, 313)).astype(np.float32)  # (B, H, W, 313)
"""

# `colornet` is the package of this checkout, whatever the installed console script.
BASH_PRELUDE = f'colornet() {{ "{sys.executable}" -m colornet.cli "$@"; }}\nset -euo pipefail\n'


@dataclasses.dataclass(frozen=True)
class Block:
    path: str  # relative to the repository
    line: int  # of the opening fence, 1-based
    language: str  # as written after the fence
    code: str
    skip_reason: str | None  # from `<!-- not-run: reason -->`, None if it runs

    @property
    def name(self):
        return f"{self.path}:{self.line}"


def markdown_blocks(path, root=ROOT):
    """The fenced blocks of one markdown file, in order."""
    with open(os.path.join(root, path), encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, language = match.groups()
        end = i + 1
        while end < len(lines) and not lines[end].startswith(fence):
            end += 1
        previous = i - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        marker = _NOT_RUN.match(lines[previous].strip()) if previous >= 0 else None
        reason = marker.group(1) if marker else None
        blocks.append(Block(path, i + 1, language.lower(), "\n".join(lines[i + 1 : end]) + "\n", reason))
        i = end + 1
    return blocks


def docs_files(root=ROOT):
    """README.md and every markdown file under docs/, relative to `root`."""
    found = ["README.md"] + sorted(
        os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "docs", "**", "*.md"), recursive=True)
    )
    return [p for p in found if os.path.isfile(os.path.join(root, p))]


def colorizer_docstring_block():
    """The training example of `Colorizer`'s docstring, as a python block."""
    from colornet.models import colorizer

    doc = colorizer.Colorizer.__doc__
    start = doc.index("        model = Colorizer.from_preset")
    example = textwrap.dedent(doc[start : doc.index("\n\n", start)])
    code = "import colornet\nfrom colornet.models import Colorizer\n" + example + "\n"
    return Block("colornet/models/colorizer.py", 0, "python", code, None)


def substituted(code):
    for pattern, replacement, _ in SUBSTITUTIONS:
        code = re.sub(pattern, replacement, code, flags=re.MULTILINE)
    return code


def _all_blocks():
    return [block for path in docs_files() for block in markdown_blocks(path)]


def _runnable(blocks):
    return [b for b in blocks if b.language in RUN_LANGUAGES and b.skip_reason is None]


# ----------------------------------------------------------------------------
# The extractor and the markers.


def test_markers_give_reasons_and_code_blocks_are_labelled():
    blocks = _all_blocks()
    assert len(_runnable(blocks)) >= 8  # the extractor finds the docs' examples
    for block in blocks:
        if block.skip_reason is not None:
            assert block.skip_reason.strip(), f"{block.name}: a not-run marker must say why"
            assert block.language in RUN_LANGUAGES, f"{block.name}: a not-run marker on a block that would not run"
        if not block.language:
            assert not _COMMAND_START.search(block.code), f"{block.name}: label this code block (```bash, ```python)"


def test_the_extractor_reads_fences_markers_and_languages(tmp_path):
    (tmp_path / "doc.md").write_text(
        "text\n\n<!-- not-run: needs a GPU -->\n\n```bash\nnvidia-smi\n```\n\n"
        "```python\nprint(1)\n```\n<!-- a comment -->\n```sh\necho hi\n```\n````\n```\nnested\n````\n"
    )
    blocks = markdown_blocks("doc.md", root=str(tmp_path))
    assert [(b.line, b.language, b.code, b.skip_reason) for b in blocks] == [
        (5, "bash", "nvidia-smi\n", "needs a GPU"),
        (9, "python", "print(1)\n", None),
        (13, "sh", "echo hi\n", None),
        (16, "", "```\nnested\n", None),
    ]
    assert substituted("colornet train --preset half --steps 20000 --batch-size 16") == (
        "colornet train --preset tiny --steps 2 --batch-size 2"
    )


# ----------------------------------------------------------------------------
# Running them.


def _write_stand_ins(folder):
    """Small generated files under the names the docs use."""
    from tests.test_video import moving_frames, write_clip

    def images(name, count, seed):
        os.makedirs(folder / name, exist_ok=True)
        for i in range(count):
            rgb = smooth_rgb(48, 64, seed=seed + i)
            Image.fromarray(rgb).save(folder / name / f"img{i}.{'jpg' if i % 2 else 'png'}")

    images("photos", 6, 0)
    images("val_photos", 4, 10)
    images("my_colour_photos", 3, 20)
    images("old_photos", 2, 30)
    Image.fromarray(smooth_rgb(48, 64, seed=40)).save(folder / "photo.jpg")
    hint = [{"x": 20, "y": 10, "color": "#3a7d2c"}]
    (folder / "photo_hints.json").write_text(json.dumps(hint))
    os.makedirs(folder / "hints", exist_ok=True)
    (folder / "hints" / "img0.json").write_text(json.dumps(hint))
    for name in ("film.mp4", "film.mov"):
        write_clip(str(folder / name), moving_frames(count=4, width=64, height=48), audio=False)
    for name in ("serving", "tools", "benchmarks"):
        os.symlink(os.path.join(ROOT, name), folder / name)


_RAN = set()  # blocks that ran in this session


def _run(block, cwd):
    code = substituted(block.code)
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"}
    if RUN_LANGUAGES[block.language] == "python":
        argv = [sys.executable, "-c", PYTHON_PRELUDE + code]
    else:
        argv = ["bash", "-c", BASH_PRELUDE + code]
    # A session of its own, so that a block that never ends is stopped with everything
    # it started (a server left behind would hold its port for later tests).
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"{block.name}: still running after {TIMEOUT_S} s:\n{code}")
    assert process.returncode == 0, f"{block.name} failed:\n{code}\n--- stderr:\n{stderr[-3000:]}"


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory):
    """One folder per documentation file, with the stand-ins, made on first use."""
    made = {}

    def get(path):
        if path not in made:
            folder = tmp_path_factory.mktemp(re.sub(r"\W", "_", path))
            _write_stand_ins(folder)
            made[path] = folder
        return made[path]

    return get


@pytest.mark.parametrize("block", _runnable(_all_blocks()) + [colorizer_docstring_block()], ids=lambda b: b.name)
@pytest.mark.slow
def test_example_runs(block, workspaces):
    _run(block, workspaces(block.path))
    _RAN.add(block.name)


# A few outputs each file's blocks say they write: {file: [path in its workspace]}.
EXPECTED_OUTPUTS = {
    "README.md": [
        "colornet_demo/index.html", "my_demo/index.html", "out/photo.png", "out/film.mp4", "runs/mine/model.keras",
        "colornet.tflite",
    ],
    "docs/train.md": ["results.json"],
    "docs/deploy.md": ["colornet.tflite", "colornet_int8.tflite", "out.png"],
}


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(EXPECTED_OUTPUTS))
def test_the_examples_write_what_they_say(workspaces, path):
    # After the file's blocks ran (this test comes after them): a few of their outputs.
    blocks = {b.name for b in _runnable(markdown_blocks(path))}
    if not blocks <= _RAN:
        pytest.skip(f"needs every block of {path} to have run first: run the whole module")
    folder = workspaces(path)
    missing = [name for name in EXPECTED_OUTPUTS[path] if not (folder / name).exists()]
    assert not missing, missing
    if path == "docs/deploy.md":
        assert np.asarray(Image.open(folder / "out.png")).shape == (48, 64, 3)
