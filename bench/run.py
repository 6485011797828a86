"""Benchmark gradgen's generated Python against hand-written numpy, torch, jax and autograd.

    python bench/run.py [--cases a,b] [--rounds N] [--quick]

For each case in bench/cases/ this

1. runs the gradgen CLI on the case (``gradgen CASE.py --out DIR --no-check``) and
   imports the generated ``CASE_grad.py`` by path;
2. checks every system's value and gradients against the hand-written version
   (allclose, rtol 1e-6) before any timing; a system that disagrees is not timed;
3. runs everything on one thread (BLAS, OpenMP, torch and XLA);
4. times the systems interleaved in rounds, each round timing each system with a
   timeit-style autorange, and reports medians per call for value_and_grad and for
   forward only, the grad/forward ratio, and the median over rounds of each round's
   ratio to the hand-written time; jax's first calls (trace + compile) are reported apart;
5. measures peak memory with tracemalloc for the array cases (numpy-based systems only);
6. writes bench/RESULTS.md (machine, versions, date, tables) and prints it.

A system that is missing (not installed) or fails is reported as such and the rest runs.
"""

from __future__ import annotations

import os

# Threads are pinned before numpy, torch or jax is imported: the BLAS libraries read these
# once, when they load. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are deliberately left alone.
for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
):
    os.environ[_var] = "1"
_XLA_SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
if _XLA_SINGLE_THREAD not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_XLA_SINGLE_THREAD}".strip()

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402
import tracemalloc  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from systems import CASE_NAMES, Impl, case_path, import_path, load_case  # noqa: E402

# (key, column title, module in bench/systems). "hand" is the reference and always runs.
SYSTEMS = (
    ("hand", "hand-written", "systems.handwritten"),
    ("gradgen", "gradgen", None),
    ("torch", "torch eager", "systems.torch_eager"),
    ("jax", "jax.jit", "systems.jax_jit"),
    ("autograd", "autograd", "systems.autograd_hips"),
)
TITLES = {key: title for key, title, _ in SYSTEMS}
NUMPY_SYSTEMS = ("hand", "gradgen", "autograd")  # what tracemalloc can see
MEMORY_CASES = ("element_reads", "mlp", "mlp_b1", "elementwise", "rnn")
RTOL = 1e-6  # float64 agreement with the hand-written gradients
ATOL_SCALE = 1e-8  # elements this far below the array's largest are compared absolutely
SEED = 0


# ----------------------------------------------------------------------------- results


@dataclass
class Run:
    """One system on one case: its implementation, its status, its measurements."""

    impl: Impl | None = None
    args: tuple = ()
    error: str | None = None  # missing, failed to build, or wrong: then not timed
    max_err: float | None = None  # worst scaled error against the hand-written result
    first_fwd: float | None = None  # seconds for the first forward call (jax: compile)
    first_vg: float | None = None
    vg: list[float] = field(default_factory=list)  # seconds per call, one per round
    fwd: list[float] = field(default_factory=list)
    peak_vg: int | None = None  # bytes, tracemalloc
    peak_fwd: int | None = None


@dataclass
class CaseResult:
    """All systems on one case."""

    name: str
    runs: dict[str, Run]
    cpu_share: float | None = None  # this process's CPU time / wall time while timing


# ----------------------------------------------------------------------------- gradgen


