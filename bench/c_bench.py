"""The C target from a C harness and from Python through its loader, against the Python
target. (Against CasADi's generated C: `bench/c_vs_casadi.py`.)

    python bench/c_bench.py [--calls N]
    python bench/c_bench.py --arrays [--rounds N] [--fast "-O3 -march=native -ffast-math"]
    python bench/c_bench.py --named-batch [--rounds N]

Cases: bench/cases/neuron.py and bench/cases/scalar_chain.py (500 steps of
s <- c * tanh(a * s + b), about 2000 scalar gates). For each, value and gradient:

- gradgen C, from a C harness: N calls of NAME_value_and_grad in a loop, best of 5;
- from Python: the Python target's NAME_value_and_grad, and the C one through the loader.

The C file is compiled with `cc -O2`. Everything is written to a temporary folder;
nothing in the checkout changes. Prints a table (ns per call).

With --arrays: the array cases elementwise (1e6) and mlp (batch 64, 784-256-10), value and
gradient from Python, on one thread: hand-written numpy (bench/systems/handwritten.py),
torch eager, the Python target, and the C target through its loader, built with -O2 and
with the opt-in $GRADGEN_CFLAGS of --fast. Systems interleaved in each round, medians
over rounds, ratios to hand-written; for mlp also GFLOP/s (2 flops a multiply-add of
the five matrix products of the value and gradient: no gradient for the constant X). For mlp also "C -O2, C harness":
mlp_value_and_grad called from C (`mlp_harness`, built with the loader's `cc -O2`), the
generated code's own time without the loader's per-call work (the work buffer and the
output arrays it allocates).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one thread, before numpy loads its BLAS

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codegen import check  # noqa: E402
from codegen.pipeline import compile_file  # noqa: E402
from codegen.write import write_atomic  # noqa: E402

CASES = ["neuron", "scalar_chain"]
# the chain unrolled (a `for` kept as a loop is not what these figures are about)
UNROLL = {"loops": "unroll"} if "loops" in inspect.signature(compile_file).parameters else {}
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


ARRAY_CASES = ["elementwise", "mlp"]
# the five products of value_and_grad (X is a constant: no gradient for it): X @ W1, h @ W2,
# forward; h.T @ dz, dz @ W2.T and X.T @ dh, backward
MLP_FLOPS = 2 * 64 * (784 * 256 * 2 + 256 * 10 * 3)


def mlp_harness(folder: Path, calls: int = 20) -> Path:
    """A C program printing the mean time of `calls` calls of mlp_value_and_grad (best of
    3 batches), its inputs filled with small deterministic values."""
    text = (
        CLOCK
        + '#include <math.h>\n#include "mlp_grad.h"\n'
        + "static double W1[784 * 256], b1[256], W2[256 * 10], b2[10], g_W1[784 * 256],"
        + " g_b1[256], g_W2[256 * 10], g_b2[10], work[mlp_WORK_SIZE + 1];\n"
        + f"""
