"""Reductions: sum, mean, prod, max, min over every kind of axis, ties, zeros, and jax."""

from __future__ import annotations

import numpy as np
import pytest

from codegen.errors import GradgenError
from codegen.ops.reduce import max_kink
from codegen.pipeline import compile_file
from helpers import assert_ir_matches, compile_and_check, write_expr, write_source
from test_linalg import second_order_matches

AXES = [
    "",
    ", axis=None, keepdims=True",
    ", axis=-2",
    ", axis=(0, -1)",
    ", axis=(-1, 0), keepdims=True",
    ", 1, keepdims=True",
]


@pytest.mark.parametrize("fn", ["np.sum", "np.mean", "np.prod", "np.max", "np.min"])
@pytest.mark.parametrize("axis", AXES)
def test_reduction_axes(tmp_path, fn, axis):
    """Every reduction with int, negative, tuple and None axes, with and without keepdims."""
    # times y, so that a gradient routed to the wrong element is caught
    path = write_expr(tmp_path, "x: f64[2,3,4], y: f64[2,3,4]", f"{fn}(x * y{axis})")
    compiled, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports), "\n".join(str(a) for r in reports for a in r.args)
    assert_ir_matches(compiled, module)


@pytest.mark.parametrize("method", ["sum", "mean", "prod", "max", "min"])
def test_methods_and_size_one_axes(tmp_path, method):
    path = write_expr(tmp_path, "x: f64[3,1,2]", f"x.{method}(axis=1) + x.{method}()")
    compiled, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports)
    assert_ir_matches(compiled, module)


def _grad(tmp_path, params: str, body: str, *args):
    path = write_expr(tmp_path, params, body, reduce=False)
    compiled, module, _ = compile_and_check(path)
    return module.f_value_and_grad(*args)[1]


@pytest.mark.parametrize(
    "expr",
    ["np.max(x, axis=1)", "np.min(x, axis=0, keepdims=True)", "x.mean(axis=-1)", "x.prod(axis=1)"],
)
def test_second_order(tmp_path, expr):
    second_order_matches(tmp_path, "x: f64[3,4]", f"{expr} * {expr}")


def test_max_ties_split_evenly(tmp_path):
    (g,) = _grad(tmp_path, "x: f64[3]", "np.max(x)", np.array([1.0, 3.0, 3.0]))
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])


def test_min_ties_split_evenly_along_an_axis(tmp_path):
    x = np.array([[2.0, 2.0, 2.0], [0.0, 1.0, 0.0]])
    (g,) = _grad(tmp_path, "x: f64[2,3]", "np.sum(np.min(x, axis=1) * np.array([1.0, 2.0]))", x)
    np.testing.assert_allclose(g, [[1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 1.0]])


def test_max_ties_with_keepdims_and_negative_axis(tmp_path):
    x = np.array([[1.0, 4.0], [5.0, 4.0], [5.0, 4.0]])
    (g,) = _grad(tmp_path, "x: f64[3,2]", "np.sum(np.amax(x, axis=-2, keepdims=True))", x)
    np.testing.assert_allclose(g, [[0, 1 / 3], [0.5, 1 / 3], [0.5, 1 / 3]])


def test_max_kink_is_the_gap_to_the_runner_up():
    x = np.array([[1.0, 3.0, 2.9], [0.0, 5.0, 1.0]])
    assert max_kink(x, axis=(1,)) == pytest.approx(0.1)
    assert max_kink(x, axis=(0,)) == pytest.approx(1.0)
    # Without the axis every set of axes is tried: the smallest gap of all.
    assert max_kink(x) == pytest.approx(0.1)
    assert max_kink(np.array([[4.0], [2.0]]), axis=(1,)) == np.inf  # a lone element never ties


def _prod_of_others(x: np.ndarray) -> np.ndarray:
    return np.array([np.prod(np.delete(x, i)) for i in range(x.size)])


