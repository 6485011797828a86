"""Elementwise ops: arithmetic, transcendental functions, max/min (and np.clip, built from
them), comparisons, where.

All broadcast their inputs; autodiff undoes the broadcasting, so no rule here sums.
"""

from __future__ import annotations

import numpy as np

from ..emit.expr import (
    ADD,
    ATOM,
    MUL,
    POWER,
    UNARY,
    Expr,
    binop,
    call,
    compare,
    negate,
    power,
    ternary,
    wrap,
)
from ..emit import c_expr as C
from . import NUMPY, apply, defop, is_const, keeps_ints, promote, same_shape, to_bool

LN2 = float(np.log(2.0))
LN10 = float(np.log(10.0))

# ---- construction-time rewrites, each exact in IEEE arithmetic up to the sign of zero ----


def _keeps(x, *others) -> bool:
    """Whether the result of x with `others` has x's shape and dtype, so that a rule may
    return x (or -x) for it: `mask * 1.0` is a float array, not the bool `mask`."""
    return promote([x.dtype, *(o.dtype for o in others)]) == x.dtype and all(
        np.broadcast_shapes(x.shape, o.shape) == x.shape for o in others
    )


def _constant_like(x, y) -> bool:
    """Whether either operand may be a constant (the rules below need one)."""
    return x.op in ("const", "broadcast_to") or y.op in ("const", "broadcast_to")


def _simplify_add(x, y):
    if not _constant_like(x, y):
        return None
    if is_const(y, 0) and _keeps(x, y):  # x + 0 = x
        return x
    if is_const(x, 0) and _keeps(y, x):  # 0 + y = y
        return y
    return None


def _simplify_sub(x, y):
    if not _constant_like(x, y):
        return None
    if is_const(y, 0) and _keeps(x, y):  # x - 0 = x
        return x
    if is_const(x, 0) and _keeps(y, x):  # 0 - y = -y
        return apply("neg", y)
    return None


def _simplify_mul(x, y):
    if _constant_like(x, y):
        if is_const(y, 1) and _keeps(x, y):  # x * 1 = x
            return x
        if is_const(x, 1) and _keeps(y, x):  # 1 * y = y
            return y
        if is_const(y, -1) and _keeps(x, y):  # x * -1 = -x
            return apply("neg", x)
        if is_const(x, -1) and _keeps(y, x):  # -1 * y = -y
            return apply("neg", y)
    if x.op == "neg":  # (-a) * b = -(a * b), exact: IEEE negation only flips the sign
        return apply("neg", apply("mul", x.inputs[0], y))
    if y.op == "neg":  # a * (-b) = -(a * b)
        return apply("neg", apply("mul", x, y.inputs[0]))
    return None


def _simplify_div(x, y):
    if is_const(y, 1) and _keeps(x, y):  # x / 1 = x
        return x
    return None


def _simplify_neg(x):
    if x.op == "neg":  # -(-x) = x
        return x.inputs[0]
    return None


# ---- arithmetic: the classic gates ----

defop(
    "add",
    dtype=keeps_ints,
    numpy=(np.add,),
    eval=np.add,
    vjp=lambda g, out, x, y: (g, g),
    py=binop("+", ADD),
    c=C.binop("+", C.ADD),
    gate="add gate: distributes",
    simplify=_simplify_add,
)
defop(
    "sub",
    dtype=keeps_ints,
    numpy=(np.subtract,),
    eval=np.subtract,
    vjp=lambda g, out, x, y: (g, -g),
    py=binop("-", ADD),
    c=C.binop("-", C.ADD),
    gate="sub gate: distributes, negated",
    simplify=_simplify_sub,
)
defop(
    "mul",
    dtype=keeps_ints,
    numpy=(np.multiply,),
    eval=np.multiply,
    vjp=lambda g, out, x, y: (g * y, g * x),
    py=binop("*", MUL),
    c=C.binop("*", C.MUL),
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
    c=C.binop("/", C.MUL),
    gate="div gate: scales by 1/y",
    simplify=_simplify_div,
)
defop(
    "neg",
    dtype=keeps_ints,
    numpy=(np.negative,),
    eval=np.negative,
    vjp=lambda g, out, x: (-g,),
    py=negate,
    c=C.negate,
    shape=same_shape,
    gate="neg gate: negates",
    simplify=_simplify_neg,
)


