"""numpy functions written as numpy on traced values.

Each function here reads as its textbook definition, in numpy, and runs on the tracer like
a user's own code: `np.var(x)` traces as the mean, a subtraction, a square and a sum, and
its gradient is the one those ops' gates give. So none of them adds an op, a VJP rule or
an emitter case; the emitted code shows the definition's steps.

A definition must give numpy's value (to rounding) and numpy's gradient everywhere numpy's
function is differentiable, and route the gradient like the table's own gates at kinks.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np

from . import NUMPY
from .reduce import normalize_axis

LN2 = float(np.log(2.0))


def composite(*fns: Any) -> Callable:
    """Register `impl` as the front of the numpy callables `fns`: it receives the user's
    arguments with traced values as tracers, and returns a tracer (or a Python value)."""

    def register(impl: Callable) -> Callable:
        def front(args: tuple, kwargs: dict, tracing) -> Any:
            wrapped = [_wrap(a, tracing) for a in args]
            named = {k: _wrap(v, tracing) for k, v in kwargs.items()}
            return tracing.lift(impl(*wrapped, **named))

        front.__qualname__ = f"composite.{impl.__name__}"
        for fn in fns:
            if fn is not None:
                NUMPY[fn] = front
        return impl

    return register


def _wrap(x: Any, tracing) -> Any:
    if isinstance(x, (list, tuple)):
        return type(x)(_wrap(v, tracing) for v in x)
    return tracing.wrap(x)


def _count(shape: tuple, axis: Any) -> int:
    axes = normalize_axis(axis, len(shape))
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def _unsupported(name: str, **given: Any) -> None:
    for key, value in given.items():
        if value is not None:
            raise TypeError(f"np.{name}'s argument {key}= is not supported")


# ---- statistics ----


@composite(np.var)
def _var(
    a,
    axis=None,
    dtype=None,
    out=None,
    ddof=0,
    keepdims=False,
    *,
    where=None,
    mean=None,
    correction=None,
):
    """sum((a - mean(a))^2) / (n - ddof), numpy's two-pass definition."""
    _unsupported("var", dtype=dtype, out=out, where=where, mean=mean)
    if correction is not None:
        ddof = correction
    d = a - np.mean(a, axis=axis, keepdims=True)
    return _spread(d, _count(a.shape, axis), axis, ddof, keepdims)


def _spread(d, n, axis, ddof, keepdims):
    """sum(d^2) / (n - ddof): the variance of deviations d from the mean of n values."""
    return np.sum(d * d, axis=axis, keepdims=keepdims) / (n - ddof)


@composite(np.std)
def _std(
    a,
    axis=None,
    dtype=None,
    out=None,
    ddof=0,
    keepdims=False,
    *,
    where=None,
    mean=None,
    correction=None,
):
    """sqrt(var(a))."""
    _unsupported("std", dtype=dtype, out=out, where=where, mean=mean)
    return np.sqrt(
        np.var(a, axis=axis, ddof=ddof if correction is None else correction, keepdims=keepdims)
    )


@composite(np.average)
def _average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """sum(a * w) / sum(w) along axis (a 1-d w runs along that axis), as numpy says."""
    if returned:
        raise TypeError("np.average(..., returned=True) returns a tuple; gradgen needs one array")
    if weights is None:
        return np.mean(a, axis=axis, keepdims=keepdims)
    w = weights
    if np.shape(w) != a.shape:
        if axis is None or np.ndim(w) != 1 or not isinstance(axis, (int, np.integer)):
            raise TypeError("weights of another shape than a need an int axis and 1-d weights")
        ax = normalize_axis(axis, a.ndim)[0]
        w = np.reshape(w, tuple(-1 if i == ax else 1 for i in range(a.ndim)))
    total = np.sum(a * w, axis=axis, keepdims=keepdims)
    return total / np.sum(w * np.ones_like(a), axis=axis, keepdims=keepdims)


@composite(np.ptp)
def _ptp(a, axis=None, out=None, keepdims=False):
    """max - min: the gradient routes to the winners of each."""
    _unsupported("ptp", out=out)
    return np.max(a, axis=axis, keepdims=keepdims) - np.min(a, axis=axis, keepdims=keepdims)


# ---- differences and integrals ----


def _along(ndim: int, axis: int, key: Any) -> tuple:
    return (slice(None),) * axis + (key,)


