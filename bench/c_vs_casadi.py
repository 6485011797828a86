"""gradgen's C target against CasADi's generated C, side by side in one run.

For each case, both generated C files are compiled with the same compiler and flags and
linked into one harness, which calls each value-and-gradient function in a loop and
reports the median time per call over several rounds (both run in the same process,
alternating, so the machine's noise hits both alike). Also: the lines of C and the
compiler's CPU time (user + system, which load changes less than wall time). Needs
`casadi` (the `bench` extra) and a C compiler.

    python bench/c_vs_casadi.py [--cases neuron,scalar_chain,tanh_layer] [--flags "-O2"]

Cases: neuron (the classic sigmoid neuron), scalar_chain (s <- c tanh(a s + b), 500
steps, unrolled on both sides), scalar_chain_loop (the same, gradgen's a C loop with its
tape in `saved`: `--loops keep`; CasADi's unrolled) and tanh_layer (sum(tanh(W x + b)), W 100x100: CasADi's
C for it takes gcc about a minute), written once in numpy for gradgen (bench/cases/) and
once with CasADi's SX symbols here, the way CasADi's users write them.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ("neuron", "scalar_chain", "scalar_chain_loop", "tanh_layer")
# the chain unrolled, as CasADi's is: a `for` kept as a loop would be another comparison
UNROLL = ["--loops", "unroll"] if "--loops" in (ROOT / "codegen" / "cli.py").read_text() else []

# Each case: gradgen's C signature (inputs, outputs) and the CasADi function's.
HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "{stem}_grad.h"

typedef long long casadi_int;
int F(const double **arg, double **res, casadi_int *iw, double *w, int mem);
int F_work(casadi_int *sz_arg, casadi_int *sz_res, casadi_int *sz_iw, casadi_int *sz_w);

static double now(void) {{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}}

int main(int argc, char **argv) {{
    long calls = atol(argv[1]);
    int rounds = atoi(argv[2]);
    {declare}
    casadi_int n_arg, n_res, n_iw, n_w;
    F_work(&n_arg, &n_res, &n_iw, &n_w);
    const double **arg = malloc(sizeof(double *) * (n_arg + 1));
    double **res = malloc(sizeof(double *) * (n_res + 1));
    casadi_int *iw = malloc(sizeof(casadi_int) * (n_iw + 1));
    double *cw = malloc(sizeof(double) * (n_w + 1));
    double *work = malloc(sizeof(double) * ({work} + 1));
    {casadi_args}
    double check = 0.0;
    for (int r = 0; r < rounds; r++) {{
        double t0 = now();
        for (long i = 0; i < calls; i++) {{
            {call_gradgen}
            check += value;
        }}
        double t1 = now();
        for (long i = 0; i < calls; i++) {{
            F(arg, res, iw, cw, 0);
            check += c_value;
        }}
        double t2 = now();
        printf("%.3f %.3f\n", 1e9 * (t1 - t0) / calls, 1e9 * (t2 - t1) / calls);
    }}
    {compare}
    fprintf(stderr, "%g\n", check);
    return 0;
}}
"""


def _casadi_source(case: str, folder: Path) -> Path:
    """CasADi's generated C for the case's value and gradient, as a CasADi user writes it."""
    import casadi as ca

    if case == "neuron":
        w, x = ca.SX.sym("w", 3), ca.SX.sym("x", 2)
        f = 1.0 / (1.0 + ca.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))
        inputs = [w, x]
    elif case == "tanh_layer":  # CasADi reads W's row-major data column by column: as W.T
        wt, b, x = ca.SX.sym("W", 100, 100), ca.SX.sym("b", 100), ca.SX.sym("x", 100)
        f = ca.sum1(ca.tanh(ca.mtimes(wt.T, x) + b))
        inputs = [wt, b, x]
    else:
        sys.path.insert(0, str(ROOT / "bench" / "cases"))
        import scalar_chain

        a, b, c, x0 = (ca.SX.sym(n) for n in "a b c x0".split())
        s = x0
        for _ in range(scalar_chain.STEPS):
            s = c * ca.tanh(a * s + b)
        f = s
        inputs = [a, b, c, x0]
    grads = [ca.gradient(f, v) for v in inputs]
    fn = ca.Function("F", inputs, [f, *grads])
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        fn.generate("casadi_F.c")
    finally:
        os.chdir(cwd)
    return folder / "casadi_F.c"