def _pow_vjp(g, out, x, y):
    """d(x^y)/dx = y x^(y-1), d(x^y)/dy = x^y log x = out log x; constants get no cotangent."""
    if is_const(y):
        # constant exponent: d(x^c) = c x^(c-1), folded by constant folding
        c = float(y.value.reshape(-1)[0]) if y.size == 1 and not y.shape else None
        if c == 2.0:
            return (g * (2.0 * x), None)
        return (g * (y * x ** (y - 1.0)), None)
    if is_const(x):
        # constant base (2.0 ** y): log x is a constant. A zero base counts as log 1 = 0, as
        # in JAX: 0^y is flat (0) for y > 0, where log 0 would give 0 * -inf = nan.
        base = x.inputs[0] if x.op == "broadcast_to" else x
        v = base.value
        log_x = base.graph.const(np.log(np.where(v == 0, 1.0, v)), out.dtype)
        return (None, g * (out * log_x))
    return (g * (y * x ** (y - 1.0)), g * (out * apply("log", x)))


def _integral(node) -> bool:
    return node.op == "const" and bool(np.all(np.isfinite(node.value) & (node.value % 1 == 0)))


def _power_scalar(args, node):
    """`x ** y` when it stays real; else math.pow, which raises where Python's ** would turn
    complex (a negative base to a fractional power), as the other math functions do out of
    their domain. numpy gives nan there."""
    x, y = node.inputs
    if _integral(y) or (x.op == "const" and bool(np.all(x.value >= 0))):
        return power(args, node)
    return call("math.pow")(args, node)


defop(
    "pow",
    # float_power computes in float64 and so equals power on the float64 values traced here
    numpy=(np.power, np.float_power),
    eval=np.power,
    vjp=_pow_vjp,
    py=power,
    c=C.call("pow"),
    py_scalar=_power_scalar,
    gate="pow gate",
    domain="positive",
    examples=(
        ("x: f64[3]", "2.0 ** x"),
        ("x: f64[]", "2.0 ** x"),
        ("x: f64[2,3], y: f64[3]", "np.float_power(x, y)"),
        ("x: f64[], y: f64[]", "x ** y"),
        ("x: f64[2,3]", "x ** np.array([1, 2, 3])"),
        ("x: f64[3], y: f64[]", "x ** 3 + (1.0 + x * x) ** y"),
    ),
)


def _positive_front(args, kwargs, graph):
    # +x is x: no node, no gate (the tracer's __pos__ does the same)
    return args[0]


NUMPY[np.positive] = _positive_front

# ---- unary functions: the local derivative reuses the forward output where it can ----


def _unary(name, fn, vjp, scalar=None, domain="real", gate=None, numpy=None, c=None, **extra):
    """A one-input ufunc; `scalar` is the math function (or an emission) for f64 scalars,
    `c` the <math.h> function (default: math's name) or an emission."""
    if c is None and isinstance(scalar, str):
        c = scalar.removeprefix("math.")
    defop(
        name,
        numpy=numpy if numpy is not None else (fn,),
        eval=fn,
        vjp=vjp,
        py=call(f"np.{fn.__name__}"),
        c=C.call(c) if isinstance(c, str) else c,
        py_scalar=call(scalar) if isinstance(scalar, str) else scalar,
        shape=same_shape,
        gate=gate or f"{name} gate",
        domain=domain,
        **extra,
    )


