"""Shape ops: reshape, broadcast_to, concatenate, stack, pack, and indexing: `index`, its
transpose `scatter` (np.add.at semantics for repeated indices), and `index_update`, the
functional form of `x[key] = v`.

Numpy's shape functions lower onto these at trace time: expand_dims, squeeze, ravel,
flatten and atleast_Nd are reshapes; split / array_split are several `index` slices;
hstack / vstack are concatenates.

Index keys are stored normalized and hashable: a tuple of ints, `("slice", start, stop,
step)` entries, `None` for a new axis, `...`, and `("arr", k)` for the k-th integer index
array, which is an extra (constant) input of the node, after the data inputs. Keeping index
arrays as nodes lets the emitter define them once, as module-level constants.
"""

from __future__ import annotations

import operator
from typing import Any, Sequence

import numpy as np

from ..emit.expr import ATOM, Expr, dtype_kw, wrap
from . import NUMPY, apply, defop

ARR = "arr"  # key entry ("arr", k): the k-th index array input


def _probe(shape: tuple) -> np.ndarray:
    """A zero-stride stand-in of `shape`: numpy computes result shapes on it for free."""
    return np.broadcast_to(np.empty((), dtype=np.int8), shape)


def _shape_text(shape: tuple) -> str:
    return f"({shape[0]},)" if len(shape) == 1 else f"({', '.join(map(str, shape))})"


def _node(x: Any, graph, dtype: str | None = None):
    """A front's argument as a node: numbers and arrays become constants."""
    if hasattr(x, "graph"):
        return x
    if isinstance(x, np.ndarray):
        return graph.const(x)
    return graph.const(np.asarray(x, dtype=np.float64), dtype or graph.float_dtype)


def _no_extras(kwargs: dict, *allowed: str) -> None:
    for k, v in kwargs.items():
        if k not in allowed and v is not None:
            raise TypeError(f"the argument {k}= is not supported")


# ---- reshape and the numpy functions that are reshapes ----


def _simplify_reshape(x, shape):
    if tuple(shape) == x.shape:  # reshape to the same shape is the identity
        return x
    if x.op == "reshape":  # reshape(reshape(x)) = reshape(x)
        return apply("reshape", x.inputs[0], shape=shape)
    return None


def _reshaped(graph, x, shape: tuple):
    return graph.apply("reshape", x, shape=tuple(int(d) for d in shape))


def _reshape_front(args, kwargs, graph):
    x, *rest = args
    shape = kwargs.pop("newshape", kwargs.pop("shape", rest[0] if rest else None))
    order = _order(kwargs.pop("order", "C"))
    _no_extras(kwargs)
    x = _node(x, graph)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    # numpy resolves -1 and checks the size
    shape = _probe(x.shape).reshape(shape).shape
    if order == "F":  # the first index fastest: reshape the transposes, in C order
        return _reversed_axes(graph, _reshaped(graph, _reversed_axes(graph, x), shape[::-1]))
    return _reshaped(graph, x, shape)


def _order(order) -> str:
    """'C' or 'F': numpy's 'A' and 'K' read a traced array (never Fortran-ordered) as 'C'."""
    if order not in ("C", "F", "A", "K", None):
        raise ValueError(f"order must be one of 'C', 'F', 'A', or 'K' (got {order!r})")
    return "F" if order == "F" else "C"


def _reversed_axes(graph, x):
    if x.ndim < 2:
        return x
    return graph.apply("transpose", x, axes=tuple(range(x.ndim))[::-1])


def _like_numpy(fn):
    """A front for a numpy function that only changes the shape: numpy computes the shape."""

    def front(args, kwargs, graph):
        x, *rest = args
        x = _node(x, graph)
        if _order(kwargs.pop("order", "C")) == "F":  # ravel(order='F'): of the transpose
            if fn is not np.ravel:
                raise TypeError("only order='C' is supported")
            x = _reversed_axes(graph, x)
        return _reshaped(graph, x, fn(_probe(x.shape), *rest, **kwargs).shape)

    return front


def _atleast_front(fn):
    def front(args, kwargs, graph):
        _no_extras(kwargs)
        outs = [
            _reshaped(graph, x, fn(_probe(x.shape)).shape) for x in (_node(a, graph) for a in args)
        ]
        return outs[0] if len(outs) == 1 else outs

    return front


def _inserted_ones(short: tuple, long: tuple) -> tuple[int, ...] | None:
    """Positions in `long` of size-1 axes whose removal leaves `short`, else None."""
    j, axes = 0, []
    for i, d in enumerate(long):
        if j < len(short) and d == short[j]:
            j += 1
        elif d == 1:
            axes.append(i)
        else:
            return None
    return tuple(axes) if j == len(short) else None


