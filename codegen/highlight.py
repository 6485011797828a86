"""Colour for `--show` on a terminal, with Pygments (the `highlight` extra).

Plain text when the output is not a terminal, when NO_COLOR is set (no-color.org), or
when Pygments is not installed: colour is a convenience, never a requirement.
"""

from __future__ import annotations

import os
from typing import IO

KINDS = ("python", "c", "ir")


def wanted(stream: IO[str]) -> bool:
    """Whether `stream` should get colour: a terminal, and NO_COLOR unset (or empty)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def highlight(text: str, kind: str, stream: IO[str]) -> str:
    """`text` (Python, C or gradgen's printed IR) with ANSI colours when `stream` wants
    them and Pygments is there; else `text` unchanged."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if not wanted(stream):
        return text
    try:
        from pygments import highlight as pygmentize
        from pygments.formatters import TerminalFormatter
        from pygments.lexers import CLexer, PythonLexer
    except ImportError:
        return text
    lexer = {"python": PythonLexer, "c": CLexer}.get(kind) or _ir_lexer()
    return pygmentize(text, lexer(), TerminalFormatter())


def _ir_lexer():
    """gradgen's printed IR: `%3 (q):f64[] = add %x %y  # circuit.py:5`."""
    from pygments.lexer import RegexLexer
    from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, Text

    class IRLexer(RegexLexer):
        name = "gradgen IR"
        tokens = {
            "root": [
                (r"#.*$", Comment),
                (r"\b(lambda|in)\b", Keyword),
                (r"%[\w]+", Name.Variable),
                (r"\([A-Za-z_]\w*\)", Name.Label),
                (r":(f64|f32|i64|bool)\[[^\]]*\]", Keyword.Type),
                (r"(?<== )[a-z_][a-z0-9_]*", Name.Function),
                (r"-?\d+(\.\d*)?(e-?\d+)?", Number),
                (r"[=.,{}()\[\]]", Punctuation),
                (r"[A-Za-z_]\w*", Name),
                (r"\s+", Text),
                (r".", Operator),
            ]
        }

    return IRLexer
