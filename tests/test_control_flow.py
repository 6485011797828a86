"""Control flow on traced values (issue 14): `if` / `elif` / `else`, conditional
expressions, `and` / `or` / `not`, early `return`, `while` to a tolerance, `break` and
`continue` under traced tests, and `for` loops kept as loops. Each program is compiled,
checked numerically at points away from its switching surfaces, compared with running
the user's function itself on numbers, and (where jax is installed) with jax.grad, which
follows Python control flow on concrete values."""

from __future__ import annotations

import importlib.util
import re
import textwrap

import numpy as np
import pytest

from codegen import check
from codegen.errors import GradgenError
from codegen.pipeline import compile_file
from codegen.write import write_atomic

from helpers import assert_checked, compile_and_check, jax_x64

PROGRAMS = {
    "piecewise": """
        def f(x):
            if x > 1.0:
                y = np.sqrt(x)
            elif x > -1.0:
                y = x * x
            else:
                y = -x
            return y * 3.0
        """,
    "sqrt_only_where_taken": """
        def f(x):
            if x > 0:
                return np.sqrt(x)
            return 0.5 * x
        """,
    "conditional_expression": """
        def f(x, y):
            z = x * y if x > y else x + y
            return z * z
        """,
    "and_or_not": """
        def f(x, y):
            if (x > 0 and y > 0) or not (x < -0.5):
                return x * y
            return x - y
        """,
    "nested": """
        def f(x, y):
            if x > 0:
                if y > 0:
                    r = x * y
                else:
                    r = x - y
            else:
                r = np.exp(x) + y
            return r
        """,
    "newton_sqrt": """
        def f(a: "f64[]"):
            s = a * a + 0.5
            x = s
            while np.abs(x * x - s) > 1e-12 * s:
                x = 0.5 * (x + s / x)
            return x
        """,
    "bisection": """
        def f(c):
            lo, hi = 0.0, 4.0 + c * c
            while hi - lo > 1e-9:
                mid = 0.5 * (lo + hi)
                if mid * mid * mid - c * c - 1.0 > 0:
                    hi = mid
                else:
                    lo = mid
            return lo * c
        """,
    "if_in_loop": """
        def f(w, x: "f64[30]"):
            h = 0.0
            for i in range(30):
                z = w * h + x[i]
                if z > 0:
                    h = np.tanh(z)
                else:
                    h = 0.1 * z
            return h
        """,
    "break_on_traced": """
        def f(a, x: "f64[40]"):
            s = 0.0
            for i in range(40):
                s = s + a * x[i] * x[i]
                if s > 3.0:
                    break
            return s
        """,
    "continue_on_traced": """
        def f(a, x: "f64[40]"):
            s = 0.0
            for i in range(40):
                t = a * x[i]
                if t < 0:
                    continue
                s = s + t * t
            return s
        """,
    "helper_in_loop": """
        def _clip(v):
            if v > 1.0:
                return 1.0 + 0.1 * (v - 1.0)
            return v

        def f(w, x: "f64[25]"):
            h = 0.0
            for i in range(25):
                h = _clip(w * h + x[i])
            return h
        """,
    "early_return_in_branch": """
        def f(x, y):
            if x < 0:
                return y * y
            z = x * y
            if z > 1.0:
                return np.log(z)
            return z
        """,
    "long_chain": """
        def f(a, b, x: "f64[3000]"):
            h = 0.0
            for i in range(3000):
                h = np.tanh(a * h + b * x[i])
            return h
        """,
    "array_carried": """
        def f(W: "f64[4,4]", x: "f64[4]"):
            h = np.zeros(4)
            for t in range(300):
                h = np.tanh(W @ h + x)
            return np.sum(h * h)
        """,
}


def _write(tmp_path, name: str, body: str):
    path = tmp_path / f"{name}.py"
    path.write_text("import numpy as np\n\n" + textwrap.dedent(body))
    return path


def _user_function(path, name="f"):
    spec = importlib.util.spec_from_file_location(f"user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


# Bisection's result moves in steps of its tolerance as c moves: central differences
# see those steps, not the derivative of the iterates that reverse mode (and jax) give.
NOT_DIFFERENTIABLE_NUMERICALLY = {"bisection"}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_control_flow_checks(tmp_path, name):
    """Generates, passes the numeric check, and gives the value the user's code gives."""
    path = _write(tmp_path, name, PROGRAMS[name])
    compiled, module, reports = compile_and_check(path)
    if name not in NOT_DIFFERENTIABLE_NUMERICALLY:
        assert_checked(reports, compiled.source)
    t = compiled.functions[0]
    user = _user_function(path)
    rng = np.random.default_rng(3)
    for _ in range(3):
        args, _ = check.draw_point(t.spec.params, t.forward, rng)
        args = [a if a.ndim else float(a) for a in args]
        want = user(*args)
        got = module.f(*args)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        value, grads = module.f_value_and_grad(*args)
        np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-12)


