"""Where writing into a dead buffer starts to pay: the measurement behind
`codegen.memory.INPLACE_MIN_BYTES`.

For float64 arrays of growing size it times fifty steps of a recurrence written both ways
the emitter can write it:

    expression:  h = np.tanh(a[k] + h @ W + b)
    in place:    t = h @ W; np.add(a[k], t, out=t); t += b; h = np.tanh(t, out=t)

and prints the median time of each (systems interleaved over rounds, one thread) and
their ratio. Below about 1 KiB numpy serves new buffers from its own cache, so the
expression costs the same; above, every temporary is a malloc and the in-place form wins.

    python bench/inplace.py
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import statistics  # noqa: E402
import timeit  # noqa: E402

import numpy as np  # noqa: E402

STEPS = 50
SHAPES = [(1, 16), (1, 32), (2, 32), (4, 32), (8, 32), (16, 32), (8, 128), (64, 64)]


def _pair(rows: int, cols: int):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(STEPS, rows, cols))
    w = rng.normal(size=(cols, cols)) / cols
    b = rng.normal(size=cols)

    def expression():
        h = np.tanh(a[0] + b)
        for k in range(1, STEPS):
            h = np.tanh(a[k] + h @ w + b)
        return h

    def in_place():
        t = a[0] + b
        h = np.tanh(t, out=t)
        for k in range(1, STEPS):
            t = h @ w
            del h
            np.add(a[k], t, out=t)
            t += b
            h = np.tanh(t, out=t)
        return h

    np.testing.assert_allclose(expression(), in_place())
    return expression, in_place


def main(rounds: int = 7) -> None:
    print("| float64 elements | bytes | expression | in place | in place / expression |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for rows, cols in SHAPES:
        expression, in_place = _pair(rows, cols)
        number = max(1, 20000 // (rows * cols))
        times: dict[str, list[float]] = {"e": [], "i": []}
        for _ in range(rounds):
            for key, fn in (("e", expression), ("i", in_place)):
                times[key].append(min(timeit.repeat(fn, number=number, repeat=3)) / number)
        e, i = statistics.median(times["e"]), statistics.median(times["i"])
        n = rows * cols
        print(f"| {n} | {8 * n} | {e * 1e6:.1f} µs | {i * 1e6:.1f} µs | {i / e:.3f} |")


if __name__ == "__main__":
    main()
