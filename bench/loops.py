"""Control flow kept as control flow (issue 14): generated code against the same control
flow written by hand in Python, side by side in one run.

- chain: `h = np.tanh(a * h + b * x[i])` for 25,000 steps with default options: the module's
  lines, gradgen's wall time end to end (`cli.py --no-check`, a fresh process), and
  value_and_grad against a hand-written loop with a tape and a reverse loop
  (targets: a few hundred lines, <= 2 s, <= 1.5x);
- piecewise (if / elif / else), newton (a while loop to a tolerance) and clipped (an `if`
  inside a 200-step loop kept as a loop): value_and_grad against hand-written Python with
  the same branches (target <= 1.3x).

    python bench/loops.py [--rounds 7]

Times are medians of `--rounds` batches, the systems alternating; ratios are what to read
on a noisy machine.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

SOURCES = {
    "chain": """
import numpy as np

def f(a, b, x: "f64[25000]"):
    h = 0.0
    for i in range(25000):
        h = np.tanh(a * h + b * x[i])
    return h
""",
    "piecewise": """
import numpy as np

def f(x):
    if x > 1.0:
        y = np.sqrt(x)
    elif x > -1.0:
        y = x * x
    else:
        y = -x
    return y * 3.0
""",
    "newton": """
import numpy as np

def f(a):
    x = a
    while np.abs(x * x - a) > 1e-12 * a:
        x = 0.5 * (x + a / x)
    return x
""",
    "clipped": """
import numpy as np

def f(w, x: "f64[200]"):
    h = 0.0
    for i in range(200):
        z = w * h + x[i]
        if z > 1.0:
            h = 1.0
        else:
            h = np.tanh(z)
    return h
""",
}


def hand_chain(a, b, x):
    xl = x.tolist()
    h = 0.0
    tape = []
    for xi in xl:
        tape.append(h)
        h = math.tanh(a * h + b * xi)
    value = h
    g_a = g_b = 0.0
    g_x = np.zeros(len(xl))
    g = 1.0
    for i in range(len(xl) - 1, -1, -1):
        t = g * (1.0 - h * h)
        h = tape[i]
        g_a += t * h
        g_b += t * xl[i]
        g_x[i] = t * b
        g = t * a
    return value, (g_a, g_b, g_x)


def hand_piecewise(x):
    if x > 1.0:
        s = math.sqrt(x)
        return s * 3.0, (3.0 / (2.0 * s),)
    if x > -1.0:
        return x * x * 3.0, (6.0 * x,)
    return -x * 3.0, (-3.0,)


def hand_newton(a):
    x = a
    tape = []
    while abs(x * x - a) > 1e-12 * a:
        tape.append(x)
        x = 0.5 * (x + a / x)
    g_x, g_a = 1.0, 0.0
    for xp in reversed(tape):
        g_a += g_x * 0.5 / xp
        g_x = g_x * 0.5 * (1.0 - a / (xp * xp))
    return x, (g_a + g_x,)


def hand_clipped(w, x):
    xl = x.tolist()
    h = 0.0
    tape = []
    for xi in xl:
        z = w * h + xi
        if z > 1.0:
            tape.append((h, None))
            h = 1.0
        else:
            t = math.tanh(z)
            tape.append((h, t))
            h = t
    value = h
    g_w = 0.0
    g_x = np.zeros(len(xl))
    g = 1.0
    for i in range(len(xl) - 1, -1, -1):
        hp, t = tape[i]
        if t is None:
            g = 0.0
            continue
        gz = g * (1.0 - t * t)
        g_w += gz * hp
        g_x[i] = gz
        g = gz * w
    return value, (g_w, g_x)


HAND = {
    "chain": hand_chain,
    "piecewise": hand_piecewise,
    "newton": hand_newton,
    "clipped": hand_clipped,
}


def args_for(name: str, rng):
    if name == "chain":
        return (0.5, 0.3, rng.standard_normal(25000))
    if name == "piecewise":
        return (0.7,)
    if name == "newton":
        return (2.5,)
    return (0.8, rng.standard_normal(200) * 0.5)


def compile_case(name: str, folder: Path):
    src = folder / f"{name}.py"
    src.write_text(SOURCES[name])
    start = time.perf_counter()
    cmd = [sys.executable, str(ROOT / "cli.py"), str(src), "--out", str(folder), "--no-check"]
    subprocess.run(cmd, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    out = folder / f"{name}_grad.py"
    sys.path.insert(0, str(folder))
    module = __import__(f"{name}_grad")
    return seconds, out.read_text().count("\n"), module


def per_call(fn, args, number: int) -> float:
    return timeit.timeit(lambda: fn(*args), number=number) / number


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in SOURCES:
            seconds, lines, module = compile_case(name, Path(tmp))
            call = args_for(name, rng)
            ours, theirs = module.f_value_and_grad, HAND[name]
            v1, g1 = ours(*call)
            v2, g2 = theirs(*call)
            assert np.allclose(v1, v2, rtol=1e-9), (name, v1, v2)
            for a, b in zip(g1, g2):
                assert np.allclose(a, b, rtol=1e-7, atol=1e-12), (name, a, b)
            number = max(1, int(0.05 / max(per_call(theirs, call, 1), 1e-7)))
            t_ours, t_hand = [], []
            for _ in range(args.rounds):
                t_ours.append(per_call(ours, call, number))
                t_hand.append(per_call(theirs, call, number))
            mo, mh = statistics.median(t_ours), statistics.median(t_hand)
            rows.append((name, lines, seconds, mo, mh, mo / mh))
    print("| case | module lines | gradgen s | generated | hand-written | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, lines, seconds, mo, mh, ratio in rows:
        print(f"| {name} | {lines} | {seconds:.2f} | {_t(mo)} | {_t(mh)} | {ratio:.2f} |")
    return 0


def _t(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.2f} µs"


if __name__ == "__main__":
    sys.exit(main())
