"""Fused ops: compositions recognized by the fuse pass because their gradient is cheaper
written with their own output.
"""

from __future__ import annotations

import numpy as np

from ..emit import c_expr as C
from ..emit.expr import ATOM, MUL, Expr, wrap
from . import FUSIONS, apply, defop, is_const, same_shape


def _match_sigmoid(x, y):
    """1 / (1 + exp(-z)) -> sigmoid(z)."""
    if not is_const(x, 1) or x.size != 1 or y.op != "add":
        return None
    one, e = y.inputs if is_const(y.inputs[0], 1) else reversed(y.inputs)
    if not (is_const(one, 1) and one.size == 1 and e.op == "exp" and e.inputs[0].op == "neg"):
        return None
    z = e.inputs[0].inputs[0]
    if z.shape != y.shape:  # the constants must not broadcast z
        return None
    return apply("sigmoid", z)


def _sigmoid_text(fn: str):
    def emit(args, node):
        return Expr(f"1.0 / (1.0 + {fn}(-{wrap(args[0], 13)}))", MUL)

    return emit


defop(
    "sigmoid",
    eval=lambda z: 1.0 / (1.0 + np.exp(-z)),
    shape=same_shape,
    # s' = s (1 - s): read from the forward value, as in the classic flat code
    vjp=lambda g, out, z: (g * (out * (1.0 - out)),),
    py=_sigmoid_text("np.exp"),
    py_scalar=_sigmoid_text("math.exp"),
    c=lambda args, node: Expr(f"1.0 / (1.0 + exp(-{wrap(args[0], C.UNARY)}))", C.MUL),
    gate="sigmoid gate: s(1 - s)",
    fuses=("div", _match_sigmoid),
    examples=(("x: f64[3]", "1.0 / (1.0 + np.exp(-x))"), ("x: f64[]", "1 / (1 + np.exp(-x))")),
)


# ---- logsumexp: log(sum(exp(x))), always emitted in the stable form ----


def reduced_shape(shape: tuple, axis: tuple, keepdims: bool) -> tuple:
    """reduce.reduced_shape (not imported: the op table fills in its import order)."""
    if keepdims:
        return tuple(1 if i in axis else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axis)


