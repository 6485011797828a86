"""Benchmark case: the classic sigmoid neuron, f = 1 / (1 + exp(-(w0*x0 + w1*x1 + w2))).

Tiny and scalar-heavy: measures per-call overhead more than arithmetic.
"""

import numpy as np


def neuron(w: "f64[3]", x: "f64[2]"):
    dot = w[0] * x[0] + w[1] * x[1] + w[2]
    return 1.0 / (1.0 + np.exp(-dot))


def _bench_args(rng):
    """Arguments for the benchmark and the tests (not traced: the name starts with _)."""
    return rng.normal(size=3), rng.normal(size=2)
