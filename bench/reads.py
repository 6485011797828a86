"""Many reads of one array: the element_reads case at 500 and at 25,000 steps.

`h = tanh(a * h + b * x[i])` for n steps reads each element of x once, so the gradient of
x is made of n one-element parts. This script measures the three targets set for it:

1. `element_reads_value_and_grad` at n = 500, generated against the hand-written loop of
   `systems/handwritten.py` (timeit-style: best of 7 batches);
2. the peak memory of one call of each at n = 25,000 (tracemalloc, after a warm-up call,
   outputs included: what `run.py` reports for its memory cases);
3. the wall time of `python cli.py element_reads.py --no-check` at n = 25,000, gradgen
   end to end in a fresh process (black is skipped at that size: the module is longer
   than GRADGEN_BLACK_MAX_LINES).

    python bench/reads.py                      # 500 and 25000 steps
    python bench/reads.py --steps 500,2000 --compile-steps 2000
    python bench/reads.py --loops auto         # the loop kept as a loop (issue 14)
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
import timeit
import tracemalloc
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from systems import handwritten, import_path  # noqa: E402

CASE = BENCH / "cases" / "element_reads.py"


def case_source(steps: int) -> str:
    """The case file with STEPS and x's size set to `steps`."""
    text = CASE.read_text().replace("STEPS = 500", f"STEPS = {steps}")
    return text.replace('"f64[500]"', f'"f64[{steps}]"')


LOOPS = "unroll"  # issue 16 measures the unrolled path; --loops auto|keep for the others


def compile_case(steps: int, folder: Path) -> tuple[float, Path]:
    """Run the CLI on the case at `steps` in a fresh process: (seconds, generated file)."""
    src = folder / f"element_reads_{steps}.py"
    src.write_text(case_source(steps))
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            str(src),
            "--out",
            str(folder),
            "--no-check",
            "--loops",
            LOOPS,
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start, folder / f"{src.stem}_grad.py"


def best_time(fn, args, repeat: int = 7) -> float:
    """Seconds per call, best of `repeat` batches of at least 0.1 s."""
    number = 1
    while timeit.timeit(lambda: fn(*args), number=number) < 0.1:
        number *= 2
    return min(timeit.repeat(lambda: fn(*args), number=number, repeat=repeat)) / number


def peak_bytes(fn, args) -> int:
    """tracemalloc's peak during one call, after a warm-up call.

    Slow on long functions: tracemalloc looks up the line of every allocation, and Python
    3.11 finds it by reading the function's line table from the start (12 minutes for the
    325,000-line function of 25,000 steps)."""
    fn(*args)  # (not traced: it would double the wait)
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = fn(*args)
        peak = tracemalloc.get_traced_memory()[1] - base
        del out
    finally:
        tracemalloc.stop()
    return peak


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", default="500,25000", help="sizes to time and measure")
    p.add_argument("--compile-steps", type=int, default=25000, help="size to compile-time")
    p.add_argument(
        "--loops", default="unroll", choices=("auto", "keep", "unroll"), help="gradgen --loops"
    )
    args = p.parse_args(argv)
    global LOOPS
    LOOPS = args.loops
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for steps in [int(s) for s in args.steps.split(",")]:
            seconds, path = compile_case(steps, folder)
            generated = import_path(path, f"element_reads_{steps}_grad")
            case = import_path(folder / f"element_reads_{steps}.py", f"element_reads_{steps}")
            hand = handwritten.build("element_reads", case)
            call = case._bench_args(np.random.default_rng(0))
            value, grads = generated.element_reads_value_and_grad(*call)
            want_value, want_grads = hand.value_and_grad(*call)
            assert np.isclose(value, want_value), (value, want_value)
            for got, want in zip(grads, want_grads):
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-300)
            gen_t = best_time(generated.element_reads_value_and_grad, call)
            hand_t = best_time(hand.value_and_grad, call)
            gen_peak = peak_bytes(generated.element_reads_value_and_grad, call)
            hand_peak = peak_bytes(hand.value_and_grad, call)
            rows.append((steps, seconds, gen_t, hand_t, gen_peak, hand_peak))
            print(
                f"{steps:>6} steps: compile {seconds:.2f} s; value_and_grad {gen_t * 1e6:.1f} µs "
                f"(hand-written {hand_t * 1e6:.1f} µs, {gen_t / hand_t:.2f}×); peak "
                f"{gen_peak / 2**20:.2f} MiB (hand-written {hand_peak / 2**20:.2f} MiB)",
                flush=True,
            )
        if args.compile_steps not in [r[0] for r in rows]:
            seconds, _ = compile_case(args.compile_steps, folder)
            print(f"{args.compile_steps:>6} steps: compile {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
