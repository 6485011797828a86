"""Stage 6, format: black for Python (C is emitted tidy)."""

from __future__ import annotations

import black

MODE = black.Mode(line_length=88)


def format_python(source: str) -> str:
    """The source formatted by black; deterministic for a given black release."""
    return black.format_str(source, mode=MODE)
