"""The documentation site (mkdocs.yml, docs/) builds offline with warnings as errors.

`mkdocs build --strict` fails on a broken link, a missing anchor, a page left out of
the nav and a missing included file (mkdocs.yml's `validation`, snippets'
`check_paths`). The built pages load nothing from elsewhere: no fonts, scripts or
stylesheets from a CDN, so the site reads the same offline.
"""

import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[docs]' (the test extra has it)")

# An element that makes the browser fetch: a stylesheet, a script, a picture, a font.
_REMOTE = re.compile(r"<(?:link|script|img|source|iframe)\b[^>]*\b(?:href|src)=\"(?:https?:)?//[^\"]*\"", re.I)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # Material's banner about MkDocs 2.0
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", "mkdocs.yml", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    return out


def test_the_site_builds_strict(site):
    assert (site / "index.html").is_file()
    pages = {os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))}
    built = {os.path.join("docs", os.path.basename(os.path.dirname(p)) + ".md")
             for p in glob.glob(str(site / "*" / "index.html"))}
    # Every page is built (the nav lists it); index.md is the site's root page.
    assert pages - built == {"docs/index.md"}


def test_the_site_loads_nothing_from_elsewhere(site):
    remote = []
    for path in glob.glob(str(site / "**" / "*.html"), recursive=True):
        with open(path, encoding="utf-8") as f:
            remote += [f"{os.path.relpath(path, site)}: {m.group(0)}" for m in _REMOTE.finditer(f.read())]
    assert not remote, "\n".join(remote)


def test_evidence_pictures_are_in_the_site(site):
    for name in ("learning_curve.png", "prior.png", "video_trail.jpg"):
        assert (site / "results" / name).is_file()
