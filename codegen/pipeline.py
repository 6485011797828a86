"""The stages in order: load -> trace -> autodiff -> passes -> emit -> format.

`compile_file` returns everything the CLI prints, writes or checks; it writes nothing.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import passes, sizes
from .autodiff import vjp_graph
from .emit import python as emit_python
from .errors import GradgenError
from .format import format_python
from .ir import Graph
from .load import FunctionSpec, Loaded, load
from .trace import trace_function


@dataclass
class Traced:
    """One function through the pipeline: its IR before and after differentiation."""

    spec: FunctionSpec
    wrt: list[str]
    forward: Graph  # as traced
    optimized: Graph  # the forward after the passes
    value_and_grad: Graph | None  # seeded with 1; None for a non-scalar output
    vjp: Graph  # seeded with a parameter g
    pass_log: dict[str, list]  # graph -> [(pass, nodes before, nodes after)]


@dataclass
class Compiled:
    loaded: Loaded
    functions: list[Traced]
    source: str  # the formatted module
    memory: dict[str, dict]  # function -> memory figures from the emitter
    specialized: dict[str, int]  # named dims the code depends on -> the size it is for
    reasons: dict[str, str]  # named dim -> the first emitted line that depends on its size
    # the C target's files, by suffix after <stem>_grad: .c, .h, _c.py (source is the .c)
    files: dict[str, str] | None = None


def _wrt_for(spec: FunctionSpec, wrt: Sequence[str] | None) -> list[str]:
    names = [p.name for p in spec.params]
    if wrt is None:
        return names
    missing = [w for w in wrt if w not in names]
    if missing:
        raise GradgenError(
            f"--wrt names {', '.join(map(repr, missing))}, which {'is' if len(missing) == 1 else 'are'} "
            f"not a parameter of {spec.name} (its parameters: {', '.join(names) or 'none'})",
            spec.src,
            "list parameter names separated by commas, e.g. --wrt " + ",".join(names[:2]),
        )
    return list(wrt)


def differentiate(
    loaded: Loaded, spec: FunctionSpec, wrt: Sequence[str] | None, enabled: Sequence[str] | None
) -> Traced:
    """Trace one function and build its optimized gradient graphs."""
    if "g" in [p.name for p in spec.params]:
        raise GradgenError(
            f"{spec.name} has a parameter named 'g', which the generated API uses for the "
            "upstream gradient",
            spec.src,
            "rename the parameter",
        )
    forward = trace_function(loaded, spec)
    names = _wrt_for(spec, wrt)
    scalar = forward.outputs[0].shape == ()
    log: dict[str, list] = {"forward": [], "value_and_grad": [], "vjp": []}
    # Optimize the forward first: fusions decide which forward values backward reuses.
    optimized = passes.run_pipeline(forward, enabled, log["forward"])
    # the forward part is optimized already: only backward nodes try the rules again
    vjp = passes.run_pipeline(
        vjp_graph(optimized, names, seed="g"), enabled, log["vjp"], settled=_forward_node
    )
    # value_and_grad is the vjp seeded with g = 1, optimized again where g was read
    # (g * x becomes x): the gradient is built once
    vg = None
    if scalar:
        seed = {"g": 1.0}
        vg = passes.run_pipeline(vjp, enabled, log["value_and_grad"], seed, settled=_any_node)
        vg = passes.lower(vg, enabled, log["value_and_grad"], split=False)
    # lowered last: autodiff and the seeding above read the graphs before it
    optimized = passes.lower(optimized, enabled, log["forward"], split=False)
    vjp = passes.lower(vjp, enabled, log["vjp"])
    return Traced(spec, names, forward, optimized, vg, vjp, log)


def _forward_node(node) -> bool:
    return node.tag is None  # backward nodes carry their gate


def _any_node(node) -> bool:
    return True


def _units(loaded: Loaded, traced: list[Traced], specialized: dict[str, int]) -> list:
    units = []
    for t in traced:
        guards = []
        for p in t.spec.params:
            fixed = [d for d in p.dims if isinstance(d, str) and d in specialized]
            if fixed:
                sizes = ", ".join(f"{d}={specialized[d]}" for d in dict.fromkeys(fixed))
                msg = (
                    f"{t.spec.name} was generated for {sizes} and its code depends on it: "
                    f"regenerate with gradgen {loaded.path.name} --dim ..."
                )
                guards.append(f"if np.shape({emit_python.arg_name(p.name)}) != {p.shape!r}:")
                guards.append(f"    raise ValueError({msg!r})")
        signature = ", ".join(f"{p.name}: {p.type_str()}" for p in t.spec.params)
        units.append(
            emit_python.Unit(
                name=t.spec.name,
                params=[p.name for p in t.spec.params],
                wrt=t.wrt,
                forward=t.optimized,
                value_and_grad=t.value_and_grad,
                vjp=t.vjp,
                signature=f"{t.spec.name}({signature})",
                guards=guards,
            )
        )
    return units


def _emit(loaded: Loaded, traced: list[Traced], comments: bool, specialized: dict[str, int]):
    units = _units(loaded, traced, specialized)
    memory: dict[str, dict] = {}
    text = emit_python.emit_module(units, loaded.path.name, comments, memory)
    return text, memory


def _source_lines(path: Path) -> dict[int, str] | bool:
    """The user's file, line number -> text, for --explain (True if it cannot be read:
    the loader reports that)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return True
    return {k + 1: line.strip() for k, line in enumerate(text.splitlines())}


