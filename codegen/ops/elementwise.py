"""Elementwise ops: arithmetic, transcendental functions, max/min, comparisons, where.

All broadcast their inputs; autodiff undoes the broadcasting, so no rule here sums.
"""

from __future__ import annotations

import numpy as np

from ..emit.expr import ADD, MUL, binop, call, compare, negate, power, ternary
from . import apply, defop, is_const, promote, same_shape, to_bool

# ---- construction-time rewrites, each exact in IEEE arithmetic up to the sign of zero ----


def _keeps_shape(x, *others) -> bool:
    return all(len(o.shape) <= len(x.shape) and o.size == 1 for o in others)


def _simplify_add(x, y):
    if is_const(y, 0) and _keeps_shape(x, y):  # x + 0 = x
        return x
    if is_const(x, 0) and _keeps_shape(y, x):  # 0 + y = y
        return y
    return None


def _simplify_sub(x, y):
    if is_const(y, 0) and _keeps_shape(x, y):  # x - 0 = x
        return x
    if is_const(x, 0) and _keeps_shape(y, x):  # 0 - y = -y
        return apply("neg", y)
    return None


def _simplify_mul(x, y):
    if is_const(y, 1) and _keeps_shape(x, y):  # x * 1 = x
        return x
    if is_const(x, 1) and _keeps_shape(y, x):  # 1 * y = y
        return y
    if is_const(y, -1) and _keeps_shape(x, y):  # x * -1 = -x
        return apply("neg", x)
    if is_const(x, -1) and _keeps_shape(y, x):  # -1 * y = -y
        return apply("neg", y)
    if x.op == "neg":  # (-a) * b = -(a * b), exact: IEEE negation only flips the sign
        return apply("neg", apply("mul", x.inputs[0], y))
    if y.op == "neg":  # a * (-b) = -(a * b)
        return apply("neg", apply("mul", x, y.inputs[0]))
    return None


def _simplify_div(x, y):
    if is_const(y, 1) and _keeps_shape(x, y):  # x / 1 = x
        return x
    return None


def _simplify_neg(x):
    if x.op == "neg":  # -(-x) = x
        return x.inputs[0]
    return None


# ---- arithmetic: the classic gates ----

defop(
    "add",
    numpy=(np.add,),
    eval=np.add,
    vjp=lambda g, out, x, y: (g, g),
    py=binop("+", ADD),
    gate="add gate: distributes",
    simplify=_simplify_add,
)
defop(
    "sub",
    numpy=(np.subtract,),
    eval=np.subtract,
    vjp=lambda g, out, x, y: (g, -g),
    py=binop("-", ADD),
    gate="sub gate: distributes, negated",
    simplify=_simplify_sub,
)
defop(
    "mul",
    numpy=(np.multiply,),
    eval=np.multiply,
    vjp=lambda g, out, x, y: (g * y, g * x),
    py=binop("*", MUL),
    gate="mul gate: swaps",
    simplify=_simplify_mul,
)
def _div_vjp(g, out, x, y):
    if is_const(x, 1):  # d(1/y)/dy = -1/y^2 = -out^2: needs only the output
        return (None, -(g * (out * out)))
    # d(x/y)/dy = -x/y^2 = -out/y: reuses the quotient already computed
    return (g / y, -(g * out) / y)


defop(
    "div",
    numpy=(np.true_divide,),
    eval=np.true_divide,
    vjp=_div_vjp,
    py=binop("/", MUL),
    gate="div gate: scales by 1/y",
    simplify=_simplify_div,
)
defop(
    "neg",
    numpy=(np.negative,),
    eval=np.negative,
    vjp=lambda g, out, x: (-g,),
    py=negate,
    shape=same_shape,
    gate="neg gate: negates",
    simplify=_simplify_neg,
)


def _pow_vjp(g, out, x, y):
    if is_const(y):
        # constant exponent: d(x^c) = c x^(c-1), folded by constant folding
        c = float(y.value.reshape(-1)[0]) if y.size == 1 and not y.shape else None
        if c == 2.0:
            return (g * (2.0 * x), None)
        return (g * (y * x ** (y - 1.0)), None)
    # d(x^y)/dy = x^y log x = out * log x
    return (g * (y * x ** (y - 1.0)), g * (out * apply("log", x)))


defop(
    "pow",
    numpy=(np.power, np.float_power),
    eval=np.power,
    vjp=_pow_vjp,
    py=power,
    gate="pow gate",
    domain="positive",
)

