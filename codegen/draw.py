"""Circuit diagrams: the traced function as gates on wires, every wire labelled with its
forward value (above) and its gradient (below) at one point; Graphviz lays them out.

The values come from the reference interpreter. The gradients come from the same VJP
rules autodiff uses, evaluated node by node in reverse: each rule builds its IR on a small
scratch graph whose parameters are the upstream gradient, the node's value and its
inputs, and the reference interpreter evaluates it. A wire that feeds several gates
carries, on each branch, the gradient that branch sends back; they add up at the source
(the copy gate).

Two levels: `gates` (one node per op) and `lines` (one box per line of the user's file,
for graphs too large to read gate by gate).
"""

from __future__ import annotations

import ast
import html
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import ops
from .autodiff import unbroadcast
from .ops import control
from .errors import GradgenError
from .ir import Graph, Node, evaluate
from .write import write_atomic

# Beyond this many gates, `auto` draws one box per source line.
GATES_LIMIT = 80
VALUE_COLOR = "#1b7a3e"  # forward values: green, above the wire
GRAD_COLOR = "#c0392b"  # gradients: red, below it
SYMBOLS = {"add": "+", "sub": "−", "mul": "×", "div": "÷", "neg": "−x", "matmul": "@"}
FORMATS = {".dot", ".svg", ".png", ".pdf"}


@dataclass
class Wires:
    """Values of every node and gradients along every edge, at one point."""

    values: dict[int, np.ndarray]
    grads: dict[int, np.ndarray]  # node id -> total gradient
    branches: dict[tuple[int, int, int], np.ndarray] = field(default_factory=dict)
    # (input id, consumer id, input position) -> the gradient that branch sends back


def wires(graph: Graph, args: Sequence[Any]) -> Wires:
    """Forward values and reverse gradients (seeded with ones at the output)."""
    values = evaluate(graph, args)
    (out,) = graph.outputs[:1]
    region = next((n for n in graph.nodes if n.op in control.REGIONS), None)
    if region is not None:
        raise GradgenError(
            "drawing a function whose `if` or `while` tests a traced value is not supported "
            "yet (a circuit has no branches)",
            region.src,
            "draw the function with the branch taken written out, or use np.where",
        )
    grads: dict[int, np.ndarray] = {out.id: np.ones(out.shape)}
    branches: dict[tuple[int, int, int], np.ndarray] = {}
    for node in reversed(graph.live_nodes()):
        g = grads.get(node.id)
        if g is None or node.op in ("param", "const"):
            continue
        spec = ops.OPS[node.op]
        if spec.vjp is None:
            continue
        scratch = Graph()
        g_in = scratch.param("g", node.shape, "f64")
        out_in = scratch.param("out", node.shape, node.dtype)
        inputs = [scratch.param(f"x{k}", i.shape, i.dtype) for k, i in enumerate(node.inputs)]
        parts = spec.vjp(g_in, out_in, *inputs, **node.attrs)
        # each part summed back to its input's shape, as autodiff does
        parts = [
            None if p is None or i.op == "const" else unbroadcast(_node(scratch, p), i.shape)
            for p, i in zip(parts, node.inputs)
        ]
        scratch.outputs = [p for p in parts if p is not None]
        env = evaluate(scratch, [g, values[node.id], *(values[i.id] for i in node.inputs)])
        for k, (inp, part) in enumerate(zip(node.inputs, parts)):
            if part is None:
                continue
            c = np.asarray(env[part.id], dtype=np.float64)
            branches[(inp.id, node.id, k)] = c
            grads[inp.id] = grads[inp.id] + c if inp.id in grads else c
    return Wires(values, grads, branches)


def _node(graph: Graph, part: Any) -> Node:
    """A VJP rule's part as a node (a rule may hand back a plain number)."""
    return part if isinstance(part, Node) else graph.const(np.asarray(part, dtype=np.float64))


# ---- labels ----


