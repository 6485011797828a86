"""Stage 4, passes: IR -> IR rewrites, run in the order of PIPELINE.

Each pass is a module with a pure `run(graph) -> graph` and its own tests; any of them
can be switched off (`gradgen --passes`, or GRADGEN_PASSES in the environment), and the
code stays correct, only slower and longer.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

from ..ir import Graph
from . import batch, cse, dce, fold, fuse, simplify

Pass = Callable[[Graph], Graph]

PIPELINE: list[tuple[str, Pass]] = [
    ("fold", fold.run),
    ("simplify", simplify.run),
    ("batch", batch.run),
    ("fuse", fuse.run),
    ("cse", cse.run),
    ("dce", dce.run),
]
NAMES = [name for name, _ in PIPELINE]


def parse(spec: str | None) -> list[str]:
    """`all`, `none`, or a comma list of pass names -> the enabled names."""
    if spec is None or spec.strip() == "all":
        return list(NAMES)
    if spec.strip() == "none":
        return []
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(
            f"unknown pass {', '.join(unknown)} (passes: {', '.join(NAMES)}, all, none)"
        )
    return names


def default_enabled() -> list[str]:
    """The passes on by default: all, unless GRADGEN_PASSES says otherwise."""
    return parse(os.environ.get("GRADGEN_PASSES"))


def count(graph: Graph) -> int:
    """The nodes that compute something (parameters and constants aside)."""
    return sum(1 for n in graph.nodes if n.op not in ("param", "const"))


def run_pipeline(
    graph: Graph, enabled: Sequence[str] | None = None, log: list | None = None
) -> Graph:
    """Run the passes of PIPELINE that are enabled (all by default), in order.

    `log` receives (pass name, nodes before, nodes after) for each pass run.
    """
    enabled = default_enabled() if enabled is None else enabled
    for name, run in PIPELINE:
        if name in enabled:
            before = count(graph)
            graph = run(graph)
            if log is not None:
                log.append((name, before, count(graph)))
    return graph
