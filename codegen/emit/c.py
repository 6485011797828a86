"""Stage 5, emit (C): flat C99 from the same optimized IR as the Python target.

The graphs, the forward/backward split and the names are the Python emitter's; what
differs is where values live. A scalar is a local `double`, one statement per gate. An
array is a strided view of memory: a parameter, a caller's output, the saved buffer, a
static constant, or a slot of the caller's work buffer, given out by liveness
(`memory.plan`) and used again once its value is dead. Element-moving ops (transpose,
reshape, broadcast_to, basic indexing) are views, never copies: numpy's own evaluation of
the op on an array of memory offsets says which element sits where. Elementwise ops are
loops over the output with their operands read at the broadcast index, and a chain of
single-use elementwise ops is one loop with no arrays in between; reductions accumulate in
one pass; matmul is an i-k-j loop nest. Per-op text comes from the op table's `c` column.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .. import memory, ops
from ..errors import GradgenError
from ..ir import Graph, Node
from ..naming import Namer
from ..sizes import (
    Guards,
    Ratio,
    Size,
    always,
    at_node,
    evaluate,
    guarding,
    involves,
    is_one,
    lift,
    number,
    unguarded,
    upper,
)
from . import c_expr as C
from . import c_kernels
from . import c_regions
from .expr import Expr, wrap
from .python import Unit, _ancestors, _same_place

# the C column of the ops declared in shape.py and cumulative.py, kept here until those
# modules declare their own `c=`
SHAPE_FORMS = {
    "multi_scatter": C.Form("multi_scatter"),
    "cumsum": C.Form("cumulative"),
    "cumprod": C.Form("cumulative"),
    "reshape": C.VIEW,
    "broadcast_to": C.VIEW,
    "widen": C.VIEW,
    "index": C.VIEW,
    "pack": C.Form("pack"),
    "concatenate": C.Form("concatenate"),
    "stack": C.Form("stack"),
    "scatter": C.Form("scatter"),
    "index_update": C.Form("index_update"),
    # control flow (ops/control.py): regions are written by emit/c_regions.py; a part is
    # the memory or local its region's statement writes
    "cond": C.Form("region"),
    "loop": C.Form("region"),
    "part": C.Form("part"),
    "zeros": C.Form("zeros"),
    "accumulate": C.Form("accumulate"),
}

C_KEYWORDS = set(
    "auto break case char const continue default do double else enum extern float for goto "
    "if inline int long register restrict return short signed sizeof static struct switch "
    "typedef union unsigned void volatile while _Bool _Complex _Imaginary".split()
)
MATH_NAMES = set(
    "acos asin atan atan2 cos sin tan cosh sinh tanh exp exp2 expm1 log log10 log1p log2 pow "
    "sqrt hypot fabs fmax fmin floor ceil round trunc INFINITY NAN HUGE_VAL j0 j1 jn y0 y1 yn "
    "gamma lgamma tgamma erf erfc cbrt fmod remainder copysign nan".split()
)
LOOP_VARS = {f"i{k}" for k in range(32)}
RESERVED_C = (
    C_KEYWORDS
    | MATH_NAMES
    | LOOP_VARS
    | set(C.HELPERS)
    | {"work", "saved", "value", "g", "elem", "acc", "main", "size_t", "NULL", "ptrdiff_t"}
)


def c_form(op: str):
    """The op's C form: its own `c` column, or this module's for shape.py's ops."""
    spec = ops.OPS[op]
    return spec.c if spec.c is not None else SHAPE_FORMS.get(op)


def c_name(name: str) -> str:
    """A parameter's C name: a trailing `_` where it would shadow C or <math.h>."""
    return f"{name}_" if name in RESERVED_C or name.startswith("gradgen_") else name


def supported_ops() -> set[str]:
    """The ops the C target emits."""
    return {name for name in ops.OPS if c_form(name) is not None}


def refuse(node: Node, why: str) -> GradgenError:
    return GradgenError(
        f"the C target does not support {why} yet",
        node.src,
        "use --target python for this function (the C target's gaps: README, 'The C target')",
    )


# ---- strided views ----


