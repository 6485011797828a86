"""Benchmark case: the classic circuit f = (x + y) * z on three scalars.

The smallest possible graph: measures pure call overhead.
"""


def circuit(x: "f64[]", y: "f64[]", z: "f64[]"):
    q = x + y
    return q * z


def _bench_args(rng):
    """Arguments for the benchmark and the tests (not traced: the name starts with _)."""
    return tuple(float(v) for v in rng.normal(size=3))