def _reshape_text(x: Expr, src: tuple, dst: tuple) -> str:
    """The reshape written, where it can be, without the sizes it keeps (expand_dims,
    squeeze, ravel, a -1), so that code traced at one size of a named dim runs at another.
    An array's own methods are used where they exist: `np.reshape(x, s)` costs a microsecond
    of dispatch more than `x.reshape(s)`."""
    axis = lambda axes: axes[0] if len(axes) == 1 else axes  # noqa: E731
    if len(dst) > len(src) and (ones := _inserted_ones(src, dst)) is not None:
        return f"np.expand_dims({x.text}, {axis(ones)})"
    if not src:  # a 0-d input may be a Python float, which has no methods
        return f"np.reshape({x.text}, {_shape_text(dst)})"
    x_ = wrap(x, ATOM)
    if len(dst) == 1 and len(src) > 1:
        return f"{x_}.ravel()"
    if len(dst) < len(src) and (ones := _inserted_ones(dst, src)) is not None:
        return f"{x_}.squeeze(axis={axis(ones)})"
    keep = min(len(src), len(dst)) - 1
    if keep and src[len(src) - keep :] == dst[len(dst) - keep :]:
        lead = dst[: len(dst) - keep]
        if len(lead) == 1:  # leading axes merged into one: (-1, *kept)
            return f"{x_}.reshape({_shape_text((-1, *dst[1:]))})"
        if len(lead) == 2:  # the leading axis split in two: (a, -1, *kept)
            return f"{x_}.reshape({_shape_text((dst[0], -1, *dst[2:]))})"
    return f"{x_}.reshape({_shape_text(dst)})"


defop(
    "reshape",
    view=True,
    fold=False,  # a view of a constant, not a copy of its data in the code
    numpy=(np.reshape,),
    front=_reshape_front,
    examples=(
        ("x: f64[2,3]", "np.reshape(x, (3, 2))"),
        ("x: f64[2,3]", "x.reshape(-1)"),
        ("x: f64[3]", "np.expand_dims(x, 0) * np.expand_dims(x, -1)"),
        ("x: f64[2,1,3]", "np.squeeze(x) + x.squeeze(axis=1)[0]"),
        ("x: f64[1,1]", "np.squeeze(x, axis=(0, 1))"),
        ("x: f64[2,3]", "np.ravel(x)[::2] + x.flatten()[1::2]"),
        ("x: f64[3,1]", "x.ravel()"),
        ("x: f64[]", "np.atleast_1d(x) * np.atleast_2d(x)"),
        ("x: f64[3], y: f64[2,1]", "np.atleast_3d(x)[0, :, 0] + np.atleast_2d(y)[:, 0].sum()"),
    ),
    eval=lambda x, shape: np.reshape(x, shape),
    shape=lambda shapes, shape: tuple(shape),
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=lambda g, out, x, shape: (apply("reshape", g, shape=x.shape),),
    py=lambda args, node: Expr(_reshape_text(args[0], node.inputs[0].shape, node.shape), ATOM),
    gate="reshape gate: reshapes back",
    simplify=_simplify_reshape,
)
NUMPY[np.expand_dims] = _like_numpy(np.expand_dims)
NUMPY[np.squeeze] = _like_numpy(np.squeeze)
NUMPY[np.ravel] = _like_numpy(np.ravel)
NUMPY[np.atleast_1d] = _atleast_front(np.atleast_1d)
NUMPY[np.atleast_2d] = _atleast_front(np.atleast_2d)
NUMPY[np.atleast_3d] = _atleast_front(np.atleast_3d)


# ---- broadcast_to ----


def _simplify_broadcast(x, shape):
    if tuple(shape) == x.shape:
        return x
    return None


def _broadcast_front(args, kwargs, graph):
    x, *rest = args
    shape = kwargs.pop("shape", rest[0] if rest else None)
    _no_extras(kwargs, "subok")
    x = _node(x, graph)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    return graph.apply("broadcast_to", x, shape=np.broadcast_to(_probe(x.shape), shape).shape)


defop(
    "broadcast_to",
    view=True,
    fold=False,  # a broadcast constant stays a scalar until something needs it wide
    numpy=(np.broadcast_to,),
    front=_broadcast_front,
    examples=(
        ("x: f64[3]", "np.broadcast_to(x, (2, 3))"),
        ("x: f64[2,1]", "np.broadcast_to(x, (4, 2, 3)) * np.arange(3.0)"),
        ("x: f64[]", "np.broadcast_to(x, 3)"),
    ),
    eval=lambda x, shape: np.broadcast_to(x, shape),
    shape=lambda shapes, shape: tuple(shape),
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=lambda g, out, x, shape: (g,),  # autodiff sums over the broadcast axes
    py=lambda args, node: Expr(f"np.broadcast_to({args[0].text}, {_shape_text(node.shape)})", ATOM),
    gate="broadcast gate: sums back",
    simplify=_simplify_broadcast,
)


