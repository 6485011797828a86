"""Sizes that stay symbolic in C: a named dim's size as a polynomial over the dims.

The C target writes loop bounds, offsets and buffer sizes as numbers. For a function with
named dims those numbers must be expressions of the dims (`3 * n`), so that one compiled
file serves every size. `Size` is such a number: a polynomial with integer coefficients
over the named dims, together with its value at the sizes traced. The C emitter computes
with it as with an int:

- arithmetic gives another `Size` (`n * 3 + 1`), printed as C (`(3 * n + 1)`);
- a comparison whose answer is the same for every size (dims are at least 1) is answered;
  one whose answer depends on the size (`n > 4`) is answered at the traced sizes and
  becomes a guard: the C function returns 1 when called with sizes where it differs;
- anything that needs the number itself (`range(n)`, a numpy shape) gets the traced value
  and fixes the dims it reads to their traced sizes (guards `n == 4`), with the reason.

`fit` builds these from the graphs traced at several sizes (`symbolic` puts them in).
GRADGEN_DEBUG_SIZES=1 prints where each guard and each fixed dim comes from.
"""

from __future__ import annotations

import contextlib
import math
import os
import traceback
from fractions import Fraction
from itertools import combinations
from typing import Any, Callable, Iterator

import numpy as np


class Guards:
    """What the code generated with sizes assumes: dims fixed to their traced sizes (and
    why), and conditions on the dims (C text) that must hold."""

    def __init__(self, base: dict[str, int]):
        self.base = dict(base)
        self.fixed: dict[str, str] = {}  # dim -> why it is fixed
        self.conditions: dict[str, None] = {}  # ordered set of C conditions
        self.node: Any = None  # the node being emitted: where a dim gets fixed

    def fix(self, dims: set[str], why: str) -> None:
        for d in sorted(dims):
            self.fixed.setdefault(d, why)

    def tests(self, c_names: dict[str, str]) -> list[str]:
        """C conditions under which a call must return 1, in a stable order."""
        out = [f"{c_names.get(d, d)} != {self.base[d]}" for d in sorted(self.fixed)]
        for cond in self.conditions:
            out.append(f"!({cond})")
        return out


_active: list[Guards] = []


@contextlib.contextmanager
def guarding(guards: Guards) -> Iterator[Guards]:
    """Record what the emitter assumes of sizes into `guards` while inside."""
    _active.append(guards)
    try:
        yield guards
    finally:
        _active.pop()


@contextlib.contextmanager
def unguarded() -> Iterator[None]:
    """Inside, what depends on sizes is answered at the traced sizes and recorded nowhere:
    for decisions that do not shape the code (the Python target's memory thresholds,
    where C reads only the liveness)."""
    base = _active[-1].base if _active else {}
    with guarding(Guards(base)):
        yield


def at_node(node: Any) -> None:
    """The emitter is at `node` now (for the reason a dim gets fixed)."""
    if _active:
        _active[-1].node = node


def _where() -> str:
    """The op that needed a size as a number: the reason a dim gets fixed."""
    node = _active[-1].node if _active else None
    if node is not None and not os.environ.get("GRADGEN_DEBUG_SIZES"):
        return f"{node.op} at line {node.src.line}" if node.src else node.op
    stack = traceback.extract_stack()[:-1]
    if os.environ.get("GRADGEN_DEBUG_SIZES"):
        print("".join(traceback.format_list(stack[-8:])))
    for frame in reversed(stack):
        if "/codegen/" in frame.filename and not frame.filename.endswith("sizes.py"):
            return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} ({frame.name})"
    return "?"


def _poly_add(a: dict, b: dict, sign: int = 1) -> dict:
    out = dict(a)
    for m, c in b.items():
        v = out.get(m, 0) + sign * c
        if v:
            out[m] = v
        else:
            out.pop(m, None)
    return out


def _poly_mul(a: dict, b: dict) -> dict:
    out: dict = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            m = tuple(sorted(ma + mb))
            v = out.get(m, 0) + ca * cb
            if v:
                out[m] = v
            else:
                out.pop(m, None)
    return out


def _shifted(poly: dict) -> dict:
    """The polynomial in e = dim - 1 (every e >= 0 when every dim >= 1)."""
    out: dict = {}
    for m, c in poly.items():
        term = {(): c}
        for d in m:
            term = _poly_mul(term, {(d,): 1, (): 1})
        out = _poly_add(out, term)
    return out


