"""Dead-code elimination: drop every node the outputs do not depend on.

With `--wrt`, the gradients not asked for are never outputs, so their whole backward
chains go here.
"""

from __future__ import annotations

from ..ir import Graph, replay


def run(graph: Graph) -> Graph:
    # `Graph.live_ids`' sweep from the last node back (a node is reached after every node
    # that reads it), stopped at the first dead node that is not a parameter or constant
    live = {o.id for o in graph.outputs}
    add = live.add
    for n in reversed(graph.nodes):
        if n.id in live:
            for i in n.inputs:
                add(i.id)
        elif n.op != "param" and n.op != "const":
            return replay(graph, dce=True)
    # nothing dead but constants (a seed folded away), which no stage emits unless read:
    # no rebuild
    return graph
