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


def render(
    walker: "Walker",
    node: Node,
    args: Sequence[Expr],
    parts: dict[int, Node],
    partner: Node | None = None,
) -> list[str]:
    """The lines of one region; the names of its results are bound in `walker`. A taped
    branch pair's backward `partner` (see `partner`) is written into the same `if`."""
    if partner is not None:
        return _joined_cond(walker, node, args, parts, partner)
    if node.op == "cond":
        return _cond(walker, node, args, parts)
    return _loop(walker, node, args, parts)


def partner(walker: "Walker", node: Node) -> Node | None:
    """The backward branch pair of the taped `cond` `node`, when it can run inside the
    forward's `if` (value_and_grad of a scalar function: one test, not two): it is the
    only reader of the tape, which stays in this function, and whatever else it reads is
    there already when the forward branches run."""
    if node.op != "cond" or node.attrs["role"] != "taped":
        return None
    tape = walker.region_parts.get(node.id, {}).get(node.attrs["n_out"])
    if tape is None or tape.id not in walker.local_tapes:
        return None
    users = walker.tape_readers.get(tape.id, [])
    if len(users) != 1:
        return None
    (back,) = users
    if back.op != "cond" or back.attrs["role"] != "back" or back.inputs[0] is not node.inputs[0]:
        return None
    others = [i for k, i in enumerate(back.inputs) if k != 1]
    if back.inputs[1] is not tape or any(i is tape for i in others):
        return None
    if not all(i.op == "const" or i.id in walker.exprs for i in others):
        return None
    return back


def _joined_cond(walker, node, args, parts, back) -> list[str]:
    """A taped branch pair and its backward pair as one `if`: each branch runs forward,
    then backward, reading what it saved by name. The two bodies of a branch are walked
    as one graph, so a branch pair nested in them joins its backward pair in turn."""
    n_out, n_back = node.attrs["n_out"], back.attrs["n_out"]
    names = _result_names(walker, node.attrs["branches"][0].outputs[:n_out], parts, "_")
    back_parts = walker.region_parts.get(back.id, {})
    back_names = _result_names(walker, back.attrs["branches"][0].outputs[:n_back], back_parts, "_")
    tape = parts[n_out]
    walker.bind(tape, "_")  # (never written)
    walker.exprs[back.id] = name("_")  # (its results are bound: the walk skips it)
    back_args = [walker.exprs.get(i.id) or walker.expr(i) for i in back.inputs[2:]]
    lines = [f"if {args[0].text}:{_gate(walker, node)}"]
    for k, (f, g) in enumerate(zip(node.attrs["branches"], back.attrs["branches"])):
        n_res = len(g.params) - len(back_args)
        both = _join(f, g, n_out, n_res)
        inputs = list(args[1:]) + back_args
        body_lines, texts = _body(walker, both, inputs, names + back_names)
        if k == 1:
            lines.append("else:")
        lines.extend(_indent(body_lines + _assign(names + back_names, texts)))
    return lines


def _join(f: Graph, g: Graph, n_out: int, n_res: int) -> Graph:
    """One graph running the forward branch `f` then the backward branch `g`: parameters
    f's then g's after its `n_res` residuals (which read f's saved outputs), outputs f's
    first `n_out` then g's."""
    new = Graph()
    new.float_dtype = f.float_dtype
    envs: dict[int, dict[int, Node]] = {id(f): {}, id(g): {}}  # (ids are per graph)
    for graph, params in ((f, f.params), (g, g.params[n_res:])):
        for p in params:
            envs[id(graph)][p.id] = new.param(p.name, p.shape, p.dtype, p.src)
    need = {id(f): {o.id for o in f.outputs}, id(g): {o.id for o in g.outputs}}
    for graph in (g, f):
        live = need[id(graph)]
        for n in reversed(graph.nodes):
            if n.id in live:
                live.update(i.id for i in n.inputs)
            if graph is g and n.op == "param" and n.id in live and n.attrs["index"] < n_res:
                need[id(f)].add(f.outputs[n_out + n.attrs["index"]].id)
    for graph in (f, g):
        env, live = envs[id(graph)], need[id(graph)]
        if graph is g:
            for r, p in enumerate(g.params[:n_res]):
                env[p.id] = envs[id(f)][f.outputs[n_out + r].id]
        for n in graph.nodes:
            if n.id in env or n.id not in live or n.op == "param":
                continue
            if n.op == "const":
                out = new.const(n.value, n.dtype)
                out.name = out.name or n.name
            else:
                out = new.copy_of(n, tuple(env[i.id] for i in n.inputs))
                out.name = n.name
            env[n.id] = out
    new.outputs = [envs[id(f)][o.id] for o in f.outputs[:n_out]]
    new.outputs += [envs[id(g)][o.id] for o in g.outputs]
    return new


