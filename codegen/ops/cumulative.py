"""Cumulative ops: cumsum and cumprod along an axis.

cumsum's gradient is the reversed cumulative sum of the upstream gradient (each input
reaches every later output). cumprod's is the same sum over `g * y`, divided by the input
- except that a zero input would divide zero by zero. So the rule splits each row at its
first zero z: before it the division is exact; at z the gradient is the reversed sum over
the products with x[z] left out (a cumprod with x[z] read as 1); after it every product
that reaches an input also holds x[z], and the gradient is 0.
"""

from __future__ import annotations

import numpy as np

from ..emit.expr import ATOM, Expr
from . import apply, defop
from .reduce import as_float, normalize_axis


def _cumulative_front(name: str):
    def front(args, kwargs, tracing):
        a, *rest = args
        axis = kwargs.pop("axis", rest.pop(0) if rest else None)
        dtype = kwargs.pop("dtype", rest.pop(0) if rest else None)
        if kwargs.pop("out", rest.pop(0) if rest else None) is not None:
            raise TypeError(f"np.{name}(..., out=...) is not supported")
        if kwargs.pop("include_initial", False):
            raise TypeError(f"np.{name}(..., include_initial=True) is not supported")
        if kwargs or rest:
            raise TypeError(f"np.{name} takes a, axis, dtype, out")
        if not hasattr(a, "graph"):
            a = tracing.graph.const(np.asarray(a, dtype=np.float64))
        if dtype is not None:  # a float dtype converts first, as numpy does
            a = as_float(a, dtype, name, tracing)
        if axis is None or a.ndim == 0:  # numpy flattens first
            a = tracing.apply("reshape", a, shape=(a.size,))
            axis = 0
        return tracing.apply(name, a, axis=normalize_axis(axis, a.ndim)[0])

    return front


def _reversed(x, axis: int):
    """x read backwards along `axis` (a view: x[..., ::-1])."""
    return apply(
        "index", x, key=(("slice", None, None, None),) * axis + (("slice", None, None, -1),)
    )


def reverse_cumsum(g, axis: int):
    """sum_{j >= i} g[j] along axis."""
    return _reversed(apply("cumsum", _reversed(g, axis), axis=axis), axis)


def _py(name: str):
    def emit(args, node) -> Expr:
        axis = node.attrs["axis"]
        where = "" if node.ndim == 1 else f", axis={axis}"
        return Expr(f"np.{name}({args[0].text}{where})", ATOM)

    return emit


defop(
    "cumsum",
    numpy=(np.cumsum,),
    front=_cumulative_front("cumsum"),
    eval=lambda x, axis: np.cumsum(x, axis=axis),
    shape=lambda shapes, axis: tuple(shapes[0]),
    dtype=lambda dtypes, **attrs: dtypes[0] if dtypes[0] in ("f64", "f32") else "f64",
    vjp=lambda g, out, x, axis: (reverse_cumsum(g, axis),),
    py=_py("cumsum"),
    gate="cumsum gate: sums back from the end",
    examples=(
        ("x: f64[5]", "np.cumsum(x) * np.arange(5.0)"),
        ("x: f64[3,4]", "x.cumsum(axis=0) * x"),
        ("x: f64[2,3]", "np.cumsum(x * x) + np.cumsum(x, axis=-1).sum()"),
    ),
)


def _cumprod_vjp(g, y, x, axis: int):
    zero = apply("where", apply("eq", x, 0.0), 1.0, 0.0)  # 1.0 at zeros
    zeros_so_far = apply("cumsum", zero, axis=axis)
    before = apply("eq", zeros_so_far, 0.0)  # before the first zero
    first = apply("eq", zeros_so_far * zero, 1.0)  # the first zero itself
    safe_x = apply("where", before, x, 1.0)
    plain = reverse_cumsum(g * y, axis) / safe_x
    skipping = apply("cumprod", apply("where", first, 1.0, x), axis=axis)
    at_first = reverse_cumsum(g * skipping, axis)
    return (apply("where", before, plain, apply("where", first, at_first, 0.0)),)


defop(
    "cumprod",
    numpy=(np.cumprod,),
    front=_cumulative_front("cumprod"),
    eval=lambda x, axis: np.cumprod(x, axis=axis),
    shape=lambda shapes, axis: tuple(shapes[0]),
    dtype=lambda dtypes, **attrs: dtypes[0] if dtypes[0] in ("f64", "f32") else "f64",
    vjp=lambda g, out, x, axis: _cumprod_vjp(g, out, x, axis),
    py=_py("cumprod"),
    gate="cumprod gate: products of the others, summed back",
    examples=(
        ("x: f64[5]", "np.cumprod(x)"),
        ("x: f64[3,4]", "x.cumprod(axis=1) * x"),
        ("x: f64[4]", "np.cumprod(x * np.array([1.0, 0.0, 1.0, 1.0]))"),
        (
            "x: f64[2,4]",
            "np.cumprod(x * np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]]), axis=1)",
        ),
    ),
)
