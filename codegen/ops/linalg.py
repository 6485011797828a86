"""Linear algebra: three primitives, `matmul`, `outer` and `transpose`, and the numpy
functions lowered onto them at trace time.

- `matmul` has numpy's semantics, 1-D operands and batch broadcasting included, so the
  emitted code reads `x @ w` where the user wrote it. Its VJP is matmuls with transposes;
  where the contracted length of a gradient product is 1 it is a broadcasting multiply (or
  `np.outer` for vectors), which is far faster than a matmul with an inner dimension of 1.
- `outer` is np.outer of two vectors: the weight gradient of a matrix-vector product.
- `transpose` permutes axes: np.transpose, .T, np.swapaxes, np.moveaxis, np.matrix_transpose.

np.dot, np.inner, np.tensordot, np.vecdot and np.einsum (explicit or implicit subscripts;
`einsum.py` first rewrites `...`, sublists and repeated subscripts) lower exactly to these plus reshape,
sum and mul: an operand's axes are permuted into (batch, free, contracted) order and merged
by reshapes, so each contraction is one matmul, and every lowering step is skipped when it
would do nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..emit import c_expr as C
from ..emit.expr import ATOM, MUL, Expr, binop, call, wrap
from . import NUMPY, apply, defop
from .reduce import normalize_axis

# ---- small IR builders that skip work that would do nothing ----


def _reshape(x, shape: tuple):
    shape = tuple(int(d) for d in shape)
    return x if x.shape == shape else apply("reshape", x, shape=shape)


def _transpose(x, axes: tuple):
    axes = tuple(int(a) for a in axes)
    if x.op == "transpose":  # a permutation of a permutation is one permutation
        x, axes = x.inputs[0], tuple(x.attrs["axes"][a] for a in axes)
    return x if axes == tuple(range(x.ndim)) else apply("transpose", x, axes=axes)


def _swap_last(x):
    """The matrix transpose of each matrix in a stack (the last two axes swapped)."""
    axes = list(range(x.ndim))
    axes[-2:] = axes[-1], axes[-2]
    return _transpose(x, tuple(axes))


def _matmul(a, b):
    """a @ b for a, b of at least 2 dimensions; an inner length of 1 is a broadcasting multiply."""
    if a.shape[-1] == 1:
        return a * b  # (..., m, 1) * (..., 1, k): the same products, no BLAS call
    return apply("matmul", a, b)


def _operand(x: Any, graph):
    """A front's argument as a node: arrays become constants, Python numbers weakly typed ones."""
    if hasattr(x, "graph"):
        return x
    if isinstance(x, (bool, int, float)):
        return graph.const(float(x), graph.float_dtype)
    return graph.const(np.asarray(x, dtype=np.float64))


def _no_kwargs(kwargs: dict, *allowed: str) -> None:
    """Only numpy's defaults are traced for the keyword arguments not `allowed`."""
    for k, v in kwargs.items():
        if k not in allowed and v is not None:
            raise TypeError(f"the argument {k}= is not supported")


# ---- transpose ----


def _check_perm(axes: tuple, ndim: int) -> tuple[int, ...]:
    if len(axes) != ndim:
        raise ValueError(f"axes {axes} do not match an array of {ndim} dimensions")
    perm = tuple(int(a) % ndim if -ndim <= int(a) < ndim else ndim for a in axes)
    if sorted(perm) != list(range(ndim)):
        raise ValueError(f"axes {axes} are not a permutation of the {ndim} dimensions")
    return perm


