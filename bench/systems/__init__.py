"""The systems the benchmark compares, one module each, and what they share.

Every system module has a ``build(case, module) -> Impl`` function, where ``case`` is the
case name (``"mlp"``) and ``module`` the loaded case file (``bench/cases/mlp.py``), whose
module-level arrays are the constants. ``build`` raises ``KeyError`` for a case the system
has no version of. Framework modules (torch, jax, autograd) import their framework at the
top, so importing the module is what fails when the framework is missing; the harness
imports them lazily, one at a time.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent.parent
CASES_DIR = BENCH / "cases"

# The order in which the cases run and appear in the results.
CASE_NAMES = (
    "neuron",
    "circuit",
    "scalar_chain",
    "element_reads",
    "mlp",
    "mlp_b1",
    "elementwise",
    "rnn",
    "convnet",
)


def _identity(args: tuple) -> tuple:
    return args


@dataclass
class Impl:
    """One system's version of one case.

    ``prepare`` turns the numpy arguments into the system's own (tensors, device arrays),
    once and outside the timed region. ``forward(*native)`` returns the value and
    ``value_and_grad(*native)`` returns ``(value, grads)`` with one gradient per
    parameter, in order; both have finished computing when they return (jax blocks).
    """

    forward: Callable[..., Any]
    value_and_grad: Callable[..., tuple[Any, tuple]]
    prepare: Callable[[tuple], tuple] = _identity
    notes: list[str] = field(default_factory=list)


def case_path(name: str) -> Path:
    """The expr file of a case: bench/cases/NAME.py."""
    return CASES_DIR / f"{name}.py"


def load_case(name: str) -> ModuleType:
    """Import bench/cases/NAME.py by path (as module ``bench_case_NAME``)."""
    return import_path(case_path(name), f"bench_case_{name}")


def import_path(path: Path, module_name: str) -> ModuleType:
    """Import a Python file by path under the given module name (re-imported each call)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