@composite(np.diff)
def _diff(a, n=1, axis=-1, prepend=None, append=None):
    """a[1:] - a[:-1] along axis, n times; prepend/append are concatenated first."""
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"order must be non-negative but got {n}")
    ax = normalize_axis(axis, max(np.ndim(a), 1))[0]
    parts = []
    for extra, side in ((prepend, 0), (append, 1)):
        if extra is None:
            continue
        if np.ndim(extra) == 0:  # a scalar is repeated along the axis
            shape = tuple(1 if i == ax else d for i, d in enumerate(a.shape))
            extra = np.broadcast_to(extra, shape)
        parts.append((side, extra))
    if parts:
        a = np.concatenate(
            [e for s, e in parts if s == 0] + [a] + [e for s, e in parts if s == 1], axis=ax
        )
    for _ in range(n):
        a = a[_along(a.ndim, ax, slice(1, None))] - a[_along(a.ndim, ax, slice(None, -1))]
    return a


@composite(np.ediff1d)
def _ediff1d(ary, to_end=None, to_begin=None):
    """diff of the flattened array, with to_begin / to_end around it."""
    flat = np.ravel(ary)
    d = flat[1:] - flat[:-1]
    parts = [np.ravel(x) for x in (to_begin,) if x is not None]
    parts += [d] + [np.ravel(x) for x in (to_end,) if x is not None]
    return np.concatenate(parts) if len(parts) > 1 else d


def _trapezoid(y, x=None, dx=1.0, axis=-1):
    """sum((y[1:] + y[:-1]) / 2 * dx) along axis, dx = diff(x) when x is given."""
    ax = normalize_axis(axis, y.ndim)[0]
    if x is not None:
        if np.ndim(x) == 1:
            dx = np.diff(x)
            dx = np.reshape(dx, tuple(-1 if i == ax else 1 for i in range(y.ndim)))
        else:
            dx = np.diff(x, axis=ax)
    ends = y[_along(y.ndim, ax, slice(1, None))] + y[_along(y.ndim, ax, slice(None, -1))]
    return np.sum(dx * ends / 2.0, axis=ax)


composite(getattr(np, "trapezoid", None), getattr(np, "trapz", None))(_trapezoid)


# ---- log space and angles ----


@composite(np.logaddexp)
def _logaddexp(x1, x2, out=None, **kwargs):
    """max(a, b) + log1p(exp(-|a - b|)): no overflow, and at a tie each side gets half."""
    _unsupported("logaddexp", out=out, **kwargs)
    return np.maximum(x1, x2) + np.log1p(np.exp(-np.abs(x1 - x2)))


@composite(np.logaddexp2)
def _logaddexp2(x1, x2, out=None, **kwargs):
    """max(a, b) + log2(1 + 2^-|a - b|)."""
    _unsupported("logaddexp2", out=out, **kwargs)
    return np.maximum(x1, x2) + np.log1p(np.exp2(-np.abs(x1 - x2))) / LN2


@composite(np.deg2rad, np.radians)
def _deg2rad(x, out=None, **kwargs):
    _unsupported("deg2rad", out=out, **kwargs)
    return x * (np.pi / 180.0)


@composite(np.rad2deg, np.degrees)
def _rad2deg(x, out=None, **kwargs):
    _unsupported("rad2deg", out=out, **kwargs)
    return x * (180.0 / np.pi)


@composite(np.sinc)
def _sinc(x):
    """sin(pi x) / (pi x), 1 at 0; the quotient is taken at 1 where x is 0, so neither its
    value nor its gradient there is a NaN (the slope at 0 is 0)."""
    zero = x == 0
    safe = np.where(zero, 1.0, x) * np.pi
    return np.where(zero, 1.0, np.sin(safe) / safe)


# ---- matrices ----


def _diagonal_index(shape: tuple, offset: int, axis1: int, axis2: int) -> tuple:
    n1, n2 = shape[axis1], shape[axis2]
    start1, start2 = max(-offset, 0), max(offset, 0)
    length = max(0, min(n1 - start1, n2 - start2))
    return np.arange(length) + start1, np.arange(length) + start2


@composite(np.diagonal)
def _diagonal(a, offset=0, axis1=0, axis2=1):
    """The elements a[..., i, i + offset, ...], on a new last axis, as numpy puts them."""
    axis1, axis2 = (normalize_axis(ax, a.ndim)[0] for ax in (axis1, axis2))
    if axis1 == axis2:
        raise ValueError("axis1 and axis2 cannot be the same")
    rows, cols = _diagonal_index(a.shape, operator.index(offset), axis1, axis2)
    moved = np.moveaxis(a, (axis1, axis2), (-2, -1))
    return moved[..., rows, cols]