def summary(value: np.ndarray) -> str:
    """A number, up to 4 values, or a shape with its norm."""
    v = np.asarray(value)
    if v.dtype == bool:
        return f"mask{list(v.shape)}" if v.ndim else str(bool(v))
    if v.ndim == 0:
        return f"{float(v):.4g}"
    if v.size <= 4:
        return "[" + ", ".join(f"{float(x):.3g}" for x in v.ravel()) + "]"
    return f"{list(v.shape)}, norm {float(np.linalg.norm(v)):.3g}"


def _wire_label(value: np.ndarray | None, grad: np.ndarray | None, name: str | None) -> str:
    top = summary(value) if value is not None else ""
    if name:
        top = f"{name} = {top}"
    parts = [f'<font color="{VALUE_COLOR}">{html.escape(top)}</font>']
    if grad is not None:
        parts.append(f'<font color="{GRAD_COLOR}">{html.escape(summary(grad))}</font>')
    return "<" + "<br/>".join(parts) + ">"


def _literal(node: Node) -> bool:
    """A number the user wrote (1.0 in 1 + exp(-x)): shown in its gate, not as a wire."""
    return node.op == "const" and node.value.size == 1 and not node.name


def _gate_label(node: Node) -> str:
    spec = ops.OPS[node.op]
    head = SYMBOLS.get(node.op, node.op)
    if node.op == "index":
        from .ops.shape import key_text

        arrays = [i.name or "idx" for i in node.inputs[1:]]
        base = node.inputs[0].name if node.inputs[0].op == "param" else ""
        head = f"{base}[{key_text(node.attrs['key'], arrays)}]"
    literals = [f"{float(i.value):g}" for i in node.inputs if _literal(i)]
    if literals and len(node.inputs) == 2:
        # the literal on its own side: 1 ÷ x, x + 1
        head = f"{literals[0]} {head}" if _literal(node.inputs[0]) else f"{head} {literals[0]}"
    rule = spec.gate.replace(" gate", "") if spec.gate else ""
    text = f"<b>{html.escape(head)}</b>"
    if rule:
        text += f'<br/><font point-size="9">{html.escape(rule)}</font>'
    return f"<{text}>"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---- the two levels ----


def _header(caption: str) -> list[str]:
    legend = (
        f'<<font color="{VALUE_COLOR}">value</font> above, '
        f'<font color="{GRAD_COLOR}">gradient</font> below each wire<br/>'
        f"{html.escape(caption)}>"
    )
    return [
        "digraph circuit {",
        "  rankdir=LR;",
        '  graph [fontname="Helvetica", fontsize=11, labelloc=b, nodesep=0.5, ranksep=0.9,'
        f" label={legend}];",
        '  node [fontname="Helvetica", fontsize=12];',
        '  edge [fontname="Helvetica", fontsize=10, arrowsize=0.6];',
    ]


def _param_node(node: Node) -> str:
    shape = "" if not node.shape else f'<br/><font point-size="9">{list(node.shape)}</font>'
    return (
        f'  n{node.id} [shape=box, style="rounded,filled", fillcolor="#eef3fb", '
        f"label=<<b>{html.escape(node.name or 'param')}</b>{shape}>];"
    )


def _close(lines: list[str], graph: Graph, w: Wires, source: str) -> str:
    """The output wire (its value, and the seed gradient 1) from `source`, and the end."""
    out = graph.outputs[0]
    label = _wire_label(w.values.get(out.id), w.grads.get(out.id), _user_name(out))
    lines.append('  out [shape=plaintext, label="output"];')
    lines.append(f"  {source} -> out [label={label}];")
    return "\n".join(lines + ["}"]) + "\n"


def dot_gates(graph: Graph, w: Wires, caption: str) -> str:
    """One node per gate; parameters on the left, the output on the right."""
    lines = _header(caption)
    live = graph.live_nodes()
    params = [n for n in live if n.op == "param"]
    lines.append("  { rank=source; " + " ".join(f"n{p.id};" for p in params) + " }")
    lines += [_param_node(p) for p in params]
    for node in live:
        if node.op == "param":
            continue
        if node.op == "const":
            if not _literal(node):
                lines.append(
                    f'  n{node.id} [shape=plaintext, fontsize=10, fontcolor="#666666", '
                    f"label={_quote(node.name or summary(node.value))}];"
                )
            continue
        lines.append(
            f'  n{node.id} [shape=ellipse, margin="0.08,0.04", label={_gate_label(node)}];'
        )
        for k, inp in enumerate(node.inputs):
            if _literal(inp):
                continue  # in the gate's label
            grad = w.branches.get((inp.id, node.id, k))
            label = _wire_label(w.values.get(inp.id), grad, _user_name(inp))
            lines.append(f"  n{inp.id} -> n{node.id} [label={label}];")
    return _close(lines, graph, w, f"n{graph.outputs[0].id}")