# ---- unary functions: the local derivative reuses the forward output where it can ----


def _unary(name, fn, vjp, math_fn=None, domain="real", gate=None, numpy=None, **extra):
    defop(
        name,
        numpy=numpy if numpy is not None else (fn,),
        eval=fn,
        vjp=vjp,
        py=call(f"np.{fn.__name__}"),
        py_scalar=call(math_fn) if math_fn else None,
        shape=same_shape,
        gate=gate or f"{name} gate",
        domain=domain,
        **extra,
    )


_unary("exp", np.exp, lambda g, out, x: (g * out,), "math.exp", gate="exp gate: times its output")
_unary("log", np.log, lambda g, out, x: (g / x,), "math.log", domain="positive", gate="log gate: 1/x")
_unary(
    "sqrt",
    np.sqrt,
    lambda g, out, x: (g / (2.0 * out),),
    "math.sqrt",
    domain="positive",
    gate="sqrt gate: 1/(2 sqrt x)",
)
_unary("sin", np.sin, lambda g, out, x: (g * apply("cos", x),), "math.sin", gate="sin gate: cos")
_unary("cos", np.cos, lambda g, out, x: (-(g * apply("sin", x)),), "math.cos", gate="cos gate: -sin")
_unary(
    "tanh",
    np.tanh,
    lambda g, out, x: (g * (1.0 - out * out),),
    "math.tanh",
    gate="tanh gate: 1 - t^2",
)
_unary(
    "square",
    np.square,
    lambda g, out, x: (g * (2.0 * x),),
    gate="square gate: 2x",
)
_unary(
    "reciprocal",
    np.reciprocal,
    lambda g, out, x: (-(g * (out * out)),),
    domain="nonzero",
    gate="reciprocal gate: -1/x^2",
)
defop(
    "abs",
    numpy=(np.absolute, np.abs, np.fabs),
    eval=np.abs,
    # sign(0) = 0: the even split a central difference sees at the kink
    vjp=lambda g, out, x: (g * apply("sign", x),),
    py=call("np.abs"),
    py_scalar=call("abs"),
    shape=same_shape,
    gate="abs gate: sign",
    kink=lambda x: np.abs(x),
)
defop(
    "sign",
    numpy=(np.sign,),
    eval=np.sign,
    py=call("np.sign"),
    shape=same_shape,
    gate="sign: no gradient",
    kink=lambda x: np.abs(x),
)


# ---- max / min: the routing gates, ties split evenly (JAX's convention) ----


def _route_vjp(win):
    def vjp(g, out, x, y):
        half_tie = 0.5 * apply("eq", x, y)
        return (g * (apply(win, x, y) + half_tie), g * (apply(win, y, x) + half_tie))

    return vjp


defop(
    "maximum",
    numpy=(np.maximum, np.fmax),
    eval=np.maximum,
    vjp=_route_vjp("gt"),
    py=call("np.maximum"),
    py_scalar=call("max"),
    gate="max gate: routes",
    kink=lambda x, y: np.abs(x - y),
)
defop(
    "minimum",
    numpy=(np.minimum, np.fmin),
    eval=np.minimum,
    vjp=_route_vjp("lt"),
    py=call("np.minimum"),
    py_scalar=call("min"),
    gate="min gate: routes",
    kink=lambda x, y: np.abs(x - y),
)

# ---- comparisons: masks, no gradient ----

for _name, _fn, _sym in [
    ("gt", np.greater, ">"),
    ("ge", np.greater_equal, ">="),
    ("lt", np.less, "<"),
    ("le", np.less_equal, "<="),
    ("eq", np.equal, "=="),
    ("ne", np.not_equal, "!="),
]:
    defop(
        _name,
        numpy=(_fn,),
        eval=_fn,
        py=compare(_sym),
        dtype=to_bool,
        gate="compare: no gradient",
        kink=lambda x, y: np.abs(x - y),
    )


def _where_front(args, kwargs, graph):
    if len(args) != 3:
        # the one-argument form returns indices, which have no gradient
        raise TypeError("np.where needs three arguments here: np.where(condition, x, y)")
    return graph.apply("where", *args)


defop(
    "where",
    numpy=(np.where,),
    front=_where_front,
    eval=np.where,
    vjp=lambda g, out, c, x, y: (None, apply("where", c, g, 0.0), apply("where", c, 0.0, g)),
    py=call("np.where"),
    py_scalar=ternary,
    dtype=lambda dtypes, **attrs: promote(dtypes[1:]),
    gate="where gate: routes by the mask",
)
