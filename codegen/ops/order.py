"""Order: argsort, argmax and argmin as integer results (no gradient) that can index, and
what is built on them: sort, take_along_axis, median, percentile and quantile.

sort is a gather through the permutation argsort computes at run time,
`take_along_axis(x, argsort(x))`, so its gradient is the gather's: it scatters back
through the permutation. The order statistics (median, percentiles) read sorted elements,
so their gradient routes to the elements they used. At a tie the permutation is numpy's
stable one; the numeric check draws points away from ties (each op's `kink`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..emit import c_expr as C
from ..emit.expr import ATOM, Expr
from . import NUMPY, defop
from .composite import composite
from .reduce import normalize_axis
from .shape import ARR


def _gap(x, axis: int | None = -1, **attrs) -> np.ndarray:
    """The distance to a tie along `axis`: where the order would switch."""
    x = np.ravel(x) if axis is None else np.moveaxis(np.asarray(x), axis, -1)
    if x.shape[-1] < 2:
        return np.array(np.inf)
    return np.diff(np.sort(x, axis=-1), axis=-1)


def _axis_text(node, default: int | None = None) -> str:
    """`, axis=k` unless k is numpy's default (argsort's is the last axis; argmax's None)."""
    axis = node.attrs["axis"]
    if default is not None and axis == node.inputs[0].ndim - 1:
        return ""
    return "" if axis is None else f", axis={axis}"


def _argsort_front(args, kwargs, tracing):
    a, *rest = args
    axis = kwargs.pop("axis", rest.pop(0) if rest else -1)
    for key in ("kind", "order", "stable"):
        value = kwargs.pop(key, rest.pop(0) if rest and key != "stable" else None)
        if key == "order" and value is not None:
            raise TypeError("np.argsort(..., order=...) sorts structured arrays, not supported")
    if kwargs or rest:
        raise TypeError("np.argsort takes a, axis, kind, order, stable")
    if a.ndim == 0:
        raise TypeError("np.argsort of a scalar")
    axis = None if axis is None else normalize_axis(axis, a.ndim)[0]
    return tracing.apply("argsort", a, axis=axis)


defop(
    "argsort",
    numpy=(np.argsort,),
    front=_argsort_front,
    # stable: ties keep their order, so the result is one permutation, the same everywhere
    eval=lambda x, axis: np.argsort(x, axis=axis, kind="stable"),
    shape=lambda shapes, axis: ((int(np.prod(shapes[0])),) if axis is None else tuple(shapes[0])),
    dtype=lambda dtypes, **attrs: "i64",
    vjp=lambda g, out, x, **attrs: (None,),  # an integer result: no gradient
    py=lambda args, node: Expr(
        f'np.argsort({args[0].text}{_axis_text(node, -1)}, kind="stable")', ATOM
    ),
    gate="argsort: no gradient (an integer result)",
    c=C.KERNEL,  # emit/c_kernels.py: a stable merge sort of indices
    kink=_gap,
    examples=(
        ("x: f64[5]", "x[np.argsort(x)] * np.arange(5.0)"),
        ("x: f64[3,4]", "np.take_along_axis(x, np.argsort(x, axis=0), axis=0) * x"),
        ("x: f64[2,3]", "np.sort(x, axis=None) * np.arange(6.0)"),
    ),
)


def _arg_best_front(name: str):
    def front(args, kwargs, tracing):
        a, *rest = args
        axis = kwargs.pop("axis", rest.pop(0) if rest else None)
        if kwargs.pop("out", rest.pop(0) if rest else None) is not None:
            raise TypeError(f"np.{name}(..., out=...) is not supported")
        keepdims = bool(kwargs.pop("keepdims", False))
        if kwargs or rest:
            raise TypeError(f"np.{name} takes a, axis, out, keepdims")
        axis = None if axis is None else normalize_axis(axis, max(a.ndim, 1))[0]
        return tracing.apply(name, a, axis=axis, keepdims=keepdims)

    return front


