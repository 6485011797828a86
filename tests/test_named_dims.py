"""Named dims: code traced at one size runs at another, or says it cannot."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import compile_and_check, write_source, needs_passes

POLYMORPHIC = """
import numpy as np

DIMS = {"n": 4}


def f(x: "f64[n,3]", w: "f64[3]", b: "f64[]"):
    h = np.tanh(x * w + b)
    return np.sum(h * h) + np.sum(x)
"""

SIZE_BOUND = """
import numpy as np

DIMS = {"n": 4}


def f(x: "f64[n]"):
    return np.sum(np.reshape(x, (2, 2)) * 3.0)
"""


def numeric_grad(fn, args, k, h=1e-6):
    x = args[k]
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        plus = [a + e if i == k else a for i, a in enumerate(args)]
        minus = [a - e if i == k else a for i, a in enumerate(args)]
        g[idx] = (fn(*plus) - fn(*minus)) / (2 * h)
    return g


@needs_passes
def test_module_traced_at_4_runs_at_7(tmp_path):
    compiled, module, reports = compile_and_check(write_source(tmp_path, POLYMORPHIC))
    assert all(r.ok for r in reports)
    assert compiled.specialized == {}
    assert (
        "raise ValueError" not in compiled.source.split("def f_value_and_grad")[1].split("def ")[0]
    )
    rng = np.random.default_rng(0)
    fn = compiled.functions[0].spec.fn
    for n in (4, 7):
        args = [rng.standard_normal((n, 3)), rng.standard_normal(3), np.float64(0.3)]
        value, grads = module.f_value_and_grad(*args)
        np.testing.assert_allclose(value, fn(*args), rtol=1e-12)
        for k in range(3):
            np.testing.assert_allclose(grads[k], numeric_grad(fn, args, k), rtol=1e-6, atol=1e-8)


def test_size_bound_code_is_specialized_and_guarded(tmp_path):
    compiled, module, reports = compile_and_check(write_source(tmp_path, SIZE_BOUND))
    assert all(r.ok for r in reports)
    assert compiled.specialized == {"n": 4}
    assert "reshape" in compiled.reasons["n"]
    with pytest.raises(ValueError, match="generated for n=4"):
        module.f_value_and_grad(np.ones(7))
    value, (g,) = module.f_value_and_grad(np.ones(4))
    assert value == 12.0 and list(g) == [3.0] * 4
