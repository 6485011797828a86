"""Random well-typed numpy programs for fuzzing gradgen, and the machinery to judge them.

The generator reads the op table (`codegen.ops.OPS` / `ops.NUMPY`) when it runs, so an op
declared tomorrow joins the fuzzing without an edit here:

- every ufunc the tracer maps to an op is called by its numpy name (and by its Python
  operator, where one exists), with the arity numpy reports;
- every op's `examples` are templates: the example's parameters are replaced by generated
  subexpressions of the same shapes;
- `sum`, `reshape`, indexing and `np.where` also get shape-generic forms (random axes,
  keepdims, slices with steps, new axes, -1 in reshapes), used when those ops exist.

Each generated expression carries its value at a few sample points (drawn like the check
draws its points), so the generator keeps every input inside its op's `domain`
(positive, unit, nonzero) with bounded wrappers such as `np.exp(np.tanh(e))`, and rescales
values that grow large. All choices go through a `Chooser`: hypothesis backs it in the
tests (so failures shrink), a seeded `random.Random` backs the seed sweep, and a recorded
list of choices replays (and shrinks) a sweep failure.

Judging a program (`judge`): compile it for a target, import the result, run gradgen's own
numeric check, compare the generated module with the reference IR interpreter and, when
jax is importable, with `jax.vjp` of the same source run on `jax.numpy`.

Seed sweep, collecting every failure with a shrunk reproduction:

    python tests/fuzzgen.py --seeds 0:10000 --jobs 2 --report fuzz-report.md
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
for _p in (HERE, HERE.parent):  # the checkout's own packages, as tests/conftest.py does
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from codegen import check, ir, memory, ops, passes  # noqa: E402
from codegen.errors import GradgenError  # noqa: E402
from codegen.passes import scan, widen  # noqa: E402
from codegen.pipeline import compile_file  # noqa: E402
from codegen.write import write_atomic  # noqa: E402

# ---------------------------------------------------------------------------------------
# Choices
# ---------------------------------------------------------------------------------------


class Chooser:
    """Where every random choice comes from. By convention the lowest value is the simplest."""

    def int(self, lo: int, hi: int) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[self.int(0, len(seq) - 1)]

    def chance(self, percent: int) -> bool:
        """True with probability `percent`/100; True is the simpler branch (it shrinks to it)."""
        return self.int(0, 99) < percent


class HypothesisChooser(Chooser):
    """Choices drawn from hypothesis's `st.data()`, so failing programs shrink."""

    def __init__(self, data: Any):
        from hypothesis import strategies as st

        self.data = data
        self.st = st

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi)) if hi > lo else lo


class ReplayChooser(Chooser):
    """Replays `prefix` (clamped to each range), then draws from `rng` or takes the simplest.

    `choices` records what was used, so a seeded program can be replayed and shrunk.
    """

    def __init__(self, rng: random.Random | None = None, prefix: Sequence[int] = ()):
        self.rng = rng
        self.prefix = list(prefix)
        self.choices: list[int] = []

    def int(self, lo: int, hi: int) -> int:
        i = len(self.choices)
        if i < len(self.prefix):
            v = min(max(self.prefix[i], lo), hi)
        elif self.rng is not None:
            v = self.rng.randint(lo, hi)
        else:
            v = lo
        self.choices.append(v)
        return v


# ---------------------------------------------------------------------------------------
# The forms the generator can write, read from the op table
# ---------------------------------------------------------------------------------------

HOLE = "__h{}__"
HOLE_RE = re.compile(r"__h(\d+)__")

# Python spellings of ufuncs, besides np.NAME(...). Pure numpy knowledge, not gradgen's.
OPERATORS: dict[Any, list[str]] = {
    np.add: ["{0} + {1}"],
    np.subtract: ["{0} - {1}"],
    np.multiply: ["{0} * {1}"],
    np.true_divide: ["{0} / {1}"],
    np.power: ["{0} ** {1}"],
    np.negative: ["-{0}"],
    np.absolute: ["abs({0})"],
    np.greater: ["{0} > {1}"],
    np.greater_equal: ["{0} >= {1}"],
    np.less: ["{0} < {1}"],
    np.less_equal: ["{0} <= {1}"],
    np.equal: ["{0} == {1}"],
    np.not_equal: ["{0} != {1}"],
}

# Input families. Each has a probe grid (the range the generator's values keep to: it
# rescales anything beyond LARGE) and bounded wrappers that put any value inside it.
LARGE = 4.0  # exp, sinh, cosh grow fast: keep what feeds them small
_GRID = np.linspace(0.3, 3.0, 1001)
FAMILIES: dict[str, np.ndarray] = {
    "real": np.linspace(-LARGE, LARGE, 4001),
    "positive": _GRID,
    "nonzero": np.concatenate([-_GRID[::-1], _GRID]),
    "unit": np.linspace(-0.9, 0.9, 1001),
    "above_one": np.linspace(1.1, 3.0, 1001),  # arccosh
}
WRAPPERS: dict[str, list[str]] = {  # {0}: the value; "small" ones only for |value| <= 1
    "positive": ["np.exp(np.tanh({0}))", "1.5 + np.tanh({0})"],
    "positive-small": ["np.exp({0})", "{0} * {0} + 0.5"],
    "nonzero": ["1.5 + np.tanh({0})", "np.tanh({0}) - 1.5", "np.exp(np.tanh({0}))"],
    "nonzero-small": ["-np.exp({0})"],
    "unit": ["0.9 * np.tanh({0})", "np.tanh({0}) / 2", "0.8 * np.sin({0})"],
    "above_one": ["2.1 + np.tanh({0})", "1.1 + np.exp(np.tanh({0}))"],
    "above_one-small": ["{0} * {0} + 1.5"],
}
DOMAIN_OK = {  # which known facts about a value satisfy each family
    "real": {"real", "positive", "nonzero", "unit", "above_one"},
    "positive": {"positive", "above_one"},
    "nonzero": {"positive", "nonzero", "above_one"},
    "unit": {"unit"},
    "above_one": {"above_one"},
}
CONDITIONING = 50.0  # a family fits an argument when |f'| <= this * (1 + |f|) on its grid


def _fits(f: Callable[[np.ndarray], np.ndarray], grid: np.ndarray, kinked: bool) -> bool:
    """Whether `f` is finite and well-conditioned on `grid` (where central differences work).

    An op with kinks (abs, max, sign, ...) is only asked to be finite: the check keeps its
    points away from the kinks.
    """
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = np.asarray(f(grid), dtype=np.float64)
    except Exception:
        return False
    if y.shape != grid.shape or not np.all(np.isfinite(y)):
        return False
    if kinked:
        return True
    slope = np.abs(np.gradient(y, grid))
    return bool(np.all(slope <= CONDITIONING * (1.0 + np.abs(y))))


def argument_domains(
    declared: str, nin: int, f: Callable[..., np.ndarray], kinked: bool = False
) -> tuple[str, ...]:
    """Per argument, the first family (declared first) on which `f` behaves, others at 1.5.

    The op table declares one domain per op; probing finds, e.g., that only a divisor
    must stay away from zero, or that tan needs (-1, 1) even though any real is allowed.
    """
    order = ([declared] if declared in FAMILIES else []) + list(FAMILIES)
    out = []
    for i in range(nin):

        def one(t: np.ndarray, i: int = i) -> np.ndarray:
            return f(*[t if k == i else np.full_like(t, 1.5) for k in range(nin)])

        out.append(next((name for name in order if _fits(one, FAMILIES[name], kinked)), "unit"))
    return tuple(out)


