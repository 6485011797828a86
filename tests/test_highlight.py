"""--show's colour: ANSI codes on a terminal with Pygments, plain text when piped, with
NO_COLOR set, or without Pygments."""

from __future__ import annotations

import io
import sys

import pytest

from codegen import highlight

CODE = "def f(x):\n    return x * 2.0  # mul\n"
IR = "{ lambda x:f64[] .\n  %3 (q):f64[] = add %x %x  # e.py:5\n  in ( %3 ) }\n"
C_CODE = (
    "int f(double x, double *restrict out) {\n    *out = x * 2.0; /* mul */\n    return 0;\n}\n"
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("text, kind", [(CODE, "python"), (IR, "ir"), (C_CODE, "c")])
def test_terminal_gets_colour(text, kind, monkeypatch):
    pytest.importorskip("pygments")
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = highlight.highlight(text, kind, Terminal())
    assert "\x1b[" in out
    assert _strip(out) == text


def test_pipe_is_plain(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert highlight.highlight(CODE, "python", io.StringIO()) == CODE


def test_no_color_is_plain(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert highlight.highlight(CODE, "python", Terminal()) == CODE


def test_without_pygments_is_plain(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setitem(sys.modules, "pygments", None)  # import pygments fails
    assert highlight.highlight(CODE, "python", Terminal()) == CODE


def _strip(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
