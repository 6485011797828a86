"""Python emission of control-flow regions (`ops/control.py`): a `cond` as `if`/`else`, a
`loop` as `for`/`while`, its backward pass as a loop over the tape in reverse.

Each body is emitted by a walker of its own (the same inlining, naming and memory plan as
a function's body), its parameters bound to the texts of the region's inputs, and ends by
assigning the region's results in one tuple assignment (every value is read before any
name is rebound). A loop's carried values live in the names of its results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ..ir import Graph, Node
from .expr import ATOM, Expr, name, wrap

if TYPE_CHECKING:
    from .python import Walker

INDENT = "    "


def render(walker: "Walker", node: Node, args: Sequence[Expr], parts: dict[int, Node]) -> list[str]:
    """The lines of one region; the names of its results are bound in `walker`."""
    if node.op == "cond":
        return _cond(walker, node, args, parts)
    return _loop(walker, node, args, parts)


def _result_names(walker: "Walker", outputs: Sequence[Node], parts: dict[int, Node], unused: str):
    """A name for each result: its part's (bound in the walker), else `unused` or fresh."""
    names = []
    for k, o in enumerate(outputs):
        p = parts.get(k)
        if p is None:
            names.append(unused or walker.namer.fresh(o.name or "t"))
            continue
        text = walker.namer.fresh(p.name or o.name or ("tape" if p.dtype == "tape" else "t"))
        walker.bind(p, text)
        names.append(text)
    return names


def _body(
    walker: "Walker",
    graph: Graph,
    inputs: Sequence[Expr],
    results: Sequence[str] = (),
    carried: Sequence[Node | None] = (),
) -> tuple[list[str], list[str]]:
    """A body's lines and the texts of its outputs, its parameters read as `inputs`.

    An output computed in the body takes the name of the region's result it becomes
    (`results`, in order), so that no `y = y_1` follows; a loop's result only once the
    carried parameter of that name (`carried`) has been read for the last time."""
    from .python import Walker

    sub = Walker(walker.consts, walker.namer, walker.comments)
    sub.nested = True
    for p, e in zip(graph.params, inputs):
        sub.exprs[p.id] = e
    params = {p.id for p in graph.params}
    seen: set[int] = set()
    for k, (o, result) in enumerate(zip(graph.outputs, results)):
        if o.id in params or o.op == "const" or o.id in seen or result == "_":
            continue
        seen.add(o.id)
        guard = carried[k] if k < len(carried) else None
        if guard is not None and any(x is guard for x in graph.outputs):
            continue  # (the old value is itself handed on: it must keep its name)
        sub.preset[o.id] = (result, guard.id if guard is not None else None)
    sub.walk(graph.nodes, graph.outputs)
    lines = sub.finish([*graph.params, *graph.outputs])
    return lines, [sub.expr(o).text for o in graph.outputs]


def _assign(names: Sequence[str], texts: Sequence[str]) -> list[str]:
    """`a, b = x, y`, leaving out the names that already hold their value."""
    pairs = [(n, t) for n, t in zip(names, texts) if n != t and n != "_"]
    if not pairs:
        return []
    if len(pairs) == 1:
        return [f"{pairs[0][0]} = {pairs[0][1]}"]
    return [f"{', '.join(n for n, _ in pairs)} = {', '.join(t for _, t in pairs)}"]


def _tuple(texts: Sequence[str]) -> str:
    return "()" if not texts else f"({texts[0]},)" if len(texts) == 1 else f"({', '.join(texts)})"


def _indent(lines: Sequence[str]) -> list[str]:
    return [INDENT + line for line in lines] or [INDENT + "pass"]


def _gate(walker: "Walker", node: Node) -> str:
    from ..ops import OPS

    return f"  # {OPS[node.op].gate}" if walker.comments and node.tag is not None else ""


def _cond(walker, node, args, parts) -> list[str]:
    attrs = node.attrs
    branches, n_out, role = attrs["branches"], attrs["n_out"], attrs["role"]
    names = _result_names(walker, branches[0].outputs[:n_out], parts, "_")
    tape = parts.get(n_out) if role == "taped" else None
    local = tape is not None and tape.id in walker.local_tapes and _own_names(branches, n_out)
    empty = role == "taped" and all(len(b.outputs) == n_out for b in branches)
    if empty:  # nothing saved on either path: the tape is the empty tuple, written nowhere
        if tape is not None:
            walker.bind(tape, "()")
    if role == "taped" and not local and not empty:
        names.append(walker.namer.fresh("tape") if tape is None else _bind(walker, tape, "tape"))
    elif local:
        walker.bind(tape, "_")  # (never written: the backward branch reads the names)
    pred, rest = args[0], list(args[1:])
    held = walker.tapes.get(node.inputs[1].id) if role == "back" else None
    lines = [f"if {pred.text}:{_gate(walker, node)}"]
    kept: list[list[str]] = []
    for k, body in enumerate(branches):
        inputs = rest
        unpack: list[str] = []
        if role == "back":
            n_res = len(body.params) - (len(rest) - 1)
            if held is not None:  # the forward branch's own names
                res = held[k]
            else:
                res = [walker.namer.fresh(p.name or "r") for p in body.params[:n_res]]
                if res:
                    unpack = [f"{', '.join(res)}{',' if len(res) == 1 else ''} = {rest[0].text}"]
            inputs = [name(r) for r in res] + rest[1:]
        body_lines, texts = _body(walker, body, inputs, names[:n_out])
        if role == "taped":
            kept.append(texts[n_out:])
            local_or_empty = local or empty
            texts = texts[:n_out] if local_or_empty else texts[:n_out] + [_tuple(texts[n_out:])]
        if k == 1:
            lines.append("else:")
        lines.extend(_indent(unpack + body_lines + _assign(names, texts)))
    if local:
        walker.tapes[tape.id] = kept
    return lines