_unary("exp", np.exp, lambda g, out, x: (g * out,), "math.exp", gate="exp gate: times its output")
_unary(
    "log", np.log, lambda g, out, x: (g / x,), "math.log", domain="positive", gate="log gate: 1/x"
)
_unary(
    "sqrt",
    np.sqrt,
    lambda g, out, x: (g / (2.0 * out),),
    "math.sqrt",
    domain="positive",
    gate="sqrt gate: 1/(2 sqrt x)",
)
_unary("sin", np.sin, lambda g, out, x: (g * apply("cos", x),), "math.sin", gate="sin gate: cos")
_unary(
    "cos", np.cos, lambda g, out, x: (-(g * apply("sin", x)),), "math.cos", gate="cos gate: -sin"
)
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
    lambda args, node: Expr(f"{wrap(args[0], POWER + 1)} ** 2", POWER),
    gate="square gate: 2x",
    c=C.square,
)
_unary(
    "reciprocal",
    np.reciprocal,
    lambda g, out, x: (-(g * (out * out)),),
    lambda args, node: Expr(f"1.0 / {wrap(args[0], MUL + 1)}", MUL),
    domain="nonzero",
    c=C.reciprocal,
    gate="reciprocal gate: -1/x^2",
)
_unary(
    "log1p",
    np.log1p,
    lambda g, out, x: (g / (1.0 + x),),
    "math.log1p",
    domain="above_minus_one",
    gate="log1p gate: 1/(1 + x)",
)
_unary(
    "expm1",
    np.expm1,
    lambda g, out, x: (g * (out + 1.0),),
    "math.expm1",
    gate="expm1 gate: its output + 1",
)
_unary(
    "exp2",
    np.exp2,
    lambda g, out, x: (g * (out * LN2),),
    # math.exp2 is new in Python 3.11; ** is as exact and reads the same
    lambda args, node: Expr(f"2.0 ** {wrap(args[0], UNARY)}", POWER),
    gate="exp2 gate: its output times log 2",
    c="exp2",
)
_unary(
    "log2",
    np.log2,
    lambda g, out, x: (g / (x * LN2),),
    "math.log2",
    domain="positive",
    gate="log2 gate: 1/(x log 2)",
)
_unary(
    "log10",
    np.log10,
    lambda g, out, x: (g / (x * LN10),),
    "math.log10",
    domain="positive",
    gate="log10 gate: 1/(x log 10)",
)
_unary(
    "tan",
    np.tan,
    lambda g, out, x: (g * (1.0 + out * out),),
    "math.tan",
    gate="tan gate: 1 + tan^2",
)
_unary(
    "arctan",
    np.arctan,
    lambda g, out, x: (g / (1.0 + x * x),),
    "math.atan",
    gate="arctan gate: 1/(1 + x^2)",
)
_unary(
    "arcsin",
    np.arcsin,
    lambda g, out, x: (g / apply("sqrt", 1.0 - x * x),),
    "math.asin",
    domain="unit",
    gate="arcsin gate: 1/sqrt(1 - x^2)",
)
_unary(
    "arccos",
    np.arccos,
    lambda g, out, x: (-(g / apply("sqrt", 1.0 - x * x)),),
    "math.acos",
    domain="unit",
    gate="arccos gate: -1/sqrt(1 - x^2)",
)
# each is the other's derivative: with both in a function, CSE computes each once
_unary(
    "sinh", np.sinh, lambda g, out, x: (g * apply("cosh", x),), "math.sinh", gate="sinh gate: cosh"
)
_unary(
    "cosh", np.cosh, lambda g, out, x: (g * apply("sinh", x),), "math.cosh", gate="cosh gate: sinh"
)


def _hypot_vjp(g, out, x, y):
    # one division shared by both sides; at the origin (r = 0, so x = y = 0) divide by 1
    # instead, giving the gradient 0 that jax gives rather than 0/0
    s = g / (out + apply("eq", out, 0.0))
    return (s * x, s * y)


defop(
    "hypot",
    numpy=(np.hypot,),
    eval=np.hypot,
    vjp=_hypot_vjp,
    py=call("np.hypot"),
    py_scalar=call("math.hypot"),
    c=C.call("hypot"),
    gate="hypot gate: (x, y)/r",
    # a cone at the origin
    kink=lambda x, y, **attrs: np.hypot(x, y),
)


def _arctan2_vjp(g, out, y, x):
    s = g / (x * x + y * y)
    return (s * x, -(s * y))


def _arctan2_cut(y, x, **attrs):
    """Distance to where arctan2 jumps by 2 pi: the ray x < 0, y = 0, origin included."""
    return np.where(x < 0, np.abs(y), np.hypot(x, y))


defop(
    "arctan2",
    numpy=(np.arctan2,),
    eval=np.arctan2,
    vjp=_arctan2_vjp,
    py=call("np.arctan2"),
    py_scalar=call("math.atan2"),
    c=C.call("atan2"),
    gate="arctan2 gate: (x, -y)/r^2",
    kink=_arctan2_cut,
)
defop(
    "abs",
    numpy=(np.absolute, np.abs, np.fabs),
    eval=np.abs,
    # sign(0) = 0: the even split a central difference sees at the kink
    vjp=lambda g, out, x: (g * apply("sign", x),),
    py=call("np.abs"),
    py_scalar=call("abs"),
    c=C.call("fabs"),
    shape=same_shape,
    gate="abs gate: sign",
    kink=lambda x, **attrs: np.abs(x),
)
defop(
    "sign",
    numpy=(np.sign,),
    eval=np.sign,
    py=call("np.sign"),
    c=C.call("gradgen_sign"),
    shape=same_shape,
    gate="sign: no gradient",
    kink=lambda x, **attrs: np.abs(x),
)