def _user_name(node: Node) -> str | None:
    name = node.name
    if not name or node.op == "param" or name.startswith(("t", "g_")) and name[1:].isdigit():
        return None
    return name


def dot_lines(graph: Graph, w: Wires, caption: str, source: list[str]) -> str:
    """One box per source line: a graph of thousands of gates still reads as a program."""
    lines = _header(caption)
    live = graph.live_nodes()
    group: dict[int, str] = {}
    members: dict[str, list[Node]] = {}
    for node in live:
        if node.op == "const":
            continue
        key = f"p{node.id}" if node.op == "param" else f"l{node.src.line if node.src else 0}"
        group[node.id] = key
        members.setdefault(key, []).append(node)
    params = [n for n in live if n.op == "param"]
    lines.append("  { rank=source; " + " ".join(f"p{p.id};" for p in params) + " }")
    for p in params:
        lines.append(_param_node(p).replace(f"n{p.id} [", f"p{p.id} [", 1))
    for key, nodes in members.items():
        if key.startswith("p"):
            continue
        number = int(key[1:])
        text = source[number - 1].strip() if 0 < number <= len(source) else ""
        if len(text) > 60:
            text = text[:57] + "..."
        ops_used = sorted({n.op for n in nodes})
        lines.append(
            f'  {key} [shape=box, style="rounded", label=<<b>line {number}</b>: '
            f'{html.escape(text)}<br/><font point-size="9">{len(nodes)} gates: '
            f"{html.escape(', '.join(ops_used[:6]))}{', …' if len(ops_used) > 6 else ''}"
            "</font>>];"
        )
    into: dict[tuple[int, str], np.ndarray] = {}  # (input, consumer's box) -> gradient
    for (i, n, _), c in w.branches.items():
        key = (i, group.get(n, ""))
        into[key] = into[key] + c if key in into else c
    seen: set[tuple[str, str, int]] = set()
    for node in live:
        if node.id not in group or node.op == "param":
            continue
        for inp in node.inputs:
            a, b = group.get(inp.id), group[node.id]
            if a is None or a == b or (a, b, inp.id) in seen:
                continue
            seen.add((a, b, inp.id))
            grad = into.get((inp.id, b))
            label = _wire_label(w.values.get(inp.id), grad, _user_name(inp))
            lines.append(f"  {a} -> {b} [label={label}];")
    out = graph.outputs[0]
    return _close(lines, graph, w, group.get(out.id, f"p{out.id}"))


def circuit(
    graph: Graph, args: Sequence[Any], caption: str, level: str = "auto", source: list[str] = ()
) -> str:
    """The DOT text of the circuit at `args`."""
    w = wires(graph, args)
    gates = sum(1 for n in graph.live_nodes() if n.op not in ("param", "const"))
    if level == "auto":
        level = "gates" if gates <= GATES_LIMIT else "lines"
    if level == "gates":
        return dot_gates(graph, w, caption)
    return dot_lines(graph, w, caption, list(source))


# ---- the point, and rendering ----