@pytest.mark.jax
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_control_flow_matches_jax(tmp_path, name):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    path = _write(tmp_path, name, PROGRAMS[name])
    compiled, module, _ = compile_and_check(path)
    t = compiled.functions[0]
    args, _ = check.draw_point(t.spec.params, t.forward, np.random.default_rng(5))
    args = [a if a.ndim else float(a) for a in args]
    _, got = module.f_value_and_grad(*args)
    namespace: dict = {"np": jnp, "__name__": "jaxed"}  # (one namespace: helpers resolve)
    source = path.read_text().replace("import numpy as np", "")
    exec(compile(source, str(path), "exec"), namespace)
    with jax_x64(jax):
        want = jax.grad(namespace["f"], argnums=tuple(range(len(args))))(
            *[jnp.asarray(a) for a in args]
        )
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-7, atol=1e-9)


def test_only_the_taken_branch_runs(tmp_path):
    """np.sqrt of a negative is never computed: no warning, no NaN in the gradient."""
    path = _write(tmp_path, "taken", PROGRAMS["sqrt_only_where_taken"])
    compiled, module, _ = compile_and_check(path)
    with np.errstate(all="raise"):
        value, (g,) = module.f_value_and_grad(-4.0)
    assert value == -2.0 and g == 0.5
    assert "if x > 0" in compiled.source or re.search(r"if t\d* *:", compiled.source)


@pytest.mark.parametrize("name", ["long_chain", "if_in_loop", "array_carried", "break_on_traced"])
def test_loops_kept_and_unrolled_agree(tmp_path, name):
    """A loop with a fixed count emitted as a loop and unrolled gives the same numbers."""
    path = _write(tmp_path, name, PROGRAMS[name])
    kept = compile_file(path, loops="keep")
    unrolled = compile_file(path, loops="unroll")
    assert re.search(r"^\s+for \w+ in range\(", kept.source, re.M)
    assert not re.search(r"^\s+for \w+ in range\(", unrolled.source, re.M)
    modules = []
    for tag, c in (("kept", kept), ("unrolled", unrolled)):
        target = tmp_path / tag / f"{name}_grad.py"
        write_atomic(target, c.source)
        modules.append(check.import_path(target))
    t = kept.functions[0]
    args, _ = check.draw_point(t.spec.params, t.forward, np.random.default_rng(2))
    args = [a if a.ndim else float(a) for a in args]
    (v1, g1), (v2, g2) = (m.f_value_and_grad(*args) for m in modules)
    assert v1 == v2  # the same bits: the same operations in the same order
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)


def test_long_loop_stays_small(tmp_path):
    """25,000 steps: a loop in a module of a few hundred lines, not an unrolled one."""
    body = PROGRAMS["long_chain"].replace("3000", "25000")
    path = _write(tmp_path, "chain25k", body)
    compiled = compile_file(path)
    assert compiled.source.count("\n") < 300
    assert "for i in range(25000):" in compiled.source
    assert "in range(len(tape) - 1, -1, -1):" in compiled.source  # the reverse loop


def test_show_ir_prints_regions(tmp_path, capsys):
    from codegen.cli import run

    path = _write(tmp_path, "piecewise", PROGRAMS["piecewise"])
    assert run([str(path), "--show", "ir"]) == 0
    out = capsys.readouterr().out
    assert "= cond " in out and "branches[0]:" in out and "branches[1]:" in out


def test_python_tests_run_as_before(tmp_path):
    """Control flow on Python values (shapes, counters, constants) is unrolled as before."""
    path = _write(
        tmp_path,
        "python_flow",
        """
        def f(x: "f64[3]"):
            total = 0.0
            n = 0
            for i in range(x.shape[0]):
                if i % 2 == 0 and x.ndim == 1:
                    total = total + x[i] * x[i]
                    n += 1
            while n < 5:
                n += 1
            return total * n
        """,
    )
    compiled, module, reports = compile_and_check(path)
    assert_checked(reports)
    assert "if " not in compiled.source and "while" not in compiled.source
    assert module.f(np.array([1.0, 2.0, 3.0])) == pytest.approx(50.0)


