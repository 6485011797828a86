"""Algebraic simplification, exact in IEEE arithmetic up to the sign of a zero.

The rules stand beside their ops (`simplify=` in the op table): x + 0, x - 0, x * 1,
x / 1 -> x; 0 - x -> -x; x * -1 -> -x; -(-x) -> x; (-a) * b -> -(a * b); sums and
reshapes over nothing -> x. Not done, because not exact: x * 0 -> 0 (NaN, inf),
x - x -> 0 (inf), reassociation (rounding). This pass rebuilds the graph with them on;
rebuilding bottom-up rewrites each node after its inputs, so one sweep reaches the
fixed point of these local rules.
"""

from __future__ import annotations

from ..ir import Graph, replay


def run(graph: Graph) -> Graph:
    return replay(graph, {"simplify"})