# ---- widen: a broadcast written out, for operands broadcast many times ----


def _widen_py(target, args, node):
    """`x_wide = np.empty(like.shape)`, `x_wide[...] = x`: the size comes from `like`, an
    array of the wide shape, so the code holds at any size of a named dim."""
    like = wrap(args[1], ATOM)
    return [
        f"{target} = np.empty({like}.shape{dtype_kw(node.dtype)})",
        f"{target}[...] = {args[0].text}",
    ]


defop(
    "widen",  # widen(x, like): x broadcast to like's shape, as a new array
    internal=True,  # made by the widen pass, never traced
    fresh=True,
    fold=False,
    eval=lambda x, like: np.broadcast_to(x, like.shape).copy(),
    shape=lambda shapes: tuple(shapes[1]),
    dtype=lambda dtypes: dtypes[0],
    vjp=lambda g, out, x, like: (g, None),  # autodiff sums over the broadcast axes
    py=None,
    py_stmts=_widen_py,
    gate="broadcast gate: sums back",
)


# ---- concatenate / stack, and what lowers onto them ----


def _parts(arrays: Any, graph) -> list:
    if hasattr(arrays, "graph") or isinstance(arrays, np.ndarray):
        # numpy iterates an array along its first axis
        x = _node(arrays, graph)
        return [graph.apply("index", x, key=(i,)) for i in range(x.shape[0])]
    return [_node(a, graph) for a in arrays]


