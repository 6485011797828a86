"""cumsum and cumprod: the op table's examples run in tests/test_ops.py; here, the
gradient of cumprod where inputs are exactly zero, against the products written out."""

from __future__ import annotations


import numpy as np
import pytest

from helpers import compile_and_check, write_expr


def _expected(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """d/dx_i of sum_j w_j prod_{k<=j} x_k, by the product rule written out."""
    n = len(x)
    return np.array(
        [
            sum(w[j] * np.prod([x[k] for k in range(j + 1) if k != i]) for j in range(i, n))
            for i in range(n)
        ]
    )


@pytest.mark.parametrize("zeros", [(), (1,), (0,), (3,), (1, 3), (0, 1), (1, 2, 3)])
def test_cumprod_gradient_is_exact_at_zeros(tmp_path, zeros):
    path = write_expr(tmp_path, "x: f64[4], w: f64[4]", "np.sum(np.cumprod(x) * w)", reduce=False)
    _, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports)
    x = np.array([2.0, -1.5, 3.0, 0.5])
    x[list(zeros)] = 0.0
    w = np.array([0.3, -1.0, 2.0, 1.5])
    _, (g_x, g_w) = module.f_value_and_grad(x, w)
    np.testing.assert_allclose(g_x, _expected(x, w), rtol=1e-14, atol=0)
    np.testing.assert_array_equal(g_w, np.cumprod(x))


def test_cumprod_along_an_axis_with_zeros(tmp_path):
    path = write_expr(tmp_path, "x: f64[3,3]", "np.sum(np.cumprod(x, axis=0) ** 2)", reduce=False)
    _, module, _ = compile_and_check(path)
    x = np.array([[1.0, 0.0, 2.0], [0.0, 3.0, -1.0], [2.0, 0.0, 0.5]])
    _, (g,) = module.f_value_and_grad(x)
    for col in range(3):
        c = x[:, col]
        want = [
            sum(
                2 * np.prod(c[: j + 1]) * np.prod([c[k] for k in range(j + 1) if k != i])
                for j in range(i, 3)
            )
            for i in range(3)
        ]
        np.testing.assert_allclose(g[:, col], want, rtol=1e-14)


def test_cumsum_flattens_without_axis(tmp_path):
    path = write_expr(tmp_path, "x: f64[2,3]", "np.cumsum(x) @ np.arange(6.0)", reduce=False)
    _, module, _ = compile_and_check(path)
    _, (g,) = module.f_value_and_grad(np.ones((2, 3)))
    want = np.array([sum(range(i, 6)) for i in range(6)], dtype=float).reshape(2, 3)
    np.testing.assert_array_equal(g, want)
