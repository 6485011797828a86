"""Stage 2 (trace), control flow: the hooks that `flow.py` compiled into the user's
functions, as they run while tracing.

A test on a Python value runs the statement as Python would (loops unroll, as before).
A test on a traced value traces the bodies into graphs of their own and adds a region
(`ops/control.py`) to the graph: a `cond` for `if`, a conditional expression and a
traced `and` / `or`; a `loop` for `while`. A `for` over a `range` may also become a loop,
by `--loops`: `unroll` never, `keep` always (where the body can be traced with a symbolic
counter), `auto` when unrolling would pass the code-size budget.

Values cross a region's boundary by name: the names a statement assigns and may read
afterwards are its results (a loop's carried values). A Python number that a traced
branch or loop changes becomes a traced value; one left undefined on a path stays
undefined, and using it fails with the line of the statement that left it so.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from . import flow
from .errors import GradgenError, Src
from .ir import Graph, Node
from .ops import control
from .trace import Scope, Tracer, Tracing

# `--loops auto` unrolls a `for` over a range while its body's nodes times its trip count
# stay under this (a few thousand emitted lines per function: forward, backward, API)
UNROLL_BUDGET = 1000
LOOP_MODES = ("auto", "keep", "unroll")


class Flow:
    """The control-flow hooks of one trace."""

    def __init__(self, tracing: Tracing, loops: str = "auto"):
        self.tracing = tracing
        self.loops = loops

    def hooks(self) -> dict[str, Callable]:
        return {
            flow.IF: self.if_,
            flow.WHILE: self.while_,
            flow.FOR: self.for_,
            flow.IFEXP: self.ifexp,
            flow.AND: self.and_,
            flow.OR: self.or_,
            flow.NOT: self.not_,
        }

    # ---- what is traced
    def traced(self, value: Any) -> bool:
        return isinstance(value, Tracer) and self.tracing.concrete(value._node) is None

    def _error(self, line: int, message: str, hint: str | None = None) -> GradgenError:
        return GradgenError(message, Src(self.tracing.file, line), hint)

    def predicate(self, test: Tracer, line: int, what: str) -> Node:
        node = test.node
        if node.shape:
            raise self._error(
                line,
                f"the test of the {what} is an array of shape {list(node.shape)}: a branch "
                "needs one true or false",
                "test np.all(...) or np.any(...), or choose elementwise with np.where(c, a, b)",
            )
        if node.dtype != "bool":
            node = self.tracing.apply("ne", node, 0.0)
        return node

    # ---- logic on traced values: `and` / `or` / `not`
    def and_(self, a, b):
        if not self.traced(a):
            return b() if a else a
        return self._logic("logical_and", a, b())

    def or_(self, a, b):
        if not self.traced(a):
            return a if a else b()
        return self._logic("logical_or", a, b())

    def not_(self, a):
        if not self.traced(a):
            return not a
        return self.tracing.call(np.logical_not, (a,))

    def _logic(self, name: str, a, b):
        if not isinstance(b, (Tracer, bool, int, float, np.generic)):
            raise self.tracing.error(
                f"`{'and' if name == 'logical_and' else 'or'}` between a traced test and a "
                f"{type(b).__name__}: only tests and numbers can be combined",
            )
        return self.tracing.call(getattr(np, name), (a, b))

    # ---- if / else and conditional expressions
    def ifexp(self, test, a: Callable, b: Callable, line: int):
        if not self.traced(test):
            return a() if test else b()
        pred = self.predicate(test, line, f"conditional expression at line {line}")
        (value,) = self._cond(pred, lambda: (a(),), lambda: (b(),), [], ["the value"], line)
        return value

    def if_(self, test, then, orelse, params, outs, env, line, returns):
        if not self.traced(test):
            return flow.plain_if(test, then, orelse, params, outs, env, line, returns)
        pred = self.predicate(test, line, f"if at line {line}")
        init = flow.values(env, params)
        if returns:
            (value,) = self._cond(
                pred, lambda: (then(*init),), lambda: (orelse(*init),), [], ["the result"], line
            )
            return value
        return tuple(
            self._cond(pred, lambda: then(*init), lambda: orelse(*init), params, outs, line)
        )

    def _cond(self, pred: Node, then, orelse, params, names: Sequence[str], line: int) -> list:
        sides = [self.trace_body(fn) for fn in (then, orelse)]
        (gt, st, rt), (gf, sf, rf) = sides
        results: list[Any] = []
        outputs: list[tuple[Node, Node]] = []
        slots: list[int] = []
        for k, name in enumerate(names):
            vt, vf = rt[k], rf[k]
            undefined = [isinstance(v, flow.Undefined) for v in (vt, vf)]
            if all(undefined):
                results.append(vt)
            elif any(undefined):
                branch = "else" if undefined[0] else "if"
                results.append(
                    flow.Undefined(
                        name,
                        f"{name!r} is assigned only in the {branch} branch of the `if` at line "
                        f"{line}, whose test depends on the parameters, and is used after it: "
                        "assign it on both paths (or before the if)",
                    )
                )
            elif not (self.traced(vt) or self.traced(vf)) and _same(vt, vf):
                results.append(vt)
            else:
                nt, nf = self._lift(gt, st, vt, name, line), self._lift(gf, sf, vf, name, line)
                nt, nf = self._agree(nt, nf, (gt, st), (gf, sf), name, line)
                outputs.append((nt, nf))
                slots.append(len(results))
                results.append(None)
        if not outputs:  # nothing traced comes out (a branch with only Python effects)
            return results
        gt.outputs = [t for t, _ in outputs]
        gf.outputs = [f for _, f in outputs]
        outer = _unify([st, sf])
        region = self.tracing.apply(
            "cond", pred, *outer, branches=(gt, gf), n_out=len(outputs), role="plain"
        )
        for slot, p in zip(slots, control.parts(region, gt.outputs)):
            results[slot] = self._named(p, names[slot])
        return results

    # ---- loops
    def while_(self, test, body, params, outs, env, line, brk):
        state = dict(zip(params, flow.values(env, params)))
        while True:
            c = test(*(state[p] for p in params))
            if self.traced(c):
                break
            if not c:
                return tuple(state[o] for o in outs)
            state.update(zip(outs, body(*(state[p] for p in params))))
        self._loop(test, body, params, outs, state, line, None, None)
        return tuple(state[o] for o in outs)

    def for_(self, iterable, body, params, outs, env, line, brk, pure=True):
        state = dict(zip(params, flow.values(env, params)))
        if (
            isinstance(iterable, range)
            and len(iterable)
            and self.loops != "unroll"
            and (pure or self.loops == "keep")
        ):
            if self._loop(None, body, params, outs, state, line, iterable, brk):
                return tuple(state[o] for o in outs)
        for item in iterable:
            if brk is not None and self.traced(state[brk]):
                # a break taken on a traced test: the iterations left run only if it was not
                go = self.not_(state[brk])
                results = self.if_(
                    go,
                    lambda *v, item=item: body(item, *v),
                    lambda *v: tuple(dict(zip(params, v))[o] for o in outs),
                    params,
                    outs,
                    state,
                    line,
                    False,
                )
                state.update(zip(outs, results))
                continue
            state.update(zip(outs, body(item, *(state[p] for p in params))))
            if brk is not None and not self.traced(state[brk]) and state[brk]:
                break
        return tuple(state[o] for o in outs)

    def _loop(self, test, body, params, outs, state, line, rng, brk) -> bool:
        """Trace the loop as a region; for a `for`, only if `--loops` and the cost model say
        so (False: the caller unrolls it). Updates `state` with the region's results."""
        tracing = self.tracing
        carried = [o for o in outs if self.traced(state[o]) or isinstance(state[o], Tracer)]
        retyped: dict[str, tuple[tuple, str]] = {}  # name -> (shape, dtype) to carry it as
        for _ in range(len(outs) + 2):
            try:
                attempt = self._trace_loop(
                    test, body, params, outs, state, carried, retyped, rng, brk
                )
            except (GradgenError, TypeError, IndexError, ValueError, NameError):
                if rng is not None and self.loops != "keep":
                    return False  # (the counter used as a Python int: unrolled instead)
                raise
            grown = attempt.pop("grow")
            if not grown:
                break
            for name, kind in grown.items():
                if name not in carried:
                    carried.append(name)
                retyped[name] = kind
        else:  # pragma: no cover (each round carries one more name or retypes one)
            raise self._error(line, "the loop's values do not settle to fixed types")
        body_graph, cond_graph = attempt["body"], attempt["cond"]
        if rng is not None and self.loops == "auto":
            touches = attempt["scope"].outer or carried
            if not touches or len(rng) * _size(body_graph) <= UNROLL_BUDGET:
                return False
        outer = _unify([attempt["scope"], *([attempt["cond_scope"]] if cond_graph else [])])
        k = len(attempt["carried"])
        inits = [attempt["init"][name] for name in attempt["carried"]]
        region = tracing.apply(
            "loop",
            *inits,
            *outer,
            body=body_graph,
            cond=cond_graph,
            count=len(rng) if rng is not None else None,
            carried=k,
            role="plain",
        )
        for name, p in zip(attempt["carried"], control.parts(region, body_graph.outputs)):
            state[name] = self._named(p, name)
        return True

    def _trace_loop(self, test, body, params, outs, state, carried, retyped, rng, brk) -> dict:
        tracing = self.tracing
        graph = Graph()
        graph.float_dtype = tracing.graph.float_dtype
        i = graph.param("i", (), "i64")
        init: dict[str, Node] = {}
        values: dict[str, Any] = dict(state)
        for name in [o for o in outs if o in carried]:  # (in the order of the results)
            node = self._init_node(state[name], retyped.get(name))
            init[name] = node
            values[name] = Tracer(graph.param(name, node.shape, node.dtype), tracing)
        scope = Scope(graph)
        with _entered(tracing, scope):
            counter = Tracer(i, tracing)
            if rng is not None and (rng.start, rng.step) != (0, 1):
                counter = counter * rng.step + rng.start
            args = [values[p] for p in params]
            results = body(*((counter,) if rng is not None else ()), *args)
            out = dict(zip(outs, results))
            grow: dict[str, tuple[tuple, str]] = {}
            nodes = []
            for name in outs:
                v = out[name]
                if name in init:
                    node = self._lift(graph, scope, v, name, None)
                    want = init[name]
                    if node.shape != want.shape or node.dtype != want.dtype:
                        if node.shape != want.shape and not (
                            want.shape == () and name not in retyped
                        ):
                            raise GradgenError(
                                f"{name!r} changes from {_kind(want)} to {_kind(node)} in the "
                                "loop, whose test or count depends on the parameters",
                                tracing.src(),
                                f"give {name} its final shape before the loop (np.zeros(...))",
                            )
                        grow[name] = (node.shape, _wider(node.dtype, want.dtype))
                        continue
                    nodes.append(node)
                elif isinstance(v, flow.Undefined) and isinstance(state[name], flow.Undefined):
                    continue
                elif self.traced(v) or (isinstance(v, Tracer) and v is not state[name]):
                    grow[name] = (v.node.shape, v.node.dtype)
                elif not _same(v, state[name]):
                    if isinstance(v, (bool, int, float, np.number)):
                        node = tracing.graph.const(np.asarray(v))
                        grow[name] = (node.shape, node.dtype)
                    else:
                        raise GradgenError(
                            f"{name!r} (a {type(v).__name__}) changes in a loop whose test or "
                            "count depends on the parameters: only arrays and numbers can",
                            tracing.src(),
                        )
            if grow:
                return {"grow": grow}
            graph.outputs = nodes
            cond_graph = cond_scope = None
            if test is not None or (brk is not None and brk in init):
                cond_graph = Graph()
                cond_graph.float_dtype = graph.float_dtype
                cond_graph.param("i", (), "i64")
                cvalues = dict(values)
                for name in init:
                    p = cond_graph.param(name, init[name].shape, init[name].dtype)
                    cvalues[name] = Tracer(p, tracing)
                cond_scope = Scope(cond_graph)
        if cond_graph is not None:
            with _entered(tracing, cond_scope):
                if test is not None:
                    c = test(*(cvalues[p] for p in params))
                else:
                    c = self.not_(cvalues[brk])
                cnode = self._lift(cond_graph, cond_scope, c, "test", None)
                if cnode.dtype != "bool":
                    cnode = cond_graph.apply("ne", cnode, 0.0)
                cond_graph.outputs = [cnode]
        return {
            "grow": None,
            "body": graph,
            "cond": cond_graph,
            "scope": scope,
            "cond_scope": cond_scope,
            "carried": [n for n in outs if n in init],
            "init": init,
        }

    def _init_node(self, value: Any, kind: tuple | None) -> Node:
        """The node a carried value enters the loop as, in the enclosing graph."""
        tracing = self.tracing
        if isinstance(value, flow.Undefined):  # a per-iteration temporary: never read
            shape, dtype = kind
            node = tracing.graph.const(0.0, dtype)
            return tracing.apply("broadcast_to", node, shape=shape) if shape else node
        if isinstance(value, Tracer):
            node = value.node
        else:
            node = tracing.graph.const(np.asarray(value), None)
            if kind is None and node.dtype == "f64" and tracing.graph.float_dtype == "f32":
                node = tracing.graph.const(np.asarray(value), "f32")
        if kind is not None:
            shape, dtype = kind
            if node.dtype != dtype:
                node = tracing.apply("astype", node, dtype=dtype)
            if node.shape != shape:
                node = tracing.apply("broadcast_to", node, shape=shape)
        return node

    # ---- bodies
    def trace_body(self, fn: Callable) -> tuple[Graph, Scope, Any]:
        """Run `fn()` with a new graph as the one being built: (graph, scope, result)."""
        graph = Graph()
        graph.float_dtype = self.tracing.graph.float_dtype
        scope = Scope(graph)
        with _entered(self.tracing, scope):
            result = fn()
        return graph, scope, result

    def _lift(self, graph: Graph, scope: Scope, value: Any, name: str, line: int | None) -> Node:
        """A body's result as a node of its graph."""
        tracing = self.tracing
        with _entered(tracing, scope):
            if isinstance(value, Tracer):
                return value.node
            if isinstance(value, (bool, int, float, np.number)) or (
                isinstance(value, np.ndarray) and value.dtype.kind in "biuf"
            ):
                arr = np.asarray(value)
                dtype = "bool" if arr.dtype == np.bool_ else None
                if arr.dtype.kind in "iu":
                    dtype = "i64"
                return graph.const(arr, dtype)
        where = f" at line {line}" if line else ""
        raise GradgenError(
            f"{name!r} is a {type(value).__name__} after a branch or loop{where} whose test "
            "depends on the parameters: only arrays and numbers can differ between its paths",
            Src(tracing.file, line) if line else tracing.src(),
        )

    def _agree(self, a: Node, b: Node, sa, sb, name: str, line: int) -> tuple[Node, Node]:
        """The two branches' values of `name` with one shape and dtype."""
        if a.dtype != b.dtype:
            kind = _wider(a.dtype, b.dtype)
            a = self._in_body(sa, "astype", a, dtype=kind) if a.dtype != kind else a
            b = self._in_body(sb, "astype", b, dtype=kind) if b.dtype != kind else b
        if a.shape != b.shape:
            try:
                shape = tuple(np.broadcast_shapes(a.shape, b.shape))
            except ValueError:
                shape = None
            if shape is None or (shape != a.shape and shape != b.shape):
                raise self._error(
                    line,
                    f"{name!r} is {_kind(a)} in the if branch and {_kind(b)} in the else branch "
                    f"of the `if` at line {line}, whose test depends on the parameters",
                    "give it the same shape on both paths",
                )
            a = self._in_body(sa, "broadcast_to", a, shape=shape) if a.shape != shape else a
            b = self._in_body(sb, "broadcast_to", b, shape=shape) if b.shape != shape else b
        return a, b

    def _in_body(self, side: tuple[Graph, Scope], op: str, node: Node, **attrs) -> Node:
        """`op(node)` added to a branch's graph after it was traced."""
        graph, scope = side
        with _entered(self.tracing, scope):
            return graph.apply(op, node, **attrs)

    def _named(self, node: Node, name: str) -> Tracer:
        if not name.startswith("__gg_") and " " not in name:
            node.name = node.name or name
        return Tracer(node, self.tracing)


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, (bool, int, float, str, np.number)) and type(a) is type(b):
        try:
            return bool(a == b)
        except Exception:  # pragma: no cover
            return False
    return False