def _axis(axis: Any, ndim: int) -> int:
    axis = operator.index(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of bounds for {ndim} dimensions")
    return axis % ndim


def _concatenate_front(args, kwargs, graph):
    arrays, *rest = args
    axis = kwargs.pop("axis", rest[0] if rest else 0)
    _no_extras(kwargs, "casting")
    xs = _parts(arrays, graph)
    if axis is None:  # numpy flattens first
        xs, axis = [_reshaped(graph, x, (x.size,)) for x in xs], 0
    if any(x.ndim == 0 for x in xs):
        raise ValueError("zero-dimensional arrays cannot be concatenated (use np.stack)")
    axis = _axis(axis, xs[0].ndim)
    np.concatenate([_probe(x.shape) for x in xs], axis=axis)  # numpy checks the shapes
    return xs[0] if len(xs) == 1 else graph.apply("concatenate", *xs, axis=axis)


def _concatenate_vjp(g, out, *xs, axis):
    """Each input gets its slice of g along the axis."""
    before = (("slice", None, None, None),) * axis
    cuts, start = [], 0
    for x in xs:
        stop = start + x.shape[axis]
        cuts.append(apply("index", g, key=before + (("slice", start or None, stop, None),)))
        start = stop
    return tuple(cuts)


def _list_call(fn: str, args: list[Expr], axis: int) -> Expr:
    listed = f"[{', '.join(a.text for a in args)}]"
    return Expr(f"{fn}({listed}{f', axis={axis}' if axis else ''})", ATOM)


defop(
    "concatenate",
    numpy=(np.concatenate,),
    front=_concatenate_front,
    examples=(
        ("x: f64[2], y: f64[3]", "np.concatenate([x, y, x])"),
        ("x: f64[2,1], y: f64[2,3]", "np.concatenate((x, y), axis=-1)"),
        ("x: f64[1,3], y: f64[2,3]", "np.concatenate([y, x * 2.0], axis=0)"),
        ("x: f64[2,2], y: f64[3]", "np.concatenate([x, y], axis=None)"),
        ("x: f64[2], y: f64[3]", "np.hstack([x, y, 1.0])"),
        ("x: f64[2,1], y: f64[2,2]", "np.hstack((x, y))[:, 1:] + np.vstack([y, x.T])[1:]"),
    ),
    eval=lambda *xs, axis: np.concatenate(xs, axis=axis),
    shape=lambda shapes, axis: np.concatenate([_probe(s) for s in shapes], axis=axis).shape,
    vjp=_concatenate_vjp,
    py=lambda args, node: _list_call("np.concatenate", args, node.attrs["axis"]),
    gate="concatenate gate: slices back",
    gathers=True,
)


def _hstack_front(args, kwargs, graph):
    _no_extras(kwargs, "casting")
    xs = [x if x.ndim else _reshaped(graph, x, (1,)) for x in _parts(args[0], graph)]
    return _concatenate_front(([*xs],), {"axis": 0 if xs[0].ndim == 1 else 1}, graph)


def _vstack_front(args, kwargs, graph):
    _no_extras(kwargs, "casting")
    xs = [_reshaped(graph, x, np.atleast_2d(_probe(x.shape)).shape) for x in _parts(args[0], graph)]
    return _concatenate_front((xs,), {"axis": 0}, graph)


NUMPY[np.hstack] = _hstack_front
NUMPY[np.vstack] = _vstack_front


def _stack_front(args, kwargs, graph):
    arrays, *rest = args
    axis = kwargs.pop("axis", rest[0] if rest else 0)
    _no_extras(kwargs, "casting")
    xs = _parts(arrays, graph)
    if not xs:
        raise ValueError("need at least one array to stack")
    if len({x.shape for x in xs}) != 1:
        raise ValueError(
            f"all input arrays must have the same shape: {[list(x.shape) for x in xs]}"
        )
    axis = _axis(axis, xs[0].ndim + 1)
    if xs[0].ndim == 0:  # scalars into a vector: np.array([a, b, c])
        return graph.apply("pack", *xs, shape=(len(xs),))
    return graph.apply("stack", *xs, axis=axis)


def _stack_vjp(g, out, *xs, axis):
    before = (("slice", None, None, None),) * axis
    return tuple(apply("index", g, key=before + (i,)) for i in range(len(xs)))


defop(
    "stack",
    numpy=(np.stack,),
    front=_stack_front,
    examples=(
        ("x: f64[3], y: f64[3]", "np.stack([x, y * x, y])"),
        ("x: f64[2,1], y: f64[2,1]", "np.stack((x, y), axis=1)"),
        ("x: f64[2,3], y: f64[2,3]", "np.stack([x, y], axis=-1)"),
        ("x: f64[2,3]", "np.stack(x)"),
    ),
    eval=lambda *xs, axis: np.stack(xs, axis=axis),
    shape=lambda shapes, axis: np.stack([_probe(s) for s in shapes], axis=axis).shape,
    vjp=_stack_vjp,
    py=lambda args, node: _list_call("np.stack", args, node.attrs["axis"]),
    gate="stack gate: unstacks",
    gathers=True,
)


# ---- indexing ----


def normalize_key(key: Any) -> tuple[tuple, list[np.ndarray]]:
    """A numpy key as (hashable key, integer index arrays); TypeError on what cannot index.

    A constant boolean mask becomes its `nonzero()` arrays, which is what numpy does.
    The caller validates the key against the shape (by indexing with it).
    """
    if not isinstance(key, tuple):
        key = (key,)
    out: list = []
    arrays: list[np.ndarray] = []
    for k in key:
        if k is None or k is Ellipsis:
            out.append(k)
        elif isinstance(k, slice):
            bounds = (None if v is None else operator.index(v) for v in (k.start, k.stop, k.step))
            out.append(("slice", *bounds))
        elif isinstance(k, (bool, np.bool_)):
            raise TypeError("a bool index is not supported; use an integer or a slice")
        elif isinstance(k, (int, np.integer)):
            out.append(int(k))
        elif isinstance(k, (list, tuple, np.ndarray)):
            a = np.asarray(k)
            if a.size == 0 and a.dtype != bool:
                a = a.astype(np.intp)  # numpy reads an empty list as an empty integer index
            if a.dtype == bool:
                if a.ndim == 0:
                    raise TypeError("a bool index is not supported; use an integer or a slice")
                for nz in a.nonzero():
                    out.append((ARR, len(arrays)))
                    arrays.append(nz.astype(np.int64))
            elif not np.issubdtype(a.dtype, np.integer):
                raise TypeError(f"index arrays must hold integers, not {a.dtype}")
            elif a.ndim == 0:
                out.append(int(a))
            else:
                out.append((ARR, len(arrays)))
                arrays.append(a.astype(np.int64))
        else:
            raise TypeError(
                f"index {k!r} is not supported (ints, slices, None, ..., and integer arrays are)"
            )
    return tuple(out), arrays


def nonnegative(key: tuple, shape: tuple) -> tuple:
    """`key` with its negative ints counted from the start of their axes (x[-1] is x[2])."""
    consuming = sum(1 for k in key if k is not None and k is not Ellipsis)
    out, axis = [], 0
    for k in key:
        if k is Ellipsis:
            axis += len(shape) - consuming
        elif k is not None:
            if isinstance(k, int) and k < 0:
                k += shape[axis]
            axis += 1
        out.append(k)
    return tuple(out)


def real_key(key: tuple, arrays: Sequence[Any] = ()) -> tuple:
    """The numpy key of a normalized key, with `arrays` in place of its array entries."""

    def one(k):
        if isinstance(k, tuple):
            return slice(*k[1:]) if k[0] == "slice" else arrays[k[1]]
        return k

    return tuple(one(k) for k in key)


def key_text(key: tuple, arrays: Sequence[str] = ()) -> str:
    """The key as subscript text, `arrays` the texts of the index arrays."""

    def one(k):
        if k is None:
            return "None"
        if k is Ellipsis:
            return "..."
        if isinstance(k, tuple) and k[0] == ARR:
            return arrays[k[1]]
        if isinstance(k, tuple):
            start, stop, step = (("" if v is None else str(v)) for v in k[1:])
            return f"{start}:{stop}" + (f":{step}" if step else "")
        return str(k)

    return ", ".join(one(k) for k in key) if key else "()"


def _slot_text(key: tuple, arrays: Sequence[str]) -> str:
    """The key as an argument (np.add.at's): plain when it has no slices, else np.s_[...]."""
    if len(key) == 1 and isinstance(key[0], (int, tuple)) and not _is_slice(key[0]):
        return key_text(key, arrays)
    if all(isinstance(k, int) or (isinstance(k, tuple) and k[0] == ARR) for k in key):
        return f"({key_text(key, arrays)}{',' if len(key) == 1 else ''})"
    return f"np.s_[{key_text(key, arrays)}]"


def _is_slice(k) -> bool:
    return isinstance(k, tuple) and k[0] == "slice"


def _zero_arrays(shapes: Sequence[tuple]) -> list[np.ndarray]:
    return [np.zeros(s, dtype=np.intp) for s in shapes]


def indexed_shape(shape: tuple, key: tuple, array_shapes: Sequence[tuple] = ()) -> tuple:
    if len(key) <= len(shape) and all(type(k) is int for k in key):
        return tuple(shape[len(key) :])  # x[i] or x[i, j]: the rest of the axes, no numpy call
    return _probe(shape)[real_key(key, _zero_arrays(array_shapes))].shape


def _values(nodes) -> list[np.ndarray] | None:
    """The index arrays' values (they are constants), or None if one is not."""
    if any(n.op != "const" for n in nodes):
        return None
    return [n.value for n in nodes]


def writes_each_once(shape: tuple, key: tuple, arrays: Sequence[np.ndarray]) -> bool:
    """Whether `x[key]` reads each element of x at most once (no repeated index)."""
    if not any(isinstance(k, tuple) and k[0] == ARR for k in key):
        return True  # basic indexing never repeats an element
    positions = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)[real_key(key, arrays)]
    return np.unique(positions).size == positions.size


