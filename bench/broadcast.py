"""Where writing a broadcast operand out pays: the measurement behind
`codegen.passes.widen` (and its `MIN_USES`).

For float64 arrays of several shapes it times, per call, numpy adding a broadcast operand
(`a + b`, b a row or a column) and adding the same values written out to a's shape
(`a + b_wide`), and what writing b_wide once costs (`np.empty` and `b_wide[...] = b`,
the two lines the pass emits). Then it times the rnn pattern: fifty steps of
`t += b` against `t += b_wide` plus the copy. Systems interleaved over rounds, one
thread, medians.

    python bench/broadcast.py
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import statistics  # noqa: E402
import timeit  # noqa: E402

import numpy as np  # noqa: E402

# (array shape, broadcast operand shape)
CASES = [
    ((8, 32), (32,)),
    ((8, 32), (8, 1)),
    ((64, 256), (256,)),
    ((2000, 8), (8,)),
    ((256, 256), (256,)),
    ((362, 362), (362,)),
    ((64, 4096), (4096,)),
    ((20000, 8), (8,)),
]
STEPS = 50


def _widen(b: np.ndarray, shape: tuple) -> np.ndarray:
    out = np.empty(shape)
    out[...] = b
    return out


def _median_time(fn, number: int, rounds: list[float]) -> None:
    rounds.append(min(timeit.repeat(fn, number=number, repeat=3)) / number)


def main(rounds: int = 7) -> None:
    print("| shape | operand | a + b | a + b_wide | write b_wide | uses to pay back |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for shape, bshape in CASES:
        rng = np.random.default_rng(0)
        a = rng.normal(size=shape)
        b = rng.normal(size=bshape)
        wide = _widen(b, shape)
        assert np.array_equal(a + b, a + wide)
        number = max(10, 200000 // a.size)
        times: dict[str, list[float]] = {"b": [], "w": [], "c": []}
        for _ in range(rounds):
            _median_time(lambda: a + b, number, times["b"])
            _median_time(lambda: a + wide, number, times["w"])
            _median_time(lambda: _widen(b, shape), number, times["c"])
        tb, tw, tc = (statistics.median(times[k]) * 1e6 for k in "bwc")
        pays = f"{tc / (tb - tw):.1f}" if tb > tw else "never"
        print(f"| {shape} | {bshape} | {tb:.2f} µs | {tw:.2f} µs | {tc:.2f} µs | {pays} |")

    rng = np.random.default_rng(0)
    t = rng.normal(size=(8, 32))
    b = rng.normal(size=32)

    def steps_broadcast():
        for _ in range(STEPS):
            t.__iadd__(b)

    def steps_wide():
        w = _widen(b, t.shape)
        for _ in range(STEPS):
            t.__iadd__(w)

    times = {"b": [], "w": []}
    for _ in range(rounds):
        _median_time(steps_broadcast, 2000, times["b"])
        _median_time(steps_wide, 2000, times["w"])
    tb, tw = (statistics.median(times[k]) * 1e6 for k in "bw")
    print()
    print(
        f"{STEPS} steps of t += b on (8, 32): {tb:.1f} µs broadcast, {tw:.1f} µs widened "
        f"(copy included), ratio {tw / tb:.3f}"
    )


if __name__ == "__main__":
    main()
