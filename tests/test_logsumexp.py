"""The logsumexp fusion (codegen/ops/fused.py): the stable idiom m + log(sum(exp(x - m)))
with m = max(x), and the plain log(sum(exp(x))), become one op whose code is the stable
form and whose gradient is the softmax exp(x - lse)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from codegen import passes
from codegen.pipeline import compile_file
from helpers import (
    assert_checked,
    assert_ir_matches,
    assert_matches_jax,
    compile_and_check,
    needs_passes,
    write_source,
)

# (parameters, body lines, reference lse of x along its reduction): as users write them
FORMS = {
    "keepdims": (
        "x: f64[3,4]",
        [
            "m = np.max(x, axis=1, keepdims=True)",
            "return m + np.log(np.sum(np.exp(x - m), axis=1, keepdims=True))",
        ],
    ),
    "newaxis": (
        "x: f64[3,4]",
        ["m = np.max(x, axis=1)", "return m + np.log(np.sum(np.exp(x - m[:, None]), axis=1))"],
    ),
    "method, sum first": (
        "x: f64[3,4]",
        [
            "m = x.max(axis=-1, keepdims=True)",
            "return np.log(np.exp(x - m).sum(axis=-1)) + m[:, 0]",
        ],
    ),
    "axis 0": (
        "x: f64[3,4]",
        ["m = np.max(x, axis=0)", "return m + np.log(np.sum(np.exp(x - m), axis=0))"],
    ),
    "all": ("x: f64[5]", ["m = np.max(x)", "return m + np.log(np.sum(np.exp(x - m)))"]),
    "two axes": (
        "x: f64[2,3,4]",
        [
            "m = np.max(x, axis=(0, 2), keepdims=True)",
            "return np.log(np.sum(np.exp(x - m), axis=(0, 2), keepdims=True)) + m",
        ],
    ),
    "plain": ("x: f64[5]", ["return np.log(np.sum(np.exp(x)))"]),
    "plain, axis": ("x: f64[3,4]", ["return np.log(np.exp(x).sum(axis=1))"]),
    "plain, scaled": ("x: f64[3,4]", ["return np.log(np.sum(np.exp(2.0 * x), axis=0))"]),
}
AXES = {
    "keepdims": (1, True),
    "newaxis": (1, False),
    "method, sum first": (1, False),
    "axis 0": (0, False),
    "all": (None, False),
    "two axes": ((0, 2), True),
    "plain": (None, False),
    "plain, axis": (1, False),
    "plain, scaled": (0, False),
}


def _write(tmp_path, params: str, body: list[str], reduce: str = "np.sum(np.sin(v))"):
    name, shape = (s.strip() for s in params.split(":"))
    lines = "\n".join(f"    {b}" for b in body[:-1])
    value = body[-1].removeprefix("return ")
    return write_source(
        tmp_path,
        f'import numpy as np\n\n\ndef _lse(x: "{shape}"):\n{lines}\n    return {value}\n\n\n'
        f'def f(x: "{shape}"):\n    v = _lse(x)\n    return {reduce}\n',
    )


def _reference(x: np.ndarray, axis, keepdims: bool) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def _ops(compiled) -> set[str]:
    return {n.op for t in compiled.functions for n in t.optimized.nodes}


@pytest.mark.parametrize("pass_set", ["all", "none"])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_forms_check_and_match_the_interpreter(tmp_path, form, pass_set):
    params, body = FORMS[form]
    path = _write(tmp_path, params, body)
    compiled, module, reports = compile_and_check(path, enabled_passes=passes.parse(pass_set))
    assert_checked(reports, compiled.source)
    assert_ir_matches(compiled, module)
    if pass_set == "all" and "fuse" in passes.default_enabled():
        assert "logsumexp" in _ops(compiled), compiled.source
    if pass_set == "all":
        assert_matches_jax(path, compiled, module)


@needs_passes
@pytest.mark.parametrize("form", sorted(FORMS))
def test_emitted_code_is_the_stable_form(tmp_path, form):
    params, body = FORMS[form]
    source = compile_file(_write(tmp_path, params, body)).source
    forward = source.split("def f(")[1].split("\ndef ")[0]
    # m = x.max(...), then m + log(sum(exp(x - m)))
    stable = re.search(r"(\w+) = (\w+)\.max\(.*\n.*np\.log\(np\.exp\(\2 - \1\)\.sum\(", forward)
    assert stable, forward
    assert "logsumexp gate: softmax, exp(x - lse)" in source


@needs_passes
@pytest.mark.parametrize("form", sorted(FORMS))
def test_large_inputs_do_not_overflow(tmp_path, form):
    """At x ~ 1000 exp(x) overflows; the stable value and its softmax gradient do not."""
    params, body = FORMS[form]
    path = _write(
        tmp_path, params, body, reduce="np.sum(v * np.arange(1.0, v.size + 1.0).reshape(v.shape))"
    )
    compiled, module, _ = compile_and_check(path)
    shape = compiled.functions[0].spec.params[0].shape
    rng = np.random.default_rng(0)
    x = 1000.0 + rng.standard_normal(shape)
    axis, keepdims = AXES[form]
    if form == "plain, scaled":
        x = x / 2.0  # the function reads exp(2x)
        lse = _reference(2.0 * x, axis, keepdims)
    else:
        lse = _reference(x, axis, keepdims)
    weights = np.arange(1.0, lse.size + 1.0).reshape(lse.shape)
    value, (g,) = module.f_value_and_grad(x)
    assert np.isfinite(value) and np.all(np.isfinite(g))
    np.testing.assert_allclose(value, np.sum(lse * weights), rtol=1e-13)
    # the gradient: each output's weight times its softmax
    scale = 2.0 if form == "plain, scaled" else 1.0
    kept = _reference(scale * x, axis, True)
    soft = np.exp(scale * x - kept)
    w = weights.reshape(kept.shape) if keepdims else np.reshape(weights, kept.shape)
    np.testing.assert_allclose(g, scale * w * soft, rtol=1e-10, atol=1e-12)
    if form.startswith("plain"):
        with np.errstate(all="ignore"):
            assert not np.isfinite(compiled.functions[0].spec.fn(x))  # numpy's own overflows


@needs_passes
def test_a_softmax_already_shifted_is_left_as_written(tmp_path):
    """z - log(sum(exp(z))) with z = x - max(x) is stable as written, and its backward reads
    the saved exp(z): no logsumexp (the mlp example's cross-entropy)."""
    path = write_source(
        tmp_path,
        """
        import numpy as np

        def f(x: "f64[3,4]"):
            z = x - np.max(x, axis=1, keepdims=True)
            logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
            return np.sum(logp * np.arange(12.0).reshape(3, 4))
        """,
    )
    compiled, _, reports = compile_and_check(path)
    assert_checked(reports)
    assert "logsumexp" not in _ops(compiled)


@needs_passes
@pytest.mark.parametrize(
    "body",
    [
        # another shift than the max over the summed axes: as written
        ["m = np.max(x)", "return m + np.log(np.sum(np.exp(x - m), axis=1))"],
        ["m = np.max(x, axis=0)", "return 2.0 * m + np.log(np.sum(np.exp(x - m), axis=0))"],
        [
            "m = np.min(x, axis=1, keepdims=True)",
            "return m + np.log(np.sum(np.exp(x - m), axis=1, keepdims=True))",
        ],
    ],
)
def test_near_misses_are_not_fused(tmp_path, body):
    path = _write(tmp_path, "x: f64[3,4]", body)
    compiled, module, reports = compile_and_check(path)
    assert_checked(reports)
    assert "logsumexp" not in _ops(compiled)
    assert_ir_matches(compiled, module)


@needs_passes
def test_f32_keeps_its_dtype(tmp_path):
    path = write_source(
        tmp_path,
        """
        import numpy as np

        def f(x: "f32[3,4]"):
            return np.sum(np.log(np.sum(np.exp(x), axis=1)) ** 2)
        """,
    )
    compiled, module, reports = compile_and_check(path)
    assert_checked(reports)
    assert "logsumexp" in _ops(compiled)
    x = np.full((3, 4), 200.0, dtype=np.float32)  # exp(200) overflows float32
    value, (g,) = module.f_value_and_grad(x)
    assert g.dtype == np.float32 and np.all(np.isfinite(g))
    np.testing.assert_allclose(value, 3 * (200.0 + np.log(4.0)) ** 2, rtol=1e-5)
