"""Assertions shared by several test modules."""

import numpy as np

from worker.results import LayerResult, Result


def assert_same_recordings(a: Result, b: Result) -> None:
    """Same steps, same layers, and every recorded array equal in value, dtype and presence."""
    assert a.steps == b.steps
    assert a.layers.keys() == b.layers.keys()
    for name, layer in a.layers.items():
        other = b.layers[name]
        assert layer.shape == other.shape, name
        for key in LayerResult.ARRAYS:
            x, y = getattr(layer, key), getattr(other, key)
            assert (x is None) == (y is None), (name, key)
            if x is not None:
                assert x.dtype == y.dtype and np.array_equal(x, y), (name, key)
