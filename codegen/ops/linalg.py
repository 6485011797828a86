"""Linear algebra: matmul, dot, outer, inner, two-operand einsum, transposes."""

from __future__ import annotations
