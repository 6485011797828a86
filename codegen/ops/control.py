"""Control flow as IR regions: `cond` (if/else on a traced predicate) and `loop` (for and
while loops kept as loops), with `part`, which reads one of a region's results.

A region holds its bodies as graphs in its attributes; its inputs are what the bodies
read from outside. A body's parameters are, in order:
- cond: the region's inputs after the predicate (one body per branch, the same outputs);
- loop: the iteration number `i`, the carried values, then the loop-invariant inputs; the
  body returns the carried values of the next iteration, and `cond` (a while loop's test,
  the same parameters) returns whether to run it.

Differentiating a region (`taped`, called by autodiff) cuts each body into a forward that
also returns residuals and a backward (`autodiff.split`): the forward region saves them
on a tape (one tuple for a branch, a list of tuples for a loop), and the region's VJP is
a backward region of the same kind that reads the tape: the same branch again, or the
iterations in reverse. Nothing here knows how regions are emitted: the emitters render a
region's bodies with their own walkers (`emit/regions.py`, `emit/c.py`).
"""

from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np

from ..emit.expr import ATOM, Expr, wrap
from ..errors import GradgenError
from ..ir import NUMPY_DTYPES, Graph, Node, _key, run
from . import apply, defop, same_shape, to_bool

REGIONS = ("cond", "loop")
_fresh = itertools.count()  # tells apart accumulators that start as the same zeros


def _run(graph: Graph, args: Sequence[Any]) -> list[Any]:
    return run(graph, *args)


def part(region: Node, index: int, shape: tuple, dtype: str) -> Node:
    """The `index`-th result of `region` (the one node there is for it)."""
    attrs = {"index": index, "shape": tuple(shape), "dtype": dtype}
    known = region.graph._interned.get(_key("part", (region,), attrs))
    return known if known is not None else apply("part", region, **attrs)


def parts(region: Node, outputs: Sequence[Node]) -> list[Node]:
    """The results of `region`, shaped like the body outputs `outputs`."""
    return [part(region, k, o.shape, o.dtype) for k, o in enumerate(outputs)]


def _rendered(*args, **kwargs):
    raise AssertionError("regions are rendered by the emitter's walker (emit/regions.py)")


def _no_vjp(*args, **kwargs):
    raise AssertionError("autodiff gathers a part's cotangent for its region")


defop(
    "part",
    internal=True,
    eval=lambda region, index, shape, dtype: region[index],
    shape=lambda shapes, index, shape, dtype: tuple(shape),
    dtype=lambda dtypes, index, shape, dtype: dtype,
    vjp=_no_vjp,
    py=lambda args, node: _rendered(),  # bound to the name the region's lines assign
    fold=False,
    gate="a region's result",
)


# ---- cond: if/else on a traced predicate ----


def _cond_eval(pred, *args, branches, n_out, role, **_):
    body = branches[0] if bool(pred) else branches[1]
    if role == "back":  # args[0] is the tape of the branch that ran forward
        outs = _run(body, [*args[0], *args[1:]])
    else:
        outs = _run(body, args)
    if role == "taped":
        return (*outs[:n_out], tuple(outs[n_out:]))
    return tuple(outs)


def _zeros_like(shape: tuple, dtype: str, graph: Graph) -> Node:
    zero = graph.const(0.0, dtype)
    return graph.apply("broadcast_to", zero, shape=shape) if shape else zero


def _cond_vjp(cts, node, pred, *args, branches, n_out, role, back=None, wrt=(), seeded=()):
    if role != "taped":
        raise GradgenError(
            "the gradient of a branch's gradient (differentiating twice through an `if`) "
            "is not supported yet",
            node.src,
        )
    graph = node.graph
    outs = branches[0].outputs
    tape = part(node, n_out, (), "tape")
    ct = [cts.get(k) or _zeros_like(outs[k].shape, outs[k].dtype, graph) for k in seeded]
    b = apply("cond", pred, tape, *ct, *args, branches=back, n_out=len(wrt), role="back")
    grads: list[Node | None] = [None] * len(args)
    for pos, k in enumerate(wrt):
        p = branches[0].params[k]
        grads[k] = part(b, pos, p.shape, p.dtype)
    return (None, *grads)