@composite(np.diag)
def _diag(v, k=0):
    """A 1-d v becomes a matrix with v on diagonal k; a 2-d v gives its diagonal k."""
    k = operator.index(k)
    if v.ndim == 2:
        return np.diagonal(v, offset=k)
    if v.ndim != 1:
        raise ValueError("Input must be 1- or 2-d.")
    n = v.shape[0] + abs(k)
    out = np.zeros_like(v, shape=(n, n))  # traced, so it can be filled in
    rows, cols = _diagonal_index((n, n), k, 0, 1)
    out[rows, cols] = v
    return out


@composite(np.trace)
def _trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    _unsupported("trace", dtype=dtype, out=out)
    return np.sum(np.diagonal(a, offset=offset, axis1=axis1, axis2=axis2), axis=-1)


def _triangle(lower: bool) -> Callable:
    def impl(m, k=0):
        rows, cols = m.shape[-2], m.shape[-1]
        keep = np.tri(rows, cols, operator.index(k), dtype=bool)
        if not lower:
            keep = ~np.tri(rows, cols, operator.index(k) - 1, dtype=bool)
        return np.where(keep, m, 0.0)

    impl.__name__ = "_tril" if lower else "_triu"
    return impl


composite(np.tril)(_triangle(lower=True))
composite(np.triu)(_triangle(lower=False))


@composite(np.kron)
def _kron(a, b):
    """kron(a, b)[i*p + k, j*q + l] = a[i, j] * b[k, l], for any number of dims."""
    a, b = (v if hasattr(v, "shape") else np.asarray(v, dtype=np.float64) for v in (a, b))
    nd = max(np.ndim(a), np.ndim(b))
    a = np.reshape(a, (1,) * (nd - np.ndim(a)) + tuple(np.shape(a)))
    b = np.reshape(b, (1,) * (nd - np.ndim(b)) + tuple(np.shape(b)))
    # interleave: a's axis i and b's axis i side by side, then merge them
    a_wide = np.reshape(a, tuple(d for s in np.shape(a) for d in (s, 1)))
    b_wide = np.reshape(b, tuple(d for s in np.shape(b) for d in (1, s)))
    product = a_wide * b_wide
    return np.reshape(product, tuple(x * y for x, y in zip(np.shape(a), np.shape(b))))


@composite(np.cross)
def _cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """The cross product of 3-vectors (or the z of 2-vectors) along the vector axes."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a = np.moveaxis(a, axisa, -1)
    b = np.moveaxis(b, axisb, -1)
    na, nb = a.shape[-1], b.shape[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError("incompatible dimensions for cross product (dimension must be 2 or 3)")
    a0, a1 = a[..., 0], a[..., 1]
    b0, b1 = b[..., 0], b[..., 1]
    if na == 2 and nb == 2:
        return a0 * b1 - a1 * b0
    a2 = a[..., 2] if na == 3 else 0.0
    b2 = b[..., 2] if nb == 3 else 0.0
    c = np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)
    return np.moveaxis(c, -1, axisc)


@composite(np.vander)
def _vander(x, N=None, increasing=False):
    """Columns x^(N-1), ..., x, 1 (or increasing), as products, not powers: exact at 0."""
    n = x.shape[0] if N is None else operator.index(N)
    cols = [np.ones_like(x)] if n else []
    for _ in range(1, n):
        cols.append(cols[-1] * x)
    if not increasing:
        cols = cols[::-1]
    return np.stack(cols, axis=1) if cols else np.zeros((x.shape[0], 0))


# ---- shapes and windows ----


@composite(np.flip)
def _flip(m, axis=None):
    axes = normalize_axis(axis, m.ndim)
    return m[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(m.ndim))]


@composite(np.fliplr)
def _fliplr(m):
    return m[:, ::-1]


@composite(np.flipud)
def _flipud(m):
    return m[::-1]


@composite(np.rot90)
def _rot90(m, k=1, axes=(0, 1)):
    """numpy's definition: flips and a transpose of the two axes."""
    k = operator.index(k) % 4
    a0, a1 = (normalize_axis(ax, m.ndim)[0] for ax in axes)
    if a0 == a1:
        raise ValueError("Axes must be different.")
    if k == 0:
        return m
    if k == 2:
        return np.flip(np.flip(m, a0), a1)
    perm = list(range(m.ndim))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return np.transpose(np.flip(m, a1), perm)
    return np.flip(np.transpose(m, perm), a1)


