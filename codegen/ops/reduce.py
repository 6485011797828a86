"""Reductions over axes. The VJP broadcasts the upstream gradient back over the reduced axes."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..emit.expr import ATOM, Expr
from . import apply, defop


def normalize_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    """`axis` (None, int, negative int or tuple) as a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for an array of {ndim} dimensions")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"axis {axis!r} repeats an axis")
    return tuple(sorted(out))


def reduced_shape(shape: tuple, axis: tuple, keepdims: bool) -> tuple:
    if keepdims:
        return tuple(1 if i in axis else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axis)


def _reduction_front(name: str):
    def front(args, kwargs, graph):
        x, *rest = args
        axis = kwargs.pop("axis", rest[0] if rest else None)
        keepdims = bool(kwargs.pop("keepdims", False))
        for k, v in kwargs.items():
            if v is not None:
                raise TypeError(f"the argument {k}= is not supported")
        x = x if hasattr(x, "graph") else graph.const(x)
        return graph.apply(name, x, axis=normalize_axis(axis, x.ndim), keepdims=keepdims)

    return front


def axis_args(node) -> list[str]:
    """`axis=..., keepdims=True` as needed by a reduction node (nothing for a full sum)."""
    parts = []
    axis, x = node.attrs["axis"], node.inputs[0]
    if axis != tuple(range(x.ndim)):
        parts.append(f"axis={axis[0] if len(axis) == 1 else axis}")
    if node.attrs["keepdims"]:
        parts.append("keepdims=True")
    return parts


def _simplify_sum(x, axis, keepdims):
    if not axis:  # a sum over no axes is the identity
        return x
    return None


def sum_vjp(g, out, x, axis, keepdims):
    """Broadcast `g` back over the reduced axes."""
    if not keepdims and axis:
        g = apply("reshape", g, shape=reduced_shape(x.shape, axis, True))
    return (apply("broadcast_to", g, shape=x.shape),)


defop(
    "sum",
    numpy=(np.sum,),
    front=_reduction_front("sum"),
    examples=(
        ("x: f64[3]", "np.sum(x)"),
        ("x: f64[2,3]", "np.sum(x, axis=0)"),
        ("x: f64[2,3,4]", "x.sum(axis=(0, -1), keepdims=True)"),
    ),
    eval=lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
    shape=lambda shapes, axis, keepdims: reduced_shape(shapes[0], axis, keepdims),
    vjp=sum_vjp,
    py=lambda args, node: Expr(f"np.sum({', '.join([args[0].text, *axis_args(node)])})", ATOM),
    gate="sum gate: distributes",
    simplify=_simplify_sum,
)
