"""Where running scalar chains as arrays pays, and how well `scan.cost` predicts it:
`python bench/scan.py`.

The scan lowering (codegen/passes/scan.py) runs the unrolled chains of a scalar loop as
numpy arrays. That costs a fixed few microseconds per chain (np.empty, the interleaving
stores, accumulate, gathering the forward's values with np.fromiter) and saves about
12 ns per scalar operation; its cost model decides where it pays. For two loops at
several step counts this compiles value_and_grad with every chain lowered and with none,
checks that the results are the same bits, times both (medians over interleaved rounds,
single thread) and sets the measured difference beside the model's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import timeit
from pathlib import Path

from codegen import check, passes
from codegen.passes import scan
from codegen.pipeline import compile_file

CASES = {
    # bench/cases/scalar_chain.py at other step counts: a product chain and three sums
    "tanh_chain": (
        """
import numpy as np

def f(a: "f64[]", b: "f64[]", c: "f64[]", x0: "f64[]"):
    s = x0
    for _ in range({steps}):
        s = c * np.tanh(a * s + b)
    return s
""",
        (0.997, 0.0003, 0.998, 0.9),
    ),
    # Horner's rule: a product chain and one sum in backward, no call in forward
    "horner": (
        """
def f(x: "f64[]", c: "f64[]"):
    p = c
    for _ in range({steps}):
        p = p * x + c
    return p
""",
        (0.99, 0.01),
    ),
}


def _compile(folder: Path, source: str, steps: int, lower: bool):
    src = folder / f"f_{steps}.py"
    src.write_text(source.format(steps=steps))
    chains = scan.ALWAYS, scan.MIN_ROWS
    scan.ALWAYS, scan.MIN_ROWS = lower, (2 if lower else sys.maxsize)
    try:
        compiled = compile_file(src)
    finally:
        scan.ALWAYS, scan.MIN_ROWS = chains
    out = folder / f"f_{steps}_{'scan' if lower else 'scalar'}_grad.py"
    out.write_text(compiled.source)
    vg = compiled.functions[0].value_and_grad  # as emitted: lowered or not
    return check.import_path(out).f_value_and_grad, scan.cost(vg), "accumulate" in compiled.source


def _per_call(fn, args) -> float:
    number = 1
    while timeit.timeit(lambda: fn(*args), number=number) < 0.05:
        number *= 2
    return min(timeit.repeat(lambda: fn(*args), number=number, repeat=3)) / number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="8,16,32,64,128,256,500")
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args(argv)
    assert "scan" in passes.NAMES
    print(f"value_and_grad, median of {opts.rounds} rounds; model: scan.cost")
    print()
    print("| case | steps | scalar | scan | scan / scalar | scan − scalar | model |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for case, (source, args) in CASES.items():
            for steps in [int(s) for s in opts.steps.split(",")]:
                scalar, cost_scalar, _ = _compile(Path(tmp), source, steps, False)
                scanned, cost_scan, fired = _compile(Path(tmp), source, steps, True)
                assert fired, f"{case}: the scan did not fire at {steps} steps"
                assert scanned(*args) == scalar(*args), f"{case}: not the same bits"
                times: dict[str, list[float]] = {"scalar": [], "scan": []}
                for _ in range(opts.rounds):
                    times["scalar"].append(_per_call(scalar, args))
                    times["scan"].append(_per_call(scanned, args))
                a, b = (statistics.median(times[k]) * 1e6 for k in ("scalar", "scan"))
                model = (cost_scan - cost_scalar) / 1000
                print(
                    f"| {case} | {steps} | {a:.2f} µs | {b:.2f} µs | {b / a:.3f} "
                    f"| {b - a:+.2f} µs | {model:+.2f} µs |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
