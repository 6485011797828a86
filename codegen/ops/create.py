"""Array creation: np.array / np.asarray of traced values, zeros / ones / empty / full and
their `_like` forms, np.copy.

Creating an array from traced scalars is a `pack` (np.array([a, b, c])); from traced
arrays, a `stack`. zeros and the like are constants: the tracer hands them out as traced
arrays so that the user's function may fill them in (`out[i] = ...`). np.empty gives
zeros: its contents are unspecified, and the user's code overwrites what it reads.

np.array, np.zeros and np.ones do not dispatch on numpy's protocols (nothing traced is
passed to them), so the tracer routes the user's module's `np.array`, `np.zeros`, ... here
while it runs: `SHIMS` lists them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import NUMPY_DTYPES
from . import NUMPY
from .shape import _no_extras

FLOAT_DTYPES = {np.dtype(np.float64): "f64", np.dtype(np.float32): "f32"}


def _shape(shape: Any) -> tuple[int, ...]:
    return (int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape)


def _filled(fill: Any, shape: tuple, numpy_dtype: Any, graph) -> Any:
    """`shape` filled with `fill`: a constant, a broadcast traced value, or (for a dtype
    that is not a float: no gradient) a plain numpy array."""
    dtype = FLOAT_DTYPES.get(np.dtype(numpy_dtype))
    if hasattr(fill, "graph"):
        if dtype != fill.dtype:
            raise TypeError(
                f"dtype={np.dtype(numpy_dtype)} of a traced {fill.dtype} value is not supported"
            )
        return graph.apply("broadcast_to", fill, shape=shape)
    if dtype is None:
        return np.full(shape, fill, dtype=numpy_dtype)
    return graph.const(np.full(shape, fill, dtype=np.float64), dtype)


def _numpy_dtype(x: Any) -> np.dtype:
    if hasattr(x, "graph"):
        return np.dtype(NUMPY_DTYPES[x.dtype])
    return np.asarray(x).dtype


def _full_front(fill: Any = None):
    """np.zeros / np.ones / np.empty (fill given) and np.full (fill is an argument)."""

    def front(args, kwargs, graph):
        args = list(args)
        shape = _shape(kwargs.pop("shape", args.pop(0) if args else None))
        value = (
            fill if fill is not None else kwargs.pop("fill_value", args.pop(0) if args else None)
        )
        numpy_dtype = kwargs.pop("dtype", args.pop(0) if args else None)
        kwargs.pop("order", None)
        _no_extras(kwargs)
        if numpy_dtype is None:  # numpy's defaults: float64, or the fill value's type
            numpy_dtype = np.float64 if fill is not None else _numpy_dtype(value)
        return _filled(value, shape, numpy_dtype, graph)

    return front


def _like_front(fill: Any = None):
    """np.zeros_like / ones_like / empty_like (fill given) and np.full_like."""

    def front(args, kwargs, graph):
        a, *rest = args
        value = (
            fill if fill is not None else kwargs.pop("fill_value", rest.pop(0) if rest else None)
        )
        numpy_dtype = kwargs.pop("dtype", rest.pop(0) if rest else None)
        shape = kwargs.pop("shape", None)
        kwargs.pop("order", None), kwargs.pop("subok", None)
        _no_extras(kwargs)
        shape = np.shape(a) if shape is None and not hasattr(a, "graph") else shape
        shape = a.shape if shape is None else _shape(shape)
        return _filled(value, shape, numpy_dtype or _numpy_dtype(a), graph)

    return front


def _nest(obj: Any) -> tuple[tuple, list]:
    """A nested list's shape and its items in order; ValueError when it is ragged."""
    if not isinstance(obj, (list, tuple)):
        return (), [obj]
    parts = [_nest(item) for item in obj]
    shapes = {shape for shape, _ in parts}
    if len(shapes) > 1:
        raise ValueError("the nested lists are ragged: their lengths or depths differ")
    inner = shapes.pop() if parts else ()
    return (len(obj),) + inner, [leaf for _, leaves in parts for leaf in leaves]


def _array_front(args, kwargs, graph):
    """np.array / np.asarray of traced values: one pack of scalars, or a stack of arrays."""
    obj, *rest = args
    numpy_dtype = kwargs.pop("dtype", rest[0] if rest else None)
    ndmin = int(kwargs.pop("ndmin", 0) or 0)
    for k in ("copy", "order", "subok", "like"):
        kwargs.pop(k, None)
    _no_extras(kwargs)
    if hasattr(obj, "graph"):
        out = obj
    else:
        outer, leaves = _nest(obj)
        nodes = [x for x in leaves if hasattr(x, "graph")]
        inner = nodes[0].shape
        if any(getattr(x, "shape", ()) != inner for x in leaves):
            raise ValueError("the values have different shapes: the array would be ragged")
        if not inner:
            out = graph.apply("pack", *leaves, shape=tuple(outer))
        else:
            out = graph.apply("stack", *leaves, axis=0)
            if len(outer) > 1:
                out = graph.apply("reshape", out, shape=tuple(outer) + inner)
    if numpy_dtype is not None and FLOAT_DTYPES.get(np.dtype(numpy_dtype)) != out.dtype:
        out = graph.wrap(out).astype(numpy_dtype).node  # (x.astype's rules)
    if ndmin > out.ndim:
        out = graph.apply("reshape", out, shape=(1,) * (ndmin - out.ndim) + out.shape)
    return out


def _copy_front(args, kwargs, graph):
    kwargs.pop("order", None), kwargs.pop("subok", None)
    _no_extras(kwargs)
    return args[0]  # a new traced array of the same value: the tracer wraps it afresh


for _fn, _front in [
    (np.zeros, _full_front(0.0)),
    (np.ones, _full_front(1.0)),
    (np.empty, _full_front(0.0)),
    (np.full, _full_front()),
    (np.zeros_like, _like_front(0.0)),
    (np.ones_like, _like_front(1.0)),
    (np.empty_like, _like_front(0.0)),
    (np.full_like, _like_front()),
    (np.array, _array_front),
    (np.asarray, _array_front),
    (np.asanyarray, _array_front),
    (np.ascontiguousarray, _array_front),
    (np.asfortranarray, _array_front),
    (np.asarray_chkfinite, _array_front),
    (np.copy, _copy_front),
]:
    NUMPY[_fn] = _front

# What the tracer puts in place of the user's np.<name> while it runs (they do not
# dispatch on traced arguments), and which of them return a traced argument itself.
SHIMS = (
    np.array,
    np.asarray,
    np.asanyarray,
    np.ascontiguousarray,
    np.asfortranarray,
    np.zeros,
    np.ones,
    np.empty,
    np.full,
    np.zeros_like,
    np.ones_like,
    np.empty_like,
    np.full_like,
)
NO_COPY = (np.asarray, np.asanyarray, np.ascontiguousarray, np.asfortranarray)
