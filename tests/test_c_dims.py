"""Named dims stay free on the C target (issue 13): one generated file serves every size.

Each program is generated for C once, at the sizes its DIMS give, then called through the
loader at other sizes and compared with the Python target generated at those sizes,
through every function of the API. A program whose code depends on a size that no
expression of the dims can give keeps that dim fixed: its functions return 1 at other
sizes, and the loader says what they were generated for."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import textwrap

import numpy as np
import pytest

from codegen.pipeline import compile_file
from codegen.sizes import Guards, Size, always, fit, guarding, samples, upper
from codegen.write import write_atomic

from test_c_target import STRICT, agree, write_c

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")

# each program's sizes besides those it is generated for (DIMS)
PROGRAMS = {
    "elementwise_sum": """
        DIMS = {"n": 4}
        def f(x: "f64[n]", w):
            return np.sum(np.tanh(w * x) ** 2)
        """,
    "rows_and_columns": """
        DIMS = {"n": 5}
        def f(x: "f64[n,3]", b: "f64[3]"):
            y = np.exp(-(x - b) ** 2)
            return np.sum(np.sum(y, axis=0) * np.max(y, axis=1).sum())
        """,
    "matmul_batch": """
        DIMS = {"B": 4}
        def f(W: "f64[3,5]", x: "f64[B,3]", c: "f64[5]"):
            h = np.tanh(x @ W + c)
            return np.sum(h @ h.T)
        """,
    "slices_and_index": """
        DIMS = {"n": 8}
        def f(x: "f64[n]"):
            d = x[1:] - x[:-1]
            return np.sum(d * d) + np.sum(x[::-1] * x) + np.sum(x[2:-1])
        """,
    "two_dims": """
        DIMS = {"n": 4, "m": 3}
        def f(A: "f64[n,m]", v: "f64[m]", u: "f64[n]"):
            return np.sum((A @ v) * u) + np.sum(A.T * A.T)
        """,
    "reshape_concat": """
        DIMS = {"n": 4}
        def f(x: "f64[n,2]", y: "f64[n]"):
            z = np.concatenate([x.reshape(-1), y, y * y])
            s = np.stack([y, 2.0 * y])
            return np.sum(z * z) + np.sum(s @ y)
        """,
    "outer": """
        DIMS = {"n": 3}
        def f(x: "f64[n]"):
            return np.sum(np.sin(np.outer(x, x)))
        """,
    "layers": """
        DIMS = {"B": 6}
        def f(W1: "f64[4,8]", W2: "f64[8,2]", x: "f64[B,4]", y: "f64[B,2]"):
            h = np.tanh(x @ W1)
            e = h @ W2 - y
            return np.sum(e * e)
        """,
}
OTHER_SIZES = [1, 2, 3, 7, 12]
# the least size a program's code takes (x[2:-1] is empty below n = 4): below, status 1
LEAST = {"slices_and_index": 4}
# where numpy itself gives no number (the std with ddof=1 of one value)
UNDEFINED_BELOW = {"means": 2}
# programs whose code depends on a dim's size: {name: the dims that stay fixed}
FIXED = {
    # the gradient of x[0] and x[-1] together is np.array([g0, 0, ..., 0, g1]): n numbers
    "two_elements": {"n"},
}
PROGRAMS["two_elements"] = """
    DIMS = {"n": 4}
    def f(x: "f64[n]"):
        return x[0] * x[-1]
    """
PROGRAMS["means"] = """
    DIMS = {"n": 4}
    def f(x: "f64[n]", y: "f64[n,2]"):
        return np.mean(x * x) + np.var(y) + np.std(y[:, 0], ddof=1)
    """
# loops kept as loops (`--loops keep`): the loop runs to n, reading x[i] and X[i]
PROGRAMS["loop_over_elements"] = """
    DIMS = {"n": 6}
    def f(a, x: "f64[n]"):
        h = 0.0
        for i in range(x.shape[0]):
            h = np.tanh(a * h + x[i])
        return h
    """
PROGRAMS["loop_over_rows"] = """
    DIMS = {"T": 5}
    def f(W: "f64[3,3]", X: "f64[T,3]"):
        h = np.zeros(3)
        for t in range(X.shape[0]):
            h = np.tanh(X[t] + h @ W)
        return np.sum(h * h)
    """
LOOPS = {"loop_over_elements": "keep", "loop_over_rows": "keep"}


def _module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_one_c_file_for_every_size(tmp_path, name):
    path = tmp_path / f"{name}.py"
    path.write_text("import numpy as np\n\n" + textwrap.dedent(PROGRAMS[name]))
    loops = LOOPS.get(name, "auto")
    compiled, loader = write_c(path, tmp_path, loops=loops)
    base = dict(compiled.loaded.dims)
    assert set(compiled.specialized) == FIXED.get(name, set()), compiled.reasons
    c_file = tmp_path / f"{name}_grad.c"
    done = subprocess.run(["cc", *STRICT, "-c", str(c_file), "-o", str(tmp_path / "x.o")])
    assert done.returncode == 0
    cm = _module(loader, f"{name}_c_dims")
    rng = np.random.default_rng(7)
    for size in OTHER_SIZES:
        dims = {d: size + k for k, d in enumerate(sorted(base))}
        if size < UNDEFINED_BELOW.get(name, 0):
            continue
        py_compiled = compile_file(path, dims=dims, loops=loops)
        py_path = tmp_path / f"{name}_{size}_grad.py"
        write_atomic(py_path, py_compiled.source)
        py = _module(py_path, f"{name}_py_{size}")
        if size < LEAST.get(name, 0):
            args = [np.ones(p.shape) for p in py_compiled.functions[0].spec.params]
            with pytest.raises(ValueError, match=r"needs .*n >= 4"):
                cm.f(*args)
            continue
        if name in FIXED and dims != base:
            args = [np.ones(p.shape) for p in py_compiled.functions[0].spec.params]
            with pytest.raises(ValueError, match="generated for"):
                cm.f(*[a if a.ndim else 1.0 for a in args])
            continue
        agree(py, cm, py_compiled.functions, rng)


def test_the_header_sizes_buffers_by_the_dims(tmp_path):
    path = tmp_path / "rows.py"
    path.write_text("import numpy as np\n\n" + textwrap.dedent(PROGRAMS["rows_and_columns"]))
    compiled, _ = write_c(path, tmp_path)
    header = compiled.files[".h"]
    assert "#define f_WORK_SIZE(n) (" in header and "(n)" in header
    text = compiled.files[".c"]
    assert "return 1" not in text  # nothing fixed, nothing assumed
    assert "i0 < n;" in text


def test_a_constant_index_needs_the_dim_large_enough(tmp_path):
    path = tmp_path / "index.py"
    path.write_text(
        "import numpy as np\n\nDIMS = {'n': 8}\n\n"
        "def f(x: 'f64[n]'):\n    return x[5] * np.sum(x)\n"
    )
    compiled, loader = write_c(path, tmp_path)
    assert not compiled.specialized
    assert "if (!(n >= 6)) return 1;" in compiled.files[".c"]
    cm = _module(loader, "index_c_dims")
    x = np.arange(1.0, 8.0)  # (n = 7)
    assert cm.f(x) == 6.0 * 28.0
    with pytest.raises(ValueError, match=r"needs n >= 6"):
        cm.f(np.ones(4))


def test_a_wrong_shape_names_the_dims(tmp_path):
    path = tmp_path / "two.py"
    path.write_text("import numpy as np\n\n" + textwrap.dedent(PROGRAMS["two_dims"]))
    _, loader = write_c(path, tmp_path)
    cm = _module(loader, "two_c_dims")
    with pytest.raises(ValueError, match=r"u must have shape \(n,\), with n = 5, m = 3"):
        cm.f(np.ones((5, 3)), np.ones(3), np.ones(4))
    _, saved = cm.f_forward(np.ones((5, 3)), np.ones(3), np.ones(5))
    grads = cm.f_backward(saved, 1.0)
    assert [g.shape for g in grads] == [(5, 3), (3,), (5,)]


# ---- the sizes themselves ----


def test_sizes_compare_for_every_size_or_guard():
    n, m = Size.dim("n", 4), Size.dim("m", 3)
    guards = Guards({"n": 4, "m": 3})
    with guarding(guards):
        assert 3 * n > n and n >= 1 and n * m >= m and not (n < 1)
        assert not guards.conditions
        assert n > 2  # true at n = 4 only: a guard
        assert list(guards.conditions) == ["n > 2"]
        assert list(range(n)) == [0, 1, 2, 3]  # the number itself: n is fixed
        assert "n" in guards.fixed
    assert str(3 * n + 1) == "(3 * n + 1)" and str(n) == "n" and str(n * m) == "(m * n)"
    assert n == n and n != 4 and (n - n) == 0
    assert always(2 * n, ">=", n) and not always(n, ">=", 2)
    assert str(upper(n, 3)) == "(n + 3)" and upper(2 * n, n) == 2 * n


def test_fit_finds_polynomials_and_fixes_what_is_none():
    def graphs_at(point):  # a stand-in for traced graphs: nested integers
        n, m = point["n"], point["m"]
        return [n, 3 * n + 1, n * m, n * n, 7, (n * (n + 1)) // 2]

    sizes, fixed = fit(graphs_at({"n": 4, "m": 3}), graphs_at, {"n": 4, "m": 3})
    assert fixed == {"n": "a size that is no polynomial of the dims"}
    assert [str(s) for s in sizes] == ["4", "13", "(4 * m)", "16", "7", "10"]
    assert len(samples({"n": 4, "m": 3})) == 6


def test_auto_keeps_a_loop_over_a_named_dim(tmp_path):
    """Unrolled, `for i in range(n)` fixes n; `--loops auto` then keeps it as a loop."""
    path = tmp_path / "loop.py"
    path.write_text("import numpy as np\n\n" + textwrap.dedent(PROGRAMS["loop_over_elements"]))
    compiled, loader = write_c(path, tmp_path)
    assert not compiled.specialized, compiled.reasons
    assert "i < n;" in compiled.files[".c"]
    cm = _module(loader, "loop_auto_c_dims")
    x = np.linspace(-1.0, 1.0, 11)
    h = 0.0
    for v in x:
        h = np.tanh(0.5 * h + v)
    assert cm.f(0.5, x) == h
