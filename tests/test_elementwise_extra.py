"""The elementwise ops beyond the classic gates: gradients at hand-computed points, the scalar
(math) form of the generated code, clip's routing at ties, pow's constant bases, and a
cross-check of a composite expression against jax.grad where jax is installed.

tests/test_ops.py already runs every op through the pipeline at random points; the values
here are the ones a person can verify on paper.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from codegen.errors import GradgenError
from helpers import compile_and_check, write_expr, write_source

LN2, LN3, LN10 = math.log(2.0), math.log(3.0), math.log(10.0)

# (expression in x, point, d/dx there)
UNARY = [
    ("np.arctan(x)", 1.0, 0.5),  # 1 / (1 + 1)
    ("np.arcsin(x)", 0.5, 1 / math.sqrt(0.75)),
    ("np.arccos(x)", 0.5, -1 / math.sqrt(0.75)),
    ("np.log1p(x)", 1.0, 0.5),
    ("np.expm1(x)", LN2, 2.0),  # e^x
    ("np.tan(x)", math.pi / 4, 2.0),  # 1 + tan^2
    ("np.sinh(x)", LN2, 1.25),  # cosh(ln 2) = (2 + 1/2) / 2
    ("np.cosh(x)", LN2, 0.75),  # sinh(ln 2) = (2 - 1/2) / 2
    ("np.exp2(x)", 3.0, 8 * LN2),
    ("np.log2(x)", 4.0, 1 / (4 * LN2)),
    ("np.log10(x)", 10.0, 1 / (10 * LN10)),
    ("2.0 ** x", 3.0, 8 * LN2),
    ("0.0 ** x", 2.0, 0.0),  # flat, not 0 * log 0 = nan
    ("x ** 3", 2.0, 12.0),
    ("np.power(x, 0.5)", 4.0, 0.25),
    ("np.float_power(x, 3)", 2.0, 12.0),
    ("np.square(x)", 3.0, 6.0),
    ("np.reciprocal(x)", 2.0, -0.25),
    ("np.sqrt(x)", 4.0, 0.25),
    ("np.negative(x)", 2.0, -1.0),
    ("np.positive(x)", 2.0, 1.0),
    ("np.fabs(x)", -2.0, -1.0),
    ("np.clip(x, 0.0, 1.0)", 0.5, 1.0),
    ("np.clip(x, 0.0, 1.0)", 2.0, 0.0),
    ("np.clip(x, 0.0, 1.0)", 1.0, 0.5),  # a tie at a bound: see test_clip_tie_is_central
    ("np.clip(x, max=1.0)", -3.0, 1.0),  # x.clip(min=lo): an example of maximum
]


def _compile(tmp_path, params: str, expr: str, stem: str = "expr"):
    """The generated module for `def f(PARAMS): return EXPR`, numerically checked."""
    path = write_expr(tmp_path, params, expr, stem=stem, reduce=False)
    compiled, module, reports = compile_and_check(path)
    for r in reports:
        assert r.ok, "\n" + "\n".join(str(a) for a in r.args)
    return compiled, module


@pytest.mark.parametrize("expr, x, expected", UNARY, ids=[f"{e}@{x:g}" for e, x, _ in UNARY])
def test_unary_gradient_by_hand(tmp_path, expr, x, expected):
    """Scalar code (math form) and array code (numpy form) give the same, known slope."""
    _, scalar = _compile(tmp_path, "x: f64[]", expr, "scalar")
    _, (grad,) = scalar.f_value_and_grad(x)
    assert grad == pytest.approx(expected, rel=1e-12, abs=1e-15)
    _, array = _compile(tmp_path, "x: f64[2]", f"np.sum({expr})", "array")
    _, (grads,) = array.f_value_and_grad(np.array([x, x]))
    np.testing.assert_allclose(grads, [expected, expected], rtol=1e-12, atol=1e-15)


# (expression, point, gradient)
SEVERAL = [
    ("x: f64[], y: f64[]", "np.hypot(x, y)", (3.0, 4.0), (0.6, 0.8)),
    ("x: f64[], y: f64[]", "np.arctan2(x, y)", (1.0, 1.0), (0.5, -0.5)),
    ("x: f64[], y: f64[]", "x ** y", (2.0, 3.0), (12.0, 8 * LN2)),
    ("x: f64[], y: f64[]", "np.float_power(x, y)", (2.0, 3.0), (12.0, 8 * LN2)),
    ("x: f64[], lo: f64[], hi: f64[]", "np.clip(x, lo, hi)", (0.5, 0.0, 1.0), (1, 0, 0)),
    ("x: f64[], lo: f64[], hi: f64[]", "np.clip(x, lo, hi)", (-1.0, 0.0, 1.0), (0, 1, 0)),
    ("x: f64[], lo: f64[], hi: f64[]", "np.clip(x, lo, hi)", (2.0, 0.0, 1.0), (0, 0, 1)),
    ("x: f64[], lo: f64[], hi: f64[]", "np.clip(x, lo, hi)", (0.0, 0.0, 1.0), (0.5, 0.5, 0)),
    ("x: f64[], hi: f64[]", "np.clip(x, a_min=None, a_max=hi)", (2.0, 1.0), (0, 1)),
]


@pytest.mark.parametrize("params, expr, point, expected", SEVERAL, ids=[s[1] for s in SEVERAL])
def test_several_inputs_by_hand(tmp_path, params, expr, point, expected):
    _, module = _compile(tmp_path, params, expr)
    _, grads = module.f_value_and_grad(*point)
    np.testing.assert_allclose(grads, expected, rtol=1e-12, atol=1e-15)


CLIP = """
import numpy as np


