"""Memory planning in the emitted code: del at last use, out= into dead buffers, figures."""

from __future__ import annotations

import numpy as np

from codegen.stats import format_stats
from helpers import compile_and_check, write_source, needs_passes

ELEMENTWISE = """
import numpy as np


def ew(x: "f64[100000]"):
    return np.sum(np.tanh(x) * np.exp(-x * x) + np.sin(x))
"""


def test_large_arrays_are_dropped_and_reused(tmp_path):
    compiled, module, reports = compile_and_check(write_source(tmp_path, ELEMENTWISE))
    assert all(r.ok for r in reports)
    src = compiled.source
    assert "del " in src
    assert ", out=" in src
    x = np.linspace(-2, 2, 100000)
    value, (g,) = module.ew_value_and_grad(x)
    t = np.tanh(x)
    e = np.exp(-x * x)
    np.testing.assert_allclose(
        g, (1 - t * t) * e - 2 * x * t * e + np.cos(x), rtol=1e-9, atol=1e-15
    )
    assert not np.shares_memory(g, x)


def test_small_code_has_no_memory_lines(tmp_path):
    src = write_source(
        tmp_path, 'import numpy as np\n\ndef f(x: "f64[5]"):\n    return np.sum(np.tanh(x) * x)\n'
    )
    compiled, _, _ = compile_and_check(src)
    assert "del " not in compiled.source and "out=" not in compiled.source


@needs_passes
def test_stats_report(tmp_path):
    compiled, _, _ = compile_and_check(write_source(tmp_path, ELEMENTWISE))
    text = format_stats(compiled)
    assert "passes on value_and_grad: fold" in text
    assert "flops (estimate): forward" in text
    assert "saved for backward: x, " in text
    assert "peak live bytes" in text
    assert compiled.memory["ew"]["value_and_grad peak live bytes"] > 0


VIEW_THEN_REUSE = """
import numpy as np


def f(x: "f64[100,100]"):
    a = x * 2.0
    v = a[0:50]
    w = v * v
    b = np.exp(a)
    return np.sum(b) + np.sum(w) + np.sum(v)
"""


def test_no_out_into_a_buffer_a_view_still_reads(tmp_path):
    """Regression: `b = np.exp(a, out=a)` while `v = a[0:50]` is still read."""
    compiled, module, reports = compile_and_check(write_source(tmp_path, VIEW_THEN_REUSE))
    assert all(r.ok for r in reports)  # a large |f| (1e5) must not fail a right gradient
    assert "out=a)" not in compiled.source
