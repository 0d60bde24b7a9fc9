"""What the tests share: generated images, bad inputs, stand-in models and servers,
oracles and the layer contract. Test modules are `tests/test_*.py`; this package
holds no tests."""
