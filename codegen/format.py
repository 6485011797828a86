"""Stage 6, format: black for Python (C is emitted tidy).

Policy for very large modules: black costs about 1 ms a line here (a 6,000-line module of
an unrolled 500-step chain takes 6.5 s), so a module over BLACK_MAX_LINES lines keeps the
emitter's own layout (valid, 4-space indented, one statement a line, only long lines
unwrapped) and the command says so. GRADGEN_BLACK_MAX_LINES changes the limit.
"""

from __future__ import annotations

import os

import black

MODE = black.Mode(line_length=88)
BLACK_MAX_LINES = 20_000


def black_limit() -> int:
    return int(os.environ.get("GRADGEN_BLACK_MAX_LINES", BLACK_MAX_LINES))


def format_python(source: str) -> str:
    """The source formatted by black (deterministic for a given black release), or as
    emitted when it is longer than the limit."""
    if source.count("\n") > black_limit():
        return source
    return black.format_str(source, mode=MODE)
