"""Stage 4, passes: IR -> IR rewrites, run in the order of PIPELINE, then LOWERING.

Each pass is a module with a pure `run(graph) -> graph` and its own tests; any of them
can be switched off (`gradgen --passes`, or GRADGEN_PASSES in the environment), and the
code stays correct, only slower and longer. PIPELINE optimizes what autodiff reads;
LOWERING rewrites only how the graphs about to be emitted run.
"""

from __future__ import annotations

import os

import numpy as np
from typing import Callable, Sequence

from ..ir import Graph, Node, replay
from ..ops import control
from . import batch, cse, dce, fold, fuse, scan, simplify, widen

Pass = Callable[[Graph], Graph]

PIPELINE: list[tuple[str, Pass]] = [
    ("fold", fold.run),
    ("simplify", simplify.run),
    ("fuse", fuse.run),
    ("cse", cse.run),
    ("batch", batch.run),
    ("dce", dce.run),
]
# Passes that are construction-time rules of a rebuild: consecutive ones share one rebuild
# (the result is the same as running them one by one, at a fraction of the cost).
RULES = {"fold": "fold", "simplify": "simplify", "fuse": "fuse", "cse": "intern"}
LOWERING: list[tuple[str, Callable[[Graph, bool], Graph]]] = [
    ("scan", scan.run),
    ("widen", widen.run),
]
NAMES = [name for name, _ in PIPELINE + LOWERING]


def parse(spec: str | None) -> list[str]:
    """`all`, `none`, or a comma list of pass names -> the enabled names."""
    if spec is None or spec.strip() == "all":
        return list(NAMES)
    if spec.strip() == "none":
        return []
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(
            f"unknown pass {', '.join(unknown)} (passes: {', '.join(NAMES)}, all, none)"
        )
    return names


def default_enabled() -> list[str]:
    """The passes on by default: all, unless GRADGEN_PASSES says otherwise."""
    return parse(os.environ.get("GRADGEN_PASSES"))


def count(graph: Graph) -> int:
    """The nodes that compute something (parameters and constants aside)."""
    return sum(1 for n in graph.nodes if n.op not in ("param", "const"))


def run_pipeline(
    graph: Graph,
    enabled: Sequence[str] | None = None,
    log: list | None = None,
    constants: dict[str, float] | None = None,
    settled: Callable[[Node], bool] | None = None,
) -> Graph:
    """Run the passes of PIPELINE that are enabled (all by default), in order.

    `log` receives (pass names, nodes before, nodes after) for each rebuild. `constants`
    (parameter name -> value) and `settled` (nodes optimized already, see `ir.replay`) go
    to the first rebuild.
    """
    enabled = default_enabled() if enabled is None else enabled
    steps: list[tuple[list[str], Pass]] = []
    for name, run in PIPELINE:
        if name not in enabled:
            continue
        if name in RULES and steps and steps[-1][0][-1] in RULES:
            steps[-1][0].append(name)
        else:
            steps.append(([name], run))
    if constants and not (steps and len(steps[0][0]) > 1):
        graph = replay(graph, constants=constants)
    counted = (graph, count(graph)) if log is not None else None
    for k, (names, run) in enumerate(steps):
        if len(names) > 1:
            # dead input nodes are dropped on the way when dce is on: the same result, and
            # then dce usually finds nothing left to rebuild for
            first = {"constants": constants, "settled": settled} if k == 0 else {}
            graph = replay(graph, {RULES[n] for n in names}, dce="dce" in enabled, **first)
        else:
            graph = run(graph)
        if counted is not None:
            # a pass that changed nothing returns its input: no need to count it again
            before = counted[1]
            counted = (graph, before if graph is counted[0] else count(graph))
            log.append(("+".join(names), before, counted[1]))
    return _bodies(graph, enabled)


def _bodies(graph: Graph, enabled: Sequence[str]) -> Graph:
    """The graph with its regions' bodies run through the same passes (each body is a
    graph of its own: nothing moves into or out of a branch or a loop)."""
    if not any(n.op in control.REGIONS for n in graph.nodes):
        return graph
    done: dict[tuple, Graph] = {}

    def optimized(body: Graph, constants: dict | None) -> Graph:
        # (keyed by the body, alive in its region's attributes, and the constants it reads)
        key = (
            id(body),
            *sorted((k, np.asarray(v).tobytes()) for k, v in (constants or {}).items()),
        )
        if key not in done:
            fixed = replay(body, constants=constants) if constants else body
            done[key] = run_pipeline(fixed, enabled)
        return done[key]

    def rebuilt(node: Node, env: dict[int, Node], new: Graph) -> Node | None:
        if node.op not in control.REGIONS:
            return None
        inputs = [env[i.id] for i in node.inputs]
        # constants the region reads (value_and_grad's seed 1.0) fold into its bodies
        fixed: dict[tuple, dict[int, object]] = {}
        for k, i in enumerate(inputs):
            value = _constant(i)
            if value is not None:
                for key, branch, index in control.bound_params(node, k):
                    body = node.attrs[key] if branch is None else node.attrs[key][branch]
                    fixed.setdefault((key, branch), {})[body.params[index].id] = value
        attrs = dict(node.attrs)
        for key, value in node.attrs.items():
            if isinstance(value, Graph):
                attrs[key] = optimized(value, fixed.get((key, None)))
            elif isinstance(value, tuple) and value and isinstance(value[0], Graph):
                attrs[key] = tuple(optimized(b, fixed.get((key, n))) for n, b in enumerate(value))
        return new.apply(node.op, *inputs, **attrs)

    return replay(graph, substitute=rebuilt)


def lower(
    graph: Graph, enabled: Sequence[str] | None = None, log: list | None = None, split: bool = True
) -> Graph:
    """Run the passes of LOWERING that are enabled on a graph about to be emitted.

    `split`: the graph becomes a forward and a backward function (the vjp), so a lowering
    must not make forward values that only backward reads.
    """
    enabled = default_enabled() if enabled is None else enabled
    for name, run in LOWERING:
        if name in enabled:
            before = count(graph) if log is not None else 0
            lowered = run(graph, split)
            if log is not None:
                log.append((name, before, before if lowered is graph else count(lowered)))
            graph = lowered
    return graph


def _constant(node: Node):
    """A constant node's value (a broadcast constant's scalar), else None."""
    if node.op == "broadcast_to" and node.inputs[0].op == "const":
        node = node.inputs[0]
    return node.value if node.op == "const" else None
