"""Copies README.md's sections, verbatim, into the pages of the documentation site.

    python tools/readme_to_docs.py            # writes the pages listed in PAGES under docs/
    python tools/readme_to_docs.py --check    # exit 1 if a page differs from what README gives

A step of issue 25, for the time between the site's arrival and README's shortening:
while README still holds the long sections, the guide pages are made from them by this
script, so an edit to a README section made on another branch is carried into its page
by running the script again after the merge. Once README is shortened (its short form
is `docs/README.short.md`), the pages are the text to edit and this script is deleted.

What is changed in the copied text, and nothing else:
* headings move up a level or two (a README `### Video` becomes the page's `# Video`);
* links and pictures point where the page is: `docs/X` becomes `X`, `docs/results/X`
  becomes `results/X`, `serving/README.md` becomes `serving.md` (the site page that
  includes it), and `#anchor` becomes `PAGE.md#anchor` when the heading is on another page;
* a code block that README does not yet mark `<!-- not-run: reason -->` but whose
  reason is known (`NOT_RUN`, the markers of the README-examples test) gets its marker.

Every section of README must be on exactly one page (checked), so that nothing that
leaves README is missing from the site.
"""

import argparse
import os
import re
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# page file (under docs/) -> (title of a new h1 or None, [(README heading, level on the page)]).
# "" is README's text before its first "##" heading (the title and the introduction).
PAGES = {
    "index.md": (None, [("", None)]),
    "colorize.md": ("Colourise photos", [("Quickstart", None)]),
    "video.md": (None, [("Video", 1)]),
    "train.md": (None, [("Train", 1), ("Network presets", 2), ("Multi-worker and TPU", 2), ("Evaluate", 2)]),
    "deploy.md": (
        "Deploy: SavedModel, TF Serving, TFLite",
        [("Export for TensorFlow Serving", 2), ("TFLite for phones", 2)],
    ),
    "pretrained.md": (None, [("Use the authors' released model", 1)]),
    "method.md": (
        "The method",
        [("The method's pieces", 2), ("Why not tensorflow-io", 3), ("The class-rebalancing prior", 2),
         ("Design decisions", 2)],
    ),
    "model_card.md": (None, [("Model card: the bundled model", 1), ("How the bundled model was chosen (issue 13)", 2)]),
    "benchmarks.md": (None, [("Benchmarks", 1)]),
    "robustness_summary.md": (None, [("Robustness", 1)]),
}

# Text a page gets after its h1, before the copied sections (the page's own, not README's).
INTROS = {
    "deploy.md": (
        "The examples use `runs/mine`, a model trained as in [Train](train.md). To follow\n"
        "them at once, train the tiny test network for a few steps first:\n"
        "\n"
        "```bash\n"
        "colornet train --data photos/ --workdir runs/mine --preset tiny --steps 20 --batch-size 4\n"
        "```\n"
        "\n"
        "Request examples for TF Serving (REST and gRPC), the signatures and the client:\n"
        "[Serving in detail](serving.md).\n"
    ),
}

# Text added at the end of a page.
OUTROS = {
    "index.md": (
        "## What is inside\n"
        "\n"
        "| page | what |\n"
        "|---|---|\n"
        "| [Colourise photos](colorize.md) | `colornet colorize` and `colornet.colorize`: files, formats, errors |\n"
        "| [Video](video.md) | videos with temporal smoothing, and how its defaults were chosen |\n"
        "| [Train](train.md) | `colornet train`, presets, several machines and TPUs, `colornet evaluate` |\n"
        "| [Fine-tune](finetune.md) | the authors' model trained further on your own photos |\n"
        "| [Deploy](deploy.md) | SavedModel for TensorFlow Serving, TFLite for phones ([in detail](serving.md)) |\n"
        "| [Released models](pretrained.md) | the authors' ImageNet models by name: download, checks, cache |\n"
        "| [Hints](hints.md) | colours you impose at points, and colour suggestions |\n"
        "| [The method](method.md) | colour space, bins, soft-encoding, decoding, the loss, the prior |\n"
        "| [Model card](model_card.md) | the bundled model: data, training, scores, failure modes |\n"
        "| [Benchmarks](benchmarks.md) | speed of training, soft-encoding and deployment formats |\n"
        "| [Robustness](robustness_summary.md) | bad inputs and faults, [every case](robustness.md) |\n"
        "| [Architecture](architecture.md) | the modules, the direction of imports, a request's path |\n"
        "| [API](api.md) | the public Python names |\n"
    ),
}

