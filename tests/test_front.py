"""Python programs as written: lists and tuples of traced scalars and numbers passed to
numpy functions, and writes into a parameter (on a copy: the caller's array is kept)."""

from __future__ import annotations

import math

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


def test_math_and_builtins_trace_and_are_restored(tmp_path):
    path = write_source(
        tmp_path,
        """
        import math
        from math import exp
        import numpy as np

        def f(a, b):
            return max(a, b) + min(a * a, 1.0) + math.log(exp(a) + 1.0, 2.0) + math.pi
        """,
    )
    compiled, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports), reports
    assert_ir_matches(compiled, module)
    # a tie splits the gradient, as np.maximum's does
    _, (g_a, g_b) = module.f_value_and_grad(0.5, 0.5)
    assert g_a - 2 * 0.5 - np.exp(0.5) / (np.exp(0.5) + 1.0) / np.log(2.0) == pytest.approx(0.5)
    assert g_b == pytest.approx(0.5)
    # after tracing, the user's module has its own names back
    namespace = compiled.functions[0].spec.fn.__globals__
    assert namespace["math"] is math and namespace["exp"] is math.exp
    assert "max" not in namespace and "min" not in namespace


def test_floor_divide_and_fmax_match_numpy(tmp_path):
    path = write_source(
        tmp_path,
        """
        import numpy as np

        def f(x: "f64[3]"):
            return x // 0.1 + np.fmax(x, np.array([np.nan, 0.5, np.nan])) + x % 0.1
        """,
    )
    compiled, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports), reports
    x = np.array([1.0, 0.3, -0.7])
    np.testing.assert_array_equal(
        module.f(x), x // 0.1 + np.fmax(x, [np.nan, 0.5, np.nan]) + x % 0.1
    )
    _, (g,) = module.f_vjp(x, np.ones(3))
    np.testing.assert_array_equal(g, [2.0, 1.0, 2.0])  # fmax's NaN loses: x wins


def test_sort_in_place_and_real_as_a_view(tmp_path):
    path = write_source(
        tmp_path,
        """
        import numpy as np

        def f(x: "f64[4]"):
            z = np.zeros(4)
            r = np.real(z)
            z[0] = x[0]
            x.sort()
            return x * np.arange(4.0) + r
        """,
    )
    compiled, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports), reports
    (note,) = compiled.functions[0].forward.notes
    assert "expr.py:7" in note and "writes into its parameter 'x'" in note
    x = np.array([3.0, -1.0, 2.0, 0.5])
    np.testing.assert_array_equal(module.f(x), np.sort(x) * np.arange(4.0) + [3.0, 0, 0, 0])
    np.testing.assert_array_equal(x, [3.0, -1.0, 2.0, 0.5])  # the caller's array as it was


def test_masked_assignment_is_a_where(tmp_path):
    path = write_source(
        tmp_path,
        """
        import numpy as np

        def f(x: "f64[4]", a):
            y = x * 2.0
            y[y < 0] = a
            return y
        """,
    )
    compiled, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports), reports
    value, (g_x, g_a) = module.f_vjp(np.array([1.0, -1.0, -2.0, 3.0]), 7.0, np.ones(4))
    np.testing.assert_array_equal(value, [2.0, 7.0, 7.0, 6.0])
    np.testing.assert_array_equal(g_x, [2.0, 0.0, 0.0, 2.0])
    assert g_a == 2.0
