"""Dead-code elimination: drop every node the outputs do not depend on.

With `--wrt`, the gradients not asked for are never outputs, so their whole backward
chains go here.
"""

from __future__ import annotations

from ..ir import Graph, replay


def run(graph: Graph) -> Graph:
    return replay(graph, dce=True)