def _first_difference(a: str, b: str) -> str:
    for x, y in zip(a.splitlines(), b.splitlines()):
        if x != y:
            return x.strip()
    return "(the length of the module)"


def compile_file(
    path: str | Path,
    fn: str | None = None,
    wrt: Sequence[str] | None = None,
    dims: dict[str, int] | None = None,
    comments: bool = True,
    enabled_passes: Sequence[str] | None = None,
    target: str = "python",
    explain: bool = False,
    loops: str = "auto",
    max_iterations: int | None = None,
) -> Compiled:
    """Load, trace, differentiate, optimize, emit and format one expr.py.

    `explain` (with comments) adds to each backward line's gate comment the forward line
    of the user's file it differentiates. `loops` (auto, keep, unroll) says which `for`
    loops over a range stay loops (see regions.py); `max_iterations` bounds, on the C
    target, a traced `while` loop whose line gives no `# gradgen: max N`.

    Named dims stay symbolic when the emitted code does not depend on their sizes; this is
    tested by compiling again with each named dim at another size. Where the code does
    depend on a size, the module is specialized to it and guards its inputs' shapes.
    """
    # The graphs are large and acyclic (nodes hold their graph weakly): refcounting frees
    # what a stage drops, and the cyclic collector would only walk the live graphs again
    # and again (superlinear on 100k-node graphs). So it waits; and at the end what is
    # alive goes straight to the oldest generation (freeze, then unfreeze: no walk), as
    # if it had survived the young collections it skipped. A later full collection walks
    # it once, if it is still alive then.
    if explain and comments:  # the emitters read the user's lines from the comments map
        comments = _source_lines(Path(path))
    collecting = gc.isenabled()
    gc.disable()
    try:
        if target == "c":
            return _compile_c(path, fn, wrt, dims, comments, enabled_passes, loops, max_iterations)
        return _compile(path, fn, wrt, dims, comments, enabled_passes, loops)
    finally:
        if collecting:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _compile_c(
    path, fn, wrt, dims, comments, enabled_passes, loops="auto", max_iterations=None
) -> Compiled:
    """The C target: the same graphs, without the lowerings that only speed up numpy
    (scan, widen). Named dims stay free: the graphs are traced again at other sizes, and
    every size in them that moves with the dims becomes an expression of the dims
    (`sizes.fit`); a dim the code depends on otherwise is fixed, and the C checks it.
    With `--loops auto`, a loop that unrolled fixes a dim (`for i in range(n)`) is kept
    as a loop where that frees the dim."""
    from .emit.c import emit_c

    enabled = passes.default_enabled() if enabled_passes is None else enabled_passes
    enabled = [p for p in enabled if p not in ("scan", "widen")]
    loaded, traced, graphs, free_sizes, fixed = _traced_sizes(path, fn, wrt, dims, enabled, loops)
    if loops == "auto" and any(why.startswith("the code at") for why in fixed.values()):
        kept = _traced_sizes(path, fn, wrt, dims, enabled, "keep")
        if len(kept[-1]) < len(fixed):
            loaded, traced, graphs, free_sizes, fixed = kept
    named = sorted(
        {d for s in loaded.functions for p in s.params for d in p.dims if isinstance(d, str)}
    )
    per_unit = []  # per function, its named dims in order: its leading `long` parameters
    for t in traced:
        names = dict.fromkeys(d for p in t.spec.params for d in p.dims if isinstance(d, str))
        per_unit.append([(d, loaded.dims[d]) for d in names])
    units = _units(loaded, traced, {})
    memory: dict[str, dict] = {}

    def emit(fixed: dict[str, str]):
        return emit_c(
            units,
            f"{loaded.path.stem}_grad",
            loaded.path.name,
            comments,
            per_unit,
            memory,
            max_iterations=max_iterations,
            bounds=loaded.bounds,
            fixed=fixed,
        )

    try:
        with sizes.symbolic(graphs, free_sizes):
            files, fixed = emit(fixed)
    except Exception:  # a part of the emitter that needs numbers: sizes fixed, as before
        if not named or os.environ.get("GRADGEN_DEBUG"):
            raise
        files, fixed = emit({d: "the C emitter needs its size as a number" for d in named})
    specialized = {d: loaded.dims[d] for d in named if d in fixed}
    return Compiled(loaded, traced, files[".c"], memory, specialized, fixed, files)