@composite(np.roll)
def _roll(a, shift, axis=None):
    """Two slices concatenated per axis (the flattened array when axis is None)."""
    if axis is None:
        return np.reshape(np.roll(np.ravel(a), shift, 0), a.shape)
    shifts = (shift,) if np.ndim(shift) == 0 else tuple(shift)
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    shifts, axes = np.broadcast_arrays(np.asarray(shifts), np.asarray(axes))
    out = a
    for s, ax in zip(shifts.tolist(), axes.tolist()):
        ax = normalize_axis(ax, a.ndim)[0]
        n = a.shape[ax]
        s = s % n if n else 0
        if s:
            head = out[_along(a.ndim, ax, slice(n - s, None))]
            tail = out[_along(a.ndim, ax, slice(None, n - s))]
            out = np.concatenate([head, tail], axis=ax)
    return out


@composite(np.rollaxis)
def _rollaxis(a, axis, start=0):
    axis = normalize_axis(axis, a.ndim)[0]
    start = operator.index(start)
    if not -a.ndim <= start <= a.ndim:
        raise ValueError(f"start={start} is out of range for {a.ndim} dimensions")
    start %= a.ndim + 1
    if axis < start:
        start -= 1
    return np.moveaxis(a, axis, start)


@composite(np.tile)
def _tile(A, reps):
    """A broadcast against new axes of the repetition counts, then merged."""
    reps = (operator.index(reps),) if np.ndim(reps) == 0 else tuple(map(operator.index, reps))
    nd = max(A.ndim, len(reps))
    shape = (1,) * (nd - A.ndim) + A.shape
    reps = (1,) * (nd - len(reps)) + reps
    wide = np.reshape(A, tuple(d for s in shape for d in (1, s)))
    wide = np.broadcast_to(wide, tuple(d for r, s in zip(reps, shape) for d in (r, s)))
    return np.reshape(wide, tuple(r * s for r, s in zip(reps, shape)))


@composite(np.repeat)
def _repeat(a, repeats, axis=None):
    """An integer index that names each element as often as it repeats."""
    if axis is None:
        a, axis = np.ravel(a), 0
    ax = normalize_axis(axis, a.ndim)[0]
    idx = np.repeat(np.arange(a.shape[ax]), np.asarray(repeats))
    return a[_along(a.ndim, ax, idx)]


@composite(np.take)
def _take(a, indices, axis=None, out=None, mode="raise"):
    _unsupported("take", out=out)
    if mode != "raise":
        raise TypeError(f"np.take(..., mode={mode!r}) is not supported")
    if axis is None:
        a, axis = np.ravel(a), 0
    ax = normalize_axis(axis, a.ndim)[0]
    idx = np.asarray(indices)
    return a[_along(a.ndim, ax, idx)]


@composite(np.append)
def _append(arr, values, axis=None):
    if axis is None:
        return np.concatenate([np.ravel(arr), np.ravel(values)])
    return np.concatenate([arr, values], axis=axis)


@composite(np.delete)
def _delete(arr, obj, axis=None):
    """The elements not deleted, read with an integer index."""
    if axis is None:
        arr, axis = np.ravel(arr), 0
    ax = normalize_axis(axis, arr.ndim)[0]
    keep = np.delete(np.arange(arr.shape[ax]), np.asarray(obj))  # a constant: its value
    return arr[_along(arr.ndim, ax, keep)]


@composite(np.insert)
def _insert(arr, obj, values, axis=None):
    """The array with values inserted before the given positions: a concatenation read back
    in the order numpy's own insert puts an index array in."""
    if axis is None:
        arr, axis = np.ravel(arr), 0
    ax = normalize_axis(axis, arr.ndim)[0]
    n = arr.shape[ax]
    obj = np.asarray(obj)
    # how many numpy inserts, and where: numpy's insert of stand-ins of the same shapes
    probe = np.insert(np.zeros(arr.shape), obj, np.zeros(np.shape(values)), axis=ax)
    count = probe.shape[ax] - n
    stand_in = np.arange(n, n + count)
    if obj.ndim == 0 and np.ndim(values) >= 1 and count > 1:
        stand_in = np.reshape(stand_in, (count,))
    order = np.insert(np.arange(n), obj, stand_in)
    block = list(arr.shape)
    block[ax] = count
    if obj.ndim == 0 and np.ndim(values) == arr.ndim - 1 and count == 1:
        values = np.expand_dims(values, ax)  # numpy inserts one slice
    elif obj.ndim == 0 and np.ndim(values) == arr.ndim and arr.ndim > 1:
        values = np.moveaxis(values, 0, ax)  # numpy's insert of several slices at one place
    inserted = np.broadcast_to(values, tuple(block))
    joined = np.concatenate([arr, inserted], axis=ax)
    return joined[_along(arr.ndim, ax, order)]


