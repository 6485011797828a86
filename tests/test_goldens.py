"""generated/ holds the outputs of examples/: regenerating gives identical bytes."""

from __future__ import annotations

import pytest

from codegen.pipeline import compile_file
from helpers import ROOT, needs_passes

EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
@needs_passes
def test_golden_is_current(example):
    golden = ROOT / "generated" / f"{example.stem}_grad.py"
    assert golden.exists(), f"{golden} missing: run gradgen {example} to create it"
    assert compile_file(example).source == golden.read_text(), f"regenerate {golden.name}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_golden_is_black_clean(example):
    import black

    golden = ROOT / "generated" / f"{example.stem}_grad.py"
    text = golden.read_text()
    assert black.format_str(text, mode=black.Mode(line_length=88)) == text
