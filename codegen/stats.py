"""`--stats`: what the passes did, what the gradient costs, and what it holds in memory."""

from __future__ import annotations

from collections import Counter

from . import ops
from .pipeline import Compiled


def _kib(n: int) -> str:
    return f"{n} B" if n < 4096 else f"{n / 1024:.1f} KiB"


def format_stats(compiled: Compiled) -> str:
    """A plain-text report, one block per traced function."""
    out = []
    for t in compiled.functions:
        graph = t.value_and_grad or t.vjp
        name = "value_and_grad" if t.value_and_grad is not None else "vjp"
        out.append(f"stats {t.spec.name}:")
        for which, log in t.pass_log.items():
            if log:
                steps = ", ".join(f"{p} {a}->{b}" for p, a, b in log)
                out.append(f"  passes on {which}: {steps}")
        live = [n for n in graph.live_nodes() if n.op not in ("param", "const")]
        hist = Counter(n.op for n in live)
        out.append(
            f"  {name} nodes: {len(live)}  ops: "
            + ", ".join(f"{k} {v}" for k, v in sorted(hist.items()))
        )
        fwd = sum(ops.flops(n) for n in t.optimized.live_nodes() if n.op not in ("param", "const"))
        total = sum(ops.flops(n) for n in live)
        out.append(f"  flops (estimate): forward {fwd}, {name} {total}")
        mem = compiled.memory.get(t.spec.name, {})
        saved = ", ".join(mem.get("saved for backward", [])) or "nothing"
        out.append(
            f"  saved for backward: {saved} ({_kib(mem.get('saved bytes', 0))} beyond the parameters)"
        )
        peaks = [
            f"{k.replace(' peak live bytes', '')} {_kib(v)}"
            for k, v in mem.items()
            if k.endswith("peak live bytes")
        ]
        out.append("  peak live bytes (estimate, parameters aside): " + ", ".join(peaks))
    return "\n".join(out)
