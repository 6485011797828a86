"""Pattern fusion: recognize compositions whose gradient reads the forward result.

The patterns stand beside the fused op (`fuses=` in the op table): 1 / (1 + exp(-x))
becomes sigmoid(x), whose local gradient is s * (1 - s) from its own output, as in the
classic flat backprop. Run before autodiff, so the backward pass sees the fused op.
"""

from __future__ import annotations

from ..ir import Graph, replay


def run(graph: Graph) -> Graph:
    return replay(graph, {"fuse"})
