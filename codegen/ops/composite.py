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
    """sum(a * w) / sum(w) along axis (a 1-d w runs along that axis), as numpy says;
    returned=True: also sum(w), in the average's shape."""
    if returned:
        avg = np.average(a, axis=axis, weights=weights, keepdims=keepdims)
        if weights is None:
            total = np.full(np.shape(avg), float(_count(np.shape(a), axis)))
        else:
            w = weights
            if np.shape(w) != np.shape(a):
                ax = normalize_axis(axis, np.ndim(a))[0]
                w = np.reshape(w, tuple(-1 if i == ax else 1 for i in range(np.ndim(a))))
            total = np.sum(w * np.ones_like(a), axis=axis, keepdims=keepdims)
            total = np.broadcast_to(total, np.shape(avg))
        return avg, total
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
    if mode not in ("raise", "clip", "wrap"):
        raise ValueError(f"clipmode must be one of 'clip', 'raise', or 'wrap' (got {mode!r})")
    if axis is None:
        a, axis = np.ravel(a), 0
    ax = normalize_axis(axis, a.ndim)[0]
    idx = np.asarray(indices)
    if mode == "clip":  # out-of-range indices read the nearest end
        idx = np.clip(idx, 0, a.shape[ax] - 1)
    elif mode == "wrap":
        idx = np.mod(idx, a.shape[ax])
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
    """constant, edge, reflect, symmetric and wrap padding, one axis at a time."""
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (array.ndim, 2)).tolist()
    if mode not in ("constant", "edge", "reflect", "symmetric", "wrap"):
        raise TypeError(
            f"np.pad(..., mode={mode!r}) is not supported (constant, edge, reflect, "
            "symmetric, wrap are)"
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
    """Piecewise linear through (xp, fp) at points x, xp a constant; fp (and left / right)
    may be traced, and x too (see `_interp_traced`)."""
    _unsupported("interp", period=period)
    xp = _constant(xp, "np.interp's xp")
    if isinstance(fp, (list, tuple)):
        fp = np.asarray(fp, dtype=np.float64)
    if hasattr(x, "tracing") and x.tracing.concrete(x.node) is None:
        return _interp_traced(x, xp, fp, left, right)
    x = _constant(x, "np.interp's x")
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


def _interp_traced(x, xp: np.ndarray, fp, left, right):
    """At traced points: fp[0] plus each segment's slope times how far x runs along it,
    (clip(x, xp[k], xp[k + 1]) - xp[k]). So x's gradient is the slope of its segment (at
    a knot, the mean of the two, as the clip's ties split)."""
    if xp.ndim != 1 or np.ndim(fp) != 1 or np.shape(fp)[0] != xp.shape[0]:
        raise ValueError("fp and xp are not of the same length.")
    if xp.shape[0] == 1:
        y = np.zeros(np.shape(x)) + fp[0]
    else:
        width = np.diff(xp)
        per_unit = np.where(width > 0, 1.0 / np.where(width > 0, width, 1.0), 0.0)
        slope = (fp[1:] - fp[:-1]) * per_unit
        along = np.clip(np.expand_dims(x, -1), xp[:-1], xp[1:]) - xp[:-1]
        y = fp[0] + np.sum(along * slope, axis=-1)
        if (width == 0).any():  # a repeated xp: fp steps there, as numpy's does at x >= it
            jump = np.where(width == 0, 1.0, 0.0) * (fp[1:] - fp[:-1])
            passed = np.where(np.expand_dims(x, -1) >= xp[:-1], 1.0, 0.0)
            y = y + np.sum(passed * jump, axis=-1)
    if left is not None:
        y = np.where(x < xp[0], left, y)
    if right is not None:
        y = np.where(x > xp[-1], right, y)
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


@composite(np.allclose)
def _allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return np.all(np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


@composite(np.array_equal)
def _array_equal(a1, a2, equal_nan=False):
    if np.shape(a1) != np.shape(a2):
        return False
    same = a1 == a2
    if equal_nan:
        same = np.logical_or(same, np.logical_and(_missing(a1), _missing(a2)))
    return np.all(same)


@composite(np.nan_to_num)
def _nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """NaN -> nan, +inf -> posinf (the largest float), -inf -> neginf: where, so the
    replaced elements get no gradient."""
    big = float(np.finfo(np.float32 if getattr(x, "dtype", None) == np.float32 else np.float64).max)
    x = np.where(x != x, nan, x)
    x = np.where(x == np.inf, big if posinf is None else posinf, x)
    return np.where(x == -np.inf, -big if neginf is None else neginf, x)


# ---- truth values: masks combined, tested and counted (no gradient) ----


def _mask(x, name: str):
    """x as a mask: numpy's `&`, `|`, `^` and `~` on booleans are the logical operations;
    on integers they are bit operations, which gradgen does not trace."""
    dtype = getattr(x, "dtype", None) if not isinstance(x, (bool, np.bool_)) else np.dtype(bool)
    if dtype is None:
        dtype = np.asarray(x).dtype
    if dtype != np.bool_:
        raise TypeError(
            f"np.{name} (the operators & | ^ ~) on {dtype} values is a bit operation, which "
            "gradgen does not trace; on masks (comparisons) it is the logical one"
        )
    return x


def _truthy(x):
    """x as a mask, as numpy's logical functions read it: nonzero is true."""
    if isinstance(x, (bool, np.bool_)) or getattr(x, "dtype", None) == np.bool_:
        return x
    return x != 0


@composite(np.bitwise_and)
def _bitwise_and(x1, x2, out=None, **kwargs):
    _unsupported("bitwise_and", out=out, **kwargs)
    return np.logical_and(_mask(x1, "bitwise_and"), _mask(x2, "bitwise_and"))


@composite(np.bitwise_or)
def _bitwise_or(x1, x2, out=None, **kwargs):
    _unsupported("bitwise_or", out=out, **kwargs)
    return np.logical_or(_mask(x1, "bitwise_or"), _mask(x2, "bitwise_or"))


@composite(np.bitwise_xor)
def _bitwise_xor(x1, x2, out=None, **kwargs):
    """Exactly one of the two: the masks differ."""
    _unsupported("bitwise_xor", out=out, **kwargs)
    return np.not_equal(_mask(x1, "bitwise_xor"), _mask(x2, "bitwise_xor"))


@composite(np.logical_xor)
def _logical_xor(x1, x2, out=None, **kwargs):
    _unsupported("logical_xor", out=out, **kwargs)
    return np.not_equal(_truthy(x1), _truthy(x2))


@composite(np.invert)  # np.bitwise_not is the same ufunc
def _invert(x, out=None, **kwargs):
    _unsupported("invert", out=out, **kwargs)
    return np.logical_not(_mask(x, "invert"))


@composite(np.isnan)
def _isnan(x, out=None, **kwargs):
    _unsupported("isnan", out=out, **kwargs)
    return _missing(x)


@composite(np.isinf)
def _isinf(x, out=None, **kwargs):
    _unsupported("isinf", out=out, **kwargs)
    return np.abs(x) == np.inf


@composite(np.isfinite)
def _isfinite(x, out=None, **kwargs):
    """Neither infinite nor NaN (NaN < inf is false)."""
    _unsupported("isfinite", out=out, **kwargs)
    return np.abs(x) < np.inf


@composite(np.isposinf)
def _isposinf(x, out=None):
    _unsupported("isposinf", out=out)
    return x == np.inf


@composite(np.isneginf)
def _isneginf(x, out=None):
    _unsupported("isneginf", out=out)
    return x == -np.inf


def _ones_where(cond, axis, keepdims):
    return np.sum(np.where(cond, 1.0, 0.0), axis=axis, keepdims=keepdims)


@composite(np.any)
def _any(a, axis=None, out=None, keepdims=False, *, where=None):
    """Whether any element is true (nonzero): a count of them above zero."""
    _unsupported("any", out=out, where=where)
    return _ones_where(_truthy(a), axis, keepdims) > 0.0


@composite(np.all)
def _all(a, axis=None, out=None, keepdims=False, *, where=None):
    """Whether every element is true (nonzero): no false one counted."""
    _unsupported("all", out=out, where=where)
    return _ones_where(np.logical_not(_truthy(a)), axis, keepdims) == 0.0


@composite(np.count_nonzero)
def _count_nonzero(a, axis=None, *, keepdims=False):
    return _ones_where(_truthy(a), axis, keepdims).astype(np.int64)


# ---- the complex parts of real values ----


@composite(np.real, np.real_if_close)
def _real(val, tol=None):
    """A real value is its own real part."""
    return val


@composite(np.imag)
def _imag(val):
    """A real value's imaginary part: zeros (a constant)."""
    return np.zeros(np.shape(val))


@composite(np.conjugate)  # np.conj is the same ufunc
def _conjugate(x, out=None, **kwargs):
    """A real value is its own conjugate."""
    _unsupported("conjugate", out=out, **kwargs)
    return x


# ---- division with rounding, scaling by powers of two ----


def _integral(x) -> bool:
    dtype = getattr(x, "dtype", None)
    return (dtype if dtype is not None else np.asarray(x).dtype).kind in "iub"


@composite(np.floor_divide)
def _floor_divide(x1, x2, out=None, **kwargs):
    """numpy's x1 // x2: (x1 - x1 % x2) / x2, an integer up to rounding, rounded (so
    1 // 0.1 is 9.0 as in numpy, where floor(1 / 0.1) is 10.0). No gradient: steps."""
    _unsupported("floor_divide", out=out, **kwargs)
    q = np.rint((x1 - np.remainder(x1, x2)) / x2)
    return q.astype(np.int64) if _integral(x1) and _integral(x2) else q


@composite(np.divmod)
def _divmod(x1, x2, out1=None, out2=None, out=None, **kwargs):
    _unsupported("divmod", out=out, **kwargs)
    return np.floor_divide(x1, x2), np.remainder(x1, x2)


@composite(np.ldexp)
def _ldexp(x1, x2, out=None, **kwargs):
    """x1 * 2**x2."""
    _unsupported("ldexp", out=out, **kwargs)
    return x1 * np.exp2(x2)


# ---- more shapes ----


def _split_along(name: str, axis: int, least: int) -> Callable:
    def split(ary, indices_or_sections):
        if np.ndim(ary) < least:
            raise ValueError(f"np.{name} only works on arrays of {least} or more dimensions")
        return np.split(ary, indices_or_sections, axis=axis if np.ndim(ary) > 1 else 0)

    split.__name__ = f"_{name}"
    return split


composite(np.hsplit)(_split_along("hsplit", 1, 1))
composite(np.vsplit)(_split_along("vsplit", 0, 2))
composite(np.dsplit)(_split_along("dsplit", 2, 3))


@composite(np.resize)
def _resize(a, new_shape):
    """a's elements, flattened and repeated as often as needed, in the new shape."""
    shape = (new_shape,) if isinstance(new_shape, (int, np.integer)) else tuple(new_shape)
    n = int(np.prod(shape, dtype=np.int64))
    flat = np.ravel(a)
    if n == 0 or flat.size == 0:
        return np.zeros(shape)
    return np.reshape(np.tile(flat, -(-n // flat.size))[:n], shape)


@composite(np.piecewise)
def _piecewise(x, condlist, funclist, *args, **kw):
    """numpy's: y[cond] = f(x[cond]) for each condition in turn, on zeros. A constant
    condition selects as numpy does (f sees only its elements); a traced one chooses with
    np.where (f sees all of x)."""
    if np.ndim(condlist) == np.ndim(x) + 1:  # a list of conditions, or an array of them
        conds = [condlist[k] for k in range(len(condlist))]
    else:
        conds = [condlist]
    if len(funclist) == len(conds) + 1:  # the last function: where no condition holds
        conds.append(np.logical_not(np.any(np.stack(conds), axis=0)))
    elif len(funclist) != len(conds):
        raise ValueError(
            f"with {len(conds)} condition(s), either {len(conds)} or {len(conds) + 1} "
            "functions are expected"
        )
    y = np.zeros_like(x, dtype=np.float64)
    for cond, func in zip(conds, funclist):
        known = _constant_mask(cond)
        if known is not None:
            y[known] = func(x[known], *args, **kw) if callable(func) else func
        else:
            y = np.where(cond, func(x, *args, **kw) if callable(func) else func, y)
    return y


def _constant_mask(cond) -> np.ndarray | None:
    if hasattr(cond, "tracing"):
        value = cond.tracing.concrete(cond.node)
        return None if value is None else value.astype(bool)
    return np.asarray(cond, dtype=bool)


@composite(np.apply_along_axis)
def _apply_along_axis(func1d, axis, arr, *args, **kwargs):
    """func1d on each 1-d slice along `axis`, its results stacked where that axis was."""
    ax = normalize_axis(axis, np.ndim(arr))[0]
    moved = np.moveaxis(arr, ax, -1)
    outer = np.shape(moved)[:-1]
    results = [func1d(moved[idx], *args, **kwargs) for idx in np.ndindex(*outer)]
    stacked = np.stack(results)
    inner = np.shape(stacked)[1:]
    out = np.reshape(stacked, outer + inner)
    k = len(outer)
    return np.moveaxis(out, list(range(k, k + len(inner))), list(range(ax, ax + len(inner))))


# ---- NaN-skipping cumulative sums and products ----


@composite(np.nancumsum)
def _nancumsum(a, axis=None, dtype=None, out=None):
    _unsupported("nancumsum", dtype=dtype, out=out)
    return np.cumsum(np.where(_missing(a), 0.0, a), axis=axis)


@composite(np.nancumprod)
def _nancumprod(a, axis=None, dtype=None, out=None):
    _unsupported("nancumprod", dtype=dtype, out=out)
    return np.cumprod(np.where(_missing(a), 1.0, a), axis=axis)


# ---- the methods of ufuncs: np.add.reduce, np.maximum.accumulate, np.multiply.outer ----


def _logsumexp(a, axis=None, keepdims=False):
    """m + log(sum(exp(a - m))) with m = max(a): the stable form (the fuse pass makes it
    one logsumexp op)."""
    m = np.max(a, axis=axis, keepdims=True)
    lse = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return lse if keepdims else np.squeeze(lse, axis=axis)


def _logsumexp2(a, axis=None, keepdims=False):
    m = np.max(a, axis=axis, keepdims=True)
    lse = np.log2(np.sum(np.exp2(a - m), axis=axis, keepdims=True)) + m
    return lse if keepdims else np.squeeze(lse, axis=axis)


# ufunc -> (its reduction over an axis, the value that leaves it unchanged)
_REDUCTIONS = {
    np.add: (np.sum, 0.0),
    np.multiply: (np.prod, 1.0),
    np.maximum: (np.max, -np.inf),
    np.minimum: (np.min, np.inf),
    np.fmax: (np.nanmax, -np.inf),
    np.fmin: (np.nanmin, np.inf),
    np.logaddexp: (_logsumexp, -np.inf),
    np.logaddexp2: (_logsumexp2, -np.inf),
    np.logical_and: (np.all, None),
    np.logical_or: (np.any, None),
}


def _ufunc_reduce(ufunc) -> Callable:
    reduction, _ = _REDUCTIONS[ufunc]

    def reduce(array, axis=0, dtype=None, out=None, keepdims=False, initial=None, where=True):
        """np.<ufunc>.reduce: the reduction of the same meaning (np.add.reduce is np.sum),
        over axis 0 unless told."""
        _unsupported(f"{ufunc.__name__}.reduce", out=out)
        extra = {"dtype": dtype} if dtype is not None else {}
        if initial is not None:
            extra["initial"] = initial
        if where is not True:
            extra["where"] = where
        return reduction(array, axis=axis, keepdims=keepdims, **extra)

    return reduce


def _running(a, axis: int, reduction: Callable, fill: float):
    """out[i] = reduction(a[0], ..., a[i]) along axis: each prefix is a row of a
    triangle whose other entries hold `fill`, which leaves the reduction unchanged."""
    x = np.moveaxis(a, axis, -1)
    n = np.shape(x)[-1]
    rows = np.where(np.tri(n, dtype=bool), x[..., None, :], fill)
    return np.moveaxis(reduction(rows, axis=-1), -1, axis)


def _ufunc_accumulate(ufunc) -> Callable:
    reduction, fill = _REDUCTIONS[ufunc]

    def accumulate(array, axis=0, dtype=None, out=None):
        """np.<ufunc>.accumulate: the running reduction along an axis (axis 0 unless told)."""
        _unsupported(f"{ufunc.__name__}.accumulate", dtype=dtype, out=out)
        if np.ndim(array) == 0:
            raise TypeError("cannot accumulate on a scalar")
        ax = normalize_axis(axis, np.ndim(array))[0]
        if ufunc is np.add:
            return np.cumsum(array, axis=ax)
        if ufunc is np.multiply:
            return np.cumprod(array, axis=ax)
        return _running(array, ax, reduction, fill)

    return accumulate


def _ufunc_reduceat(ufunc) -> Callable:
    reduction, _ = _REDUCTIONS[ufunc]

    def reduceat(array, indices, axis=0, dtype=None, out=None):
        """np.<ufunc>.reduceat: the reduction of each slice [indices[i], indices[i+1]),
        or the element at indices[i] where the next index is not past it."""
        _unsupported(f"{ufunc.__name__}.reduceat", dtype=dtype, out=out)
        starts = [int(i) for i in np.ravel(_constant(indices, "reduceat's indices"))]
        x = np.moveaxis(array, normalize_axis(axis, np.ndim(array))[0], 0)
        n = np.shape(x)[0]
        parts = []
        for k, start in enumerate(starts):
            end = starts[k + 1] if k + 1 < len(starts) else n
            parts.append(reduction(x[start:end], axis=0) if start < end else x[start])
        return np.moveaxis(np.stack(parts), 0, normalize_axis(axis, np.ndim(array))[0])

    return reduceat


def _ufunc_outer(ufunc) -> Callable:
    def outer(A, B, **kwargs):
        """np.<ufunc>.outer: ufunc of every element of A with every element of B."""
        _unsupported(f"{ufunc.__name__}.outer", **kwargs)
        return ufunc(np.reshape(A, np.shape(A) + (1,) * np.ndim(B)), B)

    return outer


for _ufunc, (_, _fill) in _REDUCTIONS.items():
    composite(_ufunc.reduce)(_ufunc_reduce(_ufunc))
    composite(_ufunc.reduceat)(_ufunc_reduceat(_ufunc))
    if _fill is not None:
        composite(_ufunc.accumulate)(_ufunc_accumulate(_ufunc))
for _ufunc in (
    np.add,
    np.subtract,
    np.multiply,
    np.true_divide,
    np.power,
    np.float_power,
    np.maximum,
    np.minimum,
    np.fmax,
    np.fmin,
    np.arctan2,
    np.hypot,
    np.logaddexp,
    np.logaddexp2,
    np.remainder,
    np.fmod,
    np.copysign,
    np.greater,
    np.greater_equal,
    np.less,
    np.less_equal,
    np.equal,
    np.not_equal,
    np.logical_and,
    np.logical_or,
    np.logical_xor,
):
    composite(_ufunc.outer)(_ufunc_outer(_ufunc))


# ---- fmax and fmin: the larger (smaller) value, a NaN losing to a number ----


def _nan_loses(x1, x2, pick: Callable):
    """pick(x1, x2), except where one is NaN: there the other (the gradient with it)."""
    out = pick(x1, x2)
    if _maybe_nan(x1):
        out = np.where(_missing(x1), x2, out)
    if _maybe_nan(x2):
        out = np.where(_missing(x2), x1, out)
    return out


def _maybe_nan(x) -> bool:
    """Whether x may hold a NaN: a traced value may; a constant only if it does."""
    if hasattr(x, "tracing"):
        value = x.tracing.concrete(x.node)
        return value is None or bool(np.isnan(value).any())
    return bool(np.isnan(np.asarray(x, dtype=np.float64)).any())


@composite(np.fmax)
def _fmax(x1, x2, out=None, **kwargs):
    _unsupported("fmax", out=out, **kwargs)
    return _nan_loses(x1, x2, np.maximum)


@composite(np.fmin)
def _fmin(x1, x2, out=None, **kwargs):
    _unsupported("fmin", out=out, **kwargs)
    return _nan_loses(x1, x2, np.minimum)


# ---- evenly spaced values between traced ends ----


@composite(np.linspace)
def _linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """start + (stop - start) * k / div for k = 0 .. num - 1, the last exactly stop."""
    _float_dtype("linspace", dtype)
    num = int(num)
    if num < 0:
        raise ValueError(f"Number of samples, {num}, must be non-negative.")
    div = (num - 1) if endpoint else num
    ndim = max(np.ndim(start), np.ndim(stop))
    delta = stop - start
    k = np.arange(num, dtype=np.float64).reshape((-1,) + (1,) * ndim)
    step = delta / div if div > 0 else np.nan * delta
    y = start + k * step if div > 0 else start + k * delta
    if endpoint and num > 1:
        last = np.broadcast_to(stop, np.shape(y)[1:])
        y = np.concatenate([y[:-1], np.reshape(last, (1,) + np.shape(last))])
    if axis != 0:
        y = np.moveaxis(y, 0, axis)
    return (y, step) if retstep else y


@composite(np.logspace)
def _logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    """base ** linspace(start, stop)."""
    _float_dtype("logspace", dtype)
    return np.power(base, np.linspace(start, stop, num=num, endpoint=endpoint, axis=axis))


@composite(np.geomspace)
def _geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    """exp(linspace(log start, log stop)), for ends of one sign, the ends exactly as given."""
    _float_dtype("geomspace", dtype)
    sign = np.sign(start)
    y = sign * np.exp(
        np.linspace(np.log(start * sign), np.log(stop * sign), num=num, endpoint=endpoint)
    )
    if num > 0:
        parts = [np.reshape(start * np.ones(np.shape(y)[1:]), (1,) + np.shape(y)[1:]), y[1:]]
        if endpoint and num > 1:
            last = stop * np.ones(np.shape(y)[1:])
            parts = [parts[0], y[1:-1], np.reshape(last, (1,) + np.shape(last))]
        y = np.concatenate(parts)
    return np.moveaxis(y, 0, axis) if axis != 0 else y


def _float_dtype(name: str, dtype) -> None:
    if dtype is not None and np.dtype(dtype) != np.float64:
        raise TypeError(f"np.{name}(..., dtype={np.dtype(dtype)}) is not supported")


# ---- parts of values ----


@composite(np.modf)
def _modf(x, out1=None, out2=None, out=None, **kwargs):
    """(fractional part, integral part): x - trunc(x), trunc(x)."""
    _unsupported("modf", out=out, **kwargs)
    whole = np.trunc(x)
    return x - whole, whole


@composite(np.angle)
def _angle(z, deg=False):
    """The angle of a real number: arctan2(0, x) (0, or pi for a negative)."""
    a = np.arctan2(0.0, z)
    return a * (180.0 / np.pi) if deg else a


@composite(np.iscomplexobj)
def _iscomplexobj(x):
    return False


@composite(np.isrealobj)
def _isrealobj(x):
    return True


@composite(np.isreal)
def _isreal(x):
    return np.ones(np.shape(x), dtype=bool)


@composite(np.iscomplex)
def _iscomplex(x):
    return np.zeros(np.shape(x), dtype=bool)


@composite(np.result_type)
def _result_type(*arrays_and_dtypes):
    return np.result_type(*(getattr(a, "dtype", a) for a in arrays_and_dtypes))


# ---- polynomials (coefficients highest power first) ----


def _padded_front(a, n: int):
    return np.concatenate([np.zeros(n - np.shape(a)[0]), a]) if np.shape(a)[0] < n else a


@composite(np.polyadd)
def _polyadd(a1, a2):
    n = max(np.shape(a1)[0], np.shape(a2)[0])
    return _padded_front(a1, n) + _padded_front(a2, n)


@composite(np.polysub)
def _polysub(a1, a2):
    n = max(np.shape(a1)[0], np.shape(a2)[0])
    return _padded_front(a1, n) - _padded_front(a2, n)


@composite(np.polymul)
def _polymul(a1, a2):
    return np.convolve(a1, a2)


@composite(np.polyder)
def _polyder(p, m=1):
    """Each coefficient times its power, the constant dropped; m times."""
    for _ in range(int(m)):
        n = np.shape(p)[0] - 1
        p = p[:-1] * np.arange(n, 0, -1, dtype=np.float64)
    return p


@composite(np.polyint)
def _polyint(p, m=1, k=None):
    """Each coefficient over its power plus one, then the integration constant; m times."""
    ks = [0.0] * int(m) if k is None else list(np.atleast_1d(k))
    if len(ks) == 1 and m > 1:
        ks = ks * int(m)
    for j in range(int(m)):
        n = np.shape(p)[0]
        p = np.concatenate([p / np.arange(n, 0, -1, dtype=np.float64), np.reshape(ks[j], (1,))])
    return p


# ---- selections by constant conditions and indices ----


@composite(np.compress)
def _compress(condition, a, axis=None, out=None):
    """The slices along axis where a constant condition holds."""
    _unsupported("compress", out=out)
    keep = np.nonzero(np.ravel(_constant(condition, "np.compress's condition")))[0]
    if axis is None:
        a, axis = np.ravel(a), 0
    return np.take(a, keep, axis=axis)


@composite(np.extract)
def _extract(condition, arr):
    """The elements (flattened) where a constant condition holds."""
    keep = np.flatnonzero(_constant(condition, "np.extract's condition"))
    return np.ravel(arr)[keep]


@composite(np.choose)
def _choose(a, choices, out=None, mode="raise"):
    """choices[a[i]][i] for constant integer a: np.where, one choice at a time."""
    _unsupported("choose", out=out)
    index = _constant(a, "np.choose's index array").astype(np.int64)
    n = len(choices)
    if mode == "clip":
        index = np.clip(index, 0, n - 1)
    elif mode == "wrap":
        index = np.mod(index, n)
    elif (index < 0).any() or (index >= n).any():
        raise ValueError("invalid entry in choice array")
    out = choices[n - 1]
    for k in range(n - 2, -1, -1):
        out = np.where(index == k, choices[k], out)
    return out + np.zeros(np.shape(index))  # numpy broadcasts the index with the choices


@composite(np.searchsorted)
def _searchsorted(a, v, side="left", sorter=None):
    """Where v would go in sorted a: how many of a are below it (at or below: side
    'right'). An integer, without gradient."""
    if sorter is not None:
        a = np.take(a, sorter)
    if np.ndim(a) != 1:
        raise ValueError("object too deep for desired array")
    below = np.less if side == "left" else np.less_equal
    count = np.sum(np.where(below(a, np.expand_dims(v, -1)), 1.0, 0.0), axis=-1)
    return count.astype(np.int64)


@composite(np.digitize)
def _digitize(x, bins, right=False):
    """The bin of each x, for constant increasing or decreasing bins."""
    edges = _constant(bins, "np.digitize's bins")
    side = "left" if right else "right"
    steps = np.diff(edges)
    if edges.ndim != 1:
        raise ValueError("bins must be 1-dimensional")
    if np.all(steps <= 0) and np.any(steps < 0):  # decreasing: count from the other end
        return len(edges) - np.searchsorted(edges[::-1], x, side=side)
    if not np.all(steps >= 0):
        raise ValueError("bins must be monotonically increasing or decreasing")
    return np.searchsorted(edges, x, side=side)


@composite(np.triu_indices_from)
def _triu_indices_from(arr, k=0):
    return np.triu_indices(np.shape(arr)[-2], k=k, m=np.shape(arr)[-1])


@composite(np.tril_indices_from)
def _tril_indices_from(arr, k=0):
    return np.tril_indices(np.shape(arr)[-2], k=k, m=np.shape(arr)[-1])


@composite(np.diag_indices_from)
def _diag_indices_from(arr):
    shape = np.shape(arr)
    if len(shape) < 2 or len(set(shape)) != 1:
        raise ValueError("All dimensions of input must be of equal length")
    return np.diag_indices(shape[0], len(shape))


@composite(np.linalg.matrix_rank)
def _matrix_rank(A, tol=None, hermitian=False, *, rtol=None):
    """The number of singular values above the tolerance (an integer: no gradient)."""
    if np.ndim(A) < 2:
        return np.any(A != 0).astype(np.int64)
    s = np.linalg.svd(A, compute_uv=False)
    if tol is None:
        eps = np.finfo(np.float64).eps if rtol is None else rtol
        tol = np.max(s, axis=-1, keepdims=True) * (max(np.shape(A)[-2:]) if rtol is None else 1)
        tol = tol * eps
    else:
        tol = np.expand_dims(np.asarray(tol), -1)
    return np.sum(np.where(s > tol, 1.0, 0.0), axis=-1).astype(np.int64)


# ---- numpy 2's new names ----


def _cumulative(name: str, running: Callable, fill: float) -> Callable:
    def cumulative(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
        _unsupported(name, dtype=dtype, out=out)
        if axis is None:
            if np.ndim(x) > 1:
                raise ValueError(f"np.{name} needs axis= for an array of more than one dimension")
            axis = 0
        ax = normalize_axis(axis, np.ndim(x))[0]
        y = running(x, axis=ax)
        if include_initial:
            shape = tuple(1 if i == ax else d for i, d in enumerate(np.shape(x)))
            y = np.concatenate([np.full(shape, fill), y], axis=ax)
        return y

    cumulative.__name__ = f"_{name}"
    return cumulative


composite(getattr(np, "cumulative_sum", None))(_cumulative("cumulative_sum", np.cumsum, 0.0))
composite(getattr(np, "cumulative_prod", None))(_cumulative("cumulative_prod", np.cumprod, 1.0))


@composite(getattr(np, "unstack", None))
def _unstack(x, /, *, axis=0):
    moved = np.moveaxis(x, axis, 0)
    return tuple(moved[i] for i in range(np.shape(moved)[0]))


@composite(getattr(np, "astype", None))
def _astype(x, dtype, /, *, copy=True, device=None):
    return x.astype(dtype, copy=copy)


# ---- numpy functions that write into their first argument ----


def in_place(*fns: Any) -> Callable:
    """Register `impl(*args, **kwargs)` as the front of numpy functions that write into
    the user's array (np.fill_diagonal): it receives the user's own tracers."""

    def register(impl: Callable) -> Callable:
        def front(args: tuple, kwargs: dict, tracing) -> Any:
            target = args[0] if args else None
            if not hasattr(target, "tracing"):
                raise tracing.error(
                    f"np.{fns[0].__name__} writes a traced value into a numpy array, which would "
                    "drop it from the trace",
                    "create the array inside the function with np.zeros (gradgen traces it)",
                )
            try:
                impl(*args, **kwargs)
            except (TypeError, ValueError, IndexError) as e:
                raise tracing.error(f"np.{fns[0].__name__}: {e}") from None

        front.raw = True
        front.__qualname__ = f"composite.{impl.__name__}"
        for fn in fns:
            NUMPY[fn] = front
        return impl

    return register


def _cyclic(values, count: int):
    """numpy's put/place/fill_diagonal reading of `values`: repeated to `count`."""
    if np.ndim(values) == 0 or np.size(values) == count:
        return values
    if hasattr(values, "tracing"):
        return np.resize(values, (count,))
    return np.resize(np.asarray(values, dtype=np.float64), (count,))


@in_place(np.fill_diagonal)
def _fill_diagonal(a, val, wrap=False):
    """a's main diagonal set to val, numpy's flat stepping (a tall matrix wraps if told)."""
    shape = a.shape
    if len(shape) < 2:
        raise ValueError("array must be at least 2-d")
    if len(shape) == 2:
        step = shape[1] + 1
        end = None if wrap else shape[1] * shape[1]
    else:
        if len(set(shape)) != 1:
            raise ValueError("All dimensions of input must be of equal length")
        step = 1 + int(np.cumprod(shape[:-1]).sum())
        end = None
    flat = np.arange(a.size)[:end:step]
    a[np.unravel_index(flat, shape)] = _cyclic(val, flat.size)


@in_place(np.put)
def _put(a, ind, v, mode="raise"):
    """a.flat[ind] = v."""
    flat = np.ravel(np.asarray(ind, dtype=np.int64))
    if mode == "clip":
        flat = np.clip(flat, 0, a.size - 1)
    elif mode == "wrap":
        flat = np.mod(flat, a.size)
    elif ((flat < -a.size) | (flat >= a.size)).any():
        raise IndexError(f"index out of range for an array of size {a.size}")
    a[np.unravel_index(flat % a.size, a.shape)] = _cyclic(v, flat.size)


@in_place(np.place)
def _place(arr, mask, vals):
    """arr[mask] = vals, vals repeated as needed (a constant mask, or one value)."""
    known = _constant_mask(mask)
    count = int(np.count_nonzero(known)) if known is not None else None
    arr[mask if known is None else known] = vals if count is None else _cyclic(vals, count)


@in_place(np.copyto)
def _copyto(dst, src, casting="same_kind", where=True):
    """dst[...] = src where `where` holds."""
    if where is True:
        dst[...] = np.broadcast_to(src, dst.shape) if np.ndim(src) else src
    else:
        dst[...] = np.where(where, src, dst)


# ---- counts with weights, NaN-skipping arg-extremes, polynomials from roots and fits ----


@composite(np.bincount)
def _bincount(x, weights=None, minlength=0):
    """The sum of the weights at each value of the constant integers x (their count
    without weights): a scatter-add, so each weight's gradient is its bin's."""
    bins = _constant(x, "np.bincount's values").astype(np.int64)
    if bins.ndim != 1 or (bins < 0).any():
        raise ValueError("np.bincount takes a 1-d array of non-negative integers")
    n = max(int(minlength), int(bins.max()) + 1 if bins.size else 0)
    if weights is None:
        return np.bincount(bins, minlength=n)
    out = np.zeros_like(weights, dtype=np.float64, shape=(n,))  # (a traced array to add into)
    np.add.at(out, bins, weights)
    return out


@composite(np.nanargmax)
def _nanargmax(a, axis=None, out=None, *, keepdims=False):
    _unsupported("nanargmax", out=out)
    return np.argmax(np.where(_missing(a), -np.inf, a), axis=axis, keepdims=keepdims)


@composite(np.nanargmin)
def _nanargmin(a, axis=None, out=None, *, keepdims=False):
    _unsupported("nanargmin", out=out)
    return np.argmin(np.where(_missing(a), np.inf, a), axis=axis, keepdims=keepdims)


@composite(np.poly)
def _poly(seq_of_zeros):
    """The monic polynomial with these roots: the product of (x - r), as coefficients."""
    if np.ndim(seq_of_zeros) != 1:
        raise ValueError("np.poly of a matrix (its characteristic polynomial) is not supported")
    coefficients = np.ones(1)
    for k in range(np.shape(seq_of_zeros)[0]):
        coefficients = np.convolve(coefficients, np.stack([1.0, -seq_of_zeros[k]]))
    return coefficients


@composite(np.polyfit)
def _polyfit(x, y, deg, rcond=None, full=False, w=None, cov=False):
    """Least-squares coefficients, highest power first: lstsq of the Vandermonde matrix
    of the constant x (so linear in y)."""
    _unsupported("polyfit", w=w)
    if full or cov:
        raise TypeError("np.polyfit(..., full=True or cov=True) is not supported")
    points = _constant(x, "np.polyfit's x")
    return np.linalg.lstsq(np.vander(points, int(deg) + 1), y, rcond=rcond)[0]


# ---- numpy 2's linalg names for the functions on the last axes, and matvec / vecmat ----


@composite(getattr(np.linalg, "outer", None))
def _linalg_outer(x1, x2, /):
    if np.ndim(x1) != 1 or np.ndim(x2) != 1:
        raise ValueError("np.linalg.outer takes 1-d arrays")
    return np.outer(x1, x2)


@composite(getattr(np.linalg, "cross", None))
def _linalg_cross(x1, x2, /, *, axis=-1):
    return np.cross(x1, x2, axis=axis)


@composite(getattr(np.linalg, "diagonal", None))
def _linalg_diagonal(x, /, *, offset=0):
    return np.diagonal(x, offset=offset, axis1=-2, axis2=-1)


@composite(getattr(np.linalg, "trace", None))
def _linalg_trace(x, /, *, offset=0, dtype=None):
    _unsupported("linalg.trace", dtype=dtype)
    return np.trace(x, offset=offset, axis1=-2, axis2=-1)


@composite(getattr(np, "matvec", None))
def _matvec(x1, x2, /, out=None, **kwargs):
    """A stack of matrices times a stack of vectors."""
    _unsupported("matvec", out=out, **kwargs)
    return np.matmul(x1, np.expand_dims(x2, -1))[..., 0]


@composite(getattr(np, "vecmat", None))
def _vecmat(x1, x2, /, out=None, **kwargs):
    """A stack of vectors times a stack of matrices."""
    _unsupported("vecmat", out=out, **kwargs)
    return np.matmul(np.expand_dims(x1, -2), x2)[..., 0, :]


# ---- the rest of numpy's namespace that a differentiable function may call ----


@composite(np.apply_over_axes)
def _apply_over_axes(func, a, axes):
    """func(a, axis) for each axis in turn, a reduced axis kept as length 1."""
    for axis in np.atleast_1d(axes).tolist():
        out = func(a, axis)
        a = out if np.ndim(out) == np.ndim(a) else np.expand_dims(out, axis)
    return a


@composite(np.array_equiv)
def _array_equiv(a1, a2):
    try:
        np.broadcast_shapes(np.shape(a1), np.shape(a2))
    except ValueError:
        return False
    return np.all(a1 == a2)


@composite(np.isin)
def _isin(element, test_elements, assume_unique=False, invert=False, *, kind=None):
    """Whether each element equals one of the test elements (a mask: no gradient)."""
    found = np.any(np.expand_dims(element, -1) == np.ravel(test_elements), axis=-1)
    return np.logical_not(found) if invert else found


@composite(np.require)
def _require(a, dtype=None, requirements=None, *, like=None):
    return a if dtype is None else a.astype(dtype)


@composite(np.isfortran)
def _isfortran(a):
    return False


@composite(np.einsum_path)
def _einsum_path(*operands, optimize="greedy", einsum_call=False):
    """numpy's contraction order, which depends only on the operands' shapes."""
    return np.einsum_path(
        *(np.zeros(np.shape(o)) if hasattr(o, "tracing") else o for o in operands),
        optimize=optimize,
    )


@composite(np.unwrap)
def _unwrap(p, discont=None, axis=-1, *, period=2 * np.pi):
    """numpy's: jumps between neighbours larger than discont are folded back into one
    period, adding the (piecewise constant) corrections' running sum. Its gradient is
    the identity: each correction steps, it does not slope."""
    ax = normalize_axis(axis, np.ndim(p))[0]
    half = period / 2
    discont = half if discont is None else max(discont, half)
    dd = np.diff(p, axis=ax)
    ddmod = np.remainder(dd + half, period) - half
    ddmod = np.where((ddmod == -half) & (dd > 0), half, ddmod)
    correct = np.where(np.abs(dd) < discont, 0.0, ddmod - dd)
    first = np.take(p, [0], axis=ax)
    rest = np.take(p, np.arange(1, np.shape(p)[ax]), axis=ax) + np.cumsum(correct, axis=ax)
    return np.concatenate([first, rest], axis=ax)