# Constants a binary op may take instead of a subexpression, by the domain they must meet.
# 0, 1 and -1 are there on purpose: they feed the simplifier's rules.
LITERALS = {
    "real": ["0.0", "1.0", "-1.0", "0.5", "2.0", "-3.0", "2", "3"],
    "positive": ["1.0", "0.5", "2.0", "2", "3", "1.5"],
    "nonzero": ["1.0", "-1.0", "2.0", "0.5", "-0.5", "3"],
    "unit": ["0.0", "0.5", "-0.5", "0.25"],
    "above_one": ["1.5", "2.0", "3"],
}


@dataclass(frozen=True)
class Form:
    """One way of writing an op: a template with holes `__h0__`, `__h1__`, ..."""

    op: str
    kind: str  # ufunc | example | where | mask | sum | reshape | index
    template: str = ""
    nin: int = 0
    domains: tuple[str, ...] = ()
    in_shapes: tuple[tuple[int, ...], ...] | None = None  # examples: fixed input shapes
    out_shape: tuple[int, ...] | None = None  # examples: fixed output shape
    dtype: str = "f64"  # of the result: f64, or bool for a comparison

    @property
    def label(self) -> str:
        text = HOLE_RE.sub(lambda m: "xyzw"[int(m.group(1))], self.template) or self.kind
        return f"{self.op}:{text}"


@dataclass
class Catalog:
    """Float-valued forms grouped by op name, condition forms, and ops nothing reaches."""

    forms: dict[str, list[Form]]
    conditions: list[Form]
    uncovered: list[str]
    names: set[str]  # names the templates use or bind (t in `(t := x.copy())`): not for us

    @property
    def op_names(self) -> list[str]:
        return list(self.forms)

    def all_forms(self) -> list[Form]:
        return [f for fs in self.forms.values() for f in fs] + self.conditions


def _holes(n: int) -> list[str]:
    return [HOLE.format(i) for i in range(n)]


def _probe_ufunc(fn: np.ufunc, front: Callable) -> ir.Node | None:
    """Which op (and output dtype) the tracer makes of `fn`: run its front on a scratch graph."""
    graph = ir.Graph()
    args = tuple(graph.param(f"p{i}", (3,), "f64") for i in range(fn.nin))
    try:
        node = front(args, {}, graph)
    except Exception:
        return None
    return node if isinstance(node, ir.Node) else None


def _parse_params(params: str) -> list[tuple[str, tuple[int, ...]]]:
    """`"x: f64[2,3], y: f64[]"` -> [("x", (2, 3)), ("y", ())]."""
    out = []
    for name, dims in re.findall(r"(\w+)\s*:\s*f(?:64|32)\[([^\]]*)\]", params):
        out.append((name, tuple(int(d) for d in dims.split(",") if d.strip())))
    return out