def _transpose_py(args: list[Expr], node) -> Expr:
    """`x.T` for a matrix, `x.swapaxes` for a swap of two axes, else `x.transpose`: the
    array's methods, which skip the dispatch of np.transpose and np.swapaxes."""
    axes = node.attrs["axes"]
    n = len(axes)
    if n == 0:  # a 0-d input may be a Python float, which has no methods
        return Expr(f"np.transpose({args[0].text})", ATOM)
    x = wrap(args[0], ATOM)
    if n == 2:
        return Expr(f"{x}.T", ATOM)
    if _is_swap_last(axes):  # the matrix transpose of a stack of matrices
        return Expr(f"{x}.swapaxes(-1, -2)", ATOM)
    moved = [i for i in range(n) if axes[i] != i]
    if len(moved) == 2:
        return Expr(f"{x}.swapaxes({moved[0]}, {moved[1]})", ATOM)
    return Expr(f"{x}.transpose({axes})", ATOM)


def _simplify_transpose(x, axes):
    if tuple(axes) == tuple(range(x.ndim)) or x.op == "transpose":
        return _transpose(x, axes)  # the identity, or a permutation of a permutation
    return None


def _is_swap_last(axes: tuple) -> bool:
    """Whether the permutation `axes` swaps the last two axes and nothing else."""
    n = len(axes)
    return n >= 2 and tuple(axes) == (*range(n - 2), n - 1, n - 2)


def _transpose_vjp(g, out, x, axes):
    """Permute back; a matmul made in backward is transposed by swapping its operands."""
    back = tuple(int(a) for a in np.argsort(axes))
    if _is_swap_last(back) and g.op == "matmul" and g.tag is not None:
        a, b = g.inputs
        if a.ndim > 1 and b.ndim > 1:  # (a @ b)^T = b^T @ a^T, which reads as one line
            return (apply("matmul", _swap_last(b), _swap_last(a)),)
    return (_transpose(g, back),)


def _transpose_front(args, kwargs, graph):
    x, *rest = args
    axes = kwargs.pop("axes", rest[0] if rest else None)
    x = _operand(x, graph)
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(axes)
    return _transpose(x, _check_perm(axes, x.ndim))


def _axes(v: Any, ndim: int) -> tuple[int, ...]:
    """An axis or axes as non-negative ints, in the order given."""
    axes = (v,) if isinstance(v, (int, np.integer)) else tuple(v)
    for a in axes:
        if not -ndim <= int(a) < ndim:
            raise ValueError(f"axis {a} is out of range for an array of {ndim} dimensions")
    return tuple(int(a) % ndim for a in axes)


def _swapaxes_front(args, kwargs, graph):
    x, a, b = (*args, *(kwargs[k] for k in ("axis1", "axis2") if k in kwargs))
    x = _operand(x, graph)
    (a, b), axes = _axes((a, b), x.ndim), list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return _transpose(x, tuple(axes))


def _moveaxis_front(args, kwargs, graph):
    x, source, destination = (*args, *(kwargs[k] for k in ("source", "destination") if k in kwargs))
    x = _operand(x, graph)
    source, destination = _axes(source, x.ndim), _axes(destination, x.ndim)
    if len(source) != len(destination):
        raise ValueError("source and destination need the same number of axes")
    order = [n for n in range(x.ndim) if n not in source]  # numpy's own construction
    for dest, src in sorted(zip(destination, source)):
        order.insert(dest, src)
    return _transpose(x, tuple(order))


def _matrix_transpose_front(args, kwargs, graph):
    x = _operand(args[0], graph)
    if x.ndim < 2:
        raise ValueError("matrix_transpose needs an array of at least 2 dimensions")
    return _swap_last(x)


def _optional(*names: str) -> tuple:
    """The numpy callables among `names` ("linalg.x" too) that this numpy has."""
    found = []
    for name in names:
        owner, _, attr = name.rpartition(".")
        fn = getattr(getattr(np, owner) if owner else np, attr, None)
        if fn is not None:
            found.append(fn)
    return tuple(found)


