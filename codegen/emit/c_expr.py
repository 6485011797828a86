"""C expression text with its precedence, and the C forms the op table declares.

The op table's `c` column holds, per op, one of:
- an `Emit` (operand expressions, node -> expression): the op's value at one element, for
  elementwise ops; the C emitter puts it inside the loop over the output (or alone, for
  scalars), with its operands read at the broadcast index;
- a `Reduction`: the accumulator's start value and update, for sum / mean / prod / max / min;
- `MATMUL`, `OUTER` or `VIEW`: loop nests and strided views the emitter writes itself;
- `KERNEL`: an algorithm (linear algebra, argsort, argmax, a gather at computed indices),
  calls of static helpers with scratch in `work`, written by `emit/c_kernels.py`.

Helpers (`gradgen_sign`, ...) are small static functions written into a C file only when
it calls them, as CasADi's generated code does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .expr import Emit, Expr, wrap

ATOM = 100  # names, calls, subscripts, positive literals
UNARY = 14
MUL = 13
ADD = 12
RELATION = 10  # < <= > >=
EQUALITY = 9  # == !=
TERNARY = 3


def literal(value: float | int | bool) -> Expr:
    """A C double literal (C99: INFINITY and NAN come from <math.h>)."""
    if isinstance(value, (bool,)) or (isinstance(value, int) and not isinstance(value, float)):
        value = float(value)
    if value != value:
        return Expr("NAN", ATOM)
    if math.isinf(value):
        return Expr("INFINITY", ATOM) if value > 0 else Expr("-INFINITY", UNARY)
    text = repr(float(value))
    return Expr(text, UNARY if text.startswith("-") else ATOM)


def binop(symbol: str, prec: int) -> Emit:
    """`a SYMBOL b`, left-associative: the right operand binds tighter."""

    def emit(args: list[Expr], node) -> Expr:
        return Expr(f"{wrap(args[0], prec)} {symbol} {wrap(args[1], prec + 1)}", prec)

    return emit


def compare(symbol: str) -> Emit:
    """A comparison, 1 or 0 (an int, which C converts to 1.0 / 0.0 where a double is read)."""
    prec = EQUALITY if symbol in ("==", "!=") else RELATION

    def emit(args: list[Expr], node) -> Expr:
        return Expr(f"{wrap(args[0], prec + 1)} {symbol} {wrap(args[1], prec + 1)}", prec)

    return emit


def negate(args: list[Expr], node) -> Expr:
    """`-x`; `-(-x)` for an operand that is itself negative (`--x` is a decrement)."""
    text = wrap(args[0], UNARY)
    return Expr(f"-({text})" if text.startswith("-") else f"-{text}", UNARY)


def call(fn: str) -> Emit:
    """`fn(arg, ...)`: a <math.h> function or a helper."""

    def emit(args: list[Expr], node) -> Expr:
        return Expr(f"{fn}({', '.join(a.text for a in args)})", ATOM)

    return emit


def ternary(args: list[Expr], node) -> Expr:
    cond, a, b = args
    return Expr(f"{wrap(cond, TERNARY + 1)} ? {wrap(a, TERNARY + 1)} : {wrap(b, TERNARY)}", TERNARY)


def reciprocal(args: list[Expr], node) -> Expr:
    return Expr(f"1.0 / {wrap(args[0], MUL + 1)}", MUL)


def square(args: list[Expr], node) -> Expr:
    """`x * x` for a name or an element; a helper call for a longer operand (computed once)."""
    if args[0].prec == ATOM and "(" not in args[0].text:
        return Expr(f"{args[0].text} * {args[0].text}", MUL)
    return Expr(f"gradgen_square({args[0].text})", ATOM)


@dataclass(frozen=True)
class Reduction:
    """A reduction as an accumulator: `acc = init`, `update` for each element `x` (a name),
    then `acc = finish` (`n` the count of elements reduced into each result)."""

    init: str
    update: str  # C statement over {acc} and {x}
    finish: str = ""  # C expression over {acc} and {n}, or "" for none


@dataclass(frozen=True)
class Form:
    """A form the emitter writes itself: a loop nest or a strided view."""

    kind: str


MATMUL = Form("matmul")
OUTER = Form("outer")
VIEW = Form("view")  # an element-moving op as a strided view of its input: no copy
KERNEL = Form("kernel")  # calls of the helpers of emit/c_kernels.py

# Helpers: small pure functions, written into the C file only when called. numpy's
# maximum / minimum / sign return nan for a nan operand, which fmax and fmin would not.
HELPERS = {
    "gradgen_square": "static double gradgen_square(double x) { return x * x; }",
    "gradgen_sign": (
        "static double gradgen_sign(double x) { return x > 0.0 ? 1.0 : x < 0.0 ? -1.0 : x; }"
    ),
    "gradgen_maximum": (
        "static double gradgen_maximum(double x, double y) " "{ return x > y || x != x ? x : y; }"
    ),
    "gradgen_minimum": (
        "static double gradgen_minimum(double x, double y) " "{ return x < y || x != x ? x : y; }"
    ),
    # numpy's remainder (Python's %): the sign of the divisor, unlike C's fmod
    "gradgen_remainder": (
        "static double gradgen_remainder(double x, double y) "
        "{ double r = fmod(x, y); return r != 0.0 && (r < 0.0) != (y < 0.0) ? r + y : r; }"
    ),
    "gradgen_heaviside": (
        "static double gradgen_heaviside(double x, double h0) "
        "{ return x < 0.0 ? 0.0 : x > 0.0 ? 1.0 : x == 0.0 ? h0 : x; }"
    ),
    # log(exp(a) + exp(b)) without overflow; a running logsumexp starts at -INFINITY
    "gradgen_logaddexp": (
        "static double gradgen_logaddexp(double a, double b) "
        "{ double m = a > b || a != a ? a : b; "
        "return m == -INFINITY ? m : m + log1p(exp(-fabs(a - b))); }"
    ),
}

# the kernels' helpers (LU, Jacobi, Householder, argsort), written into a file the same way
from .c_kernels import KERNELS  # noqa: E402

HELPERS.update(KERNELS)