def _cond_shape(shapes, **attrs):
    return ()


defop(
    "cond",
    internal=True,
    eval=_cond_eval,
    shape=_cond_shape,
    dtype=lambda dtypes, **a: "tuple",
    vjp=_cond_vjp,
    py=None,
    py_stmts=_rendered,
    fold=False,
    gate="if gate: the branch taken forward runs backward",
)


# ---- loop: for (a count), while (a test), and the backward loop over a tape ----


# The reference interpreter's bound on a while loop (the numeric check evaluates the
# function at random points, where a user's loop may not end)
MAX_ITERATIONS = 10_000_000


class LoopLimit(ArithmeticError):
    """A while loop ran past MAX_ITERATIONS in the reference interpreter."""


def _loop_eval(*inputs, body, carried, role, cond=None, count=None, **_):
    if role == "back":  # inputs[0] is the tape; the iterations run in reverse
        tape, c, cap = inputs[0], list(inputs[1 : 1 + carried]), list(inputs[1 + carried :])
        for i in reversed(range(len(tape))):  # (the iteration number is the last parameter)
            c = _run(body, [*tape[i], *c, *cap, np.int64(i)])
        return tuple(c)
    c, cap = list(inputs[:carried]), list(inputs[carried:])
    tape = []
    i = 0
    while count is None or i < count:
        args = [np.int64(i), *c, *cap]
        if cond is not None and not bool(_run(cond, args)[0]):
            break
        outs = _run(body, args)
        c = outs[:carried]
        if count is None and i >= MAX_ITERATIONS:
            raise LoopLimit(f"a while loop did not end after {MAX_ITERATIONS:,} iterations")
        if role == "taped":
            tape.append(tuple(outs[carried:]))
        i += 1
    return (*c, tape) if role == "taped" else tuple(c)


def _loop_vjp(cts, node, *inputs, body, carried, role, back=None, wrt=(), seeded=(), **attrs):
    if role != "taped":
        raise GradgenError(
            "the gradient of a loop's gradient (differentiating twice through a loop) is not "
            "supported yet",
            node.src,
        )
    graph = node.graph
    outs = body.outputs
    tape = part(node, carried, (), "tape")
    ct = [cts.get(j) or _zeros_like(outs[j].shape, outs[j].dtype, graph) for j in seeded]
    accumulated = attrs["accumulated"]
    accs = [zeros(body.params[k].shape, body.params[k].dtype, graph) for k in accumulated]
    captured = inputs[carried:]
    b = apply(
        "loop", tape, *ct, *accs, *captured, body=back, carried=len(ct) + len(accs), role="back"
    )
    grads: list[Node | None] = [None] * len(inputs)
    for pos, j in enumerate(seeded):
        grads[j] = part(b, pos, outs[j].shape, outs[j].dtype)
    for pos, k in enumerate(accumulated):  # body parameter k is input k - 1
        p = body.params[k]
        grads[k - 1] = part(b, len(seeded) + pos, p.shape, p.dtype)
    return tuple(grads)


defop(
    "loop",
    internal=True,
    eval=_loop_eval,
    shape=lambda shapes, **attrs: (),
    dtype=lambda dtypes, **a: "tuple",
    vjp=_loop_vjp,
    py=None,
    py_stmts=_rendered,
    fold=False,
    gate="loop gate: iterations run backward",
)


