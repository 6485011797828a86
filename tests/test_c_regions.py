"""Control flow on the C target (issues 13 and 14): every program of
test_control_flow.py, generated as C with its loops kept (`if`/`else`, `for` and `while`
loops, the backward loop over a tape in `saved`), compiles under the strict flags, agrees
with the Python target through every function of the API and passes the numeric check.
A `while` loop's tape is bounded (`# gradgen: max N`, `--max-iterations`): past the bound
the forward returns an error, never writes past its buffers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap

import numpy as np
import pytest

from codegen import check
from codegen.errors import GradgenError
from codegen.pipeline import compile_file
from codegen.write import write_atomic

from test_c_target import STRICT, agree, write_c
from test_control_flow import NOT_DIFFERENTIABLE_NUMERICALLY, PROGRAMS

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")

# and on C, tapes within tapes: a loop's record holds its inner loop's tape and a branch's
C_PROGRAMS = {
    **PROGRAMS,
    "nested_loops": """
        def f(a, x: "f64[20]"):
            s = 0.0
            for i in range(20):
                h = x[i]
                for j in range(5):
                    h = np.tanh(a * h + 0.1)
                if h > 0:
                    s = s + h * h
                else:
                    s = s - h
            return s
        """,
    "float32_rows": """
        def f(x: "f32[6]", a: "f32[]"):
            s = np.zeros(2, dtype=np.float32)
            for i in range(3):
                s = np.tanh(s * a + x.reshape(3, 2)[i])
            return np.sum(s)
        """,
    "array_branch": """
        def f(x: "f64[5]", w):
            if np.sum(x) > 0:
                y = x * w
            else:
                y = -x * x
            return np.sum(y * y)
        """,
    "array_if_in_loop": """
        def f(W: "f64[3,3]", x: "f64[40,3]"):
            h = np.zeros(3)
            for t in range(40):
                z = W @ h + x[t]
                if np.sum(z) > 0:
                    h = np.tanh(z)
                else:
                    h = 0.5 * z * z
            return np.sum(h)
        """,
    "loop_in_branch": """
        def f(a, v: "f64[4]"):
            if a > 0:
                s = v * 1.0
                for k in range(30):
                    s = np.sin(s * a)
                r = np.sum(s)
            else:
                r = a * a
            return r
        """,
    "while_array": """
        def f(v: "f64[3]"):
            r = v * 1.0
            while np.sum(r * r) > 1e-3:  # gradgen: max 40
                r = 0.5 * r + 0.01 * np.sin(r)
            return np.sum(r)
        """,
}


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    """Compiled modules go to a cache of the test session, not the user's."""
    old = os.environ.get("GRADGEN_CACHE")
    os.environ["GRADGEN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("GRADGEN_CACHE", None)
    else:
        os.environ["GRADGEN_CACHE"] = old


def _write(tmp_path, name: str, body: str):
    path = tmp_path / f"{name}.py"
    path.write_text("import numpy as np\n\n" + textwrap.dedent(body))
    return path


def _strict(c_file) -> None:
    cc = subprocess.run(
        ["cc", *STRICT, "-fsyntax-only", str(c_file)], capture_output=True, text=True
    )
    assert cc.returncode == 0, cc.stderr


@pytest.mark.parametrize("loops", ["keep", "auto"])
@pytest.mark.parametrize("name", sorted(C_PROGRAMS))
def test_control_flow_on_c(tmp_path, name, loops):
    """The C agrees with the Python target (both with the same `--loops`) and checks."""
    path = _write(tmp_path, name, C_PROGRAMS[name])
    compiled, loader = write_c(path, tmp_path / "c", loops=loops, max_iterations=500)
    source = compiled.files[".c"]
    if loops == "keep" and "for " in C_PROGRAMS[name] or "while " in C_PROGRAMS[name]:
        assert re.search(r"^\s+for \(", source, re.M), "a loop kept as a loop"
    _strict(tmp_path / "c" / f"{name}_grad.c")
    cm = check.import_path(loader)
    py_compiled = compile_file(path, loops=loops)
    write_atomic(tmp_path / "py" / f"{name}_grad.py", py_compiled.source)
    py = check.import_path(tmp_path / "py" / f"{name}_grad.py")
    # (float32: the C rounds its float64 arguments to float32 first, the Python does not)
    agree(py, cm, compiled.functions, np.random.default_rng(3), 1e-5 if "32" in name else 1e-12)
    if name in NOT_DIFFERENTIABLE_NUMERICALLY:
        return
    for t in compiled.functions:
        report = check.check_function(cm, t.spec, t.forward, t.wrt)
        assert report.ok, "\n" + check.format_report(report)


WHILE = """
    def f(a):
        r = a
        while abs(r * r - a) > 1e-12 * a:{comment}
            r = 0.5 * (r + a / r)
        return r

    def _check_args(rng):
        return (float(rng.uniform(0.5, 4.0)),)  # (a negative's root never converges)
    """


def test_while_bound_from_its_line(tmp_path):
    """`# gradgen: max N` sizes the tape; past N iterations the forward returns 2, which
    the loader raises as an error that names the bound, before writing past a buffer."""
    path = _write(tmp_path, "newton", WHILE.format(comment="  # gradgen: max 8"))
    compiled, loader = write_c(path, tmp_path / "c")
    source = compiled.files[".c"]
    assert "if (i == 8) return 2;" in source
    _strict(tmp_path / "c" / "newton_grad.c")
    cm = check.import_path(loader)
    value, (g,) = cm.f_value_and_grad(2.0)  # converges in 5 iterations
    assert value == pytest.approx(np.sqrt(2.0)) and g == pytest.approx(0.5 / np.sqrt(2.0))
    assert cm.f(1e12) == pytest.approx(1e6)  # (the value alone keeps no tape: no bound)
    with pytest.raises(RuntimeError, match=r"ran past its bound .*gradgen: max N"):
        cm.f_value_and_grad(1e12)  # needs about 24


def test_while_bound_from_the_command_line(tmp_path):
    from codegen.cli import run

    path = _write(tmp_path, "newton", WHILE.format(comment=""))
    out = tmp_path / "out"
    assert run([str(path), "--target", "c", "--max-iterations", "40", "--out", str(out)]) == 0
    assert "if (i == 40) return 2;" in (out / "newton_grad.c").read_text()


def test_while_without_a_bound_is_an_error(tmp_path):
    path = _write(tmp_path, "newton", WHILE.format(comment=""))
    with pytest.raises(GradgenError) as e:
        compile_file(path, target="c")
    assert "a `while` loop's gradient needs a bound" in e.value.message
    assert "# gradgen: max N" in e.value.hint and "--max-iterations" in e.value.hint
    assert e.value.src.line == 6  # (the `while` line)
    compile_file(path)  # (the Python target's tape is a list: no bound needed)


@pytest.mark.parametrize(
    "comment, message",
    [
        ("# gradgen: max many", "cannot read the comment"),
        ("# gradgen: max 0", "cannot read the comment"),
        ("# gradgen: maximum 5", "cannot read the comment"),
    ],
)
def test_bound_comment_errors(tmp_path, comment, message):
    path = _write(tmp_path, "newton", WHILE.format(comment="  " + comment))
    with pytest.raises(GradgenError) as e:
        compile_file(path, target="c")
    assert message in e.value.message and e.value.src.line == 6
    assert "`# gradgen: max N`" in e.value.hint


def test_bound_comment_on_another_line(tmp_path):
    path = _write(tmp_path, "misplaced", "def f(a):  # gradgen: max 5\n    return a * a\n")
    with pytest.raises(GradgenError) as e:
        compile_file(path)
    assert "bounds a `while` loop, and this line starts none" in e.value.message
    assert e.value.src.line == 3


def test_loop_reads_rows_and_writes_elements(tmp_path):
    """Rows read at the counter (a pointer per iteration), elements at computed and
    negative indices, a carried array, gradients added into rows in place: the C agrees
    with Python and checks."""
    path = _write(
        tmp_path,
        "rows",
        """
        def f(W: "f64[3,3]", X: "f64[50,3]", y: "f64[4]"):
            h = np.zeros(3)
            s = 0.0
            for t in range(50):
                h = np.tanh(W @ h + X[t])
                s = s + np.sum(h) * X[49 - t, 0] * X[t - 50, 1] * y[2]
            return np.sum(h * h) + s * s
        """,
    )
    compiled, loader = write_c(path, tmp_path / "c", loops="keep")
    source = compiled.files[".c"]
    assert re.search(r"const double \*X_row = X \+ 3 \* \w+;", source), "X[t]: a row pointer"
    _strict(tmp_path / "c" / "rows_grad.c")
    cm = check.import_path(loader)
    py_compiled = compile_file(path, loops="keep")
    write_atomic(tmp_path / "py" / "rows_grad.py", py_compiled.source)
    py = check.import_path(tmp_path / "py" / "rows_grad.py")
    agree(py, cm, compiled.functions, np.random.default_rng(4))
    for t in compiled.functions:
        report = check.check_function(cm, t.spec, t.forward, t.wrt)
        assert report.ok, "\n" + check.format_report(report)


def test_chain_loop_reads_like_the_source(tmp_path):
    """The 25,000-step chain: a C loop of one line per step, a tape of two doubles per
    iteration in saved, the backward loop over it in reverse; a file of a few hundred
    lines that compiles in well under a second."""
    body = PROGRAMS["long_chain"].replace("3000", "25000")
    path = _write(tmp_path, "chain", body)
    compiled, _ = write_c(path, tmp_path / "c")
    source = compiled.files[".c"]
    assert source.count("\n") < 300
    assert "h = tanh(a * h + b * x[i]);" in source
    assert "for (long i = 24999; i >= 0; i--) {" in source
    assert "g_x[i] += " in source