def scalar(x: "f64[]", lo: "f64[]", hi: "f64[]"):
    return np.clip(x, lo, hi)


def array(x: "f64[2]", lo: "f64[]", hi: "f64[]"):
    return np.sum(np.clip(x, lo, hi))
"""


def test_clip_tie_is_central(tmp_path):
    """At x on a bound, clip's slope is 1 on one side and 0 on the other: the central
    difference sees 1/2 for x and for the bound that ties, and gradgen's code (max/min
    gates splitting ties evenly, in scalar and in array code) gives the same."""
    _, module, reports = compile_and_check(write_source(tmp_path, CLIP))
    for r in reports:  # the check's random points are off the ties: the ties are below
        assert r.ok, "\n" + "\n".join(str(a) for a in r.args)
    h = 1e-6
    for x, lo, hi in [(0.0, 0.0, 1.0), (1.0, 0.0, 1.0), (-0.5, -0.5, 2.0)]:
        dx = (np.clip(x + h, lo, hi) - np.clip(x - h, lo, hi)) / (2 * h)
        d_lo = (np.clip(x, lo + h, hi) - np.clip(x, lo - h, hi)) / (2 * h)
        d_hi = (np.clip(x, lo, hi + h) - np.clip(x, lo, hi - h)) / (2 * h)
        central = (dx, d_lo, d_hi)
        expected = (0.5, 0.5, 0.0) if x == lo else (0.5, 0.0, 0.5)
        np.testing.assert_allclose(central, expected, atol=1e-9)
        value, grads = module.scalar_value_and_grad(x, lo, hi)
        assert value == x
        np.testing.assert_allclose(grads, central, atol=1e-9, err_msg=f"scalar at {x, lo, hi}")
        # array code: one element on the tie, one strictly inside (slope 1, bounds 0)
        inside = (lo + hi) / 2
        value, (gx, g_lo, g_hi) = module.array_value_and_grad(np.array([x, inside]), lo, hi)
        assert value == x + inside
        np.testing.assert_allclose(gx, [dx, 1.0], atol=1e-9, err_msg=f"array at {x, lo, hi}")
        np.testing.assert_allclose((g_lo, g_hi), (d_lo, d_hi), atol=1e-9)


def test_clip_needs_a_bound(tmp_path):
    path = write_expr(tmp_path, "x: f64[3]", "np.clip(x, None, None)")
    with pytest.raises(GradgenError, match="bound"):
        compile_and_check(path)


def test_pow_with_constant_arrays(tmp_path):
    """A constant base array (a zero in it contributes 0), a constant integer exponent array."""
    path = write_source(
        tmp_path,
        """
        import numpy as np

        BASES = np.array([0.0, 2.0, 3.0])
        POWERS = np.array([1, 2, 3])


        def f(y: "f64[]", x: "f64[3]"):
            return np.sum(BASES**y) + np.sum(x**POWERS)
        """,
    )
    _, module, reports = compile_and_check(path)
    assert all(r.ok for r in reports)
    _, (g_y, g_x) = module.f_value_and_grad(2.0, np.array([2.0, 2.0, 2.0]))
    assert g_y == pytest.approx(4 * LN2 + 9 * LN3, rel=1e-12)
    np.testing.assert_allclose(g_x, [1.0, 4.0, 12.0], rtol=1e-12)


# The scalar form: math functions on Python floats, operators where they read better.
SCALAR_TEXT = [
    ("np.arctan(x)", "math.atan(x)"),
    ("np.arcsin(x)", "math.asin(x)"),
    ("np.arccos(x)", "math.acos(x)"),
    ("np.log1p(x)", "math.log1p(x)"),
    ("np.expm1(x)", "math.expm1(x)"),
    ("np.tan(x)", "math.tan(x)"),
    ("np.sinh(x)", "math.sinh(x)"),
    ("np.cosh(x)", "math.cosh(x)"),
    ("np.log2(x)", "math.log2(x)"),
    ("np.log10(x)", "math.log10(x)"),
    ("np.exp2(x)", "2.0**x"),  # math.exp2 needs Python 3.11
    ("np.square(x)", "x**2"),
    ("np.reciprocal(x)", "1.0 / x"),
    ("np.sqrt(x)", "math.sqrt(x)"),
    ("np.hypot(x, y)", "math.hypot(x, y)"),
    ("np.arctan2(x, y)", "math.atan2(x, y)"),
    ("x ** y", "math.pow(x, y)"),
    ("np.clip(x, y, 1.0)", "min(max(x, y), 1.0)"),
]


@pytest.mark.parametrize("expr, text", SCALAR_TEXT, ids=[t for _, t in SCALAR_TEXT])
def test_scalar_code_is_math(tmp_path, expr, text):
    """f64 scalars get math / operator code, which returns Python floats, and no numpy."""
    compiled, module = _compile(tmp_path, "x: f64[], y: f64[]", expr)
    forward = compiled.source.split("def f(")[1].split("def ")[0]
    assert text in forward and "np." not in forward, forward
    assert type(module.f(0.5, 0.25)) is float


def test_scalar_pow_never_turns_complex(tmp_path):
    """Python's (-8.0) ** (1/3) is a complex number; the generated math.pow raises instead,
    like math.log(-1.0), where numpy would give nan."""
    _, module = _compile(tmp_path, "x: f64[], y: f64[]", "x ** y")
    with pytest.raises(ValueError):
        module.f(-8.0, 1.0 / 3.0)


COMPOSITE = (
    "np.log1p(x * x) + np.expm1(0.3 * y) + np.tan(0.4 * np.tanh(x)) + np.arctan(y)"
    " + np.arcsin(0.5 * np.tanh(x)) * np.arccos(0.4 * np.tanh(y)) + np.sinh(x) * np.cosh(s * y)"
    " + np.exp2(x) + np.log2(1.0 + y * y) + np.log10(2.0 + x * x) + np.hypot(x, y)"
    " + np.arctan2(y, x + 3.0) + np.clip(y, -0.5, s) + 1.5**x + (1.0 + y * y) ** s"
    " + np.float_power(2.0 + np.tanh(x), y) + np.square(y) + np.reciprocal(2.0 + np.tanh(y))"
    " + np.fabs(y) + np.negative(x) * np.positive(s)"
)


def _x64(jax):
    """jax's float64 switch: jax.enable_x64 in recent versions, jax.experimental's before."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


