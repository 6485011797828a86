"""Benchmark case: x[i] read at every step of a 500-step scalar loop.

h <- tanh(a * h + b * x[i]): each step reads one element of the array x, so the gradient
of x is made of 500 parts, one element each. Measures how those parts are gathered: one
array written element by element, as a person would, not one array per read.
"""

import numpy as np

STEPS = 500


def element_reads(a: "f64[]", b: "f64[]", x: "f64[500]"):
    h = 0.0
    for i in range(STEPS):
        h = np.tanh(a * h + b * x[i])
    return h


def _bench_args(rng):
    """Arguments for the benchmark and the tests (not traced: the name starts with _).

    a near 1 and a small b keep h away from tanh's flat tails, so the gradient with
    respect to the early elements of x decays slowly instead of vanishing.
    """
    a = float(rng.uniform(0.9, 0.99))
    b = float(rng.uniform(0.05, 0.1))
    x = rng.standard_normal(STEPS)
    return a, b, x
