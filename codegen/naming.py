"""Deterministic names for generated code: the user's names first, then t0, t1, ..."""

from __future__ import annotations

import builtins
import keyword
import re

RESERVED = {"np", "math", "g", "saved", "value", "grads"} | set(keyword.kwlist) | set(dir(builtins))


class Namer:
    """Hands out unique Python identifiers; the same requests in the same order give the same names."""

    def __init__(self, taken: set[str] | None = None):
        self.taken: set[str] = set(RESERVED) | set(taken or ())
        self.temps = 0
        self._next: dict[str, int] = {}
        self._bases: dict[str, str] = {}  # hint -> its identifier form

    def claim(self, name: str) -> str:
        """Reserve a name that must be used exactly as given (a parameter)."""
        self.taken.add(name)
        return name

    def fresh(self, hint: str | None) -> str:
        """`hint` made unique (`h`, `h_1`, `h_2`, ...), or the next temporary `tN`."""
        if not hint:
            return self.temp()
        base = self._bases.get(hint)
        if base is None:
            base = re.sub(r"\W", "_", hint)
            if not base or base[0].isdigit():
                base = "v_" + base
            self._bases[hint] = base
        name, k = base, self._next.get(base, 0)
        if k:
            name = f"{base}_{k}"
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self._next[base] = k + 1  # the next request for this base starts here: O(1)
        self.taken.add(name)
        return name

    def temp(self) -> str:
        name = f"t{self.temps}"
        while name in self.taken:
            self.temps += 1
            name = f"t{self.temps}"
        self.taken.add(name)
        return name