int main(void)
{{
    double value, best = 1e30;
    for (long i = 0; i < 784 * 256; i++) W1[i] = 0.03 * sin(0.1 * (double)i);
    for (long i = 0; i < 256 * 10; i++) W2[i] = 0.06 * cos(0.7 * (double)i);
    for (int batch = 0; batch < 3; batch++) {{
        double t0 = now();
        for (int k = 0; k < {calls}; k++)
            mlp_value_and_grad(W1, b1, W2, b2, &value, g_W1, g_b1, g_W2, g_b2, work);
        double t = (now() - t0) / {calls};
        if (t < best)
            best = t;
    }}
    printf("%.9f %.17g\\n", best, value);
    return 0;
}}
"""
    )
    (folder / "harness.c").write_text(text)
    exe = folder / "harness"
    subprocess.run(
        [
            "cc",
            "-O2",
            f"-I{folder}",
            str(folder / "harness.c"),
            str(folder / "mlp_grad.c"),
            "-o",
            str(exe),
            "-lm",
        ],
        check=True,
    )
    return exe


def _load_as(path: Path, name: str, cflags: str):
    """The C loader at `path`, imported as `name` with $GRADGEN_CFLAGS set to `cflags`."""
    old = os.environ.get("GRADGEN_CFLAGS")
    os.environ["GRADGEN_CFLAGS"] = cflags
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        if old is None:
            os.environ.pop("GRADGEN_CFLAGS", None)
        else:
            os.environ["GRADGEN_CFLAGS"] = old


def arrays(rounds: int, fast: str) -> None:
    import statistics

    sys.path.insert(0, str(ROOT / "bench"))
    from systems import handwritten, load_case

    try:
        import torch

        from systems import torch_eager

        torch.set_num_threads(1)
    except ImportError:
        torch_eager = None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GRADGEN_CACHE", str(Path(tmp) / "cache"))
        for name in ARRAY_CASES:
            folder = Path(tmp) / name
            case = ROOT / "bench" / "cases" / f"{name}.py"
            for ext, text in compile_file(case, target="c").files.items():
                write_atomic(folder / f"{name}_grad{ext}", text)
            write_atomic(folder / "py" / f"{name}_grad.py", compile_file(case).source)
            loader = folder / f"{name}_grad_c.py"
            module = load_case(name)
            args = module._bench_args(np.random.default_rng(0))
            vg = f"{name}_value_and_grad"
            systems = {
                "hand-written numpy": handwritten.build(name, module).value_and_grad,
                "Python target": getattr(check.import_path(folder / "py" / f"{name}_grad.py"), vg),
                "C -O2": getattr(_load_as(loader, f"c_o2_{name}", ""), vg),
                f"C {fast}": getattr(_load_as(loader, f"c_fast_{name}", fast), vg),
            }
            native = {k: args for k in systems}
            if torch_eager is not None:
                impl = torch_eager.build(name, module)
                systems["torch eager"] = impl.value_and_grad
                native["torch eager"] = impl.prepare(args)
            want = systems["hand-written numpy"](*args)
            for k in ("C -O2", f"C {fast}"):
                got = systems[k](*args)
                err = max(
                    float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / (1 + np.abs(b))))
                    for a, b in zip((got[0], *got[1]), (want[0], *want[1]))
                )
                assert err < 1e-6, f"{name}: {k} disagrees with numpy by {err}"
            harness = {"C -O2, C harness": mlp_harness(folder)} if name == "mlp" else {}
            times: dict[str, list[float]] = {k: [] for k in [*systems, *harness]}
            for r in range(rounds):
                order = list(times)[r % len(times) :] + list(times)[: r % len(times)]
                for k in order:
                    if k in harness:
                        out = subprocess.run([str(harness[k])], capture_output=True, text=True)
                        times[k].append(float(out.stdout.split()[0]))
                        continue
                    fn, a = systems[k], native[k]
                    fn(*a)
                    number = max(1, int(0.2 / max(timeit.timeit(lambda: fn(*a), number=1), 1e-6)))
                    times[k].append(
                        min(timeit.repeat(lambda: fn(*a), number=number, repeat=3)) / number
                    )
            hand = times["hand-written numpy"]
            for k, ts in times.items():
                ratio = statistics.median(t / h for t, h in zip(ts, hand))
                rows.append((name, k, statistics.median(ts), ratio))
    print(f"value_and_grad from Python, one thread, median of {rounds} rounds")
    print()
    print("| case | system | time | × hand-written | GFLOP/s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, k, t, ratio in rows:
        gflops = f"{MLP_FLOPS / t / 1e9:.2f}" if name == "mlp" else "–"
        print(f"| {name} | {k} | {t * 1e3:.2f} ms | {ratio:.2f}× | {gflops} |")


def named_batch(rounds: int) -> None:
    """mlp generated once with its batch a named dim (bench/cases/mlp_batch.py), against
    mlp generated for batch 64 (bench/cases/mlp.py), both C -O2 through the loader on
    the same data; then the named-batch code at other batch sizes."""
    import statistics

    sys.path.insert(0, str(ROOT / "bench"))
    from systems import load_case

    wrt = ["W1", "b1", "W2", "b2"]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GRADGEN_CACHE", str(Path(tmp) / "cache"))
        fns = {}
        for name, kw in (("mlp", {}), ("mlp_batch", {"wrt": wrt})):
            folder = Path(tmp) / name
            compiled = compile_file(ROOT / "bench" / "cases" / f"{name}.py", target="c", **kw)
            assert not compiled.specialized, compiled.reasons
            for ext, text in compiled.files.items():
                write_atomic(folder / f"{name}_grad{ext}", text)
            module = _load_as(folder / f"{name}_grad_c.py", f"c_{name}", "")
            fns[name] = module.mlp_value_and_grad
        case = load_case("mlp")
        weights = case._bench_args(np.random.default_rng(0))
        calls = {
            "generated for B = 64": (fns["mlp"], weights),
            "named dim B, at 64": (fns["mlp_batch"], (*weights, case.X, case.Y)),
        }
        want, got = calls["generated for B = 64"][0](*weights), fns["mlp_batch"](
            *calls["named dim B, at 64"][1]
        )
        assert abs(want[0] - got[0]) <= 1e-12 * abs(want[0]), (want[0], got[0])
        times: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(rounds):
            for k, (fn, a) in calls.items():
                times[k].append(min(timeit.repeat(lambda: fn(*a), number=10, repeat=3)) / 10)
        base = statistics.median(times["generated for B = 64"])
        print("mlp value_and_grad, C -O2 through the loader, median of", rounds, "rounds")
        print()
        print("| code | batch | time | × generated for 64 | GFLOP/s |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for k, ts in times.items():
            t = statistics.median(ts)
            print(f"| {k} | 64 | {t * 1e3:.2f} ms | {t / base:.2f}× | {MLP_FLOPS / t / 1e9:.2f} |")
        rng = np.random.default_rng(1)
        for batch in (1, 7, 256):
            X = rng.normal(size=(batch, 784))
            Y = np.eye(10)[rng.integers(0, 10, size=batch)]
            fn = fns["mlp_batch"]
            t = statistics.median(
                min(timeit.repeat(lambda: fn(*weights, X, Y), number=5, repeat=3)) / 5
                for _ in range(rounds)
            )
            flops = MLP_FLOPS * batch / 64
            print(f"| named dim B | {batch} | {t * 1e3:.2f} ms | – | {flops / t / 1e9:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200000)
    parser.add_argument("--arrays", action="store_true", help="the array cases instead")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fast", default="-O3 -march=native -ffast-math")
    parser.add_argument(
        "--named-batch", action="store_true", help="mlp with its batch a named dim instead"
    )
    args = parser.parse_args()
    if args.named_batch:
        named_batch(args.rounds)
        return
    if args.arrays:
        arrays(args.rounds, args.fast)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("GRADGEN_CACHE", str(Path(tmp) / "cache"))
        for name in CASES:
            folder = Path(tmp) / name
            case = ROOT / "bench" / "cases" / f"{name}.py"
            compiled = compile_file(case, target="c", **UNROLL)
            for ext, text in compiled.files.items():
                write_atomic(folder / f"{name}_grad{ext}", text)
            spec = compiled.functions[0].spec
            calls = args.calls if name == "neuron" else max(args.calls // 100, 1000)
            (folder / "main.c").write_text(gradgen_harness(name, spec, folder, calls))
            c_ns = build_and_run(folder, [folder / "main.c", folder / f"{name}_grad.c"], "ours")
            py_path = folder / "py" / f"{name}_grad.py"
            write_atomic(py_path, compile_file(case, **UNROLL).source)
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
