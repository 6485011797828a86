"""Benchmark case: a long chain of scalar gates, s <- c * tanh(a * s + b), 500 times.

Four gates a step (mul, add, tanh, mul), so about 2000 gates once the Python loop is
unrolled at trace time. Measures per-gate overhead on scalars.
"""

import numpy as np

STEPS = 500


def scalar_chain(a: "f64[]", b: "f64[]", c: "f64[]", x0: "f64[]"):
    s = x0
    for _ in range(STEPS):
        s = c * np.tanh(a * s + b)
    return s


def _bench_args(rng):
    """Arguments for the benchmark and the tests (not traced: the name starts with _).

    a and c just under 1 and b near 0 keep the chain near its critical point, so the
    gradient with respect to x0 decays slowly (about 1e-4 after 500 steps) instead of
    vanishing to 1e-50 as it does for a strongly contracting chain.
    """
    a = float(rng.uniform(0.995, 1.0))
    b = float(rng.uniform(-0.001, 0.001))
    c = float(rng.uniform(0.995, 1.0))
    x0 = float(rng.uniform(0.5, 1.5))
    return a, b, c, x0
