"""colornet's version, in a module of its own so that any module can name it
without importing the package's facade (`colornet/__init__.py`)."""

__version__ = "0.1.0"
