"""Python expression text with its precedence, so emitters add only the parentheses needed."""

from __future__ import annotations

from typing import Any, Callable

ATOM = 100  # names, calls, subscripts, positive literals
POWER = 14
UNARY = 13
MUL = 12
ADD = 11
COMPARE = 6
TERNARY = 1


class Expr:
    """Python source text and how tightly it binds (a class with slots: the emitter makes
    one for every node it visits)."""

    __slots__ = ("text", "prec")

    def __init__(self, text: str, prec: int):
        self.text = text
        self.prec = prec

    def __repr__(self) -> str:
        return f"Expr({self.text!r}, {self.prec})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and (self.text, self.prec) == (other.text, other.prec)

    def __hash__(self) -> int:
        return hash((self.text, self.prec))


def wrap(e: Expr, at_least: int) -> str:
    """`e` as an operand that must bind at least as tightly as `at_least`."""
    return e.text if e.prec >= at_least else f"({e.text})"


def dtype_kw(dtype: str) -> str:
    """`, dtype=...` for a new array of an IR dtype (nothing for float64, numpy's default)."""
    return {"f32": ", dtype=np.float32", "bool": ", dtype=bool", "i64": ", dtype=np.int64"}.get(
        dtype, ""
    )


def name(text: str) -> Expr:
    return Expr(text, ATOM)


def literal(value: float | int | bool) -> Expr:
    """A Python literal; negative numbers bind like unary minus."""
    if isinstance(value, float) and value != value:
        return Expr('float("nan")', ATOM)
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return Expr('float("inf")' if value > 0 else '-float("inf")', ATOM if value > 0 else UNARY)
    text = repr(value)
    return Expr(text, UNARY if text.startswith("-") else ATOM)


# An op's emission: its operands' expressions and the node -> the node's expression.
Emit = Callable[[list[Expr], Any], Expr]


def binop(symbol: str, prec: int) -> Emit:
    """`a SYMBOL b`, left-associative: the right operand must bind tighter (floats are not associative)."""

    tighter = prec + 1

    def emit(args: list[Expr], node) -> Expr:
        a, b = (
            args[0],
            args[1],
        )  # (`wrap`, written out: every scalar operator of unrolled code is here)
        left = a.text if a.prec >= prec else f"({a.text})"
        right = b.text if b.prec >= tighter else f"({b.text})"
        return Expr(f"{left} {symbol} {right}", prec)

    return emit


def compare(symbol: str) -> Emit:
    """A comparison; never chained, so both sides bind tighter."""

    def emit(args: list[Expr], node) -> Expr:
        return Expr(f"{wrap(args[0], COMPARE + 1)} {symbol} {wrap(args[1], COMPARE + 1)}", COMPARE)

    return emit


def power(args: list[Expr], node) -> Expr:
    return Expr(f"{wrap(args[0], ATOM)} ** {wrap(args[1], UNARY)}", POWER)


def negate(args: list[Expr], node) -> Expr:
    return Expr(f"-{wrap(args[0], UNARY)}", UNARY)


def call(fn: str, **fixed: str) -> Emit:
    """`fn(arg, ...)` plus keyword arguments fixed at declaration."""

    extra = [f"{k}={v}" for k, v in fixed.items()]

    def emit(args: list[Expr], node) -> Expr:
        if len(args) == 1 and not extra:  # (math.tanh(t): one argument, the common case)
            return Expr(f"{fn}({args[0].text})", ATOM)
        parts = [a.text for a in args] + extra
        return Expr(f"{fn}({', '.join(parts)})", ATOM)

    return emit


def ternary(args: list[Expr], node) -> Expr:
    cond, a, b = args
    return Expr(
        f"{wrap(a, TERNARY + 1)} if {wrap(cond, TERNARY + 1)} else {wrap(b, TERNARY + 1)}", TERNARY
    )
