"""np.einsum in every form numpy takes, rewritten into the plain form `linalg` lowers
onto matmul: the sublist form (`np.einsum(a, [0, 1], b, [1, 2], [0, 2])`) becomes a
subscripts string, `...` becomes letters of its own (broadcast from the right, a length-1
axis against a longer one dropped first), and a subscript repeated within an operand
(`ii->i`, a trace `ii`) takes that operand's diagonal first.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from . import NUMPY
from .linalg import _einsum_front, _operand
from .shape import ARR

# numpy's sublist integers 0..51, as letters in the same order (so an implicit output,
# sorted, comes out as numpy sorts it)
_SUBLIST_LETTERS = string.ascii_uppercase + string.ascii_lowercase


def _from_sublists(args: tuple) -> tuple[str, list]:
    """(subscripts, operands) of the sublist form."""
    operands, parts = [], []
    rest = list(args)
    while len(rest) >= 2:
        operands.append(rest.pop(0))
        parts.append(_sublist_text(rest.pop(0)))
    out = "->" + _sublist_text(rest.pop(0)) if rest else ""
    return ",".join(parts) + out, operands


def _sublist_text(sub: Any) -> str:
    text = ""
    for s in sub:
        if s is Ellipsis:
            text += "..."
            continue
        k = int(s)
        if not 0 <= k < len(_SUBLIST_LETTERS):
            raise ValueError(f"subscript {k} is not in the range [0, 52)")
        text += _SUBLIST_LETTERS[k]
    return text


def _expand_ellipsis(spec: str, operands: list, graph) -> tuple[str, list]:
    """Letters of their own for '...', right-aligned across operands; a length-1 axis
    against a longer one is reshaped away, as broadcasting would."""
    inputs, arrow, out = spec.partition("->")
    parts = inputs.split(",")
    if "..." not in spec:
        return spec, operands
    used = set(spec) - set(".,->")
    free = [l for l in string.ascii_letters if l not in used]
    counts = [
        operands[i].ndim - len(p.replace("...", "")) if "..." in p else 0
        for i, p in enumerate(parts)
    ]
    width = max(counts)
    if width > len(free):
        raise ValueError("too many axes under '...'")
    ell = free[:width]
    sizes: dict[str, int] = {}
    for p, x, n in zip(parts, operands, counts):
        if "..." in p:
            start = p.index("...")
            for k, letter in enumerate(ell[width - n :]):
                d = x.shape[start + k]
                if d != 1:
                    if sizes.get(letter, d) != d:
                        raise ValueError("operands could not be broadcast together under '...'")
                    sizes[letter] = d
    new_parts, new_operands = [], []
    for p, x, n in zip(parts, operands, counts):
        if "..." not in p:
            new_parts.append(p)
            new_operands.append(x)
            continue
        start = p.index("...")
        letters = ell[width - n :]
        keep = [
            k
            for k, l in enumerate(letters)
            if not (x.shape[start + k] == 1 and sizes.get(l, 1) != 1)
        ]
        if len(keep) != n:  # drop broadcast axes of length 1
            shape = x.shape[:start] + tuple(x.shape[start + k] for k in keep) + x.shape[start + n :]
            x = graph.apply("reshape", x, shape=shape)
        new_parts.append(p.replace("...", "".join(letters[k] for k in keep)))
        new_operands.append(x)
    if arrow:
        out = out.replace("...", "".join(ell))
    else:  # numpy's implicit output: the '...' axes, then the letters seen once, sorted
        letters = "".join(p.replace("...", "") for p in parts)
        out = "".join(ell) + "".join(sorted(l for l in set(letters) if letters.count(l) == 1))
    return ",".join(new_parts) + "->" + out, new_operands


def _diagonals(spec: str, operands: list, graph) -> tuple[str, list]:
    """An operand with a repeated subscript becomes its diagonal over those axes."""
    inputs, arrow, out = spec.partition("->")
    parts = inputs.split(",")
    if not arrow:  # fix the implicit output before the letters move
        letters = "".join(parts)
        out = "".join(sorted(l for l in set(letters) if letters.count(l) == 1))
    for i, p in enumerate(parts):
        while len(set(p)) != len(p):
            letter = next(l for l in p if p.count(l) > 1)
            a, b = p.index(letter), p.index(letter, p.index(letter) + 1)
            x = operands[i]
            if x.shape[a] != x.shape[b]:
                raise ValueError(f"dimensions in operand {i} for subscript {letter!r} differ")
            n = x.shape[a]
            # x[..., k, ..., k, ...] for k in range(n): an integer gather on the two axes,
            # moved last as np.diagonal puts it
            rest = [k for k in range(x.ndim) if k not in (a, b)]
            order = tuple(rest + [a, b])
            moved = x if order == tuple(range(x.ndim)) else graph.apply("transpose", x, axes=order)
            idx = graph.const(np.arange(n), "i64")
            idx.name = idx.name or "IDX"
            operands[i] = graph.apply("index", moved, idx, idx, key=(Ellipsis, (ARR, 0), (ARR, 1)))
            p = "".join(p[k] for k in rest) + letter
        parts[i] = p
    return ",".join(parts) + "->" + out, operands


def _einsum_any_front(args, kwargs, tracing):
    if isinstance(args[0], str):
        spec, operands = args[0].replace(" ", ""), list(args[1:])
    else:
        spec, operands = _from_sublists(args)
    operands = [_operand(x, tracing) for x in operands]
    spec, operands = _expand_ellipsis(spec, operands, tracing)
    spec, operands = _diagonals(spec, operands, tracing)
    return _einsum_front((spec, *operands), kwargs, tracing)


NUMPY[np.einsum] = _einsum_any_front
