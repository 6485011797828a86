"""Linear algebra: matmul (and `@`), dot, inner, outer, tensordot, vecdot, einsum, transposes."""

from __future__ import annotations

import numpy as np
import pytest

from codegen import check, ir
from codegen.autodiff import vjp_graph
from codegen.errors import GradgenError
from codegen.pipeline import compile_file
from helpers import assert_ir_matches, compile_and_check, write_expr, write_source


def _compiles_and_checks(tmp_path, params: str, expr: str):
    """Through the whole pipeline: numeric check, reference interpreter, generated module."""
    path = write_expr(tmp_path, params, expr)
    compiled, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports), "\n".join(str(a) for r in reports for a in r.args)
    assert_ir_matches(compiled, module)
    return compiled


def second_order_matches(tmp_path, params: str, expr: str, seed: int = 0) -> None:
    """The VJP rules build IR that autodiff can differentiate again.

    Differentiates `<grad f, c>` (c random) through the gradient graph and compares the
    result with central differences of the first-order gradient, both in the interpreter.
    """
    t = compile_file(write_expr(tmp_path, params, expr)).functions[0]
    first = vjp_graph(t.forward, t.wrt, seed=1.0)
    rng = np.random.default_rng(seed)
    weighted = []
    for grad in first.outputs[1:]:
        c = first.const(rng.standard_normal(grad.shape))
        weighted.append(first.apply("sum", grad * c, axis=tuple(range(grad.ndim)), keepdims=False))
    first.outputs = [sum(weighted[1:], weighted[0])]
    second = vjp_graph(first, t.wrt, seed=1.0)
    args, _ = check.draw_point(t.spec.params, t.forward, rng)
    _, *grads = ir.run(second, *args)
    for j, (x, grad) in enumerate(zip(args, grads)):
        for idx in np.ndindex(x.shape):
            h = 1e-6 * max(1.0, abs(float(x[idx])))
            shifted = [[a.copy() for a in args] for _ in range(2)]
            shifted[0][j][idx] += h
            shifted[1][j][idx] -= h
            plus, minus = (ir.run(first, *s)[0] for s in shifted)
            numeric = (plus - minus) / (2 * h)
            assert abs(grad[idx] - numeric) <= 1e-6 + 1e-5 * abs(numeric), (
                j,
                idx,
                grad[idx],
                numeric,
            )


MATMUL_SHAPES = [
    ("f64[3]", "f64[3]"),  # vector . vector: a scalar
    ("f64[2,3]", "f64[3]"),  # matrix @ vector
    ("f64[3]", "f64[3,2]"),  # vector @ matrix
    ("f64[2,3]", "f64[3,4]"),
    ("f64[2,1,3,4]", "f64[5,4,2]"),  # batch axes broadcast both ways
    ("f64[2,3,4]", "f64[4]"),  # stack of matrices @ vector
    ("f64[4]", "f64[2,4,3]"),  # vector @ stack of matrices
    ("f64[1,3]", "f64[3,1]"),  # size-1 result
    ("f64[3,1]", "f64[1,2]"),  # inner length 1
    ("f64[1,2,3]", "f64[3,2]"),
]


@pytest.mark.parametrize("sx, sy", MATMUL_SHAPES)
def test_matmul_shapes(tmp_path, sx, sy):
    _compiles_and_checks(tmp_path, f"x: {sx}, y: {sy}", "np.matmul(x, y)")


@pytest.mark.parametrize("sx, sy", MATMUL_SHAPES[:7])
def test_matmul_second_order(tmp_path, sx, sy):
    second_order_matches(tmp_path, f"x: {sx}, y: {sy}", "np.matmul(x, y)")


@pytest.mark.parametrize(
    "params, expr",
    [
        ("x: f64[3], y: f64[2]", "np.outer(x, y)"),
        ("x: f64[2,3,4], y: f64[4,2,3]", "np.transpose(x, (2, 0, 1)) * y"),
        ("x: f64[2,3,4], y: f64[3,5]", "np.einsum('ijk,jl->kli', x, y)"),
        ("x: f64[2,3], y: f64[2,4]", "np.einsum('bi,bj->bij', x, y)"),
    ],
)
def test_products_second_order(tmp_path, params, expr):
    second_order_matches(tmp_path, params, expr)


@pytest.mark.parametrize("sx, sy", MATMUL_SHAPES[:5])
def test_matmul_operator(tmp_path, sx, sy):
    """`x @ y` needs Tracer.__matmul__ / __rmatmul__ (see the report for trace.py)."""
    _compiles_and_checks(tmp_path, f"x: {sx}, y: {sy}", "x @ y")


def test_matmul_operator_with_constants(tmp_path):
    path = write_source(
        tmp_path,
        """
        import numpy as np

        W = np.arange(6.0).reshape(2, 3) / 7


        def f(x: "f64[3]", v: "f64[2]"):
            return np.sum(np.sin(W @ x)) + [1.0, 2.0] @ v + v @ W @ x
        """,
    )
    compiled, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports)
    assert_ir_matches(compiled, module)


