"""np.linalg: inverse, solve, determinants, Cholesky, symmetric eigendecomposition and
singular values as primitives with their published VJPs; norm, matrix_power and
multi_dot written as numpy on traced values.

All work on stacks of matrices (the last two axes), as numpy's do. Where numpy reads only
one triangle of its input (cholesky, eigh, eigvalsh: the lower one by default), so does
the gradient: the other triangle does not change the result, and its gradient is 0.

Tuple results (slogdet, eigh, svd) are one op per part, each computed by numpy's own
function: `np.linalg.slogdet(a)[1]`.

Domains, as for every published rule of these: eigh's eigenvectors need distinct
eigenvalues, and svd's singular vectors (of the reduced SVD, full_matrices=False) need
distinct singular values, nonzero ones where the matrix is not square; their gradients
divide by the gaps (and by the values), so outside the domain they are inf or nan. The
numeric check draws points inside it (each op's `kink`). A vector's sign is arbitrary:
the gradient is that of the vectors numpy returns, whose signs stay put near a point.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..emit import c_expr as C
from ..emit.expr import ATOM, Expr
from . import NUMPY, apply, defop
from .composite import composite
from .linalg import _swap_last as _mT  # the matrix transpose of each matrix

# ---- small IR helpers ----


def _mm(a, b):
    return apply("matmul", a, b)


def _expand2(x):
    """A stack of scalars (...,) as (..., 1, 1), to scale a stack of matrices."""
    return apply("reshape", x, shape=tuple(x.shape) + (1, 1))


def _square(shape: tuple, name: str) -> None:
    if len(shape) < 2:
        raise ValueError(
            f"{len(shape)}-dimensional array given. Array must be at least two-dimensional"
        )
    if shape[-1] != shape[-2]:
        raise ValueError(f"{name}: last 2 dimensions of the array must be square")


def _square_shape(name: str):
    def shape(shapes, **attrs):
        _square(shapes[0], name)
        return tuple(shapes[0])

    return shape


def _linalg_front(op: str, *names: str, **defaults: Any):
    """A front taking the matrix and the keyword arguments `defaults` (numpy's defaults)."""

    def front(args, kwargs, tracing):
        a, *rest = args
        attrs = dict(defaults)
        for key, value in zip(defaults, rest):
            attrs[key] = value
        for key, value in kwargs.items():
            if key not in defaults:
                raise TypeError(f"np.linalg.{op}'s argument {key}= is not supported")
            attrs[key] = value
        if not hasattr(a, "graph"):
            a = tracing.graph.const(np.asarray(a, dtype=np.float64))
        return tracing.apply(names[0] if names else op, a, **attrs)

    return front


def _lower_only(s, uplo: str = "L"):
    """The gradient of a function of the symmetric matrix numpy builds from one triangle
    of A, given S, its gradient as if every element of that symmetric matrix were free:
    an element below the diagonal stands for itself and its mirror, so it gets S + S^T."""
    n = s.shape[-1]
    tri = np.tril(np.ones((n, n)), -1) if uplo == "L" else np.triu(np.ones((n, n)), 1)
    off = apply("mul", s + _mT(s), tri)
    return off + apply("mul", s, np.eye(n))


def _call_py(text: str):
    def emit(args, node) -> Expr:
        return Expr(text.format(*(a.text for a in args), **node.attrs), ATOM)

    return emit


# ---- inverse, solve, determinants ----

defop(
    "inv",
    numpy=(np.linalg.inv,),
    front=_linalg_front("inv"),
    eval=np.linalg.inv,
    shape=_square_shape("inv"),
    dtype=lambda dtypes, **a: dtypes[0],
    # d(A^-1) = -A^-1 dA A^-1
    vjp=lambda g, out, a: (-_mm(_mm(_mT(out), g), _mT(out)),),
    py=_call_py("np.linalg.inv({0})"),
    gate="inv gate: -A^-T g A^-T",
    c=C.KERNEL,  # emit/c_kernels.py
    examples=(
        ("a: f64[3,3]", "np.linalg.inv(a + 3.0 * np.eye(3))"),
        ("a: f64[2,2,2]", "np.linalg.inv(a + np.eye(2) * 2.0) * a"),
    ),
)


def _solve_shape(shapes):
    a, b = shapes
    _square(a, "solve")
    rows = b[0] if len(b) == 1 else (b[-2] if len(b) >= 2 else None)
    if rows != a[-1]:
        raise ValueError(
            f"solve: b's {'length' if len(b) == 1 else 'rows'} ({rows}) must match a's "
            f"size ({a[-1]})"
        )
    if len(b) == 1:
        return tuple(np.broadcast_shapes(a[:-2], ())) + (a[-1],) if len(a) > 2 else (a[-1],)
    return tuple(np.broadcast_shapes(a[:-2], b[:-2])) + (a[-1], b[-1])


def _solve_vjp(g, x, a, b):
    """x = A^-1 b: gb = A^-T g, gA = -gb x^T."""
    if b.ndim == 1:  # b is a vector: numpy solves each stacked A with it
        gb = apply("solve", _mT(a), apply("reshape", g, shape=tuple(g.shape) + (1,)))
        ga = -gb * apply("reshape", x, shape=tuple(x.shape[:-1]) + (1, x.shape[-1]))
        return ga, apply("reshape", gb, shape=tuple(g.shape))
    gb = apply("solve", _mT(a), g)
    return -_mm(gb, _mT(x)), gb


def _solve_front(args, kwargs, tracing):
    if kwargs:
        raise TypeError("np.linalg.solve takes a, b")
    a, b = (
        x if hasattr(x, "graph") else tracing.graph.const(np.asarray(x, dtype=np.float64))
        for x in args
    )
    return tracing.apply("solve", a, b)


defop(
    "solve",
    numpy=(np.linalg.solve,),
    front=_solve_front,
    eval=np.linalg.solve,
    shape=_solve_shape,
    vjp=_solve_vjp,
    py=_call_py("np.linalg.solve({0}, {1})"),
    gate="solve gate: A^-T g, and -(A^-T g) x^T",
    c=C.KERNEL,  # emit/c_kernels.py
    examples=(
        ("a: f64[3,3], b: f64[3]", "np.linalg.solve(a + 3.0 * np.eye(3), b)"),
        ("a: f64[3,3], b: f64[3,2]", "np.linalg.solve(a + 3.0 * np.eye(3), b * b)"),
        ("a: f64[2,3,3], b: f64[3]", "np.linalg.solve(a + 3.0 * np.eye(3), b)"),
        ("a: f64[2,2,2], b: f64[2,2,1]", "np.linalg.solve(a + 2.0 * np.eye(2), b)"),
    ),
)

defop(
    "det",
    numpy=(np.linalg.det,),
    front=_linalg_front("det"),
    eval=np.linalg.det,
    shape=lambda shapes: (_square(shapes[0], "det"), tuple(shapes[0][:-2]))[1],
    dtype=lambda dtypes, **a: dtypes[0],
    # d det A = det A tr(A^-1 dA); the inverse exists wherever the gradient is asked for
    vjp=lambda g, out, a: (_expand2(g * out) * _mT(apply("inv", a)),),
    py=_call_py("np.linalg.det({0})"),
    gate="det gate: det(A) A^-T",
    c=C.KERNEL,  # emit/c_kernels.py
    examples=(
        ("a: f64[3,3]", "np.linalg.det(a + 2.0 * np.eye(3))"),
        ("a: f64[2,2,2]", "np.linalg.det(a * a + np.eye(2))"),
    ),
)

defop(
    "slogdet_sign",
    internal=True,
    eval=lambda a: np.linalg.slogdet(a)[0],
    shape=lambda shapes: tuple(shapes[0][:-2]),
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=lambda g, out, a: (None,),  # piecewise constant: no gradient
    py=_call_py("np.linalg.slogdet({0})[0]"),
    gate="slogdet's sign: no gradient",
    c=C.KERNEL,  # emit/c_kernels.py
    kink=lambda a: np.abs(np.linalg.det(a)),
)
defop(
    "slogdet_log",
    eval=lambda a: np.linalg.slogdet(a)[1],
    shape=lambda shapes: tuple(shapes[0][:-2]),
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=lambda g, out, a: (_expand2(g) * _mT(apply("inv", a)),),
    py=_call_py("np.linalg.slogdet({0})[1]"),
    gate="logdet gate: A^-T",
    c=C.KERNEL,  # emit/c_kernels.py
    examples=(
        ("a: f64[3,3]", "np.linalg.slogdet(a + 3.0 * np.eye(3))[1]"),
        ("a: f64[2,3,3]", "np.linalg.slogdet(a @ np.swapaxes(a, 1, 2) + np.eye(3))[1] * 2.0"),
    ),
)


def _slogdet_front(args, kwargs, tracing):
    (a,) = args
    if kwargs:
        raise TypeError("np.linalg.slogdet takes one matrix")
    _square(a.shape, "slogdet")
    return (tracing.apply("slogdet_sign", a), tracing.apply("slogdet_log", a))


NUMPY[np.linalg.slogdet] = _slogdet_front


# ---- Cholesky, symmetric eigendecomposition ----


def _cholesky_vjp(g, low, a, upper=False):
    """A = L L^T: S = L^-T Phi(L^T g) L^-1, Phi the lower triangle with half its diagonal
    (Murray 2016); numpy reads A's lower triangle only."""
    if upper:  # U = L^T: the same with g transposed
        g, low = _mT(g), _mT(low)
    n = low.shape[-1]
    phi = np.tril(np.ones((n, n))) - 0.5 * np.eye(n)
    inv_l = apply("inv", low)
    s = _mm(_mm(_mT(inv_l), apply("mul", _mm(_mT(low), g), phi)), inv_l)
    return (_lower_only(s, "U" if upper else "L"),)


defop(
    "cholesky",
    numpy=(np.linalg.cholesky,),
    front=_linalg_front("cholesky", upper=False),
    eval=lambda a, upper=False: (
        np.linalg.cholesky(a) if not upper else np.swapaxes(np.linalg.cholesky(a), -1, -2)
    ),
    shape=lambda shapes, **attrs: _square_shape("cholesky")(shapes),
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=_cholesky_vjp,
    py=lambda args, node: Expr(
        f"np.linalg.cholesky({args[0].text}{', upper=True' if node.attrs['upper'] else ''})",
        ATOM,
    ),
    gate="cholesky gate: L^-T Phi(L^T g) L^-1",
    c=C.KERNEL,  # emit/c_kernels.py
    examples=(
        ("a: f64[3,3]", "np.linalg.cholesky(a @ a.T + np.eye(3))"),
        ("a: f64[2,2,2]", "np.linalg.cholesky(a @ np.swapaxes(a, 1, 2) + np.eye(2))"),
    ),
)


def _uplo(uplo: str) -> str:
    if uplo not in ("L", "U"):
        raise ValueError("UPLO argument must be 'L' or 'U'")
    return uplo


def _eigh_gradient(gw, gv, w, v, uplo):
    """S = V (diag(gw) + F o (V^T gV)) V^T with F_ij = 1 / (w_j - w_i) off the diagonal."""
    inner = None
    if gw is not None:
        inner = _mm(
            v * apply("reshape", gw, shape=tuple(gw.shape[:-1]) + (1, gw.shape[-1])), _mT(v)
        )
    if gv is not None:
        n = w.shape[-1]
        row = apply("reshape", w, shape=tuple(w.shape[:-1]) + (1, n))
        col = apply("reshape", w, shape=tuple(w.shape[:-1]) + (n, 1))
        off = 1.0 - np.eye(n)
        f = apply("div", off, row - col + np.eye(n))  # the diagonal: 0 / 1
        part = _mm(_mm(v, f * _mm(_mT(v), gv)), _mT(v))
        inner = part if inner is None else inner + part
    return _lower_only(inner, uplo)


def _eigvals_vjp(g, w, a, uplo):
    v = apply("eigh_vectors", a, uplo=uplo)
    return (_eigh_gradient(g, None, w, v, uplo),)


def _eigvecs_vjp(g, v, a, uplo):
    w = apply("eigh_values", a, uplo=uplo)
    return (_eigh_gradient(None, g, w, v, uplo),)


def _eig_gap(a, uplo):
    w = np.linalg.eigvalsh(a, UPLO=uplo)
    return np.diff(w, axis=-1) if w.shape[-1] > 1 else np.array(np.inf)


defop(
    "eigh_values",
    eval=lambda a, uplo: np.linalg.eigvalsh(a, UPLO=uplo),
    shape=lambda shapes, uplo: (_square(shapes[0], "eigh"), tuple(shapes[0][:-1]))[1],
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=_eigvals_vjp,
    py=lambda args, node: Expr(f"np.linalg.eigvalsh({args[0].text}{_uplo_text(node)})", ATOM),
    gate="eigh gate: V diag(g) V^T",
    c=C.KERNEL,  # emit/c_kernels.py
    kink=_eig_gap,
    examples=(
        ("a: f64[3,3]", "np.linalg.eigvalsh(a + a.T)"),
        ("a: f64[3,3]", "np.linalg.eigh(a @ a.T, UPLO='U')[0] * np.arange(3.0)"),
    ),
)
defop(
    "eigh_vectors",
    eval=lambda a, uplo: np.linalg.eigh(a, UPLO=uplo)[1],
    shape=lambda shapes, uplo: (_square(shapes[0], "eigh"), tuple(shapes[0]))[1],
    dtype=lambda dtypes, **a: dtypes[0],
    vjp=_eigvecs_vjp,
    py=lambda args, node: Expr(f"np.linalg.eigh({args[0].text}{_uplo_text(node)})[1]", ATOM),
    gate="eigh gate: V (F o V^T g) V^T",
    c=C.KERNEL,  # emit/c_kernels.py
    # distinct eigenvalues: the vectors' gradient divides by their gaps
    kink=_eig_gap,
    examples=(
        # an eigenvector's sign is arbitrary: a sign-free function of it
        ("a: f64[3,3]", "np.linalg.eigh(a + a.T)[1] ** 2 * np.arange(9.0).reshape(3, 3)"),
    ),
)


def _uplo_text(node) -> str:
    return "" if node.attrs["uplo"] == "L" else f", UPLO={node.attrs['uplo']!r}"


def _eigh_front(args, kwargs, tracing):
    a, *rest = args
    uplo = _uplo(kwargs.pop("UPLO", rest[0] if rest else "L"))
    if kwargs:
        raise TypeError("np.linalg.eigh takes a, UPLO")
    return (
        tracing.apply("eigh_values", a, uplo=uplo),
        tracing.apply("eigh_vectors", a, uplo=uplo),
    )


def _eigvalsh_front(args, kwargs, tracing):
    a, *rest = args
    uplo = _uplo(kwargs.pop("UPLO", rest[0] if rest else "L"))
    if kwargs:
        raise TypeError("np.linalg.eigvalsh takes a, UPLO")
    return tracing.apply("eigh_values", a, uplo=uplo)


NUMPY[np.linalg.eigh] = _eigh_front
NUMPY[np.linalg.eigvalsh] = _eigvalsh_front


# ---- singular value decomposition (reduced) ----


def _row(x):
    """A stack of vectors (..., k) as rows (..., 1, k): scales a matrix's columns."""
    return apply("reshape", x, shape=tuple(x.shape[:-1]) + (1, x.shape[-1]))


def _col(x):
    """A stack of vectors (..., k) as columns (..., k, 1): scales a matrix's rows."""
    return apply("reshape", x, shape=tuple(x.shape) + (1,))


def _svd_parts(a):
    return apply("svd_u", a), apply("svd_s", a), apply("svd_vh", a)


def _svd_f(s):
    """F_ij = 1 / (s_j^2 - s_i^2) off the diagonal, 0 on it: where the vectors' gradient
    divides by the gaps between singular values."""
    k = s.shape[-1]
    s2 = s * s
    return apply("div", 1.0 - np.eye(k), _row(s2) - _col(s2) + np.eye(k))


def _svdvals_vjp(g, s, a):
    """ds = U^T dA V, diagonal: gA = U diag(g) V^T (the reduced factors)."""
    u, _, vh = _svd_parts(a)
    return (_mm(u * _row(g), vh),)


def _svd_u_vjp(g, u, a):
    """A = U S V^T (Townsend 2016): gA = U (F o (U^T g - g^T U)) S V^T, plus
    (I - U U^T) g S^-1 V^T when A has more rows than columns."""
    _, s, vh = _svd_parts(a)
    ut_g = _mm(_mT(u), g)
    inner = _svd_f(s) * (ut_g - _mT(ut_g)) * _row(s)
    ga = _mm(_mm(u, inner), vh)
    if u.shape[-2] > u.shape[-1]:  # the part of g outside U's columns
        ga = ga + _mm((g - _mm(u, ut_g)) / _row(s), vh)
    return (ga,)


def _svd_vh_vjp(g, vh, a):
    """The same for V: gA = U S (F o (V^T gV - gV^T V)) V^T, plus U S^-1 gV^T (I - V V^T)
    when A has more columns than rows (gV = g^T, the gradient of V = Vh^T)."""
    u, s, _ = _svd_parts(a)
    vt_gv = _mm(vh, _mT(g))
    inner = _col(s) * (_svd_f(s) * (vt_gv - _mT(vt_gv)))
    ga = _mm(_mm(u, inner), vh)
    if vh.shape[-1] > vh.shape[-2]:  # the part of gV outside V's columns
        ga = ga + _mm(u, (g - _mm(_mT(vt_gv), vh)) / _col(s))
    return (ga,)


def _svd_gap(a):
    s = np.linalg.svd(a, compute_uv=False)
    gaps = [s]  # a zero singular value is a kink of the values too
    if s.shape[-1] > 1:
        gaps.append(-np.diff(s, axis=-1))
    return np.concatenate([np.ravel(x) for x in gaps])


def _min_dim_shape(shapes, keep_last: str):
    m, n = shapes[0][-2:]
    k = min(m, n)
    batch = tuple(shapes[0][:-2])
    return {"s": batch + (k,), "u": batch + (m, k), "vh": batch + (k, n)}[keep_last]


# A singular vector's sign is arbitrary: the examples are functions free of it.
_SVD_EXAMPLES = {
    "s": (("a: f64[3,2]", "np.linalg.svd(a, compute_uv=False)"),),
    "u": (
        (
            "a: f64[3,2]",
            "np.linalg.svd(a, full_matrices=False)[0] ** 2 * np.arange(6.0).reshape(3, 2)",
        ),
        (
            "a: f64[2,3]",
            "np.linalg.svd(a, full_matrices=False)[0] ** 2 * np.arange(4.0).reshape(2, 2)",
        ),
    ),
    "vh": (
        (
            "a: f64[2,3]",
            "np.linalg.svd(a, full_matrices=False)[2] ** 2 * np.arange(6.0).reshape(2, 3)",
        ),
        ("a: f64[3,3]", "np.linalg.svd(a)[2] ** 2 * np.arange(9.0).reshape(3, 3)"),
    ),
}
for _part, _index, _vjp, _gate in (
    ("s", 1, _svdvals_vjp, "svd gate: U diag(g) V^T"),
    ("u", 0, _svd_u_vjp, "svd gate (U): U (F o U^T g) S V^T"),
    ("vh", 2, _svd_vh_vjp, "svd gate (V): U S (F o V^T gV) V^T"),
):
    defop(
        f"svd_{_part}",
        eval=(
            (lambda a: np.linalg.svd(a, compute_uv=False))
            if _part == "s"
            else (lambda a, _i=_index: np.linalg.svd(a, full_matrices=False)[_i])
        ),
        shape=lambda shapes, _p=_part: _min_dim_shape(shapes, _p),
        dtype=lambda dtypes, **a: dtypes[0],
        vjp=_vjp,
        py=_call_py(
            "np.linalg.svd({0}, compute_uv=False)"
            if _part == "s"
            else f"np.linalg.svd({{0}}, full_matrices=False)[{_index}]"
        ),
        gate=_gate,
        c=C.KERNEL,  # emit/c_kernels.py
        kink=_svd_gap,
        examples=_SVD_EXAMPLES[_part],
    )


def _svd_front(args, kwargs, tracing):
    a, *rest = args
    given = dict(zip(("full_matrices", "compute_uv", "hermitian"), rest))
    given.update(kwargs)
    compute_uv = given.pop("compute_uv", True)
    full = given.pop("full_matrices", True)
    if given.pop("hermitian", False) or given:
        raise TypeError("np.linalg.svd takes a, full_matrices, compute_uv")
    if a.ndim < 2:
        raise ValueError(
            f"{a.ndim}-dimensional array given. Array must be at least two-dimensional"
        )
    s = tracing.apply("svd_s", a)
    if not compute_uv:
        return s
    if full and a.shape[-1] != a.shape[-2]:
        raise TypeError(
            "np.linalg.svd with full_matrices=True of a non-square matrix: pass "
            "full_matrices=False (the extra vectors have no gradient)"
        )
    return (tracing.apply("svd_u", a), s, tracing.apply("svd_vh", a))


NUMPY[np.linalg.svd] = _svd_front
if hasattr(np.linalg, "svdvals"):
    NUMPY[np.linalg.svdvals] = lambda args, kwargs, tracing: _svd_front(
        args, {"compute_uv": False, **kwargs}, tracing
    )


# ---- written in numpy ----


@composite(np.linalg.norm)
def _norm(x, ord=None, axis=None, keepdims=False):
    """numpy's vector and matrix norms, by their definitions."""
    if axis is None:
        if ord is None:  # the 2-norm of the flattened array
            value = np.sqrt(np.sum(x * x))
            return np.reshape(value, (1,) * x.ndim) if keepdims else value
        axis = tuple(range(x.ndim))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) == 2:
        return _matrix_norm(x, ord, axes, keepdims)
    raise ValueError("Improper number of dimensions to norm.")


