"""Python programs as written: lists and tuples of traced scalars and numbers passed to
numpy functions, and writes into a parameter (on a copy: the caller's array is kept)."""

from __future__ import annotations

import numpy as np
import pytest

from codegen.pipeline import compile_file
from helpers import assert_ir_matches, compile_and_check, write_source


@pytest.mark.parametrize(
    "expr",
    [
        "np.sum([1.0, a * a, 2])",
        "np.mean((a, 3.0)) * np.prod([[a, 1.0], [2.0, np.sin(a)]])",
        "np.max([a, 0.5, -a]) + np.linalg.norm([a, 2.0])",
        "np.dot([a, 1.0], [2.0, a]) + np.sum(x * [1.0, a, 2.0])",
    ],
)
def test_lists_of_traced_scalars(tmp_path, expr):
    path = write_source(
        tmp_path,
        f"""
        import numpy as np

        def f(a, x: "f64[3]"):
            return {expr}
        """,
    )
    compiled, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports), reports
    assert_ir_matches(compiled, module)


def test_writing_into_a_parameter_works_on_a_copy(tmp_path):
    path = write_source(
        tmp_path,
        """
        import numpy as np

        def f(x: "f64[4]", a):
            x[1] = a * a
            x[2:] += a
            x *= 2.0
            return np.sum(x * x)
        """,
    )
    compiled, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports), reports
    (note,) = compiled.functions[0].forward.notes
    assert "expr.py:4" in note and "writes into its parameter 'x'" in note
    assert "caller's array is not modified" in note
    x = np.arange(4.0)
    _, (g_x, g_a) = module.f_value_and_grad(x, 0.5)
    np.testing.assert_array_equal(x, np.arange(4.0))  # the caller's array as it was
    # f = 4 (x0^2 + a^4 + (x2 + a)^2 + (x3 + a)^2) at x = 0, 1, 2, 3 and a = 0.5
    np.testing.assert_allclose(g_x, [0.0, 0.0, 20.0, 28.0])
    assert g_a == pytest.approx(4 * (4 * 0.125 + 2 * 2.5 + 2 * 3.5))


def test_no_note_without_writes(tmp_path):
    path = write_source(
        tmp_path, 'import numpy as np\n\ndef f(x: "f64[2]"):\n    return np.sum(x)\n'
    )
    assert compile_file(path).functions[0].forward.notes == []
