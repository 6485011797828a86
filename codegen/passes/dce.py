"""Dead-code elimination: drop every node the outputs do not depend on.

With `--wrt`, the gradients not asked for are never outputs, so their whole backward
chains go here.
"""

from __future__ import annotations

from ..ir import Graph, replay


def run(graph: Graph) -> Graph:
    live = graph.live_ids()
    if all(n.id in live or n.op in ("param", "const") for n in graph.nodes):
        # nothing dead but constants (a seed folded away), which no stage emits unless read:
        # skip the rebuild
        return graph
    return replay(graph, dce=True)
