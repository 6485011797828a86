"""Stage 3, autodiff: append the reverse-mode gradient to the graph, as more IR.

The reverse walk visits nodes from the output back; each op's VJP rule (in `ops`) builds
its inputs' cotangents. Two things happen here, once, rather than in every rule:
- the copy gate: a value used several times receives the sum of its branches' cotangents,
  added up as they arrive (a running sum, as hand-written backprop keeps `g_w += ...`), so
  that each branch's cotangent dies at once rather than waiting for one long sum at the end;
- unbroadcasting: a cotangent wider than its value is summed over the broadcast axes.

A part of an array read many times (x[i] in a loop: elements, rows, slices, fancy indices)
sends back a scatter, the size of the whole array. Those are kept as their parts, not as
arrays, and meet in one array at the end: one `np.array` of the elements, one `np.stack`
of the rows, or one `multi_scatter` (zeros, then `g_x[k] = v` per part), so that n reads
cost one array, not n of them and their sum.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from . import ops
from .errors import Src
from .ir import Graph, Node, extract, replay
from .ops import control

COPY_GATE = "copy gate: sums"
UNBROADCAST = "broadcast: sums back"
PACK_LIMIT = 64  # elements: beyond this, read-every-element gradients go into zeros


class Scatter(NamedTuple):
    """A scatter cotangent kept as its part: `value` added into zeros at `key`."""

    value: Node
    arrays: tuple[Node, ...]  # the key's index arrays
    key: tuple
    tag: str | None
    src: Src | None


def _as_part(graph: Graph, c: Node, mark: int) -> Node | Scatter:
    """A scatter that a VJP rule just made becomes its part (and leaves the graph)."""
    if c.op != "scatter" or c.id < mark:
        return c
    if graph.nodes[-1] is c:  # nothing else reads it: made last
        graph.discard(c)
    return Scatter(c.inputs[0], c.inputs[1:], c.attrs["key"], c.tag, c.src)


def unbroadcast(c: Node, shape: tuple[int, ...]) -> Node:
    """Sum `c` over the axes along which a value of `shape` was broadcast to c's shape.

    Two sums, the size-1 axes with keepdims and the leading ones without, so that no
    reshape to a concrete shape is needed and named dims stay symbolic.
    """
    if c.shape == shape:
        return c
    lead = c.ndim - len(shape)
    if lead >= 0:
        ones = tuple(lead + i for i, d in enumerate(shape) if d == 1 and c.shape[lead + i] != 1)
        if ones:
            c = ops.apply("sum", c, axis=ones, keepdims=True)
        if lead:
            c = ops.apply("sum", c, axis=tuple(range(lead)), keepdims=False)
    if c.shape != shape:  # narrower than the value (a folded constant): widen it
        c = ops.apply("broadcast_to", c, shape=shape)
    return c


def _single_key(p: Scatter, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The integer key of a scatter that writes one element or one leading row, else None."""
    key = p.key
    if p.arrays or not key or len(key) > len(shape):
        return None
    if not all(isinstance(k, int) and not isinstance(k, bool) for k in key):
        return None
    return tuple(k % d for k, d in zip(key, shape))