def _arg_best_shape(shapes, axis, keepdims):
    probe = np.broadcast_to(np.empty((), dtype=np.int8), shapes[0])
    return np.argmax(probe, axis=axis, keepdims=keepdims).shape


def _arg_best_py(name: str):
    def emit(args, node) -> Expr:
        keep = ", keepdims=True" if node.attrs["keepdims"] else ""
        return Expr(f"np.{name}({args[0].text}{_axis_text(node)}{keep})", ATOM)

    return emit


for _name, _fn, _example in (
    ("argmax", np.argmax, ("x: f64[6]", "x[np.argmax(x)] * x")),
    (
        "argmin",
        np.argmin,
        ("x: f64[3,4]", "np.take_along_axis(x, x.argmin(axis=1, keepdims=True), 1)"),
    ),
):
    defop(
        _name,
        numpy=(_fn,),
        front=_arg_best_front(_name),
        eval=lambda x, axis, keepdims, _fn=_fn: np.asarray(_fn(x, axis=axis, keepdims=keepdims)),
        shape=_arg_best_shape,
        dtype=lambda dtypes, **attrs: "i64",
        vjp=lambda g, out, x, **attrs: (None,),  # an integer result: no gradient
        py=_arg_best_py(_name),
        gate=f"{_name}: no gradient (an integer result)",
        c=C.KERNEL,  # emit/c_kernels.py: one pass, the first winner
        kink=lambda x, axis, keepdims: _gap(x, axis),
        examples=(_example,),
    )


# ---- gathers along an axis, and what is built on them ----


def _take_along(tracing, x, indices, axis: int):
    """x[i0, ..., indices, ..., ik] with aranges on the other axes: numpy's
    take_along_axis, as one integer gather (its gradient scatters back)."""
    if indices.ndim != x.ndim:
        raise ValueError("`indices` and `arr` must have the same number of dimensions")
    key, arrays = [], []
    for ax in range(x.ndim):
        key.append((ARR, len(arrays)))
        if ax == axis:
            arrays.append(indices)
        else:
            shape = tuple(x.shape[ax] if i == ax else 1 for i in range(x.ndim))
            arange = tracing.graph.const(np.arange(x.shape[ax]).reshape(shape), "i64")
            arange.name = arange.name or "IDX"
            arrays.append(arange)
    return tracing.apply("index", x, *arrays, key=tuple(key))


def _take_along_axis_front(args, kwargs, tracing):
    arr, indices, *rest = args
    axis = kwargs.pop("axis", rest.pop(0) if rest else -1)
    if kwargs or rest:
        raise TypeError("np.take_along_axis takes arr, indices, axis")
    if not hasattr(indices, "graph"):
        indices = np.asarray(indices)
        if not np.issubdtype(indices.dtype, np.integer):
            raise TypeError("`indices` must be an integer array")
        indices = tracing.graph.const(indices.astype(np.int64), "i64")
    elif indices.dtype != "i64":
        raise TypeError("`indices` must be an integer array")
    if not hasattr(arr, "graph"):
        arr = tracing.graph.const(np.asarray(arr, dtype=np.float64))
    if axis is None:
        arr = tracing.apply("reshape", arr, shape=(arr.size,))
        axis = 0
    return _take_along(tracing, arr, indices, normalize_axis(axis, arr.ndim)[0])


NUMPY[np.take_along_axis] = _take_along_axis_front


@composite(np.sort)
def _sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """take_along_axis(a, argsort(a)): the gradient goes back through the permutation."""
    if order is not None:
        raise TypeError("np.sort(..., order=...) sorts structured arrays, not supported")
    if axis is None:
        a, axis = np.ravel(a), 0
    return np.take_along_axis(a, np.argsort(a, axis=axis), axis=axis)