def key_of_positions(positions: np.ndarray, shape: tuple) -> tuple[tuple, list[np.ndarray]]:
    """A key on an array of `shape` selecting exactly the flat `positions`, in their shape.

    Ints, slices and None when such a key exists (a write through a view, `row[1:] = v`
    with `row = x[2]`, reads `x[2, 1:] = v`); else one integer array per axis.
    """
    coords = np.unravel_index(positions, shape)
    if positions.ndim == 0:
        return tuple(int(c) for c in coords), []
    if positions.size:
        key = _basic_key(coords, positions.shape, shape)
        probe = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
        if key is not None and np.array_equal(probe[real_key(key)], positions):
            return key, []
    return tuple((ARR, a) for a in range(len(shape))), [c.astype(np.int64) for c in coords]


def _basic_key(coords: tuple, wshape: tuple, shape: tuple) -> tuple | None:
    """A guess at a basic key from per-axis coordinates; the caller verifies it."""
    varying = [
        [j for j in range(len(wshape)) if wshape[j] > 1 and np.any(np.diff(c, axis=j))]
        for c in coords
    ]
    key: list = []
    j = 0  # the next axis of the result to account for
    for a, c in enumerate(coords):
        v = varying[a]
        if len(v) > 1:
            return None
        while v and v[0] > j and wshape[j] == 1:  # a new axis of length 1
            key.append(None)
            j += 1
        later = sum(1 for w in varying[a + 1 :] if w)
        if v:
            if v[0] != j:  # axes out of order (a transpose): not a basic key
                return None
            seq = np.moveaxis(c, j, 0).reshape(wshape[j], -1)[:, 0]
            start, step = int(seq[0]), int(seq[1] - seq[0])
            stop = start + step * len(seq)
            stop = None if stop < 0 or (step > 0 and stop >= shape[a]) else stop
            key.append(
                ("slice", start if start or step < 0 else None, stop, None if step == 1 else step)
            )
            j += 1
        elif j < len(wshape) and wshape[j] == 1 and len(wshape) - j > later:
            key.append(("slice", int(c.flat[0]), int(c.flat[0]) + 1, None))  # kept as length 1
            j += 1
        else:
            key.append(int(c.flat[0]))
    while j < len(wshape) and wshape[j] == 1:
        key.append(None)
        j += 1
    while key and key[-1] == ("slice", None, None, None):  # x[2, :] is x[2]
        key.pop()
    return tuple(key) if j == len(wshape) else None


