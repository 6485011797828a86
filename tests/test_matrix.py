"""np.linalg: the op table's examples run in tests/test_ops.py (with jax); here numpy's own
semantics that jax does not share (cholesky and eigh read one triangle), the functions
written in numpy (norm, matrix_power, multi_dot), tuple results and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from codegen import check, passes
from codegen.errors import GradgenError
from codegen.pipeline import compile_file
from codegen.write import write_atomic
from helpers import (
    annotate,
    assert_ir_matches,
    assert_matches_jax,
    compile_and_check,
    write_expr,
    write_source,
)

CASES = [
    # numpy reads the lower triangle only: the upper one's gradient is 0
    ("a: f64[3,3]", "np.linalg.cholesky(np.tril(a) @ np.tril(a).T + np.eye(3) + np.triu(a, 1))"),
    ("a: f64[3,3]", "np.linalg.cholesky(a @ a.T + np.eye(3), upper=True)"),
    ("a: f64[3,3]", "np.linalg.eigvalsh(a)"),
    ("a: f64[3,3]", "np.linalg.eigvalsh(a, UPLO='U') * np.arange(3.0)"),
    ("a: f64[3,3]", "np.linalg.eigh(a)[1] ** 2 * np.arange(9.0).reshape(3, 3)"),
    ("a: f64[2,3,3]", "np.linalg.eigh(a + np.swapaxes(a, 1, 2))[0]"),
    (
        "a: f64[3,3]",
        "np.linalg.slogdet(a + 3.0 * np.eye(3))[0] * np.exp(np.linalg.slogdet(a + 3.0 * np.eye(3))[1])",
    ),
    ("a: f64[4,3]", "np.linalg.svd(a, full_matrices=False)[1]"),
    ("a: f64[2,3,2]", "np.linalg.svd(a, compute_uv=False) ** 2"),
    ("x: f64[5]", "np.linalg.norm(x)"),
    ("x: f64[3,4]", "np.linalg.norm(x)"),
    ("x: f64[3,4]", "np.linalg.norm(x, axis=1)"),
    ("x: f64[3,4]", "np.linalg.norm(x, ord=1, axis=0, keepdims=True) * x"),
    ("x: f64[5]", "np.linalg.norm(x, ord=np.inf) + np.linalg.norm(x, -np.inf)"),
    ("x: f64[5]", "np.linalg.norm(x, ord=3)"),
    ("x: f64[3,4]", "np.linalg.norm(x, 'fro') + np.linalg.norm(x, 'nuc')"),
    ("x: f64[3,4]", "np.linalg.norm(x, 1) + np.linalg.norm(x, np.inf)"),
    ("x: f64[3,4]", "np.linalg.norm(x, 2) + np.linalg.norm(x, -2)"),
    ("x: f64[2,3,4]", "np.linalg.norm(x, axis=(2, 0))"),
    ("a: f64[3,3]", "np.linalg.matrix_power(a, 3)"),
    ("a: f64[3,3]", "np.linalg.matrix_power(a + 3.0 * np.eye(3), -2)"),
    ("a: f64[2,2,2]", "np.linalg.matrix_power(a, 5) + np.linalg.matrix_power(a, 0)"),
    ("a: f64[3], b: f64[3,4], c: f64[4]", "np.linalg.multi_dot([a, b, c])"),
    ("a: f64[2,3], b: f64[3,4], c: f64[4,2]", "np.linalg.multi_dot((a, b, c))"),
    ("a: f64[3,3], b: f64[3]", "np.linalg.solve(np.linalg.inv(a @ a.T + np.eye(3)), b)"),
    ("a: f64[2,2]", "np.linalg.det(np.linalg.inv(a + 3.0 * np.eye(2)))"),
    ("a: f64[4,3]", "np.linalg.qr(a, mode='r') * np.arange(9.0).reshape(3, 3)"),
    ("a: f64[4,3]", "np.linalg.pinv(a)"),
    ("a: f64[2,4]", "np.linalg.pinv(a) * np.arange(8.0).reshape(4, 2)"),
    ("a: f64[5,3], b: f64[5]", "np.linalg.lstsq(a, b)[0] + np.linalg.lstsq(a, b)[1]"),
    ("a: f64[5,3], b: f64[5,2]", "np.linalg.lstsq(a, b, rcond=None)[0]"),
    ("a: f64[3,3]", "np.linalg.cond(a) + np.linalg.cond(a + 2.0 * np.eye(3), 'fro')"),
    ("a: f64[2,3,3]", "np.linalg.matrix_norm(a) + np.linalg.vector_norm(a, axis=1).sum()"),
    ("a: f64[3,3]", "np.linalg.vector_norm(a, ord=1)"),
]


@pytest.mark.parametrize("pass_set", ["all", "none"])
@pytest.mark.parametrize("params, expr", CASES, ids=[e for _, e in CASES])
def test_linalg_through_pipeline(tmp_path, params, expr, pass_set):
    path = write_expr(tmp_path, params, expr)
    compiled, module, reports = compile_and_check(path, enabled_passes=passes.parse(pass_set))
    for r in reports:
        assert r.ok, "\n" + "\n".join(str(a) for a in r.args)
    assert_ir_matches(compiled, module)


def test_cholesky_upper_triangle_has_no_gradient(tmp_path):
    path = write_expr(
        tmp_path,
        "a: f64[3,3]",
        "np.sum(np.linalg.cholesky(a) * np.arange(9.0).reshape(3, 3))",
        reduce=False,
    )
    target = tmp_path / "out" / "expr_grad.py"
    write_atomic(target, compile_file(path).source)  # no check: random points are not PD
    module = check.import_path(target)
    rng = np.random.default_rng(0)
    m = rng.standard_normal((3, 3))
    a = m @ m.T + 3.0 * np.eye(3)
    _, (g,) = module.f_value_and_grad(a)
    a[0, 2] += 10.0  # numpy ignores the upper triangle
    _, (g2,) = module.f_value_and_grad(a)
    assert np.all(np.triu(g, 1) == 0.0) and np.any(np.tril(g, -1) != 0.0)
    np.testing.assert_array_equal(g, g2)
    h = 1e-6
    for i, j in [(1, 0), (2, 1), (2, 2)]:
        e = np.zeros((3, 3))
        e[i, j] = h
        numeric = (module.f(a + e) - module.f(a - e)) / (2 * h)
        assert abs(numeric - g[i, j]) < 1e-6 * max(1.0, abs(numeric))


# Functions of the singular vectors free of their arbitrary signs, as users write them.
SVD_CASES = {
    "reconstruction": (
        "a: f64[4,3]",
        "u, s, vh = np.linalg.svd(a, full_matrices=False)",
        "(u * s) @ vh * W43",
    ),
    "squares of U, tall": (
        "a: f64[4,3]",
        "u, s, vh = np.linalg.svd(a, full_matrices=False)",
        "(u * u) @ np.arange(3.0)",
    ),
    "|U[:, 0]|": (
        "a: f64[4,3]",
        "u, s, vh = np.linalg.svd(a, full_matrices=False)",
        "np.abs(u[:, 0]) * np.arange(4.0)",
    ),
    "squares of Vh, wide": (
        "a: f64[3,5]",
        "u, s, vh = np.linalg.svd(a, full_matrices=False)",
        "vh * vh * np.arange(15.0).reshape(3, 5)",
    ),
    "top pair, wide": (
        "a: f64[3,5]",
        "u, s, vh = np.linalg.svd(a, full_matrices=False)",
        "np.outer(u[:, 0], vh[0]) * np.arange(15.0).reshape(3, 5)",
    ),
    "square, full_matrices default": (
        "a: f64[3,3]",
        "u, s, vh = np.linalg.svd(a)",
        "u ** 2 * s + vh ** 2 * np.arange(9.0).reshape(3, 3)",
    ),
    "stack": (
        "a: f64[2,3,2]",
        "u, s, vh = np.linalg.svd(a, full_matrices=False)",
        "u @ vh * np.arange(12.0).reshape(2, 3, 2)",
    ),
}


def _svd_source(params: str, unpack: str, expr: str) -> str:
    return (
        "import numpy as np\n\nW43 = np.arange(12.0).reshape(4, 3)\n\n\n"
        f"def f({annotate(params)}):\n    {unpack}\n    return np.sum(np.sin({expr}))\n"
    )


@pytest.mark.parametrize("pass_set", ["all", "none"])
@pytest.mark.parametrize("case", sorted(SVD_CASES))
def test_svd_vectors_gradient(tmp_path, case, pass_set):
    """The published VJP of U and Vh (distinct nonzero singular values), checked
    numerically, against the reference interpreter, and against jax where installed."""
    path = write_source(tmp_path, _svd_source(*SVD_CASES[case]))
    compiled, module, reports = compile_and_check(path, enabled_passes=passes.parse(pass_set))
    for r in reports:
        assert r.ok, "\n" + "\n".join(str(a) for a in r.args)
    assert_ir_matches(compiled, module)
    if pass_set == "all":
        assert_matches_jax(path, compiled, module)


def test_svd_reconstruction_gradient_is_exact(tmp_path):
    """U diag(S) Vh is A: the gradient of sum(W * U S Vh) is W, through all three parts."""
    path = write_source(
        tmp_path,
        _svd_source("a: f64[4,3]", "u, s, vh = np.linalg.svd(a, full_matrices=False)", "x").replace(
            "np.sum(np.sin(x))", "np.sum((u * s) @ vh * W43)"
        ),
    )
    _, module, _ = compile_and_check(path)
    a = np.random.default_rng(2).standard_normal((4, 3))
    _, (g,) = module.f_value_and_grad(a)
    np.testing.assert_allclose(g, np.arange(12.0).reshape(4, 3), atol=1e-12)


def test_svd_values_of_the_tuple_work(tmp_path):
    path = write_source(
        tmp_path,
        """
        import numpy as np

        def f(a: "f64[3,3]"):
            u, s, vh = np.linalg.svd(a)
            return np.sum(s * s)
        """,
    )
    _, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports)
    a = np.arange(9.0).reshape(3, 3)
    _, (g,) = module.f_value_and_grad(a)
    np.testing.assert_allclose(g, 2 * a, rtol=1e-12, atol=1e-12)  # sum s^2 = |a|_F^2


@pytest.mark.parametrize(
    "expr, message",
    [
        ("np.linalg.inv(a[:2])", "square"),
        ("np.linalg.eigh(a, UPLO='X')[0]", "UPLO"),
        ("np.linalg.norm(a, ord='bogus')", "Invalid norm order"),
        ("np.linalg.svd(a[:2])[0]", "full_matrices=False"),
    ],
)
def test_refusals_name_the_line(tmp_path, expr, message):
    path = write_expr(tmp_path, "a: f64[3,3]", expr)
    with pytest.raises(GradgenError) as e:
        compile_file(path)
    assert message in e.value.message, e.value.message
    assert "expr.py:5" in e.value.render()


def test_qr_tuple_unpacks(tmp_path):
    path = write_source(
        tmp_path,
        """
        import numpy as np

        def f(a: "f64[4,3]"):
            q, r = np.linalg.qr(a)
            return np.sum(q[:, 0] * np.arange(4.0)) + np.sum(r * r)
        """,
    )
    compiled, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports)
    assert_ir_matches(compiled, module)
