"""numpy functions written as numpy on traced values (codegen/ops/composite.py): each
through the whole pipeline (every pass and none), the reference interpreter, and jax where
it is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codegen import passes
from codegen.errors import GradgenError
from codegen.ops import NUMPY
from codegen.pipeline import compile_file
from helpers import (
    assert_ir_matches,
    assert_matches_jax,
    compile_and_check,
    write_expr,
    write_source,
)

# numpy 2 deprecates np.cross of 2-vectors, which still works and is tested
pytestmark = pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors")

# (parameters, expression): the expression is summed after np.sin, as in tests/test_ops.py
CASES = [
    ("x: f64[3,4]", "np.var(x)"),
    ("x: f64[3,4]", "np.var(x, axis=0)"),
    ("x: f64[3,4]", "x.var(axis=1, ddof=1, keepdims=True) * x"),
    ("x: f64[3,4]", "np.std(x, axis=(0, 1))"),
    ("x: f64[5]", "x.std(ddof=1)"),
    ("x: f64[3,4]", "np.average(x, axis=1)"),
    ("x: f64[3,4], w: f64[4]", "np.average(x, axis=1, weights=w * w + 1.0)"),
    ("x: f64[3,4], w: f64[3,4]", "np.average(x, weights=np.exp(w))"),
    (
        "x: f64[3,4], w: f64[4]",
        "np.average(x, axis=1, weights=w * w + 1.0, returned=True)[1][:, None] * x",
    ),
    ("x: f64[3,4]", "np.average(x, axis=0, returned=True)[0]"),
    ("x: f64[3,4]", "np.ptp(x, axis=0)"),
    ("x: f64[6]", "np.diff(x)"),
    ("x: f64[3,5]", "np.diff(x, n=2, axis=1)"),
    ("x: f64[3,4]", "np.diff(x, axis=0, prepend=0.5)"),
    ("x: f64[4], y: f64[1]", "np.diff(x, append=y)"),
    ("x: f64[2,3]", "np.ediff1d(x, to_begin=np.array([1.0, 2.0]))"),
    ("x: f64[6]", "(np.trapezoid if hasattr(np, 'trapezoid') else np.trapz)(x)"),
    ("y: f64[3,5], t: f64[5]", "getattr(np, 'trapezoid', getattr(np, 'trapz', None))(y, x=t * t)"),
    ("x: f64[4], y: f64[4]", "np.logaddexp(x, 3.0 * y)"),
    ("x: f64[2,3], y: f64[3]", "np.logaddexp2(x, y)"),
    ("x: f64[3]", "np.deg2rad(x) + np.radians(x * x)"),
    ("x: f64[3]", "np.rad2deg(x) / 90.0 + np.degrees(x) / 45.0"),
    ("x: f64[5]", "np.sinc(x)"),
    ("x: f64[3,3]", "np.diag(x)"),
    ("x: f64[2,4]", "np.diag(x, k=1)"),
    ("x: f64[3]", "np.diag(x, k=-1) @ np.ones(4)"),
    ("x: f64[2,3,4]", "np.diagonal(x, offset=1, axis1=1, axis2=2)"),
    ("x: f64[3,3]", "np.trace(x) + x.trace(offset=-1)"),
    ("x: f64[3,4]", "np.triu(x) + np.tril(x, k=-1) * 2.0"),
    ("x: f64[2,3,3]", "np.triu(x, 1)"),
    ("x: f64[2,3], y: f64[3,2]", "np.kron(x, y)"),
    ("x: f64[3], y: f64[2]", "np.kron(x, y)"),
    ("x: f64[3], y: f64[3]", "np.cross(x, y)"),
    ("x: f64[4,3], y: f64[3]", "np.cross(x, y)"),
    ("x: f64[3,2], y: f64[3,2]", "np.cross(x, y, axisa=0, axisb=0)"),
    ("x: f64[2,2], y: f64[2,3]", "np.cross(x, y)"),
    ("x: f64[4]", "np.vander(x)"),
    ("x: f64[3]", "np.vander(x, 4, increasing=True)"),
    ("x: f64[3,4]", "np.flip(x) * np.flip(x, axis=1) + np.fliplr(x) - np.flipud(x)"),
    ("x: f64[2,3]", "np.rot90(x) @ np.rot90(x, 3).T + np.sum(np.rot90(x, 2))"),
    ("x: f64[5]", "np.roll(x, 2) * x"),
    ("x: f64[3,4]", "np.roll(x, -1, axis=1) + np.roll(x, 5)"),
    ("x: f64[2,3,4]", "np.rollaxis(x, 2)[0]"),
    ("x: f64[2,3]", "np.tile(x, 2)"),
    ("x: f64[3]", "np.tile(x, (2, 2))"),
    ("x: f64[2,3]", "np.repeat(x, 2)"),
    ("x: f64[2,3]", "np.repeat(x, np.array([1, 0, 2]), axis=1) + x.repeat(2, axis=1)[:, :3]"),
    ("x: f64[2,3]", "np.take(x, np.array([0, 2, 2])) + x.take(np.array([1, 1, 0]), axis=1)[0]"),
    ("x: f64[3], y: f64[2]", "np.append(x, y)"),
    ("x: f64[2,3], y: f64[1,3]", "np.append(x, y, axis=0)"),
    ("x: f64[5]", "np.delete(x, np.array([1, 3]))"),
    ("x: f64[4], y: f64[]", "np.insert(x, 2, y * y)"),
    ("x: f64[4], y: f64[2]", "np.insert(x, np.array([0, 3]), y)"),
    ("x: f64[4], y: f64[3]", "np.insert(x, 1, y)"),
    ("x: f64[2,3], y: f64[3]", "np.insert(x, 1, y, axis=0)"),
    ("x: f64[2,3], y: f64[2]", "np.insert(x, np.array([0, 2]), y, axis=1)"),
    ("x: f64[3,4]", "np.delete(x, 0, axis=1)"),
    ("x: f64[3]", "np.pad(x, 2)"),
    ("x: f64[2,3]", "np.pad(x, ((1, 0), (2, 1)), constant_values=0.5)"),
    ("x: f64[2,3]", "np.pad(x, 1, mode='edge')"),
    ("x: f64[4]", "np.pad(x, (2, 3), mode='reflect')"),
    ("x: f64[3,3]", "np.pad(x, ((1, 1), (0, 2)), mode='symmetric')"),
    ("x: f64[6]", "np.lib.stride_tricks.sliding_window_view(x, 3) @ np.arange(3.0)"),
    (
        "x: f64[4,5], k: f64[2,2]",
        "np.einsum('ijkl,kl->ij', " "np.lib.stride_tricks.sliding_window_view(x, (2, 2)), k)",
    ),
    ("x: f64[2,5,4]", "np.lib.stride_tricks.sliding_window_view(x, (3, 2), axis=(1, 2))"),
    ("x: f64[2,5]", "np.lib.stride_tricks.sliding_window_view(x, 2, axis=-1) ** 2"),
    ("x: f64[3,4]", "x * np.ndim(x) + np.size(x) + np.size(x, 1) + np.shape(x)[0]"),
    (
        "x: f64[2,3]",
        "np.nansum(np.where(HOLES, np.nan, x)) + np.nanmean(np.where(HOLES, np.nan, x), axis=0)",
    ),
    (
        "x: f64[2,3]",
        "np.nanmax(np.where(HOLES, np.nan, x), axis=1) - np.nanmin(np.where(HOLES, np.nan, x))",
    ),
    ("x: f64[2,3]", "np.nanprod(np.where(HOLES, np.nan, x), axis=1, keepdims=True) * x"),
    (
        "x: f64[3,4]",
        "np.nanvar(np.where(HOLES4, np.nan, x), axis=1) + np.nanstd(np.where(HOLES4, np.nan, x), ddof=1)",
    ),
    ("x: f64[2,3]", "np.sum(x, where=np.array([True, False, True]))"),
    (
        "x: f64[2,3]",
        "np.sum(x, axis=1, where=np.array([[True, False, True], [False, True, True]]), initial=1.5)",
    ),
    ("x: f64[2,3]", "np.prod(x, axis=0, where=np.array([[True], [False]]), keepdims=True) * x"),
    (
        "x: f64[2,3]",
        "np.mean(x, axis=1, where=np.array([[True, False, True], [True, True, True]]))",
    ),
    ("x: f64[2,3]", "np.max(x, axis=1, where=np.array([False, True, True]), initial=-5.0)"),
    ("x: f64[2,3]", "np.amin(x, initial=0.25) + x.max(initial=-1.0)"),
    ("x: f64[2,3], y: f64[6]", "np.vdot(x, y)"),
    ("x: f64[5]", "np.select([x < -0.5, x > 0.5], [x * x, np.exp(x)], default=x)"),
    ("x: f64[2,2], y: f64[2,1]", "np.block([[x, y], [y.T, np.ones((1, 1))]])"),
    ("x: f64[3], y: f64[3]", "np.block([x, y, 1.0 * x])"),
    ("x: f64[2,3], y: f64[2,3]", "np.dstack((x, y * y))"),
    ("x: f64[3], y: f64[3,2]", "np.column_stack([x, y])"),
    ("x: f64[3], y: f64[2,1]", "np.broadcast_arrays(x, y)[0] * np.broadcast_arrays(x, y)[1]"),
    ("x: f64[6]", "np.gradient(x)"),
    ("x: f64[6]", "np.gradient(x, 0.5, edge_order=2)"),
    ("x: f64[3,4]", "np.gradient(x, axis=1) * np.gradient(x, 2.0)[0]"),
    ("x: f64[5], t: f64[5]", "np.gradient(x * x, np.cumsum(np.exp(t)))"),
    ("p: f64[3], x: f64[4]", "np.polyval(p, x)"),
    ("x: f64[4]", "np.polyval(np.array([1.0, -2.0, 0.5]), x) + np.polyval(x, 0.7)"),
    ("a: f64[7], v: f64[3]", "np.convolve(a, v)"),
    ("a: f64[7], v: f64[3]", "np.convolve(a, v, mode='same') + np.convolve(v, a, 'same')"),
    ("a: f64[7], v: f64[3]", "np.convolve(a * a, v, mode='valid')"),
    ("a: f64[6], v: f64[4]", "np.correlate(a, v)"),
    ("a: f64[6], v: f64[4]", "np.correlate(a, v, 'full') + np.correlate(v, a, 'full')"),
    ("a: f64[5], v: f64[2]", "np.correlate(v, a, mode='same') + np.correlate(a, v, 'same')"),
    ("x: f64[3], y: f64[4]", "np.meshgrid(x, y)[0] * np.meshgrid(x, y)[1]"),
    ("x: f64[3], y: f64[2]", "np.meshgrid(x, y, indexing='ij', sparse=True)[1] * x[:, None]"),
    ("x: f64[2,2]", "np.diagflat(x) + np.diagflat(x[0], -2)"),
    ("x: f64[3,5]", "np.cov(x)"),
    (
        "x: f64[5,3]",
        "np.cov(x, rowvar=False, bias=True) + np.sum(np.cov(x[:, 0], x[:, 1], ddof=0))",
    ),
    ("x: f64[6]", "np.cov(x * x)"),
    ("x: f64[3,5]", "np.corrcoef(x)"),
    ("x: f64[4], y: f64[4]", "np.corrcoef(x, y * y)"),
    ("fp: f64[5]", "np.interp(np.array([-1.0, 0.0, 0.5, 2.25, 4.0, 6.0]), np.arange(5.0), fp)"),
    (
        "fp: f64[3], l: f64[]",
        "np.interp(np.array([0.5, -3.0, 9.0]), np.array([0.0, 1.0, 3.0]), fp, left=l, right=2.0)",
    ),
    ("x: f64[3,4]", "x * np.round(x) + x * np.round(x, 1) + np.around(x * 100.0, -1)"),
    ("x: f64[5]", "np.where(np.signbit(x), x * x, -x)"),
    (
        "x: f64[3], y: f64[3]",
        "np.where(np.logical_or(np.isclose(x, y), np.isclose(x, 0.5, atol=0.1)), x, y * y)",
    ),
    (
        "x: f64[3,4]",
        "np.nan_to_num(np.where(HOLES4, np.nan, x)) + np.nan_to_num(np.where(HOLES4, -np.inf, x), neginf=-2.0)",
    ),
]


# module-level constants the cases may read: where NaNs go
CONSTANTS = (
    "HOLES = np.array([[False, True, False], [False, False, True]])\n"
    "HOLES4 = np.array([[True] + [False] * 3, [False] * 4, [False, True, True, False]])\n"
)


def _write(tmp_path, params, expr):
    path = write_expr(tmp_path, params, expr)
    if "HOLES" in expr:
        text = path.read_text().replace(
            "import numpy as np\n", "import numpy as np\n\n" + CONSTANTS
        )
        path.write_text(text)
    return path


@pytest.mark.parametrize("pass_set", ["all", "none"])
@pytest.mark.parametrize("params, expr", CASES, ids=[e for _, e in CASES])
def test_composite_through_pipeline(tmp_path, params, expr, pass_set):
    path = _write(tmp_path, params, expr)
    compiled, module, reports = compile_and_check(path, enabled_passes=passes.parse(pass_set))
    for r in reports:
        assert r.ok, "\n" + "\n".join(str(a) for a in r.args)
    assert_ir_matches(compiled, module)


@pytest.mark.parametrize("params, expr", CASES, ids=[e for _, e in CASES])
def test_composite_matches_jax(tmp_path, params, expr):
    path = _write(tmp_path, params, expr)
    compiled, module, _ = compile_and_check(path)
    assert_matches_jax(path, compiled, module)


def test_logaddexp_is_stable_and_splits_ties(tmp_path):
    path = write_expr(tmp_path, "x: f64[], y: f64[]", "np.logaddexp(x, y)", reduce=False)
    compiled, module, _ = compile_and_check(path)
    value, (gx, gy) = module.f_value_and_grad(800.0, 800.0)
    assert value == pytest.approx(800.0 + np.log(2.0))
    assert (gx, gy) == (0.5, 0.5)
    value, (gx, gy) = module.f_value_and_grad(-1000.0, 1.0)
    assert value == 1.0 and gx == 0.0 and gy == 1.0


def test_sinc_at_zero_is_finite(tmp_path):
    path = write_expr(tmp_path, "x: f64[3]", "np.sinc(x)", reduce=False)
    path.write_text(path.read_text().replace("return np.sinc(x)", "return np.sum(np.sinc(x))"))
    _, module, _ = compile_and_check(path)
    value, (g,) = module.f_value_and_grad(np.array([0.0, 0.5, -1.5]))
    assert value == pytest.approx(np.sum(np.sinc([0.0, 0.5, -1.5])))
    assert np.all(np.isfinite(g)) and g[0] == 0.0


def test_flip_is_a_view_as_in_numpy(tmp_path):
    """Writing into np.flip(y) writes into y, as numpy's view does."""
    path = write_source(
        tmp_path,
        """
        import numpy as np

        def f(x: "f64[3]"):
            y = x * 1.0
            v = np.flip(y)
            v[0] = x[0] * 5.0
            return np.sum(y * y)
        """,
    )
    compiled, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports)
    x = np.array([1.0, 2.0, 3.0])
    assert module.f(x) == pytest.approx(1.0 + 4.0 + 25.0)


