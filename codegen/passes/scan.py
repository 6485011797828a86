"""Scans: a long chain of scalar sums or products, unrolled from a loop, runs as one array.

Python spends about 12 ns on every scalar float operation. The backward of an unrolled
scalar loop is chains of them: the cotangent carried from step to step is a running
product (g <- g * c * (1 - t*t) * a), and every parameter's gradient a running sum
(g_a <- g_a + u * s). Such a chain, where the cost model below says it pays (from
about 150 steps of bench/cases/scalar_chain.py's step), becomes

    g_s_steps = np.empty(n)
    g_s_steps[0] = g_s
    g_s_steps[1::3] = a            # the factors of each step, interleaved
    g_s_steps[2::3] = c
    g_s_steps[3::3] = 1.0 - t * t  # t: the forward's tanh outputs, gathered
    np.multiply.accumulate(g_s_steps, out=g_s_steps)

and the values the scalar code read off the chain are its elements or strided slices.
What the chain's steps compute from other values ("packs" of isomorphic scalar nodes,
one per step) is computed once on arrays when the nodes are independent of each other
and their ops are exact (+ - *), else gathered into an array (np.fromiter).

Exact: `accumulate` runs left to right, one operation at a time, like the scalar code;
the elementwise ops are IEEE-exact in numpy as in Python; a + b and a * b commute bit
for bit. So the results are the same bits, which the tests check.

A lowering: it runs on the graphs about to be emitted, after autodiff.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..ir import Graph, Node, replay

MIN_ROWS = 16  # steps of a chain worth a look (whether it pays is for `cost` to say)
ALWAYS = False  # lower every chain found, paying or not (tests, the fuzzer, bench/scan.py)
MAX_PERIOD = 8  # links a step of a chain may span (the product above: 3)
CHAIN_OPS = {"add": "add", "mul": "multiply"}  # IR op -> the numpy ufunc that accumulates it
VECTOR_OPS = frozenset({"add", "sub", "mul", "neg"})  # exact, and the same as Python floats
FLOATS = ("f64", "f32")


@dataclass
class Chain:
    """v_{j+1} = op(v_j, f_j): `values` v_0..v_L, `factors` f_0..f_{L-1}. The links
    [start, start + length) run as one scan, whose factors repeat every `period` links
    (rows: whole periods); `pos` maps a value's id to j."""

    op: str
    values: list[Node]
    factors: list[Node]
    start: int = 0
    period: int = 1
    length: int = 0
    pos: dict[int, int] = field(default_factory=dict)

    def covers(self, node: Node) -> int | None:
        """The element of the scan holding a value after the start, or None."""
        j = self.pos.get(node.id)
        if j is None or not self.start < j <= self.start + self.length:
            return None
        return j - self.start


class _Cycle(Exception):
    """A chain's scan would need its own result: it stays scalar."""


def _chains(graph: Graph) -> list[Chain]:
    """The longest chains of scalar sums and products, each link in at most one chain."""
    depth: dict[int, int] = {}  # links of the longest chain ending at a node
    get = depth.get
    longest = 0
    for n in graph.nodes:
        op = n.op
        if (op == "add" or op == "mul") and not n.shape and n.dtype in FLOATS:
            inputs = n.inputs
            if len(inputs) != 2:
                continue
            a, b = inputs
            dtype = n.dtype
            da = get(a.id, 0) if a.op == op and a.dtype == dtype else 0
            db = get(b.id, 0) if b.op == op and b.dtype == dtype else 0
            d = depth[n.id] = 1 + (da if da > db else db)
            if d > longest:
                longest = d
    if longest <= MIN_ROWS:
        return []
    taken: set[int] = set()
    chains = []
    tails = [n for n in graph.nodes if get(n.id, 0) > MIN_ROWS]
    tails.sort(key=lambda n: -depth[n.id])
    for tail in tails:
        if tail.id in taken:
            continue
        values, factors, n = [tail], [], tail
        op = tail.op
        while True:
            # the link below: an input of the same op one link shorter, not in a chain
            a, b = n.inputs
            if a is b:
                break
            d = depth[n.id] - 1
            if a.op == op and get(a.id) == d and a.id not in taken:
                prev, factor = a, b
            elif b.op == op and get(b.id) == d and b.id not in taken:
                prev, factor = b, a
            else:
                break
            factors.append(factor)
            values.append(prev)
            n = prev
        if len(factors) < MIN_ROWS:
            continue
        values.reverse()
        factors.reverse()
        chain = Chain(op, values, factors)
        taken.update([v.id for v in values])  # (a chain refused is not tried again in parts)
        if _window(chain, graph):
            chains.append(chain)
    return chains


