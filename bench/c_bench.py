"""The C target from a C harness and from Python through its loader, against the Python
target. (Against CasADi's generated C: `bench/c_vs_casadi.py`.)

    python bench/c_bench.py [--calls N]

Cases: bench/cases/neuron.py and bench/cases/scalar_chain.py (500 steps of
s <- c * tanh(a * s + b), about 2000 scalar gates). For each, value and gradient:

- gradgen C, from a C harness: N calls of NAME_value_and_grad in a loop, best of 5;
- from Python: the Python target's NAME_value_and_grad, and the C one through the loader.

The C file is compiled with `cc -O2`. Everything is written to a temporary folder;
nothing in the checkout changes. Prints a table (ns per call).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codegen import check  # noqa: E402
from codegen.pipeline import compile_file  # noqa: E402
from codegen.write import write_atomic  # noqa: E402

CASES = ["neuron", "scalar_chain"]
ARGS = {
    "neuron": [np.array([2.0, -3.0, -3.0]), np.array([-1.0, -2.0])],
    "scalar_chain": [0.998, 0.0005, 0.997, 0.9],
}

CLOCK = """
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
"""


def _c_array(name: str, value) -> str:
    flat = np.ravel(value)
    return f"static double {name}[{max(flat.size, 1)}] = {{{', '.join(repr(float(v)) for v in flat)}}};"


def _timed_loop(call: str, calls: int, first: str) -> str:
    """main(): `call` `calls` times, best of 5 rounds, printed in ns per call. `first`
    names an input nudged every call, so that no round can be computed once."""
    return f"""
int main(void)
{{
    double best = 1e30, sink = 0.0;
    for (int round = 0; round < 5; round++) {{
        double t0 = now();
        for (long k = 0; k < {calls}; k++) {{
            {first} += 1e-15;
            {call}
            sink += out0;
        }}
        double t = (now() - t0) / {calls};
        if (t < best)
            best = t;
    }}
    printf("%.1f %.17g\\n", best * 1e9, sink);
    return 0;
}}
"""


def gradgen_harness(name: str, spec, folder: Path, calls: int) -> str:
    decls, call = [], []
    for p, v in zip(spec.params, ARGS[name]):
        if p.shape:
            decls.append(_c_array(p.name, v))
            decls.append(f"static double g_{p.name}[{np.size(v)}];")
            call.append(p.name)
        else:
            decls.append(f"static double {p.name} = {float(v)!r};")
            decls.append(f"static double g_{p.name}[1];")
            call.append(p.name)
    grads = [f"g_{p.name}" for p in spec.params]
    first = f"{spec.params[0].name}[0]" if spec.params[0].shape else spec.params[0].name
    body = (
        f"double out0;\n            static double work[{name}_WORK_SIZE + 1];\n"
        f"            {name}_value_and_grad({', '.join(call)}, &out0, {', '.join(grads)}, work);"
    )
    return (
        CLOCK + f'#include "{name}_grad.h"\n' + "\n".join(decls) + _timed_loop(body, calls, first)
    )


def build_and_run(folder: Path, sources: list[Path], tag: str) -> float:
    exe = folder / tag
    subprocess.run(
        ["cc", "-O2", f"-I{folder}", *map(str, sources), "-o", str(exe), "-lm"], check=True
    )
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def from_python(fn, args) -> float:
    number = 20000
    best = min(timeit.repeat(lambda: fn(*args), number=number, repeat=5))
    return best / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200000)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GRADGEN_CACHE", str(Path(tmp) / "cache"))
        for name in CASES:
            folder = Path(tmp) / name
            case = ROOT / "bench" / "cases" / f"{name}.py"
            compiled = compile_file(case, target="c")
            for ext, text in compiled.files.items():
                write_atomic(folder / f"{name}_grad{ext}", text)
            spec = compiled.functions[0].spec
            calls = args.calls if name == "neuron" else max(args.calls // 100, 1000)
            (folder / "main.c").write_text(gradgen_harness(name, spec, folder, calls))
            c_ns = build_and_run(folder, [folder / "main.c", folder / f"{name}_grad.c"], "ours")
            py_path = folder / "py" / f"{name}_grad.py"
            write_atomic(py_path, compile_file(case).source)
            py = check.import_path(py_path)
            cm = check.import_path(folder / f"{name}_grad_c.py")
            vg = f"{name}_value_and_grad"
            py_ns = from_python(getattr(py, vg), ARGS[name])
            loader_ns = from_python(getattr(cm, vg), ARGS[name])
            rows.append((name, c_ns, loader_ns, py_ns))
    print("value_and_grad, ns per call (best of 5)")
    print()
    print("| case | gradgen C (C harness) | gradgen C via loader | Python target |")
    print("| --- | --- | --- | --- |")
    for name, c_ns, loader_ns, py_ns in rows:
        print(f"| {name} | {c_ns:.0f} | {loader_ns:.0f} | {py_ns:.0f} |")


if __name__ == "__main__":
    importlib.invalidate_caches()
    main()