def _traced_sizes(path, fn, wrt, dims, enabled, loops):
    """Load and differentiate at the sizes given, and fit the graphs' sizes to the named
    dims: (loaded, traced, graphs, sizes, {dim: why it stays fixed})."""
    loaded = load(path, fn, dims, loops)
    traced = [differentiate(loaded, spec, wrt, enabled) for spec in loaded.functions]
    named = sorted(
        {d for s in loaded.functions for p in s.params for d in p.dims if isinstance(d, str)}
    )
    graphs = _graphs(traced)
    if not named:
        return loaded, traced, graphs, _integers(graphs), {}

    def trace_at(point: dict[str, int]) -> list | None:
        try:
            other = load(path, fn, {**loaded.dims, **point}, loops)
            return _graphs([differentiate(other, s, wrt, enabled) for s in other.functions])
        except GradgenError:
            return None

    free_sizes, fixed = sizes.fit(graphs, trace_at, {d: loaded.dims[d] for d in named})
    return loaded, traced, graphs, free_sizes, fixed


def _graphs(traced: list[Traced]) -> list:
    """The graphs the C emitter reads, in a fixed order."""
    return [[t.optimized, t.value_and_grad, t.vjp] for t in traced]


def _integers(graphs: list) -> list[int]:
    found: list = []
    sizes._collect(graphs, graphs, found, set())
    return [v for v, _ in found]


def _compile(path, fn, wrt, dims, comments, enabled_passes, loops="auto") -> Compiled:
    loaded = load(path, fn, dims, loops)
    traced = [differentiate(loaded, spec, wrt, enabled_passes) for spec in loaded.functions]
    text, memory = _emit(loaded, traced, comments, {})
    named = sorted(
        {d for s in loaded.functions for p in s.params for d in p.dims if isinstance(d, str)}
    )
    specialized: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for dim in named:
        size = loaded.dims[dim]
        other_dims = {**loaded.dims, dim: size + 2 if size <= 2 else size + 1}
        other = load(path, fn, other_dims, loops)
        try:
            other_traced = [differentiate(other, s, wrt, enabled_passes) for s in other.functions]
            other_text, _ = _emit(other, other_traced, comments, {})
        except GradgenError as e:
            other_text, reasons[dim] = "", e.message
        if other_text != text:
            specialized[dim] = size
            reasons.setdefault(dim, _first_difference(text, other_text))
    if specialized:
        text, memory = _emit(loaded, traced, comments, specialized)
    return Compiled(loaded, traced, format_python(text), memory, specialized, reasons)
