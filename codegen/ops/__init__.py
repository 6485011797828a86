"""The op table: everything about an op, declared once, side by side.

Each op module (`elementwise`, `reduce`, `shape`, ...) calls `defop` once per op with its
shape rule, numpy evaluation, VJP rule (which builds IR through Node arithmetic and
`apply`), Python emission, the numpy callables the tracer maps to it, and the input domain
its tests sample. Nothing outside this package knows about individual ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..emit.expr import Emit

OPS: dict[str, "Op"] = {}
# numpy callable (ufunc or function) -> tracer front: (args, kwargs, graph) -> value
NUMPY: dict[Any, Callable] = {}
# op name -> the numpy ufunc it evaluates exactly (so `out=` may be used when emitting)
UFUNCS: dict[str, np.ufunc] = {}
# op name -> patterns rooted at that op which a fused op replaces (the fuse pass)
FUSIONS: dict[str, list[Callable]] = {}
# How far below the node they rewrite the rules (simplify, fusions, strip_broadcasts) may
# look at ops, attributes and constant values: sigmoid's pattern, 1 / (1 + exp(-z)), reads
# three levels. `ir.replay` relies on it to skip optimized nodes that no rule could change;
# a rule that looks deeper must raise it.
RULE_DEPTH = 3


@dataclass(frozen=True)
class Op:
    """One primitive. `vjp(g, out, *inputs, **attrs)` returns one cotangent (or None) per input."""

    name: str
    eval: Callable[..., Any]
    py: Emit  # numpy form, for arrays
    shape: Callable[..., tuple]
    dtype: Callable[..., str]
    vjp: Callable[..., tuple] | None = None
    py_scalar: Emit | None = None  # math form, for f64 scalars; defaults to `py`
    py_stmts: Callable[..., list[str]] | None = None  # statement form, when no expression fits
    # C emission (emit/c_expr.py): the value at one element (an Emit) for elementwise ops,
    # a Reduction, or a Form (matmul, outer, view); None: not yet on the C target
    c: Any = None
    gate: str = ""  # the emitted comment on the lines this op's VJP makes
    domain: str = "real"  # what tests sample: real | positive | unit (-1, 1) | nonzero
    # kink(*input values, **attrs): distance to a switch (max/abs/where), for the numeric check
    kink: Callable[..., Any] | None = None
    simplify: Callable[..., Any] | None = None  # construction-time rewrite, or None
    fold: bool = True  # constant inputs may be evaluated at compile time
    gathers: bool = False  # only assembles its inputs: single-use inputs inline into it
    # Test cases: (parameter annotations, expression), e.g. ("x: f64[3,4]", "np.sum(x, axis=1)").
    # Ufuncs without any get generated ones; `internal` ops are reached only through others.
    examples: tuple[tuple[str, str], ...] = ()
    internal: bool = False
    fuses: tuple[str, Callable] | None = None  # (root op, matcher): see `defop`
    flops: Callable[..., int] | None = None  # flops(node) for --stats; default: one per element
    # its numpy evaluation returns a new array (never a view): the emitter may write
    # into it later with out=; every ufunc does
    fresh: bool = False
    # its numpy evaluation may return a view of its first input (x.T, x[1:], reshape)
    view: bool = False


def broadcast_shape(shapes: list[tuple], **attrs: Any) -> tuple:
    """numpy's broadcasting of shapes (with a fast path: tracing calls this for every node)."""
    first = shapes[0]
    if shapes.count(first) == len(shapes):
        return tuple(first)
    ndim = max(len(s) for s in shapes)
    out = []
    for axis in range(-ndim, 0):
        sizes = {s[axis] for s in shapes if len(s) >= -axis} - {1}
        if len(sizes) > 1:
            raise ValueError(
                "shape mismatch: objects cannot be broadcast to a single shape: "
                + " and ".join(str(tuple(s)) for s in shapes)
            )
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def promote(dtypes: list[str], **attrs: Any) -> str:
    """f64 if any input is, else f32 if any is; f64 when none is a float."""
    if "f64" in dtypes:
        return "f64"
    return "f32" if "f32" in dtypes else "f64"