def _error(tmp_path, body: str, **kwargs) -> GradgenError:
    path = _write(tmp_path, "bad", body)
    with pytest.raises(GradgenError) as e:
        compile_file(path, **kwargs)
    return e.value


def test_error_variable_defined_on_one_path(tmp_path):
    e = _error(
        tmp_path,
        """
        def f(x):
            if x > 0:
                y = x * 2
            return y
        """,
    )
    assert "'y' is assigned only in the if branch of the `if` at line 5" in str(e)
    assert e.src.line == 7


def test_error_array_test(tmp_path):
    e = _error(
        tmp_path,
        """
        def f(x: "f64[3]"):
            if x > 0:
                return np.sum(x)
            return np.sum(-x)
        """,
    )
    assert "test of the if at line 5 is an array of shape [3]" in str(e)
    assert e.src.line == 5


def test_error_shape_differs_between_branches(tmp_path):
    e = _error(
        tmp_path,
        """
        def f(x: "f64[3]", y: "f64[2]"):
            if x[0] > 0:
                z = x
            else:
                z = y
            return np.sum(z)
        """,
    )
    assert "'z' is f64[3] in the if branch and f64[2] in the else branch" in str(e)


def test_error_loop_changes_shape(tmp_path):
    e = _error(
        tmp_path,
        """
        def f(x: "f64[3]"):
            h = x * 1.0
            while np.sum(h) < 10.0:
                h = np.concatenate([h, h * h + 1.0])
            return np.sum(h)
        """,
    )
    assert "'h' changes from f64[3] to f64[6] in the loop" in str(e)
    assert "np.zeros" in e.hint


def test_a_loop_that_never_ends_is_an_error_not_a_hang(tmp_path):
    from codegen.ops import control

    path = _write(
        tmp_path,
        "forever",
        """
        def f(a):
            x = a
            while x * x > -1.0:
                x = 0.5 * x
            return x
        """,
    )
    compiled = compile_file(path)
    t = compiled.functions[0]
    old = control.MAX_ITERATIONS
    control.MAX_ITERATIONS = 1000
    try:
        with pytest.raises(control.LoopLimit, match="did not end after 1,000 iterations"):
            from codegen.ir import run

            run(t.forward, np.float64(1.0))
    finally:
        control.MAX_ITERATIONS = old


def test_c_target_keeps_control_flow(tmp_path):
    """The C target writes the same regions (tests/test_c_regions.py runs them): a traced
    `if` is a C `if`, and a loop past the code-size budget a C `for` loop."""
    path = _write(tmp_path, "taken", PROGRAMS["sqrt_only_where_taken"])
    assert re.search(r"^\s+if \(", compile_file(path, target="c").files[".c"], re.M)
    path = _write(tmp_path, "chain", PROGRAMS["long_chain"].replace("3000", "1200"))
    source = compile_file(path, target="c").files[".c"]
    assert "for (long i = 0; i < 1200; i++) {" in source


# ---- what the generated loops and branches save and test (issue 14's speed targets)

SPEED = {
    "chain": """
        def f(a, b, x: "f64[2000]"):
            h = 0.0
            for i in range(2000):
                h = np.tanh(a * h + b * x[i])
            return h
        """,
    "clipped": """
        def f(w, x: "f64[200]"):
            h = 0.0
            for i in range(200):
                z = w * h + x[i]
                if z > 1.0:
                    h = 1.0
                else:
                    h = np.tanh(z)
            return h
        """,
    "reads_twice": """
        def f(a, x: "f64[300]"):
            h = 0.5
            for i in range(300):
                h = np.tanh(a * h + x[i] * x[i]) + 0.1 * x[i]
            return h
        """,
}


def _function(source: str, name: str) -> str:
    return source.split(f"def {name}(")[1].split("\ndef ")[0]


def test_chain_tape_holds_one_value_an_iteration(tmp_path):
    """The chain saves the old h only (the new one is the next iteration's old one, walked
    back in the backward loop), before the body runs; each g_x[i] is written once."""
    path = _write(tmp_path, "chain", SPEED["chain"])
    compiled, module, reports = compile_and_check(path, loops="keep")
    assert_checked(reports, compiled.source)
    vg = _function(compiled.source, "f_value_and_grad")
    assert re.search(r"tape\.append\(h\)\n\s+h = math\.tanh\(a \* h \+ b \* x_list\[i\]\)", vg)
    assert re.search(r"g_x\[i\w*\] = ", vg) and "+=" not in vg
    _, saved = module.f_forward(0.5, 0.3, np.linspace(-1, 1, 2000))
    (tape,) = [s for s in saved if isinstance(s, list)]
    assert len(tape) == 2000 and all(isinstance(t, float) for t in tape)