def taped(node: Node, inputs: Sequence[Node]) -> Node:
    """`node` rebuilt from `inputs` (in their graph) as a region that also saves on a tape
    what its backward pass reads, with that backward pass in its attributes."""
    from ..autodiff import split  # (autodiff calls this while it differentiates)

    attrs = dict(node.attrs)
    if attrs["role"] != "plain":
        raise GradgenError(
            f"differentiating a {node.op}'s gradient again is not supported yet", node.src
        )
    if node.op == "cond":
        n_args = len(inputs) - 1
        halves = [split(b, range(n_args)) for b in attrs["branches"]]
        attrs.update(
            branches=tuple(h.forward for h in halves),
            back=tuple(h.backward for h in halves),
            role="taped",
            wrt=halves[0].wrt,
            seeded=halves[0].seeded,
        )
        region = apply("cond", *inputs, **attrs)
        part(region, attrs["n_out"], (), "tape")  # a forward value: what backward reads
        return region
    k = attrs["carried"]
    invariant = range(1 + k, 1 + len(inputs))  # body parameters: i, carried, invariants
    half = split(attrs["body"], invariant, invariant, counter=0)
    if [w for w in half.wrt if w <= k] != [j + 1 for j in half.seeded]:
        raise AssertionError("a loop's carried values changed type between iterations")
    attrs.update(
        body=half.forward,
        back=half.backward,
        role="taped",
        wrt=half.wrt,
        seeded=half.seeded,
        accumulated=half.accumulated,
    )
    region = apply("loop", *inputs, **attrs)
    part(region, k, (), "tape")  # a forward value: what backward reads
    return region


# ---- accumulators: a loop-invariant's gradient, summed over the iterations ----


def zeros(shape: tuple, dtype: str, graph: Graph) -> Node:
    """A new array of zeros that an `accumulate` may write into (scalars: a constant)."""
    if not shape:
        return graph.const(0.0, dtype)
    return graph.apply("zeros", shape=tuple(shape), dtype=dtype, owner=next(_fresh))


defop(
    "zeros",
    internal=True,
    eval=lambda shape, dtype, owner: np.zeros(shape, dtype=np.float32 if dtype == "f32" else None),
    shape=lambda shapes, shape, dtype, owner: tuple(shape),
    dtype=lambda dtypes, shape, dtype, owner: dtype,
    py=lambda args, node: _zeros_expr(node),
    vjp=lambda g, out: (),
    fold=False,
    fresh=True,
    gate="loop: gradients add up over iterations",
)


def _zeros_expr(node):
    dtype = ", dtype=np.float32" if node.dtype == "f32" else ""
    shape = node.shape
    text = f"({shape[0]},)" if len(shape) == 1 else repr(tuple(shape))
    return Expr(f"np.zeros({text}{dtype})", ATOM)


def accumulate(acc: Node, g: Node) -> Node:
    """acc + g, written into acc when g is a scatter (acc[i] += v): an accumulator
    parameter of a backward loop's body, which nothing else reads."""
    if acc.shape and g.op in ("scatter", "multi_scatter"):
        if g.op == "scatter":
            keys = (g.attrs["key"],)
            values, arrays = g.inputs[:1], g.inputs[1:]
        else:
            keys = g.attrs["keys"]
            values, arrays = g.inputs[: len(keys)], g.inputs[len(keys) :]
        return apply("accumulate", acc, *values, *arrays, keys=keys)
    return acc + g


def _accumulate_eval(acc, *inputs, keys):
    from .shape import real_key, scatter_parts

    out = np.array(acc, copy=True)
    for value, arrays, key in scatter_parts(inputs, keys):
        np.add.at(out, real_key(key, arrays), value)
    return out


def _accumulate_vjp(g, out, acc, *inputs, keys):
    from .shape import scatter_parts

    grads = [apply("index", g, *arrays, key=key) for _, arrays, key in scatter_parts(inputs, keys)]
    return (g, *grads) + (None,) * (len(inputs) - len(keys))


defop(
    "accumulate",  # accumulate(acc, *values, *index arrays; keys): acc with each part added
    internal=True,
    eval=_accumulate_eval,
    shape=lambda shapes, keys: shapes[0],
    dtype=lambda dtypes, keys: dtypes[0],
    vjp=_accumulate_vjp,
    py=None,
    py_stmts=_rendered,
    fold=False,
    gate="loop: gradients add up over iterations",
)


# ---- logic and conversions that tests on traced values need ----


