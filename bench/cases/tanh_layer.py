"""Benchmark case: one 100x100 tanh layer, summed: the "100x100 tanh MLP" of issue 13.

A matrix-vector product, then tanh: CasADi's scalar expression graph unrolls it to about
10,000 multiply-adds a direction (51,490 lines of C); gradgen's C keeps it a loop nest.
Measures the C compiler's time as much as the code's.
"""

import numpy as np


def tanh_layer(W: "f64[100,100]", b: "f64[100]", x: "f64[100]"):
    return np.sum(np.tanh(W @ x + b))


def _bench_args(rng):
    """Arguments for the benchmark and the tests (not traced: the name starts with _)."""
    return rng.normal(size=(100, 100)) / 10.0, 0.1 * rng.normal(size=100), rng.normal(size=100)
