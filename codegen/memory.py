"""Memory planning over the emitted schedule: liveness, `del` at last use, `out=` reuse.

Works on statements (one named node each, in emission order) rather than on the graph,
because inlining decides which values get a name and so can be dropped or reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .ir import NUMPY_DTYPES, Node, nbytes

DEL_MIN_ELEMENTS = 256  # smaller arrays are not worth a `del` line
# Below this many bytes numpy hands out buffers from its own cache (under 1 KiB), so a new
# array costs no more than writing into an old one and the longer lines buy nothing.
# `python bench/inplace.py`: an rnn-like step written in place is 0.5% faster to 1.5% slower
# up to 1 KiB, 8 to 9% faster at 2 and 4 KiB, 6 to 12% faster beyond.
INPLACE_MIN_BYTES = 2048
# nbytes of a scalar, by dtype: the plan looks it up rather than calling nbytes on each of
# the many scalar statements of unrolled code
SCALAR_BYTES = {name: t().itemsize for name, t in NUMPY_DTYPES.items()}


def worth_a_buffer(node: Node, user: Node, fresh: bool, user_is_ufunc: bool) -> bool:
    """Whether a large new array should get a name rather than be inlined, so that its
    single user, an elementwise op, can write its result into it (out=) instead of
    allocating another: t = X @ W; t = np.add(t, b, out=t); h = np.tanh(t, out=t)."""
    return (
        fresh
        and user_is_ufunc
        and nbytes(node) >= INPLACE_MIN_BYTES
        and node.shape == user.shape
        and node.dtype == user.dtype
    )


def can_write_into(node: Node, dead: Sequence[Node], is_ufunc: bool) -> bool:
    """Whether `node`, though it has a single user, should get a line of its own so that
    it can write into the buffer of one of `dead` (new arrays it is the last to read):
    `t = np.sum(a + b)` holds three arrays at once, `a += b; t = np.sum(a)` two."""
    if not is_ufunc or nbytes(node) < INPLACE_MIN_BYTES:
        return False
    return any(d.shape == node.shape and d.dtype == node.dtype for d in dead)


@dataclass(slots=True)
class Statement:
    """One emitted assignment: the node it defines and the named nodes its text reads."""

    node: Node | None
    reads: set[int]
    direct: list[Node] = field(default_factory=list)  # named inputs passed as is (out= candidates)
    fresh: bool = False  # the node's value is a newly allocated array (a ufunc result)
    transient: int = 0  # bytes of the inlined temporaries its expression allocates
    # it writes its result into a slot of a buffer defined earlier (out=buf[k]): its value
    # is a view of that buffer, which owns the bytes
    into: Node | None = None
    # it writes a part of its node's array, which an earlier statement made (g_x[3] = v):
    # it defines nothing and allocates nothing but its temporaries
    update: bool = False


@dataclass
class Plan:
    """What the emitter does with memory, and what it costs."""

    dels: dict[int, list[Node]]  # statement index -> named arrays dead after it
    inplace: dict[int, Node]  # statement index -> the dead input whose buffer takes the result
    peak_bytes: int  # the most bytes held at once, temporaries included (parameters excluded)
    last: dict[int, int] = field(default_factory=dict)  # named node id -> last statement reading it


def plan(stmts: list[Statement], protected: set[int], ufunc_ops: set[str]) -> Plan:
    """Liveness over `stmts`; `protected` ids (parameters, saved, returned) are never touched."""
    last: dict[int, int] = {}
    for k, st in enumerate(stmts):
        for r in st.reads:
            last[r] = k
    defined = {st.node.id: st for st in stmts if st.node is not None and not st.update}
    dels: dict[int, list[Node]] = {}
    inplace: dict[int, Node] = {}
    live = 0  # bytes of the named, non-parameter arrays alive after each statement
    peak = 0
    get_defined = defined.get
    scalar_bytes = SCALAR_BYTES
    for k, st in enumerate(stmts):
        node = st.node
        handed_on = None  # the dead input whose buffer lives on as this statement's result
        if node is not None and not st.update:
            size = nbytes(node) if node.shape else scalar_bytes.get(node.dtype, 8)
            if st.into is None and size >= INPLACE_MIN_BYTES and node.op in ufunc_ops:
                free = [
                    cand
                    for cand in st.direct
                    if (src := get_defined(cand.id)) is not None
                    and src.fresh
                    and cand.id not in protected
                    and last.get(cand.id) == k
                    and cand.shape == node.shape
                    and cand.dtype == node.dtype
                ]
                if free:
                    # a buffer of the result's own kind (a temporary for a temporary, g_h
                    # for g_h) lets the result keep its name: `t *= g_h`, not
                    # `t = np.multiply(g_h, t, out=g_h)`
                    kind = (node.name, node.tag is not None)
                    cand = next((c for c in free if (c.name, c.tag is not None) == kind), free[0])
                    inplace[k] = cand
                    handed_on = cand.id
                    st.fresh = True  # it owns the buffer it writes
            if handed_on is None and st.into is None:  # (a view has no bytes of its own)
                live += size
        if live + st.transient > peak:
            peak = live + st.transient
        for r in st.reads:
            if last[r] != k or r == handed_on or r in protected:
                continue
            dead = get_defined(r)
            if dead is None or dead.into is not None:
                continue
            dead_node = dead.node
            if dead_node.shape != () and dead_node.size >= DEL_MIN_ELEMENTS:
                dels.setdefault(k, []).append(dead_node)
            live -= nbytes(dead_node) if dead_node.shape else scalar_bytes.get(dead_node.dtype, 8)
    return Plan(dels, inplace, peak, last)