def parse_at(text: str | None) -> dict[str, np.ndarray]:
    """`x=-2,y=5,w=[2,-3,-3]` as {"x": -2.0, "y": 5.0, "w": array([2., -3., -3.])}."""
    values: dict[str, np.ndarray] = {}
    items, depth, start = [], 0, 0
    text = text or ""
    for k, ch in enumerate(text):  # commas inside [...] belong to the array
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(text[start:k])
            start = k + 1
    items.append(text[start:])
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, sep, number = item.partition("=")
        try:
            if not sep or not name.strip().isidentifier():
                raise ValueError
            value = number.strip()
            if value.startswith("["):
                if not all(c in "0123456789.eE+-[], " for c in value):
                    raise ValueError
                parsed = np.array(ast.literal_eval(value), dtype=np.float64)
            else:
                parsed = np.asarray(float(value))
            values[name.strip()] = parsed
        except (ValueError, SyntaxError, TypeError):
            raise GradgenError(
                f"--at takes NAME=VALUE pairs separated by commas, a value a number or a "
                f"bracketed list (got {item!r})",
                hint="e.g. --at x=-2,y=5,z=-4 or --at 'w=[2,-3,-3],x=[-1,-2]'",
            ) from None
    return values


def point(spec, graph: Graph, at: dict[str, float], seed: int = 0) -> tuple[list, str]:
    """The arguments to draw at, and how they were chosen (for the caption): scalars named
    by --at; the rest from the module's `_check_args` if it has one, else a seeded random
    point away from kinks."""
    from . import check

    names = [p.name for p in spec.params]
    unknown = [n for n in at if n not in names]
    if unknown:
        raise GradgenError(
            f"--at names {', '.join(map(repr, unknown))}, not a parameter of {spec.name} "
            f"(its parameters: {', '.join(names) or 'none'})",
            spec.src,
            "give NAME=NUMBER for scalar parameters, e.g. --at "
            + ",".join(f"{n}=1" for n in names[:2]),
        )
    for p in spec.params:
        if p.name in at and at[p.name].shape != tuple(p.shape):
            raise GradgenError(
                f"--at gives {p.name} the shape {at[p.name].shape}, but it is " f"{p.type_str()}",
                spec.src,
                f"give all its values in brackets, e.g. --at '{p.name}=[...]', or choose them "
                "with _check_args(rng) in the input file",
            )
    chosen = check.user_points(spec, seed)
    if chosen:
        args, where = [np.asarray(a, dtype=np.float64) for a in chosen[0]], "_check_args"
    else:
        args, _ = check.draw_point(spec.params, graph, np.random.default_rng(seed))
        where = "a seeded random point"
    args = [
        np.asarray(at[p.name], dtype=np.float64) if p.name in at else a
        for p, a in zip(spec.params, args)
    ]
    shown = ", ".join(f"{n}={_short(at[n])}" for n in names if n in at)
    rest = [n for n in names if n not in at]
    caption = f"{spec.name}" + (f" at {shown}" if shown else "")
    if rest:
        caption += f"; {', '.join(rest)} from {where}"
    return args, caption


def _short(value: np.ndarray) -> str:
    if value.ndim == 0:
        return f"{float(value):g}"
    return "[" + ",".join(f"{float(v):g}" for v in value.ravel()) + "]"


def render(text: str, path: Path) -> str:
    """Write the diagram to `path` (.dot, .svg, .png or .pdf); returns what was written,
    as the line the command prints. Without Graphviz's `dot`, writes the .dot beside it."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise GradgenError(
            f"--draw writes .dot, .svg, .png or .pdf, not {suffix or 'a file without an extension'!r}",
            hint=f"e.g. --draw {path.with_suffix('.svg').name}",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".dot":
        write_atomic(path, text.encode())
        return f"wrote {path}"
    dot = shutil.which("dot")
    if dot is None:
        fallback = path.with_suffix(".dot")
        write_atomic(fallback, text.encode())
        return (
            f"wrote {fallback} (Graphviz's `dot` is not installed: render it with "
            f"`dot -T{suffix[1:]} {fallback} -o {path}`, after e.g. `apt-get install graphviz`)"
        )
    try:
        done = subprocess.run(
            [dot, f"-T{suffix[1:]}"], input=text.encode(), capture_output=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        raise GradgenError(
            "Graphviz took more than 60 s to lay out the diagram",
            hint="draw one box per source line with --draw-level lines, or write the .dot",
        ) from None
    if done.returncode != 0:
        raise RuntimeError(f"dot failed: {done.stderr.decode(errors='replace').strip()}")
    write_atomic(path, done.stdout)
    return f"wrote {path}"