def _example_form(op: ops.Op, params: str, expr: str) -> Form | None:
    """An op's test example as a template, its parameters replaced by holes."""
    parsed = _parse_params(params)
    names = {name: i for i, (name, _) in enumerate(parsed)}
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return None

    class Holes(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            if node.id in names:
                return ast.copy_location(ast.Name(HOLE.format(names[node.id]), ast.Load()), node)
            return node

    template = ast.unparse(Holes().visit(tree))
    in_shapes = tuple(s for _, s in parsed)
    try:
        rng = np.random.default_rng(0)
        value = _evaluate(template, [rng.uniform(0.5, 1.5, s) for s in in_shapes])
    except Exception:
        return None
    if value.dtype == np.bool_:
        return None

    def probe(*ts: np.ndarray) -> np.ndarray:  # every element of each input set to t
        coarse = [t[::10] for t in ts]
        return np.array(
            [
                float(
                    np.sum(
                        _evaluate(template, [np.full(s, v[j]) for s, v in zip(in_shapes, coarse)])
                    )
                )
                for j in range(len(coarse[0]))
            ]
        )

    domains = argument_domains(
        op.domain, len(parsed), lambda *ts: _expand(probe(*ts), ts[0]), op.kink is not None
    )
    return Form(op.name, "example", template, len(parsed), domains, in_shapes, tuple(value.shape))


def _expand(coarse: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A probe computed on every 10th grid point, interpolated back onto the grid."""
    return np.interp(grid, grid[::10], coarse)


_CATALOG: dict[tuple, Catalog] = {}


def catalog() -> Catalog:
    """Every form the generator can write, built from the op table as it is now."""
    key = tuple(sorted(ops.OPS)) + tuple(id(f) for f in ops.NUMPY)
    if key in _CATALOG:
        return _CATALOG[key]
    forms: dict[str, list[Form]] = {}
    conditions: list[Form] = []
    for fn, front in ops.NUMPY.items():
        if not isinstance(fn, np.ufunc) or fn.signature is not None:
            continue  # generalized ufuncs (matmul, vecdot) have core dims: their examples serve
        node = _probe_ufunc(fn, front)
        if node is None or node.op not in ops.OPS:
            continue
        op = ops.OPS[node.op]
        kinked = op.kink is not None or node.dtype == "bool"
        domains = argument_domains(op.domain, fn.nin, fn, kinked)
        spellings = [f"np.{fn.__name__}({', '.join(_holes(fn.nin))})"]
        spellings += [s.format(*_holes(fn.nin)) for s in OPERATORS.get(fn, [])]
        for s in spellings:
            form = Form(op.name, "ufunc", s, fn.nin, domains, dtype=node.dtype)
            if node.dtype == "bool":
                conditions.append(form)
            elif node.dtype == "f64":
                forms.setdefault(op.name, []).append(form)
    have = set(ops.OPS)
    numpy_fns = set(ops.NUMPY)
    if "sum" in have and np.sum in numpy_fns:
        forms.setdefault("sum", []).append(Form("sum", "sum"))
    if "reshape" in have and np.reshape in numpy_fns:
        forms.setdefault("reshape", []).append(Form("reshape", "reshape"))
    if "index" in have:
        forms.setdefault("index", []).append(Form("index", "index"))
    if "where" in have and np.where in numpy_fns and conditions:
        forms.setdefault("where", []).append(Form("where", "where", nin=3))
    if "mul" in forms and conditions:
        forms["mul"].append(Form("mul", "mask", nin=2))
    for op in sorted(ops.OPS.values(), key=lambda o: o.name):
        for params, expr in op.examples:
            form = _example_form(op, params, expr)
            if form is not None:
                forms.setdefault(op.name, []).append(form)
    reached = set(forms) | {f.op for f in conditions}
    uncovered = sorted(n for n, o in ops.OPS.items() if not o.internal and n not in reached)
    names = {
        node.id
        for fs in forms.values()
        for f in fs
        if f.template
        for node in ast.walk(ast.parse(f.template, mode="eval"))
        if isinstance(node, ast.Name) and not HOLE_RE.fullmatch(node.id)
    }
    result = Catalog(forms, conditions, uncovered, names)
    _CATALOG[key] = result
    return result


# ---------------------------------------------------------------------------------------
# Values: expression text plus its value at the sample points
# ---------------------------------------------------------------------------------------

SAMPLERS: list[Callable[[np.random.Generator, tuple], np.ndarray]] = [
    # what the check draws (codegen/check.py draw_point), plus a wider normal
    lambda r, s: r.standard_normal(s),
    lambda r, s: r.uniform(0.5, 1.5, s),
    lambda r, s: r.uniform(-0.9, 0.9, s),
    lambda r, s: r.uniform(0.1, 0.9, s),
    lambda r, s: 2.5 * r.standard_normal(s),
]


@dataclass
class Value:
    text: str
    shape: tuple[int, ...]
    samples: list[np.ndarray]
    dtype: str = "f64"
    domain: str = "real"  # what holds by construction
    literal: bool = False
    traced: bool = True  # depends on a parameter (module constants and literals do not)
    pyfloat: bool = False  # a Python float at run time: no x[...], no x.method()

    @property
    def magnitude(self) -> float:
        return max(float(np.max(np.abs(s))) if np.size(s) else 0.0 for s in self.samples)

    @property
    def finite(self) -> bool:
        return all(np.all(np.isfinite(s)) for s in self.samples)


def _atomic(text: str) -> bool:
    """Whether `text` can take a subscript, a method call or an operator without parentheses."""
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return False
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float)) and node.value >= 0
    return isinstance(node, (ast.Name, ast.Call, ast.Subscript, ast.Attribute))


def _operand(text: str) -> str:
    return text if _atomic(text) else f"({text})"


def _postfix_holes(template: str) -> set[int]:
    """The holes the template subscripts or calls a method on: `__h0__[...]`, `__h0__.sum()`."""
    return {int(m.group(1)) for m in re.finditer(r"__h(\d+)__\s*[\[.]", template)}


def fill(template: str, texts: Sequence[str]) -> str:
    """The template with each hole replaced by its (parenthesized if needed) operand."""
    return HOLE_RE.sub(lambda m: _operand(texts[int(m.group(1))]), template)


def _evaluate(template: str, values: Sequence[Any]) -> np.ndarray:
    names = [f"_a{i}" for i in range(len(values))]
    text = HOLE_RE.sub(lambda m: names[int(m.group(1))], template)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(eval(text, {"np": np, **dict(zip(names, values))}))


# ---------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------

# Names that collide with what generated code uses (t0, g_x0, value, saved, math, f, ...).
LOCAL_NAMES = ["a", "b", "t0", "t1", "g_x0", "tmp", "value", "saved", "grads", "out", "math"]
PARAM_NAMES = ["w", "b", "t0", "g_x0", "f", "value", "saved", "grads", "math"]
# Parameter names that trigger a known, open bug (each has an xfail regression test in
# test_fuzz.py): left out so that fuzzing finds new bugs. Remove a name once it is fixed.
AVOID_PARAM_NAMES: set[str] = set()


@dataclass
class Param:
    name: str
    shape: tuple[int, ...]
    annotation: str  # as written, "" for none
    samples: list[np.ndarray]


@dataclass
class Program:
    """A generated expr.py."""

    source: str
    passes: list[str] | None = None  # the passes enabled (None: the default, all)
    ops: set[str] = field(default_factory=set)
    choices: list[int] = field(default_factory=list)


@dataclass
class Limits:
    max_depth: int = 8
    max_ops: int = 24
    max_ndim: int = 3
    max_dim: int = 4


class Generator:
    """Builds one program top-down: `expr(shape, depth)` returns a Value of exactly `shape`."""

    def __init__(self, chooser: Chooser, limits: Limits | None = None):
        self.c = chooser
        self.limits = limits or Limits()
        self.cat = catalog()
        self.params: list[Param] = []
        self.consts: list[tuple[str, np.ndarray]] = []
        self.lines: list[str] = []
        self.locals: list[Value] = []
        self.names: set[str] = {"f", "np"} | self.cat.names
        self.ops_left = self.limits.max_ops
        self.used: set[str] = set()
        self.named_dim = False

    # ---- the whole program
    def program(self) -> Program:
        self.depth = depth = self.c.int(1, self.limits.max_depth)
        shape = self.shape()
        value = self.expr(shape, depth)
        if shape and "sum" in self.cat.forms and self.c.chance(70):
            value = self.reduce_all(value)
        if not self.params or value.literal:
            value = self.binary_with_new_param(value)
        text = value.text
        if self.c.int(0, 99) >= 75:  # (a choice of 0, where shrinking goes: none)
            text = self.control_flow(text)
        enabled = None
        if self.c.int(0, 99) >= 75:  # a quarter of the programs run with some passes off
            enabled = [name for name in passes.NAMES if self.c.chance(50)]
        return Program(
            self.render(text), enabled, set(self.used), list(getattr(self.c, "choices", []))
        )

    def control_flow(self, text: str) -> str:
        """The result through a branch on a traced test, a loop kept as a loop (600 steps),
        an unrolled loop with a break on a traced test, or a while loop to a tolerance."""
        self.lines.append(f"cf_s = {text}")
        kind = self.c.int(0, 3)
        if kind == 0:
            self.lines += [
                "if np.sum(cf_s) > 0.0:",
                "    cf_r = np.tanh(cf_s) * 1.5",
                "elif np.sum(cf_s) < -1.0:",
                "    cf_r = cf_s * cf_s",
                "else:",
                "    cf_r = cf_s - 0.25",
            ]
        elif kind == 1:
            steps = 600 if self.c.chance(50) else 3
            self.lines += [
                "cf_r = cf_s * 0.0",
                f"for cf_k in range({steps}):",
                "    cf_r = 0.5 * cf_r + np.sin(cf_s)",
            ]
        elif kind == 2:
            self.lines += [
                "cf_r = cf_s * 0.0",
                "for cf_k in range(4):",
                "    cf_r = cf_r + cf_s * (cf_k + 1.0)",
                "    if np.sum(cf_r) > 2.0:",
                "        break",
            ]
        else:
            self.lines += [
                "cf_r = np.tanh(cf_s) + 2.0",
                "while np.sum(cf_r * cf_r) > 1e-6:  # gradgen: max 60",
                "    cf_r = 0.25 * cf_r",
            ]
        return "cf_r"

    def render(self, ret: str) -> str:
        lines = ['"""A program written by tests/fuzzgen.py."""', "", "import numpy as np", ""]
        if self.named_dim:
            lines += ['DIMS = {"n": 3}', ""]
        for name, value in self.consts:
            lines.append(f"{name} = np.array({value.tolist()!r})")
        if self.consts:
            lines.append("")
        params = ", ".join(
            p.name + (f": {p.annotation}" if p.annotation else "") for p in self.params
        )
        lines += ["", f"def f({params}):"]
        lines += [f"    {line}" for line in self.lines]
        lines.append(f"    return {ret}")
        return "\n".join(lines) + "\n"

    # ---- shapes
    def shape(self) -> tuple[int, ...]:
        ndim = self.c.int(0, self.limits.max_ndim)
        return tuple(self.c.int(1, self.limits.max_dim) for _ in range(ndim))

    def split(self, shape: tuple[int, ...], n: int) -> list[tuple[int, ...]]:
        """`n` shapes whose broadcast is exactly `shape`: each axis owned by one or by all."""
        shapes = [list(shape) for _ in range(n)]
        for axis, d in enumerate(shape):
            owner = self.c.int(0, n)  # 0: every operand has the axis; k: only operand k - 1
            if owner:
                for k in range(n):
                    if k != owner - 1:
                        shapes[k][axis] = 1
        drops = []
        for s in shapes:  # leading size-1 axes may go, as long as one operand keeps them all
            ones = next((i for i, d in enumerate(s) if d != 1), len(s))
            drops.append(self.c.int(0, ones) if ones else 0)
        if all(drops):
            drops[0] = 0
        return [tuple(s[d:]) for s, d in zip(shapes, drops)]

    # ---- names
    def own_walrus_names(self, template: str) -> str:
        """The template with the names it binds (`(t := x.copy())...or t`) made unique, so
        that a template nested in another's operand does not rebind the outer one's `t`."""
        for bound in set(re.findall(r"\((\w+) :=", template)):
            k = 0
            while f"{bound}_w{k}" in self.names:
                k += 1
            self.names.add(f"{bound}_w{k}")
            template = re.sub(rf"\b{bound}\b", f"{bound}_w{k}", template)
        return template

    def fresh(self, pool: list[str], prefix: str) -> str:
        if not pool or self.c.chance(80):
            k = 0
            while f"{prefix}{k}" in self.names:
                k += 1
            name = f"{prefix}{k}"
        else:
            if pool is PARAM_NAMES:
                pool = [n for n in pool if n not in AVOID_PARAM_NAMES]
            base = self.c.pick(pool)
            name, k = base, 1
            while name in self.names:
                name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    # ---- leaves
    def new_param(self, shape: tuple[int, ...]) -> Value:
        name = self.fresh(PARAM_NAMES, "x")
        if shape:
            dims = [str(d) for d in shape]
            if 3 in shape and self.c.int(0, 99) >= 85:
                dims = ["n" if d == 3 else str(d) for d in shape]
                self.named_dim = True
            annotation = f'"f64[{",".join(dims)}]"'
        else:
            annotation = self.c.pick(['"f64[]"', "", "float"])
        rng = np.random.default_rng(1000 + len(self.params))
        samples = [sample(rng, shape) for sample in SAMPLERS]
        self.params.append(Param(name, shape, annotation, samples))
        return Value(name, shape, samples, pyfloat=shape == ())

    def leaf(self, shape: tuple[int, ...]) -> Value:
        same = [p for p in self.params if p.shape == shape]
        local = [v for v in self.locals if v.shape == shape]
        kind = self.c.int(0, 3)
        if kind == 0 and same:
            p = self.c.pick(same)
            return Value(p.name, p.shape, p.samples, pyfloat=p.shape == ())
        if kind == 1 and local:
            return self.c.pick(local)
        if kind == 2 and shape and self.params:
            name = self.fresh([], "C")
            rng = np.random.default_rng(2000 + len(self.consts))
            value = np.round(rng.uniform(-2.0, 2.0, shape), 3)
            self.consts.append((name, value))
            return Value(name, shape, [value] * len(SAMPLERS), traced=False)
        return self.new_param(shape)

    def literal(self, domain: str) -> Value:
        text = self.c.pick(LITERALS[domain])
        v = float(text)
        samples = [np.float64(v)] * len(SAMPLERS)
        return Value(text, (), samples, domain=domain, literal=True, traced=False, pyfloat=True)

    # ---- expressions
    def expr(self, shape: tuple[int, ...], depth: int) -> Value:
        """A float64 expression of exactly `shape`, at most `depth` ops deep."""
        level = self.depth - depth  # 0 at the root: leaves grow likelier further down
        if depth <= 0 or self.ops_left <= 0 or (level and self.c.chance(10 + 10 * level)):
            return self.leaf(shape)
        op = self.c.pick(self.cat.op_names)
        form = self.c.pick(self.cat.forms[op])
        self.ops_left -= 1
        value = self.build(form, shape, depth - 1)
        if value is None or not value.finite:
            return self.leaf(shape)
        self.used.add(form.op)
        assert value.shape == shape, (form, value.shape, shape, value.text)
        if value.magnitude > LARGE:
            value = self.rescale(value)
        if len(value.text) > 100 or self.c.int(0, 99) >= 70:
            value = self.bind(value)
        return value

    def bind(self, value: Value) -> Value:
        """`name = expr` as its own line; later parts of the program may reuse the name."""
        name = self.fresh(LOCAL_NAMES, "v")
        self.lines.append(f"{name} = {value.text}")
        bound = replace(value, text=name, literal=False)
        self.locals.append(bound)
        return bound

    def rescale(self, value: Value) -> Value:
        scale = 10.0 ** -math.ceil(math.log10(value.magnitude))
        samples = [s * scale for s in value.samples]
        return replace(value, text=f"{_operand(value.text)} * {scale!r}", samples=samples)

    def within(self, value: Value, domain: str) -> Value:
        """`value` wrapped so that it lies in `domain` by construction (bounded wrappers)."""
        if value.domain in DOMAIN_OK[domain]:
            return value
        wrappers = WRAPPERS[domain] + (
            WRAPPERS.get(domain + "-small", []) if value.magnitude <= 1.0 else []
        )
        template = self.c.pick(wrappers).format(HOLE.format(0))
        return self.apply(template, [value], domain=domain)

    def operand(self, shape: tuple[int, ...], depth: int, domain: str, literal_ok: bool) -> Value:
        if literal_ok and shape == () and self.c.int(0, 99) >= 75:
            return self.literal(domain)
        return self.within(self.expr(shape, depth), domain)

    def apply(
        self, template: str, args: list[Value], dtype: str = "f64", domain: str = "real"
    ) -> Value:
        """The template filled with `args`, and its value at the sample points."""
        texts = [a.text for a in args]
        for i in _postfix_holes(template):
            if args[i].pyfloat:  # a Python float has no [...] or .sum(): make it numpy's
                texts[i] = f"np.multiply({texts[i]}, 1.0)"
        samples = [_evaluate(template, [a.samples[k] for a in args]) for k in range(len(SAMPLERS))]
        return Value(
            fill(self.own_walrus_names(template), texts),
            tuple(samples[0].shape),
            samples,
            dtype,
            domain,
            traced=any(a.traced for a in args),
            pyfloat=all(a.pyfloat for a in args) and "np." not in template,
        )

    def program_with(self, form: Form) -> Program:
        """A small program whose root is `form` (for testing each form on its own)."""
        self.depth = 2
        shape = form.out_shape if form.out_shape is not None else (2, 3)
        value = self.build(form, shape, 1)
        assert value is not None, form
        self.used.add(form.op)
        if value.shape:
            value = self.reduce_all(value) if "sum" in self.cat.forms else value
        return Program(self.render(value.text), None, set(self.used))

    def build(self, form: Form, shape: tuple[int, ...], depth: int) -> Value | None:
        builder = getattr(self, f"build_{form.kind}")
        return builder(form, shape, depth)

    def build_ufunc(self, form: Form, shape: tuple[int, ...], depth: int) -> Value:
        shapes = self.split(shape, form.nin) if form.nin > 1 else [shape]
        args = []
        for k, (s, d) in enumerate(zip(shapes, form.domains)):
            # at most one literal, and only where the other operands make the full shape
            others = shapes[:k] + shapes[k + 1 :]
            literal_ok = bool(others) and not any(a.literal for a in args)
            literal_ok = literal_ok and np.broadcast_shapes(*others) == shape
            args.append(self.operand(s, depth, d, literal_ok))
        return self.apply(form.template, args, form.dtype)

    def condition(self, shape: tuple[int, ...], depth: int) -> Value:
        form = self.c.pick(self.cat.conditions)
        return self.build_ufunc(form, shape, depth)

    def build_where(self, form: Form, shape: tuple[int, ...], depth: int) -> Value:
        cs, xs, ys = self.split(shape, 3)
        cond = self.condition(cs, depth)
        x = self.operand(xs, depth, "real", literal_ok=True)
        y = self.operand(ys, depth, "real", literal_ok=not x.literal)
        return self.apply(f"np.where({', '.join(_holes(3))})", [cond, x, y])

    def build_mask(self, form: Form, shape: tuple[int, ...], depth: int) -> Value:
        cs, xs = self.split(shape, 2)
        cond = self.condition(cs, depth)
        x = self.expr(xs, depth)
        template = self.c.pick(["{0} * {1}", "{1} * {0}"]).format(*_holes(2))
        return self.apply(template, [cond, x])

    def build_sum(self, form: Form, shape: tuple[int, ...], depth: int) -> Value:
        ones = [i for i, d in enumerate(shape) if d == 1]
        keepdims = bool(ones) and self.c.int(0, 2) == 2
        if keepdims:
            axes = sorted({self.c.pick(ones) for _ in range(self.c.int(1, len(ones)))})
            source = list(shape)
            for a in axes:
                source[a] = self.c.int(1, self.limits.max_dim)
        else:
            source = list(shape)
            axes = []
            for _ in range(self.c.int(1, 2)):
                pos = self.c.int(0, len(source))
                source.insert(pos, self.c.int(1, self.limits.max_dim))
                axes = [a + (a >= pos) for a in axes] + [pos]
            axes.sort()
        x = self.expr(tuple(source), depth)
        nd = len(source)
        spelled = [a - nd if self.c.int(0, 3) == 3 else a for a in axes]
        parts = []
        if len(axes) < nd or keepdims or self.c.chance(30):
            parts.append(f"axis={spelled[0] if len(spelled) == 1 else tuple(spelled)}")
        if keepdims:
            parts.append("keepdims=True")
        tail = "".join(", " + p for p in parts)
        template = self.c.pick([f"np.sum(__h0__{tail})", f"__h0__.sum({', '.join(parts)})"])
        return self.apply(template, [x])

    def reduce_all(self, value: Value) -> Value:
        return self.apply(self.c.pick(["np.sum(__h0__)", "__h0__.sum()"]), [value])

    def build_reshape(self, form: Form, shape: tuple[int, ...], depth: int) -> Value:
        size = int(np.prod(shape, dtype=np.int64))
        candidates = [(size,), tuple(reversed(shape)), shape + (1,), (1,) + shape]
        candidates += [(a, size // a) for a in range(2, size) if size % a == 0]
        source = self.c.pick(candidates)
        x = self.expr(source, depth)
        dims = list(shape)
        if dims and self.c.chance(30):
            dims[self.c.int(0, len(dims) - 1)] = -1
        tup = f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(map(str, dims))})"
        spellings = [f"np.reshape(__h0__, {tup})", f"__h0__.reshape({tup})"]
        if dims:
            spellings.append(f"__h0__.reshape({', '.join(map(str, dims))})")
        return self.apply(self.c.pick(spellings), [x])

    def build_index(self, form: Form, shape: tuple[int, ...], depth: int) -> Value | None:
        nd = len(shape)
        mode = self.c.int(0, 2)
        if mode == 1 and nd:  # a slice, maybe with a step, along an existing axis
            p = self.c.int(0, nd - 1)
            length = shape[p] + self.c.int(0, 3)
            options = [s for s in _slices(length) if len(range(length)[slice(*s)]) == shape[p]]
            source = shape[:p] + (length,) + shape[p + 1 :]
            key = ":, " * p + _slice_text(self.c.pick(options))
        elif mode == 2 and 1 in shape:  # a new axis
            p = self.c.pick([i for i, d in enumerate(shape) if d == 1])
            source = shape[:p] + shape[p + 1 :]
            key = ":, " * p + "None"
        else:  # an integer, removing an axis
            p = self.c.int(0, nd)
            n = self.c.int(1, self.limits.max_dim)
            source = shape[:p] + (n,) + shape[p:]
            i = self.c.int(-n, n - 1)
            key = "..., " + str(i) if p == nd and p and self.c.chance(50) else ":, " * p + str(i)
        x = self.expr(source, depth)
        return self.apply(f"__h0__[{key}]", [x])

    def build_example(self, form: Form, shape: tuple[int, ...], depth: int) -> Value | None:
        args = []
        for s, d in zip(form.in_shapes, form.domains):
            value = self.expr(s, depth)
            if not value.traced:  # examples are written for traced inputs (x.copy(); x[i] = v)
                value = self.new_param(s)
            args.append(self.within(value, d))
        if not _well_conditioned(form.template, args):
            return None  # the caller writes a leaf instead
        value = self.apply(form.template, args)
        if value.shape == shape:
            return value
        if _broadcasts(value.shape, shape) or "sum" in self.cat.forms:
            if not _broadcasts(value.shape, shape):
                value = self.reduce_all(value)
            other = self.expr(shape, depth)
            template = self.c.pick(["__h0__ + __h1__", "__h1__ * __h0__"])
            return self.apply(template, [value, other])
        return None

    def binary_with_new_param(self, value: Value) -> Value:
        p = self.new_param(value.shape)
        return self.apply("__h0__ + __h1__", [value, p])


def _well_conditioned(template: str, args: list[Value]) -> bool:
    """Whether an example's template changes smoothly with its traced inputs at every sample
    point: central differences along a random direction agree at two steps, and the slope
    stays within CONDITIONING of the value. An example can meet an input where central
    differences cannot judge a gradient (eigh of a matrix with close eigenvalues, a solve
    with a nearly singular one): it is left out there, as `argument_domains` keeps ufuncs
    off theirs."""
    rng = np.random.default_rng(0)
    for k in range(len(SAMPLERS)):
        base = [a.samples[k] for a in args]
        dirs = [rng.standard_normal(np.shape(b)) * a.traced for a, b in zip(args, base)]

        def at(t: float) -> np.ndarray:
            moved = [b + t * d for b, d in zip(base, dirs)]
            return np.asarray(_evaluate(template, moved), dtype=np.float64)

        try:
            y = at(0.0)
            coarse, fine = ((at(h) - at(-h)) / (2 * h) for h in (1e-4, 1e-5))
        except Exception:
            return False
        if not (np.all(np.isfinite(coarse)) and np.all(np.isfinite(fine))):
            return False
        if not y.size:
            continue
        size = 1.0 + float(np.max(np.abs(fine)))
        if float(np.max(np.abs(coarse - fine))) > 1e-3 * size:
            return False
        if size > CONDITIONING * (1.0 + float(np.max(np.abs(y)))):
            return False
    return True


def _broadcasts(src: tuple, dst: tuple) -> bool:
    try:
        return np.broadcast_shapes(src, dst) == dst
    except ValueError:
        return False


def _slices(length: int) -> list[tuple]:
    bounds = [None, 0, 1, -1, -2, length]
    out = []
    for step in (None, 2, -1, -2, 3):
        for start in bounds:
            for stop in bounds:
                out.append((start, stop, step))
    return out


def _slice_text(s: tuple) -> str:
    start, stop, step = ("" if v is None else str(v) for v in s)
    return f"{start}:{stop}" + (f":{step}" if step else "")


def generate(chooser: Chooser, limits: Limits | None = None) -> Program:
    return Generator(chooser, limits).program()


def from_seed(seed: int, limits: Limits | None = None) -> Program:
    return generate(ReplayChooser(random.Random(seed)), limits)


# ---------------------------------------------------------------------------------------
# Targets: how a compiled program becomes an importable module
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A backend under test. `build(expr_path, out_dir, passes)` returns (compiled, module).

    `compiled.functions` gives each traced function's spec, forward graph and wrt names; the
    module has the generated API of DESIGN.md. A C target plugs in here the same way.
    """

    name: str
    build: Callable[[Path, Path, Sequence[str] | None], tuple[Any, ModuleType]]
    available: Callable[[], bool] = lambda: True


def build_python(
    path: Path, out: Path, enabled: Sequence[str] | None = None
) -> tuple[Any, ModuleType]:
    """The Python emitter: compile, write atomically, import the written file."""
    compiled = compile_file(path, enabled_passes=enabled)
    target = out / f"{path.stem}_grad.py"
    write_atomic(target, compiled.source)
    return compiled, check.import_path(target)


def build_python_planned(
    path: Path, out: Path, enabled: Sequence[str] | None = None
) -> tuple[Any, ModuleType]:
    """The Python emitter with the memory planner's size thresholds at zero, every
    broadcast operand widened and every scalar chain of two steps run as a scan.

    Real code drops (`del`) and reuses (`out=`) only arrays of some size, which the small
    arrays of fuzzed programs never reach, widens only operands broadcast three times and
    scans only chains long enough to pay; here every array is planned and widened and
    every chain scanned, so the fuzz puts the planner's aliasing rules (views, saved
    values, results) and the widen and scan lowerings to the test.
    """
    saved = memory.INPLACE_MIN_BYTES, memory.DEL_MIN_ELEMENTS, widen.MIN_USES
    lowering = scan.ALWAYS, scan.MIN_ROWS
    memory.INPLACE_MIN_BYTES = memory.DEL_MIN_ELEMENTS = 0
    widen.MIN_USES = 1
    scan.ALWAYS, scan.MIN_ROWS = True, 2
    try:
        return build_python(path, out, enabled)
    finally:
        memory.INPLACE_MIN_BYTES, memory.DEL_MIN_ELEMENTS, widen.MIN_USES = saved
        scan.ALWAYS, scan.MIN_ROWS = lowering


class Unsupported(Exception):
    """The target does not emit an op of the program (yet): the program is not its test."""


def build_c(path: Path, out: Path, enabled: Sequence[str] | None = None) -> tuple[Any, ModuleType]:
    """The C emitter: compile, write the .c, .h and loader, import the loader (which builds
    the C with the system compiler into a cache inside `out`). An op the C target refuses
    (NOT_YET_C in test_c_target.py) makes the program unsupported, not a failure."""
    try:
        compiled = compile_file(path, target="c", enabled_passes=enabled)
    except GradgenError as e:
        if "the C target does not support" in e.message:
            raise Unsupported(e.message) from None
        raise
    stem = f"{path.stem}_grad"
    for ext, text in compiled.files.items():
        write_atomic(out / f"{stem}{ext}", text)
    old = os.environ.get("GRADGEN_CACHE")
    os.environ["GRADGEN_CACHE"] = str(out / "cache")  # (not the user's cache)
    try:
        return compiled, check.import_path(out / f"{stem}_c.py")
    finally:
        if old is None:
            os.environ.pop("GRADGEN_CACHE", None)
        else:
            os.environ["GRADGEN_CACHE"] = old


def _has_cc() -> bool:
    return shutil.which(os.environ.get("CC", "cc")) is not None


TARGETS: list[Target] = [
    Target("python", build_python),
    Target("python-planned", build_python_planned),
    Target("c", build_c, _has_cc),
]
TARGET_NAMES = [t.name for t in TARGETS]


# ---------------------------------------------------------------------------------------
# Judging a program
# ---------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What happened to one program on one target."""

    status: (
        str  # ok | fail | suspect (see `judge`) | rejected (left its domain at the check's points)
    )
    kind: str = ""  # the failure's kind: compile, check, ir, jax, crash
    detail: str = ""

    @property
    def signature(self) -> str:
        """A short, stable name for the failure, to tell distinct bugs apart."""
        lines = self.detail.strip().splitlines() or [""]
        first = lines[-1] if lines[0].startswith("Traceback") else lines[0]
        first = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", first)
        first = re.sub(r"'[^']*'", "'…'", first)[:120]
        return f"{self.kind}: {first}"


def jax_available() -> bool:
    try:
        import jax  # noqa: F401
    except Exception:
        return False
    return True


def jax_vjp(
    source: str, args: list[np.ndarray], gs: Sequence[np.ndarray]
) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """Value of the program's `f` and its vjp for each upstream gradient in `gs`, with `np`
    bound to `jax.numpy`, in float64."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        namespace: dict[str, Any] = {"__name__": "fuzz_jax", "jnp": jnp}
        code = source.replace("import numpy as np\n", "np = jnp\n")
        # numpy's older names of clip's bounds, which jax.numpy no longer takes
        code = re.sub(r"\ba_(min|max)=", r"\1=", code)
        exec(compile(code, "<fuzz-jax>", "exec"), namespace)
        fn = namespace["f"]
        try:
            value, pullback = jax.vjp(fn, *[jnp.asarray(a, dtype=jnp.float64) for a in args])
            grads = [pullback(jnp.asarray(g, dtype=value.dtype)) for g in gs]
            return np.asarray(value), [[np.asarray(x) for x in gr] for gr in grads]
        finally:
            jax.clear_caches()  # every program has new shapes: the caches would only grow


@dataclass
class JaxComparison:
    """What jax said about a generated module: `agree` only when jax ran at every point asked
    and matched there; `disagree` (with the mismatch); `unknown` when jax is missing, refused
    the program (x[i] = v, a function it lacks, ...) or there was no point to compare at."""

    status: str  # agree | disagree | unknown
    detail: str = ""


def compare_jax(
    source: str,
    compiled: Any,
    module: ModuleType,
    points: int = 1,
    at: dict[str, list[list[np.ndarray]]] | None = None,
) -> JaxComparison:
    """The generated vjp against jax's, at `points` kink-free points drawn here, or at the
    points given in `at` (function name -> argument lists), two random upstream gradients
    at each (g = 1 for a scalar output)."""
    try:
        import jax  # noqa: F401
    except Exception as e:
        return JaxComparison("unknown", f"jax is not importable: {e}")
    rng = np.random.default_rng(7)
    problems: list[str] = []
    compared = 0
    for t in compiled.functions:
        index = {p.name: i for i, p in enumerate(t.spec.params)}
        shape = t.forward.outputs[0].shape
        if at is not None:
            where = list(at.get(t.spec.name, []))
        else:
            where = []
            for _ in range(points):
                args, warning = check.draw_point(t.spec.params, t.forward, rng)
                if not warning:
                    where.append(args)
        for args in where:
            gs = [np.ones(())] if shape == () else [rng.standard_normal(shape) for _ in range(2)]
            try:
                jvalue, jgrads = jax_vjp(source, args, gs)
            except Exception as e:  # jax's refusal: only jax.numpy and the program ran here
                return JaxComparison("unknown", f"jax cannot run it: {type(e).__name__}: {e}")
            margs = [a if a.ndim else float(a) for a in args]
            for g, jg in zip(gs, jgrads):
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    value, grads = getattr(module, f"{t.spec.name}_vjp")(*margs, g)
                pairs = [("value", np.asarray(value, np.float64), jvalue)]
                pairs += [
                    (n, np.asarray(grads[i], np.float64), jg[index[n]]) for i, n in enumerate(t.wrt)
                ]
                scale = 1.0 + max(float(np.max(np.abs(b))) if b.size else 0.0 for _, _, b in pairs)
                for name, a, b in pairs:
                    if a.shape != b.shape:
                        problems.append(f"{name}: shape {a.shape}, jax {b.shape}")
                    elif not np.allclose(a, b, rtol=1e-7, atol=1e-9 * scale):
                        worst = (
                            np.unravel_index(np.argmax(np.abs(a - b)), a.shape) if a.shape else ()
                        )
                        problems.append(
                            f"{name}{list(worst)}: generated {a[worst]!r}, jax {b[worst]!r}"
                        )
                compared += 1
            if problems:
                return JaxComparison("disagree", "; ".join(problems))
    if not compared:
        return JaxComparison("unknown", "no point to compare at")
    return JaxComparison("agree")


def compare_other_sizes(path: Path, compiled: Any, module: ModuleType, out: Path) -> str | None:
    """For C code whose named dims are free: call it at other sizes of the dims and compare
    with the Python target generated at those sizes (None when they agree, or when there
    is nothing to compare: no free dim, a program valid only at its own sizes, a size the
    C code says it does not take)."""
    if compiled.files is None or not compiled.loaded.dims:
        return None
    free = sorted(d for d in compiled.loaded.dims if d not in compiled.specialized)
    if not free:
        return None
    rng = np.random.default_rng(0)
    for step in (1, 2):
        dims = {
            **compiled.loaded.dims,
            **{d: compiled.loaded.dims[d] + step + k for k, d in enumerate(free)},
        }
        try:
            other = compile_file(path, dims=dims)
        except GradgenError:
            continue  # (the program needs its own sizes: a matmul of n by 3, ...)
        py_path = out / f"sizes_{step}" / f"{path.stem}_grad.py"
        write_atomic(py_path, other.source)
        py = check.import_path(py_path)
        for t in other.functions:
            name = t.spec.name
            args, _ = check.draw_point(t.spec.params, t.forward, rng)
            margs = [a if a.ndim else float(a) for a in args]
            shape = t.forward.outputs[0].shape
            g = rng.standard_normal(shape) if shape else 1.3
            try:
                got = getattr(module, f"{name}_vjp")(*margs, g)
            except ValueError as e:  # (status 1: sizes the code does not take, said so)
                if "needs" in str(e) or "generated for" in str(e):
                    continue
                raise
            want = getattr(py, f"{name}_vjp")(*margs, g)
            for what, a, b in [("value", got[0], want[0])] + [
                (f"g_{w}", x, y) for w, x, y in zip(t.wrt, got[1], want[1])
            ]:
                a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
                if a.shape != b.shape or not np.allclose(
                    a, b, rtol=1e-9, atol=1e-12, equal_nan=True
                ):
                    return f"{name}_vjp {what} at {dims}: C {a!r} but the Python target {b!r}"
    return None


def check_recording_points(module: ModuleType, t: Any) -> tuple[Any, list[list[np.ndarray]]]:
    """gradgen's numeric check of one traced function, and the points it drew (those it
    checked at among them)."""
    points: list[list[np.ndarray]] = []
    draw = check.draw_point

    def recording(*args_, **kwargs):  # every draw, a point drawn again included
        args, warning = draw(*args_, **kwargs)
        points.append([np.array(a, copy=True) for a in args])
        return args, warning

    check.draw_point = recording  # check_function looks the name up when it runs
    try:
        report = check.check_function(module, t.spec, t.forward, t.wrt)
    finally:
        check.draw_point = draw
    return report, points


def judge(
    source: str,
    enabled: Sequence[str] | None = None,
    target: Target | None = None,
    use_jax: bool | None = None,
    arbitrate: bool | None = None,
) -> Verdict:
    """Compile `source` for `target` with the `enabled` passes, then check it every way we can.

    `use_jax` compares every program with jax (default: when importable); a mismatch fails,
    a program jax cannot run is simply not compared. A numeric-check failure is a failure,
    unless `arbitrate` (default: when jax is importable) and jax positively agrees with the
    generated gradient at every point the check used: then the central differences were
    ill-conditioned there, and the verdict is `suspect`. jax refusing the program, or
    missing, leaves the failure a failure.
    """
    from helpers import assert_ir_matches

    target = target or TARGETS[0]
    use_jax = jax_available() if use_jax is None else use_jax
    arbitrate = jax_available() if arbitrate is None else arbitrate
    with tempfile.TemporaryDirectory(prefix="gradgen-fuzz-") as tmp:
        path = Path(tmp) / "expr.py"
        path.write_text(source)
        try:
            compiled, module = target.build(path, Path(tmp) / "out", enabled)
        except Unsupported as e:
            return Verdict("rejected", "unsupported", str(e))
        except GradgenError as e:
            return Verdict("fail", "compile", e.render())
        except Exception:
            return Verdict("fail", "crash", traceback.format_exc(limit=-3))
        try:
            checked = [check_recording_points(module, t) for t in compiled.functions]
            reports = [r for r, _ in checked]
            for r in reports:
                if r.warnings:
                    return Verdict("rejected", "domain", "; ".join(r.warnings))
            try:
                assert_ir_matches(compiled, module)
            except AssertionError as e:
                return Verdict("fail", "ir", str(e).strip())
            sizes = compare_other_sizes(path, compiled, module, Path(tmp) / "out")
            if sizes is not None:
                return Verdict("fail", "sizes", sizes)
            if use_jax:
                against = compare_jax(source, compiled, module)
                if against.status == "disagree":
                    return Verdict("fail", "jax", against.detail)
            bad = [r for r in reports if not r.ok]
            if bad:
                detail = "\n".join(check.format_report(r) for r in bad)
                if not arbitrate:
                    return Verdict("fail", "check", detail)
                points = {t.spec.name: p for t, (_, p) in zip(compiled.functions, checked)}
                referee = compare_jax(source, compiled, module, at=points)
                if referee.status == "agree":
                    return Verdict("suspect", "check", detail + "\njax agrees with gradgen there")
                return Verdict("fail", "check", f"{detail}\njax {referee.status}: {referee.detail}")
        except Exception:
            return Verdict("fail", "crash", traceback.format_exc(limit=-3))
    return Verdict("ok")


# ---------------------------------------------------------------------------------------
# Shrinking a recorded failure, and the seed sweep
# ---------------------------------------------------------------------------------------


def shrink(
    choices: list[int],
    still_fails: Callable[[Program], bool],
    limits: Limits | None = None,
    budget: int = 400,
) -> Program:
    """The smallest replay of `choices` (fewer, then lower choices) that still fails."""
    best = list(choices)
    tries = 0

    def attempt(candidate: list[int]) -> bool:
        nonlocal best, tries
        tries += 1
        program = generate(ReplayChooser(None, candidate), limits)
        if program.choices != best and still_fails(program):
            best = program.choices
            return True
        return False

    improved = True
    while improved and tries < budget:
        improved = False
        # delete spans, biggest first (the replay fills the tail with the simplest choices)
        span = max(1, len(best) // 2)
        while span >= 1 and tries < budget:
            i = 0
            while i + span <= len(best) and tries < budget:
                if attempt(best[:i] + best[i + span :]):
                    improved = True
                else:
                    i += span
            span //= 2
        # lower single choices
        i = 0
        while i < len(best) and tries < budget:
            for lower in sorted({0, best[i] // 2, best[i] - 1}):
                if 0 <= lower < best[i] and attempt(best[:i] + [lower] + best[i + 1 :]):
                    improved = True
                    break
            i += 1
    return generate(ReplayChooser(None, best), limits)


def _sweep_one(args: tuple[int, Limits, bool, str]) -> tuple[int, Verdict, Program, float]:
    seed, limits, use_jax, target_name = args
    target = TARGETS[TARGET_NAMES.index(target_name)]
    start = time.perf_counter()
    try:
        program = from_seed(seed, limits)
    except Exception:
        return seed, Verdict("fail", "generator", traceback.format_exc(limit=-4)), Program(""), 0.0
    verdict = judge(program.source, program.passes, target, use_jax=use_jax)
    return seed, verdict, program, time.perf_counter() - start


def sweep(
    seeds: range,
    jobs: int,
    jax_every: int,
    limits: Limits,
    report: Path | None,
    target: str = "python",
) -> int:
    """Judge every seed's program; shrink one example per distinct failure; write a report."""
    from multiprocessing import get_context

    started = time.time()
    counts: dict[str, int] = {}
    failures: dict[str, list[tuple[int, Verdict, Program]]] = {}
    suspects: list[tuple[int, Verdict, Program]] = []
    ops_seen: dict[str, int] = {}
    use_jax = jax_every > 0
    work = [(s, limits, use_jax and s % jax_every == 0, target) for s in seeds]
    judged_on = TARGETS[TARGET_NAMES.index(target)]
    # spawn, not fork: jax's threads do not survive a fork. Fresh workers now and then, and
    # one XLA thread each, keep memory and the machine's load flat over long sweeps.
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    with get_context("spawn").Pool(jobs, maxtasksperchild=200) as pool:
        for n, (seed, verdict, program, _) in enumerate(pool.imap_unordered(_sweep_one, work, 8)):
            counts[verdict.status] = counts.get(verdict.status, 0) + 1
            for op in program.ops:
                ops_seen[op] = ops_seen.get(op, 0) + 1
            if verdict.status == "suspect":
                suspects.append((seed, verdict, program))
            if verdict.status == "fail":
                failures.setdefault(verdict.signature, []).append((seed, verdict, program))
                print(f"seed {seed}: FAIL {verdict.signature}", flush=True)
            if (n + 1) % 500 == 0:
                print(f"{n + 1}/{len(work)} {counts} {time.time() - started:.0f}s", flush=True)
    lines = [
        "# gradgen fuzz sweep",
        "",
        f"seeds {seeds.start}..{seeds.stop - 1} ({len(seeds)} programs), target {target}, "
        f"jax {f'on every {jax_every}th seed' if use_jax else 'off'},"
        f" {time.time() - started:.0f} s, {jobs} processes",
        "",
        f"results: {counts}",
        "",
        "ops used (programs): " + ", ".join(f"{k} {v}" for k, v in sorted(ops_seen.items())),
        "",
    ]
    if suspects:
        lines += ["## Suspects: the numeric check failed, jax agrees with gradgen", ""]
        for seed, verdict, program in suspects[:10]:
            lines += [f"seed {seed}:", "", "```python", program.source.rstrip(), "```", ""]
            lines += ["```", verdict.detail.strip()[:2000], "```", ""]
    for signature, found in sorted(failures.items(), key=lambda kv: -len(kv[1])):
        seed, verdict, program = min(found, key=lambda f: len(f[2].source))
        kind = verdict.kind

        def still_fails(p: Program, kind=kind, signature=signature) -> bool:
            v = judge(p.source, p.passes, judged_on, use_jax=use_jax)
            return v.status == "fail" and v.kind == kind

        if not program.source:  # the generator itself failed: its traceback is the report
            lines += [f"## {signature}", "", f"seeds {[s for s, _, _ in found][:20]}", "", "```"]
            lines += [verdict.detail.strip(), "```", ""]
            continue
        small = shrink(program.choices, still_fails, limits)
        final = judge(small.source, small.passes, judged_on, use_jax=use_jax)
        lines += [
            f"## {signature}",
            "",
            f"{len(found)} programs, seeds {', '.join(str(s) for s, _, _ in found[:20])}"
            + (" ..." if len(found) > 20 else ""),
            "",
            "Shrunk reproduction (passes: "
            + ("all" if small.passes is None else ", ".join(small.passes) or "none")
            + "):",
            "",
            "```python",
            small.source.rstrip(),
            "```",
            "",
            "```",
            final.detail.strip()[:3000],
            "```",
            "",
        ]
        print(f"shrunk {signature}", flush=True)
    text = "\n".join(lines) + "\n"
    if report:
        report.write_text(text)
    print(text)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0:1000", help="START:STOP (default 0:1000)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--no-jax", action="store_true")
    p.add_argument(
        "--jax-every", type=int, default=1, metavar="K", help="jax on seeds divisible by K"
    )
    p.add_argument("--target", choices=TARGET_NAMES, default="python", help="default: python")
    p.add_argument("--max-ops", type=int, default=Limits.max_ops)
    p.add_argument("--report", type=Path)
    p.add_argument("--show", type=int, metavar="SEED", help="print one seed's program and verdict")
    args = p.parse_args(argv)
    limits = Limits(max_ops=args.max_ops)
    use_jax = jax_available() and not args.no_jax
    if args.show is not None:
        program = from_seed(args.show, limits)
        print(program.source)
        print("passes:", "all" if program.passes is None else program.passes)
        target = TARGETS[TARGET_NAMES.index(args.target)]
        print(judge(program.source, program.passes, target, use_jax=use_jax))
        return 0
    start, stop = (int(x) for x in args.seeds.split(":"))
    return sweep(
        range(start, stop),
        args.jobs,
        args.jax_every if use_jax else 0,
        limits,
        args.report,
        args.target,
    )


if __name__ == "__main__":
    sys.exit(main())
