"""C emission of control-flow regions (`ops/control.py`): a `cond` as `if`/`else`, a `loop`
as a C `for` loop, and a loop's backward pass as a loop over its tape in reverse.

Each body is emitted by a `CWalker` of its own, sharing the enclosing walker's names and
constants, its parameters bound to the values of the region's inputs; its arrays take work
memory above the enclosing walker's own (the region's scratch). Where a region's results
live:
- a scalar result is a local declared before the region (a loop's carried value too);
- an array result has the work slot (or the home: an output, `saved`) that the enclosing
  walker's memory plan gives it at the region's statement; a body computes a carried array
  into scratch, copied over at the end of the iteration (every value of the iteration is
  read before any carried value changes, as in the Python target's tuple assignment);
- a tape is memory as well (in `saved`, or inside a record of an enclosing loop's tape). A
  branch writes what its backward branch reads at fixed offsets from the tape's start; a
  loop writes one record of `R` doubles per iteration, after the iteration count when the
  trip count is known only at run time (a `while`, or a `for` with a `break`). A `while`
  loop's tape is sized by the loop's bound (`# gradgen: max N` on its line, or
  `--max-iterations N`); the forward returns 2 rather than run past it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

from ..errors import GradgenError
from ..ir import Graph, Node
from ..sizes import upper
from . import c_expr as C
from .expr import Expr

if TYPE_CHECKING:
    from .c import CConsts, CWalker, View

REGIONS = ("cond", "loop")
# the status a forward returns when a while loop would run past its bound (the loader
# raises it as an error naming the bound)
PAST_BOUND = 2


# ---- sizes: how many doubles a tape takes ----


def taped_region(w: "CWalker", tape: Node) -> Node:
    """The taped region that wrote `tape` (a tape part, or a body parameter that reads one
    from an enclosing loop's record)."""
    if tape.op == "part":
        return tape.inputs[0]
    return w.tape_regions[tape.id]


def value_size(node: Node, limits: "CConsts") -> int:
    """The doubles a value takes in a record: 1 for a scalar, a tape's own size."""
    if node.dtype == "tape":
        return tape_size(node.inputs[0], limits)
    return upper(node.size, 1) if node.shape else 1


def layout(outputs: Sequence[Node], limits: "CConsts") -> tuple[list[int], int]:
    """The offset of each value in a record of `outputs`, and the record's size."""
    offsets, total = [], 0
    for o in outputs:
        offsets.append(total)
        total += value_size(o, limits)
    return offsets, total


def bound(node: Node, limits: "CConsts") -> int:
    """The most iterations a taped loop runs: its count, else its bound (`# gradgen: max
    N` on its line, else `--max-iterations`)."""
    count = node.attrs.get("count")
    if count is not None:
        return count
    limit = limits.bounds.get(node.src.line) if node.src is not None else None
    limit = limit or limits.max_iterations
    if limit is None:
        raise GradgenError(
            "on the C target a `while` loop's gradient needs a bound on its iterations "
            "(its tape is preallocated: the C code allocates nothing)",
            node.src,
            "put `# gradgen: max N` at the end of the `while` line, or pass "
            "--max-iterations N; past N iterations the forward returns an error",
        )
    return limit


def dynamic_count(node: Node) -> bool:
    """Whether a loop's trip count is known only at run time (saved as its tape's head)."""
    return node.attrs.get("cond") is not None or node.attrs.get("count") is None


def tape_size(region: Node, limits: "CConsts") -> int:
    """The doubles the tape of a taped `region` takes."""
    attrs = region.attrs
    if region.op == "cond":
        n_out = attrs["n_out"]
        return upper(*(layout(b.outputs[n_out:], limits)[1] for b in attrs["branches"]))
    k = attrs["carried"]
    record = layout(attrs["body"].outputs[k:], limits)[1]
    head = 1 if dynamic_count(region) else 0
    return head + bound(region, limits) * record


# ---- bodies ----


class Body:
    """A body graph emitted by a walker of its own: its lines and its outputs' values."""

    def __init__(self, w: "CWalker", graph: Graph, bindings: Sequence, base: int):
        from .c import CWalker

        self.graph = graph
        self.sub = CWalker(w.namer, w.consts, w.comments)
        self.sub.nested = True
        self.sub.work_offset = base
        self.sub.nonneg = set(w.nonneg)
        self.sub.tape_regions = w.tape_regions
        self.sub.floats = w.floats
        for p, v in zip(graph.params, bindings):
            self.sub.values[p.id] = v

    def emit(self, dests: dict[int, "View"], assigned: Sequence[int] = ()) -> list[str]:
        """The body's statements; `dests`: output index -> the memory an array output goes
        to; `assigned`: the outputs assigned to a local at the end (inlined into that line
        when nothing else reads them)."""
        from .c import same_memory
        from .python import _ancestors

        graph, sub = self.graph, self.sub
        wanted = sorted(set(dests) | set(assigned))
        outs = [graph.outputs[j] for j in wanted]
        needed = _ancestors(outs)  # (what only an unread result needs is not written)
        nodes = [n for n in graph.nodes if n.id in needed]
        uses: dict[int, int] = {}
        for n in nodes:
            for i in n.inputs:
                uses[i.id] = uses.get(i.id, 0) + 1
        for o in outs:
            uses[o.id] = uses.get(o.id, 0) + 1
        inline = {
            o.id
            for o in (graph.outputs[j] for j in assigned)
            if o.shape == () and uses.get(o.id) == 1 and o.op != "param"
        }
        sub.plan(nodes, outs, {o.id for o in outs} - inline, inline)
        homes: dict[int, "View"] = {}
        defined = {s.node.id for s in sub.stmts} | set(sub.part_ids)
        for j, dest in dests.items():
            o = graph.outputs[j]
            if o.id in defined and o.id not in homes and (o.shape != () or o.dtype == "tape"):
                homes[o.id] = dest
        protected = {o.id for o in outs}
        for o in outs:
            protected |= sub.roots(o)
        sub.place(homes, protected)
        lines = sub.render()
        for j, dest in dests.items():
            o = graph.outputs[j]
            if o.dtype == "tape":
                if sub.homes.get(o.id) is not dest:
                    raise AssertionError("a nested tape outside its record")
            elif o.shape == ():
                lines.append(f"{dest.base}[{dest.offset}] = {sub.element(o, None).text};")
            elif not same_memory(sub.homes.get(o.id) or sub.value(o), dest):
                lines += sub._copy(dest, o)
        return lines

    def text(self, j: int) -> Expr:
        """Output `j`'s value as a scalar expression."""
        return self.sub.element(self.graph.outputs[j], None)

    @property
    def work(self) -> int:
        return self.sub.work_offset + self.sub.work_size


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", text) is not None


def _assign(w: "CWalker", body: Body, targets: Sequence[tuple[int, str, Node | None]]) -> list[str]:
    """`name = value;` for each (output index, local, carried parameter), every value read
    before any local changes: a value that reads a local assigned before it goes through a
    temporary first (a, b = b, a)."""
    texts = []
    for j, local, param in targets:
        o = body.graph.outputs[j]
        if param is not None and o is param:
            texts.append(None)  # handed on unchanged
            continue
        if (
            o.op == "add"
            and param is not None
            and param in o.inputs
            and o.id not in body.sub.locals
            and o.inputs.count(param) == 1
        ):  # a sum over the iterations: g_a += t;
            other = o.inputs[1] if o.inputs[0] is param else o.inputs[0]
            texts.append(("+=", body.sub.element(other, None).text))
            continue
        texts.append(("=", body.text(j).text))
    lines: list[str] = []
    for k, (entry, (_, local, _)) in enumerate(zip(texts, targets)):
        if entry is None:
            continue
        op, text = entry
        if any(_mentions(text, targets[m][1]) for m in range(k) if texts[m] is not None):
            temp = w.namer.fresh("t")
            lines.append(f"const double {temp} = {text};")
            texts[k] = (op, temp)
    for entry, (_, local, _) in zip(texts, targets):
        if entry is not None and entry[1] != local:
            lines.append(f"{local} {entry[0]} {entry[1]};")
    return lines


def _indent(lines: Sequence[str]) -> list[str]:
    return ["    " + line for line in lines]


def _gate(w: "CWalker", node: Node) -> str:
    from .. import ops

    return f" /* {ops.OPS[node.op].gate} */" if w.comments and node.tag is not None else ""


def _scalar(text: str):
    from .c import Scalar

    return Scalar(Expr(text, C.ATOM))


def _record_values(
    w: "CWalker",
    base: str,
    offset: int,
    nodes: Sequence[Node],
    params: Sequence[Node] = (),
    to_write: bool = False,
) -> list:
    """The entries of a record (a tape's layout) at `base[offset + ...]`: values to read
    (a scalar as its element, binding the tapes among them to `params`, the body
    parameters they become), or with `to_write` memory to write them to."""
    from .c import Scalar, View, contiguous

    offsets, _ = layout(nodes, w.consts)
    values = []
    for k, (o, off) in enumerate(zip(nodes, offsets)):
        at = offset + off
        if o.dtype == "tape":
            size = value_size(o, w.consts)
            values.append(View(base, at, (1,), (size,)))
            if k < len(params):
                w.tape_regions[params[k].id] = o.inputs[0]
        elif o.shape == () and to_write:
            values.append(View(base, at, (), ()))
        elif o.shape == () and o.dtype == "i64":  # (an index, saved as a double)
            values.append(Scalar(Expr(f"(long){base}[{at}]", C.UNARY)))
        elif o.shape == ():
            values.append(_scalar(f"{base}[{at}]"))
        else:
            values.append(View(base, at, contiguous(o.shape), o.shape))
    return values


def _record_dests(w: "CWalker", base: str, offset: int, nodes: Sequence[Node], first: int):
    """Output index -> where it goes in a record (for `Body.emit`)."""
    values = _record_values(w, base, offset, nodes, to_write=True)
    return {first + k: v for k, v in enumerate(values)}


# ---- cond ----


def _cond(w: "CWalker", node: Node) -> list[str]:
    from .c import Scalar, local_type

    attrs = node.attrs
    branches, n_out, role = attrs["branches"], attrs["n_out"], attrs["role"]
    parts = w.parts_of.get(node.id, {})
    lines: list[str] = []
    locals_: dict[int, str] = {}  # output index -> its scalar local
    dests: dict[int, "View"] = {}
    for j in range(n_out):
        p = parts.get(j)
        if p is None or not w.uses.get(p.id):
            continue  # (a result nothing reads)
        v = w.value(p)
        if isinstance(v, Scalar):
            locals_[j] = v.expr.text
            lines.append(f"{local_type(p.dtype)} {v.expr.text};")
        else:
            dests[j] = v
    pred = w.element(node.inputs[0], None).text
    base = w.scratch_base()
    top = base
    if role == "back":
        tape_node = node.inputs[1]
        tape = w.value(tape_node)
        taped = taped_region(w, tape_node)
        rest = [w.value(i) for i in node.inputs[2:]]
    else:
        tape = w.value(parts[n_out]) if role == "taped" and n_out in parts else None
        rest = [w.value(i) for i in node.inputs[1:]]
    head = f"if ({pred}) {{{_gate(w, node)}"
    for k, graph in enumerate(branches):
        bindings = rest
        if role == "back":
            forward = taped.attrs["branches"][k]
            saved = forward.outputs[taped.attrs["n_out"] :]
            n_res = len(graph.params) - len(rest)
            bindings = _record_values(w, tape.base, tape.offset, saved, graph.params[:n_res]) + rest
        body = Body(w, graph, bindings, base)
        out_dests = dict(dests)
        if tape is not None and role == "taped":
            out_dests.update(_record_dests(w, tape.base, tape.offset, graph.outputs[n_out:], n_out))
        body_lines = body.emit(out_dests, list(locals_))
        body_lines += _assign(w, body, [(j, name, None) for j, name in locals_.items()])
        top = upper(top, body.work)
        lines.append(head if k == 0 else "} else {")
        lines += _indent(body_lines)
    lines.append("}")
    w.need_scratch(top - base)
    return lines


# ---- loop ----


def _loop(w: "CWalker", node: Node) -> list[str]:
    from .c import Scalar, View, contiguous, local_type

    attrs = node.attrs
    body_graph, k, role = attrs["body"], attrs["carried"], attrs["role"]
    parts = w.parts_of.get(node.id, {})
    base = w.scratch_base()
    top = base
    lines: list[str] = []
    first = 1 if role == "back" else 0  # the region input of carried value 0
    n_res = len(body_graph.params) - len(node.inputs) if role == "back" else 0
    params = (
        body_graph.params[n_res : n_res + k] if role == "back" else body_graph.params[1 : 1 + k]
    )
    carried: list = []
    targets: list[tuple[int, str, Node]] = []  # scalar carried values: (output, local, param)
    homes: dict[int, "View"] = {}  # array carried values: output -> their memory
    for j in range(k):
        o, p, init = body_graph.outputs[j], parts.get(j), node.inputs[first + j]
        v = w.value(p) if p is not None else None
        unread = (p is None or not w.uses.get(p.id)) and not _reads(node, params[j])
        if unread:  # nothing reads it, not even the next iteration
            carried.append(
                _scalar("0.0") if o.shape == () else View("", 0, (), (), fill=Expr("0.0", C.ATOM))
            )
            continue
        if o.shape == ():
            name = v.expr.text if isinstance(v, Scalar) else w.namer.fresh(o.name or "t")
            start = w._carried_start(node, j)
            if start is not None:  # (the loop goes on in its start's local)
                name = start.expr.text
            else:
                lines.append(f"{local_type(o.dtype)} {name} = {w.element(init, None).text};")
            carried.append(_scalar(name))
            targets.append((j, name, params[j]))
        else:
            if v is None:
                v = View("work", top, contiguous(o.shape), o.shape)
                top += o.size
            lines += w._copy(v, init)
            carried.append(v)
            homes[j] = v
    captured = [w.value(i) for i in node.inputs[first + k :]]
    limits = w.consts
    if role == "back":
        return lines + _back_loop(w, node, carried, captured, targets, homes, base, top)
    tape = w.value(parts[k]) if role == "taped" and k in parts else None
    counted = node.attrs.get("count")
    cond = attrs.get("cond")
    i = w.namer.fresh(body_graph.params[0].name or "i")
    w.nonneg.add(i)
    bindings = [_scalar(i), *carried, *captured]
    inner: list[str] = []
    if cond is not None:
        test = Body(w, cond, bindings, top)
        inner += test.emit({}, [0])
        inner += [f"if (!({test.text(0).text})) break;"]
        top_cond = test.work
    else:
        top_cond = top
    needs_n = tape is not None and dynamic_count(node)
    if tape is not None and counted is None:
        limit = bound(node, limits)
        inner.append(f"if ({i} == {limit}) return {PAST_BOUND}; /* past the loop's bound */")
    staged, top = _staging(body_graph, homes, params, top)
    body = Body(w, body_graph, bindings, top)
    dests = dict(staged)
    record = None
    if tape is not None and len(body_graph.outputs) > k:
        _, size = layout(body_graph.outputs[k:], limits)
        record = w.namer.fresh("record")
        head = 1 if needs_n else 0
        at = _index(tape.offset + head, size, i)
        inner.append(f"double *{record} = {tape.base} + {at};")
        dests.update(_record_dests(w, record, 0, body_graph.outputs[k:], k))
    inner += body.emit(dests, [j for j, _, _ in targets])
    inner += _assign(w, body, targets) + _copy_back(w, staged, homes)
    top = upper(top, body.work, top_cond)
    gate = _gate(w, node)
    if counted is not None and not needs_n:
        lines.append(f"for (long {i} = 0; {i} < {counted}; {i}++) {{{gate}")
    else:
        lines.append(f"long {i};")
        stop = f"{i} < {counted}" if counted is not None else ""
        lines.append(f"for ({i} = 0; {stop}; {i}++) {{{gate}")
    lines += _indent(inner)
    lines.append("}")
    if needs_n:
        lines.append(f"{tape.base}[{tape.offset}] = (double){i}; /* the iteration count */")
    w.need_scratch(top - base)
    return lines


def _staging(graph: Graph, homes: dict, params: Sequence[Node], top: int):
    """Where the body writes each carried array's next value: in place where that is safe
    (`_in_place`), else scratch from `top` on, copied over once the iteration has read
    every current value (`_copy_back`). Returns ({output: view}, the new top)."""
    from .c import View, contiguous

    staged: dict[int, "View"] = {}
    for j, home in homes.items():
        o = graph.outputs[j]
        if _in_place(graph, o, params[j]):
            staged[j] = home  # written where it is (g_x[i] += v)
        elif o is not params[j]:
            staged[j] = View("work", top, contiguous(o.shape), o.shape)
            top += o.size
    return staged, top


def _copy_back(w: "CWalker", staged: dict, homes: dict) -> list[str]:
    lines: list[str] = []
    for j, stage in staged.items():
        if stage is not homes[j]:
            lines += w._copy_view(homes[j], stage)
    return lines


def _in_place(graph: Graph, out: Node, param: Node) -> bool:
    """Whether a carried array's next value `out` may be written over its current one
    `param` as it is computed: `out` alone reads `param`, element for element (an
    elementwise op of its shape, g_W + t), or adds into it (an accumulate: g_x[i] += v)."""
    from .c import c_form

    if param not in out.inputs or sum(o is param for o in graph.outputs) > 0:
        return False
    if any(param in n.inputs for n in graph.nodes if n is not out):
        return False
    if out.op == "accumulate":
        return out.inputs[0] is param and out.inputs.count(param) == 1
    return callable(c_form(out.op)) and out.shape == param.shape


def _reads(node: Node, param: Node) -> bool:
    """Whether a loop's body (or test) reads its parameter `param`."""
    attrs = node.attrs
    graphs = [attrs["body"]] + ([attrs["cond"]] if attrs.get("cond") is not None else [])
    for graph in graphs:
        p = graph.params[attrs["body"].params.index(param)]
        if any(p in n.inputs for n in graph.nodes) or any(o is p for o in graph.outputs):
            return True
    return False


def _index(offset: int, size: int, i: str) -> str:
    term = i if size == 1 else f"{size} * {i}"
    return term if offset == 0 else f"{offset} + {term}"


def _back_loop(w, node, carried, captured, targets, homes, base, top) -> list[str]:
    from .c import View, contiguous

    attrs = node.attrs
    body_graph, k = attrs["body"], attrs["carried"]
    tape_node = node.inputs[0]
    tape = w.value(tape_node)
    taped = taped_region(w, tape_node)
    limits = w.consts
    saved = taped.attrs["body"].outputs[taped.attrs["carried"] :]
    _, size = layout(saved, limits)
    n_res = len(body_graph.params) - len(node.inputs)
    params = body_graph.params[n_res : n_res + k]
    i = w.namer.fresh(body_graph.params[-1].name or "i")
    w.nonneg.add(i)
    lines: list[str] = []
    if dynamic_count(taped):
        start = f"(long){tape.base}[{tape.offset}] - 1"
        head = 1
    else:
        start = str(taped.attrs["count"] - 1)
        head = 0
    inner: list[str] = []
    record = None
    if saved:
        record = w.namer.fresh("record")
        inner.append(
            f"const double *{record} = {tape.base} + {_index(tape.offset + head, size, i)};"
        )
    residuals = _record_values(w, record or "", 0, saved, body_graph.params[:n_res])
    bindings = [*residuals, *carried, *captured, _scalar(i)]
    staged, top = _staging(body_graph, homes, params, top)
    body = Body(w, body_graph, bindings, top)
    inner += body.emit(dict(staged), [j for j, _, _ in targets])
    inner += _assign(w, body, targets) + _copy_back(w, staged, homes)
    top = upper(top, body.work)
    lines.append(f"for (long {i} = {start}; {i} >= 0; {i}--) {{{_gate(w, node)}")
    lines += _indent(inner)
    lines.append("}")
    w.need_scratch(top - base)
    return lines


def render(w: "CWalker", node: Node) -> list[str]:
    """The lines of one region; its results are in the memory and locals `w` gave them."""
    if node.op == "cond":
        return _cond(w, node)
    return _loop(w, node)