# Reasons of the README-examples test's `<!-- not-run: reason -->` markers for blocks
# README does not mark yet, recognised by a piece of their code. A block README marks
# keeps README's marker; once README carries them all this table changes nothing.
NOT_RUN = (
    ("pip install -e . && colornet demo",
     "installs the package and runs the whole test suite (about 18 minutes on 2 cores); CI runs it"),
    ("--model eccv16_imagenet\n", "downloads the authors' 129 MB model"),
    ("# on each of N machines", "needs several machines and a gs:// bucket"),
    ("docker run", "needs Docker and the TF Serving image, which cannot be installed here (tested against a "
     "stand-in below)"),
    ("colornet import-official", "needs the authors' 129 MB release file"),
    ("--plot docs/results/prior.png",
     "needs the project's photo pool (not in this repository) and rewrites the shipped prior"),
    ("--workdir runs/hs-5500", "needs the project's photo pool (not in this repository) and about 4 hours of training"),
    ("xargs colornet demo", "needs the project's photo pool (not in this repository)"),
    ("--workdir runs/half_uniform",
     "needs the project's photo pool (not in this repository) and 900 steps of training"),
)

_HEADING = re.compile(r"^(#{1,6}) (.*)$")
_FENCE = re.compile(r"^(```+|~~~+)")
_NOT_RUN_MARK = re.compile(r"^<!--\s*not-run:")
_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def slug(text):
    """The anchor Python-Markdown's toc extension (and GitHub, for these headings) gives."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def sections(text):
    """README as `[(heading text, level, [lines])]`; the part before the first "##"
    heading is `("", 0, lines)`. Lines inside code fences are never headings."""
    found = [("", 0, [])]
    fence = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if match:
            fence = None if fence and line.startswith(fence) else fence or match.group(1)
        heading = _HEADING.match(line) if fence is None else None
        if heading and len(heading.group(1)) >= 2:
            found.append((heading.group(2).strip(), len(heading.group(1)), []))
        else:
            found[-1][2].append(line)
    return found


def _fix_link(target, page, anchors):
    if target.startswith("#"):
        where = anchors.get(target[1:])
        return target if where in (None, page) else where + target
    path, _, anchor = target.partition("#")
    if path == "serving/README.md":
        path = "serving.md"
    elif path.startswith("docs/"):
        path = path[len("docs/") :]
    return path + ("#" + anchor if anchor else "")


def _mark_blocks(lines):
    out = []
    fence = None
    for i, line in enumerate(lines):
        match = _FENCE.match(line)
        if match and fence is None:
            fence = match.group(1)
            previous = next((p for p in reversed(out) if p.strip()), "")
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith(fence)), len(lines))
            code = "\n".join(lines[i + 1 : end]) + "\n"
            if not _NOT_RUN_MARK.match(previous.strip()):
                for piece, reason in NOT_RUN:
                    if piece in code:
                        out.append(f"<!-- not-run: {reason} -->")
                        break
        elif match and line.startswith(fence):
            fence = None
        out.append(line)
    return out


def pages(readme):
    parts = sections(readme)
    placed = {}
    for page, (_, wanted) in PAGES.items():
        for heading, _ in wanted:
            if heading in placed:
                raise SystemExit(f"README section {heading!r} is on two pages")
            placed[heading] = page
    missing = [heading for heading, _, _ in parts if heading not in placed]
    if missing:
        raise SystemExit(f"README sections on no page (add them to PAGES): {missing}")
    unknown = set(placed) - {heading for heading, _, _ in parts}
    if unknown:
        raise SystemExit(f"PAGES names sections README does not have: {sorted(unknown)}")
    anchors = {slug(heading): placed[heading] for heading, _, _ in parts if heading}
    by_heading = {heading: (level, lines) for heading, level, lines in parts}

    result = {}
    for page, (title, wanted) in PAGES.items():
        out = []
        if title:
            out += [f"# {title}", ""]
        if page in INTROS:
            out += INTROS[page].splitlines() + [""]
        for heading, level in wanted:
            _, lines = by_heading[heading]
            if heading and level:
                out.append("#" * level + " " + heading)
            while out and not out[-1].strip() and lines and not lines[0].strip():
                lines = lines[1:]  # one blank line where a heading was left out
            out += lines
        if page in OUTROS:
            while out and not out[-1].strip():
                out.pop()
            out += [""] + OUTROS[page].splitlines()
        text = "\n".join(_mark_blocks(out)).strip("\n") + "\n"
        def fix(match, page=page):
            return match.group(1) + _fix_link(match.group(2), page, anchors) + match.group(3)

        result[page] = _LINK.sub(fix, text)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a page is out of date")
    args = parser.parse_args(argv)
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        made = pages(f.read())
    stale = []
    for page, text in made.items():
        path = os.path.join(ROOT, "docs", page)
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if old == text:
            continue
        stale.append(page)
        if not args.check:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    verb = "out of date" if args.check else "written"
    print(f"{len(stale)} of {len(made)} pages {verb}" + (f": {', '.join(stale)}" if stale else ""))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