def _index_vjp(g, out, x, *arrays, key):
    if not arrays and all(
        k is None or k is Ellipsis or k == ("slice", None, None, None) for k in key
    ):
        # only new axes and whole axes (x[:, None]): read g back with the new axes dropped,
        # no zeros of a concrete shape, so named dims stay symbolic
        back = tuple(0 if k is None else k for k in key)
        return (apply("index", g, key=back),)
    return (apply("scatter", g, *arrays, key=key, shape=x.shape),) + (None,) * len(arrays)


def _index_py(args, node):
    if node.inputs[0].ndim == 0:  # x may be a Python float: only new axes can index it
        return (
            Expr(f"np.reshape({args[0].text}, {_shape_text(node.shape)})", ATOM)
            if node.shape
            else args[0]
        )
    key = key_text(node.attrs["key"], [a.text for a in args[1:]])
    return Expr(f"{wrap(args[0], ATOM)}[{key}]", ATOM)


defop(
    "index",
    view=True,
    fold=False,  # XS[t] of a module constant stays a view of it, not a copy in the code
    examples=(
        ("x: f64[4]", "x[1] * x[2]"),
        ("x: f64[3,4]", "x[1:, ::2]"),
        ("x: f64[3,4]", "x[-1, None, ...]"),
        ("x: f64[5]", "x[::-2] + x[-3:]"),
        ("x: f64[4]", "x[[0, 2, 2, -1]]"),
        ("x: f64[3,4]", "x[[0, 2], 1:] * x[np.array([1, 1]), 2::-1]"),
        ("x: f64[3,4]", "x[[[0, 1], [2, 2]], [[3, 3], [0, 1]]]"),
        ("x: f64[3,4,2]", "x[:, [1, 1, 3], [0, 1, 1]]"),
        ("x: f64[3,4,2]", "x[[0, 2], :, [1, 1]]"),
        ("x: f64[2,3]", "x[np.array([[True, False, True], [False, True, True]])]"),
        ("x: f64[1,3]", "x[0, [2, 0]] + x[..., 1]"),
        ("x: f64[3]", "x[np.newaxis, :, None][0, [1, 1]]"),
    ),
    eval=lambda x, *arrays, key: x[real_key(key, arrays)],
    shape=lambda shapes, key: indexed_shape(shapes[0], key, shapes[1:]),
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=_index_vjp,
    py=_index_py,
    gate="index gate: scatters back",
)


def _scatter_eval(g, *arrays, key, shape):
    out = np.zeros(shape, dtype=np.result_type(g, np.float32))
    np.add.at(out, real_key(key, arrays), g)  # repeated indices add up
    return out


def _zeros_text(node) -> str:
    dtype = ", dtype=np.float32" if node.dtype == "f32" else ""
    return f"np.zeros({_shape_text(node.shape)}{dtype})"


def _scatter_py(target, args, node):
    key = node.attrs["key"]
    arrays = [a.text for a in args[1:]]
    values = _values(node.inputs[1:])
    first = f"{target} = {_zeros_text(node)}"
    if values is not None and writes_each_once(node.shape, key, values):
        return [first, f"{target}[{key_text(key, arrays)}] = {args[0].text}"]
    # repeated indices: `t[idx] += g` would add only once per index; np.add.at adds each
    return [first, f"np.add.at({target}, {_slot_text(key, arrays)}, {args[0].text})"]


defop(
    "scatter",
    internal=True,
    eval=_scatter_eval,
    shape=lambda shapes, key, shape: tuple(shape),
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=lambda g, out, x, *arrays, key, shape: (apply("index", g, *arrays, key=key),)
    + (None,) * len(arrays),
    py=None,
    py_stmts=_scatter_py,
    gate="index gate: scatters back",
)


# ---- multi_scatter: many scatters into one array, the copy gate of many reads ----


def scatter_parts(inputs: Sequence[Any], keys: tuple) -> list[tuple[Any, tuple, tuple]]:
    """A multi_scatter's inputs as (value, index arrays, key) per part: the values come
    first, one per key, then each part's index arrays in turn, numbered from 0 in its key."""
    values, arrays = inputs[: len(keys)], inputs[len(keys) :]
    if not arrays:  # (ints and slices only: the common case, thousands of parts)
        return [(value, (), key) for value, key in zip(values, keys)]
    parts, at = [], 0
    for value, key in zip(values, keys):
        n = sum(1 for k in key if isinstance(k, tuple) and k[0] == ARR)
        parts.append((value, tuple(arrays[at : at + n]), key))
        at += n
    return parts


def _multi_scatter_eval(*inputs, keys, shape):
    out = np.zeros(shape, dtype=np.result_type(inputs[0], np.float32))
    for value, arrays, key in scatter_parts(inputs, keys):
        np.add.at(out, real_key(key, arrays), value)  # repeated indices add up
    return out


