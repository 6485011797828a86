"""Everyday numpy idioms trace to the right gradient, or fail at the user's line.

Each function is compiled, written, imported and checked against central differences of
the user's own function (run in plain numpy), so a silently wrong gradient fails here.
"""

from __future__ import annotations

import textwrap

import pytest

from codegen.errors import GradgenError
from codegen.pipeline import compile_file
from helpers import assert_ir_matches, compile_and_check, write_source

IDIOMS = {
    "shapes as Python values": """
        def f(x: "f64[4,3]"):
            n, d = x.shape
            rows, cols, nd = len(x), x.shape[1], x.ndim
            s = 0.0
            for i in range(x.shape[0]):
                s += x[i, i % d] * (rows + cols + nd + x.size)
            return s / n
    """,
    "augmented assignment in loops": """
        def f(x: "f64[5]", w: "f64[]"):
            s = 0.0
            p = 1.0
            acc = np.zeros(2)
            for i in range(len(x)):
                s += x[i] * w
                p *= 1.0 + 0.1 * x[i]
                acc += x[i] * np.array([1.0, -1.0])
                acc /= 2.0
            s -= np.sum(acc ** 2)
            return s * p
    """,
    "array methods": """
        def f(x: "f64[3,4]", y: "f64[4]", z: "f64[3]"):
            a = x.sum() + x.sum(axis=0).dot(y) + x.T.dot(z).sum()
            b = x.reshape(4, 3).clip(-0.5, 0.5).sum() + x.reshape(-1).mean()
            c = x.ravel().dot(x.flatten()) + x.copy().max() + x.T.reshape(2, 6)[1].sum()
            return a + b + c
    """,
    "creation from traced scalars": """
        def f(a: "f64[]", b: "f64[]", x: "f64[3]"):
            v = np.array([a, b, a * b])
            m = np.array([[a, 1.0], [b, a * a]])
            z = np.zeros(3) + np.ones(3) * a + np.zeros_like(x) + np.ones_like(x) * b
            e = np.eye(3) * a + np.full((3, 3), b) + np.full_like(x, 2.0)[:, None]
            w = np.asarray([x[0], b]) + np.array(x[1:])
            return np.sum(v * x) + np.sum(m ** 2) + np.sum(z * x) + np.sum(e * e) + np.sum(w)
    """,
    "np.arange and other constants": """
        def f(x: "f64[4]"):
            i = np.arange(4)
            t = np.linspace(0.0, 1.0, 4)
            k = np.zeros(4)
            k[1] = 2.0
            if k[1] > 1.0:  # a constant: Python control flow is fine
                t = t * float(k.sum())
            return np.sum(x * i) + np.sum(x * t) + np.linalg.norm(k) + x[int(k[1])]
    """,
    "a loop-based logsumexp": """
        def f(x: "f64[5]"):
            m = x[0]
            for i in range(1, len(x)):
                m = np.maximum(m, x[i])
            s = 0.0
            for v in x:
                s += np.exp(v - m)
            return m + np.log(s)
    """,
    "a list, then np.stack": """
        def f(x: "f64[4,3]", w: "f64[3]"):
            rows = []
            for i in range(x.shape[0]):
                rows.append(np.tanh(x[i] * w) * (i + 1))
            h = np.stack(rows)
            scores = [np.sum(r) for r in rows]
            return np.sum(h * h) + np.sum(np.array(scores) ** 2) + np.sum(np.stack(rows, axis=1))
    """,
    "filling a preallocated array": """
        def f(x: "f64[3]", W: "f64[2,3]"):
            out = np.empty(2)
            for j in range(2):
                out[j] = np.sum(W[j] * x)
            h = np.zeros((3, 2))
            for t in range(3):
                h[t] = np.tanh(out * x[t])
            return np.sum(h)
    """,
    "softmax with keepdims and max": """
        def f(x: "f64[2,4]"):
            z = x - x.max(axis=1, keepdims=True)
            e = np.exp(z)
            p = e / e.sum(axis=1, keepdims=True)
            return -np.sum(np.log(p[:, 0]))
    """,
    "matrix product and transpose": """
        def f(W: "f64[3,4]", x: "f64[4]"):
            h = W @ x
            g = x @ W.T
            return np.sum(h * g) + np.sum(W.T @ W)
    """,
}


@pytest.mark.parametrize("name", list(IDIOMS))
def test_idiom(tmp_path, name):
    path = write_source(tmp_path, "import numpy as np\n" + textwrap.dedent(IDIOMS[name]))
    compiled, module, reports = compile_and_check(path)
    for r in reports:
        assert r.ok, "\n" + "\n".join(str(a) for a in r.args)
    assert_ir_matches(compiled, module)


ERRORS = [
    ("s = float(x[0])", "float()", "np.exp"),
    ("s = math.erf(x[0])", "math", "np.exp"),
    ("s = 1.0 if bool(x[0] > 0) else 2.0", "`if`", "np.where"),
    ("s = range(x[0])", "index", None),
    ("s = np.asarray(x).tolist()", "tolist", None),
    ("s = np.zeros(3); np.putmask(s, np.ones(3) > 0, 1.0)", "writes into its argument", None),
    ("s = np.array([x, x[0]])", "ragged", None),
    ("s = np.fft.fft(x)", "fft", "Supported numpy"),
    ("s = np.fft.rfft(x)", "np.fft.rfft", "Supported numpy"),
    ("s = np.subtract.reduce(x)", "np.subtract.reduce", "Supported numpy"),
]


@pytest.mark.parametrize("stmt, words, hint", ERRORS, ids=[s for s, _, _ in ERRORS])
def test_errors_name_the_line(tmp_path, stmt, words, hint):
    path = write_source(
        tmp_path,
        f"""
        import math
        import numpy as np

        def f(x: "f64[3]"):
            {stmt}  # <-
            return np.sum(x)
        """,
    )
    line = next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if "# <-" in ln)
    with pytest.raises(GradgenError) as info:
        compile_file(path)
    err = info.value
    assert err.src is not None and (err.src.file, err.src.line) == ("expr.py", line), err.render()
    assert words in err.message, err.render()
    if hint:
        assert hint in (err.hint or ""), err.render()
