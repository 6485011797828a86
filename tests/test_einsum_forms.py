"""np.einsum in every form: sublists, '...', repeated subscripts (diagonals and traces),
one operand or many; through the whole pipeline and against jax where installed."""

from __future__ import annotations

import numpy as np
import pytest

from codegen import passes
from codegen.errors import GradgenError
from codegen.pipeline import compile_file
from helpers import assert_ir_matches, assert_matches_jax, compile_and_check, write_expr

CASES = [
    ("a: f64[3,3]", "np.einsum('ii->i', a)"),
    ("a: f64[3,3]", "np.einsum('ii', a) * a"),
    ("a: f64[2,3,3]", "np.einsum('bii->b', a)"),
    ("a: f64[3,3], b: f64[3]", "np.einsum('ii,i->i', a, b)"),
    ("a: f64[2,3], b: f64[3,4]", "np.einsum(a, [0, 1], b, [1, 2], [0, 2])"),
    ("a: f64[2,3], b: f64[3]", "np.einsum(a, [0, 1], b, [1])"),
    ("a: f64[2,3,4], b: f64[4,5]", "np.einsum('...ij,jk->...ik', a, b)"),
    ("a: f64[2,3,4], b: f64[3,4]", "np.einsum('...ij,...ij->...', a, b)"),
    ("a: f64[2,1,4], b: f64[3,4]", "np.einsum('...j,...j->...', a, b)"),
    ("a: f64[2,3,4]", "np.einsum('...i->...', a)"),
    ("a: f64[2,3], b: f64[2,3]", "np.einsum('...,...', a, b)"),
    ("a: f64[2,3,4], b: f64[4]", "np.einsum(a, [Ellipsis, 0], b, [0], [Ellipsis])"),
    ("a: f64[2,3], b: f64[3,4], c: f64[4,2]", "np.einsum('ij,jk,ki->', a, b, c)"),
    ("a: f64[2,3], b: f64[3,4], c: f64[4]", "np.einsum('ij,jk,k->i', a, b, c)"),
    ("a: f64[3,3,3]", "np.einsum('iii->i', a)"),
    ("a: f64[3,2,3]", "np.einsum('iji->j', a)"),
]


@pytest.mark.parametrize("pass_set", ["all", "none"])
@pytest.mark.parametrize("params, expr", CASES, ids=[e for _, e in CASES])
def test_einsum_form_through_pipeline(tmp_path, params, expr, pass_set):
    path = write_expr(tmp_path, params, expr)
    compiled, module, reports = compile_and_check(path, enabled_passes=passes.parse(pass_set))
    for r in reports:
        assert r.ok, "\n" + "\n".join(str(a) for a in r.args)
    assert_ir_matches(compiled, module)


@pytest.mark.parametrize("params, expr", CASES, ids=[e for _, e in CASES])
def test_einsum_form_matches_jax(tmp_path, params, expr):
    path = write_expr(tmp_path, params, expr)
    compiled, module, _ = compile_and_check(path)
    assert_matches_jax(path, compiled, module)


@pytest.mark.parametrize(
    "expr, message",
    [
        ("np.einsum('ij,jk', a, a[:2])", "a"),
        ("np.einsum('ii', a[:2])", "differ"),
        ("np.einsum(a, [0, 99])", "range"),
    ],
)
def test_bad_einsum_names_the_line(tmp_path, expr, message):
    path = write_expr(tmp_path, "a: f64[3,3]", expr)
    with pytest.raises(GradgenError) as e:
        compile_file(path)
    assert message in e.value.message and "expr.py:5" in e.value.render()