def _wider(a: str, b: str) -> str:
    order = ["bool", "i64", "f32", "f64"]
    return max(a, b, key=order.index)


def _kind(node: Node) -> str:
    return f"{node.dtype}[{','.join(map(str, node.shape))}]"


def _size(graph: Graph) -> int:
    """The nodes of a body, its regions' bodies included."""
    total = 0
    for node in graph.nodes:
        if node.op in ("param", "const"):
            continue
        total += 1
        for value in node.attrs.values():
            for body in value if isinstance(value, tuple) else (value,):
                if isinstance(body, Graph):
                    total += _size(body)
    return total


def _unify(scopes: Sequence[Scope]) -> list[Node]:
    """The enclosing values the bodies read, once each; every body gets a parameter for
    each, in one order, after its own parameters."""
    outer: list[Node] = []
    seen: set[int] = set()
    for s in scopes:
        for node in s.outer:
            if node.id not in seen:
                seen.add(node.id)
                outer.append(node)
    for s in scopes:
        own = [p for p in s.graph.params if not any(p is c for c in s.captured.values())]
        for node in outer:
            s.capture(node)
        s.graph.params = own + [s.captured[n.id] for n in outer]
        for k, p in enumerate(s.graph.params):
            p.attrs["index"] = k
    return outer


class _entered:
    """`with _entered(tracing, scope)`: the scope's graph is the one being built."""

    def __init__(self, tracing: Tracing, scope: Scope):
        self.tracing, self.scope = tracing, scope

    def __enter__(self):
        t = self.tracing
        self.saved = (t.graph, list(t.scopes))
        if t.scopes and t.scopes[-1] is self.scope:
            return self
        t.scopes.append(self.scope)
        t.graph = self.scope.graph
        return self

    def __exit__(self, *exc):
        self.tracing.graph, self.tracing.scopes = self.saved
        return False