defop(
    "transpose",
    view=True,
    fold=False,  # a view of a constant, not a copy of its data in the code
    numpy=(np.transpose,),
    front=_transpose_front,
    examples=(
        ("x: f64[2,3], y: f64[3,2]", "x.T * y"),
        ("x: f64[2,3,4], y: f64[3,4,2]", "np.transpose(x, (1, -1, 0)) * y"),
        ("x: f64[2,1,3], y: f64[3,1,2]", "np.swapaxes(x, 0, -1) * y"),
        ("x: f64[2,3,4], y: f64[2,4,3]", "x.transpose(0, 2, 1) * y"),
    ),
    eval=lambda x, axes: np.transpose(x, axes),
    shape=lambda shapes, axes: tuple(shapes[0][a] for a in axes),
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=_transpose_vjp,
    py=_transpose_py,
    gate="transpose gate: permutes back",
    c=C.VIEW,
    simplify=_simplify_transpose,
    flops=lambda node: 0,  # numpy returns a view
)


# ---- matmul and outer ----


def matmul_shape(shapes: list[tuple], **attrs: Any) -> tuple:
    """numpy's matmul shape: 1-D operands are promoted to matrices, then that axis is dropped."""
    a, b = shapes
    if not a or not b:
        raise ValueError("matmul of a scalar: use * to scale")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(f"the inner dimensions differ ({a2[-1]} and {b2[-2]})")
    shape = (*np.broadcast_shapes(a2[:-2], b2[:-2]), a2[-2], b2[-1])
    if len(b) == 1:
        shape = shape[:-1]
    if len(a) == 1:
        shape = (*shape[:-2], shape[-1]) if len(b) > 1 else shape[:-1]
    return tuple(shape)


def _matmul_vjp(g, out, x, y):
    """Each operand gets the upstream gradient times the other operand, transposed.

    Batch broadcasting is undone by autodiff, so cotangents may keep the batch axes (and a
    size-1 axis where numpy promoted a vector). Products with a contracted length of 1 are
    outer products: np.outer for vectors, a broadcasting multiply otherwise.
    """
    if x.ndim == 1 and y.ndim == 1:  # a dot product: each vector gets g times the other
        return g * y, g * x
    if x.ndim == 2 and y.ndim == 1:  # matrix @ vector
        return apply("outer", g, y), apply("matmul", g, x)
    if x.ndim == 1 and y.ndim == 2:  # vector @ matrix
        return apply("matmul", y, g), apply("outer", x, g)
    if x.ndim == 1:  # vector @ stack of matrices: g is (..., k), x's axis is promoted to rows
        n, (*batch, k) = x.shape[0], g.shape
        g_rows = _reshape(g, (*batch, 1, k))
        return _matmul(g_rows, _swap_last(y)), _reshape(x, (n, 1)) * g_rows
    if y.ndim == 1:  # stack of matrices @ vector: g is (..., m)
        *batch, m = g.shape
        return _reshape(g, (*batch, m, 1)) * y, _matmul(_reshape(g, (*batch, 1, m)), x)
    return _matmul(g, _swap_last(y)), _matmul(_swap_last(x), g)


def _matmul_front(args, kwargs, graph):
    _no_kwargs(kwargs)
    x, y = (_operand(a, graph) for a in args)
    return graph.apply("matmul", x, y)


defop(
    "matmul",
    numpy=(np.matmul, *_optional("linalg.matmul")),
    front=_matmul_front,
    fresh=True,
    examples=(
        ("x: f64[2,3], y: f64[3,4]", "np.matmul(x, y)"),
        ("x: f64[3], y: f64[3]", "np.matmul(x, y)"),
        ("x: f64[2,3], y: f64[3]", "np.matmul(x, y)"),
        ("x: f64[3], y: f64[3,2]", "np.matmul(x, y)"),
        ("x: f64[2,1,3,4], y: f64[5,4,2]", "np.matmul(x, y)"),
        ("x: f64[2,3,4], y: f64[4]", "np.matmul(x, y)"),
        ("x: f64[4], y: f64[2,4,3]", "np.matmul(x, y)"),
        ("x: f64[4,1], y: f64[1,3]", "np.matmul(x, y)"),
        ("x: f64[1,3], y: f64[3,1]", "np.matmul(x, y)"),
        ("x: f64[2,3], y: f64[3,4]", "x.dot(y)"),
    ),
    eval=np.matmul,
    shape=matmul_shape,
    vjp=_matmul_vjp,
    py=binop("@", MUL),
    gate="matmul gate: swaps, transposed",
    c=C.MATMUL,
    # a multiply and an add per product; the inner length is x's last axis either way
    flops=lambda node: 2 * max(node.size, 1) * node.inputs[0].shape[-1],
)


