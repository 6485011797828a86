"""Shared test helpers: write an expr.py, run the whole pipeline, check the result."""

from __future__ import annotations

import os
import re
import textwrap
import traceback
from pathlib import Path

import numpy as np
import pytest

from codegen import check, ir
from codegen.pipeline import compile_file
from codegen.write import write_atomic

ROOT = Path(__file__).resolve().parent.parent

# Tests of what the optimized code looks like (its form, its saved set, its stats) need the
# passes; under GRADGEN_PASSES=none the rest of the suite checks that the code stays right.
needs_passes = pytest.mark.skipif(
    bool(os.environ.get("GRADGEN_PASSES")), reason="asserts the form of optimized code"
)


def write_expr(
    folder: Path, params: str, expr: str, stem: str = "expr", reduce: bool = True
) -> Path:
    """An expr.py with `def f(PARAMS): return np.sum(np.sin(EXPR))` (or EXPR as is)."""
    annotated = annotate(params)
    body = f"np.sum(np.sin({expr}))" if reduce else expr
    path = folder / f"{stem}.py"
    path.write_text(f"import numpy as np\n\n\ndef f({annotated}):\n    return {body}\n")
    return path


def write_source(folder: Path, source: str, stem: str = "expr") -> Path:
    path = folder / f"{stem}.py"
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def annotate(params: str) -> str:
    """ "x: f64[2,3], y: f64[]" as a signature's annotated parameters."""
    return ", ".join(
        f'{p.split(":")[0].strip()}: "{p.split(":")[1].strip()}"' for p in _split(params)
    )


def _split(params: str) -> list[str]:
    """Split "x: f64[2,3], y: f64[]" at the commas between parameters."""
    out, depth, cur = [], 0, ""
    for ch in params:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [p for p in out + [cur] if p.strip()]


def compile_and_check(path: Path, out: Path | None = None, **kwargs):
    """Compile, write, import and numerically check: returns (compiled, module, reports)."""
    compiled = compile_file(path, **kwargs)
    target = (out or path.parent / "out") / f"{path.stem}_grad.py"
    write_atomic(target, compiled.source)
    module = check.import_path(target)
    reports = [check.check_function(module, t.spec, t.forward, t.wrt) for t in compiled.functions]
    return compiled, module, reports


def assert_checked(reports, source: str = "") -> None:
    """Every numeric check passed; on failure, the check's own table for each failed one
    (and the generated source, when given)."""
    bad = [r for r in reports if not r.ok]
    assert not bad, "\n".join(check.format_report(r) for r in bad) + (
        f"\n--- generated ---\n{source}" if source else ""
    )


def assert_same_arrays(got, want, context: str = "") -> None:
    """As many arrays as expected, each equal bit for bit, saying which one differs."""
    got, want = list(got), list(want)
    assert len(got) == len(want), f"{len(got)} arrays, expected {len(want)} {context}"
    for k, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(a, b, err_msg=f"array {k} {context}", strict=True)


def assert_ir_matches(compiled, module, seed: int = 1) -> None:
    """The reference interpreter agrees with the user's function and the generated module."""
    rng = np.random.default_rng(seed)
    for t in compiled.functions:
        f32 = any(p.dtype == "f32" for p in t.spec.params)
        rtol, atol = (1e-4, 1e-5) if f32 else (1e-12, 1e-12)
        args, _ = check.draw_point(t.spec.params, t.forward, rng)
        user = np.asarray(t.spec.fn(*[a if a.ndim else float(a) for a in args]))
        (traced,) = ir.run(t.forward, *args)
        np.testing.assert_allclose(traced, user, rtol=rtol, atol=atol)
        g = rng.standard_normal(traced.shape)
        value, *grads = ir.run(t.vjp, *args, g)
        mod_value, mod_grads = getattr(module, f"{t.spec.name}_vjp")(*args, g)
        np.testing.assert_allclose(value, mod_value, rtol=rtol, atol=atol)
        for a, b in zip(grads, mod_grads):
            np.testing.assert_allclose(a, b, rtol=max(rtol, 1e-10), atol=atol)


# How jax.numpy says it does not take a numpy expression (an op or a keyword it lacks, numpy
# indexing or assignment it forbids). A jax cross-check skips on these and nothing else.
JAX_REFUSALS = (
    r"JAX arrays are immutable",
    r"non-tuple sequence for multidimensional indexing",
    r"^\w+\(\) got an unexpected keyword argument",
    r"^module 'jax\.numpy' has no attribute",
    r"^'\w*(Array|Tracer)\w*' object has no attribute",
)


def jax_refusal(error: BaseException) -> str | None:
    """Why jax refused, when `error` is jax.numpy declining the expression; else None.

    Only an exception raised while jax ran the user's expression, with no frame of gradgen
    in its traceback, of the kinds jax refuses with, and saying one of JAX_REFUSALS (or
    NotImplementedError from jax itself) counts: anything else is a failure to report.
    """
    if not isinstance(error, (TypeError, AttributeError, NotImplementedError, IndexError)):
        return None
    frames = traceback.extract_tb(error.__traceback__)
    package = str(Path(check.__file__).resolve().parent)
    if any(str(Path(f.filename).resolve()).startswith(package + os.sep) for f in frames):
        return None  # gradgen's own code raised: not jax's refusal
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, NotImplementedError) and frames and "jax" in frames[-1].filename:
        return text
    return text if any(re.search(r, str(error)) for r in JAX_REFUSALS) else None


def jax_x64(jax):
    """jax's float64 switch as a context: jax.enable_x64 in recent versions, jax.experimental's
    before."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


def assert_matches_jax(path: Path, compiled, module, seed: int = 5) -> None:
    """The expr file's `f` run by jax.numpy and differentiated by jax.grad gives the
    generated module's gradients; skipped without jax, and where jax itself refuses the
    expression (jax_refusal): any other error is a failure."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    spec = compiled.functions[0].spec
    source = path.read_text().replace("import numpy as np", "")
    namespace: dict = {"np": jnp, "__name__": "jaxed"}
    exec(compile(source, str(path), "exec"), namespace)
    args, _ = check.draw_point(
        spec.params, compiled.functions[0].forward, np.random.default_rng(seed)
    )
    with jax_x64(jax):
        try:
            want = jax.grad(namespace["f"], argnums=tuple(range(len(args))))(
                *[jnp.asarray(a) for a in args]
            )
        except Exception as e:
            reason = jax_refusal(e)
            if reason is None:
                raise
            pytest.skip(f"jax refuses it: {reason}")
    _, got = module.f_value_and_grad(*[a if a.ndim else float(a) for a in args])
    for ours, theirs in zip(got, want):
        np.testing.assert_allclose(ours, np.asarray(theirs), rtol=1e-9, atol=1e-12)