@pytest.mark.parametrize(
    "params, shapes",
    [
        ("x: f64[], y: f64[], s: f64[]", [(), (), ()]),
        ("x: f64[3], y: f64[2,3], s: f64[]", [(3,), (2, 3), ()]),
    ],
    ids=["scalars", "arrays"],
)
def test_composite_matches_jax(tmp_path, params, shapes):
    """Every new op in one expression, broadcasting included, against jax.grad in float64."""
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    _, module = _compile(tmp_path, params, f"np.sum({COMPOSITE})")
    reference = eval(f"lambda x, y, s: jnp.sum({COMPOSITE.replace('np.', 'jnp.')})", {"jnp": jnp})
    rng = np.random.default_rng(7)
    with _x64(jax):
        # one compilation: eager jax compiles each primitive on first use, which is slow
        value_and_grad = jax.jit(jax.value_and_grad(reference, argnums=(0, 1, 2)))
        for _ in range(3):
            args = [rng.standard_normal(shape) for shape in shapes[:2]] + [np.array(0.7)]
            value, grads = module.f_value_and_grad(*[a if a.ndim else float(a) for a in args])
            expected_value, expected = value_and_grad(*args)
            assert value == pytest.approx(float(expected_value), rel=1e-12)
            for got, want in zip(grads, expected):
                np.testing.assert_allclose(got, np.asarray(want), rtol=1e-10, atol=1e-12)