def gradgen_command(override: str | None) -> list[str] | None:
    """The gradgen CLI as an argv prefix: --gradgen, else `gradgen` on PATH, else the checkout's cli.py."""
    if override:
        return shlex.split(override)
    exe = shutil.which("gradgen")
    if exe:
        return [exe]
    if (ROOT / "cli.py").exists():
        return [sys.executable, str(ROOT / "cli.py")]
    return None


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_gradgen(
    cmd: list[str] | None, case: str, out_dir: Path, timeout: float
) -> tuple[Any, float | None, str | None]:
    """Run the CLI on bench/cases/CASE.py; return (generated module or None, seconds, error)."""
    if cmd is None:
        return None, None, "gradgen not found (no `gradgen` on PATH and no cli.py in the checkout)"
    argv = [*cmd, str(case_path(case)), "--out", str(out_dir), "--no-check"]
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None, None, f"gradgen timed out after {timeout:.0f} s"
    except OSError as e:
        return None, None, f"cannot run {shlex.join(argv)}: {e}"
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        # A clean CLI error is its first line (+ hint); a crash's useful line is its last.
        detail = lines[-1] if lines and "Traceback" in proc.stderr else " ".join(lines[:2])
        return None, seconds, _short(f"CLI exit {proc.returncode}: {detail}")
    path = out_dir / f"{case}_grad.py"
    try:
        module = import_path(path, f"bench_generated_{case}")
    except Exception as e:  # the generated file itself may be broken
        return None, seconds, _short(f"importing {path.name} failed: {type(e).__name__}: {e}")
    return module, seconds, None


def gradgen_impl(module: Any, case: str) -> Impl:
    """The generated module's NAME and NAME_value_and_grad as an Impl."""
    try:
        return Impl(getattr(module, case), getattr(module, f"{case}_value_and_grad"))
    except AttributeError as e:
        raise RuntimeError(f"generated module lacks {e.name}") from None


# ----------------------------------------------------------------------------- checking


def to_numpy(x: Any) -> np.ndarray:
    """A system's output (float, ndarray, torch tensor, jax array) as a float64 ndarray."""
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def scaled_error(got: Any, ref: Any) -> float:
    """Worst |got - ref| / (rtol |ref| + atol), atol relative to the array's largest entry.

    <= 1 means allclose(got, ref, rtol=RTOL, atol=ATOL_SCALE * max|ref|).
    """
    got, ref = to_numpy(got), to_numpy(ref)
    if got.shape != ref.shape:
        raise ValueError(f"shape {got.shape}, expected {ref.shape}")
    if not np.all(np.isfinite(got)):
        return float("inf")
    atol = ATOL_SCALE * float(np.max(np.abs(ref), initial=0.0)) or 1e-300
    return float(np.max(np.abs(got - ref) / (RTOL * np.abs(ref) + atol), initial=0.0))


def check(impl: Impl, native: tuple, ref_value: Any, ref_grads: tuple, run: Run) -> None:
    """First calls (timed: jax compiles here), then the comparison; sets run.error if wrong."""
    start = time.perf_counter()
    value = impl.forward(*native)
    run.first_fwd = time.perf_counter() - start
    start = time.perf_counter()
    vg_value, grads = impl.value_and_grad(*native)
    run.first_vg = time.perf_counter() - start
    if len(grads) != len(ref_grads):
        run.error = f"wrong: {len(grads)} gradients, expected {len(ref_grads)}"
        return
    errors = {
        "forward value": scaled_error(value, ref_value),
        "value": scaled_error(vg_value, ref_value),
    }
    for i, (g, r) in enumerate(zip(grads, ref_grads)):
        errors[f"grad {i}"] = scaled_error(g, r)
    worst = max(errors, key=errors.get)
    run.max_err = errors[worst]
    if not run.max_err <= 1.0:
        run.error = f"wrong: {worst} differs from hand-written ({run.max_err:.3g} x tolerance)"


# ----------------------------------------------------------------------------- timing


def autorange(fn: Callable, args: tuple, target: float, repeat: int = 1) -> float:
    """Seconds per call of fn(*args), as `python -m timeit` measures it.

    The number of calls grows 1, 2, 5, 10, 20, ... until they take >= target seconds; that
    batch is then run `repeat` times in all and the best batch counts (a burst of other
    load on the machine only ever slows a batch down). The statement is `fn(*args)`
    compiled into timeit's loop (no extra lambda), and timeit switches the garbage
    collector off while it times, as usual.
    """
    timer = timeit.Timer("_f(*_a)", globals={"_f": fn, "_a": args})
    number = 1
    while True:
        for k in (1, 2, 5):
            n = number * k
            seconds = timer.timeit(n)
            if seconds >= target:
                best = min([seconds, *(timer.timeit(n) for _ in range(repeat - 1))])
                return best / n
        number *= 10