def _bounds(poly: dict) -> tuple[bool, bool, bool, bool]:
    """(>= 0, > 0, <= 0, < 0) for every choice of dims >= 1, as far as the signs of the
    coefficients in dim - 1 can tell (False: not known to hold)."""
    if not poly:
        return True, False, True, False
    s = _shifted(poly)
    const = s.get((), 0)
    nonneg = all(c >= 0 for c in s.values())
    nonpos = all(c <= 0 for c in s.values())
    return nonneg, nonneg and const > 0, nonpos, nonpos and const < 0


def _text(poly: dict, rename: dict[str, str] | None = None) -> str:
    """C text, highest degree first, constant last: `3 * n * m + n - 1`."""
    terms = sorted((m for m in poly if m), key=lambda m: (-len(m), m))
    parts: list[str] = []
    for m in terms + ([()] if () in poly else []):
        c = poly[m]
        factor = " * ".join((rename or {}).get(d, d) for d in m)
        mag = abs(c)
        body = str(mag) if not m else factor if mag == 1 else f"{mag} * {factor}"
        if not parts:
            parts.append(body if c > 0 else f"-{body}")
        else:
            parts.append(("+ " if c > 0 else "- ") + body)
    return " ".join(parts) or "0"


class Size:
    """An integer that is a polynomial over named dims (see the module's docstring)."""

    # poly: {monomial: coefficient}, a monomial the sorted names of its dims with repeats
    # (("n", "n") is n squared, () the constant)
    __slots__ = ("poly", "value")

    def __init__(self, poly: dict, value: int):
        self.poly = poly
        self.value = int(value)

    @staticmethod
    def make(poly: dict, value: int) -> "Size | int":
        """A Size, or a plain int when the polynomial is a constant."""
        if all(m == () for m in poly):
            return int(poly.get((), 0))
        return Size(poly, value)

    @staticmethod
    def dim(name: str, value: int) -> "Size":
        return Size({(name,): 1}, value)

    def dims(self) -> set[str]:
        return {d for m in self.poly for d in m}

    def at(self, point: dict[str, int]) -> int:
        """The value at other sizes of the dims."""
        return sum(c * math.prod(point[d] for d in m) for m, c in self.poly.items())

    # ---- arithmetic ----

    def _lift(self, other: Any) -> tuple[dict, int] | None:
        if isinstance(other, Size):
            return other.poly, other.value
        if isinstance(other, (int, np.integer)) and not isinstance(other, bool):
            return ({(): int(other)} if other else {}), int(other)
        return None

    def __add__(self, other):
        o = self._lift(other)
        if o is None:
            return NotImplemented
        return Size.make(_poly_add(self.poly, o[0]), self.value + o[1])

    __radd__ = __add__

    def __sub__(self, other):
        o = self._lift(other)
        if o is None:
            return NotImplemented
        return Size.make(_poly_add(self.poly, o[0], -1), self.value - o[1])

    def __rsub__(self, other):
        o = self._lift(other)
        if o is None:
            return NotImplemented
        return Size.make(_poly_add(o[0], self.poly, -1), o[1] - self.value)

    def __neg__(self):
        return Size.make({m: -c for m, c in self.poly.items()}, -self.value)

    def __pos__(self):
        return self

    def __mul__(self, other):
        o = self._lift(other)
        if o is None:
            if isinstance(other, float):
                return self.__float__() * other
            return NotImplemented
        return Size.make(_poly_mul(self.poly, o[0]), self.value * o[1])

    __rmul__ = __mul__

    def __floordiv__(self, other):
        if isinstance(other, (int, np.integer)) and other > 0:
            if all(c % other == 0 for c in self.poly.values()):
                return Size.make({m: c // other for m, c in self.poly.items()}, self.value // other)
        return self.__index__() // other

    def __rfloordiv__(self, other):
        return other // self.__index__()

    def __mod__(self, other):
        if isinstance(other, (int, np.integer)) and other > 0:
            if all(c % other == 0 for m, c in self.poly.items() if m):
                return self.poly.get((), 0) % other
        return self.__index__() % other

    def __truediv__(self, other):
        return self.__float__() / other

    def __rtruediv__(self, other):
        return other / self.__float__()

    def __abs__(self):
        return self if self > 0 else -self

    # ---- comparisons: answered for every size, or guarded ----

    def _compare(self, other, op: str) -> bool:
        o = self._lift(other)
        if o is None:
            return NotImplemented  # type: ignore[return-value]
        diff = _poly_add(self.poly, o[0], -1)
        value = self.value - o[1]
        answer = {
            "<": value < 0,
            "<=": value <= 0,
            ">": value > 0,
            ">=": value >= 0,
            "==": value == 0,
            "!=": value != 0,
        }[op]
        ge, gt, le, lt = _bounds(diff)
        known = {
            "<": lt or ge,
            "<=": le or gt,
            ">": gt or le,
            ">=": ge or lt,
            "==": not diff or gt or lt,
            "!=": not diff or gt or lt,
        }[op]
        if known:
            return answer
        if _active:  # the answer at the traced sizes, as a condition on the dims
            rel = op if answer else {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}.get(op)
            if rel is None:  # == / != answered: the condition is the one that held
                rel = "==" if value == 0 else "!="
            if all(c < 0 for m, c in diff.items() if m):  # -n < -1 reads n > 1
                diff = {m: -c for m, c in diff.items()}
                rel = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(rel, rel)
            const = diff.get((), 0)
            lhs = _text({m: c for m, c in diff.items() if m})
            cond = f"{lhs} {rel} {-const}"
            if os.environ.get("GRADGEN_DEBUG_SIZES") and cond not in _active[-1].conditions:
                print(cond, "".join(traceback.format_list(traceback.extract_stack()[-6:-2])))
            _active[-1].conditions.setdefault(cond)
        return answer

    def __lt__(self, other):
        return self._compare(other, "<")

    def __le__(self, other):
        return self._compare(other, "<=")

    def __gt__(self, other):
        return self._compare(other, ">")

    def __ge__(self, other):
        return self._compare(other, ">=")

    # Equality is of the polynomials: n == 4 is false even where n is 4. The emitter asks
    # it to find special cases (the same memory, a size of 1), and the general case is
    # right at every size; a guard would only narrow the sizes the code accepts.
    def __eq__(self, other):
        o = self._lift(other)
        return o is not None and not _poly_add(self.poly, o[0], -1)

    def __ne__(self, other):
        return not self == other

    def __bool__(self):
        return True  # (a polynomial that is not the constant 0)

    def __hash__(self):
        return hash(tuple(sorted(self.poly.items())))

    # ---- the number itself: fixes the dims ----

    def __index__(self) -> int:
        if _active:
            _active[-1].fix(self.dims(), _where())
        return self.value

    __int__ = __index__

    def __float__(self) -> float:
        return float(self.__index__())

    def __str__(self) -> str:
        text = _text(self.poly)
        return text if _is_name(self.poly) else f"({text})"

    def __format__(self, spec: str) -> str:
        return str(self) if not spec else format(self.__index__(), spec)

    def __repr__(self) -> str:
        return f"Size({_text(self.poly)} = {self.value})"


def _is_name(poly: dict) -> bool:
    if len(poly) != 1:
        return False
    ((m, c),) = poly.items()
    return c == 1 and len(m) == 1


def always(a: Any, op: str, b: Any) -> bool:
    """Whether `a op b` holds at every size (">=" or ">"), without a guard."""
    if not (isinstance(a, Size) or isinstance(b, Size)):
        return a >= b if op == ">=" else a > b
    diff = a - b
    if not isinstance(diff, Size):
        return diff >= 0 if op == ">=" else diff > 0
    ge, gt, _, _ = _bounds(diff.poly)
    return ge if op == ">=" else gt


def upper(*xs: Any) -> Any:
    """max(xs) where it is known for every size; else a bound of all of them (their sum:
    sizes are never negative), so that a buffer is large enough at every size."""
    best = xs[0]
    for x in xs[1:]:
        if always(best, ">=", x):
            continue
        best = x if always(x, ">=", best) else best + x
    return best


def number(x: Any) -> int:
    """A size's value at the traced sizes, for ordering only (fixes nothing)."""
    return x.value if isinstance(x, Size) else x


def macro_text(x: Any) -> str:
    """A size as the body of a function-like C macro of the dims: `(3 * (n) + 1)`."""
    if not isinstance(x, Size):
        return str(x)
    return f"({_text(x.poly, {d: f'({d})' for d in x.dims()})})"


def is_one(x: Any) -> bool:
    """Whether x is the literal size 1 (a symbolic size is taken as not one: a loop over a
    dim that happens to have size 1 at run time is still right)."""
    return not isinstance(x, Size) and x == 1


class Ratio:
    """A number in the code that moves with the sizes: n as a float (a count), or an
    integer over a size (np.mean's 1/n, 2/n)."""

    __slots__ = ("num", "den")

    def __init__(self, num: "int | Size", den: "int | Size" = 1):
        self.num, self.den = num, den

    def c_text(self) -> str:
        if isinstance(self.den, int) and self.den == 1:
            return f"(double){self.num}"
        return f"({self.num}.0 / (double){self.den})"

    def __repr__(self) -> str:
        return f"Ratio({self.num} / {self.den})"


def _ratio(values: list[float], base: dict[str, int], points: list[dict]) -> Ratio | None:
    """The Ratio through the values: an integer polynomial of the dims, or a small integer
    over one; or None."""
    for c in (0, 1, 2, 3, 4):  # (0: the values themselves are integers)
        ints = []
        for v in values:
            r = v if c == 0 else c / v if v else 0.0
            if not r or abs(r - round(r)) > 1e-9 * abs(r):
                break
            ints.append(int(round(r)))
        else:
            poly = _fit_one(ints, base, points)
            size = None if poly is None else Size.make(poly, ints[0])
            if isinstance(size, Size):
                return Ratio(size) if c == 0 else Ratio(c, size)
    return None


def involves(value: Any) -> bool:
    """Whether a (nested) value holds a symbolic size."""
    if isinstance(value, Size):
        return True
    if isinstance(value, (tuple, list)):
        return any(involves(v) for v in value)
    if isinstance(value, dict):
        return any(involves(v) for v in value.values())
    return False


def evaluate(value: Any, point: dict[str, int]) -> Any:
    """A (nested) value with its sizes at `point`."""
    if isinstance(value, Size):
        return value.at(point)
    if isinstance(value, tuple):
        return tuple(evaluate(v, point) for v in value)
    if isinstance(value, list):
        return [evaluate(v, point) for v in value]
    if isinstance(value, dict):
        return {k: evaluate(v, point) for k, v in value.items()}
    return value


def free_dims() -> dict[str, int]:
    """The dims not fixed yet, at their traced sizes (none outside `guarding`)."""
    if not _active:
        return {}
    g = _active[-1]
    return {d: v for d, v in g.base.items() if d not in g.fixed}


def lift(compute: Callable[[dict[str, int]], tuple | None], involved: Any) -> tuple | None:
    """`compute(point)` (a flat tuple of ints, or None when it cannot) made symbolic: run at
    the traced sizes and at `samples` of the free dims, each int fitted as a polynomial.
    None when a run gives None, or an int fits no polynomial; then the dims `involved`
    holds are fixed and the caller computes with numbers."""
    free = free_dims()
    base = dict(_active[-1].base) if _active else {}
    runs = []
    points = samples(free) if free else []
    for p in [free] + points:
        got = compute({**base, **p})
        if got is None:
            runs = None
            break
        runs.append(got)
    if runs is not None and free:
        out = []
        for j, v in enumerate(runs[0]):
            vals = [r[j] for r in runs]
            if all(x == v for x in vals):
                out.append(v)
                continue
            poly = _fit_one(vals, free, [free] + points)
            if poly is None:
                break
            out.append(Size.make(poly, v))
        else:
            return tuple(out)
    dims = set()
    _dims_of(involved, dims)
    if _active and dims:
        _active[-1].fix(dims, _where())
    return None


def _dims_of(value: Any, out: set) -> None:
    if isinstance(value, Size):
        out |= value.dims()
    elif isinstance(value, (tuple, list)):
        for v in value:
            _dims_of(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _dims_of(v, out)


# ---- fitting sizes from traces at several sizes ----


def samples(base: dict[str, int]) -> list[dict[str, int]]:
    """The dims to trace at besides `base`: each dim at +1 and +2, each pair at +1, and
    last one point with every dim moved (the check of the fit)."""
    names = sorted(base)
    out = []
    for d in names:
        out += [{**base, d: base[d] + 1}, {**base, d: base[d] + 2}]
    for d, e in combinations(names, 2):
        out.append({**base, d: base[d] + 1, e: base[e] + 1})
    out.append({**base, **{d: base[d] + 3 + k for k, d in enumerate(names)}})
    return out


def _fit_one(values: list[int], base: dict[str, int], points: list[dict[str, int]]) -> dict | None:
    """The polynomial over `base`'s dims (degree <= 2, integer coefficients) through
    values[k] at points[k] (`samples(base)`, base first), checked at the last point; or
    None."""
    names = sorted(base)
    at = {tuple(sorted(p.items())): Fraction(v) for p, v in zip(points, values)}

    def f(**moved: int) -> Fraction:
        return at[tuple(sorted({**base, **moved}.items()))]

    f0 = f()
    poly: dict = {(): f0}
    x = {d: {(d,): Fraction(1), (): Fraction(-base[d])} for d in names}  # dim - base
    one = {d: f(**{d: base[d] + 1}) for d in names}
    for d in names:  # f0 + a x + b x^2 along each dim
        b = (f(**{d: base[d] + 2}) - 2 * one[d] + f0) / 2
        a = one[d] - f0 - b
        poly = _poly_add(poly, _poly_mul({(): a}, x[d]))
        poly = _poly_add(poly, _poly_mul({(): b}, _poly_mul(x[d], x[d])))
    for d, e in combinations(names, 2):  # c x_d x_e
        c = f(**{d: base[d] + 1, e: base[e] + 1}) - one[d] - one[e] + f0
        poly = _poly_add(poly, _poly_mul({(): c}, _poly_mul(x[d], x[e])))
    if any(c.denominator != 1 for c in poly.values()):
        return None
    poly = {m: int(c) for m, c in poly.items() if c}
    check = points[-1]
    predicted = sum(c * math.prod(check[d] for d in m) for m, c in poly.items())
    return poly if predicted == values[-1] else None


class Mismatch(Exception):
    """The graphs traced at two sizes differ in more than their integers."""


def _collect(a: Any, b: Any, out: list, seen: set) -> None:
    """The integers of `a` paired with those of `b` at the same places, in the order
    `_rebuild` walks; Mismatch where anything else differs."""
    from .ir import Graph, Node

    if isinstance(a, Node):
        if not isinstance(b, Node) or a.op != b.op:
            raise Mismatch(a.op)
        return  # (walked where it is defined)
    if isinstance(a, Graph):
        if not isinstance(b, Graph) or len(a.nodes) != len(b.nodes):
            raise Mismatch("the number of nodes")
        if id(a) in seen:
            return
        seen.add(id(a))
        pa = {n.id: k for k, n in enumerate(a.nodes)}
        pb = {n.id: k for k, n in enumerate(b.nodes)}
        if [pa.get(o.id) for o in a.outputs] != [pb.get(o.id) for o in b.outputs]:
            raise Mismatch("outputs")
        for x, y in zip(a.nodes, b.nodes):
            if (x.op, x.dtype, len(x.inputs)) != (y.op, y.dtype, len(y.inputs)):
                raise Mismatch(x.op)
            if [pa.get(i.id) for i in x.inputs] != [pb.get(i.id) for i in y.inputs]:
                raise Mismatch(x.op)
            _collect(tuple(x.shape), tuple(y.shape), out, seen)
            _collect(x.attrs, y.attrs, out, seen)
            if x.op == "const" and x.shape == () and x.dtype in ("f64", "f32"):
                out.append((float(x.value), float(y.value)))  # (may be 1/n: `_ratio`)
            elif x.op == "const":
                _collect(x.value, y.value, out, seen)
        return
    if isinstance(a, bool) or isinstance(b, bool):
        if a is not b and a != b:
            raise Mismatch("a flag")
        return
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        out.append((int(a), int(b)))
        return
    if isinstance(a, (tuple, list)):
        if not isinstance(b, (tuple, list)) or len(a) != len(b):
            raise Mismatch("a sequence")
        for x, y in zip(a, b):
            _collect(x, y, out, seen)
        return
    if isinstance(a, dict):
        if not isinstance(b, dict) or list(a) != list(b):
            raise Mismatch("attributes")
        for k in a:
            _collect(a[k], b[k], out, seen)
        return
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            raise Mismatch("a constant")
        if a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
            return
        # a constant of one number throughout (np.zeros(n)): its shape is the node's
        if a.size and b.size and (a == a.flat[0]).all() and (b == a.flat[0]).all():
            return
        raise Mismatch("a constant")
    if type(a) is not type(b):
        raise Mismatch(type(a).__name__)
    if a != b and not (isinstance(a, float) and np.isnan(a) and np.isnan(b)):
        raise Mismatch(repr(a))


def _rebuild(a: Any, values: Iterator, seen: set, undo: list) -> Any:
    """`a` with its integers replaced by `next(values)`, in `_collect`'s order; node
    shapes and attributes are set in place, their old values appended to `undo`."""
    from .ir import Graph, Node

    if isinstance(a, Node):
        return a
    if isinstance(a, Graph):
        if id(a) not in seen:
            seen.add(id(a))
            for n in a.nodes:
                shape = _rebuild(tuple(n.shape), values, seen, undo)
                attrs = _rebuild(n.attrs, values, seen, undo)
                value = n.value
                if n.op == "const" and n.shape == () and n.dtype in ("f64", "f32"):
                    fitted = next(values)
                    value = fitted if isinstance(fitted, Ratio) else value
                elif n.op == "const":
                    _rebuild(n.value, values, seen, undo)
                undo.append((n, n.shape, n.attrs, n.value))
                n.shape, n.attrs, n.value = shape, attrs, value
        return a
    if isinstance(a, bool):
        return a
    if isinstance(a, (int, np.integer)):
        return next(values)
    if isinstance(a, tuple):
        return tuple(_rebuild(x, values, seen, undo) for x in a)
    if isinstance(a, list):
        return [_rebuild(x, values, seen, undo) for x in a]
    if isinstance(a, dict):
        return {k: _rebuild(v, values, seen, undo) for k, v in a.items()}
    return a


def fit(
    graphs: list, trace: Callable[[dict[str, int]], list | None], base: dict[str, int]
) -> tuple[list, dict[str, str]]:
    """The integers of `graphs` (traced at `base`) as polynomials over the dims, from the
    same graphs traced at other sizes (`trace(dims)`: the graphs, or None if that size
    cannot be traced). Returns (sizes in `_collect`'s order, {dim: why it stays fixed})."""
    ref: list = []
    _collect(graphs, graphs, ref, set())
    values = [v for v, _ in ref]
    fixed: dict[str, str] = {}
    cache: dict[tuple, list | None] = {}

    def paired(point: dict[str, int]) -> list[int]:
        key = tuple(sorted(point.items()))
        if key not in cache:
            other = trace(point)
            got: list = []
            try:
                if other is None:
                    raise Mismatch("it does not trace")
                _collect(graphs, other, got, set())
                cache[key] = [b for _, b in got]
            except Mismatch as e:
                cache[key] = None
                cache[key + ("why",)] = str(e)  # type: ignore[assignment]
        found = cache[key]
        if found is None:
            raise Mismatch(cache[key + ("why",)])  # type: ignore[arg-type]
        return found

    while True:
        free = {d: v for d, v in base.items() if d not in fixed}
        if not free:
            return values, fixed
        points = samples(free)
        columns = []
        for p in points:
            try:
                columns.append(paired({**base, **p}))
            except Mismatch as e:
                moved = [d for d in free if p[d] != free[d]]
                for d in moved if len(moved) == 1 or p is points[-1] else ():
                    fixed.setdefault(d, f"the code at {d}={p[d]} differs ({e})")
                break
        else:
            sizes: list = []
            for j, v in enumerate(values):
                vals = [v] + [c[j] for c in columns]
                if all(x == v for x in vals):
                    sizes.append(v)
                    continue
                if isinstance(v, float):  # a number of the code: 1/n, or else fixed
                    ratio = _ratio(vals, free, [free] + points)
                    if ratio is not None:
                        sizes.append(ratio)
                        continue
                    poly = None
                else:
                    poly = _fit_one(vals, free, [free] + points)
                if poly is None:
                    for d in free:  # the dims whose moves change it
                        alone = [
                            c
                            for c, p in zip(columns, points)
                            if all((p[e] != free[e]) == (e == d) for e in free)
                        ]
                        if any(c[j] != v for c in alone):
                            fixed.setdefault(d, "a size that is no polynomial of the dims")
                    break
                sizes.append(Size.make(poly, v))
            else:
                return sizes, fixed
            continue
        if not any(d in fixed for d in free):  # (cannot happen: a failure fixes a dim)
            fixed.update({d: "the code differs at another size" for d in free})


@contextlib.contextmanager
def symbolic(graphs: list, sizes: list) -> Iterator[None]:
    """Inside, the graphs' node shapes and attributes hold `sizes` (from `fit`); restored
    on the way out."""
    undo: list = []
    _rebuild(graphs, iter(sizes), set(), undo)
    try:
        yield
    finally:
        for n, shape, attrs, value in reversed(undo):
            n.shape, n.attrs, n.value = shape, attrs, value
