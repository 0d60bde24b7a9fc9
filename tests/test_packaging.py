"""The distribution: a wheel and an sdist that build, pass `twine check`, carry the
bundled model and the web page, and a wheel that installs into a fresh environment
and runs `colornet demo` from there (not from this checkout)."""

import os
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    # A copy of the checkout: a build writes build/ and an .egg-info beside setup.py.
    source = tmp_path_factory.mktemp("source") / "colornet"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "site", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    # No isolation: the build uses the installed setuptools, so nothing is downloaded.
    run = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist", "--outdir", str(out), str(source)],
        capture_output=True, text=True, timeout=600, cwd=str(out),
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    wheels = list(out.glob("*.whl"))
    sdists = list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, os.listdir(out)
    return wheels[0], sdists[0]


def _version():
    from colornet.version import __version__

    return __version__


def test_names_and_version_come_from_one_place(dist):
    wheel, sdist = dist
    # The distribution is colornet-keras (colornet on PyPI is another project's); the
    # version is colornet/version.py's.
    assert wheel.name.startswith(f"colornet_keras-{_version()}-")
    assert sdist.name == f"colornet_keras-{_version()}.tar.gz"


def test_twine_check_passes(dist):
    pytest.importorskip("twine")
    run = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_files_users_need_are_inside(dist):
    wheel, sdist = dist
    with zipfile.ZipFile(wheel) as f:
        names = set(f.namelist())
    for needed in ("colornet/assets/bundled.npz", "colornet/assets/prior.npz", "colornet/web/static/index.html",
                   "colornet/cli/__main__.py", "colornet/apps/video/defaults.py"):
        assert needed in names, needed
    assert not any(name.startswith("tests/") for name in names)
    with tarfile.open(sdist) as f:
        inside = {name.split("/", 1)[1] for name in f.getnames() if "/" in name}
    assert {"colornet/assets/bundled.npz", "setup.py", "README.md"} <= inside


def test_the_wheel_installs_and_runs_the_demo_in_a_fresh_environment(dist, tmp_path):
    wheel, _ = dist
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # The heavy dependencies (TensorFlow, ...) come from this Python's site-packages, so
    # the test downloads nothing. They are put on the path by a plain .pth line, which
    # (unlike --system-site-packages) does not run that directory's own .pth files: the
    # editable install of this checkout stays out, and colornet comes only from the wheel.
    venv_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(venv_site, "_host_site_packages.pth"), "w") as f:
        f.write("\n".join(site.getsitepackages()) + "\n")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                             capture_output=True, text=True, timeout=300, cwd=work, env=env)
    assert install.returncode == 0, install.stdout + install.stderr
    where = subprocess.run([str(python), "-c", "import colornet; print(colornet.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    demo = subprocess.run([str(venv / "bin" / "colornet"), "demo", "-o", "demo"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    pictures = [name for name in os.listdir(work / "demo") if name.endswith((".png", ".jpg"))]
    assert (work / "demo" / "index.html").is_file() and pictures