def _own_names(branches: Sequence[Graph], n_out: int) -> bool:
    """Every residual is computed in its branch (so named there, once): not one of the
    branch's inputs, whose enclosing name a later line might take over."""
    for body in branches:
        params = {p.id for p in body.params}
        if any(o.id in params for o in body.outputs[n_out:]):
            return False
    return True


def _bind(walker, node: Node, hint: str) -> str:
    text = walker.namer.fresh(node.name or hint)
    walker.bind(node, text)
    return text


def _uses(graph: Graph | None, param: Node) -> bool:
    """Whether `graph` reads `param` (in a node or as an output)."""
    if graph is None:
        return False
    return any(param in n.inputs for n in graph.nodes) or any(o is param for o in graph.outputs)


def _loop(walker, node, args, parts) -> list[str]:
    attrs = node.attrs
    body, cond, count, k, role = (
        attrs["body"],
        attrs.get("cond"),
        attrs.get("count"),
        attrs["carried"],
        attrs["role"],
    )
    carried_outputs = body.outputs[:k]
    names = _result_names(walker, carried_outputs, parts, "")
    tape = None
    if role == "taped":
        p = parts.get(k)
        tape = walker.namer.fresh("tape") if p is None else _bind(walker, p, "tape")
    lines: list[str] = []
    if role == "back":
        saved, init, captured = args[0], list(args[1 : 1 + k]), list(args[1 + k :])
        n_res = len(body.params) - k - len(captured) - 1
        res = [walker.namer.fresh(p.name or "r") for p in body.params[:n_res]]
        lines += _assign(names, [e.text for e in init])
        lines += _as_lists(walker, body.params[k + n_res : -1], captured, body, None)
        counter = body.params[-1]
        i = walker.namer.fresh(counter.name or "i") if _uses(body, counter) else None
        inputs = [name(r) for r in res] + [name(n) for n in names] + captured + [name(i or "_")]
        body_lines, texts = _body(walker, body, inputs, names, body.params[n_res : n_res + k])
        target = "_" if not res else f"{', '.join(res)}{',' if len(res) == 1 else ''}"
        gate = _gate(walker, node)
        if i is None:
            lines.append(f"for {target} in reversed({saved.text}):{gate}")
            unpack = []
        else:
            lines.append(f"for {i} in range(len({saved.text}) - 1, -1, -1):{gate}")
            unpack = [f"{target} = {saved.text}[{i}]"] if res else []
        lines += _indent(unpack + body_lines + _assign(names, texts[:k]))
        return lines
    init, captured = [e.text for e in args[:k]], list(args[k:])
    lines += _assign(names, init)
    lines += _as_lists(walker, body.params[1 + k :], captured, body, cond)
    if tape is not None:
        lines.append(f"{tape} = []")
    i_param = body.params[0]
    counted = _uses(body, i_param) or _uses(cond, cond.params[0] if cond else i_param)
    i = walker.namer.fresh(i_param.name or "i") if counted else "_"
    inputs = [name(i)] + [name(n) for n in names] + captured
    body_lines, texts = _body(walker, body, inputs, names, body.params[1 : 1 + k])
    step: list[str] = []
    if tape is not None:
        step.append(f"{tape}.append({_tuple(texts[k:])})")
    step += _assign(names, texts[:k])
    head: list[str] = []
    if cond is not None:
        cond_lines, (test,) = _body(walker, cond, inputs)
        if count is None and not cond_lines:
            lines_head = f"while {test}:"
        else:
            head = cond_lines + [f"if not {_paren(test)}:", INDENT + "break"]
            lines_head = "while True:" if count is None else f"for {i} in range({count}):"
    else:
        lines_head = f"for {i} in range({count}):"
    if count is None and counted:  # a while loop that reads its iteration number
        lines.append(f"{i} = 0")
        step.append(f"{i} += 1")
    lines.append(lines_head + _gate(walker, node))
    lines += _indent(head + body_lines + step)
    return lines


def _paren(text: str) -> str:
    e = Expr(text, ATOM if text.isidentifier() else 0)
    return wrap(e, ATOM)


def _read_by_element(param: Node, body: Graph, cond: Graph | None) -> bool:
    """A 1-D float64 array the loop reads only one element at a time (x[i])."""
    if param.ndim != 1 or param.dtype != "f64":
        return False
    read = False
    for graph in (body, cond):
        if graph is None:
            continue
        p = graph.params[body.params.index(param)] if graph is cond else param
        if any(o is p for o in graph.outputs):
            return False
        for n in graph.nodes:
            if p in n.inputs:
                if n.op != "index" or n.inputs[0] is not p or n.shape or len(n.attrs["key"]) != 1:
                    return False
                if any(i is p for i in n.inputs[1:]):
                    return False
                read = True
    return read


def _as_lists(walker, params, captured: list[Expr], body: Graph, cond) -> list[str]:
    """Arrays a loop reads one element at a time, as lists (x_list[i] is a Python float:
    scalar code runs several times faster on it); `captured` is updated in place."""
    lines = []
    made = walker.__dict__.setdefault("as_lists", {})  # array text -> its list's name
    for c, p in enumerate(params):
        text = captured[c].text
        if not _read_by_element(p, body, cond):
            continue
        if text not in made:
            made[text] = walker.namer.fresh(f"{text}_list" if text.isidentifier() else "listed")
            lines.append(f"{made[text]} = {text}.tolist()")
        captured[c] = name(made[text])
    return lines