def _gather_scatters(graph: Graph, parts: list[Scatter], shape: tuple[int, ...]) -> list[Node]:
    """Scatters into one array as few arrays as possible: into distinct elements of a small
    array, one `pack`; into every row once, one `stack`; the rest, one `multi_scatter`.

    Reading w[0], w[1], w[2] gives g_w = np.array([...]); reading xs[0] ... xs[7] gives
    g_xs = np.stack([...]): no zeros of a concrete shape, and one line. Reading x[i] for
    500 steps gives g_x = np.zeros((500,)) and g_x[i] = ... where each part is made.
    """
    graph.tag, graph.src = parts[0].tag, parts[0].src
    keyed = [(p, _single_key(p, shape)) for p in parts]
    elements = {k: p for p, k in keyed if k is not None and len(k) == len(shape)}
    rows = {k[0]: p for p, k in keyed if k is not None and len(k) == 1 and len(shape) > 1}
    n_elements = sum(1 for _, k in keyed if k is not None and len(k) == len(shape))
    n_rows = sum(1 for _, k in keyed if k is not None and len(k) == 1 and len(shape) > 1)
    size = int(np.prod(shape))
    out = []
    if len(elements) >= 2 and len(elements) == n_elements and size <= PACK_LIMIT:
        zero = graph.const(0.0, parts[0].value.dtype)
        flat = [zero] * size
        for k, p in elements.items():
            flat[int(np.ravel_multi_index(k, shape))] = p.value
        out.append(graph.apply("pack", *flat, shape=shape))
        parts = [p for p in parts if p not in elements.values()]
    elif len(shape) > 1 and len(rows) == shape[0] == n_rows and shape[0] >= 2:
        out.append(graph.apply("stack", *(rows[i].value for i in range(shape[0])), axis=0))
        parts = [p for p in parts if p not in rows.values()]
    if len(parts) == 1:
        (p,) = parts
        out.append(graph.apply("scatter", _bare(p.value), *p.arrays, key=p.key, shape=shape))
    elif parts:
        values = [_bare(p.value) for p in parts]
        arrays = [a for p in parts for a in p.arrays]
        keys = tuple(p.key for p in parts)
        out.append(graph.apply("multi_scatter", *values, *arrays, keys=keys, shape=shape))
    return out


def _bare(value: Node) -> Node:
    """A scatter's value without its broadcast: `g[1:4] = 1.0` broadcasts as it writes."""
    return value.inputs[0] if value.op == "broadcast_to" else value


def _accumulate(graph: Graph, node: Node, parts: list[Node | Scatter], start: int) -> Node:
    if len(parts) == 1 and _summable(parts[0], node):  # one branch, nothing to sum
        _name_gradient(parts[0], node, start)
        return parts[0]
    dense = [p for p in parts if isinstance(p, Node)]
    if any(p.shape != node.shape for p in dense):
        graph.tag, graph.src = UNBROADCAST, node.src
    summed = [unbroadcast(p, node.shape) for p in dense]
    scattered = [p for p in parts if isinstance(p, Scatter)]
    if scattered:  # where the first scatter was, in the order of the sum
        at = next(k for k, p in enumerate(parts) if isinstance(p, Scatter))
        summed[at:at] = _gather_scatters(graph, scattered, node.shape)
    total = summed[0]
    if len(summed) > 1:
        graph.tag, graph.src = COPY_GATE, node.src
        for p in summed[1:]:
            total = total + p
    _name_gradient(total, node, start)
    return total


def _summable(part: Node | Scatter, value: Node) -> bool:
    """A cotangent that can join the running sum as it is: no unbroadcast, no gathering."""
    return isinstance(part, Node) and part.shape == value.shape


def _add_branch(
    graph: Graph, value: Node, parts: list[Node | Scatter], c: Node | Scatter, start: int
) -> None:
    """Add the cotangent `c` of one more branch of `value` to the running sum in `parts`."""
    if not (parts and _summable(parts[-1], value) and _summable(c, value)):
        parts.append(c)
        return
    tag, src = graph.tag, graph.src
    graph.tag, graph.src = COPY_GATE, value.src
    total = parts[-1] + c
    graph.tag, graph.src = tag, src
    _name_gradient(total, value, start)
    parts[-1] = total


def _name_gradient(total: Node, value: Node, start: int) -> None:
    """`g_w` for a new node holding (part of) the gradient of `w`; constants keep theirs."""
    if total.name is None and value.name is not None and total.id >= start:
        if total.op != "const":
            total.name = f"g_{value.name}"


def vjp_graph(forward: Graph, wrt: Sequence[str], seed: str | float = "g") -> Graph:
    """Forward plus backward: outputs are (value, grad of each `wrt` parameter).

    `seed="g"` adds a parameter `g`, the upstream gradient of the output's shape; a number
    seeds with that constant instead (1.0 for value_and_grad of a scalar output).
    """
    graph = _with_tapes(forward)
    (out,) = graph.outputs
    params = {p.name: p for p in graph.params}
    targets = [params[name] for name in wrt]
    start = len(graph.nodes)  # ids from here on are backward nodes
    if isinstance(seed, str):
        g = graph.param(seed, out.shape, out.dtype if out.dtype != "bool" else "f64")
    else:
        g = graph.const(np.full(out.shape, seed), out.dtype)
    grads = _reverse(graph, [(out, g)], targets, start)
    graph.outputs = [out, *grads]
    return graph


