"""Constant folding and the ops' algebraic rewrites (x*1 -> x, -(-x) -> x, ...).

The rewrites themselves stand beside their ops (`simplify=` in the op table); this pass
rebuilds the graph with them switched on. Rebuilding bottom-up means every node is
rewritten after its inputs, so one sweep reaches a fixed point for these local rules.
"""

from __future__ import annotations

from ..ir import Graph, replay


def run(graph: Graph) -> Graph:
    return replay(graph, rewrite=True)
