"""Benchmark case: unary ops over a million elements, then a sum.

Memory-bound: measures temporaries and passes over memory, not call overhead.
"""

import numpy as np


def elementwise(x: "f64[1000000]"):
    return np.sum(np.tanh(x) * np.exp(-x * x) + np.sin(x))


def _bench_args(rng):
    """Arguments for the benchmark and the tests (not traced: the name starts with _)."""
    return (rng.normal(size=1_000_000),)
