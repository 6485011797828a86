"""Order: sort, argsort/argmax/argmin as indices, take_along_axis, median and quantiles,
through the whole pipeline (the op table's own examples run in tests/test_ops.py)."""

from __future__ import annotations

import numpy as np
import pytest

from codegen import passes
from codegen.errors import GradgenError
from codegen.pipeline import compile_file
from helpers import assert_ir_matches, compile_and_check, write_expr, write_source

CASES = [
    ("x: f64[6], w: f64[6]", "np.sort(x) * w"),
    ("x: f64[3,4]", "np.sort(x, axis=0) * np.arange(12.0).reshape(3, 4)"),
    ("x: f64[3,4]", "-np.sort(-x) * np.arange(4.0)"),
    ("x: f64[5]", "np.median(x)"),
    ("x: f64[6]", "np.median(x * x)"),
    ("x: f64[3,4]", "np.median(x, axis=1)"),
    ("x: f64[3,4]", "np.median(x, axis=0, keepdims=True) * x"),
    ("x: f64[2,3,4]", "np.median(x, axis=(0, 2))"),
    ("x: f64[7]", "np.percentile(x, 30)"),
    ("x: f64[7]", "np.percentile(x, [10, 50, 90])"),
    ("x: f64[3,5]", "np.quantile(x, 0.75, axis=1)"),
    ("x: f64[3,5]", "np.quantile(x, [0.2, 0.6], axis=0, keepdims=True)"),
    ("x: f64[4,3]", "np.take_along_axis(x, np.array([[0], [2], [1], [1]]), axis=1)"),
    ("x: f64[4,3]", "x[np.arange(4), np.argmax(x, axis=1)]"),
    ("x: f64[4,3]", "np.take_along_axis(x, np.argmin(x, axis=0, keepdims=True), axis=0)"),
    ("x: f64[5], y: f64[5]", "y[np.argsort(x)] * np.arange(5.0)"),
    ("x: f64[6]", "np.partition(x, 2)[2] + np.sum(np.partition(x, 3)[:3])"),
    ("x: f64[6], y: f64[6]", "y[np.argpartition(x, 1)[:2]]"),
    ("x: f64[2,3]", "_put(x)"),
    # indices where a constant condition holds: numpy's own, as integer constants
    ("x: f64[5]", "x[np.where(np.arange(5) % 2 == 0)] * 2.0"),
    ("x: f64[3,4]", "x[np.nonzero(np.eye(3, 4) + np.zeros_like(x) > 0)]"),
    ("x: f64[5]", "x[np.flatnonzero(np.zeros_like(x) < np.arange(5) % 3)]"),
    ("x: f64[3,4]", "x[tuple(np.argwhere(np.tril(np.ones_like(x)) > 0).T)]"),
    ("x: f64[3,4]", "x[np.where(np.ones_like(x) * np.arange(4) > 1.5)]"),
]


PUT = """

def _put(x):
    out = np.zeros((2, 3))
    np.put_along_axis(out, np.array([[2], [0]]), x[:, :1] * 3.0, axis=1)
    np.put_along_axis(out, np.array([[0, 1], [1, 2]]), x[:, 1:], axis=1)
    return out
"""


@pytest.mark.parametrize("pass_set", ["all", "none"])
@pytest.mark.parametrize("params, expr", CASES, ids=[e for _, e in CASES])
def test_order_through_pipeline(tmp_path, params, expr, pass_set):
    path = write_expr(tmp_path, params, expr)
    if "_put(" in expr:  # a helper of the expr module: put_along_axis returns nothing
        text = path.read_text().replace("import numpy as np\n", "import numpy as np\n" + PUT)
        path.write_text(text)
    compiled, module, reports = compile_and_check(path, enabled_passes=passes.parse(pass_set))
    for r in reports:
        assert r.ok, "\n" + "\n".join(str(a) for a in r.args)
    assert_ir_matches(compiled, module)


def test_sort_gradient_follows_the_permutation(tmp_path):
    path = write_expr(tmp_path, "x: f64[4]", "np.sum(np.sort(x) * np.arange(4.0))", reduce=False)
    _, module, _ = compile_and_check(path)
    x = np.array([3.0, -1.0, 2.0, 0.5])
    value, (g,) = module.f_value_and_grad(x)
    assert value == pytest.approx(np.sum(np.sort(x) * np.arange(4.0)))
    np.testing.assert_array_equal(g, [3.0, 0.0, 2.0, 1.0])


def test_median_routes_to_the_middle(tmp_path):
    path = write_expr(tmp_path, "x: f64[4]", "np.median(x)", reduce=False)
    _, module, _ = compile_and_check(path)
    value, (g,) = module.f_value_and_grad(np.array([4.0, 1.0, 3.0, 2.0]))
    assert value == 2.5
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.5, 0.5])


def test_argmax_value_matches_numpy(tmp_path):
    path = write_expr(
        tmp_path, "x: f64[3,4]", "x[np.argmax(x, axis=0), np.arange(4)]", reduce=False
    )
    _, module, _ = compile_and_check(path)
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(module.f(x), x[np.argmax(x, axis=0), np.arange(4)])


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "y = x * 1.0\n    y[np.argmax(x)] = 0.0\n    return np.sum(y)",
            "computed from the parameters",
        ),
        ("return np.quantile(x, 0.5, method='weibull')", "the methods supported are linear"),
        ("return np.percentile(x, 120)", "range [0, 100]"),
        ("return np.sum(np.take_along_axis(x, np.array([0.5]), axis=0))", "integer array"),
    ],
)
def test_refusals_name_the_line(tmp_path, body, message):
    path = write_source(tmp_path, f'import numpy as np\n\n\ndef f(x: "f64[4]"):\n    {body}\n')
    with pytest.raises(GradgenError) as e:
        compile_file(path)
    assert message in e.value.message, e.value.message
    assert "expr.py:" in e.value.render()


@pytest.mark.parametrize(
    "call, named",
    [
        ("np.where(x > 0.0)", "np.where(cond) with one argument"),
        ("np.nonzero(x > 0.0)", "np.nonzero(cond)"),
        ("np.flatnonzero(x * x > 0.5)", "np.flatnonzero(cond)"),
        ("np.argwhere(x > 0.0)[:, 0]", "np.argwhere(cond)"),
    ],
)
def test_indices_of_a_traced_condition_are_refused_at_the_line(tmp_path, call, named):
    """How many indices there are depends on the values: refused, naming the user's line
    and pointing at np.where(cond, a, b), which keeps the shape."""
    path = write_source(
        tmp_path,
        f'import numpy as np\n\n\ndef f(x: "f64[4]"):\n    i = {call}\n    return np.sum(x[i])\n',
    )
    with pytest.raises(GradgenError) as e:
        compile_file(path)
    assert e.value.message.startswith(f"{named} gives the indices"), e.value.message
    assert "depend on the parameters' values" in e.value.message
    assert "np.where(cond, a, b)" in e.value.hint
    assert "expr.py:5" in e.value.render()


def test_two_argument_where_is_numpy_s_error(tmp_path):
    path = write_expr(tmp_path, "x: f64[4]", "np.where(x > 0, x)")
    with pytest.raises(GradgenError) as e:
        compile_file(path)
    assert "one argument (cond) or three (cond, x, y)" in e.value.message