@pytest.mark.parametrize(
    "expr, message",
    [
        ("np.pad(x, 1, mode='maximum')", "mode='maximum'"),
        ("np.var(x, where=x > 0)", "where="),
    ],
)
def test_refusals_name_the_line(tmp_path, expr, message):
    path = write_expr(tmp_path, "x: f64[3], w: f64[3]", expr)
    with pytest.raises(GradgenError) as e:
        compile_file(path)
    assert message in e.value.message and e.value.src is not None
    assert "expr.py" in e.value.render() and ":5" in e.value.render()


def test_every_composite_has_a_case():
    fronts = {fn for fn, front in NUMPY.items() if front.__qualname__.startswith("composite.")}
    names = {getattr(fn, "__name__", "") for fn in fronts}
    # every test file's text: order and linalg functions have files of their own
    written = " ".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    missing = sorted(n for n in names if n not in written)
    assert not missing, f"no test case for {missing}"


def test_reduction_methods_take_where_and_initial(tmp_path):
    """x.sum(where=..., initial=...) as np.sum (jax's array method disagrees here)."""
    expr = "x.sum(axis=1, where=np.array([[True, False, True], [False, True, True]]), initial=1.5)"
    path = write_expr(tmp_path, "x: f64[2,3]", expr)
    _, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports)