def keeps_ints(dtypes: list[str], **attrs: Any) -> str:
    """Integers stay integers (a loop counter's `i + 1` still indexes); else `promote`."""
    if dtypes and all(d == "i64" for d in dtypes):
        return "i64"
    return promote(dtypes)


def to_bool(dtypes: list[str], **attrs: Any) -> str:
    return "bool"


def same_shape(shapes: list[tuple], **attrs: Any) -> tuple:
    return shapes[0]


def defop(
    name: str,
    *,
    numpy: tuple = (),
    front: Callable | None = None,
    fuses: tuple[str, Callable] | None = None,
    **fields: Any,
) -> Op:
    """Declare an op, the numpy callables that trace to it, and the pattern it fuses.

    `fuses=(root, match)`: `match(*root_inputs, **root_attrs)` returns the fused node for
    a `root` node that is an instance of the pattern, else None.
    """
    fields.setdefault("shape", broadcast_shape)
    fields.setdefault("dtype", promote)
    if any(isinstance(fn, np.ufunc) for fn in numpy) and front is None:
        fields.setdefault("fresh", True)
    op = Op(name=name, fuses=fuses, **fields)
    if name in OPS:
        raise ValueError(f"op {name!r} declared twice")
    OPS[name] = op
    for fn in numpy:
        NUMPY[fn] = front or _ufunc_front(name)
        if front is None and isinstance(fn, np.ufunc) and fn.nout == 1:
            UFUNCS.setdefault(name, fn)
    if fuses is not None:
        FUSIONS.setdefault(fuses[0], []).append(fuses[1])
    return op


def _ufunc_front(name: str) -> Callable:
    def front(args: tuple, kwargs: dict, graph) -> Any:
        given = [
            k
            for k, v in kwargs.items()
            if v is not None and not (k == "casting" and v == "same_kind")
        ]
        if given:  # where=, dtype=, ... would change the result: refuse rather than ignore
            raise TypeError(f"the keyword argument {given[0]}= is not supported")
        return graph.apply(name, *args)

    return front


def strip_broadcasts(spec: Op, nodes: tuple) -> tuple | None:
    """op(broadcast_to(a), b) -> op(a, b) for elementwise ops, when the result's shape is
    unchanged: the op broadcasts by itself, without materializing the wide operand."""
    if spec.shape is not broadcast_shape or not any(n.op == "broadcast_to" for n in nodes):
        return None
    out = broadcast_shape([n.shape for n in nodes])
    inner = tuple(n.inputs[0] if n.op == "broadcast_to" else n for n in nodes)
    # reshape that only adds leading ones is also what broadcasting does
    inner = tuple(
        (
            n.inputs[0]
            if n.op == "reshape"
            and n.shape[len(n.shape) - n.inputs[0].ndim :] == n.inputs[0].shape
            and all(d == 1 for d in n.shape[: len(n.shape) - n.inputs[0].ndim])
            else n
        )
        for n in inner
    )
    if broadcast_shape([n.shape for n in inner]) != out:
        return None
    return inner


def flops(node) -> int:
    """The floating-point operations a node costs, roughly (for --stats)."""
    spec = OPS[node.op]
    if spec.flops is not None:
        return int(spec.flops(node))
    return max([node.size, *(i.size for i in node.inputs)])


def apply(op: str, *inputs: Any, **attrs: Any):
    """Build `op(*inputs)` in the graph of the first node among the inputs."""
    graph = next(x.graph for x in inputs if hasattr(x, "graph"))
    return graph.apply(op, *inputs, **attrs)


def is_const(node: Any, value: float | None = None) -> bool:
    """Whether `node` is a constant (equal everywhere to `value`, if given)."""
    op = getattr(node, "op", None)
    if op == "broadcast_to":
        node = node.inputs[0]
        op = node.op
    if op != "const":
        return False
    if value is None:
        return True
    if node.value.ndim == 0:  # the common case, without np.all's overhead
        return bool(node.value.item() == value)
    return bool(np.all(node.value == value))


# Importing the op modules fills the table; the last row's are numpy written on the others'.
from . import create, elementwise, fused, linalg, reduce, shape  # noqa: E402,F401
from . import composite, cumulative, einsum, matrix, order  # noqa: E402,F401
from . import control  # noqa: E402,F401
