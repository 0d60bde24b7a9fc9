"""The one way a colornet package exposes its public names: imported on first use.

A package's `__init__` gives a table `{name: module}` and gets back the module-level
`__getattr__`, `__dir__` and `__all__` (PEP 562):

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"Colorizer": "colornet.models.colorizer"})

Nothing is imported until a name is used, so `colornet --help` and the plain-Python
modules (`constants`, `models.presets`, `training.config`, the `defaults` modules)
load without TensorFlow. `__all__` is what users call. A module of the package is
reachable as `package.module` too (imported then, as `from package import module`
would), and its tuning constants and internals are read from it, not the package.
"""

import importlib
import importlib.util


def lazy_exports(package, exports):
    """`(__getattr__, __dir__, __all__)` for the package named `package`.

    Args:
      package: the package's `__name__`.
      exports: `{public name: full name of the module that defines it}`.
    """
    exports = dict(exports)

    def __getattr__(name):
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
        elif not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(importlib.import_module(package), name, value)  # the next lookup is a plain one
        return value

    def __dir__():
        return sorted({*vars(importlib.import_module(package)), *exports})

    return __getattr__, __dir__, sorted(exports)