def test_matrix_vector_gradient_is_an_outer_product(tmp_path):
    """The weight gradient of W @ x is np.outer(g, x), never a matmul with inner length 1."""
    source = compile_file(write_expr(tmp_path, "W: f64[3,4], x: f64[4]", "np.matmul(W, x)")).source
    assert "np.outer(" in source
    # a batched vector product multiplies instead of calling matmul on a length-1 axis
    source = compile_file(
        write_expr(tmp_path, "x: f64[4], y: f64[2,4,3]", "np.matmul(x, y)")
    ).source
    assert "np.expand_dims(x, 1) *" in source


def test_vector_gradients_by_hand(tmp_path):
    rng = np.random.default_rng(0)
    W, x, v = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal(3)
    expr = "np.matmul(v, np.matmul(W, x))"
    path = write_expr(tmp_path, "W: f64[3,4], x: f64[4], v: f64[3]", expr, reduce=False)
    _, module, _ = compile_and_check(path)
    value, (gW, gx, gv) = module.f_value_and_grad(W, x, v)
    np.testing.assert_allclose(value, v @ W @ x)
    np.testing.assert_allclose(gW, np.outer(v, x))
    np.testing.assert_allclose(gx, v @ W)
    np.testing.assert_allclose(gv, W @ x)


def test_batched_broadcasting_gradients_by_hand(tmp_path):
    """(2,1,3,4) @ (5,4,2): each operand's gradient sums over the batch axes it was broadcast on."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((5, 4, 2))
    path = write_expr(tmp_path, "x: f64[2,1,3,4], y: f64[5,4,2]", "np.matmul(x, y)", reduce=False)
    _, module, _ = compile_and_check(path)
    g = rng.standard_normal((2, 5, 3, 2))
    _, (gx, gy) = module.f_vjp(x, y, g)
    np.testing.assert_allclose(gx, np.einsum("bnik,njk->bij", g, y)[:, None])
    np.testing.assert_allclose(gy, np.einsum("bij,bnik->njk", x[:, 0], g))


@pytest.mark.parametrize(
    "params, expr",
    [
        ("x: f64[3], y: f64[3]", "np.dot(x, y)"),
        ("x: f64[2,3], y: f64[3,4]", "x.dot(y)"),
        ("x: f64[2,3,4], y: f64[5,4,2]", "np.dot(x, y)"),  # N-D: not a matmul
        ("x: f64[2,3], y: f64[]", "np.dot(x, y)"),
        ("x: f64[4], y: f64[2,4,3]", "np.dot(x, y)"),
        ("x: f64[2,3], y: f64[4,3]", "np.inner(x, y)"),
        ("x: f64[2,3,4], y: f64[4]", "np.inner(x, y)"),
        ("x: f64[3], y: f64[2,5,3]", "np.inner(x, y)"),
        ("x: f64[3], y: f64[4]", "np.outer(x, y)"),
        ("x: f64[2,3], y: f64[1,2]", "np.outer(x, y)"),
        ("x: f64[2,3,4], y: f64[3,4,2]", "np.tensordot(x, y)"),
        ("x: f64[2,3,4], y: f64[4,2,5]", "np.tensordot(x, y, axes=([0, 2], [1, 0]))"),
        ("x: f64[2,3], y: f64[3]", "np.vecdot(x, y)"),
    ],
)
def test_products(tmp_path, params, expr):
    _compiles_and_checks(tmp_path, params, expr)


EINSUM = [
    ("ij,jk->ik", "f64[2,3]", "f64[3,4]"),
    ("bij,bjk->bik", "f64[2,2,3]", "f64[2,3,4]"),
    ("i,i->", "f64[3]", "f64[3]"),
    ("ij,kj->ik", "f64[2,3]", "f64[4,3]"),
    ("ij,jk->ki", "f64[2,3]", "f64[3,4]"),
    ("i,j->ij", "f64[2]", "f64[3]"),
    ("bi,bi->b", "f64[4,3]", "f64[4,3]"),
    ("bi,bj->bij", "f64[2,3]", "f64[2,4]"),
    ("ijk,jl->kli", "f64[2,3,4]", "f64[3,5]"),
    ("ij,ijk->k", "f64[2,3]", "f64[2,3,1]"),
    ("ba,ca", "f64[2,3]", "f64[4,3]"),  # implicit output: "bc"
    ("ij->ji", "f64[2,3]", None),
    ("ij->j", "f64[2,3]", None),
]


@pytest.mark.parametrize("subscripts, sx, sy", EINSUM)
def test_einsum(tmp_path, subscripts, sx, sy):
    params, args = (f"x: {sx}", "x") if sy is None else (f"x: {sx}, y: {sy}", "x, y")
    # times a constant of the output's shape, so a transposed result cannot pass by symmetry
    _compiles_and_checks(tmp_path, params, f"np.einsum('{subscripts}', {args}) * 1.5")


def test_einsum_of_three_operands(tmp_path):
    _compiles_and_checks(
        tmp_path, "x: f64[2,3], y: f64[3,4], z: f64[4,2]", "np.einsum('ij,jk,kl->il', x, y, z)"
    )


def test_einsum_lowers_to_plain_matmuls(tmp_path):
    """No reshape or transpose where the operands are already laid out for a matmul."""
    path = write_expr(tmp_path, "x: f64[2,3], y: f64[3,4]", "np.einsum('ij,jk->ik', x, y)")
    compiled = compile_file(path)
    assert {n.op for n in compiled.functions[0].forward.live_nodes()} == {
        "param",
        "matmul",
        "sin",
        "sum",
    }
    path = write_expr(tmp_path, "x: f64[2,3], y: f64[4,3]", "np.inner(x, y)")
    assert "x @ y.T" in compile_file(path).source


@pytest.mark.parametrize(
    "params, expr",
    [
        ("x: f64[2,3], y: f64[3,2]", "x.T * y"),
        ("x: f64[2,3,4], y: f64[4,2,3]", "np.transpose(x, (2, 0, 1)) * y"),
        ("x: f64[2,3,4], y: f64[4,3,2]", "x.transpose() * y"),
        ("x: f64[2,3,4], y: f64[2,4,3]", "np.swapaxes(x, -1, 1) * y"),
        ("x: f64[2,3,4], y: f64[4,2,3]", "np.moveaxis(x, -1, 0) * y"),
        ("x: f64[2,3,4], y: f64[2,4,3]", "np.matrix_transpose(x) * y"),
        ("x: f64[2,3,4], y: f64[2,4,3]", "x.mT * y"),
        ("x: f64[1,3], y: f64[3,1]", "x.T * y"),
    ],
)
def test_transposes(tmp_path, params, expr):
    _compiles_and_checks(tmp_path, params, expr)


def test_transposes_read_naturally(tmp_path):
    source = compile_file(
        write_expr(tmp_path, "x: f64[2,3,4]", "np.matmul(np.swapaxes(x, 1, 2), x)")
    ).source
    assert "x.swapaxes(-1, -2) @ x" in source
    source = compile_file(write_expr(tmp_path, "x: f64[2,3]", "x.T.T * x")).source
    assert "x.T.T" not in source  # a permutation of a permutation is one permutation


@pytest.mark.parametrize(
    "expr, message",
    [
        ("np.matmul(x, x)", "inner dimensions differ"),
        ("np.einsum('...i,i', x, x[:, :1][0])", "sizes"),
        ("np.einsum('ij,jk->ii', x, x.T)", "distinct letters"),
        ("np.einsum('ij,ij->i', x, x.T)", "sizes"),
        ("np.transpose(x, (0, 0))", "not a permutation"),
    ],
)
def test_errors_name_the_line(tmp_path, expr, message):
    path = write_source(
        tmp_path,
        f"""
        import numpy as np


        def f(x: "f64[2,3]"):
            return np.sum({expr})
        """,
    )
    with pytest.raises(GradgenError) as err:
        compile_file(path)
    assert message in err.value.message
    assert err.value.src.line == 5


JAX_CASES = [
    ("x: f64[2,1,3,4], y: f64[5,4,2]", "np.matmul(x, y)"),
    ("x: f64[4], y: f64[2,4,3]", "np.matmul(x, y)"),
    ("x: f64[2,3,4], y: f64[4]", "np.matmul(x, y)"),
    ("x: f64[2,3,4], y: f64[5,4,2]", "np.dot(x, y)"),
    ("x: f64[2,3,4], y: f64[3,5]", "np.einsum('ijk,jl->kli', x, y)"),
]


@pytest.mark.parametrize("params, expr", JAX_CASES)
def test_against_jax(tmp_path, params, expr):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(7)
    shapes = [
        tuple(int(d) for d in p.split("[")[1].rstrip("]").split(",")) for p in params.split(", ")
    ]
    args = [rng.standard_normal(s) for s in shapes]
    path = write_expr(tmp_path, params, expr)
    _, module, _ = compile_and_check(path)
    _, grads = module.f_value_and_grad(*args)
    f = eval(f"lambda x, y: np.sum(np.sin({expr}))", {"np": jax.numpy})
    expected = jax.grad(f, argnums=(0, 1))(*args)
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g, np.asarray(e), rtol=1e-10, atol=1e-12)


def test_float32_stays_float32(tmp_path):
    path = write_expr(tmp_path, "W: f32[3,4], x: f32[4]", "np.matmul(W, x) + np.dot(x, W.T)")
    _, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports)
    rng = np.random.default_rng(0)
    W, x = rng.standard_normal((3, 4), np.float32), rng.standard_normal(4, np.float32)
    _, grads = module.f_value_and_grad(W, x)
    assert [g.dtype for g in grads] == [np.float32, np.float32]