def _sorted_along(a, axis):
    """a sorted along `axis` (None: flattened), with that axis moved last."""
    if axis is None:
        return np.sort(np.ravel(a)), None
    axes = normalize_axis(axis, a.ndim)
    if len(axes) > 1:  # several axes: bring them together at the end, then flatten them
        rest = [i for i in range(a.ndim) if i not in axes]
        moved = np.transpose(a, rest + list(axes))
        a2 = np.reshape(moved, tuple(a.shape[i] for i in rest) + (-1,))
        return np.sort(a2, axis=-1), axes
    return np.sort(np.moveaxis(a, axes[0], -1), axis=-1), axes


# numpy's discontinuous methods: the one order statistic they pick, from q (n - 1)
PICK = {"lower": np.floor, "higher": np.ceil, "nearest": np.around}
METHODS = ("linear", "midpoint", *PICK)


def _quantiles(a, q, axis, keepdims: bool, name: str, method: str = "linear"):
    """numpy's quantile: between the order statistics at q (n - 1) (linear; midpoint:
    halfway between them), or one of them (lower, higher, nearest: its gradient goes to
    that element alone)."""
    q = np.asarray(q, dtype=np.float64)
    if np.any(q < 0) or np.any(q > 1):
        raise ValueError(f"{name}s must be in the range [0, {100 if name == 'percentile' else 1}]")
    s, axes = _sorted_along(a, axis)
    n = s.shape[-1]
    pos = q * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    if method == "midpoint":  # (numpy: halfway where the position is not whole)
        frac = np.where(frac > 0, 0.5, 0.0)
    if method in PICK:
        value = s[..., PICK[method](pos).astype(np.int64)]
        return _quantile_layout(value, q, a, axes, keepdims)
    below, above = s[..., lo], s[..., hi]
    # numpy's lerp: a + (b - a) t below t = 0.5, b - (b - a) (1 - t) from there; t is a
    # constant, so each element's form is chosen here, and the code holds only the one used
    upper = frac >= 0.5
    low_form = below + (above - below) * frac
    high_form = above - (above - below) * (1.0 - frac)
    if np.all(upper):
        value = high_form
    elif not np.any(upper):
        value = low_form
    else:
        value = np.where(upper, high_form, low_form)
    return _quantile_layout(value, q, a, axes, keepdims)


def _quantile_layout(value, q, a, axes, keepdims: bool):
    """The quantiles in numpy's layout: the quantile axis first, kept dims of size 1."""
    if q.ndim:  # numpy puts the quantile axis first
        value = np.moveaxis(value, -1, 0) if value.ndim > 1 else value
    if keepdims:
        if axes is None:
            kept = (1,) * a.ndim
        else:
            kept = tuple(1 if i in axes else d for i, d in enumerate(a.shape))
        value = np.reshape(value, q.shape + kept)
    return value


def _quantile_front(name: str, scale: float):
    """np.quantile (scale 1) and np.percentile (q in percent, scale 100)."""

    def impl(
        a,
        q,
        axis=None,
        out=None,
        overwrite_input=False,
        method="linear",
        keepdims=False,
        *,
        weights=None,
        interpolation=None,
    ):
        if out is not None or weights is not None:
            raise TypeError(f"np.{name}'s out= and weights= are not supported")
        method = interpolation or method
        if method not in METHODS:
            raise TypeError(f"the methods supported are {', '.join(METHODS)} (got {method!r})")
        q = np.asarray(q, dtype=np.float64) / scale
        return _quantiles(a, q, axis, keepdims, name, method)

    impl.__name__ = f"_{name}"
    return impl


composite(np.quantile)(_quantile_front("quantile", 1.0))
composite(np.percentile)(_quantile_front("percentile", 100.0))


@composite(np.median)
def _median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """The middle order statistic, or the mean of the two middle ones."""
    if out is not None:
        raise TypeError("np.median(..., out=...) is not supported")
    s, axes = _sorted_along(a, axis)
    n = s.shape[-1]
    mid = n // 2
    value = s[..., mid] if n % 2 else (s[..., mid - 1] + s[..., mid]) / 2.0
    if keepdims:
        kept = (
            (1,) * a.ndim
            if axes is None
            else tuple(1 if i in axes else d for i, d in enumerate(a.shape))
        )
        value = np.reshape(value, kept)
    return value