def _logic_py(symbol: str, ufunc: str, prec: int):
    def emit(args, node):
        if not node.shape:  # Python's own operators on one truth value each
            return Expr(f"{wrap(args[0], prec + 1)} {symbol} {wrap(args[1], prec + 1)}", prec)
        return Expr(f"np.{ufunc}({args[0].text}, {args[1].text})", ATOM)

    return emit


def _logic_c(symbol: str, prec: int):
    inner = prec + 2 if symbol == "||" else prec + 1  # (a && b inside || gets parentheses)

    def emit(args, node):
        return Expr(f"{wrap(args[0], inner)} {symbol} {wrap(args[1], inner)}", prec)

    return emit


for _name, _symbol, _prec, _cprec in [("logical_and", "and", 3, 5), ("logical_or", "or", 2, 4)]:
    defop(
        _name,
        numpy=(getattr(np, _name),),
        internal=True,
        eval=getattr(np, _name),
        dtype=to_bool,
        vjp=lambda g, out, a, b: (None, None),
        py=_logic_py(_symbol, _name, _prec),
        c=_logic_c("&&" if _name == "logical_and" else "||", _cprec),
        gate="logic: no gradient",
    )


def _not_py(args, node):
    if not node.shape:
        return Expr(f"not {wrap(args[0], 4)}", 4)
    return Expr(f"np.logical_not({args[0].text})", ATOM)


defop(
    "logical_not",
    numpy=(np.logical_not,),
    internal=True,
    eval=np.logical_not,
    shape=same_shape,
    dtype=to_bool,
    vjp=lambda g, out, a: (None,),
    py=_not_py,
    c=lambda args, node: Expr(f"!{wrap(args[0], 14)}", 14),
    gate="logic: no gradient",
)


def _astype_py(args, node):
    if not node.shape and node.dtype == "f64":
        return Expr(f"float({args[0].text})", ATOM)
    kind = {"f64": "np.float64", "f32": "np.float32", "bool": "bool", "i64": "np.int64"}
    return Expr(f"np.asarray({args[0].text}, dtype={kind[node.dtype]})", ATOM)


def _astype_vjp(g, out, x, dtype):
    if x.dtype not in ("f64", "f32"):
        return (None,)
    return (g if g.dtype == x.dtype else apply("astype", g, dtype=x.dtype),)


defop(
    "astype",  # a value of one dtype as another: a branch's 0 as the other branch's 0.0
    internal=True,
    eval=lambda x, dtype: np.asarray(x).astype(NUMPY_DTYPES[dtype]),
    shape=same_shape,
    dtype=lambda dtypes, dtype: dtype,
    vjp=_astype_vjp,
    py=_astype_py,
    c=lambda args, node: Expr(
        f"({'float' if node.dtype == 'f32' else 'long' if node.dtype == 'i64' else 'double'})"
        f"{wrap(args[0], 14)}",
        14,
    ),
    gate="astype: converts back",
)


def bound_params(node: Node, k: int) -> list[tuple[str, int | None, int]]:
    """The body parameters that read `node`'s input `k` as they are, on every pass:
    (attribute, branch or None, parameter index). A loop's carried inputs are read only
    by the first iteration: none."""
    attrs = node.attrs
    if node.op == "cond":
        if k == 0:
            return []
        out = []
        for b, body in enumerate(attrs["branches"]):
            if attrs["role"] == "back":
                if k == 1:
                    continue  # the tape
                n_res = len(body.params) - (len(node.inputs) - 2)
                out.append(("branches", b, n_res + k - 2))
            else:
                out.append(("branches", b, k - 1))
        return out
    carried = attrs["carried"]
    if attrs["role"] == "back":
        if k < 1 + carried:
            return []
        n_res = len(attrs["body"].params) - len(node.inputs)  # (and the counter)
        return [("body", None, n_res + k - 1)]
    if k < carried:
        return []
    out = [("body", None, 1 + k)]
    if attrs.get("cond") is not None:
        out.append(("cond", None, 1 + k))
    return out
