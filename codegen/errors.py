"""The user-facing error type: one paragraph naming the user's file and line."""

from __future__ import annotations

from dataclasses import dataclass

# Exit statuses, documented in the README.
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_INTERNAL = 3


@dataclass(frozen=True)
class Src:
    """Where a value came from in the user's file."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class GradgenError(Exception):
    """A mistake in the user's input: reported as one paragraph, never a traceback."""

    def __init__(self, message: str, src: Src | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.src = src
        self.hint = hint

    def render(self) -> str:
        """The paragraph shown to the user."""
        where = f"{self.src}: " if self.src else ""
        text = f"{where}error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text