@composite(np.partition)
def _partition(a, kth, axis=-1, kind="introselect", order=None):
    """A full sort, which is one valid partition: element kth is in its sorted place,
    smaller ones before it, larger after. numpy's own arrangement of the others is
    unspecified, so code that reads them in an order other than sorted may differ (the
    numeric check compares the values)."""
    if order is not None:
        raise TypeError("np.partition(..., order=...) is not supported")
    return np.sort(a, axis=axis)


@composite(np.argpartition)
def _argpartition(a, kth, axis=-1, kind="introselect", order=None):
    """The stable argsort: a valid argpartition for every kth (see np.partition)."""
    if order is not None:
        raise TypeError("np.argpartition(..., order=...) is not supported")
    return np.argsort(a, axis=axis)


def _put_along_axis(args, kwargs, tracing):
    """arr[i0, ..., indices, ..., ik] = values, in place, with constant indices: numpy's
    own arguments (the user's arrays, which it writes into)."""
    names = ("arr", "indices", "values", "axis")
    given = dict(zip(names, args))
    given.update(kwargs)
    if set(given) != set(names):
        raise tracing.error("np.put_along_axis takes arr, indices, values, axis")
    arr, indices, values, axis = (given[n] for n in names)
    if not hasattr(arr, "tracing"):
        raise tracing.error(
            "np.put_along_axis writes a traced value into a numpy array",
            "create the array inside the function with np.zeros (gradgen traces it)",
        )
    if axis is None:
        raise tracing.error("np.put_along_axis with axis=None is not supported: reshape first")
    ax = normalize_axis(axis, arr.ndim)[0]
    indices = np.asarray(indices)
    if indices.ndim != arr.ndim:
        raise tracing.error("`indices` and `arr` must have the same number of dimensions")
    key = tuple(
        (
            indices
            if i == ax
            else np.arange(arr.shape[i]).reshape(
                tuple(-1 if j == i else 1 for j in range(arr.ndim))
            )
        )
        for i in range(arr.ndim)
    )
    arr[key] = values


_put_along_axis.raw = True
NUMPY[np.put_along_axis] = _put_along_axis


# ---- where a condition holds: indices whose count depends on values ----

INDICES_HINT = (
    "keep the shape and choose element by element with np.where(cond, a, b) "
    "(np.where(cond, x, 0.0), then sum or multiply); a condition on constants works as numpy"
)


def _indices_front(fn: Any, call: str):
    """np.nonzero and its kin: numpy's own result for a condition that is a constant (as
    integer constants, which can index); refused for a traced one, whose number of true
    elements, and so the result's shape, depends on the parameters' values."""

    def front(args, kwargs, tracing):
        if len(args) != 1 or kwargs:
            raise TypeError(f"{call} takes one array")
        (a,) = args
        value = tracing.concrete(a) if hasattr(a, "graph") else np.asarray(a)
        if value is None:
            raise tracing.error(
                f"{call} gives the indices where a traced condition holds: their number, "
                "the result's shape, would depend on the parameters' values (and indices "
                "have no gradient)",
                INDICES_HINT,
            )
        out = fn(value)
        if isinstance(out, tuple):
            return tuple(tracing.graph.const(i, "i64") for i in out)
        return tracing.graph.const(out, "i64")

    return front


NUMPY[np.nonzero] = _indices_front(np.nonzero, "np.nonzero(cond)")
NUMPY[np.argwhere] = _indices_front(np.argwhere, "np.argwhere(cond)")
NUMPY[np.flatnonzero] = _indices_front(np.flatnonzero, "np.flatnonzero(cond)")
WHERE_ONE_ARGUMENT = _indices_front(np.nonzero, "np.where(cond) with one argument")