def _harness(case: str) -> dict[str, str]:
    if case == "neuron":
        return {
            "declare": "double w[3] = {0.3, -0.7, 0.2}, x[2] = {1.1, -0.4};\n"
            "    double value, g_w[3], g_x[2], c_value, c_gw[3], c_gx[2];",
            "work": "neuron_WORK_SIZE",
            "casadi_args": "arg[0] = w; arg[1] = x; res[0] = &c_value; res[1] = c_gw; res[2] = c_gx;",
            "call_gradgen": "neuron_value_and_grad(w, x, &value, g_w, g_x, work);",
            "compare": "F(arg, res, iw, cw, 0); neuron_value_and_grad(w, x, &value, g_w, g_x, work);\n"
            '    fprintf(stderr, "diff %g\\n", (value - c_value) + (g_w[0] - c_gw[0]) + (g_x[1] - c_gx[1]));',
        }
    if case == "tanh_layer":
        return {
            "declare": "static double W[10000], b[100], x[100], g_W[10000], g_b[100], g_x[100];\n"
            "    static double c_gW[10000], c_gb[100], c_gx[100];\n"
            "    double value, c_value;\n"
            "    for (int i = 0; i < 10000; i++) W[i] = 0.01 * ((i * 37) % 101 - 50) / 50.0;\n"
            "    for (int i = 0; i < 100; i++) { b[i] = 0.001 * i; x[i] = ((i * 13) % 29) / 29.0; }",
            "work": "tanh_layer_WORK_SIZE",
            "casadi_args": "arg[0] = W; arg[1] = b; arg[2] = x;\n"
            "    res[0] = &c_value; res[1] = c_gW; res[2] = c_gb; res[3] = c_gx;",
            "call_gradgen": "tanh_layer_value_and_grad(W, b, x, &value, g_W, g_b, g_x, work);",
            "compare": "F(arg, res, iw, cw, 0);\n"
            "    tanh_layer_value_and_grad(W, b, x, &value, g_W, g_b, g_x, work);\n"
            '    fprintf(stderr, "diff %g\\n", (value - c_value) + (g_W[517] - c_gW[517]) + (g_x[3] - c_gx[3]));',
        }
    return {
        "declare": "double a = 0.998, b = 0.0004, c = 0.997, x0 = 0.9;\n"
        "    double value, g_a, g_b, g_c, g_x0, c_value, c_ga, c_gb, c_gc, c_gx0;",
        "work": "scalar_chain_WORK_SIZE",
        "casadi_args": "arg[0] = &a; arg[1] = &b; arg[2] = &c; arg[3] = &x0;\n"
        "    res[0] = &c_value; res[1] = &c_ga; res[2] = &c_gb; res[3] = &c_gc; res[4] = &c_gx0;",
        "call_gradgen": "scalar_chain_value_and_grad(a, b, c, x0, &value, &g_a, &g_b, &g_c, &g_x0, work);",
        "compare": "F(arg, res, iw, cw, 0);\n"
        "    scalar_chain_value_and_grad(a, b, c, x0, &value, &g_a, &g_b, &g_c, &g_x0, work);\n"
        '    fprintf(stderr, "diff %g\\n", (value - c_value) + (g_a - c_ga) + (g_x0 - c_gx0));',
    }


def _compile(cc: str, flags: list[str], source: Path, out: Path) -> float:
    """The compiler's CPU time (user + system: what a loaded machine changes least)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([cc, *flags, "-c", str(source), "-o", str(out)], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_case(name: str, flags: list[str], calls: int, rounds: int, folder: Path) -> dict:
    cc = os.environ.get("CC") or shutil.which("cc") or "cc"
    case = name.removesuffix("_loop")
    loops = ["--loops", "keep"] if name.endswith("_loop") else UNROLL
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            str(ROOT / "bench" / "cases" / f"{case}.py"),
            "--target",
            "c",
            "--out",
            str(folder),
            "--no-check",
            *loops,
        ],
        check=True,
        capture_output=True,
    )
    ours = folder / f"{case}_grad.c"
    theirs = _casadi_source(case, folder)
    t_ours = _compile(cc, flags, ours, folder / "ours.o")
    t_theirs = _compile(cc, flags, theirs, folder / "theirs.o")
    harness = folder / "harness.c"
    harness.write_text(HARNESS.format(stem=case, **_harness(case)))
    exe = folder / "harness"
    subprocess.run(
        [
            cc,
            *flags,
            f"-I{folder}",
            str(harness),
            str(folder / "ours.o"),
            str(folder / "theirs.o"),
            "-lm",
            "-o",
            str(exe),
        ],
        check=True,
    )
    done = subprocess.run(
        [str(exe), str(calls), str(rounds)], check=True, capture_output=True, text=True
    )
    rows = [tuple(map(float, line.split())) for line in done.stdout.split("\n") if line.strip()]
    diff = next(line for line in done.stderr.splitlines() if line.startswith("diff"))
    return {
        "case": name,
        "ours_ns": statistics.median(r[0] for r in rows),
        "casadi_ns": statistics.median(r[1] for r in rows),
        "ours_compile": t_ours,
        "casadi_compile": t_theirs,
        "ours_lines": ours.read_text().count("\n"),
        "casadi_lines": theirs.read_text().count("\n"),
        "diff": float(diff.split()[1]),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--flags", default="-O2", help="compiler flags for both (default -O2)")
    p.add_argument("--calls", type=int, default=0, help="calls a round (default: by case)")
    p.add_argument("--rounds", type=int, default=15)
    opts = p.parse_args(argv)
    flags = opts.flags.split()
    print(f"C: gradgen vs CasADi, {' '.join(flags)}, median of {opts.rounds} rounds, one thread")
    print()
    print(
        "| case | gradgen ns/call | CasADi ns/call | gradgen / CasADi | gradgen cc CPU s | CasADi cc CPU s | gradgen lines | CasADi lines |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for case in opts.cases.split(","):
        calls = opts.calls or {"neuron": 2_000_000, "tanh_layer": 2_000}.get(case, 20_000)
        with tempfile.TemporaryDirectory() as tmp:
            r = run_case(case, flags, calls, opts.rounds, Path(tmp))
        assert abs(r["diff"]) < 1e-9, f"{case}: the two disagree by {r['diff']}"
        print(
            f"| {case} | {r['ours_ns']:.1f} | {r['casadi_ns']:.1f} | "
            f"{r['ours_ns'] / r['casadi_ns']:.2f} | {r['ours_compile']:.2f} | "
            f"{r['casadi_compile']:.2f} | {r['ours_lines']} | {r['casadi_lines']} |"
        )


if __name__ == "__main__":
    main()