def contiguous(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(0 if is_one(d) else step)
        step *= d
    return tuple(reversed(strides))


@dataclass
class View:
    """Element m of `shape` is `base[offset + sum(strides * m)]`, or `fill` everywhere."""

    base: str
    offset: int
    strides: tuple[int, ...]
    shape: tuple[int, ...]
    root: int | None = None  # the node owning the memory, if a work slot (for liveness)
    fill: Expr | None = None  # a constant (or scalar) broadcast: no memory at all
    table: str | None = None  # a gather: element flat(m) is base[table[flat(m)]]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def offsets(self) -> np.ndarray:
        """The memory offset of each element, as an array of the view's shape."""
        off = np.full(self.shape, self.offset, dtype=np.int64)
        for d, s in enumerate(self.strides):
            if s and self.shape[d] > 1:
                idx = np.arange(self.shape[d], dtype=np.int64) * s
                off = off + idx.reshape((-1,) + (1,) * (len(self.shape) - d - 1))
        return off


def _check_inside(part: View, whole: View) -> None:
    """That `part` reads only elements of `whole`. With symbolic sizes the comparisons
    become the code's conditions on the dims (x[5] of x[n]: n >= 6); at the traced sizes
    they hold, as the trace indexed the same way."""
    lo, hi = _extent(part)
    whole_lo, whole_hi = _extent(whole)
    if not (lo >= whole_lo and hi <= whole_hi):
        raise AssertionError("a view outside its array")


def _extent(v: View) -> tuple:
    """The lowest and the highest offset a view reads (sizes >= 1)."""
    lo = hi = v.offset
    for n, s in zip(v.shape, v.strides):
        span = (n - 1) * s
        if span < 0:
            lo = lo + span
        else:
            hi = hi + span
    return lo, hi


def same_memory(a, b) -> bool:
    """Whether `a` and `b` are views of the very same elements (writing one writes the
    other element for element)."""
    return (
        isinstance(a, View)
        and isinstance(b, View)
        and a.fill is None
        and a.table is None
        and (a.base, a.offset, a.strides, a.shape) == (b.base, b.offset, b.strides, b.shape)
    )


def local_type(dtype: str) -> str:
    """The C type of a scalar local: `long` for an index (i64), else double."""
    return "long" if dtype == "i64" else "double"


def fit_view(off: np.ndarray, base: str, root: int | None) -> View | None:
    """The view whose offsets are `off`, if they are affine in the index; else None."""
    shape = off.shape
    if off.size == 0:
        return View(base, 0, (0,) * len(shape), shape, root)
    start = int(off.reshape(-1)[0])
    strides = []
    for d, n in enumerate(shape):
        if n == 1:
            strides.append(0)
            continue
        at = [0] * len(shape)
        at[d] = 1
        strides.append(int(off[tuple(at)]) - start)
    view = View(base, start, tuple(strides), shape, root)
    if not np.array_equal(view.offsets(), off):
        return None
    return view


@dataclass
class Scalar:
    """A scalar value: its text (a local, a literal, an element) and the memory it reads."""

    expr: Expr
    root: int | None = None


@dataclass
class Inline:
    """An elementwise node computed where its single user reads it."""

    node: Node


@dataclass
class Stmt:
    """One statement: the node it defines (its kind says how) and the roots it reads."""

    node: Node
    kind: str
    reads: set[int]
    comment: str | None = None


@dataclass
class Leaf:
    base: str
    offset: int
    strides: list[int]
    table: str | None = None


def _index_text(offset: int, terms: list[tuple[int, str]]) -> str:
    parts = []
    for stride, var in terms:
        if isinstance(stride, Size):  # (a product: `(3 * n) * i0`)
            parts.append(f"{stride} * {var}" if not parts else f"+ {stride} * {var}")
            continue
        if stride == 0:
            continue
        mag = abs(stride)
        term = var if mag == 1 else f"{mag} * {var}"
        if not parts:
            parts.append(term if stride > 0 else f"-{term}")
        else:
            parts.append(f"+ {term}" if stride > 0 else f"- {term}")
    if isinstance(offset, Size):
        parts.append(str(offset) if not parts else f"+ {offset}")
    elif offset or not parts:
        parts.append(str(offset) if not parts else f"+ {offset}" if offset > 0 else f"- {-offset}")
    return " ".join(parts)


def _same(a, b) -> bool:
    """a == b for every size (an equality that holds only at some sizes is no reason to
    merge two loops, nor a guard on the dims)."""
    if isinstance(a, Size) or isinstance(b, Size):
        return not involves(a - b)  # (a Size minus a Size is an int when they are equal)
    return a == b


class Loop:
    """A loop nest over `shape`: leaves are read and written at the broadcast index, and
    adjacent dims that every leaf walks as one are merged (most loops become one loop)."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)
        self.leaves: list[Leaf] = []

    def leaf(self, view: View) -> str:
        """A placeholder for `view` read at the loop's index (broadcast to the loop's shape)."""
        if view.fill is not None:
            return wrap(view.fill, C.ATOM)
        pad = len(self.shape) - len(view.shape)
        strides = [0] * len(self.shape)
        for j, s in enumerate(view.strides):
            if not is_one(view.shape[j]):
                strides[pad + j] = s
        self.leaves.append(Leaf(view.base, view.offset, strides, view.table))
        return f"\x01{len(self.leaves) - 1}\x01"

    def flat(self) -> str:
        """A placeholder for the flat C-order position in the loop."""
        self.leaves.append(Leaf("", 0, list(contiguous(self.shape))))
        return f"\x01{len(self.leaves) - 1}\x01"

    def render(
        self, body: list[str], inner: int = 0, head: Sequence[str] = (), tail: Sequence[str] = ()
    ) -> list[str]:
        """The loop nest around `body`; with `inner`, the last `inner` dims are loops of
        their own inside the others, with `head` before them and `tail` after."""
        split = len(self.shape) - inner
        groups = []
        for lo, hi in ((0, split), (split, len(self.shape))):
            dims = [d for d in range(lo, hi) if not is_one(self.shape[d])]
            sizes = [self.shape[d] for d in dims]
            strides = [[leaf.strides[d] for d in dims] for leaf in self.leaves]
            k = len(sizes) - 2
            while k >= 0:  # merge dim k with k + 1 where every leaf steps through both as one
                if all(_same(s[k], s[k + 1] * sizes[k + 1]) for s in strides):
                    sizes[k] *= sizes.pop(k + 1)
                    for s in strides:
                        s[k] = s.pop(k + 1)
                k -= 1
            groups.append((sizes, strides))
        (outer, outer_s), (inside, inside_s) = groups
        names = [f"i{k}" for k in range(len(outer) + len(inside))]
        texts = []
        for j, leaf in enumerate(self.leaves):
            index = _index_text(leaf.offset, list(zip(outer_s[j] + inside_s[j], names)))
            if not leaf.base:
                texts.append(index)
            elif leaf.table:
                texts.append(f"{leaf.base}[{leaf.table}[{index}]]")
            else:
                texts.append(f"{leaf.base}[{index}]")

        def fill(line: str) -> str:
            parts = line.split("\x01")
            parts[1::2] = [texts[int(p)] for p in parts[1::2]]
            return "".join(parts)

        def nest(lines: list[str], loops: list[tuple[str, int]]) -> list[str]:
            for name, size in reversed(loops):
                lines = (
                    [f"for (long {name} = 0; {name} < {size}; {name}++) {{"]
                    + ["    " + line for line in lines]
                    + ["}"]
                )
            return lines

        lines = nest([fill(b) for b in body], list(zip(names[len(outer) :], inside)))
        if inner:
            lines = [fill(h) for h in head] + lines + [fill(t) for t in tail]
        return nest(lines, list(zip(names[: len(outer)], outer)))


# ---- the walker ----


class CWalker:
    """Turns one graph's nodes into C statements (scalars as locals, arrays in memory)."""

    def __init__(self, namer: Namer, consts: "CConsts", comments: bool):
        self.namer = namer
        self.consts = consts
        self.comments = comments
        self.values: dict[int, View | Scalar | Inline] = {}
        self.stmts: list[Stmt] = []
        self.reads: dict[int, set[int]] = {}  # inlined node -> roots its text reads
        self.homes: dict[int, View] = {}  # statement node -> where its array goes
        self.work_size = 0
        self.decls: dict[int, str] = {}  # work node -> its pointer's name
        self.gathers: dict[int, tuple[View, list]] = {}  # gather node -> (source, inputs)
        # a row at an index known at run time -> (its array's view, (stride, index) terms)
        self.pointers: dict[int, tuple[View, list[tuple[int, str]]]] = {}
        self.named: dict[int, str] = {}  # names given before planning
        self.locals: set[int] = set()  # scalar statements declared as locals of their own
        self.reuse: dict[int, Node] = {}  # scalar statement -> the input whose local it takes
        # regions (emit/c_regions.py)
        self.nested = False  # a region's body: no `/* backward */` header
        self.work_offset = 0  # where this walker's slots start in `work`
        self.top = 0  # the end of its slots (regions' scratch starts there)
        self.parts_of: dict[int, dict[int, Node]] = {}  # region id -> {index: its part}
        self.part_ids: list[int] = []
        self.nonneg: set[str] = set()  # integer locals that are never negative (counters)
        self.tape_regions: dict[int, Node] = {}  # a tape read from a record -> its region
        self.uses: dict[int, int] = {}  # node id -> its readers (results count 2)
        self.floats: set[str] = set()  # memory of float elements: float32 arguments, outputs

    # -- binding --

    def bind_param(self, node: Node, text: str, pointer: bool) -> None:
        if node.shape == () and not pointer:
            self.values[node.id] = Scalar(Expr(text, C.ATOM))
        elif node.shape == ():
            self.values[node.id] = Scalar(Expr(f"{text}[0]", C.ATOM))
        else:
            self.values[node.id] = View(text, 0, contiguous(node.shape), node.shape)

    def value(self, node: Node):
        v = self.values.get(node.id)
        if v is None and node.op == "const":
            v = self.values[node.id] = self.consts.value(node)
        return v

    def roots(self, node: Node) -> set[int]:
        if node.op == "const":
            return set()
        v = self.value(node)
        if isinstance(v, Inline):
            return self.reads[node.id]
        return {v.root} if v.root is not None else set()

    # -- planning --

    def plan(
        self,
        nodes: Sequence[Node],
        results: Sequence[Node],
        keep: set[int],
        inline_results: set[int] = frozenset(),
    ) -> None:
        """Decide how each node becomes C: a view, inlined into its single user, or a
        statement (a local for a scalar, memory for an array). `inline_results`: scalar
        results written where they are read (a region body's, into its assignment)."""
        uses: dict[int, int] = {}
        consumer: dict[int, Node] = {}
        for n in nodes:
            for i in n.inputs:
                uses[i.id] = uses.get(i.id, 0) + 1
                consumer[i.id] = n
        for r in results:
            uses[r.id] = uses.get(r.id, 0) + 2
        self.uses = uses
        for node in nodes:
            if node.id in self.values or node.op in ("param", "const"):
                continue
            form = C.KERNEL if c_kernels.computed_indices(node) else c_form(node.op)
            if form is None:
                raise refuse(node, f"{node.op!r} (the op of this line)")
            if form is C.VIEW:
                self._view(node)
                continue
            if node.op == "part":
                self._part(node)
                continue
            if node.op == "zeros":  # (an accumulator's start: a loop copies it in)
                fill = C.literal(0.0)
                self.values[node.id] = View("", 0, (0,) * node.ndim, node.shape, fill=fill)
                continue
            reads: set[int] = set()
            for i in node.inputs:
                reads |= self.roots(i)
            if node.id in inline_results and callable(form):
                self.values[node.id] = Inline(node)
                self.reads[node.id] = reads
                continue
            user = consumer.get(node.id)
            if (
                callable(form)
                and user is not None
                and uses[node.id] == 1
                and node.id not in keep
                and self._inlines_into(node, user)
            ):
                self.values[node.id] = Inline(node)
                self.reads[node.id] = reads
                continue
            kind = (
                "elementwise"
                if callable(form)
                else ("reduction" if isinstance(form, C.Reduction) else form.kind)
            )
            self.stmts.append(Stmt(node, kind, reads, node.tag))
            if kind == "region":
                continue  # its results are its parts
            if node.shape == ():
                last = self._reusable(node, uses, keep) if kind == "elementwise" else None
                if last is not None:  # s = c * tanh(a * s + b); g_b += t7;
                    self.reuse[node.id] = last
                    self.values[node.id] = self.values[last.id]
                else:
                    name = self.named.get(node.id) or self.namer.fresh(node.name)
                    self.values[node.id] = Scalar(Expr(name, C.ATOM))
                self.locals.add(node.id)
            else:
                self.values[node.id] = View("", 0, contiguous(node.shape), node.shape, node.id)

    def _part(self, node: Node) -> None:
        """A region's result: a local its region's lines declare, or memory (a tape too)
        that the region's statement is given."""
        region = node.inputs[0]
        self.parts_of.setdefault(region.id, {})[node.attrs["index"]] = node
        self.part_ids.append(node.id)
        if node.dtype == "tape":
            size = c_regions.tape_size(region, self.consts)
            self.values[node.id] = View("", 0, (1,), (size,), node.id)
        elif node.shape == ():
            start = self._carried_start(region, node.attrs["index"])
            if start is not None:  # the loop alone reads its start: the local goes on
                self.values[node.id] = Scalar(start.expr)
                return
            name = self.named.get(node.id) or self.namer.fresh(node.name or "t")
            self.values[node.id] = Scalar(Expr(name, C.ATOM))
        else:
            self.values[node.id] = View("", 0, contiguous(node.shape), node.shape, node.id)

    def _carried_start(self, region: Node, index: int) -> Scalar | None:
        """The local holding a loop's carried scalar `index` at the start, if nothing but
        the loop reads it (so the loop's result can go on in it: s = ...; for: s = ...)."""
        if region.op != "loop" or index >= region.attrs["carried"]:
            return None
        init = region.inputs[index + (1 if region.attrs["role"] == "back" else 0)]
        v = self.values.get(init.id)
        own = init.id in self.locals or init.id in self.part_ids
        if own and isinstance(v, Scalar) and self.uses.get(init.id) == 1:
            return v
        return None

    def _reusable(self, node: Node, uses: dict[int, int], keep: set[int]) -> Node | None:
        """The input of scalar `node` whose local `node` takes over: one of the same name
        (a value the user's code reassigns, a gradient summed over the copy gate), read
        by `node` alone. Besides reading like the source, this keeps gcc's expander from
        folding a long sum into one expression tree that keeps every term live to its end
        (with one local per partial sum, a 500-step chain's backward took 5x longer)."""
        if not node.name:
            return None
        for x in node.inputs:
            if (
                x.id in self.locals
                and x.name == node.name
                and uses.get(x.id) == 1
                and x.id not in keep
                and node.inputs.count(x) == 1
            ):
                return x
        return None

    def _inlines_into(self, node: Node, user: Node) -> bool:
        uform = c_form(user.op)
        if node.shape == ():
            if uform in (SHAPE_FORMS["pack"], SHAPE_FORMS["multi_scatter"]):
                return True  # each element on its own line: g_w[0] = g_dot * x[0];
            return user.shape == () and callable(uform) and _same_place(node, user)
        if isinstance(uform, C.Reduction):
            return True  # the reduction loops over its input's shape
        return callable(uform) and user.shape == node.shape

    def _view(self, node: Node) -> None:
        """An element-moving op as a view of its input's memory (or a gather table)."""
        at_node(node)
        x = node.inputs[0]
        src = self.value(x)
        if isinstance(src, Inline):  # (planning never inlines into a view: cannot happen)
            raise AssertionError("inlined input of a view")
        if isinstance(src, Scalar):
            src = View("", 0, (), (), src.root, fill=src.expr)
        if src.fill is not None:  # a broadcast constant stays one
            if node.shape == ():
                self.values[node.id] = Scalar(src.fill, src.root)
            else:
                self.values[node.id] = View(
                    "", 0, (0,) * node.ndim, node.shape, src.root, fill=src.fill
                )
            return
        if node.op == "index" and any(i.op != "const" for i in node.inputs[1:]):
            self._dynamic_view(node, src)
            return
        others = []
        for i in node.inputs[1:]:
            others.append(i.value if i.op == "const" else np.zeros(i.shape))
        view = self._symbolic_view(node, src, others)
        if view is None:
            off = ops.OPS[node.op].eval(src.offsets(), *others, **node.attrs)
            off = np.asarray(off, dtype=np.int64)
            view = fit_view(off, src.base, src.root)
        if view is None:  # not a strided view: gathered into an array of its own
            self.stmts.append(Stmt(node, "gather", self.roots(x), node.tag))
            self.gathers[node.id] = (src, others)
            view = View("", 0, contiguous(node.shape), node.shape, node.id)
        self.values[node.id] = view

    def _symbolic_view(self, node: Node, src: View, others: list) -> View | None:
        """The view of `_view` where sizes are symbolic: found at several sizes and fitted
        (`sizes.lift`), and checked to stay inside its input's elements at every size
        that the code accepts (x[5] of an x of n elements needs n > 5)."""
        involved = (src.offset, src.strides, src.shape, node.shape, node.attrs)
        if not involves(involved):
            return None
        if any(i.op != "const" and involves(i.shape) for i in node.inputs[1:]):
            return None

        def at(point: dict[str, int]) -> tuple | None:
            s = View(src.base, *evaluate((src.offset, src.strides, src.shape), point))
            attrs = evaluate(node.attrs, point)
            off = np.asarray(ops.OPS[node.op].eval(s.offsets(), *others, **attrs), np.int64)
            v = fit_view(off, src.base, src.root)
            if v is None or v.shape != evaluate(tuple(node.shape), point):
                return None
            return (v.offset, *v.strides)

        got = lift(at, involved)
        if got is None:
            return None
        view = View(src.base, got[0], tuple(got[1:]), tuple(node.shape), src.root)
        _check_inside(view, src)
        return view

    def _offsets_at(
        self, offsets: np.ndarray, key: tuple, arrays: Sequence[Node]
    ) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """offsets[key], where the key's integers computed at run time (a loop's counter,
        i + 1) are known only as text: the offsets with each at 0, and a (stride, index
        text) term per such integer. A negative index counts from the end, as in numpy."""
        from ..ops.shape import real_key

        values = [a.value if a.op == "const" else np.int64(0) for a in arrays]
        base = np.asarray(offsets[real_key(key, values)])
        terms = []
        for k, a in enumerate(arrays):
            if a.op == "const":
                continue
            if a.shape != () or a.dtype != "i64":
                raise refuse(a, "an index array computed at run time")

            def moved(to: int) -> int | None:
                at = list(values)
                at[k] = np.int64(to)
                try:
                    step = np.asarray(offsets[real_key(key, at)]) - base
                except IndexError:  # (an axis of length 1: only index 0 is in it)
                    return None
                return int(step.reshape(-1)[0]) if step.size else 0

            stride = moved(1) or 0
            text = self.element(a, None).text
            if text not in self.nonneg and stride:
                n = (moved(-1) or 0) // stride + 1
                text = f"({text} < 0 ? {text} + {n} : {text})"
            terms.append((stride, text))
        return base, terms

    def _symbolic_at(
        self, view: View, key: tuple, arrays: Sequence[Node]
    ) -> tuple[View, list[tuple[int, str]]] | None:
        """`_offsets_at` where sizes are symbolic: the part with the run-time integers at 0
        as a view (fitted as in `_symbolic_view`), and its (stride, index text) terms;
        None where it is no single view (the caller then uses numbers)."""
        from ..ops.shape import real_key

        involved = (view.offset, view.strides, view.shape, key)
        if not involves(involved) or any(
            a.op != "const" and (a.shape != () or a.dtype != "i64") for a in arrays
        ):
            return None
        dynamic = [k for k, a in enumerate(arrays) if a.op != "const"]

        def at(point: dict[str, int]) -> tuple | None:
            h = View(view.base, *evaluate((view.offset, view.strides, view.shape), point))
            offsets, k_at = h.offsets(), evaluate(key, point)
            values = [a.value if a.op == "const" else np.int64(0) for a in arrays]
            base = np.asarray(offsets[real_key(k_at, values)])
            v = fit_view(base, view.base, None)
            if v is None:
                return None
            steps = []
            for k in dynamic:
                moved = []
                for to in (1, -1):
                    at_k = list(values)
                    at_k[k] = np.int64(to)
                    try:
                        step = np.asarray(offsets[real_key(k_at, at_k)]) - base
                    except IndexError:  # (an axis of length 1)
                        return None
                    moved.append(int(step.reshape(-1)[0]) if step.size else 0)
                if not moved[0]:
                    return None
                steps += [moved[0], moved[1] // moved[0] + 1]  # stride, the axis's length
            return (len(v.shape), v.offset, *v.strides, *v.shape, *steps)

        got = lift(at, involved)
        if got is None:
            return None
        nd = got[0]
        part = View(view.base, got[1], tuple(got[2 : 2 + nd]), tuple(got[2 + nd : 2 + 2 * nd]))
        _check_inside(part, view)  # (with the run-time integers at 0)
        steps = got[2 + 2 * nd :]
        terms = []
        for j, k in enumerate(dynamic):
            stride, length = steps[2 * j], steps[2 * j + 1]
            text = self.element(arrays[k], None).text
            if text not in self.nonneg:
                text = f"({text} < 0 ? {text} + {length} : {text})"
            terms.append((stride, text))
        return part, terms

    def _dynamic_view(self, node: Node, src: View) -> None:
        """x[i] with i known at run time: an element read in place where x's memory is
        named already (a parameter, saved, an enclosing walker's), else a pointer to the
        row (`const double *x_i = x + 3 * i;`) and a view of it."""
        if src.table is not None:
            raise refuse(node, "an index at run time into a gathered array")
        symbolic = self._symbolic_at(src, node.attrs["key"], node.inputs[1:])
        if symbolic is not None:
            part, terms = symbolic
            if node.shape == () and src.base:
                text = f"{src.base}[{_index_text(part.offset, terms)}]"
                self.values[node.id] = Scalar(Expr(text, C.ATOM), src.root)
                return
            name = self._row_pointer(node, src, terms)
            self.values[node.id] = View(name, part.offset, part.strides, part.shape, src.root)
            return
        base, terms = self._offsets_at(src.offsets(), node.attrs["key"], node.inputs[1:])
        if node.shape == () and src.base:
            text = f"{src.base}[{_index_text(int(base), terms)}]"
            self.values[node.id] = Scalar(Expr(text, C.ATOM), src.root)
            return
        name = self._row_pointer(node, src, terms)
        view = fit_view(base, name, src.root)
        if view is None:
            table = self.consts.table(base.reshape(-1).astype(np.int64))
            view = View(name, 0, contiguous(node.shape), node.shape, src.root, table=table)
        self.values[node.id] = view

    def _row_pointer(self, node: Node, src: View, terms: list) -> str:
        """A pointer statement `x_row = x + 3 * i` for node's row; its name."""
        name = self.namer.fresh(f"{node.inputs[0].name}_row" if node.inputs[0].name else "row")
        if src.base in self.floats:
            self.floats.add(name)
        self.stmts.append(Stmt(node, "pointer", self.roots(node.inputs[0]), None))
        self.pointers[node.id] = (src, terms)
        return name

    def _emit_pointer(self, node: Node) -> list[str]:
        src, terms = self.pointers[node.id]
        name = self.values[node.id].base
        kind = "float" if src.base in self.floats else "double"
        return [f"const {kind} *{name} = {src.base} + {_index_text(0, terms)};"]

    def _write_at(self, home: View, key: tuple, arrays: Sequence[Node], value: Node, op: str):
        """home[key] (op)= value, the key's integers possibly known only at run time."""
        symbolic = self._symbolic_at(home, key, arrays)
        if symbolic is not None:
            part, terms = symbolic
            if not terms:
                return self._copy(part, value, op)
            if part.shape == ():
                spot = f"{home.base}[{_index_text(part.offset, terms)}]"
                return [f"{spot} {op} {self.element(value, None).text};"]
            at = self.namer.fresh("at")
            kind = "float" if home.base in self.floats else "double"
            lines = [f"{kind} *{at} = {home.base} + {_index_text(0, terms)};"]
            moved = View(at, part.offset, part.strides, part.shape)
            return lines + self._copy(moved, value, op)
        base, terms = self._offsets_at(home.offsets(), key, arrays)
        if not terms:
            return self._copy(self._target(base, home), value, op)
        if base.shape == ():
            spot = f"{home.base}[{_index_text(int(base), terms)}]"
            return [f"{spot} {op} {self.element(value, None).text};"]
        at = self.namer.fresh("at")
        kind = "float" if home.base in self.floats else "double"
        lines = [f"{kind} *{at} = {home.base} + {_index_text(0, terms)};"]
        return lines + self._copy(self._target(base, View(at, 0, (), ())), value, op)

    # -- memory --

    def place(self, homes: dict[int, View], protected: set[int]) -> None:
        """Give every statement's array a home: `homes` (outputs, saved) or a work slot,
        reused once the value in it is dead (liveness from memory.plan)."""
        mstmts = [memory.Statement(s.node, s.reads) for s in self.stmts]
        with unguarded():  # (only the liveness is read: the same at every size)
            last = memory.plan(mstmts, protected, set()).last
        free: list[tuple[int, int]] = []  # (offset, size) blocks
        top = 0
        dying: dict[int, list[int]] = {}
        for nid, k in last.items():
            dying.setdefault(k, []).append(nid)
        slots: dict[int, tuple[int, int]] = {}
        self.slots: dict[int, int] = {}
        for k, st in enumerate(self.stmts):
            node = st.node
            # what the statement defines in memory: its array, or a region's array results
            defined = [node] if node.shape != () and st.kind != "pointer" else []
            if st.kind == "region":
                parts = self.parts_of.get(node.id, {})
                defined = [
                    p for _, p in sorted(parts.items()) if isinstance(self.values[p.id], View)
                ]
            for d in defined:
                home = homes.get(d.id)
                if home is None:
                    view = self.values[d.id]
                    size = math.prod(view.shape)
                    # (a block that holds it at every size: a guard would limit the dims)
                    pick = next((b for b in free if always(b[1], ">=", size)), None)
                    if pick is not None:
                        free.remove(pick)
                        rest = pick[1] - size
                        if involves(rest) or rest > 0:
                            free.append((pick[0] + size, rest))
                        offset = pick[0]
                    else:
                        offset, top = top, top + size
                    slots[d.id] = (offset, size)
                    self.slots[d.id] = offset
                    name = self.namer.fresh(d.name or ("tape" if d.dtype == "tape" else None))
                    self.decls[d.id] = name
                    home = View(name, 0, view.strides, view.shape, d.id)
                self.homes[d.id] = home
                self._rebase(d.id, home)
            for nid in dying.get(k, ()):
                if nid in slots and nid not in protected:
                    free.append(slots.pop(nid))
                    free.sort(key=lambda b: (number(b[0]), number(b[1])))
        self.work_size = self.top = top

    def scratch_base(self) -> int:
        """Where a region's scratch starts in `work`: above this walker's slots."""
        return self.work_offset + self.top

    def need_scratch(self, size: int) -> None:
        """A region's statement uses `size` doubles of scratch (while it runs)."""
        self.work_size = upper(self.work_size, self.top + size)

    def _rebase(self, nid: int, home: View) -> None:
        """Point the views of node `nid`'s memory at its home (the views made before it
        had one: a view of a dynamic row names its pointer, and stays)."""
        for key, v in self.values.items():
            if isinstance(v, View) and v.root == nid and v.fill is None and v.base == "":
                off = home.offset + v.offset
                v.base, v.offset = home.base, off
                if home.root != nid:
                    v.root = home.root

    # -- rendering --

    def element(self, node: Node, loop: Loop | None) -> Expr:
        """`node` at the loop's current element (a scalar expression when `loop` is None)."""
        v = self.value(node)
        if isinstance(v, Scalar):
            return v.expr
        if isinstance(v, Inline):
            form = c_form(node.op)
            return form([self.element(i, loop) for i in node.inputs], node)
        if v.fill is not None:
            return v.fill
        if loop is None:
            return Expr(f"{v.base}[{v.offset}]", C.ATOM)
        return Expr(loop.leaf(v), C.ATOM)

    def render(
        self, after: dict[int, list[str]] | None = None, lazy: dict[str, str] | None = None
    ) -> list[str]:
        """The statements, each the lines of one node (`statements`), in order. `after`:
        lines written right after a node's statement (a saved scalar stored as soon as it
        exists); `lazy`: declarations {name: line} written just before the first
        statement that names them (a saved value read where it is first needed), taken
        out of `lazy`. Both keep live ranges short: a long unrolled chain then costs the
        register allocator little."""
        out: list[str] = []
        for node, lines in self.statements():
            if lazy:
                out += take_named(lazy, lines)
            out.extend(lines)
            out.extend((after or {}).get(node.id, ()))
        return out

    def statements(self):
        """(node, its lines) for each statement: the one place where a node becomes C."""
        in_backward = False
        for st in self.stmts:
            node = st.node
            at_node(node)
            lines = getattr(self, f"_emit_{st.kind}")(node)
            if self.comments and st.comment and st.kind != "region":  # (regions: their head)
                lines[0] = f"{lines[0]} /* {st.comment} */"
            if st.kind == "region":
                for p in self.parts_of.get(node.id, {}).values():
                    if p.id in self.decls:
                        at = self.work_offset + self.slots[p.id]
                        lines.insert(0, f"double *{self.decls[p.id]} = work + {at};")
            if node.id in self.decls:
                at = self.work_offset + self.slots[node.id]
                lines.insert(0, f"double *{self.decls[node.id]} = work + {at};")
            if self.comments and st.comment and not in_backward and not self.nested:
                lines.insert(0, "/* backward */")
                in_backward = True
            yield node, lines

    def _emit_region(self, node: Node) -> list[str]:
        return c_regions.render(self, node)

    def _emit_accumulate(self, node: Node) -> list[str]:
        """acc with each part added at its place; in place when acc's memory is its home
        (a backward loop's running gradient of an array: g_x[i] += v)."""
        from ..ops.shape import scatter_parts

        home = self.homes[node.id]
        acc = self.value(node.inputs[0])
        lines = [] if same_memory(acc, home) else self._copy(home, node.inputs[0])
        for value, arrays, key in scatter_parts(node.inputs[1:], node.attrs["keys"]):
            lines += self._write_at(home, key, arrays, value, "+=")
        return lines

    def _copy_view(self, dest: View, src: View) -> list[str]:
        """dest = src, element by element (both memory)."""
        loop = Loop(dest.shape)
        return loop.render([f"{loop.leaf(dest)} = {loop.leaf(src)};"])

    def _store(self, node: Node, loop: Loop) -> str:
        return loop.leaf(self.homes[node.id])

    def _emit_elementwise(self, node: Node) -> list[str]:
        form = c_form(node.op)
        if node.shape == ():
            name = self.values[node.id].expr.text
            last = self.reuse.get(node.id)
            if last is None:
                e = form([self.element(i, None) for i in node.inputs], node)
                return [f"{local_type(node.dtype)} {name} = {e.text};"]
            if node.op == "add":  # (IEEE addition commutes: the same bits either way)
                other = node.inputs[1] if node.inputs[0] is last else node.inputs[0]
                return [f"{name} += {self.element(other, None).text};"]
            e = form([self.element(i, None) for i in node.inputs], node)
            return [f"{name} = {e.text};"]
        loop = Loop(node.shape)
        e = form([self.element(i, loop) for i in node.inputs], node)
        return loop.render([f"{self._store(node, loop)} = {e.text};"])

    def _emit_reduction(self, node: Node) -> list[str]:
        form: C.Reduction = c_form(node.op)
        x = node.inputs[0]
        axis, keepdims = node.attrs["axis"], node.attrs["keepdims"]
        count = math.prod(x.shape[a] for a in axis)
        loop = Loop(x.shape)
        elem = self.element(x, loop)
        lines: list[str] = []
        if node.shape == ():
            acc = self.values[node.id].expr.text
            lines.append(f"double {acc} = {form.init};")
            finish = [f"{acc} = {form.finish.format(acc=acc, n=_num(count))};"]
        else:
            home = self.homes[node.id]
            init = Loop(node.shape)
            lines += init.render([f"{init.leaf(home)} = {form.init};"])
            full = reduced_view(home, x.shape, axis, keepdims)
            acc = loop.leaf(full)
            fin = Loop(node.shape)
            spot = fin.leaf(home)
            finish = fin.render([f"{spot} = {form.finish.format(acc=spot, n=_num(count))};"])
        body = _update(form, acc, elem)
        lines += loop.render(body)
        if form.finish:
            lines += finish
        return lines

    def _emit_matmul(self, node: Node) -> list[str]:
        """numpy's matmul (vectors promoted, batch dims broadcast) as a loop nest over
        blocks of rows of the result (`_matmul_rows`); a small product (under MATMUL_SMALL
        multiply-adds), vector @ vector, or an operand that is a constant fill, as the plain
        nest: i-k-j, or i-j-k into a local sum when b is stored transposed (its columns are
        then contiguous)."""
        a, b = (self._memory(i) for i in node.inputs)
        if a.ndim == 1:
            a = View(a.base, a.offset, (0, a.strides[0]), (1, a.shape[0]), fill=a.fill)
        if b.ndim == 1:
            b = View(b.base, b.offset, (b.strides[0], 0), (b.shape[0], 1), fill=b.fill)
        batch = _broadcast(a.shape[:-2], b.shape[:-2])
        m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
        nb = len(batch)
        a, b = _pad(a, nb + 2), _pad(b, nb + 2)
        sa, sb = a.strides, b.strides
        # (with sizes known only at run time: the plain nest, whose loops take any size)
        big = number(m) * number(k) * number(n) >= MATMUL_SMALL
        if node.shape != () and big and a.fill is None and b.fill is None:
            home = self.homes[node.id]
            full = (*batch, m, n)
            out = View(home.base, home.offset, contiguous(full), full)
            dot = not is_one(k) and (n == 1 or (sb[-1] != 1 and sb[-2] == 1))
            lines = [] if dot else _zero_lines(out)
            return lines + _matmul_rows(out, a, b, dot)
        ijk = node.shape == () or (
            not is_one(n) and not _same(sb[-1], 1) and (_same(sb[-2], 1) or is_one(k))
        )
        order = (*batch, m, n, k) if ijk else (*batch, m, k, n)
        loop = Loop(order)
        if ijk:  # a[i, p] at (i, p) and b[p, j] at (j, p)
            a_at = View(
                a.base,
                a.offset,
                (*sa[:nb], sa[nb], 0, sa[nb + 1]),
                (*a.shape[:nb], m, 1, k),
                fill=a.fill,
            )
            b_at = View(
                b.base,
                b.offset,
                (*sb[:nb], 0, sb[nb + 1], sb[nb]),
                (*b.shape[:nb], 1, n, k),
                fill=b.fill,
            )
        else:
            a_at = View(
                a.base,
                a.offset,
                (*sa[:nb], sa[nb], sa[nb + 1], 0),
                (*a.shape[:nb], m, k, 1),
                fill=a.fill,
            )
            b_at = View(
                b.base,
                b.offset,
                (*sb[:nb], 0, sb[nb], sb[nb + 1]),
                (*b.shape[:nb], 1, k, n),
                fill=b.fill,
            )
        a_leaf, b_leaf = loop.leaf(a_at), loop.leaf(b_at)
        if node.shape == ():
            acc = self.values[node.id].expr.text
            return [f"double {acc} = 0.0;"] + loop.render([f"{acc} += {a_leaf} * {b_leaf};"])
        home = self.homes[node.id]
        full = (*batch, m, n)
        st = contiguous(full)
        if ijk:
            out = loop.leaf(View(home.base, home.offset, (*st, 0), (*full, 1)))
            return loop.render(
                [f"acc += {a_leaf} * {b_leaf};"],
                inner=1,
                head=["double acc = 0.0;"],
                tail=[f"{out} = acc;"],
            )
        out = loop.leaf(
            View(home.base, home.offset, (*st[:nb], st[nb], 0, st[nb + 1]), (*batch, m, 1, n))
        )
        zero = Loop(node.shape)
        lines = zero.render([f"{zero.leaf(home)} = 0.0;"])
        return lines + loop.render([f"{out} += {a_leaf} * {b_leaf};"])

    def _emit_kernel(self, node: Node) -> list[str]:
        """An algorithm as calls of static helpers (emit/c_kernels.py: linear algebra,
        argsort, gathers at computed indices). Its scratch lies past every slot `place`
        gave out, live only during these lines."""
        lines, scratch = c_kernels.emit(self, node, self.scratch_base())
        self.need_scratch(scratch)
        return lines

    def _emit_outer(self, node: Node) -> list[str]:
        x, y = (self._memory(i) for i in node.inputs)
        loop = Loop(node.shape)
        xs = loop.leaf(View(x.base, x.offset, (x.strides[0], 0), (x.shape[0], 1), fill=x.fill))
        ys = loop.leaf(View(y.base, y.offset, (0, y.strides[0]), (1, y.shape[0]), fill=y.fill))
        xs = x.fill.text if x.fill is not None else xs
        ys = y.fill.text if y.fill is not None else ys
        return loop.render([f"{self._store(node, loop)} = {xs} * {ys};"])

    def _emit_pack(self, node: Node) -> list[str]:
        home = self.homes[node.id]
        return [
            f"{home.base}[{home.offset + k}] = {self.element(i, None).text};"
            for k, i in enumerate(node.inputs)
        ]

    def _emit_stack(self, node: Node) -> list[str]:
        return self._emit_concatenate(node)

    def _emit_concatenate(self, node: Node) -> list[str]:
        """Each input copied into its part of the result: the result's view, moved along
        the axis (sizes may be symbolic)."""
        home = self.homes[node.id]
        axis = node.attrs.get("axis", 0)
        flat = axis is None  # (np.concatenate(axis=None): flattened inputs, one after another)
        if flat:
            home, axis = View(home.base, home.offset, (1,), (node.size,)), 0
        axis %= len(home.shape)
        step = home.strides[axis]
        lines: list[str] = []
        start = 0
        for i in node.inputs:
            if node.op == "stack":
                shape = home.shape[:axis] + home.shape[axis + 1 :]
                strides = home.strides[:axis] + home.strides[axis + 1 :]
                part = View(home.base, home.offset + start * step, strides, shape)
                start += 1
            else:
                size = i.size if flat else i.shape[axis]
                shape = home.shape[:axis] + (size,) + home.shape[axis + 1 :]
                part = View(home.base, home.offset + start * step, home.strides, shape)
                start += size
            if flat:
                part = View(part.base, part.offset, contiguous(i.shape), i.shape)
            lines += self._copy(part, i)
        return lines

    def _emit_scatter(self, node: Node) -> list[str]:
        home = self.homes[node.id]
        zero = Loop(node.shape)
        lines = zero.render([f"{zero.leaf(home)} = 0.0;"])
        g = node.inputs[0]
        return lines + self._write_at(home, node.attrs["key"], node.inputs[1:], g, "+=")

    def _emit_gather(self, node: Node) -> list[str]:
        """An element-moving op whose elements are not a strided view of its input (an
        integer-array index, sliding windows): copied through a table of offsets."""
        src, others = self.gathers[node.id]
        off = np.asarray(ops.OPS[node.op].eval(src.offsets(), *others, **node.attrs))
        table = self.consts.table(off.reshape(-1).astype(np.int64))
        loop = Loop(node.shape)
        at = View(src.base, 0, contiguous(node.shape), node.shape, table=table)
        return loop.render([f"{self._store(node, loop)} = {loop.leaf(at)};"])

    def _emit_multi_scatter(self, node: Node) -> list[str]:
        """Zeros, then each part added at its slots (one by one: repeats add up)."""
        from ..ops.shape import real_key, scatter_parts

        home = self.homes[node.id]
        zero = Loop(node.shape)
        lines = zero.render([f"{zero.leaf(home)} = 0.0;"])
        offsets = None
        for value, arrays, key in scatter_parts(node.inputs, node.attrs["keys"]):
            values = [a.value if a.op == "const" else None for a in arrays]
            if any(v is None for v in values):
                raise refuse(node, "a scatter at computed indices")
            symbolic = self._symbolic_at(home, key, arrays)
            if symbolic is not None:
                lines += self._copy(symbolic[0], value, "+=")
                continue
            offsets = home.offsets() if offsets is None else offsets
            part = np.asarray(offsets[real_key(key, values)])
            lines += self._copy(self._target(part, home), value, "+=")
        return lines

    def _emit_cumulative(self, node: Node) -> list[str]:
        """A copy of the input, then each element after the first along the axis combined
        with the one before it, in order (numpy's sequential sum or product: the same bits)."""
        home = self.homes[node.id]
        axis, n = node.attrs["axis"], node.shape[node.attrs["axis"]]
        lines = self._copy(home, node.inputs[0])
        if n < 2:
            return lines
        shape = tuple(n - 1 if d == axis else s for d, s in enumerate(node.shape))
        step = home.strides[axis]
        cur = View(home.base, home.offset + step, home.strides, shape)
        prev = View(home.base, home.offset, home.strides, shape)
        loop = Loop(shape)
        symbol = "+=" if node.op == "cumsum" else "*="
        return lines + loop.render([f"{loop.leaf(cur)} {symbol} {loop.leaf(prev)};"])

    def _emit_index_update(self, node: Node) -> list[str]:
        home = self.homes[node.id]
        x, v = node.inputs[0], node.inputs[1]
        base, _ = self._offsets_at(home.offsets(), node.attrs["key"], node.inputs[2:])
        if base.size and len(np.unique(base)) != base.size:
            raise refuse(node, "an assignment with repeated indices")
        lines = self._copy(home, x)
        return lines + self._write_at(home, node.attrs["key"], node.inputs[2:], v, "=")

    def _target(self, part: np.ndarray, home: View) -> View:
        """The elements at offsets `part` of home's memory, as a view (or a table)."""
        view = fit_view(part, home.base, None)
        if view is None:
            table = self.consts.table(part.reshape(-1))
            view = View(home.base, 0, contiguous(part.shape), part.shape, table=table)
        return view

    def _copy(self, dest: View, src: Node, op: str = "=") -> list[str]:
        """dest (op)= src, src broadcast to dest's shape."""
        if dest.shape == ():
            spot = f"{dest.base}[{dest.offset}]" if dest.table is None else None
            if spot is None:
                loop = Loop(())
                spot = loop.leaf(dest)
                return loop.render([f"{spot} {op} {self.element(src, None).text};"])
            return [f"{spot} {op} {self.element(src, None).text};"]
        loop = Loop(dest.shape)
        e = self.element(src, loop)
        return loop.render([f"{loop.leaf(dest)} {op} {e.text};"])

    def _memory(self, node: Node) -> View:
        v = self.value(node)
        if isinstance(v, Scalar):
            return View("", 0, (), (), fill=v.expr)
        if isinstance(v, Inline) or v.table is not None:
            raise refuse(node, "this operand of a matrix product (a computed gather)")
        return v

    def copy_out(self, node: Node, dest: View) -> list[str]:
        """Copy a result into an output or saved spot other than its home."""
        if self.homes.get(node.id) is dest:
            return []
        return self._copy(dest, node)


# ---- matrix products ----

MATMUL_ROWS = 4  # rows of the result computed together: a row of b is read once for them
MATMUL_DEPTH = 4  # steps of k taken together: each element of out loaded and stored once
MATMUL_PANEL = 32768  # doubles of b one block of k spans (256 KB: it stays in L2)
MATMUL_SMALL = 4096  # multiply-adds a product (of the batch) below which the plain nest runs


def _zero_lines(out: View) -> list[str]:
    loop = Loop(out.shape)
    return loop.render([f"{loop.leaf(out)} = 0.0;"])


def _matmul_rows(out: View, a: View, b: View, dot: bool) -> list[str]:
    """out = a @ b (views padded to the same number of dims, batch dims first) as loops
    over the batch and over blocks of MATMUL_ROWS rows of out, the rows of a block
    written out one line each. Each element is summed over k in order (the bits of the
    plain i-k-j nest). With `dot` (b stored transposed, or one column): a dot product
    per column into `acc`, one sum per row of the block, so each element of b is loaded
    once for the block. Else i-k-j into out (zeroed before), MATMUL_DEPTH steps of k a
    line: the innermost loop walks rows of b and the block's rows of out, unit-stride
    when b is C-ordered, which gcc vectorizes; k runs in blocks whose rows of b stay in
    cache across the row blocks."""
    nb, m = out.ndim - 2, out.shape[-2]
    terms: list[list[tuple[int, str]]] = [[], [], []]  # out, a, b
    heads: list[str] = []
    for d in range(nb):
        if not is_one(out.shape[d]):
            var = f"i{len(heads)}"
            heads.append(f"for (long {var} = 0; {var} < {out.shape[d]}; {var}++) {{")
            for t, v in zip(terms, (out, a, b)):
                t.append((v.strides[d], var))
    body: list[str] = []
    if isinstance(m, Size):  # blocks while 4 rows are left, then rows one by one
        rows = MATMUL_ROWS
        blocks = [(0, m - (rows - 1), rows, True), (f"{m} - {m} % {rows}", m, 1, True)]
    else:
        rows = min(MATMUL_ROWS, m)
        blocks = [(0, m - m % rows, rows, False)]
        blocks += [(m - m % rows, m, m % rows, False)] if m % rows else []
    for block in blocks:
        body += _matmul_block(out, a, b, dot, terms, len(heads), block)
    return _nest(heads, body)


def _matmul_block(
    out: View, a: View, b: View, dot: bool, terms: list, first: int, rows: tuple
) -> list[str]:
    """Rows start..stop of out, `r` at a time (see _matmul_rows), as a loop whenever
    `looped` (sizes known at run time: start may be C text); loop variables from
    i{first} on."""
    start, stop, r, looped = rows
    n, k = out.shape[-1], a.shape[-1]
    sa, sb, so = a.strides, b.strides, out.strides
    runtime_k = isinstance(k, Size)
    kmain = k if runtime_k else k - k % MATMUL_DEPTH  # k in steps of 4, then one by one
    panel = MATMUL_DEPTH
    if not involves((k, n)):  # (blocks of k: only where the sizes are known)
        panel = max(MATMUL_DEPTH, MATMUL_PANEL // max(n, 1) // MATMUL_DEPTH * MATMUL_DEPTH)

    def nest(blocked: bool, body) -> list[str]:
        """The loops over k's blocks (`blocked`), the rows and what `body(names, heads,
        t_out, t_a, row_out, row_a)` adds, around its lines."""
        names = iter(f"i{d}" for d in range(first, 32))
        t_out, t_a = list(terms[0]), list(terms[1])
        heads: list[str] = []
        if blocked:
            kb = next(names)
            note = f" /* {panel} rows of the right operand at a time: they stay in cache */"
            heads.append(f"for (long {kb} = 0; {kb} < {kmain}; {kb} += {panel}) {{{note}")
        at = [0, 0]  # the offset of row `start` in out and in a
        if looped or stop - start > r:
            var = next(names)
            note = f" /* {r} rows of the result at a time */" if r > 1 and not dot else ""
            heads.append(f"for (long {var} = {start}; {var} < {stop}; {var} += {r}) {{{note}")
            t_out.append((so[-2], var))
            t_a.append((sa[-2], var))
        else:
            at = [start * so[-2], start * sa[-2]]
        row_out = [out.offset + at[0] + q * so[-2] for q in range(r)]
        row_a = [a.offset + at[1] + q * sa[-2] for q in range(r)]
        lines = body(names, heads, t_out, t_a, row_out, row_a)
        if not heads:  # one block of rows and one column: a scope for acc
            return ["{"] + ["    " + line for line in lines] + ["}"]
        return _nest(heads, lines)

    def dots(names, heads, t_out, t_a, row_out, row_a) -> list[str]:
        j = next(names) if not is_one(n) else ""
        p = next(names)
        if j:
            heads.append(f"for (long {j} = 0; {j} < {n}; {j}++) {{")
        j_at = [(sb[-1], j)] if j else []
        b_at = f"{b.base}[{_index_text(b.offset, list(terms[2]) + j_at + [(sb[-2], p)])}]"
        acc = ["acc"] if r == 1 else [f"acc[{q}]" for q in range(r)]
        init = "double acc = 0.0;" if r == 1 else f"double acc[{r}] = {{{', '.join(['0.0'] * r)}}};"
        if r > 1:
            init += f" /* {r} dot products at a time, one a row */"
        sums = [
            f"{acc[q]} += {a.base}[{_index_text(row_a[q], t_a + [(sa[-1], p)])}] * {b_at};"
            for q in range(r)
        ]
        stores = [
            f"{out.base}[{_index_text(row_out[q], t_out + [(so[-1], j)])}] = {acc[q]};"
            for q in range(r)
        ]
        return [init] + _nest([f"for (long {p} = 0; {p} < {k}; {p}++) {{"], sums) + stores

    def steps(lo: int, hi: int, blocked: bool, step: int = 0):
        """Steps lo..hi of k (a loop of MATMUL_DEPTH-steps when hi - lo > MATMUL_DEPTH;
        with `step`, a loop of `step`-steps: k known at run time, lo may be C text)."""

        def body(names, heads, t_out, t_a, row_out, row_a) -> list[str]:
            p = ""  # the loop over k, if any: the steps are then p + s
            if step:
                p = next(names)
                heads.append(f"for (long {p} = {lo}; {p} < {hi}; {p} += {step}) {{")
            elif hi - lo > MATMUL_DEPTH:
                p = next(names)
                if blocked:
                    kb = f"i{first}"
                    end = f"{kb} + {panel}"
                    if kmain % panel:
                        end = f"({end} < {kmain} ? {end} : {kmain})"
                    heads.append(f"for (long {p} = {kb}; {p} < {end}; {p} += {MATMUL_DEPTH}) {{")
                else:
                    heads.append(f"for (long {p} = {lo}; {p} < {hi}; {p} += {MATMUL_DEPTH}) {{")
            t_a_p = t_a + [(sa[-1], p)] if p else t_a
            t_b_p = list(terms[2]) + ([(sb[-2], p)] if p else [])
            first_p = 0 if p else lo
            j = next(names)
            note = ""
            if lo and not step:
                last = "the last term" if hi - lo == 1 else f"the last {hi - lo} terms"
                note = f" /* {last} of {k} */"
            heads.append(f"for (long {j} = 0; {j} < {n}; {j}++) {{{note}")
            lines = []
            count = step or min(MATMUL_DEPTH, hi - lo)
            for q in range(r):
                spot = f"{out.base}[{_index_text(row_out[q], t_out + [(so[-1], j)])}]"
                for s in range(first_p, first_p + count):
                    a_at = _index_text(row_a[q] + s * sa[-1], t_a_p)
                    b_at = _index_text(b.offset + s * sb[-2], t_b_p + [(sb[-1], j)])
                    lines.append(f"{spot} += {a.base}[{a_at}] * {b.base}[{b_at}];")
            return lines

        return body

    if dot:
        return nest(False, dots)
    lines: list[str] = []
    if runtime_k:  # 4 steps of k while 4 are left, then one by one
        d = MATMUL_DEPTH
        lines += nest(False, steps(0, k - (d - 1), False, d))
        return lines + nest(False, steps(f"{k} - {k} % {d}", k, False, 1))
    if kmain:
        lines += nest(kmain > panel, steps(0, kmain, kmain > panel))
    if kmain < k:
        lines += nest(False, steps(kmain, k, False))
    return lines


def _broadcast(x: tuple, y: tuple) -> tuple:
    """numpy's broadcast of two shapes (sizes may be symbolic: the shapes were checked when
    traced, so a dim is the other one where it is 1)."""
    if not involves((x, y)):
        return tuple(np.broadcast_shapes(x, y))
    x, y = (1,) * (len(y) - len(x)) + tuple(x), (1,) * (len(x) - len(y)) + tuple(y)
    return tuple(q if is_one(p) else p for p, q in zip(x, y))


def _nest(heads: Sequence[str], body: list[str]) -> list[str]:
    """`body` inside the loops whose header lines are `heads`, outermost first."""
    for head in reversed(heads):
        body = [head] + ["    " + line for line in body] + ["}"]
    return body


def take_named(pending: dict[str, str], lines: Sequence[str]) -> list[str]:
    """The declarations in `pending` whose names `lines` mention, taken out of it."""
    text = "\n".join(lines)
    named = [n for n in pending if re.search(rf"\b{re.escape(n)}\b", text)]
    return [pending.pop(n) for n in named]


def _pad(v: View, ndim: int) -> View:
    extra = ndim - len(v.shape)
    return View(
        v.base,
        v.offset,
        (0,) * extra + tuple(v.strides),
        (1,) * extra + tuple(v.shape),
        fill=v.fill,
    )


def reduced_view(home: View, xshape: tuple, axis: tuple, keepdims: bool) -> View:
    """The result `home` read at the index of the reduction's input: stride 0 on the
    reduced axes."""
    strides, k = [], 0
    for d in range(len(xshape)):
        if d in axis:
            strides.append(0)
            if keepdims:
                k += 1
        else:
            strides.append(0 if is_one(xshape[d]) else home.strides[k])
            k += 1
    return View(home.base, home.offset, tuple(strides), tuple(xshape), home.root)


def _update(form: C.Reduction, acc: str, elem: Expr) -> list[str]:
    if form.update.count("{x}") > 1:
        return [f"const double elem = {elem.text};", form.update.format(acc=acc, x="elem")]
    return [form.update.format(acc=acc, x=elem.text)]


def _num(n: int) -> str:
    if isinstance(n, Size):  # (a count known at run time)
        return f"(double){n}"
    return f"{float(n)!r}"


@dataclass
class CConsts:
    """Constant arrays and gather tables: `static const`, defined once per file (when
    first read: an unused static is a warning). Array constants are named before any
    function is emitted (`reserve`), so that no local takes a constant's name."""

    lines: list[str] = field(default_factory=list)
    names: dict[tuple, str] = field(default_factory=dict)
    defined: set[tuple] = field(default_factory=set)
    namer: Namer = field(default_factory=lambda: Namer(RESERVED_C))
    # a while loop's bound, for its tape: its line's (`# gradgen: max N`: line -> N), else
    # --max-iterations
    bounds: dict[int, int] = field(default_factory=dict)
    max_iterations: int | None = None

    @staticmethod
    def _key(node: Node) -> tuple | None:
        """None for a constant written as a literal (a scalar, or one value everywhere)."""
        if node.shape == ():
            return None
        flat = np.asarray(node.value, dtype=np.float64).reshape(-1)
        if flat.size and np.all(flat == flat[0]):
            return None
        return ("d", flat.tobytes())

    def reserve(self, node: Node) -> None:
        key = self._key(node)
        if key is not None and key not in self.names:
            self.names[key] = self.namer.fresh(node.name or "C")

    def value(self, node: Node):
        if node.shape == () and node.dtype == "i64":  # (an index: i + 1)
            n = int(node.value)
            return Scalar(Expr(str(n), C.ATOM if n >= 0 else C.UNARY))
        if isinstance(node.value, Ratio):  # 1/n, with n a named dim
            return Scalar(Expr(node.value.c_text(), C.ATOM))
        if node.shape == ():
            return Scalar(C.literal(float(node.value)))
        key = self._key(node)
        if key is None:
            first = float(np.asarray(node.value).reshape(-1)[0])
            return View("", 0, (0,) * node.ndim, node.shape, fill=C.literal(first))
        self.reserve(node)
        name = self.names[key]
        if key not in self.defined:
            self.defined.add(key)
            flat = np.asarray(node.value, dtype=np.float64).reshape(-1)
            body = ", ".join(C.literal(float(x)).text for x in flat)
            self.lines.append(f"static const double {name}[{flat.size}] = {{{_wrap_list(body)}}};")
        return View(name, 0, contiguous(node.shape), node.shape)

    def table(self, offsets: np.ndarray) -> str:
        """A gather's offsets (gradgen_ names: C's and no user's)."""
        key = ("l", offsets.tobytes())
        if key not in self.names:
            name = self.namer.fresh("gradgen_gather")
            self.names[key] = name
            body = ", ".join(str(int(x)) for x in offsets)
            self.lines.append(f"static const long {name}[{offsets.size}] = {{{_wrap_list(body)}}};")
        return self.names[key]


def _wrap_list(body: str, width: int = 92) -> str:
    if len(body) <= width:
        return body
    items, lines, cur = body.split(", "), [], ""
    for it in items:
        if cur and len(cur) + len(it) + 2 > width:
            lines.append(cur + ",")
            cur = it
        else:
            cur = f"{cur}, {it}" if cur else it
    lines.append(cur)
    return "\n    " + "\n    ".join(lines) + "\n"


# ---- the five functions of one traced function ----


@dataclass
class CFunction:
    name: str
    params: list[str]
    lines: list[str]
    doc: str
    work: int = 0
    returns: bool = False  # the lines end in their own return
    wide: bool = False  # built for AVX2 too, where the compiler can (GRADGEN_WIDE)


@dataclass
class CUnit:
    """What the header, the C file and the loader need to know about one function."""

    name: str
    params: list[tuple[str, tuple, str]]  # (C name, shape, dtype)
    wrt: list[tuple[str, tuple, str]]
    out_shape: tuple
    out_dtype: str
    dims: list[tuple[str, int]]  # named dims (leading `long` parameters), their sizes
    functions: list[CFunction]
    work_size: int
    saved_size: int
    signature: str
    saved_names: list[str] = field(default_factory=list)
    fixed: dict[str, str] = field(default_factory=dict)  # dims fixed to their size, why
    conditions: list[str] = field(default_factory=list)  # what else the code assumes


def ctype(dtype: str) -> str:
    """float32 values are float at the boundary (parameters, outputs); the code computes
    in double inside, as the work and saved buffers hold doubles."""
    return "float" if dtype == "f32" else "double"


def _param_decl(name: str, shape: tuple, dtype: str) -> str:
    if shape == ():
        return f"{ctype(dtype)} {name}"
    return f"const {ctype(dtype)} *restrict {name}"


def _function(
    unit: Unit,
    consts: CConsts,
    comments: bool,
    graph: Graph,
    nodes: Sequence[Node],
    results: list[tuple[Node, View]],
    scalar_params: bool = True,
    bound: dict[int, tuple[Node, int]] | None = None,
    redo: Sequence[Node] = (),
    keep: set[int] = frozenset(),
    taken: Sequence[str] = (),
) -> tuple[list[str], int]:
    """Statements computing `results` (node, destination) from `nodes`; (lines, work
    size). `taken`: more names of the C function's parameters (named dims)."""
    namer = Namer(set(RESERVED_C) | set(consts.names.values()) | set(taken))
    for _, dest in results:
        namer.claim(dest.base)
    w = CWalker(namer, consts, comments)
    for p in graph.params:
        if bound and p.id in bound:
            continue
        seed = p.name == "g" and p is graph.params[-1] and "g" not in unit.params
        name = "g" if seed else namer.claim(c_name(p.name))
        w.bind_param(p, name, pointer=not scalar_params or seed)
        if p.dtype == "f32":
            w.floats.add(name)
    w.floats |= {dest.base for r, dest in results if r.dtype == "f32"}
    lazy: dict[str, str] = {}  # saved values, each read just before its first use
    at = {n.id: k for k, n in enumerate(graph.nodes)}
    early = [n for n, _ in (bound or {}).values()] + list(redo)
    # saved and recomputed values named in graph order, as the forward names them
    w.named = {n.id: namer.fresh(_hint(n)) for n in sorted(early, key=lambda n: at[n.id])}
    for nid, v in (bound or {}).items():
        node, offset = v
        name = w.named[nid]
        if node.dtype == "tape":
            lazy[name] = f"const double *{name} = saved + {offset};"
            size = c_regions.tape_size(node.inputs[0], consts)
            w.values[nid] = View(name, 0, (1,), (size,))
        elif node.shape == ():
            lazy[name] = f"const double {name} = saved[{offset}];"
            w.values[nid] = Scalar(Expr(name, C.ATOM))
        else:
            lazy[name] = f"const double *{name} = saved + {offset};"
            w.values[nid] = View(name, 0, contiguous(node.shape), node.shape)
    w.plan(nodes, [r for r, _ in results], keep | {r.id for r, _ in results})
    homes: dict[int, View] = {}
    stmt_ids = {s.node.id for s in w.stmts}
    for r, dest in results:
        defined = r.id in stmt_ids or r.id in w.part_ids
        if defined and r.id not in homes and (r.shape != () or r.dtype == "tape"):
            homes[r.id] = dest
    protected = {r.id for r, _ in results} | set(keep)
    for r, _ in results:
        protected |= w.roots(r)
    w.place(homes, protected)
    after: dict[int, list[str]] = {}  # a scalar result stored as soon as it is computed
    tail: list[str] = []
    for r, dest in results:
        if r.dtype == "tape":  # (written where it is: its home)
            continue
        if r.shape == ():
            store = f"{dest.base}[{dest.offset}] = {w.element(r, None).text};"
            (after.setdefault(r.id, []) if r.id in stmt_ids else tail).append(store)
        else:
            tail += w.copy_out(r, dest)
    lines = w.render(after, lazy)
    return lines + take_named(lazy, tail) + tail, w.work_size


def _blocked_matmul(nodes: Sequence[Node]) -> bool:
    """Whether a blocked matrix product is among `nodes` (or in a region of theirs): its
    loops run twice as fast with AVX2's vectors, where the baseline x86-64 has SSE2."""
    for n in nodes:
        if n.op == "matmul" and n.shape != ():
            a, b = n.inputs
            m = a.shape[-2] if a.ndim > 1 else 1
            if number(m) * number(a.shape[-1]) * number(b.shape[-1]) >= MATMUL_SMALL:
                return True
        for value in n.attrs.values():
            graphs = value if isinstance(value, (list, tuple)) else [value]
            if any(isinstance(g, Graph) and _blocked_matmul(g.nodes) for g in graphs):
                return True
    return False


# The saved buffer holds a scalar every other double. A dense run of scalar stores (a
# 500-step chain saves 500 of them) is one store group to gcc's SLP vectorizer, whose
# analysis then walks the chain behind every lane: 2x the compile time of the whole file.
SCALAR_GAP = 1

# ops recomputed by backward from saved operands rather than saved themselves: one exact
# IEEE operation, the same bits when done again, cheaper than a store and a load
RECOMPUTE = frozenset({"add", "sub", "mul", "neg"})


def _saved_view(node: Node, offset: int, consts: CConsts) -> View:
    """Where a saved value goes in `saved` (a tape: its doubles from `offset` on)."""
    if node.dtype == "tape":
        size = c_regions.tape_size(node.inputs[0], consts)
        return View("saved", offset, (1,), (size,))
    return View("saved", offset, contiguous(node.shape), node.shape)


def _recomputed(saved: Sequence[Node]) -> set[int]:
    """The saved scalars backward recomputes: one cheap op on values saved anyway."""
    kept: set[int] = set()
    redo: set[int] = set()
    for n in saved:  # (in graph order: an operand's fate is known before its users')
        if (
            n.shape == ()
            and n.op in RECOMPUTE
            and all(i.op == "const" or i.id in kept for i in n.inputs)
        ):
            redo.add(n.id)
        else:
            kept.add(n.id)
    return redo


def _hint(node: Node) -> str | None:
    """A saved value's name: the user's, or w0 for the element w[0] of a parameter."""
    if node.name:
        return node.name
    if node.dtype == "tape":
        return "tape"
    x = node.inputs[0] if node.inputs else None
    key = node.attrs.get("key") if node.op == "index" else None
    if (
        x is not None
        and x.op == "param"
        and key
        and len(key) == 1
        and isinstance(key[0], int)
        and not involves(x.shape[0])
    ):
        return f"{c_name(x.name)}{key[0] % x.shape[0]}"
    return None


def emit_unit(
    unit: Unit,
    consts: CConsts,
    comments: bool,
    dims: Sequence[tuple[str, int]] = (),
    fixed: dict[str, str] | None = None,
) -> CUnit:
    """The five functions of the C API for one traced function.

    Named dims are leading `long` parameters. Sizes are expressions of them (`sizes.Size`
    in the graphs); what the code assumes of them (a dim in `fixed`, or fixed here, a
    size the emitter needed as a number; a condition such as `n > 1`) is tested first,
    and a call where it fails returns 1. Returns the unit and {dim: why it is fixed}."""
    guards = Guards(dict(dims))
    guards.fixed.update({d: why for d, why in (fixed or {}).items() if d in guards.base})
    with guarding(guards):
        cu = _emit_unit(unit, consts, comments, dims)
    tests = guards.tests({d: c_name(d) for d, _ in dims})
    if tests:
        why = "; ".join(f"{d} fixed: {w}" for d, w in sorted(guards.fixed.items()))
        line = f"if ({' || '.join(tests)}) return 1;" + (
            f" /* {why} */" if why and comments else ""
        )
        for f in cu.functions:
            if not f.returns:
                f.lines.insert(0, line)
    cu.fixed = dict(guards.fixed)
    cu.conditions = [t for t in guards.conditions]
    return cu


def _emit_unit(
    unit: Unit, consts: CConsts, comments: bool, dims: Sequence[tuple[str, int]] = ()
) -> CUnit:
    dims = [(c_name(d), size) for d, size in dims]
    fwd = unit.forward
    pspec = {p.name: p for p in fwd.params}
    params = [(c_name(p), pspec[p].shape, pspec[p].dtype) for p in unit.params]
    wrt = [(c_name(n), pspec[n].shape, pspec[n].dtype) for n in unit.wrt]
    value = fwd.outputs[0]
    out_shape, out_type = value.shape, ctype(value.dtype)
    dim_decls = [f"long {d}" for d, _ in dims]
    decls = dim_decls + [_param_decl(n, s, t) for n, s, t in params]
    value_decl = f"{out_type} *restrict value"
    # gradient pointers: g_x for x, unless a parameter has that name
    taken = Namer(RESERVED_C | {n for n, _, _ in params} | {d for d, _ in dims})
    gname = {n: taken.fresh(f"g_{n}") for n, _, _ in wrt}
    gdecls = [f"{ctype(t)} *restrict {gname[n]}" for n, _, t in wrt]
    g_decl = f"const {out_type} *restrict g"
    names = ", ".join(unit.wrt)

    def dest(name: str, shape: tuple) -> View:
        return View(name, 0, contiguous(shape), shape)

    def add(name, decls, graph, nodes, results, doc, **kw) -> CFunction:
        lines, size = _function(
            unit, consts, comments, graph, nodes, results, taken=[d for d, _ in dims], **kw
        )
        return CFunction(name, decls, lines, doc, size, wide=_blocked_matmul(nodes))

    grads = lambda outs: [(o, dest(gname[n], s)) for o, (n, s, _) in zip(outs, wrt)]  # noqa: E731
    value_fn = add(
        unit.name,
        decls + [value_decl, "double *restrict work"],
        fwd,
        fwd.nodes,
        [(value, dest("value", out_shape))],
        f"The value of {unit.signature}.",
    )
    # NAME_forward / NAME_backward: split where backward starts reading (as in Python)
    vjp = unit.vjp
    g = next(p for p in vjp.params if p.name == "g")
    forward_ids = _ancestors([vjp.outputs[0]])
    # a region's results go with it: the tape of a forward loop is a forward value
    forward_ids |= {n.id for n in vjp.nodes if n.op == "part" and n.inputs[0].id in forward_ids}
    fwd_nodes = [
        n
        for n in vjp.nodes
        if (n.id in forward_ids or n.op == "param") and n is not g and n.op != "const"
    ]
    bwd_inputs = {i.id for n in vjp.nodes if n.id not in forward_ids for i in n.inputs}
    bwd_inputs |= {o.id for o in vjp.outputs[1:]}
    saved = [n for n in fwd_nodes if n.id in bwd_inputs]
    redo = _recomputed(saved)
    saved = [n for n in saved if n.id not in redo]
    bwd_nodes = []
    for n in vjp.nodes:  # a recomputed value just before its first reader
        if n.id not in forward_ids and n.op not in ("param", "const"):
            bwd_nodes += [i for i in n.inputs if i.id in redo and i not in bwd_nodes]
            bwd_nodes.append(n)
    bwd_nodes += [o for o in vjp.outputs[1:] if o.id in redo and o not in bwd_nodes]
    offsets, total = {}, 0
    for n in saved:
        offsets[n.id] = total
        if n.dtype == "tape":
            total += c_regions.tape_size(n.inputs[0], consts)
        else:
            total += upper(n.size, 1) + (SCALAR_GAP if n.shape == () else 0)
    forward_fn = add(
        f"{unit.name}_forward",
        decls + [value_decl, "double *restrict saved", "double *restrict work"],
        vjp,
        fwd_nodes,
        [(vjp.outputs[0], dest("value", out_shape))]
        + [(n, _saved_view(n, offsets[n.id], consts)) for n in saved],
        f"The value, and in saved what {unit.name}_backward reads.",
        keep={n.id for n in saved},
    )
    backward_fn = add(
        f"{unit.name}_backward",
        dim_decls + ["const double *restrict saved", g_decl, *gdecls, "double *restrict work"],
        vjp,
        bwd_nodes,
        grads(vjp.outputs[1:]),
        f"The gradients with respect to {names}, given saved and the upstream gradient g.",
        bound={n.id: (n, offsets[n.id]) for n in saved},
        redo=[n for n in bwd_nodes if n.id in redo],
        scalar_params=False,
    )

    # NAME_vjp and NAME_value_and_grad: forward into the head of work, then backward (the
    # chain's code exists once, and a long chain compiles in a fraction of the time)
    dim_args = [d for d, _ in dims]
    saved_size = f"{unit.name}_SAVED_SIZE" + (f"({', '.join(dim_args)})" if dims else "")
    grad_args = [gname[n] for n, _, _ in wrt]

    def composed(seed: str) -> list[str]:
        args = dim_args + [n for n, _, _ in params]
        fwd_call = ", ".join(args + ["value", "work", f"work + {saved_size}"])
        bwd_call = ", ".join(dim_args + ["work", seed, *grad_args, f"work + {saved_size}"])
        return [
            f"int status = {unit.name}_forward({fwd_call});",
            f"if (status == 0) status = {unit.name}_backward({bwd_call});",
            "return status;",
        ]

    fns = [value_fn]
    if out_shape == () and unit.value_and_grad is not None:
        one = taken.fresh("one")
        literal = "1.0f" if out_type == "float" else "1.0"
        fns.append(
            CFunction(
                f"{unit.name}_value_and_grad",
                decls + [value_decl, *gdecls, "double *restrict work"],
                [f"const {out_type} {one} = {literal};" + (" /* the seed */" if comments else "")]
                + composed(f"&{one}"),
                f"The value and the gradients with respect to {names}: "
                f"{unit.name}_forward, then {unit.name}_backward from 1.",
                returns=True,
            )
        )
    fns.append(
        CFunction(
            f"{unit.name}_vjp",
            decls + [g_decl, value_decl, *gdecls, "double *restrict work"],
            composed("g"),
            "The value and the gradients, given the upstream gradient g of the output's "
            f"shape: {unit.name}_forward, then {unit.name}_backward.",
            returns=True,
        )
    )
    fns += [forward_fn, backward_fn]
    work = upper(value_fn.work, total + upper(forward_fn.work, backward_fn.work))
    saved_names = [_hint(n) or f"%{n.id}" for n in saved]
    return CUnit(
        unit.name,
        params,
        wrt,
        out_shape,
        value.dtype,
        list(dims),
        fns,
        work,
        total,
        unit.signature,
        saved_names,
    )


def emit_c(
    units: Sequence[Unit],
    stem: str,
    source_name: str,
    comments: bool = True,
    dims: Sequence[Sequence[tuple[str, int]]] | None = None,
    stats: dict | None = None,
    max_iterations: int | None = None,
    bounds: dict[int, int] | None = None,
    fixed: dict[str, str] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """The C target's files for the functions of one expr.py: {suffix: text} for
    `<stem>.c`, `<stem>.h` and the loader `<stem>_c.py` (stem: e.g. neuron_grad).
    `bounds`: the bounds of `while` loops by line (`# gradgen: max N`); `max_iterations`:
    the bound of one whose line gives none."""
    from .c_text import c_file, h_file, loader_file

    consts = CConsts(bounds=dict(bounds or {}), max_iterations=max_iterations)
    for u in units:  # array constants are named first: no local may take their names
        for graph in (u.forward, u.value_and_grad, u.vjp):
            for n in graph.nodes if graph is not None else ():
                if n.op == "const" and n.dtype in ("f64", "f32", "bool"):
                    consts.reserve(n)
    dims = dims or [()] * len(units)
    cunits = [emit_unit(u, consts, comments, d, fixed) for u, d in zip(units, dims)]
    for cu in cunits:  # for --stats: what the buffers hold
        (stats if stats is not None else {})[cu.name] = {
            "saved for backward": cu.saved_names,
            "saved bytes": 8 * cu.saved_size,
            "work buffer peak live bytes": 8 * cu.work_size,
        }
    files = {
        ".c": c_file(cunits, stem, source_name, consts.lines),
        ".h": h_file(cunits, stem, source_name),
        "_c.py": loader_file(cunits, stem, source_name),
    }
    return files, {d: why for cu in cunits for d, why in cu.fixed.items()}