@composite(np.pad)
def _pad(array, pad_width, mode="constant", **kwargs):
    """constant, edge and reflect padding, one axis at a time, as concatenations."""
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (array.ndim, 2)).tolist()
    if mode not in ("constant", "edge", "reflect", "symmetric"):
        raise TypeError(
            f"np.pad(..., mode={mode!r}) is not supported (constant, edge, reflect, "
            "symmetric are)"
        )
    values = kwargs.pop("constant_values", 0.0) if mode == "constant" else None
    if kwargs:
        raise TypeError(f"np.pad's argument {next(iter(kwargs))}= is not supported")
    if values is not None:
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), (array.ndim, 2)).tolist()
    out = array
    for ax, (before, after) in enumerate(widths):
        if before < 0 or after < 0:
            raise ValueError("index can't contain negative values")
        if not before and not after:
            continue
        n = out.shape[ax]
        if mode == "constant":
            shape = list(out.shape)
            parts = []
            if before:
                shape[ax] = before
                parts.append(np.full(tuple(shape), values[ax][0]))
            parts.append(out)
            if after:
                shape[ax] = after
                parts.append(np.full(tuple(shape), values[ax][1]))
            out = np.concatenate(parts, axis=ax)
            continue
        # a position for every padded element, read from the unpadded axis by numpy's rule
        idx = np.pad(np.arange(n), (before, after), mode=mode)
        out = out[_along(out.ndim, ax, idx)]
    return out


def _sliding_window_view(x, window_shape, axis=None, *, subok=False, writeable=False):
    """One strided slice of x per offset in the window, stacked on the window's axes:
    the gradient adds each offset's slice back, a loop over the window's offsets."""
    if writeable:
        raise TypeError("a writeable window view would write into the parameter")
    window = (
        (operator.index(window_shape),)
        if np.ndim(window_shape) == 0
        else tuple(operator.index(w) for w in window_shape)
    )
    if axis is None:
        axes = tuple(range(x.ndim))
    else:
        axes = tuple(
            normalize_axis(a, x.ndim)[0] for a in ((axis,) if np.ndim(axis) == 0 else axis)
        )
    if len(axes) != len(window):
        raise ValueError("Must provide matching length window_shape and axis")
    if len(set(axes)) != len(axes):
        raise TypeError("a window over the same axis twice is not supported")
    counts = list(x.shape)
    for a, w in zip(axes, window):
        if w < 0 or w > counts[a]:
            raise ValueError("window shape cannot be larger than input array shape")
        counts[a] -= w - 1
    pieces = []
    for offsets in np.ndindex(*window):
        key = [slice(None)] * x.ndim
        for a, o in zip(axes, offsets):
            key[a] = slice(o, o + counts[a])
        pieces.append(x[tuple(key)])
    stacked = np.stack(pieces, axis=-1)
    return np.reshape(stacked, tuple(counts) + window)


composite(np.lib.stride_tricks.sliding_window_view)(_sliding_window_view)


@composite(np.vdot)
def _vdot(a, b):
    """The dot product of the flattened arrays (real: no conjugate to take)."""
    return np.sum(np.ravel(a) * np.ravel(b))


@composite(np.select)
def _select(condlist, choicelist, default=0.0):
    """The first choice whose condition holds, element by element: nested np.where, the
    last condition innermost."""
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    out = default
    for cond, choice in reversed(list(zip(condlist, choicelist))):
        out = np.where(cond, choice, out)
    return out


@composite(np.block)
def _block(arrays):
    """Nested lists of arrays, concatenated innermost along the last axis."""

    def depth(x):
        return 1 + depth(x[0]) if isinstance(x, list) else 0

    levels = depth(arrays)
    ndim = max(levels, max(np.ndim(a) for a in _leaves(arrays)))

    def join(x, level):
        if not isinstance(x, list):
            return np.reshape(x, (1,) * (ndim - np.ndim(x)) + tuple(np.shape(x)))
        return np.concatenate([join(v, level + 1) for v in x], axis=level - levels)

    return join(arrays, 0)


def _leaves(x):
    return [leaf for v in x for leaf in _leaves(v)] if isinstance(x, list) else [x]


@composite(np.dstack)
def _dstack(tup):
    return np.concatenate([np.atleast_3d(a) for a in tup], axis=2)


@composite(np.column_stack)
def _column_stack(tup):
    cols = [a if np.ndim(a) >= 2 else np.reshape(a, (-1, 1)) for a in tup]
    return np.concatenate(cols, axis=1)