def _multi_scatter_vjp(g, out, *inputs, keys, shape):
    """Each part reads its own slots back."""
    parts = scatter_parts(inputs, keys)
    grads = tuple(apply("index", g, *arrays, key=key) for _, arrays, key in parts)
    return grads + (None,) * (len(inputs) - len(keys))


class ScatterWrites:
    """The lines writing a multi_scatter's parts into its array, made zeros first: a part
    whose elements no earlier line set is assigned (`g_x[3] = v`), one over elements set
    before is added (`g_x[2:4] += v`), and one whose own key repeats an element adds at
    each (`np.add.at`), as its sum does. Lines are asked for in the order they run."""

    def __init__(self, node):
        self.node = node
        self.parts = scatter_parts(node.inputs, node.attrs["keys"])
        self.positions = None  # the flat position of each element, made on first use
        self.seen = np.zeros(node.size, dtype=bool)  # elements set so far

    @property
    def zeros(self) -> str:
        """The array before any part is written."""
        return _zeros_text(self.node)

    def line(self, target: str, k: int, value: str, arrays: Sequence[str]) -> str:
        """The line adding part `k`, whose value reads `value` and index arrays `arrays`."""
        _, array_nodes, key = self.parts[k]
        written = self._written(array_nodes, key)
        if written is None:  # (index arrays that are not constants) anything may be set
            written = slice(None)
            repeats = True
        else:
            repeats = not isinstance(written, slice) and np.unique(written).size < written.size
        if not isinstance(written, slice) and written.size == 1:  # (most parts: g_x[i] = v)
            at = int(written.reshape(-1)[0])
            first = not self.seen[at]
            self.seen[at] = True
        else:
            first = not self.seen[written].any()
            self.seen[written] = True
        if repeats:
            return f"np.add.at({target}, {_slot_text(key, arrays)}, {value})"
        return f"{target}[{key_text(key, arrays)}] {'=' if first else '+='} {value}"

    def _written(self, array_nodes: tuple, key: tuple) -> np.ndarray | slice | None:
        """The flat positions a part writes (repeats included), or None if unknown."""
        shape = self.node.shape
        if len(key) == len(shape) and all(type(k) is int for k in key):
            position = 0  # one element, the common case: worked out without numpy
            for k, d in zip(key, shape):
                position = position * d + k % d
            return slice(position, position + 1)
        values = _values(array_nodes)
        if values is None:
            return None
        if self.positions is None:
            self.positions = np.arange(self.node.size, dtype=np.int64).reshape(shape)
        return np.asarray(self.positions[real_key(key, values)]).reshape(-1)


def _multi_scatter_py(target, args, node):
    """Every part at once. (The walker writes each part where its value is made instead.)"""
    writes = ScatterWrites(node)
    texts = [a.text for a in args]
    lines = [f"{target} = {writes.zeros}"]
    at = len(writes.parts)  # the texts of the index arrays follow the values
    for k, (_, arrays, _) in enumerate(writes.parts):
        lines.append(writes.line(target, k, texts[k], texts[at : at + len(arrays)]))
        at += len(arrays)
    return lines


def _multi_scatter_shape(shapes, keys, shape):
    if len(shapes) < len(keys):
        raise ValueError(f"multi_scatter has {len(shapes)} inputs for {len(keys)} keys")
    return tuple(shape)


defop(
    "multi_scatter",  # multi_scatter(*values, *index arrays; keys, shape): sum of scatters
    internal=True,  # made by autodiff, where many reads of one array meet, never traced
    eval=_multi_scatter_eval,
    shape=_multi_scatter_shape,
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=_multi_scatter_vjp,
    py=None,
    py_stmts=_multi_scatter_py,
    gate="index gate: scatters back",
    fresh=True,
)


# ---- index_update: x[key] = v as a value (the tracer's setitem) ----


def _index_update_eval(x, v, *arrays, key):
    out = np.array(x, copy=True)
    out[real_key(key, arrays)] = v
    return out


def _index_update_vjp(g, out, x, v, *arrays, key):
    """x gets g except where it was overwritten; v gets g there (summed where broadcast)."""
    return (
        apply("index_update", g, 0.0, *arrays, key=key),
        apply("index", g, *arrays, key=key),
    ) + (None,) * len(arrays)


def _index_update_py(target, args, node):
    x = args[0].text
    # np.zeros(...) and the like are new arrays already; anything else is copied, not mutated
    fresh = node.inputs[0].op == "const" and x.startswith(("np.zeros(", "np.ones(", "np.full("))
    key = key_text(node.attrs["key"], [a.text for a in args[2:]])
    return [f"{target} = {x if fresh else x + '.copy()'}", f"{target}[{key}] = {args[1].text}"]