def _with_tapes(forward: Graph) -> Graph:
    """A copy of the forward whose control-flow regions also save, on a tape, what their
    backward pass reads (see `ops.control`)."""
    if not any(n.op in control.REGIONS for n in forward.nodes):
        return replay(forward)

    def taped(node: Node, env: dict[int, Node], new: Graph) -> Node | None:
        if node.op not in control.REGIONS:
            return None
        return control.taped(node, [env[i.id] for i in node.inputs])

    return replay(forward, substitute=taped)


def _reverse(
    graph: Graph, seeds: Sequence[tuple[Node, Node]], targets: Sequence[Node], start: int
) -> list[Node]:
    """Append the backward pass of the nodes before `start`: each (output, seed) pair
    seeds that output's cotangent; returns the gradient of each target parameter."""
    # Only nodes on a path from a target parameter to an output need cotangents.
    needs: set[int] = {t.id for t in targets}
    for node in graph.nodes[:start]:
        if any(i.id in needs for i in node.inputs) and ops.OPS[node.op].vjp is not None:
            needs.add(node.id)

    cotangents: dict[int, list[Node | Scatter]] = {}
    for out, seed in seeds:
        if out.id in needs:
            _add_branch(graph, out, cotangents.setdefault(out.id, []), seed, start)
    # a region's results arrive one `part` at a time: region id -> {result index: cotangent}
    region_cts: dict[int, dict[int, Node]] = {}
    for node in reversed(graph.nodes[:start]):
        if node.op in control.REGIONS:
            cts = region_cts.pop(node.id, None)
            if not cts:
                continue
            ct: object = cts
        else:
            parts = cotangents.pop(node.id, None)
            if not parts or node.op == "param":
                if parts:
                    cotangents[node.id] = parts
                continue
            ct = _accumulate(graph, node, parts, start)
            if node.op == "part":
                region_cts.setdefault(node.inputs[0].id, {})[node.attrs["index"]] = ct
                continue
        spec = ops.OPS[node.op]
        graph.tag, graph.src = spec.gate, node.src
        mark = len(graph.nodes)
        contributions = spec.vjp(ct, node, *node.inputs, **node.attrs)
        for inp, c in zip(node.inputs, contributions):
            if c is not None and inp.id in needs:
                part = _as_part(graph, c, mark)
                _add_branch(graph, inp, cotangents.setdefault(inp.id, []), part, start)

    grads = []
    for t in targets:
        parts = cotangents.get(t.id)
        if parts:
            grads.append(_accumulate(graph, t, parts, start))
        else:  # the output does not depend on it
            zero = graph.const(0.0, t.dtype)
            grads.append(graph.apply("broadcast_to", zero, shape=t.shape) if t.shape else zero)
    graph.tag = graph.src = None
    return grads


class Split(NamedTuple):
    """A region's body cut in two by `split`."""

    forward: Graph  # the body's parameters; its outputs, then the residuals
    backward: Graph  # residuals, cotangents of `seeded`, accumulators, persistent params
    residuals: int  # how many values the forward hands to the backward
    wrt: tuple[int, ...]  # the parameters (by index) the backward returns gradients for
    seeded: tuple[int, ...]  # the outputs (by index) whose cotangents it reads
    accumulated: tuple[int, ...]  # the parameters whose gradients add up across calls


