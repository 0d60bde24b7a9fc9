"""Shared test setup: two logical CPU devices (for MirroredStrategy), quiet logs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Must run before TensorFlow initialises its devices, hence at import time.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

# Property-based tests (tests/test_fuzz.py): a fixed, derandomised profile for CI, and
# `HYPOTHESIS_PROFILE=long` for a fuzzing campaign of thousands of examples.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the `test` extra installs it; other tests run without it
    pass
else:
    _quiet = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    settings.register_profile(
        "ci", derandomize=True, max_examples=200, deadline=None, print_blob=True,
        suppress_health_check=_quiet, database=None,
    )
    settings.register_profile(
        "long", max_examples=5000, deadline=None, print_blob=True, suppress_health_check=_quiet
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def bfloat16_policy():
    """Models built in the test compute in mixed_bfloat16."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def deny_access(monkeypatch):
    """`deny_access(directory)` makes `os.access` say no for that directory: the tests
    run as root, which ignores chmod, so "unwritable" has to be simulated."""
    access = os.access

    def deny(directory):
        def fake(path, mode, **kwargs):
            return os.fspath(path) != os.fspath(directory) and access(path, mode, **kwargs)

        monkeypatch.setattr(os, "access", fake)

    return deny


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: takes long on 2 cores; the quick profile (`pytest -m \"not slow\"`) leaves it out, CI runs it",
    )