# ---- max / min: the routing gates, ties split evenly (JAX's convention) ----


def _route_vjp(win):
    def vjp(g, out, x, y):
        half_tie = 0.5 * apply("eq", x, y)
        return (g * (apply(win, x, y) + half_tie), g * (apply(win, y, x) + half_tie))

    return vjp


defop(
    "maximum",
    numpy=(np.maximum,),
    eval=np.maximum,
    vjp=_route_vjp("gt"),
    py=call("np.maximum"),
    py_scalar=call("max"),
    c=C.call("gradgen_maximum"),
    gate="max gate: routes",
    kink=lambda x, y, **attrs: np.abs(x - y),
    examples=(
        ("x: f64[2,3]", "np.clip(x, -0.5, 0.5)"),
        ("x: f64[], lo: f64[], hi: f64[]", "np.clip(x, lo, lo + hi * hi)"),
        ("x: f64[2,3], lo: f64[3]", "x.clip(min=lo)"),
    ),
)
defop(
    "minimum",
    numpy=(np.minimum,),
    eval=np.minimum,
    vjp=_route_vjp("lt"),
    py=call("np.minimum"),
    py_scalar=call("min"),
    c=C.call("gradgen_minimum"),
    gate="min gate: routes",
    kink=lambda x, y, **attrs: np.abs(x - y),
    examples=(
        ("x: f64[3], hi: f64[]", "np.clip(x, None, hi)"),
        ("x: f64[2,3], lo: f64[2,1], hi: f64[3]", "np.clip(x, a_min=lo, a_max=lo + np.exp(hi))"),
    ),
)

_MISSING = object()


def _clip_front(args, kwargs, graph):
    """np.clip(x, lo, hi) = minimum(maximum(x, lo), hi), numpy's own definition.

    Built from the routing gates, the gradient goes to x strictly inside [lo, hi] and to the
    bound that clips, and a tie at a bound splits evenly between x and that bound: the
    slope a central difference sees there, (1 + 0) / 2.
    """
    if kwargs.pop("out", None) is not None:
        raise TypeError("out= writes into an array; assign the result to a new name instead")
    names = ("a", "a_min", "a_max")
    given = dict(zip(names, args))
    for new, old in (("min", "a_min"), ("max", "a_max")):  # numpy 2's names for the bounds
        if new in kwargs:
            kwargs[old] = kwargs.pop(new)
    unknown = set(kwargs) - set(names)
    if unknown:
        raise TypeError(f"unsupported keyword {', '.join(sorted(unknown))}")
    # the tracer lifts positional arguments only: a traced bound by keyword is still a Tracer
    given.update({k: getattr(v, "node", v) for k, v in kwargs.items()})
    x, lo, hi = (given.get(n, _MISSING) for n in names)
    lo = None if lo is _MISSING else lo
    hi = None if hi is _MISSING else hi
    if lo is None and hi is None:
        raise ValueError("np.clip needs at least one bound")
    if lo is not None:
        x = graph.apply("maximum", x, lo)
    if hi is not None:
        x = graph.apply("minimum", x, hi)
    return x


NUMPY[np.clip] = _clip_front

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
        c=C.compare(_sym),
        dtype=to_bool,
        gate="compare: no gradient",
        kink=lambda x, y, **attrs: _compare_kink(x, y),
    )


