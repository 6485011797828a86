"""Stage 5, emit (Python): flat, reverse-order numpy / math code from optimized IR.

The walker turns a run of nodes into assignment lines. A node gets its own line when it is
used more than once, named by the user, saved for backward, returned, or the work of
another gate; otherwise it is inlined into its single user, so a forward line reads like
the user's line and a backward line is one gate. Per-op text comes from the op table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Container, Iterable, NamedTuple, Sequence

import jinja2
import numpy as np

from .. import __version__, memory, ops
from ..autodiff import COPY_GATE
from ..ir import Graph, Node
from ..naming import Namer
from ..ops import control
from ..ops.shape import ScatterWrites, key_text, scatter_parts
from ..ops.shape import _slot_text as slot_text
from . import regions
from .consts import definition as const_definition
from .expr import ATOM, Expr, dtype_kw, literal, name, wrap

UNPACK_LIMIT = 16  # 1-D parameters up to this size are unpacked into scalars when read so


@dataclass
class PyFunction:
    """One generated function, ready for the template."""

    name: str
    args: list[str]
    doc: str
    lines: list[str]
    returns: str


@dataclass
class Unit:
    """Everything emitted for one traced function."""

    name: str
    params: list[str]
    wrt: list[str]
    forward: Graph  # outputs: value
    value_and_grad: Graph  # seeded with 1: outputs value, *grads
    vjp: Graph  # with a parameter g: outputs value, *grads
    signature: str = ""
    guards: list[str] = field(default_factory=list)  # shape checks of a specialized module


@dataclass
class ModuleConsts:
    """Array constants, defined once at module level and named after the user's globals."""

    names: dict[tuple, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    namer: Namer = field(default_factory=Namer)

    def ref(self, node: Node) -> str:
        key = (node.dtype, node.shape, node.value.tobytes())
        if key not in self.names:
            nm = self.namer.fresh((node.name or "C").upper() if not node.name else node.name)
            self.names[key] = nm
            self.lines.append(const_definition(nm, node.value, node.dtype))
        return self.names[key]


def _shape_text(shape: tuple) -> str:
    return f"({shape[0]},)" if len(shape) == 1 else f"({', '.join(map(str, shape))})"


def const_expr(node: Node, consts: ModuleConsts) -> Expr:
    """A constant as Python text: a literal, an np.zeros/np.full call, or a module constant."""
    value = node.value
    if value.ndim == 0:
        v = value.item()
        v = float(v) if node.dtype in ("f64", "f32") else v
        e = literal(v)
        return Expr(f"np.float32({e.text})", ATOM) if node.dtype == "f32" else e
    flat = value.reshape(-1)
    if (
        node.dtype in ("f64", "f32")
        and flat.size
        and np.all(flat == flat[0])
        and np.all(np.signbit(flat) == np.signbit(flat[0]))  # 0.0 and -0.0 are not one value
    ):
        v = float(flat[0])
        kw = dtype_kw(node.dtype)
        if v == 0.0 and not np.signbit(v):
            return Expr(f"np.zeros({_shape_text(node.shape)}{kw})", ATOM)
        if v == 1.0:
            return Expr(f"np.ones({_shape_text(node.shape)}{kw})", ATOM)
        return Expr(f"np.full({_shape_text(node.shape)}, {literal(v).text}{kw})", ATOM)
    return name(consts.ref(node))


# Scalar float64 code (a scalar node of these dtypes over scalar inputs) uses math and
# Python operators, which are faster than numpy's: an op's `py_scalar` form.
_SCALAR_DTYPES = ("f64", "bool")


class Walker:
    """Turns nodes into lines, inlining single-use parts of the same line or gate.

    Statements are collected first and rendered by `finish`, once the memory plan knows
    which arrays to drop (`del`) and which dead buffers a result can reuse (`out=`).
    """

    def __init__(self, consts: ModuleConsts, namer: Namer, comments: bool | dict[int, str]):
        self.consts = consts
        self.namer = namer
        self.comments = comments
        self.exprs: dict[int, Expr] = {}
        self.const_exprs: dict[int, Expr] = {}  # constants are read often: their text once
        self.reads: dict[int, set[int]] = {}  # inlined node -> the named nodes its text reads
        self.transient: dict[int, int] = {}  # inlined node -> bytes its text allocates
        self.lines: list[str] = []  # lines before the statements (unpacking)
        # each statement, with what renders it: (target, argument texts, expression or None)
        self.stmts: list[tuple[memory.Statement, tuple]] = []
        self.plan: memory.Plan | None = None
        self.comment: dict[int, str | None] = {}  # statement node -> its gate comment
        self.fresh_named: set[int] = set()  # statements whose value is a new array
        # rows written straight into one buffer (see `_plan_rows`): part id -> (the
        # concatenation or stack that owns the buffer, slot); the owner -> its parts
        self.slot: dict[int, tuple[Node, int]] = {}
        self.rows_of: dict[int, list[Node]] = {}
        self.allocated: set[int] = set()  # owners whose buffer is made
        self.returned: set[int] = set()  # results and kept values of the walk
        # multi_scatters written part by part where each part's value is made (see
        # `_write_parts`): the multi_scatter's id -> its lines so far
        self.scatters: dict[int, ScatterWrites] = {}
        self.written: set[tuple[int, int]] = set()  # (multi_scatter id, part) written
        self.pending: set[tuple[int, int]] = set()  # parts written where their value is made
        # elements of a parameter read off its list: node id -> (the list, `[i]`)
        self.listed: dict[int, tuple[str, str]] = {}
        self.nested = False  # a region's body (emit/regions.py): no `# backward` header
        # statement node id -> (its name, a parameter that must be read for the last time
        # by then, or None): a region body's results named as the region's results
        self.preset: dict[int, tuple[str, int | None]] = {}
        # a branch's tape read only by the backward branch in the same function: its
        # values stay in their names (tape id -> the residuals' texts, per branch)
        self.local_tapes: set[int] = set()
        self.tapes: dict[int, list[list[str]]] = {}
        # accumulates that write an element nothing wrote before (a backward loop's g_x[i]
        # into zeros, i the iteration number): `g_x[i] = v`, not `+=`
        self.fresh_slots: set[int] = set()
        self.region_parts: dict[int, dict[int, Node]] = {}  # region id -> {index: part}
        self.tape_readers: dict[int, list[Node]] = {}  # tape id -> the nodes reading it
        self.read_count: dict[int, int] = {}  # node id -> its readers (in a walk with regions)

    def bind(self, node: Node, text: str) -> None:
        self.exprs[node.id] = name(text)

    def expr(self, node: Node) -> Expr:
        if node.id not in self.exprs and node.op == "const":
            e = self.const_exprs.get(node.id)
            if e is None:
                e = self.const_exprs[node.id] = const_expr(node, self.consts)
            return e
        return self.exprs[node.id]

    def _reads_of_all(self, inputs: Sequence[Node]) -> set[int]:
        """The named nodes read by an expression over `inputs`.

        An inlined input's set has exactly one reader, this node, so the largest one is
        extended in place rather than copied: a long inlined chain stays linear.
        """
        inlined = self.reads
        out: set[int] | None = None
        for i in inputs:
            part = inlined.get(i.id)
            if part is not None and (out is None or len(part) > len(out)):
                out = part
        if out is None:  # no input inlined: the common case of a line of named values
            exprs = self.exprs
            return {i.id for i in inputs if i.op != "const" or i.id in exprs}
        for i in inputs:
            if i.id in inlined:
                if inlined[i.id] is not out:
                    out |= inlined[i.id]
            elif i.op != "const" or i.id in self.exprs:
                out.add(i.id)
        return out

    def unpack_params(
        self, params: Iterable[Node], nodes: Sequence[Node], results: Sequence[Node]
    ) -> None:
        """Parameters read only element by element become Python floats, which scalar code
        computes with several times faster than numpy's scalars: `w0, w1, w2 = w.tolist()`
        for a small vector, `x_list = x.tolist()` read as `x_list[i]` for a larger array."""
        params = [
            p
            for p in params
            if (p.ndim == 1 and p.shape[0] <= UNPACK_LIMIT) or (p.ndim and p.dtype == "f64")
        ]
        if not params:
            return
        readers: dict[int, list[Node]] = {}
        candidates = {p.id for p in params}
        other: set[int] = {r.id for r in results} & candidates  # (read otherwise)
        for n in nodes:
            if n.op == "index":
                key, x = n.attrs["key"], n.inputs[0]
                if (
                    key
                    and len(key) == len(x.shape)
                    and (type(key[0]) is int if len(key) == 1 else all(type(k) is int for k in key))
                ):
                    readers.setdefault(x.id, []).append(n)
                    continue
            for i in n.inputs:
                if i.id in candidates:
                    other.add(i.id)
        for p in params:
            if p.id in other or p.id not in readers:
                continue
            param = self.exprs[p.id].text
            if p.ndim > 1 or p.shape[0] > UNPACK_LIMIT:
                listed = self.namer.fresh(f"{param}_list")
                self.lines.append(f"{listed} = {param}.tolist()")
                for n in readers[p.id]:
                    at = "".join(f"[{k % d}]" for k, d in zip(n.attrs["key"], p.shape))
                    self.bind(n, f"{listed}{at}")
                    self.listed[n.id] = (listed, at)
                continue
            size = p.shape[0]
            by_pos: dict[int, list[Node]] = {}
            for n in readers[p.id]:
                by_pos.setdefault(n.attrs["key"][0] % size, []).append(n)
            names = []
            for pos in range(size):
                if pos in by_pos:
                    nm = self.namer.fresh(f"{param}{pos}")
                    for n in by_pos[pos]:
                        self.bind(n, nm)
                    names.append(nm)
                else:
                    names.append("_")
            lister = ".tolist()" if p.dtype == "f64" else ""
            target = names[0] + "," if size == 1 else ", ".join(names)
            self.lines.append(f"{target} = {param}{lister}")

    def walk(
        self, nodes: Sequence[Node], results: Sequence[Node], keep: set[int] = frozenset()
    ) -> None:
        """Emit `nodes` (topological order); `results` and `keep` get their own named lines."""
        uses: dict[int, int] = {}
        consumer: dict[int, Node] = {}  # the last node to read each node
        viewed: set[int] = set()  # nodes a view may be taken of: never written into
        table = ops.OPS
        watched = {name for name, spec in table.items() if spec.view} | {"multi_scatter"}
        scatters = []  # the multi_scatters among `nodes`
        get_uses = uses.get
        for n in nodes:
            for i in n.inputs:
                iid = i.id
                uses[iid] = get_uses(iid, 0) + 1
                consumer[iid] = n
            if n.op in watched:  # (parameters and constants have no entry)
                if n.op == "multi_scatter":
                    scatters.append(n)
                if table[n.op].view:
                    viewed.add(n.inputs[0].id)
        for r in results:
            uses[r.id] = uses.get(r.id, 0) + 2
            viewed.add(r.id)  # the caller holds it
        exprs, reads_of, transient_of = self.exprs, self.reads, self.transient
        self._plan_rows(nodes, {r.id for r in results} | set(keep))
        slot = self.slot
        parts_of = self._plan_scatters(scatters)
        region_parts = self.region_parts = _region_parts(nodes)
        if region_parts:  # tapes that a backward region of this same walk reads
            held = {r.id for r in results} | set(keep)
            readers: dict[int, list[Node]] = {}
            for n in nodes:
                for i in n.inputs:
                    if i.dtype == "tape":
                        readers.setdefault(i.id, []).append(n)
            self.tape_readers = readers
            count = self.read_count
            for n in nodes:
                for i in n.inputs:
                    count[i.id] = count.get(i.id, 0) + 1
            self.local_tapes = {
                t
                for t, users in readers.items()
                if t not in held and all(u.op == "cond" for u in users)
            }
        # (hot: one pass of this loop per node; the common cases are written out)
        special = {"param", "const", "multi_scatter", *REGION_OPS}
        if slot:
            special.update(ROWS_OPS)
        get_expr, get_transient, const_expr_of = exprs.get, transient_of.get, self.expr
        get_reads = reads_of.get
        scalar_bytes = memory.SCALAR_BYTES
        for node in nodes:
            nid = node.id
            op = node.op
            if nid in exprs:
                continue
            if op in special:
                if op == "param" or op == "const":
                    continue
                if op in REGION_OPS:
                    self._region(node, region_parts.get(nid, {}))
                    continue
                if op == "multi_scatter":
                    self._write_parts_left(node)
                    continue
                if self._rows_view(node, viewed):  # (ROWS_OPS, with rows planned)
                    continue
            spec = table[op]
            inputs = node.inputs
            args = []
            transient = 0
            largest = None  # (`_reads_of_all`, written out)
            for i in inputs:
                iid = i.id
                e = get_expr(iid)
                args.append(e if e is not None else const_expr_of(i))
                t = get_transient(iid)
                if t:
                    transient += t
                part = get_reads(iid)
                if part is not None and (largest is None or len(part) > len(largest)):
                    largest = part
            if largest is None:  # no input inlined: a line of named values
                reads = {i.id for i in inputs if i.op != "const" or i.id in exprs}
            else:
                reads = largest
                for i in inputs:
                    iid = i.id
                    part = get_reads(iid)
                    if part is not None:
                        if part is not reads:
                            reads |= part
                    elif i.op != "const" or iid in exprs:
                        reads.add(iid)
            if spec.py_stmts is None:
                emit = spec.py
                if spec.py_scalar is not None and not node.shape and node.dtype in _SCALAR_DTYPES:
                    for i in inputs:
                        if i.shape:
                            break
                    else:  # scalar code: math and Python operators (`_SCALAR_DTYPES`)
                        emit = spec.py_scalar
                e = emit(args, node)
                user = consumer.get(nid)
                if (
                    parts_of
                    and nid in parts_of
                    and uses[nid] == 1
                    and nid not in keep
                    and nid not in slot
                ):
                    # its one use is a part of a multi_scatter: written into it right here
                    exprs[nid] = e
                    spent = transient + memory.nbytes(node)
                    self._write_parts(node, parts_of.pop(nid), e, reads, spent, inlined=True)
                    continue
                if (
                    user is not None
                    and uses[nid] == 1
                    and nid not in keep
                    and nid not in slot
                    and table[user.op].py_stmts is None
                    and node.name is None
                    and (
                        ((src := node.src) is user.src or src == user.src)
                        and node.tag == user.tag
                        or _same_place(node, user)
                    )
                    and not (
                        node.shape  # a scalar is never worth a buffer
                        and (
                            memory.worth_a_buffer(node, user, spec.fresh, user.op in ops.UFUNCS)
                            or self._reuses_a_dead_input(node, consumer, viewed, keep)
                        )
                    )
                ):
                    exprs[nid] = e
                    reads_of[nid] = reads
                    transient_of[nid] = transient + (
                        memory.nbytes(node) if node.shape else scalar_bytes.get(node.dtype, 8)
                    )
                    continue
            target = _placeholder(node)
            # out= candidates: named inputs no view is taken of (a view would still read
            # the buffer after its owner's last use); the plan keeps those read last here
            direct = (
                [
                    i
                    for i in inputs
                    if i.id in exprs
                    and i.id not in reads_of
                    and i.op != "const"
                    and i.id not in viewed
                ]
                if node.shape and node.op in ops.UFUNCS
                else []
            )  # (scalars are never written into)
            stmt = memory.Statement(node, reads, direct, spec.fresh, transient)
            if spec.fresh:
                self.fresh_named.add(nid)
            self.comment[nid] = (
                _comment(node, reads_of) if inputs and inputs[-1].id in reads_of else node.tag
            )
            if nid in slot:
                self._into_rows(node, stmt)
            self.stmts.append((stmt, (target, args, e if spec.py_stmts is None else None)))
            exprs[nid] = Expr(target, ATOM)
            if parts_of and nid in parts_of:
                self._write_parts(node, parts_of.pop(nid), exprs[nid], {nid}, 0, inlined=False)

    def _region(self, node: Node, parts: dict[int, Node]) -> None:
        """A region's statement (its lines made now, by emit/regions.py), or an
        accumulator's update in place (`g_x[i] += v`)."""
        partner = regions.partner(self, node) if node.op == "cond" else None
        if node.op == "cond":
            self._test_inline(node, partner)
        args = [self.exprs.get(i.id) or self.expr(i) for i in node.inputs]
        reads = self._reads_of_all(node.inputs)
        transient = sum(self.transient.get(i.id, 0) for i in node.inputs)
        if node.op == "accumulate":
            lines = accumulate_lines(node, args, node.id in self.fresh_slots)
            stmt = memory.Statement(node, reads, transient=transient, update=True)
            self.stmts.append((stmt, ("\n".join(lines), _comment(node, self.reads))))
            self.exprs[node.id] = args[0]
            return
        if partner is not None:  # its backward branch pair runs in the same `if`
            reads = reads | self._reads_of_all([i for k, i in enumerate(partner.inputs) if k != 1])
        lines = regions.render(self, node, args, parts, partner)
        stmt = memory.Statement(node, reads, [], False, transient)
        self.comment[node.id] = None
        self.stmts.append((stmt, (_placeholder(node), args, Lines(lines))))
        self.exprs[node.id] = Expr(_placeholder(node), ATOM)

    def _test_inline(self, node: Node, partner: Node | None) -> None:
        """A branch's test made by the statement just before it, and read by nothing else:
        written in the `if` itself (`if x > 1.0:`), not named."""
        pred = node.inputs[0]
        if self.read_count.get(pred.id) != 1 + (partner is not None) or not self.stmts:
            return
        stmt, parts = self.stmts[-1]
        if stmt.node is not pred or stmt.update or pred.id in self.returned:
            return
        if len(parts) != 3 or not isinstance(parts[2], Expr) or pred.id in self.slot:
            return
        self.stmts.pop()
        self.exprs[pred.id] = parts[2]
        self.reads[pred.id] = stmt.reads
        self.transient[pred.id] = stmt.transient
        self.comment.pop(pred.id, None)

    def _plan_scatters(self, nodes: Sequence[Node]) -> dict[int, list[tuple[Node, int]]]:
        """The parts of the multi_scatters (among `nodes`) this walk emits whose values are
        backward values it makes, by the id of the value.

        A multi_scatter's array is made (zeros) where the first of those values is, and each
        is written into it where it is made (`g_x[3] = t * b`), not all at the end: a value
        dies once written, so n reads of x keep x's gradient and a few values alive, not n
        of them. The parts whose values are there already (forward values, parameters,
        constants) are written when the array is made."""
        parts_of: dict[int, list[tuple[Node, int]]] = {}
        for n in nodes:
            if n.op == "multi_scatter" and n.id not in self.exprs:
                for k, value in enumerate(n.inputs[: len(n.attrs["keys"])]):
                    made_here = value.op != "const" and value.id not in self.exprs
                    if made_here and value.tag is not None:
                        parts_of.setdefault(value.id, []).append((n, k))
                        self.pending.add((n.id, k))
        return parts_of

    def _write_parts(
        self,
        value: Node,
        parts: list[tuple[Node, int]],
        e: Expr,
        reads: set[int],
        transient: int,
        inlined: bool,
    ) -> None:
        """Lines writing `value` (its text `e`, reading `reads`) into its multi_scatters."""
        tag = _comment(value, self.reads) if inlined else None
        for owner, k in parts:
            if owner.id not in self.scatters:  # the first part: make the array
                self._make_array(owner)
            self._write(owner, k, e, reads, transient, tag)

    def _make_array(self, owner: Node) -> None:
        """`g_x = np.zeros(...)`, and the parts whose values are there already."""
        writes = self.scatters[owner.id] = ScatterWrites(owner)
        alloc = Expr(writes.zeros, ATOM)
        self.stmts.append(
            (memory.Statement(owner, set(), [], True), (_placeholder(owner), [], alloc))
        )
        self.comment[owner.id] = owner.tag
        self.fresh_named.add(owner.id)
        self._write_ready(owner)

    def _write(self, owner: Node, k: int, e: Expr, reads: set[int], transient: int, tag) -> None:
        """The line writing part k, of text `e`, into the array of the multi_scatter."""
        writes = self.scatters[owner.id]
        arrays = writes.parts[k][1]
        line = writes.line(_placeholder(owner), k, e.text, [self.expr(a).text for a in arrays])
        read = reads | {owner.id}
        if arrays:
            read |= {a.id for a in arrays if a.id in self.exprs}
        stmt = memory.Statement(owner, read, [], False, transient, update=True)
        self.stmts.append((stmt, (line, tag or owner.tag)))
        self.written.add((owner.id, k))
        self.pending.discard((owner.id, k))

    def _write_ready(self, owner: Node, every: bool = False) -> None:
        """Write the parts whose values were there before the array (or, `every`, all the
        parts not written yet)."""
        for k, value in enumerate(owner.inputs[: len(owner.attrs["keys"])]):
            if (owner.id, k) in self.written or (not every and (owner.id, k) in self.pending):
                continue
            named = value.op != "const" or value.id in self.exprs
            self._write(owner, k, self.expr(value), {value.id} if named else set(), 0, None)

    def _write_parts_left(self, node: Node) -> None:
        """At the multi_scatter itself: make its array if no part did, write the parts not
        written yet, and name the array."""
        if node.id not in self.scatters:
            self._make_array(node)
        self._write_ready(node, every=True)
        self.exprs[node.id] = Expr(_placeholder(node), ATOM)

    def _plan_rows(self, nodes: Sequence[Node], returned: set[int]) -> None:
        """Find concatenations and stacks (along axis 0) of new arrays of one shape, made
        by ufuncs: each such array can be written straight into its row of one buffer
        (`out=buf[k]`), and the concatenation is then the buffer itself, or a view of it,
        with no copy and no second set of arrays alive. The batched weight gradients of
        an unrolled RNN are such concatenations, several over the same rows."""
        self.returned = returned
        joins = [n for n in nodes if n.op in ROWS_OPS]
        if not joins:
            return  # (most code: no scan)
        here = {n.id for n in nodes if n.id not in self.exprs}  # to be emitted by this walk
        found = []
        for n in joins:
            if n.attrs.get("axis") != 0 or n.id in returned:
                continue
            parts, first = n.inputs, n.inputs[0]
            if len(parts) < 2 or len({p.id for p in parts}) != len(parts):
                continue
            if all(
                p.op in ops.UFUNCS
                and p.id in here
                and ops.OPS[p.op].py_stmts is None
                and p.shape == first.shape
                and p.ndim
                and p.dtype == n.dtype
                and p.id not in returned
                and memory.nbytes(p) >= memory.INPLACE_MIN_BYTES
                for p in parts
            ):
                found.append(n)
        # the longest first: the others may then be views of its buffer
        for n in sorted(found, key=lambda n: -len(n.inputs)):
            if not any(p.id in self.slot for p in n.inputs):
                self.rows_of[n.id] = list(n.inputs)
                for k, p in enumerate(n.inputs):
                    self.slot[p.id] = (n, k)

    def _into_rows(self, node: Node, stmt: memory.Statement) -> None:
        """Make `node`'s statement write into its row; the first row made also makes the
        buffer, sized by an input of the row's shape (not by numbers: a named dim stays
        free): a named one, or a view (`t[0]`), cheap to take twice. Without such an
        input, the rows are given up."""
        owner, _ = self.slot[node.id]
        if owner.id not in self.allocated:
            sizes = [i for i in node.inputs if i.shape == node.shape and i.op != "const"]
            named = [i for i in sizes if i.id in self.exprs and i.id not in self.reads]
            views = [i for i in sizes if i.id in self.reads and ops.OPS[i.op].view]
            if not named and not views:
                for p in self.rows_of.pop(owner.id):
                    self.slot.pop(p.id, None)
                return
            like = (named or views)[0]
            reads = {like.id} if named else set(self.reads[like.id])
            rows = len(self.rows_of[owner.id])
            size = wrap(self.exprs[like.id], ATOM)
            alloc = Expr(f"np.empty(({rows}, *{size}.shape){dtype_kw(node.dtype)})", ATOM)
            buf = memory.Statement(owner, reads, [], True)
            self.stmts.append((buf, (_placeholder(owner), [], alloc)))
            self.comment[owner.id] = None
            self.allocated.add(owner.id)
        stmt.into, stmt.fresh = owner, False
        stmt.reads = stmt.reads | {owner.id}
        self.fresh_named.discard(node.id)  # a row of the buffer: never written into again

    def _rows_view(self, node: Node, viewed: set[int]) -> bool:
        """A concatenation or stack of consecutive rows of one buffer: the buffer, or a
        slice of it (reshaped for a concatenation). False if it is not one."""
        if node.attrs.get("axis") != 0 or node.id in self.returned:
            return False
        slots = [self.slot.get(p.id) for p in node.inputs]
        if not all(slots) or len({o.id for o, _ in slots}) != 1:
            return False
        owner = slots[0][0]
        rows = [k for _, k in slots]
        if owner.id not in self.allocated or rows != list(range(rows[0], rows[0] + len(rows))):
            return False
        buf = _placeholder(owner)
        whole = len(rows) == len(self.rows_of[owner.id])
        end = "" if rows[-1] + 1 == len(self.rows_of[owner.id]) else rows[-1] + 1
        text = buf if whole else f"{buf}[{rows[0] or ''}:{end}]"
        if node.op == "concatenate":  # rows one below the other
            ndim = node.inputs[0].ndim
            if ndim == 1:
                text = f"{text}.ravel()"
            else:
                rest = f"{buf}.shape[2]" if ndim == 2 else f"*{buf}.shape[2:]"
                text = f"{text}.reshape((-1, {rest}))"
        if node is owner:
            self.exprs[node.id] = Expr(text, ATOM)
        else:
            # a line of its own: its value is a view of the buffer
            view = memory.Statement(node, {owner.id}, [], False, into=owner)
            self.stmts.append((view, (_placeholder(node), [], Expr(text, ATOM))))
            self.comment[node.id] = _comment(node, self.reads)
            self.exprs[node.id] = Expr(_placeholder(node), ATOM)
        viewed.add(node.id)  # never written into
        return True

    def _reuses_a_dead_input(
        self, node: Node, consumer: dict[int, Node], viewed: set[int], keep: set[int]
    ) -> bool:
        """Whether `node` can take the buffer of a new array it is the last to read."""
        dead = [
            i
            for i in node.inputs
            if i.id in self.fresh_named
            and consumer.get(i.id) is node
            and i.id not in viewed
            and i.id not in keep
        ]
        return bool(dead) and memory.can_write_into(node, dead, node.op in ops.UFUNCS)

    @staticmethod
    def _render(node: Node, parts: tuple, out: str | None, into_itself: bool) -> list[str]:
        """A statement's lines: `target = e`, or its statements, or a result written into
        the dead buffer `out` (in place when the result keeps that buffer's name)."""
        target, args, e = parts
        if isinstance(e, Lines):
            return list(e.lines)
        if e is None:
            return ops.OPS[node.op].py_stmts(target, args, node)
        if out is None:
            return [f"{target} = {e.text}"]
        ufunc = ops.UFUNCS[node.op]
        if into_itself and ufunc in _AUGMENTED and len(args) == 2:
            if args[0].text == out:
                return [f"{target} {_AUGMENTED[ufunc]}= {args[1].text}"]
            if args[1].text == out and ufunc in _COMMUTATIVE:  # x + t is t + x, bit for bit
                return [f"{target} {_AUGMENTED[ufunc]}= {args[0].text}"]
        call = f"np.{ufunc.__name__}({', '.join(a.text for a in args)}, out={out})"
        return [call if into_itself else f"{target} = {call}"]

    def finish(self, protected: Iterable[Node]) -> list[str]:
        """Plan memory, name the statements and render: the function body's lines."""
        keep = {n.id for n in protected}
        self.plan = memory.plan([s for s, _ in self.stmts], keep, set(ops.UFUNCS))
        names = self._name_statements(keep)
        lines = list(self.lines)
        body: list[str] = []
        in_backward = False
        explained = ""  # the last --explain line written
        render, inplace, dels = self._render, self.plan.inplace, self.plan.dels
        comment = self.comment if self.comments else {}
        explaining = isinstance(self.comments, dict)  # (--explain: see `_explained`)
        add = body.append
        for k, (stmt, parts) in enumerate(self.stmts):
            node = stmt.node
            if stmt.update:  # a part written into an array: its line is made
                stmts, tag = [parts[0]], parts[1] if self.comments else None
            else:
                reuse = inplace.get(k)
                e = parts[2]
                if reuse is None and stmt.into is None and type(e) is Expr:
                    stmts = None  # one line, `target = e` (`_render`, written out)
                    line = f"{parts[0]} = {e.text}"
                elif stmt.into is not None and node.id in self.slot:  # into its row
                    row = f"{_placeholder(stmt.into)}[{self.slot[node.id][1]}]"
                    stmts = render(node, parts, row, False)
                elif reuse is None:
                    stmts = render(node, parts, None, False)
                else:
                    out, itself = self.exprs[reuse.id].text, names[reuse.id] == names[node.id]
                    stmts = render(node, parts, out, itself)
                tag = comment.get(node.id)
            if tag is not None:
                if not in_backward and not self.nested:
                    add("# backward")
                    in_backward = True
                if explaining:
                    origin = _explained(node, self.comments)
                    if origin and origin != explained:  # a run of lines from one forward line
                        add(origin)
                        explained = origin
                if stmts is None:
                    line = f"{line}  # {tag}"
                else:
                    stmts[-1] = f"{stmts[-1]}  # {tag}"
            if stmts is None:
                add(line)
            else:
                body.extend(stmts)
            if k in dels:
                # a dead array whose name this statement took over is gone already
                target = names[node.id]
                dead = [n for n in dels[k] if names[n.id] != target]
                if dead:
                    body.append("del " + ", ".join(_placeholder(n) for n in dead))
        for nid in keep:  # what the caller reads back: results, saved values
            if nid in names:
                self.exprs[nid] = name(names[nid])
        # placeholders are "\x00graph:id\x00": split, every odd part is one; a region's
        # body leaves those of the enclosing walk (another graph) for it to fill in
        parts = "\n".join(body).split("\x00")
        own = f"{id(self.stmts[0][0].node._graph)}:" if self.stmts else ""
        n = len(own)
        parts[1::2] = [
            names[int(p[n:])] if n and p[:n] == own else f"\x00{p}\x00" for p in parts[1::2]
        ]
        if body:
            lines.extend("".join(parts).split("\n"))
        return lines

    def _name_statements(self, protected: set[int]) -> dict[int, str]:
        """A name for each statement's node, reusing the name of a dead value with the same
        hint (`g_s = g_s * a`, a temporary `t1` again): the user's own style of rebinding,
        and a dead float is freed at once, so long scalar code runs on a few hot objects.
        """
        dying: dict[int, list[Node]] = {}
        defined = {stmt.node.id: stmt.node for stmt, _ in self.stmts}
        for nid, k in self.plan.last.items():
            if nid in defined and nid not in protected:
                dying.setdefault(k, []).append(defined[nid])
        self.namer.taken.update(self.consts.names.values())  # constants the walk referred to
        names: dict[int, str] = {}
        # keyed by hint and by side: a forward name is not reused for a backward value
        free: dict[tuple[str | None, bool], list[str]] = {}

        def release(dead: list[Node]) -> None:
            for n in dead:
                free.setdefault((n.name, n.tag is not None), []).append(names[n.id])

        table, fresh, inplace = ops.OPS, self.namer.fresh, self.plan.inplace
        preset = self.preset
        for k, (stmt, _) in enumerate(self.stmts):
            node = stmt.node
            dead = dying.get(k)
            if stmt.update:  # defines nothing: the values it was last to read are free
                if dead:
                    release(dead)
                continue
            one_line = table[node.op].py_stmts is None
            if dead and one_line:  # it reads its inputs before it binds: their names are free
                for n in dead:  # (`release`, written out)
                    free.setdefault((n.name, n.tag is not None), []).append(names[n.id])
            pool = free.get((node.name, node.tag is not None))
            chosen = preset.get(node.id)
            if chosen is not None and (chosen[1] is None or self.plan.last.get(chosen[1], -1) <= k):
                names[node.id] = chosen[0]  # a region's result, assigned where it is made
            elif not pool:
                names[node.id] = fresh(node.name)
            else:
                # a result written into a dead buffer keeps that buffer's name if it can
                # (`t += b`, not `t2 = np.add(t, b, out=t)`)
                buffer = inplace.get(k)
                own = names.get(buffer.id) if buffer is not None else None
                if own in pool:
                    pool.remove(own)
                    names[node.id] = own
                else:
                    names[node.id] = pool.pop()
            if dead and not one_line:
                release(dead)
        return names


# in-place operators for `out=` into the first operand under its own name: t += b
_AUGMENTED = {np.add: "+", np.subtract: "-", np.multiply: "*", np.true_divide: "/"}
_COMMUTATIVE = {np.add, np.multiply}
ROWS_OPS = ("concatenate", "stack")  # what `Walker._plan_rows` assembles in place


REGION_OPS = (*control.REGIONS, "accumulate")


class Lines(NamedTuple):
    """A statement rendered ahead, as its lines (a region)."""

    lines: list[str]


def _region_parts(nodes: Sequence[Node]) -> dict[int, dict[int, Node]]:
    """Region id -> {result index: its part node} among `nodes`."""
    out: dict[int, dict[int, Node]] = {}
    for n in nodes:
        if n.op == "part":
            out.setdefault(n.inputs[0].id, {}).setdefault(n.attrs["index"], n)
    return out


def accumulate_lines(node: Node, args: Sequence[Expr], fresh: bool = False) -> list[str]:
    """`acc[key] += value` per part of an accumulate (np.add.at where a key may repeat);
    `acc[key] = value` where the element is `fresh` (zero, and written once)."""
    acc = args[0].text
    keys = node.attrs["keys"]
    texts = [a.text for a in args[1:]]
    lines = []
    at = len(keys)
    for k, (value, arrays, key) in enumerate(scatter_parts(node.inputs[1:], keys)):
        array_texts = texts[at : at + len(arrays)]
        at += len(arrays)
        if all(a.ndim == 0 for a in arrays):
            op = "=" if fresh else "+="
            lines.append(f"{acc}[{key_text(key, array_texts)}] {op} {texts[k]}")
        else:
            lines.append(f"np.add.at({acc}, {slot_text(key, array_texts)}, {texts[k]})")
    return lines


def _placeholder(node: Node) -> str:
    """A statement's name until `finish` knows which names are free (never valid Python)."""
    return f"\x00{id(node._graph)}:{node.id}\x00"


def _same_place(node: Node, user: Node) -> bool:
    """Inline into the user when both come from the same user line and the same gate, or
    when the user adds this branch's cotangent to a running sum: `g_w = g_w + x * g`."""
    if node.name is not None:
        return False
    if (node.src is user.src or node.src == user.src) and node.tag == user.tag:
        return True
    return ops.OPS[user.op].gathers or _summed_branch(node, user)


def _summed_branch(node: Node, user: Node) -> bool:
    """`node` is the branch cotangent that the copy gate `user` adds to its running sum."""
    return user.tag == COPY_GATE and user.op == "add" and user.inputs[-1] is node


def _explained(node: Node, comments: bool | dict[int, str]) -> str:
    """With --explain (`comments` maps the user's line numbers to their text): a comment
    line naming the forward line this gate differentiates, and where it is."""
    if not isinstance(comments, dict) or node.src is None or node.src.line not in comments:
        return ""
    text = comments[node.src.line]
    if text.startswith("def "):  # a parameter's own gradient (a broadcast summed back)
        text = text.split("(")[0] + "(...)"
    return f"# from {text}  ({node.src})"


def _comment(node: Node, inlined: Container[int]) -> str | None:
    """A line's gate: a running sum's line is the gate whose cotangent it adds up."""
    branch = node.inputs[-1] if node.inputs else None
    if branch is not None and branch.id in inlined and _summed_branch(branch, node):
        return branch.tag
    return node.tag


def _returned(nodes: Sequence[Node], walker: Walker) -> str:
    return ", ".join(walker.expr(n).text for n in nodes)


def _grads_tuple(nodes: Sequence[Node], walker: Walker, params: Sequence[Node] = ()) -> str:
    """The gradients; a constant one of its parameter's shape is written like the parameter
    (np.zeros_like(x)), so that it holds at any size of a named dim. Each gradient array is
    the caller's own: one that would share memory with a parameter, a module constant or
    another gradient (g_x = y, g_b = a read-only broadcast) is returned as a copy."""
    texts = []
    owners: set[int] = set()
    for k, n in enumerate(nodes):
        p = params[k] if k < len(params) else None
        if p is not None and _like_param(n, p):
            v = float(n.inputs[0].value)
            texts.append(
                f"np.zeros_like({walker.expr(p).text})"
                if v == 0.0
                else f"np.full_like({walker.expr(p).text}, {v!r})"
            )
            continue
        text = walker.expr(n).text
        if n.shape != ():
            base, shared = _buffer_of(n)
            if shared or base.id in owners:
                text = f"{wrap(walker.expr(n), ATOM)}.copy()"
            owners.add(base.id)
        texts.append(text)
    return _tuple(texts)


def _like_param(grad: Node, param: Node) -> bool:
    """A constant gradient of its parameter's shape: `np.zeros_like(x)` in the return."""
    return grad.op == "broadcast_to" and grad.inputs[0].op == "const" and grad.shape == param.shape


def _buffer_of(node: Node) -> tuple[Node, bool]:
    """The node whose buffer `node` may be a view of, and whether that buffer is not ours
    to hand out (a parameter, a constant, or read-only through a broadcast)."""
    shared = False
    while node.op in ops.OPS and ops.OPS[node.op].view:
        shared = shared or node.op == "broadcast_to"
        node = node.inputs[0]
    return node, shared or node.op in ("param", "const")


def _ancestors(roots: Iterable[Node]) -> set[int]:
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n.id not in seen:
            seen.add(n.id)
            stack.extend(n.inputs)
    return seen


# Names the generated code itself calls: a parameter of one of these names is renamed in
# the generated signature (arguments are positional, so callers do not notice).
SHADOWING = {"np", "math", "max", "min", "abs", "float"}


def arg_name(name: str) -> str:
    """The generated function's name for a parameter."""
    return f"{name}_" if name in SHADOWING else name


def _start(unit: Unit, consts: ModuleConsts, comments: bool, graph: Graph) -> Walker:
    namer = Namer(set(consts.names.values()) | set(consts.namer.taken))
    walker = Walker(consts, namer, comments)
    for p in graph.params:
        walker.bind(p, namer.claim(arg_name(p.name)))
    return walker


def _body(
    walker: Walker, graph: Graph, nodes: Sequence[Node], results: Sequence[Node], keep=frozenset()
):
    walker.walk(nodes, results, keep)
    return walker.finish([*graph.params, *results, *(n for n in nodes if n.id in keep)])


def emit_unit(
    unit: Unit, consts: ModuleConsts, comments: bool, stats: dict | None = None
) -> list[PyFunction]:
    """The five functions of the generated API for one traced function.

    `stats`, when given, receives the memory figures (peak live bytes, saved bytes).
    """
    fns: list[PyFunction] = []
    params = [arg_name(p) for p in unit.params]
    wrt = ", ".join(unit.wrt)
    stats = {} if stats is None else stats

    # NAME(*args): the forward value
    fwd = unit.forward
    w = _start(unit, consts, comments, fwd)
    w.unpack_params(fwd.params, fwd.nodes, fwd.outputs)
    lines = unit.guards + _body(w, fwd, fwd.nodes, fwd.outputs)
    doc = f"The value of {unit.signature}."
    fns.append(PyFunction(unit.name, params, doc, lines, _returned(fwd.outputs, w)))
    stats["forward peak live bytes"] = w.plan.peak_bytes

    # NAME_value_and_grad(*args): forward and backward, flat, seeded with 1
    value = fwd.outputs[0]
    vg_name = f"{unit.name}_value_and_grad"
    if value.shape == ():
        vg = unit.value_and_grad
        wrt_params = [next(p for p in vg.params if p.name == n) for n in unit.wrt]
        # constant gradients are written in the return (np.zeros_like(x)), not computed
        constant = [g for g, p in zip(vg.outputs[1:], wrt_params) if _like_param(g, p)]
        read = {i.id for n in vg.nodes for i in n.inputs} | {vg.outputs[0].id} if constant else ()
        written = {g.id for g in constant if g.id not in read}
        nodes = [n for n in vg.nodes if n.id not in written]
        results = [o for o in vg.outputs if o.id not in written]
        w = _start(unit, consts, comments, vg)
        w.unpack_params(vg.params, nodes, results)
        lines = unit.guards + _body(w, vg, nodes, results)
        ret = f"{w.expr(vg.outputs[0]).text}, {_grads_tuple(vg.outputs[1:], w, wrt_params)}"
        doc = f"The value and the gradients with respect to {wrt}."
        fns.append(PyFunction(vg_name, params, doc, lines, ret))
        stats["value_and_grad peak live bytes"] = w.plan.peak_bytes
    else:
        msg = (
            f"{unit.name} returns an array, and value_and_grad needs a "
            f"scalar output: use {unit.name}_vjp(*args, g) with g the upstream gradient"
        )
        doc = "Not available: the output is not a scalar."
        fns.append(PyFunction(vg_name, params, doc, [f"raise ValueError({msg!r})"], ""))

    # NAME_forward / NAME_backward: split where backward starts reading
    vjp = unit.vjp
    g = next(p for p in vjp.params if p.name == "g")
    value = vjp.outputs[0]
    forward_ids = _ancestors([value])
    # a region's results go with it: the tape of a forward loop is a forward value
    forward_ids |= {n.id for n in vjp.nodes if n.op == "part" and n.inputs[0].id in forward_ids}
    # Work that backward needs but the value does not (a mask, cos x) runs in backward,
    # from saved inputs: torch's save_for_backward convention, and less to save.
    fwd_nodes = [  # parameters too: dead code (with dce off) may read one the value does not
        n
        for n in vjp.nodes
        if (n.id in forward_ids or n.op == "param") and n is not g and n.op != "const"
    ]
    bwd_nodes = [n for n in vjp.nodes if n.id not in forward_ids and n.op not in ("param", "const")]
    bwd_inputs = {i.id for b in bwd_nodes for i in b.inputs} | {o.id for o in vjp.outputs[1:]}
    saved = [n for n in fwd_nodes if n.id in bwd_inputs]
    saved_ids = {n.id for n in saved}
    w = _start(unit, consts, comments, vjp)
    w.unpack_params([p for p in vjp.params if p.id not in saved_ids], fwd_nodes, [value, *saved])
    lines = unit.guards + _body(w, vjp, fwd_nodes, [value], keep=saved_ids)
    # what the forward hands over, and each saved value's text in the backward: elements
    # of a parameter read as `x_list[i]` travel as the one list
    handed: dict[str, None] = {}  # (in order, each once)
    saved_texts: list[str] = []
    for n in saved:
        listed, at = w.listed.get(n.id, (w.expr(n).text, ""))
        handed[listed] = None
        saved_texts.append(listed + at)
    saved_names = list(handed)
    saved_tuple = _tuple(saved_names)
    doc = f"The value and what {unit.name}_backward reads."
    fns.append(
        PyFunction(
            f"{unit.name}_forward", params, doc, lines, f"{w.expr(value).text}, {saved_tuple}"
        )
    )
    stats["saved for backward"] = saved_names
    stats["saved bytes"] = sum(memory.nbytes(n) for n in saved if n.op != "param")

    bw = Walker(consts, w.namer, comments)
    bw.bind(g, "g")
    for n, text in zip(saved, saved_texts):
        bw.bind(n, text)
    if saved:
        bw.lines.append(f"{_tuple(saved_names)[1:-1]} = saved")
    bw.walk(bwd_nodes, vjp.outputs[1:])
    lines = bw.finish([g, *saved, *vjp.outputs[1:]])
    doc = f"The gradients with respect to {wrt}, given the upstream gradient g."
    fns.append(
        PyFunction(
            f"{unit.name}_backward", ["saved", "g"], doc, lines, _grads_tuple(vjp.outputs[1:], bw)
        )
    )
    stats["backward peak live bytes"] = bw.plan.peak_bytes
    fns.append(
        PyFunction(
            f"{unit.name}_vjp",
            [*params, "g"],
            "The value and the gradients, given the upstream gradient g of the output's shape.",
            [f"value, saved = {unit.name}_forward({', '.join(params)})"],
            f"value, {unit.name}_backward(saved, g)",
        )
    )
    return fns


def _tuple(names: Sequence[str]) -> str:
    return f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"


def template_dir() -> Path:
    """templates/ in a source checkout, or the copy installed as codegen/templates."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "templates", here / "templates"):
        if (candidate / "python_module.py.j2").is_file():
            return candidate
    raise FileNotFoundError("gradgen's templates are missing: reinstall gradgen")


def emit_module(
    units: Sequence[Unit], source_name: str, comments: bool = True, stats: dict | None = None
) -> str:
    """The whole generated Python module, before formatting; `stats[name]` gets memory figures."""
    consts = ModuleConsts()
    for u in units:
        consts.namer.claim(u.name)
        for suffix in ("value_and_grad", "vjp", "forward", "backward"):
            consts.namer.claim(f"{u.name}_{suffix}")
    stats = {} if stats is None else stats
    functions = [
        f for u in units for f in emit_unit(u, consts, comments, stats.setdefault(u.name, {}))
    ]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    uses_math = any("math." in line for f in functions for line in f.lines) or any(
        "math." in f.returns for f in functions
    )
    return env.get_template("python_module.py.j2").render(
        version=__version__,
        source=source_name,
        units=units,
        functions=functions,
        constants=consts.lines,
        uses_math=uses_math,
    )
