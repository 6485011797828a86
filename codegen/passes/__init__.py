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

    graph = replay(graph, substitute=rebuilt)
    return _tidy(graph) if "dce" in enabled else graph


# ---- dead code across a region's boundary (with dce)


def _tidy(graph: Graph) -> Graph:
    """Regions that pass along only what their bodies read: a region input that no body
    reads is dropped (a plain or backward region's), a tape value that the backward never
    reads is not saved, and a loop's tape does not save an iteration's new value of a
    carried value whose old value it saves too (the backward walks the old values back
    instead: one value a step where the chain `h = tanh(a * h + ...)` saved two)."""
    readers: dict[int, list[Node]] = {}
    for n in graph.nodes:
        for i in n.inputs:
            readers.setdefault(i.id, []).append(n)
    outputs = {o.id for o in graph.outputs}
    plans: dict[int, dict] = {}  # region id -> {"attrs": ..., "drop": input positions, ...}
    for node in graph.nodes:
        if node.op in control.REGIONS and node.attrs["role"] in ("plain", "back"):
            drop = _unread_inputs(node)
            if drop:
                plans.setdefault(node.id, {}).update(drop=drop, attrs=_without(node, drop))
    for node in graph.nodes:
        if node.op not in control.REGIONS or node.attrs["role"] != "taped":
            continue
        tape = next(
            (p for p in readers.get(node.id, ()) if p.op == "part" and p.dtype == "tape"), None
        )
        users = readers.get(tape.id, []) if tape is not None else []
        if tape is None or tape.id in outputs or len(users) != 1:
            continue
        back = users[0]
        at = 0 if back.op == "loop" else 1
        if back.inputs[at] is not tape or any(i is tape for i in back.inputs[at + 1 :]):
            continue
        if back.id in plans:  # (its own unread inputs first: one change a round)
            continue
        if node.op == "cond":
            done = _unread_residuals_cond(node, back)
        else:
            done = _unread_residuals_loop(node, back) or _walk_back(node, back)
        if done:
            fwd_attrs, back_attrs, extra = done
            plans[node.id] = {"attrs": fwd_attrs}
            plans[back.id] = {"attrs": back_attrs, "carry": extra}
    if not plans:
        return graph

    def rebuilt(node: Node, env: dict[int, Node], new: Graph) -> Node | None:
        plan = plans.get(node.id)
        if plan is None:
            return None
        drop = plan.get("drop", ())
        inputs = [env[i.id] for k, i in enumerate(node.inputs) if k not in drop]
        carry = plan.get("carry")
        if carry is not None:  # (a new carried value after the others: the results keep
            # their positions)
            region, j = env[carry[0].id], carry[1]
            out = carry[0].attrs["body"].outputs[j]
            value = control.part(region, j, out.shape, out.dtype)
            k = node.attrs["carried"]
            inputs = [*inputs[: 1 + k], value, *inputs[1 + k :]]
        return new.apply(node.op, *inputs, **plan["attrs"])

    return _tidy(replay(graph, substitute=rebuilt))


def _unread(body: Graph, param: Node) -> bool:
    return not any(param in n.inputs for n in body.nodes) and not any(
        o is param for o in body.outputs
    )


def _unread_inputs(node: Node) -> list[int]:
    """The inputs of `node` that every body reading them as they are leaves unread."""
    out = []
    for k in range(len(node.inputs)):
        bound = control.bound_params(node, k)
        if bound and all(
            _unread(_body_of(node, a, b), _body_of(node, a, b).params[p]) for a, b, p in bound
        ):
            out.append(k)
    return out


def _body_of(node: Node, attr: str, branch: int | None) -> Graph:
    value = node.attrs[attr]
    return value if branch is None else value[branch]


def _without(node: Node, drop: Sequence[int]) -> dict:
    """`node`'s attributes with its bodies' parameters for the inputs `drop` removed."""
    gone: dict[tuple, set[int]] = {}
    for k in drop:
        for a, b, p in control.bound_params(node, k):
            gone.setdefault((a, b), set()).add(p)
    attrs = dict(node.attrs)
    for (a, b), ps in gone.items():
        body = _body_of(node, a, b)
        new = _extracted(body, [q for n, q in enumerate(body.params) if n not in ps])
        if b is None:
            attrs[a] = new
        else:
            branches = list(attrs[a])
            branches[b] = new
            attrs[a] = tuple(branches)
    return attrs


def _extracted(body: Graph, params: Sequence[Node], outputs: Sequence[Node] | None = None):
    from ..ir import extract

    return extract(body, params, body.outputs if outputs is None else outputs)


def _unread_residuals_cond(node: Node, back: Node):
    """A taped branch pair without the tape values its backward branch does not read."""
    n_out = node.attrs["n_out"]
    fwd, bwd = list(node.attrs["branches"]), list(back.attrs["branches"])
    changed = False
    for b, (f, g) in enumerate(zip(fwd, bwd)):
        n_res = len(g.params) - (len(back.inputs) - 2)
        unread = {r for r in range(n_res) if _unread(g, g.params[r])}
        if unread:
            changed = True
            keep = [r for r in range(n_res) if r not in unread]
            fwd[b] = _extracted(
                f, f.params, f.outputs[:n_out] + [f.outputs[n_out + r] for r in keep]
            )
            bwd[b] = _extracted(g, [g.params[r] for r in keep] + g.params[n_res:])
    if not changed:
        return None
    return {**node.attrs, "branches": tuple(fwd)}, {**back.attrs, "branches": tuple(bwd)}, None


def _unread_residuals_loop(node: Node, back: Node):
    """A taped loop without the tape values its backward loop does not read."""
    k = node.attrs["carried"]
    f, g = node.attrs["body"], back.attrs["body"]
    n_res = len(g.params) - len(back.inputs)
    unread = {r for r in range(n_res) if _unread(g, g.params[r])}
    if not unread:
        return None
    keep = [r for r in range(n_res) if r not in unread]
    fwd = _extracted(f, f.params, f.outputs[:k] + [f.outputs[k + r] for r in keep])
    bwd = _extracted(g, [g.params[r] for r in keep] + g.params[n_res:])
    return {**node.attrs, "body": fwd}, {**back.attrs, "body": bwd}, None


def _walk_back(node: Node, back: Node):
    """A taped loop that saves both the old and the new value of a carried value saves the
    old one only: the backward loop carries the new one, starting from the loop's result
    and taking each iteration's saved old value as the next (earlier) iteration's new."""
    k = node.attrs["carried"]
    f, g = node.attrs["body"], back.attrs["body"]
    n_res = len(g.params) - len(back.inputs)
    saved = f.outputs[k:]
    for j in range(k):
        new, old = f.outputs[j], f.params[1 + j]
        if new is old:
            continue
        r_new = next((r for r, o in enumerate(saved) if o is new), None)
        r_old = next((r for r, o in enumerate(saved) if o is old), None)
        if r_new is None or r_old is None:
            continue
        fwd = _extracted(
            f, f.params, [*f.outputs[:k], *(o for r, o in enumerate(saved) if r != r_new)]
        )
        kb = back.attrs["carried"]
        res = [p for r, p in enumerate(g.params[:n_res]) if r != r_new]
        rest = g.params[n_res:]
        params = [*res, *rest[:kb], g.params[r_new], *rest[kb:]]
        bwd = _extracted(g, params, [*g.outputs, g.params[r_old]])
        attrs = {**back.attrs, "body": bwd, "carried": kb + 1}
        return {**node.attrs, "body": fwd}, attrs, (node, j)
    return None


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