def time_rounds(
    runs: dict[str, Run], opts: argparse.Namespace, log: Callable[[str], None]
) -> float:
    """Time every healthy system, interleaved: each round visits all systems, order rotated.

    Returns the process's CPU time over wall time for the whole timing: everything runs on
    one thread, so a share well under 1 means the process waited (other load on the
    machine, or the hypervisor) and the times are less trustworthy.
    """
    keys = [k for k, r in runs.items() if r.error is None]
    wall, cpu = time.perf_counter(), time.process_time()
    for r in range(opts.rounds):
        order = keys[r % len(keys) :] + keys[: r % len(keys)]
        for key in order:
            run = runs[key]
            run.vg.append(autorange(run.impl.value_and_grad, run.args, opts.target, opts.repeat))
            run.fwd.append(autorange(run.impl.forward, run.args, opts.target, opts.repeat))
        log(f"    round {r + 1}/{opts.rounds} done")
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def peak_memory(fn: Callable, args: tuple) -> int:
    """Peak bytes traced by tracemalloc during one call (after a warm-up call), outputs included."""
    gc.collect()
    tracemalloc.start()
    try:
        fn(*args)
        gc.collect()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = fn(*args)
        peak = tracemalloc.get_traced_memory()[1] - base
        del out
    finally:
        tracemalloc.stop()
    return peak


# ----------------------------------------------------------------------------- one case


def load_system(key: str, module_name: str | None, cache: dict) -> Any:
    """Import a system module once; returns the module or the error text."""
    if key not in cache:
        try:
            cache[key] = importlib.import_module(module_name)
            if key == "torch":
                import torch

                torch.set_num_threads(1)
                try:
                    torch.set_num_interop_threads(1)
                except RuntimeError:  # only allowed before torch's first parallel work
                    pass
        except ImportError as e:
            cache[key] = f"not installed ({e.name or e})"
        except Exception as e:
            cache[key] = _short(f"import failed: {type(e).__name__}: {e}")
    return cache[key]


def run_case(
    case: str,
    systems: list[str],
    generated: dict[str, tuple[Any, float | None, str | None]],
    modules: dict,
    opts: argparse.Namespace,
    log: Callable[[str], None],
) -> CaseResult:
    """Build, check, time and measure every system on one case."""
    module = load_case(case)
    args = module._bench_args(np.random.default_rng(SEED))
    runs: dict[str, Run] = {}
    ref_value = ref_grads = None
    for key, _, module_name in SYSTEMS:
        if key not in systems:
            continue
        run = runs[key] = Run()
        try:
            if key == "gradgen":
                gen_module, _, err = generated[case]
                if err:
                    raise RuntimeError(err)
                run.impl = gradgen_impl(gen_module, case)
            else:
                sysmod = load_system(key, module_name, modules)
                if isinstance(sysmod, str):
                    raise RuntimeError(sysmod)
                run.impl = sysmod.build(case, module)
            run.args = run.impl.prepare(args)
            if key == "hand":
                ref_value, ref_grads = run.impl.value_and_grad(*run.args)
                ref_grads = tuple(np.copy(to_numpy(g)) for g in ref_grads)
                ref_value = float(ref_value)
            check(run.impl, run.args, ref_value, ref_grads, run)
        except Exception as e:
            run.error = _short(
                str(e) if isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}"
            )
        status = run.error or f"ok (max error {run.max_err:.2g} x tol)"
        log(f"  {TITLES[key]}: {status}")
        if key == "hand" and run.error:
            raise SystemExit(f"hand-written {case} failed: {run.error}")
    cpu_share = time_rounds(runs, opts, log)
    if case in MEMORY_CASES:
        for key in NUMPY_SYSTEMS:
            run = runs.get(key)
            if run is not None and run.error is None:
                run.peak_vg = peak_memory(run.impl.value_and_grad, run.args)
                run.peak_fwd = peak_memory(run.impl.forward, run.args)
    return CaseResult(case, runs, cpu_share)


# ----------------------------------------------------------------------------- report