@composite(np.broadcast_arrays)
def _broadcast_arrays(*args, subok=False):
    shape = np.broadcast_shapes(*(np.shape(a) for a in args))
    return tuple(np.broadcast_to(a, shape) for a in args)


# ---- Python-valued queries ----


@composite(np.ndim)
def _ndim(a):
    return a.ndim


@composite(np.shape)
def _shape(a):
    return a.shape


@composite(np.size)
def _size(a, axis=None):
    return a.size if axis is None else a.shape[axis]


# ---- NaN-skipping reductions: a NaN element counts as missing, and gets no gradient ----


def _missing(a):
    """Where a is NaN (x != x holds only there)."""
    return a != a


@composite(np.nansum)
def _nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    _unsupported("nansum", dtype=dtype, out=out, initial=initial, where=where)
    return np.sum(np.where(_missing(a), 0.0, a), axis=axis, keepdims=keepdims)


@composite(np.nanprod)
def _nanprod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    _unsupported("nanprod", dtype=dtype, out=out, initial=initial, where=where)
    return np.prod(np.where(_missing(a), 1.0, a), axis=axis, keepdims=keepdims)


def _present(a, axis, keepdims):
    return np.sum(np.where(_missing(a), 0.0, 1.0), axis=axis, keepdims=keepdims)


@composite(np.nanmean)
def _nanmean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    _unsupported("nanmean", dtype=dtype, out=out, where=where)
    return np.nansum(a, axis=axis, keepdims=keepdims) / _present(a, axis, keepdims)


@composite(np.nanvar)
def _nanvar(
    a,
    axis=None,
    dtype=None,
    out=None,
    ddof=0,
    keepdims=False,
    *,
    where=None,
    mean=None,
    correction=None,
):
    _unsupported("nanvar", dtype=dtype, out=out, where=where, mean=mean)
    if correction is not None:
        ddof = correction
    d = np.where(_missing(a), 0.0, a - np.nanmean(a, axis=axis, keepdims=True))
    return _spread(d, _present(a, axis, keepdims), axis, ddof, keepdims)


@composite(np.nanstd)
def _nanstd(
    a,
    axis=None,
    dtype=None,
    out=None,
    ddof=0,
    keepdims=False,
    *,
    where=None,
    mean=None,
    correction=None,
):
    _unsupported("nanstd", dtype=dtype, out=out, where=where, mean=mean)
    ddof = ddof if correction is None else correction
    return np.sqrt(np.nanvar(a, axis=axis, ddof=ddof, keepdims=keepdims))