def split(
    body: Graph,
    persistent: Sequence[int],
    accumulate: Sequence[int] = (),
    counter: int | None = None,
) -> Split:
    """Differentiate a region's body and cut it into forward and backward graphs.

    The forward computes the body's outputs and the residuals (the forward values the
    backward reads); the backward maps the outputs' cotangents to the parameters'
    gradients. `persistent` parameters (by index) are passed to the backward as they are
    (a loop's invariants, a branch's inputs); the others it reads are residuals (a loop's
    per-iteration values). Gradients of the `accumulate` parameters add onto an
    accumulator parameter each call (a loop-invariant's gradient summed over iterations),
    in place where it is a scatter (g_x[i] += ... , not a new array per iteration).
    `counter` (a loop's iteration number) is the backward's last parameter, not a
    residual; a read of one element of a persistent array at it (x[i]) is read again in
    the backward rather than saved.
    """
    graph = _with_tapes(body)
    start = len(graph.nodes)
    wrt = tuple(k for k, p in enumerate(graph.params) if p.dtype in ("f64", "f32"))
    seeded = tuple(k for k, o in enumerate(graph.outputs) if o.dtype in ("f64", "f32"))
    cts = [graph.param(f"ct{k}", graph.outputs[k].shape, graph.outputs[k].dtype) for k in seeded]
    targets = [graph.params[k] for k in wrt]
    grads = _reverse(graph, [(graph.outputs[k], c) for k, c in zip(seeded, cts)], targets, start)
    accumulated = tuple(k for k in wrt if k in set(accumulate))
    accs = []
    for pos, k in enumerate(wrt):
        if k in accumulated:
            p = graph.params[k]
            acc = graph.param(f"acc_{p.name}", p.shape, p.dtype)
            acc.name = f"g_{p.name}"
            accs.append(acc)
            part = grads[pos]
            if not p.shape and part.id >= start and part.op != "param":
                # a scalar's running sum, as the copy gate's: `g_b = g_b + t * x_list[i]`
                part.name = None
                graph.tag = COPY_GATE
            else:
                graph.tag = ACCUMULATE
            grads[pos] = control.accumulate(acc, part)
            if grads[pos].name is None and grads[pos].id >= start:
                grads[pos].name = acc.name
            graph.tag = None
    keep_in = {graph.params[k].id for k in persistent}
    if counter is not None:
        keep_in.add(graph.params[counter].id)
    live = _needed(graph, grads, start)
    residuals: dict[int, Node] = {}
    for node in [*(n for n in graph.nodes[start:] if n.id in live), *grads]:
        ins = node.inputs if node.id >= start else (node,)
        for i in ins:
            if i.id < start and i.op != "const" and i.id not in keep_in:
                if _read_again(i, keep_in):
                    continue
                residuals.setdefault(i.id, i)
    if counter is not None:
        _recompute(residuals, keep_in)
    res = list(residuals.values())
    n = len(body.params)
    forward = extract(graph, graph.params[:n], [*graph.outputs, *res])
    kept = [graph.params[k] for k in persistent]
    if counter is not None:
        kept.append(graph.params[counter])
    backward = extract(graph, [*res, *cts, *accs, *kept], grads)
    return Split(forward, backward, len(res), wrt, seeded, accumulated)


ACCUMULATE = "loop: gradients add up over iterations"


def _needed(graph: Graph, outputs: Sequence[Node], start: int) -> set[int]:
    """The ids of the backward nodes (from `start` on) that `outputs` depend on: the
    residuals are what these read, not what dead code left behind reads."""
    live = {o.id for o in outputs}
    for node in reversed(graph.nodes[start:]):
        if node.id in live:
            live.update(i.id for i in node.inputs)
    return live


CHEAP = ("add", "sub", "mul", "div", "neg", "square")  # one exact float operation each


def _recompute(residuals: dict[int, Node], available: set[int]) -> None:
    """Drop from `residuals` the cheap scalar ops (+ - * /) that the backward can compute
    again from what it has (other residuals, persistent parameters), when that leaves a
    loop's tape one value an iteration, not a tuple: newton's `a / x` from the saved x.
    The same operation on the same operands gives the same bits."""
    if len(residuals) < 2:
        return
    kept = dict(residuals)
    for node in sorted(residuals.values(), key=lambda n: -n.id):  # (latest first)
        if node.op in CHEAP and not node.shape and node.tag is None:
            if all(i.op == "const" or i.id in available or i.id in kept for i in node.inputs):
                del kept[node.id]
    if len(kept) <= 1:
        for nid in list(residuals):
            if nid not in kept:
                del residuals[nid]


def _read_again(node: Node, available: set[int]) -> bool:
    """An element read (x[i]) of values the backward has anyway: cheaper than saving it."""
    return (
        node.op == "index"
        and not node.shape
        and all(i.id in available or i.op == "const" for i in node.inputs)
    )