def _covers(shape: tuple, key: tuple) -> bool:
    """Whether x[key] is all of x, in order (x[...] or x[:, :])."""
    return all(k is Ellipsis or k == ("slice", None, None, None) for k in key)


def _simplify_index_update(x, v, *arrays, key):
    if x.dtype != v.dtype:
        return None  # the assignment casts: keep it
    if _covers(x.shape, key) and v.ndim <= x.ndim:  # x[...] = v is a broadcast of v
        return apply("broadcast_to", v, shape=x.shape)
    full = len(key) == x.ndim and all(isinstance(k, int) for k in key)
    if full and v.shape == () and x.op in ("const", "pack") and 1 < x.size <= 64:
        # filling a small array element by element: one np.array([...]) of the elements
        if x.op == "const":
            elements = [x.graph.const(e, x.dtype) for e in x.value.reshape(-1)]
        else:
            elements = list(x.inputs)
        elements[int(np.ravel_multi_index(key, x.shape))] = v
        return apply("pack", *elements, shape=x.shape)
    return None


defop(
    "index_update",
    # x[key] = v is a statement: examples use `(t := x).__setitem__(key, v) or t`
    examples=(
        ("x: f64[3], y: f64[]", "(t := x.copy()).__setitem__(1, y * y) or t"),
        ("x: f64[2,3], y: f64[2]", "(t := x.copy()).__setitem__((slice(None), [2, 0]), y) or t"),
        ("x: f64[4,2], y: f64[2]", "(t := x * 2.0).__setitem__(np.s_[1::2], y) or t * t"),
        ("x: f64[2,1,3], y: f64[1]", "(t := np.sin(x)).__setitem__((0, ..., [1]), y) or t"),
    ),
    eval=_index_update_eval,
    shape=lambda shapes, key: shapes[0],
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=_index_update_vjp,
    py=None,
    py_stmts=_index_update_py,
    gate="assignment gate: routes around the overwritten part",
    simplify=_simplify_index_update,
)


# ---- pack: scalars into an array, the gradient of reading every element ----


def _pack_eval(*xs, shape):
    return np.array(xs).reshape(shape)


def _pack_py(args, node):
    items = ", ".join(a.text for a in args)
    if len(args) >= 16:  # from about 16 scalars np.fromiter reads them faster than np.array
        text = f"np.fromiter(({items},), np.float{32 if node.dtype == 'f32' else 64}, {len(args)})"
    else:
        text = f"np.array([{items}]{dtype_kw(node.dtype)})"
    if len(node.shape) != 1:
        text = f"{text}.reshape({_shape_text(node.shape)})"
    return Expr(text, ATOM)


def _pack_vjp(g, out, *xs, shape):
    return tuple(
        apply("index", g, key=tuple(int(i) for i in np.unravel_index(k, shape)))
        for k in range(len(xs))
    )


defop(
    "pack",
    internal=True,
    eval=_pack_eval,
    shape=lambda shapes, shape: tuple(shape),
    dtype=lambda dtypes, **a: "f32" if set(dtypes) == {"f32"} else "f64",
    vjp=_pack_vjp,
    py=_pack_py,
    gate="pack gate: unpacks",
    gathers=True,
)


# ---- split: slices along an axis ----


def _split_front(even: bool):
    def front(args, kwargs, graph):
        x, *rest = args
        sections = kwargs.pop("indices_or_sections", rest[0] if rest else None)
        axis = kwargs.pop("axis", rest[1] if len(rest) > 1 else 0)
        _no_extras(kwargs)
        x = _node(x, graph)
        axis = _axis(axis, x.ndim)
        n = x.shape[axis]
        if isinstance(sections, (int, np.integer)):
            sections = operator.index(sections)
            if sections <= 0:
                raise ValueError("number sections must be larger than 0")
            if even and n % sections:
                raise ValueError("array split does not result in an equal division")
            each, extra = divmod(n, sections)
            sizes = [each + 1] * extra + [each] * (sections - extra)
            bounds = np.cumsum([0] + sizes).tolist()
        else:
            bounds = [0] + [operator.index(i) for i in sections] + [n]
        before = (("slice", None, None, None),) * axis
        parts = []
        for start, stop in zip(bounds[:-1], bounds[1:]):
            key = before + (("slice", start or None, None if stop == n else stop, None),)
            parts.append(graph.apply("index", x, key=key))
        return parts

    return front


NUMPY[np.split] = _split_front(even=True)
NUMPY[np.array_split] = _split_front(even=False)

__all__ = [
    "ARR",
    "indexed_shape",
    "key_of_positions",
    "key_text",
    "nonnegative",
    "normalize_key",
    "real_key",
]