def test_reads_twice_still_adds_up(tmp_path):
    """x[i] read twice in one iteration: its gradient's parts add up (no `=` overwrite)."""
    path = _write(tmp_path, "twice", SPEED["reads_twice"])
    compiled, _, reports = compile_and_check(path, loops="keep")
    assert_checked(reports, compiled.source)


def test_unread_branch_input_is_not_saved(tmp_path):
    """clipped: the backward branch reads the tanh's output, not z: z is not on the tape,
    and no region anywhere passes an input or saves a value that its body leaves unread."""
    from codegen.passes import _unread_inputs

    path = _write(tmp_path, "clipped", SPEED["clipped"])
    compiled, module, reports = compile_and_check(path, loops="keep")
    assert_checked(reports, compiled.source)
    _, saved = module.f_forward(0.8, np.linspace(-1, 1, 200))
    (tape,) = [s for s in saved if isinstance(s, list)]
    assert all(len(entry) == 3 for entry in tape)  # the test, the branch's tape, the old h
    t = compiled.functions[0]
    for graph in (t.value_and_grad, t.vjp):
        for node in _regions(graph):
            if node.attrs["role"] != "taped":
                assert _unread_inputs(node) == [], node
            if node.attrs["role"] == "back":
                for body in _bodies(node):
                    n_res = len(body.params) - len(node.inputs) + (node.op == "cond")
                    for p in body.params[:n_res]:
                        assert any(p in n.inputs for n in body.nodes) or p in body.outputs


def _bodies(node):
    return node.attrs["branches"] if node.op == "cond" else (node.attrs["body"],)


def _regions(graph):
    for node in graph.nodes:
        if node.op in ("cond", "loop"):
            yield node
            for body in _bodies(node):
                yield from _regions(body)


def test_newton_saves_x_and_tests_once(tmp_path):
    """newton: `a / x` is computed again backward rather than saved (one value a step),
    and the while loop's test is the `while` itself."""
    path = _write(tmp_path, "newton", PROGRAMS["newton_sqrt"])
    compiled, _, reports = compile_and_check(path)
    assert_checked(reports, compiled.source)
    vg = _function(compiled.source, "f_value_and_grad")
    assert re.search(r"^\s+while .+:$", vg, re.M) and "while True" not in vg
    assert re.search(r"^\s+tape\.append\(\w+\)$", vg, re.M)


def test_scalar_branches_test_once_in_value_and_grad(tmp_path):
    """value_and_grad of a scalar piecewise function: each branch runs forward then
    backward under one test, written in the `if` itself."""
    path = _write(tmp_path, "piecewise", PROGRAMS["piecewise"])
    compiled, module, reports = compile_and_check(path)
    assert_checked(reports, compiled.source)
    vg = _function(compiled.source, "f_value_and_grad")
    tests = re.findall(r"^\s+if (.+):", vg, re.M)
    forward = re.findall(r"^\s+if (.+):", _function(compiled.source, "f"), re.M)
    assert tests == forward and len(tests) == len(set(tests))
    assert not re.search(r"= x [<>]", vg)  # (no test named, then tested)
    for x in (-2.0, 0.5, 3.0):
        value, (g,) = module.f_value_and_grad(x)
        assert value == module.f(x)


def test_kinks_inside_loop_bodies_are_redrawn(tmp_path):
    """A branch's test inside a loop body is a kink: a point where an iteration's test is
    at its switch is drawn again (the first draw puts h exactly on it at i = 1)."""
    path = _write(
        tmp_path,
        "kinked",
        """
        def f(x):
            h = 0.0
            for i in range(4):
                h = h + x
                if h > 1.0:
                    h = h * h
            return h
        """,
    )
    compiled = compile_file(path, loops="keep")
    t = compiled.functions[0]
    assert any(n.op == "loop" for n in t.forward.nodes)

    class Draws:  # standard_normal first (on the kink), then uniform (away from it)
        def standard_normal(self, shape):
            return np.full(shape, 0.5)

        def uniform(self, lo, hi, shape):
            return np.full(shape, 0.3)

    args, _ = check.draw_point(t.spec.params, t.forward, Draws())
    assert float(args[0]) == 0.3
    env = check.evaluate(t.forward, [np.float64(0.5)])
    assert check._kink_distance(t.forward, env) == 0.0
