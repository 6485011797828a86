"""What a call through the C target's loader costs, against the Python target.

    python bench/c_overhead.py

Times NAME and NAME_value_and_grad of generated/circuit (three Python floats in, floats
out: the loader's fixed cost) and generated/neuron (two small arrays in, arrays out), and
an empty Python function of three arguments for scale; then the first import of the C
loaders (the compile) and a cached one, each in a fresh process with an empty cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def per_call(stmt: str, env: dict, number: int = 200000) -> float:
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=5)) / number * 1e9


def import_time(module: str, cache: str) -> float:
    code = (
        "import sys, time, numpy; sys.path.insert(0, 'generated'); t = time.perf_counter(); "
        f"import {module}; print(time.perf_counter() - t)"
    )
    env = {**os.environ, "GRADGEN_CACHE": cache}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["GRADGEN_CACHE"] = cache
        sys.path.insert(0, str(ROOT / "generated"))
        import circuit_grad
        import circuit_grad_c
        import neuron_grad
        import neuron_grad_c

        env = {
            "pc": circuit_grad,
            "cc": circuit_grad_c,
            "pn": neuron_grad,
            "cn": neuron_grad_c,
            "w": np.array([2.0, -3.0, -3.0]),
            "x": np.array([-1.0, -2.0]),
            "noop": lambda a, b, c: None,
        }
        print("ns per call (best of 5)\n")
        print("| call | Python target | C target (loader) |")
        print("| --- | --- | --- |")
        print(
            f"| empty Python function `noop(1.0, 2.0, 3.0)` | {per_call('noop(1.0, 2.0, 3.0)', env):.0f} | |"
        )
        for label, py, c in [
            ("circuit(1.0, 2.0, 3.0)", "pc.circuit(1.0, 2.0, 3.0)", "cc.circuit(1.0, 2.0, 3.0)"),
            (
                "circuit_value_and_grad(1.0, 2.0, 3.0)",
                "pc.circuit_value_and_grad(1.0, 2.0, 3.0)",
                "cc.circuit_value_and_grad(1.0, 2.0, 3.0)",
            ),
            ("neuron(w, x)", "pn.neuron(w, x)", "cn.neuron(w, x)"),
            (
                "neuron_value_and_grad(w, x)",
                "pn.neuron_value_and_grad(w, x)",
                "cn.neuron_value_and_grad(w, x)",
            ),
        ]:
            print(f"| `{label}` | {per_call(py, env):.0f} | {per_call(c, env):.0f} |")
    print("\nimport of the C loader, in a fresh process (s)\n")
    print("| module | first (compiles) | cached |")
    print("| --- | --- | --- |")
    for module in ("circuit_grad_c", "neuron_grad_c", "mlp_grad_c"):
        with tempfile.TemporaryDirectory() as cache:
            first = import_time(module, cache)
            again = import_time(module, cache)
        print(f"| {module} | {first:.2f} | {again:.3f} |")


if __name__ == "__main__":
    main()