def fmt_time(seconds: float | None) -> str:
    """A duration with 3 significant digits and a unit: 812 ns, 4.21 µs, 13.0 ms, 1.52 s."""
    if seconds is None:
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_ratio(x: float | None) -> str:
    """A ratio as '2.31×' (3 significant digits)."""
    return "–" if x is None else f"{x:.3g}×"


def fmt_mb(n: int | None) -> str:
    """Bytes as MB (10^6) with 3 significant digits."""
    return "–" if n is None else f"{n / 1e6:.3g} MB"


def median(xs: list[float]) -> float | None:
    """The median, or None for no data."""
    return statistics.median(xs) if xs else None


def round_ratios(num: list[float], den: list[float]) -> float | None:
    """The median over rounds of num[r] / den[r]."""
    return median([a / b for a, b in zip(num, den)]) if num and den else None


def cell_error(text: str) -> str:
    """An error as a table cell: short, no pipes."""
    return _short(text, 60).replace("|", "/")


def machine_info(systems: list[str], modules: dict, gradgen_cmd: list[str] | None) -> list[str]:
    """Markdown bullet lines: platform, CPU, numpy and its BLAS, threads, library versions."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    lines = [
        f"- platform: {platform.platform()}, Python {platform.python_version()}",
        f"- CPU: {cpu} ({cores} usable cores; all timings on 1 thread)",
        f"- numpy {np.__version__}; BLAS: {blas_info()}",
    ]
    coretype = {
        v: os.environ[v] for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ
    }
    lines.append(
        "- thread pinning: OMP/OPENBLAS/MKL_NUM_THREADS=1, torch.set_num_threads(1), "
        f"XLA_FLAGS=`{os.environ.get('XLA_FLAGS', '')}`"
        + (
            f"; left as found: {', '.join(f'{k}={v}' for k, v in coretype.items())}"
            if coretype
            else ""
        )
    )
    versions = []
    for key, dist in (
        ("torch", "torch"),
        ("jax", "jax"),
        ("jax", "jaxlib"),
        ("autograd", "autograd"),
    ):
        if key in systems and not isinstance(modules.get(key), str):
            versions.append(f"{dist} {dist_version(dist)}")
    if versions:
        lines.append(f"- {', '.join(versions)}")
    if "gradgen" in systems:
        lines.append(f"- gradgen: {gradgen_version(gradgen_cmd)}")
    return lines


def dist_version(dist: str) -> str:
    """An installed distribution's version, or '?'."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def blas_info() -> str:
    """numpy's BLAS: from threadpoolctl when installed, else numpy.show_config."""
    try:
        from threadpoolctl import threadpool_info

        infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if infos:
            return "; ".join(
                f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')} kernel, "
                f"{i.get('num_threads')} thread{'s' if i.get('num_threads') != 1 else ''})"
                for i in infos
            )
    except ImportError:
        pass
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')} (from numpy.show_config)"
    except Exception:
        return "unknown"


def gradgen_version(cmd: list[str] | None) -> str:
    """`gradgen --version` and the command used, or why there is none."""
    if cmd is None:
        return "not found"
    try:
        proc = subprocess.run(
            [*cmd, "--version"], capture_output=True, text=True, timeout=60, cwd=ROOT
        )
        version = (proc.stdout or proc.stderr).strip() or f"exit {proc.returncode}"
    except (OSError, subprocess.TimeoutExpired) as e:
        version = f"--version failed: {e}"
    return f"{_short(version, 80)} (run as `{shlex.join(cmd)}`)"


