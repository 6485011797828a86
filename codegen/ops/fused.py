"""Fused ops: compositions recognized by the fuse pass because their gradient is cheaper
written with their own output.
"""

from __future__ import annotations

import numpy as np

from ..emit import c_expr as C
from ..emit.expr import MUL, Expr, wrap
from . import apply, defop, is_const, same_shape


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
