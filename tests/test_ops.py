"""Every op of the table, through the whole pipeline and through the reference interpreter.

Parametrized over `ops.OPS` itself: a new op is tested the moment it is declared.
"""

from __future__ import annotations

import numpy as np
import pytest

from codegen import check, ops, passes
from helpers import assert_ir_matches, compile_and_check, jax_refusal, jax_x64, write_expr

# Ops that only the fuse pass creates.
FUSED = {name for name, op in ops.OPS.items() if op.fuses}
UNARY_SHAPES = ["f64[]", "f64[3]", "f64[2,3]"]
BINARY_SHAPES = [
    ("f64[]", "f64[]"),
    ("f64[3]", "f64[3]"),
    ("f64[]", "f64[2,3]"),
    ("f64[2,1]", "f64[1,3]"),
    ("f64[3]", "f64[2,3]"),
    ("f64[2,3]", "f64[1]"),
]
# Ops without a differentiable output of their own, tested inside an expression.
MASKED = {
    "gt": "np.where(x > y, x * y, x - y)",
    "ge": "np.where(x >= y, x * y, x - y)",
    "lt": "np.where(x < y, x * y, x - y)",
    "le": "np.where(x <= y, x * y, x - y)",
    "eq": "np.where(x == y, x, y) * x",
    "ne": "np.where(x != y, x * y, y)",
    "sign": "np.sign(x) * x * y",
    "where": "np.where(x > 0.3, np.exp(x), y * x)",
}


def _ufunc(op: ops.Op):
    for fn, front in ops.NUMPY.items():
        if (
            isinstance(fn, np.ufunc)
            and front.__qualname__.startswith("_ufunc_front")
            and _op_of(fn) == op.name
        ):
            return fn
    return None


def _op_of(fn) -> str | None:
    front = ops.NUMPY[fn]
    cell = front.__closure__[0].cell_contents if front.__closure__ else None
    return cell


def cases():
    for op in sorted(ops.OPS.values(), key=lambda o: o.name):
        if op.internal:
            continue
        if op.name in MASKED:
            for sx, sy in BINARY_SHAPES[:4]:
                yield pytest.param(
                    op.name, f"x: {sx}, y: {sy}", MASKED[op.name], id=f"{op.name}-{sx}-{sy}"
                )
            continue
        for k, (params, expr) in enumerate(op.examples):
            yield pytest.param(op.name, params, expr, id=f"{op.name}-ex{k}")
        fn = _ufunc(op)
        if fn is None:
            continue
        name = f"np.{fn.__name__}"
        if fn.nin == 1:
            for s in UNARY_SHAPES:
                yield pytest.param(op.name, f"x: {s}", f"{name}(x)", id=f"{op.name}-{s}")
        elif fn.nin == 2:
            for sx, sy in BINARY_SHAPES:
                yield pytest.param(
                    op.name, f"x: {sx}, y: {sy}", f"{name}(x, y)", id=f"{op.name}-{sx}-{sy}"
                )


@pytest.mark.parametrize("pass_set", ["all", "none"])
@pytest.mark.parametrize("op_name, params, expr", list(cases()))
def test_op_through_pipeline(tmp_path, op_name, params, expr, pass_set):
    """Correct with every pass on and with every pass off."""
    path = write_expr(tmp_path, params, expr)
    enabled = passes.parse(pass_set)
    compiled, module, reports = compile_and_check(path, enabled_passes=enabled)
    for r in reports:
        assert r.ok, "\n" + "\n".join(str(a) for a in r.args)
    assert_ir_matches(compiled, module)
    used = {n.op for t in compiled.functions for n in t.forward.nodes + t.optimized.nodes}
    assert op_name in used or (
        op_name in FUSED and "fuse" not in enabled
    ), f"{expr} did not trace to {op_name}"


def test_every_op_is_complete():
    """Every op has evaluation, emission and a VJP rule (or is declared non-differentiable)."""
    no_gradient = {"gt", "ge", "lt", "le", "eq", "ne", "sign", "floor", "ceil", "trunc", "rint"}
    for op in ops.OPS.values():
        assert op.eval is not None, op.name
        assert op.py is not None or op.py_stmts is not None, op.name
        assert op.gate, op.name
        assert (op.vjp is None) == (op.name in no_gradient), op.name
        assert (
            op.internal or op.examples or _ufunc(op) or op.name in MASKED
        ), f"{op.name} has no test case"


@pytest.mark.parametrize("op_name, params, expr", list(cases()))
def test_op_matches_jax(tmp_path, op_name, params, expr):
    """The same expression differentiated by jax.grad (skipped where jax is absent, and
    where jax.numpy itself refuses the expression: see helpers.jax_refusal)."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    path = write_expr(tmp_path, params, expr)
    compiled, module, _ = compile_and_check(path)
    t = compiled.functions[0]
    args, _ = check.draw_point(t.spec.params, t.forward, np.random.default_rng(5))
    value, got = module.f_value_and_grad(*[a if a.ndim else float(a) for a in args])
    namespace: dict = {}
    source = path.read_text().replace("import numpy as np", "")
    exec(compile(source, str(path), "exec"), {"np": jnp, "__name__": "jaxed"}, namespace)
    with jax_x64(jax):
        jargs = [jnp.asarray(a) for a in args]
        value_and_grad = jax.value_and_grad(namespace["f"], argnums=tuple(range(len(args))))
        try:  # jax alone runs here: the user's expression on jax.numpy
            want_value, want = value_and_grad(*jargs)
        except Exception as e:
            refusal = jax_refusal(e)
            if refusal is None:
                raise
            pytest.skip(f"jax.numpy does not take this expression: {refusal}")
    np.testing.assert_allclose(value, np.asarray(want_value), rtol=1e-12, atol=1e-12)
    assert len(got) == len(want)
    for ours, theirs in zip(got, want):
        np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-9, atol=1e-12)


def test_jax_refusal_is_jax_refusing_only():
    """helpers.jax_refusal, which the jax cross-checks skip on: jax declining numpy (an
    assignment into an array) is a refusal; gradgen's code raising, or another error, is not."""
    pytest.importorskip("jax")
    import jax.numpy as jnp

    with pytest.raises(TypeError) as declined:
        jnp.zeros(3)[0] = 1.0
    assert jax_refusal(declined.value)
    with pytest.raises((TypeError, AttributeError)) as ours:
        check.draw_point(None, None, np.random.default_rng(0))
    assert jax_refusal(ours.value) is None
    assert jax_refusal(TypeError("unsupported operand type(s) for +: 'int' and 'str'")) is None
    assert jax_refusal(ValueError("Incompatible shapes for broadcasting")) is None