def report(
    results: list[CaseResult],
    systems: list[str],
    header: list[str],
    opts: argparse.Namespace,
    gen_times: dict,
) -> str:
    """The whole RESULTS.md text."""
    cols = [k for k, _, _ in SYSTEMS if k in systems]
    out = ["# gradgen benchmark results", ""]
    out += header
    out += [
        "",
        f"{opts.rounds} rounds; in each round every system is timed once per mode, timeit-style "
        f"(calls batched up to >= {opts.target:g} s, best of {opts.repeat} batch"
        f"{'es' if opts.repeat != 1 else ''}), systems interleaved, order rotated each round. "
        "Times are medians per call over rounds; `× hand` is the median over rounds of that "
        "round's ratio to the hand-written time (lower is better, 1× is hand-written speed).",
        "",
        "## value_and_grad: median time per call (× hand-written)",
        "",
        "| case | " + " | ".join(TITLES[k] for k in cols) + " |",
        "| --- | " + " | ".join("---:" for _ in cols) + " |",
    ]
    errors = []
    for res in results:
        cells = []
        for k in cols:
            run = res.runs[k]
            if run.error:
                cells.append(f"{cell_error(run.error)}")
                errors.append(f"- {res.name} / {TITLES[k]}: {run.error}")
            else:
                ratio = (
                    ""
                    if k == "hand"
                    else f" ({fmt_ratio(round_ratios(run.vg, res.runs['hand'].vg))})"
                )
                cells.append(fmt_time(median(run.vg)) + ratio)
        out.append(f"| {res.name} | " + " | ".join(cells) + " |")

    out += ["", "## forward only: median time per call (× hand-written)", ""]
    out += ["| case | " + " | ".join(TITLES[k] for k in cols) + " |"]
    out += ["| --- | " + " | ".join("---:" for _ in cols) + " |"]
    for res in results:
        cells = []
        for k in cols:
            run = res.runs[k]
            if run.error:
                cells.append("–")
            else:
                ratio = (
                    ""
                    if k == "hand"
                    else f" ({fmt_ratio(round_ratios(run.fwd, res.runs['hand'].fwd))})"
                )
                cells.append(fmt_time(median(run.fwd)) + ratio)
        out.append(f"| {res.name} | " + " | ".join(cells) + " |")

    out += ["", "## Per case", ""]
    for res in results:
        hand = res.runs["hand"]
        mem = res.name in MEMORY_CASES
        out += [f"### {res.name}", ""]
        if res.cpu_share is not None:
            busy = (
                " — under ~90%: the machine was busy, trust these less"
                if res.cpu_share < 0.9
                else ""
            )
            out += [
                f"CPU share of the benchmark process while timing: {res.cpu_share:.0%}{busy}.",
                "",
            ]
        head = "| system | value_and_grad | forward | grad / forward | vg × hand | fwd × hand | max err (× tol) |"
        rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        if mem:
            head += " peak mem vg | peak mem fwd |"
            rule += " ---: | ---: |"
        out += [head, rule]
        for k in cols:
            run = res.runs[k]
            if run.error:
                out.append(f"| {TITLES[k]} | {cell_error(run.error)} |" + " |" * (7 if mem else 5))
                continue
            row = [
                TITLES[k],
                fmt_time(median(run.vg)),
                fmt_time(median(run.fwd)),
                fmt_ratio(round_ratios(run.vg, run.fwd)),
                fmt_ratio(round_ratios(run.vg, hand.vg)),
                fmt_ratio(round_ratios(run.fwd, hand.fwd)),
                f"{run.max_err:.2g}",
            ]
            if mem:
                row += [fmt_mb(run.peak_vg), fmt_mb(run.peak_fwd)]
            out.append("| " + " | ".join(row) + " |")
        out.append("")

    compile_rows = []
    for res in results:
        jax_run = res.runs.get("jax")
        gen_s = gen_times.get(res.name)
        jax_ok = jax_run is not None and jax_run.error is None
        if gen_s is None and not jax_ok:
            continue
        compile_rows.append(
            f"| {res.name} | {fmt_time(gen_s)} | "
            + (
                f"{fmt_time(jax_run.first_fwd)} | {fmt_time(jax_run.first_vg)} |"
                if jax_ok
                else "– | – |"
            )
        )
    if compile_rows:
        out += [
            "## Compile time (not in the timings above)",
            "",
            "gradgen: wall time of the whole CLI run (`--no-check`, includes starting Python). "
            "jax: the first call of the jitted function (trace + XLA compile + one run).",
            "",
            "| case | gradgen CLI | jax.jit forward, first call | jax.jit value_and_grad, first call |",
            "| --- | ---: | ---: | ---: |",
            *compile_rows,
            "",
        ]
    if any(res.name in MEMORY_CASES for res in results):
        out += [
            "Peak memory: tracemalloc's peak during one call (after a warm-up call), outputs "
            "included; numpy-based systems only (torch and jax allocate outside its view).",
            "",
        ]
    if errors:
        out += ["## Errors and skipped systems", "", *errors, ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", help=f"comma-separated subset of: {','.join(CASE_NAMES)}")
    p.add_argument(
        "--systems",
        help=f"comma-separated subset of: {','.join(k for k, _, _ in SYSTEMS)} (hand always runs)",
    )
    p.add_argument("--rounds", type=int, help="timing rounds (default 5; 3 with --quick)")
    p.add_argument(
        "--target",
        type=float,
        help="seconds of calls per timed batch (default 0.1; 0.02 with --quick)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        help="batches per system per round, best counts (default 3; 1 with --quick)",
    )
    p.add_argument("--quick", action="store_true", help="fewer, shorter rounds: a smoke run")
    p.add_argument(
        "--gradgen",
        metavar="CMD",
        help="the gradgen command (default: `gradgen` on PATH, else the checkout's cli.py)",
    )
    p.add_argument(
        "--gen-dir",
        type=Path,
        default=BENCH / "_generated",
        help="where gradgen writes (default bench/_generated)",
    )
    p.add_argument(
        "--gradgen-timeout", type=float, default=900.0, help="seconds allowed per gradgen run"
    )
    p.add_argument(
        "--results",
        type=Path,
        default=BENCH / "RESULTS.md",
        help="the report to write (default bench/RESULTS.md)",
    )
    opts = p.parse_args(argv)
    opts.rounds = opts.rounds or (3 if opts.quick else 5)
    opts.target = opts.target or (0.02 if opts.quick else 0.1)
    opts.repeat = opts.repeat or (1 if opts.quick else 3)
    if opts.rounds < 1 or opts.repeat < 1 or opts.target <= 0:
        p.error("--rounds and --repeat must be >= 1, --target > 0")
    opts.case_list = _subset(p, opts.cases, CASE_NAMES, "case")
    opts.system_list = _subset(p, opts.systems, tuple(k for k, _, _ in SYSTEMS), "system")
    if "hand" not in opts.system_list:
        opts.system_list.insert(0, "hand")
    return opts


def _subset(p: argparse.ArgumentParser, text: str | None, known: tuple, what: str) -> list[str]:
    if not text:
        return list(known)
    chosen = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in known]
    if unknown:
        p.error(f"unknown {what}(s): {', '.join(unknown)} (known: {', '.join(known)})")
    return [c for c in known if c in chosen]


