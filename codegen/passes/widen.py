"""Widening: an operand that arithmetic broadcasts many times is written out once.

numpy adds two arrays of one shape about twice as fast as it broadcasts a row into an
array (`python bench/broadcast.py` gives the figures). An unrolled RNN adds its bias at
every step, so

    b_wide = np.empty(t.shape)
    b_wide[...] = b

once, and `t += b_wide` at each step. The size is read off an operand of the first step,
so that the code holds at any size of a named dim. The copy holds the same bits as the
broadcast, and only ops that are exact in IEEE arithmetic whatever their inner loop
(+ - * /, max, min, comparisons, where) are rewritten, so the results are the same bits.

A lowering: it runs on the graphs about to be emitted, after autodiff has read the
forward, so gradients are never taken through a widened copy.
"""

from __future__ import annotations

from collections import Counter

from ..ir import Graph, Node, nbytes, replay

MIN_USES = 3  # broadcasts of one operand to one shape (on one side) before it is widened
# Up to this size the copy pays back within two uses; from about 1 MiB on the arrays
# leave the cache, the copy's own reads cost as much as broadcasting saves, and the gain
# is gone (`python bench/broadcast.py`).
MAX_BYTES = 512 * 1024
# exact whatever numpy's inner loop: no SIMD approximation of a transcendental
EXACT_OPS = frozenset(
    {"add", "sub", "mul", "div", "maximum", "minimum", "gt", "ge", "lt", "le", "eq", "ne", "where"}
)


def _broadcast_operands(node: Node) -> list[Node]:
    """The operands `node` broadcasts (arrays only: a scalar is numpy's fast case), when
    another operand has the node's shape to take the size from."""
    if node.op not in EXACT_OPS or not node.shape:
        return []
    wide = [i for i in node.inputs if i.ndim and i.shape != node.shape]
    if not wide or nbytes(node) > MAX_BYTES:
        return []
    if not any(i.shape == node.shape for i in node.inputs):
        return []
    return wide


def run(graph: Graph, split: bool = True) -> Graph:
    """Widen what is broadcast MIN_USES times or more. `split`: the graph is emitted as a
    forward and a backward function, so forward and backward steps widen apart (one copy
    would otherwise be saved for backward); in one function they share a copy."""

    def _key(operand: Node, user: Node) -> tuple:
        return (operand.id, user.shape, split and user.tag is None)

    counts: Counter = Counter()
    for n in graph.nodes:
        if n.shape and n.op in EXACT_OPS:  # (scalar code: nothing to look at)
            for i in _broadcast_operands(n):
                counts[_key(i, n)] += 1
    if not any(c >= MIN_USES for c in counts.values()):
        return graph  # nothing broadcast often: skip the rebuild
    widened: dict[tuple, Node] = {}

    def substitute(node: Node, env: dict[int, Node], new: Graph) -> Node | None:
        wide = [i for i in _broadcast_operands(node) if counts[_key(i, node)] >= MIN_USES]
        if not wide:
            return None
        like = next(env[i.id] for i in node.inputs if i.shape == node.shape)
        inputs = []
        for i in node.inputs:
            key = _key(i, node)
            if i in wide and key not in widened:
                w = new.apply("widen", env[i.id], like)
                w.name = f"{i.name}_wide" if i.name else None
                widened[key] = w
            inputs.append(widened[key] if i in wide else env[i.id])
        return new.apply(node.op, *inputs, **node.attrs)

    return replay(graph, substitute=substitute)
