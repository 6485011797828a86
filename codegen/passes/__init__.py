"""Stage 4, passes: IR -> IR rewrites, run in the order of PIPELINE.

Each pass is a pure `run(graph) -> graph`. Rebuilding a graph interns nodes again, so
common subexpressions merge and dead nodes drop out of every pass's result.
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..ir import Graph
from . import simplify

Pass = Callable[[Graph], Graph]

PIPELINE: list[tuple[str, Pass]] = [
    ("simplify", simplify.run),
]


def run_pipeline(graph: Graph, enabled: Sequence[str] | None = None) -> Graph:
    """Run the passes of PIPELINE (only those named in `enabled`, when given)."""
    for name, run in PIPELINE:
        if enabled is None or name in enabled:
            graph = run(graph)
    return graph