def _load() -> float:
    """The 1-minute load average (nan where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (0 even when some systems fail)."""
    opts = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:  # numpy's BLAS too, whatever it read from the environment
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass

    systems = opts.system_list
    cmd = gradgen_command(opts.gradgen) if "gradgen" in systems else None
    generated: dict[str, tuple[Any, float | None, str | None]] = {}
    gen_times: dict[str, float] = {}
    if "gradgen" in systems:
        opts.gen_dir.mkdir(parents=True, exist_ok=True)
        for case in opts.case_list:
            log(f"gradgen {case} ...")
            generated[case] = run_gradgen(cmd, case, opts.gen_dir, opts.gradgen_timeout)
            if generated[case][1] is not None and generated[case][2] is None:
                gen_times[case] = generated[case][1]
            if generated[case][2]:
                log(f"  {generated[case][2]}")

    modules: dict = {}
    results = []
    load_before = _load()
    for case in opts.case_list:
        log(f"{case}:")
        results.append(run_case(case, systems, generated, modules, opts, log))

    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load_text = f"load average (1 min) {load_before:.2f} at the start, {_load():.2f} at the end"
    argv_text = shlex.join(["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    header = [
        f"Run `{argv_text}` on {stamp}.",
        "",
        *machine_info(systems, modules, cmd),
        f"- {load_text}",
    ]
    text = report(results, systems, header, opts, gen_times)
    opts.results.write_text(text + "\n")
    print(text)
    log(f"wrote {opts.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