def _signature(n: Node) -> tuple:
    """What makes two factors alike enough to share a column: the op and inputs' ops."""
    if n.op in ("param", "const"):
        return ("leaf", n.id)
    return (n.op, n.dtype, tuple(i.id if i.op in ("param", "const") else i.op for i in n.inputs))


def _window(chain: Chain, graph: Graph) -> bool:
    """Pick the longest periodic run of links; False if it is too short."""
    # each signature as a small int, so that the runs below compare ints, not tuples
    numbers: dict[tuple, int] = {}
    sigs = [numbers.setdefault(_signature(f), len(numbers)) for f in chain.factors]
    best = (0, 0, 1, 0)  # (rows, start, period, length)
    for p in range(1, MAX_PERIOD + 1):
        if len(sigs) // p <= best[0]:
            break  # no run of a longer period can have more rows
        j = 0
        while j + p < len(sigs):
            if sigs[j] != sigs[j + p]:
                j += 1
                continue
            s = j
            while j + p < len(sigs) and sigs[j] == sigs[j + p]:
                j += 1
            if (j + p - s) // p > best[0]:
                best = ((j + p - s) // p, s, p, j + p - s)
    rows, chain.start, chain.period, chain.length = best
    if rows < MIN_ROWS:
        return False
    chain.pos = {v.id: j for j, v in enumerate(chain.values)}
    return True


def _acyclic(chain: Chain, graph: Graph) -> bool:
    """No factor of the scan is computed from a value after its start (it would need
    the scan itself)."""
    first = chain.values[chain.start + 1]
    end = chain.start + chain.length
    reached = {first.id}
    for n in graph.nodes[first.id + 1 : chain.values[end].id + 1]:
        for i in n.inputs:
            if i.id in reached:
                reached.add(n.id)
                break
    return not any(f.id in reached for f in chain.factors[chain.start : end])


def _independent(pack: tuple[Node, ...], graph: Graph) -> bool:
    """No member of the pack is computed from another.

    A walk up from the members' inputs, through nodes made after the first member (only
    those can be computed from it), each node once: it meets a member if and only if that
    member is computed from another. A pack's members are usually computed from values
    made before the chain (the forward's, for a backward chain), so the walk stops almost
    at once; at worst it visits each node between the first and the last member once."""
    ids = {n.id for n in pack}
    low = min(ids)
    seen: set[int] = set()
    stack = [i for n in pack for i in n.inputs if i.id > low]
    push = stack.append
    while stack:
        n = stack.pop()
        nid = n.id
        if nid in seen:
            continue
        if nid in ids:
            return False
        seen.add(nid)
        for i in n.inputs:
            iid = i.id
            if iid > low and iid not in seen:
                push(i)
    return True


class _Lowering:
    """The graph rebuilt with its chains' values read off scans (a scan is built when
    its first value is needed, its packs when the scan needs them)."""

    def __init__(self, graph: Graph, chains: list[Chain]):
        self.graph = graph
        self.owner = {v.id: c for c in chains for v in c.values}
        self.new = Graph()
        self.new.float_dtype = graph.float_dtype
        self.env: dict[int, Node] = {}
        self.scans: dict[int, Node] = {}  # id(chain) -> its scan node
        self.building: set[int] = set()
        self.packs: dict[tuple[int, ...], Node] = {}
        self.where: dict[int, tuple[Node, int]] = {}  # old id -> (array, element) holding it

    def run(self) -> Graph:
        for n in self.graph.params:  # first, in order: a scan may read one early
            self.value(n)
        for n in self.graph.nodes:
            self.value(n)
        new = self.new
        new.outputs = [self.env[o.id] for o in self.graph.outputs]
        return replay(new, dce=True)

    def value(self, node: Node) -> Node:
        """The new node for an old one, building inputs first (without recursion)."""
        env = self.env
        stack = [node]
        while stack:
            n = stack[-1]
            if n.id in env:
                stack.pop()
                continue
            missing = [i for i in n.inputs if i.id not in env]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            env[n.id] = self._build(n)
        return env[node.id]

    def _build(self, n: Node) -> Node:
        new = self.new
        chain = self.owner.get(n.id)
        k = chain.covers(n) if chain is not None else None
        if k is not None:
            return self._at(self.scan(chain), (k,), n)
        if n.op == "param":
            return new.param(n.name, n.shape, n.dtype, n.src)
        if n.op == "const":
            return new.const(n.value, n.dtype)
        new.src, new.tag = n.src, n.tag
        out = new.apply(n.op, *[self.env[i.id] for i in n.inputs], **n.attrs)
        out.name = n.name
        return out

    def _at(self, scan: Node, key: tuple, like: Node, tag: str | None = None) -> Node:
        """scan[key], commented as `like` (a value it stands in for) or as `tag`."""
        new = self.new
        new.src, new.tag = like.src, tag or like.tag
        out = new.apply("index", scan, key=key)
        if len(key) == 1 and isinstance(key[0], int):
            out.name = like.name
        return out

    def scan(self, chain: Chain) -> Node:
        """The scan node of a chain (built on first use)."""
        if id(chain) in self.scans:
            return self.scans[id(chain)]
        if id(chain) in self.building:
            raise _Cycle(chain)
        self.building.add(id(chain))
        start, p, length = chain.start, chain.period, chain.length
        v0 = self.value(chain.values[start])
        link = chain.values[start + 1]
        rows = -(-length // p)
        tag = f"{link.tag.split(':')[0]}: {rows} steps at once" if link.tag else None
        cols = []
        for r in range(p):
            pack = tuple(chain.factors[start + j] for j in range(r, length, p))
            cols.append(self.pack(pack, link, tag))
        new = self.new
        new.src, new.tag = link.src, tag
        out = new.apply("scan", v0, *cols, ufunc=CHAIN_OPS[chain.op], length=length)
        names = Counter(v.name for v in chain.values if v.name)
        out.name = f"{names.most_common(1)[0][0]}_steps" if names else None
        self.scans[id(chain)] = out
        self._register(out, chain.values[start : start + length + 1])
        self.building.discard(id(chain))
        return out

    def pack(self, pack: tuple[Node, ...], like: Node, tag: str | None) -> Node:
        """One array (or one scalar, when every member is the same node) of a pack."""
        key = tuple(n.id for n in pack)
        out = self.packs.get(key)
        if out is None:
            out = self._existing(pack, like, tag)
            if out is None:
                out = self._pack(pack, like, tag)
                self._register(out, pack)
            self.packs[key] = out
        return out

    def _register(self, array: Node, pack: Sequence[Node]) -> None:
        if not array.shape:  # one value for the whole pack (an op on invariants)
            return
        for k, n in enumerate(pack):
            self.where.setdefault(n.id, (array, k))

    def _existing(self, pack: tuple[Node, ...], like: Node, tag: str | None) -> Node | None:
        """The pack without new work: one value, constants, or a slice of an array made
        already (a scan, a gather, an op on packs)."""
        first = pack[0]
        if all(n is first for n in pack):
            return self.value(first)
        if all(n.op == "const" for n in pack):
            return self.new.const(np.array([n.value for n in pack]), first.dtype)
        chain = self.owner.get(first.id)
        if chain is not None and all(
            self.owner.get(n.id) is chain and chain.covers(n) is not None for n in pack
        ):
            self.scan(chain)  # values of a chain: slices of its scan
        found = [self.where.get(n.id) for n in pack]
        if any(f is None or f[0] is not found[0][0] for f in found):
            return None
        array, ks = found[0][0], [f[1] for f in found]
        if len(ks) < 2:
            return self._at(array, (ks[0],), like, tag)
        step = ks[1] - ks[0]
        if step == 0 or any(b - a != step for a, b in zip(ks, ks[1:])):
            return None
        if ks == list(range(array.shape[0])):
            return array
        stop = ks[-1] + step
        if stop < 0 or stop >= array.shape[0]:
            stop = None
        first_k = None if ks[0] == 0 and step > 0 else ks[0]
        key = ("slice", first_k, stop, None if step == 1 else step)
        return self._at(array, (key,), like, tag)

    def _made(self, pack: tuple[Node, ...], like: Node, tag: str | None) -> Node | None:
        out = self.packs.get(tuple(n.id for n in pack))
        return self._existing(pack, like, tag) if out is None else out

    def _pack(self, pack: tuple[Node, ...], like: Node, tag: str | None) -> Node:
        new = self.new
        first = pack[0]
        if (
            first.op in VECTOR_OPS
            and all(n.op == first.op and n.dtype == first.dtype for n in pack)
            and all(len(n.inputs) == len(first.inputs) for n in pack)
        ):
            operands = [tuple(n.inputs[k] for n in pack) for k in range(len(first.inputs))]
            # from arrays made already; else from new ones, when no member reads another
            # (a running sum's packs would otherwise unroll it again, step by step)
            inputs = [self._made(o, like, tag) for o in operands]
            if any(i is None for i in inputs) and _independent(pack, self.graph):
                inputs = [self.pack(o, like, tag) for o in operands]
            if all(i is not None for i in inputs):
                new.src, new.tag = like.src, tag
                return new.apply(first.op, *inputs)
        new.src, new.tag = like.src, tag
        out = new.apply("pack", *[self.value(n) for n in pack], shape=(len(pack),))
        if first.name and all(n.name == first.name for n in pack):
            out.name = f"{first.name}_steps"
        return out


# What generated Python costs, in ns: a scalar float operation; a numpy call, and each
# element it writes; accumulate's elements (sequential); a gathered element (the tuple of
# names and np.fromiter); reading one element of an array. Fitted to the timings of
# `python bench/scan.py`, which prints the model beside the clock.
SCALAR_OP, CALL, ELEMENT, ACCUMULATED, GATHERED, ELEMENT_READ = 12, 350, 1, 2, 30, 70


def cost(graph: Graph) -> float:
    """The estimated time of running a graph's nodes once, in ns (for scalar code and
    the arrays a scan makes; other arrays are left as they are, so they cancel out)."""
    total = 0.0
    for n in graph.nodes:
        if n.op in ("param", "const"):
            continue
        if not n.shape:
            total += ELEMENT_READ if any(i.shape for i in n.inputs) else SCALAR_OP
        elif n.op == "scan":
            total += CALL * (len(n.inputs) + 2) + ACCUMULATED * n.shape[0]
        elif n.op == "pack":
            total += CALL + GATHERED * len(n.inputs)
        else:
            total += CALL + ELEMENT * n.shape[0]
    return total


def _pays_roughly(chains: list[Chain], graph: Graph) -> bool:
    """The cost model read off the old graph, without building the new one: whether the
    scans would save more scalar operations than their arrays cost. It follows the
    choices `_Lowering` makes; `run` builds only what passes it, then compares the two
    graphs' costs exactly."""
    estimate = _Estimate(chains, graph)
    spent = saved = 0.0
    for c in sorted(chains, key=lambda c: c.values[c.start + 1].id):
        spent += CALL * (c.period + 2) + ACCUMULATED * (c.length + 1)
        saved += SCALAR_OP * c.length
        for r in range(c.period):
            a, b = estimate.pack(
                tuple(c.factors[c.start + j] for j in range(r, c.length, c.period))
            )
            spent, saved = spent + a, saved + b
    return spent < saved


class _Estimate:
    """What each pack would cost and save, in ns, as `_Lowering` would make it (an object,
    not closures calling each other: those would be a reference cycle holding the graph
    until the cyclic collector runs)."""

    def __init__(self, chains: list[Chain], graph: Graph):
        self.graph = graph
        self.owner = {v.id: c for c in chains for v in c.values}
        self.memo: dict[tuple[int, ...], tuple[float, float]] = {}
        self.held: set[int] = set()  # old nodes an array will hold: their packs are slices

    def cheap(self, members: tuple[Node, ...]) -> bool:
        first = members[0]
        if all(m is first for m in members) or all(m.op == "const" for m in members):
            return True
        owner = self.owner.get(first.id)  # (a value is in one chain at most)
        if owner is not None:
            # (`Chain.covers` of every member, written out)
            pos, low = owner.pos, owner.start
            high = low + owner.length
            for m in members:
                j = pos.get(m.id)
                if j is None or not low < j <= high:
                    break
            else:
                return True
        held = self.held
        return all(m.id in held for m in members)

    def pack(self, members: tuple[Node, ...]) -> tuple[float, float]:  # (spent, saved)
        key = tuple([n.id for n in members])
        memo = self.memo
        if key not in memo:
            memo[key] = (CALL, 0.0) if self.cheap(members) else self._dry(members)
            self.held.update(key)
        return memo[key]

    def _dry(self, members: tuple[Node, ...]) -> tuple[float, float]:
        first, n = members[0], len(members)
        if first.op in VECTOR_OPS and all(
            m.op == first.op and len(m.inputs) == len(first.inputs) for m in members
        ):
            operands = [tuple([m.inputs[k] for m in members]) for k in range(len(first.inputs))]
            if all(self.cheap(o) for o in operands) or _independent(members, self.graph):
                spent, saved = CALL + ELEMENT * n, SCALAR_OP * n
                for o in operands:
                    a, b = self.pack(o)
                    spent, saved = spent + a, saved + b
                return spent, saved
        return CALL + GATHERED * n, 0.0


def run(graph: Graph, split: bool = True) -> Graph:
    """Run long scalar chains as scans where the cost model says they pay (`split` does
    not matter: a scan reads only what its scalar chain read, so the forward saves
    nothing more)."""
    chains = _chains(graph)
    if not ALWAYS and not _pays_roughly(chains, graph):
        return graph
    chains = [c for c in chains if _acyclic(c, graph)]
    while chains:
        try:
            lowered = _Lowering(graph, chains).run()
        except _Cycle as cycle:
            chains = [c for c in chains if c is not cycle.args[0]]
            continue
        return lowered if ALWAYS or cost(lowered) < cost(graph) else graph
    return graph