def _outer_front(args, kwargs, graph):
    _no_kwargs(kwargs)
    x, y = (_operand(a, graph) for a in args)  # np.outer flattens its operands
    return graph.apply("outer", _reshape(x, (x.size,)), _reshape(y, (y.size,)))


def _outer_shape(shapes: list[tuple], **attrs: Any) -> tuple:
    if any(len(s) != 1 for s in shapes):
        raise ValueError("outer takes two vectors")
    return (shapes[0][0], shapes[1][0])


defop(
    "outer",
    numpy=(np.outer,),
    front=_outer_front,
    examples=(
        ("x: f64[3], y: f64[4]", "np.outer(x, y)"),
        ("x: f64[2,2], y: f64[1]", "np.outer(x, y)"),
    ),
    eval=np.outer,
    shape=_outer_shape,
    vjp=lambda g, out, x, y: (apply("matmul", g, y), apply("matmul", x, g)),
    py=call("np.outer"),
    gate="outer gate: swaps, contracted",
    c=C.OUTER,
)


# ---- contractions lowered onto matmul: dot, inner, tensordot, vecdot, einsum ----


def _sizes(operands: list, subscripts: list[str]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for x, letters in zip(operands, subscripts):
        if len(letters) != x.ndim:
            raise ValueError(f"subscripts {letters!r} do not match an array of {x.ndim} dimensions")
        for letter, d in zip(letters, x.shape):
            if sizes.setdefault(letter, d) != d:
                raise ValueError(f"subscript {letter!r} has sizes {sizes[letter]} and {d}")
    return sizes


def _sum_out(x, letters: str, keep: str):
    """Sum `x` over its letters not in `keep`: (the sum, its letters)."""
    axes = tuple(i for i, l in enumerate(letters) if l not in keep)
    if not axes:
        return x, letters
    rest = "".join(l for l in letters if l in keep)
    return apply("sum", x, axis=axes, keepdims=False), rest


def _arrange(x, letters: str, order: str, size: dict[str, int], groups: list[str]):
    """`x` permuted into `order` (a permutation of its letters), each group merged to one axis."""
    x = _transpose(x, tuple(letters.index(l) for l in order))
    return _reshape(
        x, tuple(int(np.prod([size[l] for l in grp], dtype=np.int64)) for grp in groups)
    )


def _transposes(xs: str, ys: str, batch: str, out: str) -> int:
    """How many transposes `contract` makes with xs on the left of the matmul and ys on the right."""
    summed = "".join(l for l in xs if l in ys and l not in out)
    x_free = "".join(l for l in out if l in xs and l not in ys)
    y_free = "".join(l for l in out if l in ys and l not in xs)
    orders = [(xs, batch + x_free + summed), (ys, batch + summed + y_free)]
    orders.append((batch + x_free + y_free, out))
    return sum(have != want for have, want in orders)


def _spread(x, letters: str, order: str, size: dict[str, int]):
    """`x` permuted into the order of `order` with size-1 axes for the letters it lacks.

    Leading size-1 axes are left out: broadcasting adds them.
    """
    mine = "".join(l for l in order if l in letters)
    x = _transpose(x, tuple(letters.index(l) for l in mine))
    first = min(order.index(l) for l in mine) if mine else len(order)
    return _reshape(x, tuple(size[l] if l in letters else 1 for l in order[first:]))


def contract(x, xs: str, y, ys: str, out: str):
    """The einsum `xs,ys->out` of two nodes, as reshapes, transposes and one matmul (or mul).

    Letters are distinct within each of xs, ys and out, and every letter of out is in xs or ys.
    """
    size = _sizes([x, y], [xs, ys])
    x, xs = _sum_out(x, xs, ys + out)  # letters nobody else needs are summed first
    y, ys = _sum_out(y, ys, xs + out)
    batch = "".join(l for l in out if l in xs and l in ys)
    if _transposes(ys, xs, batch, out) < _transposes(xs, ys, batch, out):
        x, xs, y, ys = y, ys, x, xs  # the operand order that needs fewer transposes
    summed = "".join(l for l in xs if l in ys and l not in out)
    x_free = "".join(l for l in out if l in xs and l not in ys)
    y_free = "".join(l for l in out if l in ys and l not in xs)
    letters = batch + x_free + y_free
    if not summed:  # nothing to add up: a product, broadcasting
        if not batch and x_free and y_free:
            x_flat = _arrange(x, xs, x_free, size, [x_free])
            result = apply("outer", x_flat, _arrange(y, ys, y_free, size, [y_free]))
            result = _reshape(result, tuple(size[l] for l in letters))
        else:
            result = _spread(x, xs, letters, size) * _spread(y, ys, letters, size)
    elif not x_free and not y_free and (batch or x.ndim > 1 or y.ndim > 1):
        # every axis is shared: a multiply and a sum reads better than a matmul of reshapes
        order = batch + summed
        product = _arrange(x, xs, order, size, list(order)) * _arrange(
            y, ys, order, size, list(order)
        )
        axes = tuple(range(len(batch), len(order)))
        result = apply("sum", product, axis=axes, keepdims=False)
    else:
        # (batch..., I, C) @ (batch..., C, J); I and J are left out of vectors when unbatched
        x_groups = [*batch, *([x_free] if x_free or batch else []), summed]
        y_groups = [*batch, summed, *([y_free] if y_free or batch else [])]
        left = _arrange(x, xs, batch + x_free + summed, size, x_groups)
        right = _arrange(y, ys, batch + summed + y_free, size, y_groups)
        result = _reshape(apply("matmul", left, right), tuple(size[l] for l in letters))
    return _transpose(result, tuple(letters.index(l) for l in out))


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _dot_front(args, kwargs, graph):
    """np.dot: a product with a scalar, matmul where it agrees, else a contraction."""
    _no_kwargs(kwargs)
    x, y = (_operand(a, graph) for a in args)
    if x.ndim == 0 or y.ndim == 0:
        return x * y
    if x.ndim == 1 or y.ndim <= 2:  # here dot and matmul agree
        return graph.apply("matmul", x, y)
    # the last axis of x with the second-to-last of y; the other axes in order
    xs, ys = _LETTERS[: x.ndim], _LETTERS[x.ndim : x.ndim + y.ndim - 1]
    ys = ys[:-1] + xs[-1] + ys[-1]
    return contract(x, xs, y, ys, xs[:-1] + ys[:-2] + ys[-1])


def _inner_front(args, kwargs, graph):
    """np.inner: the last axes of both operands contracted."""
    _no_kwargs(kwargs)
    x, y = (_operand(a, graph) for a in args)
    if x.ndim == 0 or y.ndim == 0:
        return x * y
    if y.ndim == 1:
        return graph.apply("matmul", x, y)
    if x.ndim == 1:
        return graph.apply("matmul", y, x)
    xs, ys = _LETTERS[: x.ndim], _LETTERS[x.ndim : x.ndim + y.ndim - 1] + _LETTERS[x.ndim - 1]
    return contract(x, xs, y, ys, xs[:-1] + ys[:-1])


def _tensordot_front(args, kwargs, graph):
    """np.tensordot: pairs of axes contracted, the other axes of x then of y."""
    x, y, *rest = args
    axes = kwargs.pop("axes", rest[0] if rest else 2)
    x, y = _operand(x, graph), _operand(y, graph)
    if isinstance(axes, (int, np.integer)):
        x_axes, y_axes = tuple(range(x.ndim - int(axes), x.ndim)), tuple(range(int(axes)))
    else:
        x_axes, y_axes = (_axes(a, nd) for a, nd in zip(axes, (x.ndim, y.ndim)))
    if len(x_axes) != len(y_axes):
        raise ValueError("tensordot needs as many axes of x as of y")
    xs = _LETTERS[: x.ndim]
    ys = list(_LETTERS[x.ndim : x.ndim + y.ndim])
    for a, b in zip(x_axes, y_axes):
        ys[b] = xs[a]
    ys = "".join(ys)
    out = "".join(l for l in xs if l not in ys) + "".join(l for l in ys if l not in xs)
    return contract(x, xs, y, ys, out)


def _vecdot_front(args, kwargs, graph):
    """np.vecdot (real operands): a product summed over one axis, broadcasting the others."""
    x, y = (_operand(a, graph) for a in args[:2])
    axis = kwargs.pop("axis", -1)
    _no_kwargs(kwargs)
    if x.ndim == 1 and y.ndim == 1:
        return graph.apply("matmul", x, y)
    product = x * y
    return apply("sum", product, axis=normalize_axis(axis, product.ndim), keepdims=False)


def parse_einsum(subscripts: str, ndims: list[int]) -> tuple[list[str], str]:
    """The operands' letters and the output's, checked; implicit output as numpy forms it."""
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise TypeError("einsum with '...' is not supported: name every axis")
    inputs, arrow, out = spec.partition("->")
    operands = inputs.split(",")
    if len(operands) != len(ndims):
        raise ValueError(f"{subscripts!r} names {len(operands)} operands, {len(ndims)} given")
    letters = "".join(operands)
    if not all(l.isalpha() for l in letters + out):
        raise ValueError(f"subscripts {subscripts!r} may only hold letters, ',' and '->'")
    for s in operands:
        if len(set(s)) != len(s):
            raise TypeError(f"repeated subscripts in {s!r} (diagonals, traces) are not supported")
    if not arrow:  # implicit: the letters seen once, in alphabetical order
        out = "".join(sorted(l for l in set(letters) if letters.count(l) == 1))
    if len(set(out)) != len(out) or any(l not in letters for l in out):
        raise ValueError(f"output subscripts {out!r} must be distinct letters of the inputs")
    return operands, out


def _einsum_front(args, kwargs, graph):
    """np.einsum, reduced operand by operand: each step keeps the letters still needed."""
    if not isinstance(args[0], str):
        raise TypeError("einsum's sublist form is not supported: pass a subscripts string")
    _no_kwargs(kwargs, "optimize", "order", "casting")  # these do not change the values
    operands = [_operand(a, graph) for a in args[1:]]
    subscripts, out = parse_einsum(args[0], [x.ndim for x in operands])
    _sizes(operands, subscripts)
    x, xs = operands[0], subscripts[0]
    for k in range(1, len(operands)):
        later = "".join(subscripts[k + 1 :]) + out
        y, ys = operands[k], subscripts[k]
        keep = "".join(dict.fromkeys(l for l in xs + ys if l in later))
        x, xs = contract(x, xs, y, ys, keep), keep
    x, xs = _sum_out(x, xs, out)
    return _transpose(x, tuple(xs.index(l) for l in out))


for _fns, _front in [
    (("swapaxes", "linalg.swapaxes"), _swapaxes_front),
    (("moveaxis",), _moveaxis_front),
    (("matrix_transpose", "linalg.matrix_transpose"), _matrix_transpose_front),
    (("dot",), _dot_front),
    (("inner",), _inner_front),
    (("tensordot", "linalg.tensordot"), _tensordot_front),
    (("vecdot", "linalg.vecdot"), _vecdot_front),
    (("einsum",), _einsum_front),
]:
    for _fn in _optional(*_fns):
        NUMPY[_fn] = _front