@pytest.mark.parametrize(
    "x",
    [[2.0, 3.0, 0.5, -1.0], [2.0, 0.0, 0.5, -1.0], [0.0, 3.0, 0.0, 4.0], [0.0, 0.0, 0.0, 0.0]],
    ids=["no-zero", "one-zero", "two-zeros", "all-zero"],
)
def test_prod_gradient_is_the_product_of_the_others(tmp_path, x):
    """Exact at zeros, where out / x would be nan: one zero gets the product of the rest."""
    x = np.array(x)
    with np.errstate(all="raise"):  # and no division by zero happens on the way
        (g,) = _grad(tmp_path, "x: f64[4]", "np.prod(x)", x)
    np.testing.assert_allclose(g, _prod_of_others(x), rtol=1e-15)


def test_prod_with_zeros_along_an_axis(tmp_path):
    x = np.array([[0.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])
    (g,) = _grad(
        tmp_path, "x: f64[3,3]", "np.sum(np.prod(x, axis=1) * np.array([1.0, 2.0, 3.0]))", x
    )
    expected = np.stack([w * _prod_of_others(row) for w, row in zip([1, 2, 3], x)])
    np.testing.assert_allclose(g, expected)


def test_mean_reads_as_mean(tmp_path):
    """The forward keeps the user's mean; the gradient scales by 1/n before broadcasting."""
    path = write_expr(tmp_path, "x: f64[3,4]", "x.mean(axis=1)")
    source = compile_file(path).source
    assert "x.mean(axis=1)" in source
    assert "/ 4.0" in source


def test_reductions_of_arrays_are_methods_and_of_scalars_functions(tmp_path):
    """`x.sum()` skips np.sum's Python-level dispatch; a 0-d input, which the caller may
    pass as a Python float, keeps the function form (no pass removes it with passes off)."""
    path = write_expr(
        tmp_path, "x: f64[3,4], s: f64[]", "(x * x).sum(axis=0) + np.sum(s)", reduce=False
    )
    source = compile_file(path, enabled_passes=[]).source
    assert "(x * x).sum(axis=0)" in source and "np.sum(s)" in source
    compiled, module, reports = compile_and_check(path, enabled_passes=[])
    assert all(r.ok for r in reports)
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_allclose(module.f(x, 2.0), (x * x).sum(axis=0) + 2.0)


def test_float32_gradients_stay_float32(tmp_path):
    path = write_expr(tmp_path, "x: f32[3,4]", "np.max(x, axis=0) * np.prod(x, axis=0)")
    _, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    _, (g,) = module.f_value_and_grad(x)
    assert g.dtype == np.float32


@pytest.mark.parametrize(
    "expr, message",
    [
        ("np.max(x, where=x > 0.0, initial=0.0)", "constant mask"),
        ("np.max(x, where=np.array([True, False, True]))", "specify 'initial'"),
        ("np.sum(x, dtype=np.float32)", "dtype="),
        ("np.mean(x, axis=2)", "out of range"),
        ("np.prod(x, axis=(0, -2))", "repeats"),
    ],
)
def test_unsupported_arguments_name_the_line(tmp_path, expr, message):
    path = write_source(
        tmp_path,
        f"""
        import numpy as np


        def f(x: "f64[2,3]"):
            return {expr}
        """,
    )
    with pytest.raises(GradgenError) as err:
        compile_file(path)
    assert message in err.value.message
    assert err.value.src.line == 5


JAX_CASES = [
    ("x: f64[3,4]", "np.max(x, axis=1)", None),
    ("x: f64[3]", "np.max(x)", np.array([1.0, 3.0, 3.0])),  # a tie
    ("x: f64[2,3,2]", "np.mean(x, axis=(-1, 0))", None),
    ("x: f64[4]", "np.prod(x)", np.array([2.0, 0.0, 0.5, 3.0])),  # a zero
    ("x: f64[4]", "np.prod(x)", np.array([2.0, 0.0, 0.0, 3.0])),  # two zeros
]


@pytest.mark.parametrize("params, expr, point", JAX_CASES)
def test_against_jax(tmp_path, params, expr, point):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    shape = tuple(int(d) for d in params.split("[")[1].rstrip("]").split(","))
    x = point if point is not None else np.random.default_rng(3).standard_normal(shape)
    (g,) = _grad(tmp_path, params, f"np.sum(np.sin({expr}))", x)
    f = eval(f"lambda x: np.sum(np.sin({expr}))", {"np": jax.numpy})
    np.testing.assert_allclose(g, np.asarray(jax.grad(f)(x)), rtol=1e-12, atol=1e-14)
