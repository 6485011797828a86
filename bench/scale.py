"""How gradgen's stages scale: graphs of 1k, 10k and 100k nodes, each stage timed alone.

Generates expr.py sources of a given size, runs `codegen.pipeline.compile_file` on them
with every stage wrapped in a timer (load, trace, autodiff, passes, emit, black), and
reports seconds and microseconds per traced node, so that a stage whose cost per node
grows with the size shows at a glance. The cases:

- chain: one long scalar chain, `a{i+1} = np.sin(a{i}) * y + a{i} * 0.5`, each line
  reusing the previous value twice (fan-out) — deep graphs, many user-named lines;
- wide: array expressions, `s = s + np.tanh(x * c_i + w)` on f64[16] — one local rebound
  every line, two parameters read by every term (a copy gate with N branches);
- loop: the chain as a Python `for` loop (a short source that traces to a big graph);
- reads: `h = np.tanh(a * h + b * x[i])` for nodes/4 steps, x an array of that many
  elements — every step reads one element of x, whose gradient gathers nodes/4 parts.

    python bench/scale.py          # 1k, 10k, 100k; tables into bench/SCALE.md, notes kept
    python bench/scale.py --sizes 1000,10000 --cases chain
    python bench/scale.py --profile chain:100000   # cProfile of one run, top functions
    python bench/scale.py --sizes 100000 --cases reads --black-max 0   # the target row

The loop cases are compiled with `--loops unroll` (what they measure is the unrolled
graph; `--loops auto` would keep them as loops). Where a (case, size) has a target in
TARGETS, the whole command is also run as a user runs it, in a new process, and its
median wall time is reported against the target: `reads` at 100,000 nodes is issue 16's
25,000-step chain, which must take at most 10 s without the check.

Stages are timed by wrapping the functions `compile_file` calls (by name, in the modules
it calls them through), so the numbers follow the pipeline as it is. Black is switched off
inside the pipeline and run afterwards on the very text the pipeline produced, so the
"pipeline" column is compile_file end to end less formatting, and black's column
is black alone on the same file, called directly (codegen/format.py skips black above
BLACK_MAX_LINES; here it always runs, up to `--black-max` nodes: it is the slow one).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import inspect
import io
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import black  # noqa: E402

from codegen import format as gradgen_format  # noqa: E402
from codegen import passes, pipeline  # noqa: E402
from codegen.emit import python as emit_python  # noqa: E402

# traced forward nodes each line/iteration adds (reads: and one index node a step)
OPS_PER_LINE = {"chain": 4, "wide": 4, "loop": 4, "reads": 4}
STAGES = ["load", "trace", "autodiff", "passes", "emit", "black"]
# end-to-end targets, seconds: (case, nodes) -> the most the whole command may take
TARGETS = {("reads", 100_000): 10.0}  # issue 16: the 25,000-step x[i] chain, --no-check


# ---- sources ------------------------------------------------------------------------------


def chain_source(nodes: int) -> str:
    """Scalar chain: sin, mul, mul, add per line; each value read twice by the next line."""
    lines = ["import numpy as np", "", "", 'def f(x: "f64[]", y: "f64[]"):', "    a0 = x"]
    for i in range(max(1, nodes // OPS_PER_LINE["chain"])):
        lines.append(f"    a{i + 1} = np.sin(a{i}) * y + a{i} * 0.5")
    lines.append(f"    return a{i + 1}")
    return "\n".join(lines) + "\n"


def wide_source(nodes: int) -> str:
    """Array terms: mul, add, tanh, add (the accumulation) per line, on f64[16] arrays."""
    lines = ["import numpy as np", "", "", 'def f(x: "f64[16]", w: "f64[16]"):', "    s = x"]
    for i in range(max(1, nodes // OPS_PER_LINE["wide"])):
        c = 0.5 + (i % 97) / 97.0
        lines.append(f"    s = s + np.tanh(x * {c!r} + w)")
    lines.append("    return np.sum(s)")
    return "\n".join(lines) + "\n"


def loop_source(nodes: int) -> str:
    """The chain as a loop: a ten-line source, the same graph."""
    n = max(1, nodes // OPS_PER_LINE["loop"])
    return (
        "import numpy as np\n\n\n"
        'def f(x: "f64[]", y: "f64[]"):\n'
        "    a = x\n"
        f"    for _ in range({n}):\n"
        "        a = np.sin(a) * y + a * 0.5\n"
        "    return a\n"
    )


def reads_source(nodes: int) -> str:
    """A loop reading x[i] at every step (bench/cases/element_reads.py at nodes/4 steps)."""
    n = max(1, nodes // OPS_PER_LINE["reads"])
    return (
        "import numpy as np\n\n\n"
        f'def f(a, b, x: "f64[{n}]"):\n'
        "    h = 0.0\n"
        f"    for i in range({n}):\n"
        "        h = np.tanh(a * h + b * x[i])\n"
        "    return h\n"
    )


CASES: dict[str, Callable[[int], str]] = {
    "chain": chain_source,
    "wide": wide_source,
    "loop": loop_source,
    "reads": reads_source,
}


# ---- timing -------------------------------------------------------------------------------


class Timer:
    """Accumulated seconds per stage while wrapped functions run."""

    def __init__(self) -> None:
        self.seconds = {s: 0.0 for s in STAGES}
        self.unformatted: list[str] = []

    def wrap(self, stage: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start

        return timed


@contextmanager
def instrumented(timer: Timer) -> Iterator[None]:
    """Wrap the stage functions where compile_file looks them up; restore them after."""
    targets = [
        (pipeline, "load", "load"),
        (pipeline, "trace_function", "trace"),
        (pipeline, "vjp_graph", "autodiff"),
        (passes, "run_pipeline", "passes"),
        (passes, "lower", "passes"),
        (emit_python, "emit_module", "emit"),
    ]
    saved = []
    for module, name, stage in targets:
        if hasattr(module, name):
            original = getattr(module, name)
            saved.append((module, name, original))
            setattr(module, name, timer.wrap(stage, original))
    original_format = pipeline.format_python

    def keep(text: str) -> str:  # black runs later, alone, on this text
        timer.unformatted.append(text)
        return text

    pipeline.format_python = keep
    try:
        yield
    finally:
        pipeline.format_python = original_format
        for module, name, original in saved:
            setattr(module, name, original)


def _loops(mode: str) -> dict:
    """compile_file's `loops` argument, where it has one (a `for` kept as a loop region):
    these cases measure the unrolled graph, so they unroll."""
    return {"loops": mode} if "loops" in inspect.signature(pipeline.compile_file).parameters else {}


def measure(case: str, nodes: int, folder: Path, black_max: int, loops: str = "unroll") -> dict:
    """Compile one generated source; stage times, node counts and output size."""
    path = folder / f"{case}_{nodes}.py"
    path.write_text(CASES[case](nodes))
    timer = Timer()
    gc.collect()
    old_limit = sys.getrecursionlimit()
    start = time.perf_counter()
    try:
        with instrumented(timer):
            compiled = pipeline.compile_file(path, **_loops(loops))
        error = ""
    except Exception as e:  # a stage that fails at this size is a result too
        compiled, error = None, f"{type(e).__name__}: {str(e)[:200]}"
    finally:
        sys.setrecursionlimit(old_limit)
    wall = time.perf_counter() - start
    if compiled is not None and nodes <= black_max:
        start = time.perf_counter()
        for text in timer.unformatted:  # black itself, whatever format_python's size policy
            black.format_str(text, mode=gradgen_format.MODE)
        timer.seconds["black"] = time.perf_counter() - start
    else:
        timer.seconds["black"] = float("nan")
    row = {"case": case, "nodes": nodes, "wall": wall, "error": error, **timer.seconds}
    if compiled is not None:
        t = compiled.functions[0]
        row["forward_nodes"] = len(t.forward.nodes)
        grad = t.value_and_grad or t.vjp
        row["grad_nodes"] = len(grad.nodes)
        row["lines"] = compiled.source.count("\n")
    return row


def end_to_end(case: str, nodes: int, folder: Path, loops: str = "unroll") -> dict:
    """`python cli.py FILE --no-check` in a fresh process, as a user runs it: the wall and
    CPU seconds of the whole command (start-up, writing and exit included)."""
    path = folder / f"{case}_{nodes}.py"
    path.write_text(CASES[case](nodes))
    command = [sys.executable, str(ROOT / "cli.py"), str(path), "--no-check"]
    command += ["--out", str(folder / "out")]
    if _loops(loops):
        command += ["--loops", loops]
    start = time.perf_counter()
    before = os.times()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    after = os.times()
    wall = time.perf_counter() - start
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    error = "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1]
    return {"case": case, "nodes": nodes, "wall": wall, "cpu": cpu, "error": error}


# ---- reporting ----------------------------------------------------------------------------


def _num(x: float, digits: int = 3) -> str:
    return "skipped" if x != x else f"{x:.{digits}f}"


def table(rows: list[dict]) -> str:
    """Seconds per stage; `pipeline` is compile_file's wall time with black switched off."""
    head = ["case", "nodes (fwd / grad)", "lines out", *STAGES[:-1], "pipeline", "µs/node"]
    head += ["black", "black µs/node"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["error"]:
            out.append(
                f"| {r['case']} | {r['nodes']:,} | failed: {r['error']} |" + " |" * (len(head) - 3)
            )
            continue
        n = r["forward_nodes"]
        cells = [
            r["case"],
            f"{r['forward_nodes']:,} / {r['grad_nodes']:,}",
            f"{r['lines']:,}",
            *(_num(r[s]) for s in STAGES[:-1]),
            _num(r["wall"], 2),
            _num(1e6 * r["wall"] / n, 1),
            _num(r["black"], 2),
            _num(1e6 * r["black"] / n, 1),
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def target_table(rows: list[dict]) -> str:
    """The whole command's seconds beside its target (issue 16: the 25,000-step chain of
    `reads` in at most 10 s)."""
    out = ["| case | nodes | wall s | CPU s | target s | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        target = TARGETS[(r["case"], r["nodes"])]
        if r["error"]:
            out.append(f"| {r['case']} | {r['nodes']:,} | failed: {r['error']} | | {target} | no |")
            continue
        met = "yes" if r["wall"] <= target else "no"
        cells = [r["case"], f"{r['nodes']:,}", f"{r['wall']:.2f}", f"{r['cpu']:.2f}", str(target)]
        out.append("| " + " | ".join(cells + [met]) + " |")
    return "\n".join(out)


def per_node_table(rows: list[dict]) -> str:
    """µs per forward node for each stage: flat across sizes means linear."""
    head = ["case", "nodes", *(f"{s} µs/node" for s in STAGES)]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r["error"]:
            continue
        n = r["forward_nodes"]
        cells = [r["case"], f"{n:,}", *(_num(1e6 * r[s] / n, 1) for s in STAGES)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def profile(case: str, nodes: int, top: int = 25) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{case}_{nodes}.py"
        path.write_text(CASES[case](nodes))
        prof = cProfile.Profile()
        prof.enable()
        pipeline.compile_file(path)
        prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    return buf.getvalue()


def commit() -> str:
    """The checkout's commit (and '+' when it has changes), or '?' outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "?"
    return (head or "?") + ("+" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "SCALE.md")
    p.add_argument("--profile", metavar="CASE:NODES", help="cProfile one compile instead")
    p.add_argument(
        "--black-max", type=int, default=10_000, help="run black up to this size (default 10000)"
    )
    p.add_argument(
        "--loops",
        default="unroll",
        choices=("auto", "keep", "unroll"),
        help="gradgen --loops for the loop cases (default unroll: the graphs measured here)",
    )
    p.add_argument(
        "--runs", type=int, default=3, help="end-to-end runs of the target row (the median)"
    )
    args = p.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    if args.profile:
        case, nodes = args.profile.split(":")
        print(profile(case, int(nodes)))
        return 0
    rows = []
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        for nodes in [int(s) for s in args.sizes.split(",")]:
            for case in args.cases.split(","):
                row = measure(case, nodes, Path(tmp), args.black_max, args.loops)
                rows.append(row)
                status = row["error"] or f"{row['wall']:.2f} s + black {row['black']:.2f} s"
                print(f"{case:6} {nodes:>7}: {status}", flush=True)
        for case, nodes in TARGETS:
            if case in args.cases.split(",") and str(nodes) in args.sizes.split(","):
                runs = [end_to_end(case, nodes, Path(tmp), args.loops) for _ in range(args.runs)]
                targets.append(sorted(runs, key=lambda r: r["wall"])[len(runs) // 2])
                print(f"{case:6} {nodes:>7}: end to end {targets[-1]['wall']:.2f} s", flush=True)
    text = "\n".join(
        [
            "# Scaling: seconds per stage",
            "",
            f"`python bench/scale.py --sizes {args.sizes} --cases {args.cases}` at commit "
            f"{commit()}, on {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}.",
            "nodes = traced forward nodes / nodes of the value-and-gradient graph.",
            "",
            table(rows),
            "",
            "Per stage, µs per forward node (flat across sizes = linear):",
            "",
            per_node_table(rows),
            "",
            *(
                [
                    f"End to end, `python cli.py FILE --no-check --loops {args.loops}` in a new "
                    f"process (median of {args.runs}), against the target:",
                    "",
                    target_table(targets),
                    "",
                ]
                if targets
                else []
            ),
        ]
    )
    print(text)
    if args.out.exists():  # keep the hand-written notes (its "## " sections) below the tables
        old = args.out.read_text()
        notes = old[old.find("\n## ") + 1 :] if "\n## " in old else ""
        text += "\n" + notes if notes else ""
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
