"""The supported numpy surface, as the markdown table the README carries.

Generated from the op table, so it cannot drift: `python -m codegen.surface` prints it,
and a test checks that README.md holds exactly this text.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from . import ops
from .trace import METHODS, PROPERTIES

OPERATORS = {
    "add": "`+`",
    "sub": "`-`",
    "mul": "`*`",
    "div": "`/`",
    "pow": "`**`",
    "neg": "unary `-`",
    "abs": "`abs()`",
    "gt": "`>`",
    "ge": "`>=`",
    "lt": "`<`",
    "le": "`<=`",
    "eq": "`==`",
    "ne": "`!=`",
    "matmul": "`@`",
    "index": "`x[...]`",
    "remainder": "`%`",
    "floor_divide": "`//`",
    "divmod": "`divmod()`",
    "bitwise_and": "`&` (masks)",
    "bitwise_or": "`|` (masks)",
    "bitwise_xor": "`^` (masks)",
    "invert": "`~` (masks)",
}


# ops of control flow, whose names are also numpy's (np.linalg.cond, np.zeros)
CONTROL_OPS = {"cond", "loop", "zeros", "part", "accumulate"}


def _op_of(fn) -> str | None:
    """The op a numpy callable traces to, when its front names one directly."""
    front = ops.NUMPY[fn]
    for cell in front.__closure__ or ():
        contents = cell.cell_contents
        if isinstance(contents, str) and contents in ops.OPS and contents not in CONTROL_OPS:
            return contents
    for op in ops.OPS.values():
        if op.name == getattr(fn, "__name__", None) and op.name not in CONTROL_OPS:
            return op.name
    return None


def _spelled(fn, name: str) -> str:
    """How a user writes it: np.sum, np.lib.stride_tricks.sliding_window_view, np.add.reduce."""
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, np.ufunc):
        return f"np.{owner.__name__}.{name}"
    for where, prefix in (
        (np, "np"),
        (np.linalg, "np.linalg"),
        (np.lib.stride_tricks, "np.lib.stride_tricks"),
    ):
        if getattr(where, name, None) is fn:
            return f"{prefix}.{name}"
    return f"np.{name}"


def table() -> str:
    """One row per numpy callable group, with the array methods that reach it."""
    rows: dict[str, list[str]] = defaultdict(list)
    for fn in ops.NUMPY:
        name = getattr(fn, "__name__", str(fn))
        rows[_op_of(fn) or name].append(f"`{_spelled(fn, name)}`")
    methods: dict[str, list[str]] = defaultdict(list)
    # x.sort() and x.partition() sort in place; x.astype() converts
    in_place = {"sort": np.sort, "partition": np.partition, "astype": getattr(np, "astype", None)}
    for meth, fn in [*METHODS.items(), *in_place.items()]:
        if fn is not None and fn in ops.NUMPY:
            methods[_op_of(fn) or fn.__name__].append(
                f"`.{meth}{'' if meth in PROPERTIES else '()'}`"
            )
    lines = [
        "| numpy | operators and methods | gradient |",
        "| --- | --- | --- |",
    ]
    for key in sorted(set(rows) | {k for k in OPERATORS if k in ops.OPS}):
        spec = ops.OPS.get(key) if key not in CONTROL_OPS else None
        gate = spec.gate if spec is not None else "traced into the ops of other rows"
        extra = [OPERATORS[key]] if key in OPERATORS else []
        extra += sorted(set(methods.get(key, [])))
        lines.append(
            f"| {', '.join(sorted(set(rows.get(key, [])))) or '—'} | {', '.join(extra) or '—'} | {gate} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