def _result_names(walker: "Walker", outputs: Sequence[Node], parts: dict[int, Node], unused: str):
    """A name for each result: its part's (bound in the walker), else `unused` or fresh."""
    names = []
    for k, o in enumerate(outputs):
        p = parts.get(k)
        if p is None:
            names.append(unused or walker.namer.fresh(o.name or "t"))
            continue
        chosen = walker.preset.get(p.id)
        if chosen is not None and chosen[1] is None:  # the enclosing region's result's name
            text = chosen[0]
        else:
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
    handed: int | None = None,
    fresh: set[int] = frozenset(),
) -> tuple[list[str], list[str]]:
    """A body's lines and the texts of its outputs, its parameters read as `inputs`.

    An output computed in the body takes the name of the region's result it becomes
    (`results`, in order), so that no `y = y_1` follows; a loop's result only once the
    carried parameter of that name (`carried`) has been read for the last time, and not
    if that parameter is itself an output (among the first `handed`, default all: a
    residual saved before the body runs is not)."""
    from .python import Walker

    sub = Walker(walker.consts, walker.namer, walker.comments)
    sub.nested = True
    sub.fresh_slots = set(fresh)
    for p, e in zip(graph.params, inputs):
        sub.exprs[p.id] = e
    _listed_reads(walker, sub, graph)
    params = {p.id for p in graph.params}
    seen: set[int] = set()
    for k, (o, result) in enumerate(zip(graph.outputs, results)):
        if o.id in params or o.op == "const" or o.id in seen or result == "_":
            continue
        seen.add(o.id)
        guard = carried[k] if k < len(carried) else None
        if guard is not None and any(x is guard for x in graph.outputs[:handed]):
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


def _entry(texts: Sequence[str]) -> str:
    """A tape entry: one saved value as it is, several as a tuple (none: `()`)."""
    return texts[0] if len(texts) == 1 else _tuple(texts)


def _target(names: Sequence[str]) -> str:
    """What unpacks a tape entry of `_entry` into `names` (none: `_`)."""
    return ", ".join(names) if len(names) > 1 else names[0] if names else "_"


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
            elif n_res == 1 and rest[0].text.isidentifier():  # the entry is the value
                res = [rest[0].text]
            else:
                res = [walker.namer.fresh(p.name or "r") for p in body.params[:n_res]]
                if res:
                    unpack = [f"{_target(res)} = {rest[0].text}"]
            inputs = [name(r) for r in res] + rest[1:]
        body_lines, texts = _body(walker, body, inputs, names[:n_out])
        if role == "taped":
            kept.append(texts[n_out:])
            local_or_empty = local or empty
            texts = texts[:n_out] if local_or_empty else texts[:n_out] + [_entry(texts[n_out:])]
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
        fresh = _fresh_slots(node, body, n_res)
        body_lines, texts = _body(
            walker, body, inputs, names, body.params[n_res : n_res + k], fresh=fresh
        )
        target = _target(res)
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
    # what an iteration saves that it receives (the old h) is saved before it runs, so
    # that the new value can take the old one's name at once: `h = math.tanh(a * h ...)`
    early = tape is not None and all(o.op == "param" for o in body.outputs[k:])
    carry_in = body.params[1 : 1 + k]
    body_lines, texts = _body(walker, body, inputs, names, carry_in, k if early else None)
    step: list[str] = []
    if tape is not None and not early:
        step.append(f"{tape}.append({_entry(texts[k:])})")
    step += _assign(names, texts[:k])
    if early:
        body_lines = [f"{tape}.append({_entry(texts[k:])})"] + body_lines
    head: list[str] = []
    if cond is not None:
        cond_lines, (test,) = _body(walker, cond, inputs)
        if cond_lines and cond_lines[-1].startswith(f"{test} = ") and "#" not in cond_lines[-1]:
            test = cond_lines.pop()[len(test) + 3 :]  # (the test's own line: into the while)
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


def _fresh_slots(node: Node, body: Graph, n_res: int) -> set[int]:
    """The accumulates of a backward loop's body that write element i (the iteration
    number) of an accumulator that starts as zeros, once an iteration: each element is
    written once, so `g_x[i] = v` is `g_x[i] += v`."""
    counter, out = body.params[-1], set()
    for pos in range(node.attrs["carried"]):
        if node.inputs[1 + pos].op != "zeros":
            continue
        acc = body.params[n_res + pos]
        users = [n for n in body.nodes if acc in n.inputs]
        if len(users) != 1 or body.outputs[pos] is not users[0]:
            continue
        (u,) = users
        if (
            u.op == "accumulate"
            and u.inputs[0] is acc
            and u.attrs["keys"] == ((("arr", 0),),)
            and u.inputs[2] is counter
            and any(o is u for o in body.outputs[pos : pos + 1])
            and sum(1 for o in body.outputs if o is u) == 1
        ):
            out.add(u.id)
    return out


def _listed_reads(walker: "Walker", sub: "Walker", graph: Graph) -> None:
    """Elements of a list read at a parameter (`x_list[i]`) as that text where they are
    read, not a line of their own."""
    listed = set(walker.__dict__.get("as_lists", {}).values())
    if not listed:
        return
    params = {p.id for p in graph.params}
    for n in graph.nodes:
        if n.op != "index" or n.shape or len(n.inputs) != 2 or n.attrs["key"] != (("arr", 0),):
            continue
        x, i = n.inputs
        if x.id in params and i.id in params and sub.exprs[x.id].text in listed:
            sub.exprs[n.id] = Expr(f"{sub.exprs[x.id].text}[{sub.exprs[i.id].text}]", ATOM)


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