def _compare_kink(x, y):
    """How far a comparison is from flipping; masks compared as masks never flip."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype == bool or y.dtype == bool:
        return np.full(np.broadcast_shapes(x.shape, y.shape), np.inf)
    return np.abs(x - y)


def _where_front(args, kwargs, graph):
    if len(args) == 1:  # the indices where the condition holds (ops/order.py)
        from .order import WHERE_ONE_ARGUMENT

        return WHERE_ONE_ARGUMENT(args, kwargs, graph)
    if len(args) != 3:
        raise TypeError("np.where takes one argument (cond) or three (cond, x, y)")
    return graph.apply("where", *args)


defop(
    "where",
    numpy=(np.where,),
    front=_where_front,
    eval=np.where,
    vjp=lambda g, out, c, x, y: (None, apply("where", c, g, 0.0), apply("where", c, 0.0, g)),
    py=call("np.where"),
    py_scalar=ternary,
    c=C.ternary,
    dtype=lambda dtypes, **attrs: promote(dtypes[1:]),
    gate="where gate: routes by the mask",
)


# ---- the rest of the ufuncs a model writer reaches for ----

_unary(
    "arcsinh",
    np.arcsinh,
    lambda g, out, x: (g / apply("sqrt", x * x + 1.0),),
    "math.asinh",
    gate="arcsinh gate: 1/sqrt(x^2 + 1)",
)
_unary(
    "arccosh",
    np.arccosh,
    lambda g, out, x: (g / apply("sqrt", x * x - 1.0),),
    "math.acosh",
    domain="above_one",
    gate="arccosh gate: 1/sqrt(x^2 - 1)",
)
_unary(
    "arctanh",
    np.arctanh,
    lambda g, out, x: (g / (1.0 - x * x),),
    "math.atanh",
    domain="unit",
    gate="arctanh gate: 1/(1 - x^2)",
)
_unary(
    "cbrt",
    np.cbrt,
    lambda g, out, x: (g / (3.0 * (out * out)),),
    # math.cbrt is new in Python 3.11: numpy's is the same function on floats
    lambda args, node: Expr(f"float(np.cbrt({args[0].text}))", ATOM),
    domain="nonzero",
    gate="cbrt gate: 1/(3 cbrt(x)^2)",
    c="cbrt",
)


def _integer_distance(x, *rest, **attrs):
    """How far x is from the integers, where floor, ceil, trunc and rint jump."""
    return np.abs(x - np.round(x))


for _name, _fn, _scalar in (
    ("floor", np.floor, "math.floor"),
    ("ceil", np.ceil, "math.ceil"),
    ("trunc", np.trunc, None),
    ("rint", np.rint, None),  # half to even, as numpy rounds
):
    defop(
        _name,
        numpy=(_fn,) if _fn is not np.trunc else (np.trunc, np.fix),
        eval=_fn,
        py=call(f"np.{_fn.__name__}"),
        # math's functions return ints: float() keeps the value a float, as numpy's is
        py_scalar=(
            (lambda args, node, _s=_scalar: Expr(f"float({_s}({args[0].text}))", ATOM))
            if _scalar
            else None
        ),
        c=C.call(_name),
        shape=same_shape,
        gate=f"{_name}: no gradient (piecewise constant)",
        kink=_integer_distance,
    )


def _remainder_kink(x, y, **attrs):
    """Distance to a jump of x mod y: where x / y is an integer."""
    q = np.asarray(x / np.where(y == 0, 1.0, y))
    return np.abs(q - np.round(q)) * np.abs(y)


defop(
    "remainder",
    numpy=(np.remainder,),
    eval=np.remainder,
    # x - y floor(x / y): slope 1 in x, -floor(x / y) in y, away from the jumps
    vjp=lambda g, out, x, y: (g, -(g * apply("floor", x / y))),
    py=binop("%", MUL),
    c=C.call("gradgen_remainder"),
    gate="remainder gate: 1, and -floor(x/y)",
    domain="nonzero",
    kink=_remainder_kink,
)
defop(
    "fmod",
    numpy=(np.fmod,),
    eval=np.fmod,
    vjp=lambda g, out, x, y: (g, -(g * apply("trunc", x / y))),
    py=call("np.fmod"),
    py_scalar=call("math.fmod"),
    c=C.call("fmod"),
    gate="fmod gate: 1, and -trunc(x/y)",
    domain="nonzero",
    kink=_remainder_kink,
)
defop(
    "copysign",
    numpy=(np.copysign,),
    eval=np.copysign,
    # |x| with y's sign: the slope in x is sign(x) sign(y); y only flips it
    vjp=lambda g, out, x, y: (g * apply("copysign", 1.0, x) * apply("copysign", 1.0, y), None),
    py=call("np.copysign"),
    py_scalar=call("math.copysign"),
    c=C.call("copysign"),
    gate="copysign gate: sign(x) sign(y)",
    kink=lambda x, y, **attrs: np.minimum(np.abs(x), np.abs(y)),
)
defop(
    "heaviside",
    numpy=(np.heaviside,),
    eval=np.heaviside,
    # a step: no slope in x; its value at 0 is h0's
    vjp=lambda g, out, x, h0: (None, apply("where", apply("eq", x, 0.0), g, 0.0)),
    py=call("np.heaviside"),
    c=C.call("gradgen_heaviside"),
    gate="heaviside: the value at 0 routes to h0",
    kink=lambda x, h0, **attrs: np.abs(x),
)
