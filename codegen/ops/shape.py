"""Shape ops: reshape, broadcast_to, indexing and its transpose (scatter), pack.

Index keys are stored normalized and hashable: a tuple of ints, `("slice", start, stop,
step)` entries, `None` for a new axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..emit.expr import ATOM, Expr, wrap
from . import apply, defop, same_shape

# ---- reshape / broadcast_to ----


def _shape_text(shape: tuple) -> str:
    return f"({shape[0]},)" if len(shape) == 1 else f"({', '.join(map(str, shape))})"


def _simplify_reshape(x, shape):
    if tuple(shape) == x.shape:  # reshape to the same shape is the identity
        return x
    if x.op == "reshape":  # reshape(reshape(x)) = reshape(x)
        return apply("reshape", x.inputs[0], shape=shape)
    return None


def _reshape_front(args, kwargs, graph):
    x, *rest = args
    shape = kwargs.pop("newshape", kwargs.pop("shape", rest[0] if rest else None))
    if kwargs.get("order", "C") != "C":
        raise TypeError("only order='C' reshapes are supported")
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    # numpy resolves -1 and checks the size
    resolved = np.broadcast_to(np.empty((), np.int8), x.shape).reshape(shape).shape
    return graph.apply("reshape", x, shape=resolved)


defop(
    "reshape",
    numpy=(np.reshape,),
    front=_reshape_front,
    examples=(("x: f64[2,3]", "np.reshape(x, (3, 2))"), ("x: f64[2,3]", "x.reshape(-1)")),
    eval=lambda x, shape: np.reshape(x, shape),
    shape=lambda shapes, shape: tuple(shape),
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=lambda g, out, x, shape: (apply("reshape", g, shape=x.shape),),
    py=lambda args, node: Expr(f"np.reshape({args[0].text}, {_shape_text(node.shape)})", ATOM),
    gate="reshape gate: reshapes back",
    simplify=_simplify_reshape,
)


def _simplify_broadcast(x, shape):
    if tuple(shape) == x.shape:
        return x
    return None


defop(
    "broadcast_to",
    internal=True,
    eval=lambda x, shape: np.broadcast_to(x, shape),
    shape=lambda shapes, shape: tuple(shape),
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=lambda g, out, x, shape: (g,),  # autodiff sums over the broadcast axes
    py=lambda args, node: Expr(
        f"np.broadcast_to({args[0].text}, {_shape_text(node.shape)})", ATOM
    ),
    gate="broadcast gate: sums back",
    simplify=_simplify_broadcast,
)

# ---- indexing ----


def normalize_key(key: Any, shape: tuple) -> tuple:
    """A basic-indexing key as a hashable tuple; raises IndexError/TypeError on bad keys."""
    if not isinstance(key, tuple):
        key = (key,)
    out: list = []
    for k in key:
        if k is None or k is Ellipsis:
            out.append(k)
        elif isinstance(k, slice):
            out.append(("slice", k.start, k.stop, k.step))
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            out.append(int(k))
        else:
            raise TypeError(f"index {k!r} is not supported (ints, slices, None and ... are)")
    # Validate against the shape now, so a bad index fails at the user's line.
    np.empty(shape)[real_key(tuple(out))] if np.prod(shape) < 1 << 16 else None
    return tuple(out)


def real_key(key: tuple) -> tuple:
    return tuple(slice(*k[1:]) if isinstance(k, tuple) and k[0] == "slice" else k for k in key)


def key_text(key: tuple) -> str:
    def one(k):
        if k is None:
            return "None"
        if k is Ellipsis:
            return "..."
        if isinstance(k, tuple):
            start, stop, step = (("" if v is None else str(v)) for v in k[1:])
            return f"{start}:{stop}" + (f":{step}" if step else "")
        return str(k)

    return ", ".join(one(k) for k in key) if key else "()"


def _index_shape(shapes, key):
    probe = np.broadcast_to(np.empty((), dtype=np.int8), shapes[0])
    return probe[real_key(key)].shape


defop(
    "index",
    examples=(
        ("x: f64[4]", "x[1] * x[2]"),
        ("x: f64[3,4]", "x[1:, ::2]"),
        ("x: f64[3,4]", "x[-1, None, ...]"),
    ),
    eval=lambda x, key: x[real_key(key)],
    shape=_index_shape,
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=lambda g, out, x, key: (apply("scatter", g, key=key, shape=x.shape),),
    py=lambda args, node: Expr(f"{wrap(args[0], ATOM)}[{key_text(node.attrs['key'])}]", ATOM),
    gate="index gate: scatters back",
)


def _scatter_eval(g, key, shape):
    out = np.zeros(shape, dtype=np.result_type(g, np.float32))
    out[real_key(key)] = g
    return out


def _zeros_text(node) -> str:
    dtype = ", dtype=np.float32" if node.dtype == "f32" else ""
    return f"np.zeros({_shape_text(node.shape)}{dtype})"


defop(
    "scatter",
    internal=True,
    eval=_scatter_eval,
    shape=lambda shapes, key, shape: tuple(shape),
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=lambda g, out, x, key, shape: (apply("index", g, key=key),),
    py=None,
    py_stmts=lambda target, args, node: [
        f"{target} = {_zeros_text(node)}",
        f"{target}[{key_text(node.attrs['key'])}] = {args[0].text}",
    ],
    gate="index gate: scatters back",
)

# ---- pack: scalars into an array, the gradient of reading every element ----


def _pack_eval(*xs, shape):
    return np.array(xs).reshape(shape)


def _pack_py(args, node):
    text = f"np.array([{', '.join(a.text for a in args)}])"
    if node.dtype == "f32":
        text = f"np.array([{', '.join(a.text for a in args)}], dtype=np.float32)"
    if len(node.shape) != 1:
        text = f"{text}.reshape({_shape_text(node.shape)})"
    return Expr(text, ATOM)


def _pack_vjp(g, out, *xs, shape):
    return tuple(apply("index", g, key=tuple(int(i) for i in np.unravel_index(k, shape))) for k in range(len(xs)))


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

__all__ = ["normalize_key", "real_key", "same_shape"]
