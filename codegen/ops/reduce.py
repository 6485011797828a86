"""Reductions over axes: sum, mean, prod, max, min.

Every reduction stores `axis` normalized (a sorted tuple of non-negative ints) and
`keepdims`. The VJPs bring the upstream gradient back to the reduced axes: sum and mean
broadcast it, max and min route it to the winners, prod scales it by the product of the
other elements.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from ..emit import c_expr as C
from ..emit.expr import ATOM, Expr, dtype_kw, wrap
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


# numpy's positional parameters after the array, per reduction (np.sum(x, 1, None, None, True)).
_POSITIONAL = {
    "sum": ("axis", "dtype", "out", "keepdims"),
    "mean": ("axis", "dtype", "out", "keepdims"),
    "prod": ("axis", "dtype", "out", "keepdims"),
    "max": ("axis", "out", "keepdims"),
    "min": ("axis", "out", "keepdims"),
}


def _reduction_front(name: str):
    def front(args, kwargs, graph):
        x, *rest = args
        if len(rest) > len(_POSITIONAL[name]):
            raise TypeError(f"np.{name} takes at most {len(_POSITIONAL[name]) + 1} arguments")
        for key, value in zip(_POSITIONAL[name], rest):
            if key in kwargs:
                raise TypeError(f"np.{name} got {key}= twice")
            kwargs[key] = value
        axis = kwargs.pop("axis", None)
        keepdims = bool(kwargs.pop("keepdims", False))
        where = kwargs.pop("where", True)
        initial = kwargs.pop("initial", None)
        dtype = kwargs.pop("dtype", None)
        for k, v in kwargs.items():
            if v is not None:
                raise TypeError(f"the argument {k}= is not supported")
        x = x if hasattr(x, "graph") else graph.const(x)
        if dtype is not None:
            x = as_float(x, dtype, name, graph)
        axis = normalize_axis(axis, x.ndim)
        mask = None if where is True or where is None else _constant_mask(where, x, graph)
        if mask is not None or initial is not None:
            return _masked(name, x, mask, initial, axis, keepdims, graph)
        return graph.apply(name, x, axis=axis, keepdims=keepdims)

    return front


def as_float(x, dtype: Any, name: str, graph):
    """x for np.<name>(x, dtype=...): the dtype x has (np.sum(x, dtype=np.float64) of a
    float64 x), or float64 for a mask or integers; a change of float precision is refused."""
    want = np.dtype(dtype)
    target = {np.dtype(np.float64): "f64", np.dtype(np.float32): "f32"}.get(want)
    if target is None or (x.dtype in ("f64", "f32") and x.dtype != target):
        raise TypeError(
            f"np.{name}(..., dtype={want}) of {x.dtype} values is not supported: "
            "convert with x.astype(...) first"
        )
    return x if x.dtype == target else graph.apply("astype", x, dtype=target)


# What a masked-out element reads as: the reduction's identity (max and min have none:
# numpy asks for `initial` there, which the element then reads as).
_IDENTITY = {"sum": 0.0, "mean": 0.0, "prod": 1.0, "max": None, "min": None}
_COMBINE = {"sum": "add", "prod": "mul", "max": "maximum", "min": "minimum"}


def _constant_mask(where: Any, x, graph) -> np.ndarray:
    mask = graph.concrete(where) if hasattr(where, "graph") else np.asarray(where)
    if mask is None:
        raise TypeError("where= needs a constant mask, not one computed from the parameters")
    if mask.dtype != bool:
        raise TypeError("where= must be a boolean mask")
    return np.broadcast_to(mask, x.shape)


def _masked(name: str, x, mask, initial, axis: tuple, keepdims: bool, graph):
    """numpy's where= and initial=: masked-out elements read as the identity (so they get
    no gradient), and `initial` joins the reduction once."""
    if name == "mean" and initial is not None:
        raise TypeError("np.mean has no initial=")
    fill = _IDENTITY[name] if _IDENTITY[name] is not None else initial
    if mask is not None and fill is None:
        raise ValueError(
            f"reduction operation '{name}' does not have an identity, so to use a where "
            "mask one has to specify 'initial'"
        )
    if mask is not None:
        x = graph.apply("where", graph.const(mask, "bool"), x, float(fill))
    if name == "mean":  # the sum of what is kept over how many are kept
        total = graph.apply("sum", x, axis=axis, keepdims=keepdims)
        count = np.sum(mask, axis=axis, keepdims=keepdims, dtype=np.float64)
        return graph.apply("div", total, graph.const(count))
    out = graph.apply(name, x, axis=axis, keepdims=keepdims)
    return out if initial is None else graph.apply(_COMBINE[name], out, float(initial))


def axis_args(node) -> list[str]:
    """`axis=..., keepdims=True` as needed by a reduction node (nothing for a full sum)."""
    parts = []
    axis, x = node.attrs["axis"], node.inputs[0]
    if axis != tuple(range(x.ndim)):
        parts.append(f"axis={axis[0] if len(axis) == 1 else axis}")
    if node.attrs["keepdims"]:
        parts.append("keepdims=True")
    return parts


def _reduction_py(name: str):
    """`x.NAME(axis=..., keepdims=True)`: an array's method skips the Python-level dispatch
    of `np.NAME` (about 1.5 µs a call, as much as the work on a small array); a 0-d input,
    which may be a Python float, gets `np.NAME(x)`."""

    def emit(args, node) -> Expr:
        if node.inputs[0].ndim:
            return Expr(f"{wrap(args[0], ATOM)}.{name}({', '.join(axis_args(node))})", ATOM)
        return Expr(f"np.{name}({', '.join([args[0].text, *axis_args(node)])})", ATOM)

    return emit


def _simplify_reduction(x, axis, keepdims):
    if not axis:  # a reduction over no axes is the identity
        return x
    return None


def kept(v, x, axis: tuple, keepdims: bool):
    """A reduction's output (or its cotangent) `v` laid out to broadcast against `x`.

    Without keepdims the reduced axes are put back as size-1 axes; when they are all leading
    axes, broadcasting already aligns `v` with `x` and no reshape is needed.
    """
    if keepdims or axis == tuple(range(len(axis))):
        return v
    return apply("reshape", v, shape=reduced_shape(x.shape, axis, True))


def _count(x, axis: tuple) -> int:
    return int(np.prod([x.shape[a] for a in axis], dtype=np.int64))


# ---- sum and mean: the distributing gates ----


def sum_vjp(g, out, x, axis, keepdims):
    """Broadcast `g` back over the reduced axes."""
    return (apply("broadcast_to", kept(g, x, axis, keepdims), shape=x.shape),)


def _reduction(name, fn, examples, vjp, gate, **extra):
    """Declare the reduction `name`, traced from `fn` (np.FN and the array method .FN)."""
    defop(
        name,
        numpy=fn,
        front=_reduction_front(name),
        examples=examples,
        eval=lambda x, axis, keepdims: getattr(np, name)(x, axis=axis, keepdims=keepdims),
        shape=lambda shapes, axis, keepdims: reduced_shape(shapes[0], axis, keepdims),
        vjp=vjp,
        py=_reduction_py(name),
        gate=gate,
        simplify=_simplify_reduction,
        **extra,
    )


_reduction(
    "sum",
    (np.sum,),
    examples=(
        ("x: f64[3]", "np.sum(x)"),
        ("x: f64[2,3]", "np.sum(x, axis=0)"),
        ("x: f64[2,3,4]", "x.sum(axis=(0, -1), keepdims=True)"),
        ("x: f64[2,1,3]", "np.sum(x, 1)"),
    ),
    vjp=sum_vjp,
    gate="sum gate: distributes",
    c=C.Reduction("0.0", "{acc} += {x};"),
)


# mean is its own op rather than sum / n so that the forward reads `np.mean(x, axis=1)` as
# the user wrote it; its rule is sum's with the gradient scaled by 1/n first (n elements).
_reduction(
    "mean",
    (np.mean,),
    examples=(
        ("x: f64[4]", "np.mean(x)"),
        ("x: f64[2,3]", "x.mean(axis=-1)"),
        ("x: f64[2,3,4]", "np.mean(x, axis=(0, 2), keepdims=True)"),
        ("x: f64[3,1]", "np.mean(x, axis=1)"),
    ),
    vjp=lambda g, out, x, axis, keepdims: sum_vjp(g / _count(x, axis), out, x, axis, keepdims),
    gate="mean gate: distributes 1/n",
    c=C.Reduction("0.0", "{acc} += {x};", "{acc} / {n}"),
)


# ---- max and min: the routing gates, ties split evenly (JAX's convention) ----


def _route_vjp(g, out, x, axis, keepdims):
    """The gradient goes to the elements equal to the result, split evenly among them."""
    one, zero = x.graph.const(1.0, x.dtype), x.graph.const(0.0, x.dtype)
    winners = apply("where", apply("eq", x, kept(out, x, axis, keepdims)), one, zero)
    count = apply("sum", winners, axis=axis, keepdims=True)
    return (winners * (kept(g, x, axis, keepdims) / count),)


def _top_gap(x: np.ndarray, axes: tuple) -> float:
    """The smallest difference between the largest and second-largest element along `axes`."""
    n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if n < 2 or x.size == 0:
        return np.inf
    lanes = np.moveaxis(x, axes, tuple(range(-len(axes), 0))).reshape(-1, n)
    top2 = np.partition(lanes, n - 2, axis=-1)[:, -2:]
    return float(np.min(top2[:, 1] - top2[:, 0]))


def max_kink(x, axis=None, keepdims=False) -> float:
    """Distance to a tie for first place: where max's gradient switches from one winner to another.

    The check calls kinks with the input values only, so when `axis` is not given every set
    of axes is tried: a superset of the real one, which can only re-draw more points.
    """
    x = np.asarray(x, dtype=np.float64)
    if axis is not None:
        return _top_gap(x, tuple(axis))
    subsets = [s for k in range(1, x.ndim + 1) for s in combinations(range(x.ndim), k)]
    return min((_top_gap(x, s) for s in subsets), default=np.inf)


_reduction(
    "max",
    (np.max, np.amax),
    examples=(
        ("x: f64[5]", "np.max(x)"),
        ("x: f64[3,4]", "x.max(axis=0)"),
        ("x: f64[2,3,4]", "np.amax(x, axis=(-1, 0), keepdims=True)"),
        ("x: f64[3,1,2]", "np.max(x, axis=1)"),
    ),
    vjp=_route_vjp,
    gate="max gate: routes to the winners",
    c=C.Reduction("-INFINITY", "if ({x} > {acc} || {x} != {x}) {acc} = {x};"),
    kink=max_kink,
)
_reduction(
    "min",
    (np.min, np.amin),
    examples=(
        ("x: f64[5]", "x.min()"),
        ("x: f64[3,4]", "np.min(x, axis=-1)"),
        ("x: f64[2,3,4]", "np.amin(x, axis=1, keepdims=True)"),
        ("x: f64[1,3]", "np.min(x, 0)"),
    ),
    vjp=_route_vjp,
    gate="min gate: routes to the winners",
    c=C.Reduction("INFINITY", "if ({x} < {acc} || {x} != {x}) {acc} = {x};"),
    kink=lambda x, axis=None, keepdims=False: max_kink(-np.asarray(x), axis, keepdims),
)


# ---- prod: the product of the other elements ----


def _prod_vjp(g, out, x, axis, keepdims):
    """d prod / d x_i is the product of the other elements, zeros included.

    `out / x` would divide by zero at a zero, so the rule multiplies the nonzero elements
    instead (zeros replaced by 1) and divides by the element itself only where it is
    nonzero; an element's gradient is then zero exactly when one of the *other* elements is
    zero. Exact for any number of zeros; the second derivative treats the zero mask as
    constant, so it is exact away from zeros only.
    """
    zero = apply("eq", x, 0.0)
    safe = apply("where", zero, 1.0, x)
    nonzero_product = apply("prod", safe, axis=axis, keepdims=True)
    zeros_elsewhere = apply("sum", zero, axis=axis, keepdims=True) - zero
    others = apply("where", apply("eq", zeros_elsewhere, 0.0), nonzero_product / safe, 0.0)
    return (kept(g, x, axis, keepdims) * others,)


_reduction(
    "prod",
    (np.prod,),
    examples=(
        ("x: f64[4]", "np.prod(x)"),
        ("x: f64[2,3]", "x.prod(axis=1)"),
        ("x: f64[2,3,2]", "np.prod(x, axis=(0, -1), keepdims=True)"),
        ("x: f64[1,3]", "np.prod(x, axis=0)"),
    ),
    vjp=_prod_vjp,
    gate="prod gate: product of the others",
    c=C.Reduction("1.0", "{acc} *= {x};"),
)


# ---- scan: running sums and products, made by the scan lowering ----


def _scan_eval(v0, *cols, ufunc, length):
    """[v0, x_1, ..., x_length] accumulated, the x's the columns interleaved: column r
    gives x_{1+r}, x_{1+r+p}, ... (a 0-d column the same value each time)."""
    x = np.empty(1 + length, np.result_type(v0, *cols))
    x[0] = v0
    for r, col in enumerate(cols):
        x[1 + r :: len(cols)] = col
    return getattr(np, ufunc).accumulate(x)


def scan_column_length(length: int, period: int, r: int) -> int:
    """How many of the `length` elements column r of `period` gives."""
    return len(range(r, length, period))


def _scan_vjp(g, out, v0, *cols, ufunc, length):
    """Unrolled into scalar IR, so it holds at zeros: with s_j = dL/dP_j summed over the
    running values that read x_j, s_j = g_j + s_{j+1} (sums) or g_j + x_{j+1} s_{j+1}
    (products), and x_j's cotangent is s_j (sums) or P_{j-1} s_j (products)."""
    p = len(cols)
    xs = [v0] + [
        cols[j % p] if cols[j % p].ndim == 0 else apply("index", cols[j % p], key=(j // p,))
        for j in range(length)
    ]
    s = [apply("index", g, key=(length,))]
    for j in range(length - 1, -1, -1):
        g_j = apply("index", g, key=(j,))
        s.append(g_j + (s[-1] if ufunc == "add" else xs[j + 1] * s[-1]))
    s.reverse()
    if ufunc == "add":
        dx = s
    else:
        dx = [s[0]] + [apply("index", out, key=(j - 1,)) * s[j] for j in range(1, length + 1)]
    grads = [dx[0]]
    for r, c in enumerate(cols):
        mine = dx[1 + r :: p]
        if c.ndim == 0:  # one value read at every row: the cotangents add up
            total = mine[0]
            for d in mine[1:]:
                total = total + d
            grads.append(total)
        else:
            grads.append(apply("stack", *mine, axis=0))
    return tuple(grads)


def _scan_py(target, args, node):
    """`P = np.empty(n)`, `P[0] = v0`, `P[1::p] = column`..., then accumulated in place.
    Sequential, like the scalar code it replaces, so the results are the same bits."""
    v0, *cols = args
    p = len(cols)
    lines = [
        f"{target} = np.empty({node.shape[0]}{dtype_kw(node.dtype)})",
        f"{target}[0] = {v0.text}",
    ]
    for r, col in enumerate(cols):
        where = "1:" if p == 1 else f"{1 + r}::{p}"
        lines.append(f"{target}[{where}] = {col.text}")
    lines.append(f"np.{node.attrs['ufunc']}.accumulate({target}, out={target})")
    return lines


def _scan_shape(shapes, ufunc, length):
    for r, s in enumerate(shapes[1:]):
        if s and s != (scan_column_length(length, len(shapes) - 1, r),):
            raise ValueError(f"scan column {r} has shape {s}, not that of its elements")
    return (1 + length,)


defop(
    "scan",  # scan(v0, *columns, ufunc, length): a running sum or product of interleaved columns
    internal=True,  # made by the scan lowering from unrolled scalar chains, never traced
    fresh=True,
    fold=False,
    eval=_scan_eval,
    shape=_scan_shape,
    vjp=_scan_vjp,
    py=None,
    py_stmts=_scan_py,
    gate="scan gate: steps at once",
)
