"""One way to expose public names (`colornet.utils.exports`), used by the facade and
every package that re-exports; and the command line's help loads no TensorFlow."""

import importlib
import subprocess
import sys
import types

import pytest

from colornet.utils.exports import lazy_exports

PACKAGES = (
    "colornet",
    "colornet.models",
    "colornet.data",
    "colornet.training",
    "colornet.deploy",
    "colornet.weights",
    "colornet.apps",
    "colornet.apps.video",
)
# What users already call on the facade (issue 25: these keep working).
FACADE = ("colorize", "Colorizer", "train_dataset", "colorize_video", "suggest_colors", "load_predictor",
          "TrainConfig", "train", "evaluate", "export_saved_model", "ColornetError", "import_official")


def test_lazy_exports_imports_on_first_use(monkeypatch):
    package = types.ModuleType("fake_package")
    package.__path__ = []
    monkeypatch.setitem(sys.modules, "fake_package", package)
    package.__getattr__, package.__dir__, package.__all__ = lazy_exports(
        "fake_package", {"dumps": "json", "sqrt": "math"}
    )
    assert package.__all__ == ["dumps", "sqrt"]
    assert "sqrt" not in vars(package)
    assert package.sqrt(9.0) == 3.0
    assert "sqrt" in vars(package)  # kept: the next lookup is a plain attribute
    assert {"dumps", "sqrt"} <= set(dir(package))
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        package.nothing  # noqa: B018


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_resolves(name):
    package = importlib.import_module(name)
    assert package.__all__ == sorted(package.__all__)
    for public in package.__all__:
        assert getattr(package, public) is not None, f"{name}.{public}"
        assert not public.startswith("_")


def test_the_facade_keeps_the_names_users_call():
    import colornet

    assert set(FACADE) <= set(colornet.__all__)
    assert callable(colornet.train) and callable(colornet.evaluate)  # functions, not modules
    assert issubclass(colornet.ColornetError, Exception)
    assert "eccv16_imagenet" in colornet.models.presets.PRETRAINED  # Colorizer registered the releases


def test_modules_of_a_package_are_reachable_as_attributes():
    from colornet.apps import video

    assert video.defaults.DEFAULT_CRF == importlib.import_module("colornet.apps.video.defaults").DEFAULT_CRF


def test_help_and_option_sources_load_no_tensorflow():
    """`colornet --help` and every subcommand's help read their defaults and choices
    from plain-Python modules: neither TensorFlow nor PyAV is loaded."""
    code = """
import sys
from colornet import cli
parser = cli.build_parser()
texts = [parser.format_help()] + [command.format_help() for command in parser.commands.values()]
assert len(texts) > 10
print(sorted({"tensorflow", "keras", "av", "numpy"} & set(sys.modules)))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout[-2000:]
