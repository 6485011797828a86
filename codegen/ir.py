"""The IR: a graph of single-assignment nodes in topological order.

Nodes are interned at construction (same op, inputs and attributes give the same node),
so common-subexpression elimination is free. A node's shape rule, evaluation and VJP rule
live in `ops`; this module only stores, prints and interprets.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .errors import Src

Shape = tuple[int, ...]
# Constant folding writes arrays up to this size into the code; larger ones stay computed.
FOLD_MAX_ELEMENTS = 64


def _freeze(value: Any) -> Any:
    """A hashable stand-in for an attribute value (lists become tuples)."""
    if isinstance(value, tuple):
        try:
            hash(value)  # (a multi_scatter's thousands of keys: one call, in C)
            return value
        except TypeError:
            pass
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        if len(value) == 1:  # (an index's key, a reduction's axis: most attributes)
            for k, v in value.items():
                return ((k, _freeze(v)),)
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


def _key(op: str, inputs: tuple, attrs: dict) -> tuple:
    """What makes two nodes the same for CSE: op, attributes and input ids (one flat tuple:
    a graph keeps one a node)."""
    frozen = _freeze(attrs) if attrs else ()
    if len(inputs) == 1:
        return (op, frozen, inputs[0].id)
    if len(inputs) == 2:
        return (op, frozen, inputs[0].id, inputs[1].id)
    return (op, frozen, *[n.id for n in inputs])


# (shape rule, dtype rule, input shapes and dtypes) -> (shape, dtype): see `Graph.apply`
_RULED: dict[tuple, tuple[tuple, str]] = {}


def _all_const(nodes: Sequence[Node]) -> bool:
    for n in nodes:
        if n.op != "const":
            return False
    return True


def _int_arithmetic(inputs: Sequence[Any]) -> bool:
    """Integer nodes with Python ints only (no float node, no float number)."""
    ints = False
    for x in inputs:
        if isinstance(x, Node):
            if x.dtype != "i64":
                return False
            ints = True
        elif not isinstance(x, (int, np.integer)) or isinstance(x, bool):
            return False
    return ints


def _any_broadcast(nodes: Sequence[Node]) -> bool:
    for n in nodes:
        if n.op == "broadcast_to":
            return True
    return False


class Node:
    """One SSA value: `op(*inputs; attrs)` of a known shape and dtype."""

    __slots__ = (
        "id",
        "op",
        "inputs",
        "attrs",
        "shape",
        "dtype",
        "src",
        "_graph",
        "name",
        "tag",
        "value",
    )

    def __init__(self, graph, id, op, inputs, attrs, shape, dtype, src, tag, value=None):
        # A weak reference: the graph holds its nodes, and a cycle back from every node
        # would leave each dropped graph for the cyclic collector to find, a walk over
        # millions of objects in a large compile; without it, refcounting frees them.
        self._graph = graph._ref
        self.id: int = id
        self.op: str = op
        self.inputs: tuple[Node, ...] = inputs
        self.attrs: dict[str, Any] = attrs
        self.shape: Shape = shape
        self.dtype: str = dtype
        self.src: Src | None = src
        self.tag: str | None = tag  # the gate that made a backward node, for comments
        self.name: str | None = None  # a name hint: the user's variable or parameter
        self.value = value  # constants only

    @property
    def graph(self) -> "Graph":
        """The graph the node belongs to (alive as long as anything uses it)."""
        graph = self._graph()
        if graph is None:
            raise RuntimeError(f"the graph of node %{self.id} is gone")
        return graph

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __repr__(self) -> str:
        return f"%{self.id}"

    # Arithmetic, so that VJP rules read like the math they state.
    def __add__(self, other):
        return self.graph.apply("add", self, other)

    def __radd__(self, other):
        return self.graph.apply("add", other, self)

    def __sub__(self, other):
        return self.graph.apply("sub", self, other)

    def __rsub__(self, other):
        return self.graph.apply("sub", other, self)

    def __mul__(self, other):
        return self.graph.apply("mul", self, other)

    def __rmul__(self, other):
        return self.graph.apply("mul", other, self)

    def __truediv__(self, other):
        return self.graph.apply("div", self, other)

    def __rtruediv__(self, other):
        return self.graph.apply("div", other, self)

    def __neg__(self):
        return self.graph.apply("neg", self)

    def __pow__(self, other):
        return self.graph.apply("pow", self, other)


class Graph:
    """A growing list of nodes; `apply` adds (or finds) a node."""

    def __init__(self) -> None:
        self._ref = weakref.ref(self)  # what nodes hold
        self.nodes: list[Node] = []
        self.params: list[Node] = []
        self.outputs: list[Node] = []
        self._interned: dict[Any, Node] = {}
        # Defaults stamped on new nodes: set by the tracer and by autodiff per gate.
        self.src: Src | None = None
        self.tag: str | None = None
        # Python numbers next to bool masks take this dtype (f32 when every parameter is).
        self.float_dtype = "f64"
        # Construction-time rules, switched on by the passes that rebuild a graph:
        # "intern" (same op and inputs give the same node: CSE), "fold" (constant
        # folding), "simplify" (the ops' algebraic rewrites), "fuse" (pattern fusions).
        self.rules: frozenset[str] = frozenset()
        # What the command tells the user about their code (a write into a parameter).
        self.notes: list[str] = []

    def param(self, name: str, shape: Shape, dtype: str, src: Src | None = None) -> Node:
        node = self._new("param", (), {"name": name, "index": len(self.params)}, shape, dtype, src)
        node.name = name
        self.params.append(node)
        return node

    def const(self, value: Any, dtype: str | None = None) -> Node:
        """A constant node; Python scalars take `dtype` (the other operand's: weak typing)."""
        arr = np.asarray(value)
        if dtype is None:
            dtype = dtype_of(arr)
        arr = arr.astype(NUMPY_DTYPES[dtype])
        key = ("const", arr.shape, dtype, arr.tobytes())
        node = self._interned.get(key)
        if node is None:
            node = self._new("const", (), {}, tuple(arr.shape), dtype, None, value=arr)
            self._interned[key] = node
        return node

    def apply(
        self, op: str, *inputs: Any, src: Src | None = None, _like: Node | None = None, **attrs: Any
    ) -> Node:
        """Add `op(*inputs; attrs)`, or return the identical node already present.

        Python numbers among the inputs become constants of the other inputs' dtype.
        `_like` (from `replay`): a node of the same op and attributes whose inputs had
        these inputs' shapes and dtypes, so its shape and dtype are the result's.
        """
        spec = ops.OPS[op]
        nodes = inputs
        for x in inputs:
            if type(x) is not Node:
                dtype_hint = next(
                    (y.dtype for y in inputs if isinstance(y, Node) and y.dtype in ("f64", "f32")),
                    self.float_dtype,
                )
                if _int_arithmetic(inputs):  # i + 1 of a loop counter stays an integer
                    dtype_hint = "i64"
                nodes = tuple(
                    y if isinstance(y, Node) else self.const(y, dtype_hint) for y in inputs
                )
                break
        rules = self.rules
        if rules:
            rewritten = self._rewrite(spec, nodes, attrs)
            if rewritten is not None:
                # a rule that hands back an operand must not change the value's type
                # (mask * 1.0 is a float array, not the bool mask): whatever the rule, such
                # a rewrite is dropped
                if rewritten not in nodes or rewritten.dtype == (
                    _like.dtype
                    if _like is not None
                    else spec.dtype([n.dtype for n in nodes], **attrs)
                ):
                    return rewritten
        if attrs:
            key = _key(op, nodes, attrs)
        elif len(nodes) == 2:
            key = (op, (), nodes[0].id, nodes[1].id)
        elif len(nodes) == 1:
            key = (op, (), nodes[0].id)
        else:
            key = (op, (), *[n.id for n in nodes])
        interned = self._interned
        if "intern" in rules:
            node = interned.get(key)
            if node is not None:
                return node
        if _like is not None:
            shape, dtype = _like.shape, _like.dtype
        else:
            # the shape and dtype rules are functions of the inputs' shapes and dtypes (and
            # of the attributes): without attributes, their answers are remembered by rule
            # and inputs (tracing and autodiff ask the same few questions over and over)
            asked = None
            if not attrs:
                if len(nodes) == 2:
                    a, b = nodes
                    asked = (spec.shape, spec.dtype, a.shape, a.dtype, b.shape, b.dtype)
                elif len(nodes) == 1:
                    a = nodes[0]
                    asked = (spec.shape, spec.dtype, a.shape, a.dtype)
            answer = _RULED.get(asked) if asked is not None else None
            if answer is not None:
                shape, dtype = answer
            else:
                shape = tuple(spec.shape([n.shape for n in nodes], **attrs))
                dtype = spec.dtype([n.dtype for n in nodes], **attrs)
                if asked is not None:
                    _RULED[asked] = (shape, dtype)
        all_nodes = self.nodes
        node = Node(self, len(all_nodes), op, nodes, attrs, shape, dtype, src or self.src, self.tag)
        all_nodes.append(node)
        interned.setdefault(key, node)
        return node

    def _rewrite(self, spec, nodes, attrs) -> Node | None:
        if "fold" in self.rules and nodes and spec.fold and _all_const(nodes):
            # evaluate now, with the same numpy call the generated code would make
            with np.errstate(all="ignore"):
                value = np.asarray(spec.eval(*(n.value for n in nodes), **attrs))
            shape = tuple(spec.shape([n.shape for n in nodes], **attrs))
            dtype = spec.dtype([n.dtype for n in nodes], **attrs)
            flat = value.reshape(-1)
            if flat.size > 1 and np.all(flat == flat[0]):
                # a uniform array stays a broadcast scalar: cheap, and free of sizes
                return self.apply("broadcast_to", self.const(flat[0], dtype), shape=shape)
            if flat.size > FOLD_MAX_ELEMENTS or any(n.name for n in nodes):
                return None  # keep `-0.5 * Y` readable rather than a new block of data
            return self.const(np.broadcast_to(value, shape), dtype)
        if "fuse" in self.rules:
            for fusion in ops.FUSIONS.get(spec.name, ()):
                fused = fusion(*nodes, **attrs)
                if fused is not None:
                    return fused
        if "simplify" in self.rules:
            stripped = ops.strip_broadcasts(spec, nodes) if _any_broadcast(nodes) else None
            if stripped is not None:
                return self.apply(spec.name, *stripped, **attrs)
            if spec.simplify:
                return spec.simplify(*nodes, **attrs)
        return None

    def copy_of(self, node: Node, inputs: tuple) -> Node:
        """`node` again in this graph over `inputs`, its shape and dtype kept as they are
        (no rule runs, nothing is interned)."""
        out = Node(
            self,
            len(self.nodes),
            node.op,
            inputs,
            node.attrs,
            node.shape,
            node.dtype,
            node.src,
            node.tag,
        )
        self.nodes.append(out)
        return out

    def discard(self, node: Node) -> None:
        """Take back the node added last, which nothing reads (autodiff keeps the scatters
        that VJP rules make as parts, to meet in one array)."""
        if not self.nodes or self.nodes[-1] is not node:
            raise ValueError(f"%{node.id} is not the last node of its graph")
        self.nodes.pop()
        key = _key(node.op, node.inputs, node.attrs)
        if self._interned.get(key) is node:
            del self._interned[key]

    def _new(self, op, inputs, attrs, shape, dtype, src, value=None) -> Node:
        node = Node(self, len(self.nodes), op, inputs, attrs, shape, dtype, src, self.tag, value)
        self.nodes.append(node)
        return node

    def live_ids(self) -> set[int]:
        """Ids of the nodes the outputs depend on."""
        # one sweep from the last node back: nodes come after their inputs
        keep = {o.id for o in self.outputs}
        add = keep.add
        for node in reversed(self.nodes):
            if node.id in keep:
                for i in node.inputs:
                    add(i.id)
        return keep

    def live_nodes(self) -> list[Node]:
        """The nodes the outputs depend on, in topological order (params always kept)."""
        keep = self.live_ids()  # (a new set: extended in place)
        keep.update([p.id for p in self.params])
        return [n for n in self.nodes if n.id in keep]


# Values that are not arrays: a region's results together ("tuple"), and what a region
# saves for its backward pass ("tape": a list of what each iteration saved, or one tuple).
OPAQUE = ("tuple", "tape")
NUMPY_DTYPES = {"f64": np.float64, "f32": np.float32, "bool": np.bool_, "i64": np.int64}
_ITEMSIZE = {name: np.dtype(t).itemsize for name, t in NUMPY_DTYPES.items()}


def nbytes(node: Node) -> int:
    """The bytes of a node's value as an array."""
    shape = node.shape
    return (math.prod(shape) if shape else 1) * _ITEMSIZE.get(node.dtype, 8)


def dtype_of(arr: np.ndarray) -> str:
    """The IR dtype name of a numpy array."""
    if arr.dtype == np.float32:
        return "f32"
    if arr.dtype == np.bool_:
        return "bool"
    if np.issubdtype(arr.dtype, np.integer):
        return "i64"
    return "f64"


def type_str(node: Node) -> str:
    return f"{node.dtype}[{','.join(str(d) for d in node.shape)}]"


def format_graph(graph: Graph, title: str = "", indent: str = "") -> str:
    """The printed form, one node a line: `name:f64[3] = op in1 in2 {attrs}  # file:line`.

    A region's bodies (graph attributes) follow its line, indented under their names."""

    def ref(n: Node) -> str:
        if n.op == "const" and n.value.ndim == 0:
            return repr(n.value.item())
        return f"%{n.name}" if n.op == "param" else f"%{n.id}"

    lines = [title] if title else []
    params = ", ".join(f"{p.name}:{type_str(p)}" for p in graph.params)
    lines.append(f"{indent}{{ lambda {params} .")
    for node in graph.live_nodes():
        if node.op == "param" or (node.op == "const" and node.value.ndim == 0):
            continue
        if node.op == "const":
            rhs = f"const {np.array2string(node.value, threshold=6)}"
        else:
            bodies = {k: v for k, v in node.attrs.items() if _bodies(v)}
            attrs = " ".join(f"{k}={v!r}" for k, v in node.attrs.items() if k not in bodies)
            rhs = " ".join([node.op, *(ref(i) for i in node.inputs)])
            rhs += f" {{{attrs}}}" if attrs else ""
        where = f"  # {node.src}" if node.src else ""
        hint = f" ({node.name})" if node.name else ""
        lines.append(f"{indent}  %{node.id}{hint}:{type_str(node)} = {rhs}{where}")
        if node.op != "const":
            for key, value in bodies.items():
                for k, body in enumerate(_bodies(value)):
                    label = f"{key}[{k}]" if isinstance(value, tuple) else key
                    lines.append(f"{indent}    {label}:")
                    lines.append(format_graph(body, indent=indent + "    "))
    lines.append(f"{indent}  in ( {', '.join(ref(o) for o in graph.outputs)} ) }}")
    return "\n".join(lines)


def _bodies(value: Any) -> list[Graph]:
    """The graphs in an attribute value: a region's bodies."""
    if isinstance(value, Graph):
        return [value]
    if isinstance(value, tuple) and value and all(isinstance(v, Graph) for v in value):
        return list(value)
    return []


def evaluate(
    graph: Graph, args: Sequence[Any], nodes: Iterable[Node] | None = None
) -> dict[int, Any]:
    """The reference interpreter: every live node's value, keyed by node id."""
    env: dict[int, Any] = {}
    for node in nodes if nodes is not None else graph.live_nodes():
        if node.op == "param" and node.dtype in OPAQUE:
            env[node.id] = args[node.attrs["index"]]
        elif node.op == "param":
            env[node.id] = np.asarray(args[node.attrs["index"]], dtype=NUMPY_DTYPES[node.dtype])
        elif node.op == "const":
            env[node.id] = node.value
        else:
            spec = ops.OPS[node.op]
            with np.errstate(all="ignore"):
                value = spec.eval(*(env[i.id] for i in node.inputs), **node.attrs)
            env[node.id] = value if node.dtype in OPAQUE else np.asarray(value)
    return env


def run(graph: Graph, *args: Any) -> list[Any]:
    """Evaluate the graph's outputs at `args` with numpy."""
    env = evaluate(graph, args)
    return [env[o.id] for o in graph.outputs]


def replay(
    graph: Graph,
    rules: Iterable[str] = (),
    dce: bool = False,
    substitute: Callable[[Node, dict[int, Node], Graph], Node | None] | None = None,
    constants: dict[Any, Any] | None = None,
    settled: Callable[[Node], bool] | None = None,
) -> Graph:
    """A copy of the graph rebuilt through `apply` with construction-time `rules` on.

    Old nodes map one to one onto new ones (or onto what a rule rewrote them to), so
    sharing already present is kept; `dce` drops the nodes the outputs do not need;
    `substitute(node, env, new)` may build a node's replacement itself (env maps old ids
    to new nodes); `constants` turns the parameters it names (or whose ids it holds) into
    those constant values.
    `settled(node)` says a node was optimized already: the rules are not tried on it again
    unless the rebuilt graph differs from the old one within `ops.RULE_DEPTH` levels below
    it (deeper than any rule looks); otherwise it is copied, keeping its shape and dtype.
    It still takes part in CSE.
    """
    new = Graph()
    new.float_dtype = graph.float_dtype
    new.rules = frozenset(rules)
    env: dict[int, Node] = {}
    copy = not rules and substitute is None
    intern = "intern" in new.rules
    depth = ops.RULE_DEPTH
    same: set[int] = set()  # old nodes whose whole subgraph is rebuilt exactly as it was
    # old node -> levels below its new node where the rebuilt graph first differs from the
    # old one, for nodes that are plain copies of the old one at their own level (absent,
    # and not in `same`: it differs at the node itself)
    below: dict[int, int] = {}
    # parameters in the order of `graph.params` (a region body's are positional)
    early: dict[int, Node] = {}
    for p in graph.params:
        if constants and p.id in constants:  # a body's parameter: kept (unread) in its place
            new.param(p.name, p.shape, p.dtype, p.src)
        elif not (constants and p.name in constants):
            early[p.id] = new.param(p.name, p.shape, p.dtype, p.src)
    # (hot: every node of every rebuild passes here; the copy path is written out)
    interned = new._interned
    made = new.nodes
    for node in graph.live_nodes() if dce else graph.nodes:
        op = node.op
        nid = node.id
        if op == "param" and constants and (node.name in constants or nid in constants):
            value = constants[nid] if nid in constants else constants[node.name]
            out = new.const(np.full(node.shape, value), node.dtype)
        elif op == "param":
            out = early.get(nid) or new.param(node.name, node.shape, node.dtype, node.src)
            same.add(nid)
        elif op == "const":
            out = new.const(node.value, node.dtype)
            same.add(nid)
        else:
            near = None  # levels down to the nearest difference; None: none, or not settled
            if not copy and settled is not None and settled(node):
                near = 0
                for i in node.inputs:
                    iid = i.id
                    if iid not in same:
                        d = below.get(iid, 0) + 1
                        near = d if near == 0 or d < near else near
            if copy or (near is not None and (near == 0 or near > depth)):
                # no rule could see a difference: keep the shape and dtype worked out
                old = node.inputs
                if len(old) == 2:
                    inputs = (env[old[0].id], env[old[1].id])
                elif len(old) == 1:
                    inputs = (env[old[0].id],)
                else:
                    inputs = tuple([env[i.id] for i in old])
                out = None
                if intern:
                    attrs = node.attrs
                    if attrs:
                        key = _key(op, inputs, attrs)
                    elif len(inputs) == 2:
                        key = (op, (), inputs[0].id, inputs[1].id)
                    elif len(inputs) == 1:
                        key = (op, (), inputs[0].id)
                    else:
                        key = (op, (), *[n.id for n in inputs])
                    out = interned.get(key)
                if out is None:
                    # (Graph.copy_of, inlined)
                    out = Node(
                        new,
                        len(made),
                        op,
                        inputs,
                        node.attrs,
                        node.shape,
                        node.dtype,
                        node.src,
                        node.tag,
                    )
                    made.append(out)
                    if intern:
                        interned[key] = out
                    if near:
                        below[nid] = near
                    else:
                        same.add(nid)
                # else CSE: an identical node stands in for it
            else:
                new.src, new.tag = node.src, node.tag
                out = substitute(node, env, new) if substitute is not None else None
                if out is None:
                    inputs = tuple([env[i.id] for i in node.inputs])
                    like = node  # (unless an input was rebuilt to another shape or dtype)
                    for a, b in zip(inputs, node.inputs):
                        if a.shape != b.shape or a.dtype != b.dtype:
                            like = None
                            break
                    out = new.apply(op, *inputs, _like=like, **node.attrs)
                    if near and _built_as(out, op, inputs, node.attrs):
                        below[nid] = near  # no rule fired: it differs only below
        if out.name is None and (out.op != "const" or op == "const"):
            out.name = node.name  # a value folded to a constant is not the user's global
        env[nid] = out
    new.src = new.tag = None
    new.rules = frozenset()
    new.outputs = [env[o.id] for o in graph.outputs]
    return new


def extract(graph: Graph, inputs: Sequence[Node], outputs: Sequence[Node]) -> Graph:
    """A new graph computing `outputs` from `inputs` (its parameters, in order): the nodes
    of `graph` between them, copied as they are. Autodiff cuts a region's body with it
    into the part that runs forward and the part that runs backward."""
    new = Graph()
    new.float_dtype = graph.float_dtype
    env: dict[int, Node] = {}
    for k, node in enumerate(inputs):
        p = new.param(node.name or f"in{k}", node.shape, node.dtype, node.src)
        env.setdefault(node.id, p)  # (the same node twice: the second parameter is unread)
    keep = {o.id for o in outputs}
    for node in reversed(graph.nodes):
        if node.id in keep and node.id not in env:
            keep.update(i.id for i in node.inputs)
    for node in graph.nodes:
        if node.id not in keep or node.id in env:
            continue
        if node.op == "const":
            out = new.const(node.value, node.dtype)
            out.name = out.name or node.name
        elif node.op == "param":
            raise ValueError(f"extract: parameter {node.name!r} is not among the inputs")
        else:
            inputs_ = tuple(env[i.id] for i in node.inputs)
            out = new.copy_of(node, inputs_)
            new._interned.setdefault(_key(node.op, inputs_, node.attrs), out)
            out.name = node.name
        env[node.id] = out
    new.outputs = [env[o.id] for o in outputs]
    return new


def _built_as(node: Node, op: str, inputs: tuple, attrs: dict) -> bool:
    """Whether `node` is `op(*inputs; attrs)` exactly: no rule rewrote it."""
    if node.op != op or len(node.inputs) != len(inputs) or node.attrs != attrs:
        return False
    return all(a is b for a, b in zip(node.inputs, inputs))


# The op table reads this module's dtypes; imported last, after they exist.
from . import ops  # noqa: E402