def _lse_eval(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def _lse_vjp(g, out, x, axis, keepdims):
    """d lse / dx = exp(x - lse) = softmax(x): read from the forward value."""
    kept = reduced_shape(x.shape, axis, True)
    if (1,) * (x.ndim - out.ndim) + tuple(out.shape) != kept:  # it would not line up
        out, g = apply("reshape", out, shape=kept), apply("reshape", g, shape=kept)
    return (g * apply("exp", x - out),)


def _lse_stmts(target: str, args: list, node) -> list[str]:
    """m = max(x), then m + log(sum(exp(x - m))): no exp overflows, and the largest is 1."""
    x, axis, keepdims = wrap(args[0], ATOM), node.attrs["axis"], node.attrs["keepdims"]
    every = axis == tuple(range(node.inputs[0].ndim))
    on = "" if every else f"axis={axis[0] if len(axis) == 1 else axis}"
    if every and not keepdims:
        return [
            f"{target} = {x}.max()",
            f"{target} = {target} + np.log(np.exp({x} - {target}).sum())",
        ]
    kept = ", ".join(p for p in (on, "keepdims=True") if p)
    if keepdims:
        total = f"np.exp({x} - {target}).sum({kept})"
        return [f"{target} = {x}.max({kept})", f"{target} = {target} + np.log({total})"]
    total = f"np.exp({x} - {target}).sum({on})"
    return [f"{target} = {x}.max({kept})", f"{target} = {target}.squeeze({on}) + np.log({total})"]


def _view_of(v, m) -> bool:
    """Whether v holds m's values in m's order, with size-1 axes added or dropped
    (m itself, m[:, None], m.reshape(-1), np.squeeze(m))."""
    if v is m:
        return True
    if v.size != m.size or not v.inputs or v.inputs[0] is not m:
        return False
    if v.op == "reshape":
        return True
    return (
        v.op == "index"
        and len(v.inputs) == 1
        and all(
            k is None or k is Ellipsis or isinstance(k, int) or k == ("slice", None, None, None)
            for k in v.attrs["key"]
        )
    )


def _max_shift(d, axis):
    """(x, m) when d = x - m and m = max(x) over `axis` (m as a view that broadcasts
    against x along the reduced axes), else None."""
    if d.op != "sub":
        return None
    x, mb = d.inputs
    m = mb if mb.op == "max" else (mb.inputs[0] if mb.inputs else None)
    if m is None or m.op != "max" or m.inputs[0] is not x or m.attrs["axis"] != axis:
        return None
    kept = reduced_shape(x.shape, axis, True)
    if mb.ndim > x.ndim or (1,) * (x.ndim - mb.ndim) + tuple(mb.shape) != kept:
        return None
    return (x, m) if _view_of(mb, m) else None


def _log_sum_exp(node):
    """(d, axis, keepdims) when node = log(sum(exp(d), axis, keepdims)), else None."""
    if node.op != "log" or node.inputs[0].op != "sum":
        return None
    total = node.inputs[0]
    e = total.inputs[0]
    if e.op != "exp" or not total.attrs["axis"]:
        return None
    return e.inputs[0], total.attrs["axis"], total.attrs["keepdims"]


def _match_stable(a, b):
    """m + log(sum(exp(x - m))) with m = max(x) over the summed axes -> logsumexp(x).

    The pattern reads six levels down (add, log, sum, exp, sub, the view of m), past
    RULE_DEPTH: a settled node whose inputs changed that deep is left unfused, which
    costs speed only; the nodes it reads are forward nodes, which the vjp rebuild keeps."""
    for m_out, rest in ((a, b), (b, a)):
        found = _log_sum_exp(rest)
        if found is None:
            continue
        d, axis, keepdims = found
        shift = _max_shift(d, axis)
        if shift is None:
            continue
        x, m = shift
        if m_out.shape == rest.shape and _view_of(m_out, m):
            return apply("logsumexp", x, axis=axis, keepdims=keepdims)
    return None


def _match_plain(total):
    """log(sum(exp(x))) -> logsumexp(x): the same value wherever exp does not overflow,
    and the stable value where it does. exp(x - c) is left as written: a subtraction
    inside the exp is taken as the user's own shift (softmax's x - max(x), already stable,
    whose saved exp the backward pass reads)."""
    if total.op != "sum" or not total.attrs["axis"] or total.inputs[0].op != "exp":
        return None
    d = total.inputs[0].inputs[0]
    if d.op == "sub" or d.dtype not in ("f64", "f32"):
        return None
    return apply("logsumexp", d, **total.attrs)


def _lse_flops(node) -> int:
    return 4 * node.inputs[0].size


defop(
    "logsumexp",
    eval=_lse_eval,
    shape=lambda shapes, axis, keepdims: reduced_shape(shapes[0], axis, keepdims),
    dtype=lambda dtypes, **attrs: dtypes[0],
    vjp=_lse_vjp,
    py=None,
    py_stmts=_lse_stmts,
    # one pass in C: the running value absorbs each element, lse = logaddexp(lse, x)
    c=C.Reduction("-INFINITY", "{acc} = gradgen_logaddexp({acc}, {x});"),
    flops=_lse_flops,
    gate="logsumexp gate: softmax, exp(x - lse)",
    fuses=("add", _match_stable),
    examples=(
        (
            "x: f64[3,4]",
            "np.max(x, axis=1, keepdims=True) + np.log(np.sum(np.exp(x - np.max(x, axis=1, "
            "keepdims=True)), axis=1, keepdims=True))",
        ),
        ("x: f64[5]", "np.log(np.sum(np.exp(x)))"),
        ("x: f64[2,3]", "np.log(np.exp(x).sum(axis=0))"),
    ),
)
# The plain form is the same op, reached from log.
FUSIONS.setdefault("log", []).append(_match_plain)