@composite(np.nanmax)
def _nanmax(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    _unsupported("nanmax", out=out, initial=initial, where=where)
    return np.max(np.where(_missing(a), -np.inf, a), axis=axis, keepdims=keepdims)


@composite(np.nanmin)
def _nanmin(a, axis=None, out=None, keepdims=False, initial=None, where=None):
    _unsupported("nanmin", out=out, initial=initial, where=where)
    return np.min(np.where(_missing(a), np.inf, a), axis=axis, keepdims=keepdims)


# ---- numerical derivative ----


@composite(np.gradient)
def _gradient(f, *varargs, axis=None, edge_order=1):
    """numpy's central differences: second order inside, first (or second) at the edges;
    spacing a scalar or the coordinates along each axis. Several axes give a tuple."""
    axes = tuple(range(f.ndim)) if axis is None else normalize_axis(axis, f.ndim)
    if axis is not None and np.ndim(axis) == 0:
        single = True
    else:
        single = len(axes) == 1
    if not varargs:
        spacing = [1.0] * len(axes)
    elif len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        spacing = [varargs[0]] * len(axes)
    elif len(varargs) == len(axes):
        spacing = list(varargs)
    else:
        raise TypeError("invalid number of arguments")
    if edge_order not in (1, 2):
        raise ValueError("'edge_order' greater than 2 not supported")
    out = [_gradient_along(f, ax, h, edge_order) for ax, h in zip(axes, spacing)]
    return out[0] if single else tuple(out)


def _gradient_along(f, ax: int, h, edge_order: int):
    n = f.shape[ax]
    if n < edge_order + 1:
        raise ValueError(
            "Shape of array too small to calculate a numerical gradient, "
            "at least (edge_order + 1) elements are required."
        )

    def at(key):
        return f[_along(f.ndim, ax, key)]

    def shaped(v):  # a 1-d spacing array along `ax`
        return np.reshape(v, tuple(-1 if i == ax else 1 for i in range(f.ndim)))

    if np.ndim(h) == 0:
        inner = (at(slice(2, None)) - at(slice(None, -2))) / (2.0 * h)
        if edge_order == 1:
            first = (at(slice(1, 2)) - at(slice(0, 1))) / h
            last = (at(slice(-1, None)) - at(slice(-2, -1))) / h
        else:
            first = (-1.5 * at(slice(0, 1)) + 2.0 * at(slice(1, 2)) - 0.5 * at(slice(2, 3))) / h
            last = (
                0.5 * at(slice(-3, -2)) - 2.0 * at(slice(-2, -1)) + 1.5 * at(slice(-1, None))
            ) / h
        return np.concatenate([first, inner, last], axis=ax)
    if np.ndim(h) != 1 or np.shape(h)[0] != n:
        raise ValueError("when 1d, distances must match the length of the corresponding dimension")
    if edge_order != 1:
        raise TypeError("np.gradient with coordinates supports edge_order=1 here")
    dx = np.diff(h)
    dx1, dx2 = shaped(dx[:-1]), shaped(dx[1:])
    a = -dx2 / (dx1 * (dx1 + dx2))
    b = (dx2 - dx1) / (dx1 * dx2)
    c = dx1 / (dx2 * (dx1 + dx2))
    inner = a * at(slice(None, -2)) + b * at(slice(1, -1)) + c * at(slice(2, None))
    first = (at(slice(1, 2)) - at(slice(0, 1))) / shaped(dx[:1])
    last = (at(slice(-1, None)) - at(slice(-2, -1))) / shaped(dx[-1:])
    return np.concatenate([first, inner, last], axis=ax)


# ---- polynomials, convolution, grids, covariance ----


@composite(np.polyval)
def _polyval(p, x):
    """Horner's rule, as numpy: y = y * x + p[i], highest power first."""
    p = list(p) if isinstance(p, (list, tuple)) else [p[i] for i in range(np.shape(p)[0])]
    y = np.zeros_like(x) + p[0] if np.ndim(x) else p[0] + 0.0 * x
    for c in p[1:]:
        y = y * x + c
    return y


def _full_correlation(a, v):
    """c[j] = sum_n a[n + j - (len(v) - 1)] v[n], a padded with zeros: every overlap."""
    padded = np.pad(a, np.shape(v)[0] - 1)
    return np.lib.stride_tricks.sliding_window_view(padded, np.shape(v)[0]) @ v


def _mode_cut(full, m: int, n: int, mode: str):
    if mode == "full":
        return full
    if mode == "same":
        start = (min(m, n) - 1) // 2
        return full[start : start + max(m, n)]
    if mode == "valid":
        return full[min(m, n) - 1 : max(m, n)]
    raise ValueError(f"mode must be one of 'valid', 'same', or 'full' (got {mode!r})")


@composite(np.correlate)
def _correlate(a, v, mode="valid"):
    """numpy's cross-correlation of two 1-d arrays: windows of the zero-padded a times v."""
    m, n = np.shape(a)[0], np.shape(v)[0]
    if m < n:  # numpy correlates the other way round and reverses
        return _correlate(v, a, mode)[::-1]
    return _mode_cut(_full_correlation(a, v), m, n, mode)


@composite(np.convolve)
def _convolve(a, v, mode="full"):
    """a correlated with v reversed (convolution is symmetric: numpy takes the longer first)."""
    if np.shape(a)[0] < np.shape(v)[0]:
        a, v = v, a
    m, n = np.shape(a)[0], np.shape(v)[0]
    return _mode_cut(_full_correlation(a, v[::-1]), m, n, mode)


@composite(np.meshgrid)
def _meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """Each input raveled and laid along its own axis (the first two swapped for 'xy'),
    broadcast to the grid unless sparse."""
    if indexing not in ("xy", "ij"):
        raise ValueError("Valid values for `indexing` are 'xy' and 'ij'.")
    ndim = len(xi)
    axes = list(range(ndim))
    if indexing == "xy" and ndim > 1:
        axes[0], axes[1] = 1, 0
    flat = [np.ravel(x) for x in xi]
    shape = [0] * ndim
    for x, ax in zip(flat, axes):
        shape[ax] = np.shape(x)[0]
    out = [
        np.reshape(x, tuple(-1 if i == ax else 1 for i in range(ndim))) for x, ax in zip(flat, axes)
    ]
    if not sparse:
        out = [
            np.broadcast_to(x, tuple(shape)) * 1.0 if copy else np.broadcast_to(x, tuple(shape))
            for x in out
        ]
    return tuple(out)


@composite(np.diagflat)
def _diagflat(v, k=0):
    return np.diag(np.ravel(v), k)


@composite(np.cov)
def _cov(
    m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *, dtype=None
):
    """(X - mean) (X - mean)^T / (N - ddof), one variable a row, squeezed as numpy does."""
    _unsupported("cov", fweights=fweights, aweights=aweights, dtype=dtype)
    x = np.atleast_2d(m)
    if not rowvar and np.shape(x)[0] != 1:
        x = np.swapaxes(x, 0, 1)
    if y is not None:
        y = np.atleast_2d(y)
        if not rowvar and np.shape(y)[0] != 1:
            y = np.swapaxes(y, 0, 1)
        x = np.concatenate([x, y], axis=0)
    if ddof is None:
        ddof = 0 if bias else 1
    d = x - np.mean(x, axis=1, keepdims=True)
    c = d @ np.swapaxes(d, 0, 1) / (np.shape(x)[1] - ddof)
    return np.squeeze(c)


@composite(np.corrcoef)
def _corrcoef(x, y=None, rowvar=True, *, dtype=None):
    """cov / (std_i std_j), clipped to [-1, 1] as numpy does."""
    _unsupported("corrcoef", dtype=dtype)
    c = np.cov(x, y, rowvar)
    if np.ndim(c) == 0:
        return c / c
    std = np.sqrt(np.diagonal(c))
    c = c / np.reshape(std, (-1, 1)) / np.reshape(std, (1, -1))
    return np.clip(c, -1.0, 1.0)


@composite(np.interp)
def _interp(x, xp, fp, left=None, right=None, period=None):
    """Piecewise linear through (xp, fp) at points x: x and xp constants (the segment of
    each point is then known), fp (and left / right) may be traced."""
    _unsupported("interp", period=period)
    x, xp = _constant(x, "np.interp's x"), _constant(xp, "np.interp's xp")
    if xp.ndim != 1 or np.ndim(fp) != 1 or np.shape(fp)[0] != xp.shape[0]:
        raise ValueError("fp and xp are not of the same length.")
    n = xp.shape[0]
    j = np.clip(np.searchsorted(xp, x, side="right") - 1, 0, max(n - 2, 0))
    if n == 1:
        y = np.zeros(np.shape(x)) + fp[0]
    else:
        slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
        y = np.where(x == xp[j + 1], fp[j + 1], slope * (x - xp[j]) + fp[j])
    y = np.where(x < xp[0], fp[0] if left is None else left, y)
    y = np.where(x > xp[-1], fp[n - 1] if right is None else right, y)
    return y


def _constant(x, what: str) -> np.ndarray:
    if hasattr(x, "tracing"):
        value = x.tracing.concrete(x.node)
        if value is None:
            raise TypeError(f"{what} must be a constant, not computed from the parameters")
        return value
    return np.asarray(x, dtype=np.float64)


# ---- rounding and tests on values (no gradient) ----


@composite(np.round, getattr(np, "around", None), getattr(np, "round_", None))
def _round(a, decimals=0, out=None):
    """numpy's: rint of a scaled by 10^decimals (no gradient: the steps are flat)."""
    _unsupported("round", out=out)
    if decimals == 0:
        return np.rint(a)
    if decimals > 0:
        scale = 10.0**decimals
        return np.rint(a * scale) / scale
    scale = 10.0 ** (-decimals)
    return np.rint(a / scale) * scale


@composite(np.signbit)
def _signbit(x, out=None, **kwargs):
    """The sign bit, -0.0's too: copysign(1, x) < 0."""
    _unsupported("signbit", out=out, **kwargs)
    return np.copysign(1.0, x) < 0.0


@composite(np.isclose)
def _isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|a - b| <= atol + rtol |b| where b is finite, or a == b (infinities)."""
    near = np.logical_and(np.abs(a - b) <= atol + rtol * np.abs(b), np.abs(b) < np.inf)
    close = np.logical_or(near, a == b)
    if equal_nan:
        close = np.logical_or(close, np.logical_and(a != a, b != b))
    return close


@composite(np.nan_to_num)
def _nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """NaN -> nan, +inf -> posinf (the largest float), -inf -> neginf: where, so the
    replaced elements get no gradient."""
    big = float(np.finfo(np.float32 if getattr(x, "dtype", None) == np.float32 else np.float64).max)
    x = np.where(x != x, nan, x)
    x = np.where(x == np.inf, big if posinf is None else posinf, x)
    return np.where(x == -np.inf, -big if neginf is None else neginf, x)