def _vector_norm(x, ord, axis, keepdims):
    a = np.abs(x)
    if ord is None or ord == 2:
        return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))
    if ord == np.inf:
        return np.max(a, axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return np.min(a, axis=axis, keepdims=keepdims)
    if ord == 0:  # a count: no gradient
        return np.sum(np.where(x != 0, 1.0, 0.0), axis=axis, keepdims=keepdims)
    if ord == 1:
        return np.sum(a, axis=axis, keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order '{ord}' for vectors")
    return np.sum(a**ord, axis=axis, keepdims=keepdims) ** (1.0 / ord)


def _matrix_norm(x, ord, axes, keepdims):
    row, col = (operator.index(a) % x.ndim for a in axes)
    if row == col:
        raise ValueError("Duplicate axes given.")
    if ord is None or ord == "fro":
        value = np.sqrt(np.sum(x * x, axis=(row, col)))
    elif ord in (1, -1):
        sums = np.sum(np.abs(x), axis=row)
        value = (np.max if ord == 1 else np.min)(sums, axis=col - 1 if col > row else col)
    elif ord in (np.inf, -np.inf):
        sums = np.sum(np.abs(x), axis=col)
        value = (np.max if ord == np.inf else np.min)(sums, axis=row - 1 if row > col else row)
    elif ord in ("nuc", 2, -2):
        moved = np.moveaxis(x, (row, col), (-2, -1))
        s = np.linalg.svd(moved, compute_uv=False)
        value = {"nuc": np.sum, 2: np.max, -2: np.min}[ord](s, axis=-1)
    else:
        raise ValueError("Invalid norm order for matrices.")
    if keepdims:
        shape = list(x.shape)
        shape[row] = shape[col] = 1
        value = np.reshape(value, tuple(shape))
    return value


@composite(np.linalg.matrix_power)
def _matrix_power(a, n):
    """Repeated squaring, as numpy does; a negative power inverts first."""
    n = operator.index(n)
    _square(a.shape, "matrix_power")
    if n == 0:
        return np.broadcast_to(np.eye(a.shape[-1]), a.shape).copy()  # a constant
    if n < 0:
        a, n = np.linalg.inv(a), -n
    result, square = None, a
    while n:
        if n & 1:
            result = square if result is None else result @ square
        n >>= 1
        if n:
            square = square @ square
    return result


@composite(np.linalg.multi_dot)
def _multi_dot(arrays, *, out=None):
    """The chain of products, left to right (numpy picks the cheapest order; the value is
    the same up to rounding)."""
    if out is not None:
        raise TypeError("np.linalg.multi_dot(..., out=...) is not supported")
    if len(arrays) < 2:
        raise ValueError("Expecting at least two arrays.")
    result = arrays[0]
    for b in arrays[1:]:
        result = result @ b
    return result


# ---- QR (reduced, m >= n) ----


def _copyltu(m):
    """The symmetric matrix with m's lower triangle: tril(m) + tril(m, -1)^T."""
    n = m.shape[-1]
    lower = apply("mul", m, np.tril(np.ones((n, n))))
    strict = apply("mul", m, np.tril(np.ones((n, n)), -1))
    return lower + _mT(strict)


def _times_r_inv_t(x, r):
    """x R^-T, as (R^-1 x^T)^T: a solve, not an inverse."""
    return _mT(apply("solve", r, _mT(x)))


def _qr_q_vjp(g, q, a):
    r = apply("qr_r", a)
    m = -_mm(_mT(g), q)
    return (_times_r_inv_t(g + _mm(q, _copyltu(m)), r),)


def _qr_r_vjp(g, r, a):
    q = apply("qr_q", a)
    m = _mm(r, _mT(g))
    return (_times_r_inv_t(_mm(q, _copyltu(m)), r),)


def _qr_shape(part: str):
    def shape(shapes):
        batch, (m, n) = tuple(shapes[0][:-2]), shapes[0][-2:]
        if m < n:
            raise ValueError(
                "np.linalg.qr of a wide matrix (fewer rows than columns) has no gradient here"
            )
        return batch + ((m, n) if part == "q" else (n, n))

    return shape


for _part, _k, _vjp in (("q", 0, _qr_q_vjp), ("r", 1, _qr_r_vjp)):
    defop(
        f"qr_{_part}",
        eval=lambda a, _k=_k: np.linalg.qr(a)[_k],
        shape=_qr_shape(_part),
        dtype=lambda dtypes, **a: dtypes[0],
        vjp=_vjp,
        py=_call_py(f"np.linalg.qr({{0}})[{_k}]"),
        gate=f"qr gate ({'Q' if _part == 'q' else 'R'}): (gQ + Q copyltu(M)) R^-T",
        c=C.KERNEL,  # emit/c_kernels.py
        kink=lambda a: np.abs(np.diagonal(np.linalg.qr(a)[1], axis1=-2, axis2=-1)),
        examples=(
            (
                ("a: f64[4,3]", "np.linalg.qr(a)[0] * np.arange(12.0).reshape(4, 3)"),
                ("a: f64[2,3,3]", "np.linalg.qr(a)[0][:, :, 0]"),
            )
            if _part == "q"
            else (("a: f64[4,3]", "np.linalg.qr(a)[1] * np.arange(9.0).reshape(3, 3)"),)
        ),
    )


def _qr_front(args, kwargs, tracing):
    a, *rest = args
    mode = kwargs.pop("mode", rest[0] if rest else "reduced")
    if kwargs:
        raise TypeError("np.linalg.qr takes a, mode")
    if mode == "r":
        return tracing.apply("qr_r", a)
    if mode != "reduced":
        raise TypeError(f"np.linalg.qr(..., mode={mode!r}) is not supported (reduced and r are)")
    return (tracing.apply("qr_q", a), tracing.apply("qr_r", a))


NUMPY[np.linalg.qr] = _qr_front


# ---- more written in numpy ----


@composite(np.linalg.pinv)
def _pinv(a, rcond=None, hermitian=False, *, rtol=None):
    """For a matrix of full rank, (A^T A)^-1 A^T (tall) or A^T (A A^T)^-1 (wide): the same
    matrix numpy's SVD gives, and differentiable there. A rank-deficient matrix is outside
    this definition (the check would show its values differ)."""
    m, n = a.shape[-2:]
    at = np.swapaxes(a, -1, -2)
    if m >= n:
        return np.linalg.solve(at @ a, at)
    return np.swapaxes(np.linalg.solve(a @ at, a), -1, -2)


@composite(np.linalg.lstsq)
def _lstsq(a, b, rcond=None):
    """numpy's (x, residuals, rank, s) for a matrix of full column rank: x solves the normal
    equations; the residuals are the squared norms of b - a x (empty unless m > n); the
    rank is n (full rank is what this definition assumes)."""
    m, n = a.shape
    if m < n:
        raise TypeError(
            "np.linalg.lstsq of a wide matrix (fewer rows than columns) is not supported"
        )
    at = a.T
    x = np.linalg.solve(at @ a, at @ b)
    r = b - a @ x
    residuals = np.sum(r * r, axis=0) if m > n else np.zeros((0,))
    if b.ndim == 1 and m > n:
        residuals = np.reshape(residuals, (1,))
    return x, residuals, n, np.linalg.svd(a, compute_uv=False)


@composite(np.linalg.cond)
def _cond(x, p=None):
    """The 2-norm condition number (largest over smallest singular value), or
    norm(x, p) norm(inv(x), p)."""
    if p is None or p == 2 or p == -2:
        s = np.linalg.svd(x, compute_uv=False)
        ratio = np.max(s, axis=-1) / np.min(s, axis=-1)
        return ratio if p != -2 else 1.0 / ratio
    return np.linalg.norm(x, p, axis=(-2, -1)) * np.linalg.norm(np.linalg.inv(x), p, axis=(-2, -1))


if hasattr(np.linalg, "matrix_norm"):

    @composite(np.linalg.matrix_norm)
    def _matrix_norm_front(x, /, *, keepdims=False, ord="fro"):
        return np.linalg.norm(x, ord=ord, axis=(-2, -1), keepdims=keepdims)

    @composite(np.linalg.vector_norm)
    def _vector_norm_front(x, /, *, axis=None, keepdims=False, ord=2):
        if axis is None:
            flat = np.ravel(x)
            value = np.linalg.norm(flat, ord=ord)
            return np.reshape(value, (1,) * x.ndim) if keepdims else value
        return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)
