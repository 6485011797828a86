"""The hand-written gradients are right: checked against central differences.

The reference is each case's own expr function, run as plain numpy. Run with
``python -m pytest bench/test_handwritten.py``; needs only numpy and pytest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from systems import CASE_NAMES, handwritten, load_case  # noqa: E402

# DESIGN's check is |a - n| <= 1e-6 + 1e-5 |n|; the mlp gradients are ~1e-3, so a tighter
# absolute part keeps a 0.1% error from passing. Central-difference noise here is < 1e-7.
ATOL, RTOL = 1e-7, 1e-5
DIRECTIONS = 4  # random unit directions for a large argument
ELEMENTS = 4  # random single elements for a large argument
SMALL = 64  # an argument with at most this many elements is checked element by element


def _loaded(name):
    module = load_case(name)
    return module, getattr(module, name), handwritten.build(name, module)


def _step(x: np.ndarray) -> float:
    return 1e-6 * max(1.0, float(np.max(np.abs(x))))


def _central(f, args, i, v):
    """(f(x + hv) - f(x - hv)) / 2h along direction v of argument i."""
    x = np.asarray(args[i], dtype=np.float64)
    h = _step(x)
    plus, minus = list(args), list(args)
    plus[i] = x + h * v
    minus[i] = x - h * v
    if x.ndim == 0:
        plus[i], minus[i] = float(plus[i]), float(minus[i])
    return (float(f(*plus)) - float(f(*minus))) / (2 * h)


def _directions(shape, rng):
    size = int(np.prod(shape))
    if size <= SMALL:
        for k in range(size):
            v = np.zeros(size)
            v[k] = 1.0
            yield f"element {k}", v.reshape(shape)
        return
    for k in range(DIRECTIONS):
        v = rng.normal(size=shape)
        yield f"direction {k}", v / np.linalg.norm(v)
    for k in rng.choice(size, ELEMENTS, replace=False):
        v = np.zeros(size)
        v[k] = 1.0
        yield f"element {k}", v.reshape(shape)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_forward_matches_expr(name):
    """Hand-written forward and value_and_grad return the expr function's value."""
    module, f, impl = _loaded(name)
    args = module._bench_args(np.random.default_rng(0))
    expected = float(f(*args))
    assert float(impl.forward(*args)) == pytest.approx(expected, rel=1e-12, abs=1e-300)
    value, grads = impl.value_and_grad(*args)
    assert float(value) == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert len(grads) == len(args)
    for g, a in zip(grads, args):
        assert np.shape(g) == np.shape(a)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_gradient_matches_central_differences(name):
    """<grad, v> agrees with a central difference of the expr function along v."""
    module, f, impl = _loaded(name)
    rng = np.random.default_rng(1)
    args = module._bench_args(rng)
    _, grads = impl.value_and_grad(*args)
    for i, (a, g) in enumerate(zip(args, grads)):
        g = np.asarray(g, dtype=np.float64)
        for label, v in _directions(np.shape(a), rng):
            analytic = float(np.sum(g * v))
            numeric = _central(f, args, i, v)
            assert abs(analytic - numeric) <= ATOL + RTOL * abs(
                numeric
            ), f"{name} arg {i} {label}: analytic {analytic!r}, numeric {numeric!r}"


def test_inputs_are_not_modified():
    """In-place tricks in the hand-written code never touch the caller's arrays."""
    for name in CASE_NAMES:
        module, _, impl = _loaded(name)
        args = module._bench_args(np.random.default_rng(2))
        copies = [np.copy(a) for a in args]
        impl.forward(*args)
        impl.value_and_grad(*args)
        for a, c in zip(args, copies):
            assert np.array_equal(a, c), name
