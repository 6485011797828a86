"""Indexing and assignment: numpy's semantics, including views, through the whole pipeline.

Reading: basic slicing, integer and integer-array (advanced) indexing, None, `...`,
constant boolean masks; the backward scatter adds up at repeated indices (np.add.at).
Writing: `x[k] = v` and `x += v` on arrays created in the function, through views too; a
view sees what was written into its base, as in numpy. The numeric check runs the user's
function in plain numpy, so every case here is compared with numpy's own aliasing.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from codegen.errors import GradgenError
from codegen.pipeline import compile_file
from helpers import assert_ir_matches, compile_and_check, write_expr, write_source, needs_passes

READS = [
    ("x: f64[5]", "x[-1] * x[::-2][1] + x[-4:-1:2]"),
    ("x: f64[5]", "x[[0, 0, 0, 4]] * x[[1, 2, 3, 3]]"),
    ("x: f64[3,4]", "x[[2, 0, 2]]"),
    ("x: f64[3,4]", "x[[0, 1, 1], [3, 3, 0]]"),
    ("x: f64[3,4]", "x[np.array([[0, 0], [2, 2]]), np.array([[1, 1], [3, 3]])]"),
    ("x: f64[3,4]", "x[1:, [0, 0, 3]]"),
    ("x: f64[2,3,4]", "x[:, [0, 2], [1, 1]]"),  # adjacent arrays: their axis stays in place
    ("x: f64[2,3,4]", "x[[1, 0, 1], :, [3, 3, 0]]"),  # separated: their axis goes first
    ("x: f64[2,3,4]", "x[1, ..., [2, 2]]"),
    ("x: f64[2,3]", "x[None, ..., None][0, :, [0, 2, 2]]"),
    ("x: f64[2,3]", "x[np.array([True, False])] + x[:, np.array([False, True, True])][:, :1]"),
    ("x: f64[1,1]", "x[0, [0, 0]] + x[[0], 0]"),
    ("x: f64[4]", "x[[]] + 1.0"),
]


@pytest.mark.parametrize("params, expr", READS, ids=[e for _, e in READS])
def test_reads(tmp_path, params, expr):
    _passes(tmp_path, write_expr(tmp_path, params, expr))


def _passes(tmp_path, path):
    compiled, module, reports = compile_and_check(path)
    for r in reports:
        assert r.ok, "\n" + "\n".join(str(a) for a in r.args)
    if "f32" not in path.read_text():  # the interpreter runs float32 as traced, numpy float64
        assert_ir_matches(compiled, module)
    return compiled, module


def _source(tmp_path, src):
    return _passes(tmp_path, write_source(tmp_path, src))


def test_repeated_indices_add_up(tmp_path):
    compiled, module = _source(
        tmp_path,
        """
        import numpy as np

        def f(x: "f64[3]"):
            return np.sum(x[[0, 0, 2]])
        """,
    )
    _, (grad,) = module.f_value_and_grad(np.array([1.0, 2.0, 3.0]))
    assert grad.tolist() == [2.0, 0.0, 1.0]
    assert "np.add.at(" in compiled.source


def test_unique_indices_scatter_by_assignment(tmp_path):
    compiled, _ = _source(
        tmp_path,
        """
        import numpy as np

        ORDER = np.array([2, 0, 1])

        def f(x: "f64[3,2]"):
            return np.sum(x[ORDER] * np.arange(6.0).reshape(3, 2))
        """,
    )
    assert "np.add.at(" not in compiled.source
    assert "[ORDER] = " in compiled.source  # the user's global names the index constant


def test_mixed_key_scatter_reads_as_numpy(tmp_path):
    compiled, _ = _source(
        tmp_path,
        """
        import numpy as np

        def f(x: "f64[3,4]"):
            return np.sum(x[[0, 0], 1:] ** 2)
        """,
    )
    assert "np.s_[IDX, 1:]" in compiled.source


WRITES = {
    "fill in a loop": """
        def f(x: "f64[4]"):
            out = np.zeros(4)
            for i in range(4):
                out[i] = x[i] * x[(i + 1) % 4]
            return np.sum(out * out)
    """,
    "slices and steps": """
        def f(x: "f64[6]", y: "f64[3]"):
            z = x.copy()
            z[::2] = y
            z[-1] = y[0] * y[1]
            z[1:3] += np.exp(y[:2])
            z[:] -= 1.0
            return np.sum(z * x)
    """,
    "integer arrays": """
        def f(x: "f64[3,4]", y: "f64[2]"):
            z = np.sin(x)
            z[[0, 2], [1, 3]] = y
            z[[1, 0], 1:3] *= 2.0
            return np.sum(z ** 2)
    """,
    "a constant mask": """
        MASK = np.array([True, False, True])

        def f(x: "f64[3]"):
            z = x * 1.0
            z[MASK] = x[:2] ** 2
            return np.sum(z * x)
    """,
    "broadcast value": """
        def f(x: "f64[2,3]", b: "f64[3]"):
            z = np.ones((2, 3))
            z[...] = b
            z[0, :] = x[1].reshape(1, 3)
            return np.sum(z * x)
    """,
    "row by row (an RNN)": """
        def f(h0: "f64[3]", w: "f64[3]"):
            h = np.zeros((4, 3))
            h[0] = h0
            for t in range(3):
                h[t + 1] = np.tanh(h[t] * w)
            return np.sum(h[1:] ** 2)
    """,
    "write through a view": """
        def f(x: "f64[2,3]"):
            z = x.copy()
            row = z[1]
            row[1:] = x[0, :2] * 3.0
            row += 1.0
            z[0][2] = np.sum(x)
            return np.sum(z * z)
    """,
    "a view sees writes into its base": """
        def f(x: "f64[2,3]"):
            z = x.copy()
            col = z[:, 0]
            t = z.T
            flat = z.reshape(-1)
            z[1] = np.sin(x[0])
            return np.sum(col * x[0, :2]) + np.sum(t[1] * t[2]) + flat[4]
    """,
    "views of every kind": """
        def f(x: "f64[6]", M: "f64[3,4]"):
            z = x * 1.0
            v = z[1:]
            w = v[::2]  # a view of a view
            w[0] = x[0] ** 2
            s = z[0:2]
            z *= 2.0  # s sees this
            v[[0, 2]] = np.sin(x[:2])
            N = M.copy()
            r = N.T.reshape(-1)  # not contiguous: numpy copies, N is not written
            r[0] = 5.0
            q = np.atleast_2d(z)
            q[0, 3] = np.exp(x[5])
            a, b = np.split(z, 2)
            b += a
            e = N[None]
            e[0, 1, 1] = x[2] * x[3]
            for row in N:
                row[0] = row[1] * row[2]
            sq = np.squeeze(N[:, :1])
            sq[1] = 0.5
            flat = z.reshape(2, 3).ravel()
            flat[2:5] = 1.0
            P = M * 1.0
            P.reshape(-1)[3:6] = x[:3]  # across rows: no basic key on P, so index arrays
            return np.sum(z * x) + np.sum(s) + np.sum(N * M) + np.sum(r) + np.sum(w) + np.sum(P * M)
    """,
    "a view is unchanged by writes elsewhere": """
        def f(x: "f64[2,3]"):
            z = x.copy()
            row = z[0]
            z[1] = 0.0
            return np.sum(row * row)
    """,
    "copies do not alias": """
        def f(x: "f64[3]"):
            z = x.copy()
            a = z[[0, 1]]
            b = +z
            c = np.array(z)
            d = z.flatten()
            z[0] = 10.0
            z[1] = 20.0
            return np.sum(a * b[:2]) + np.sum(c * d) + np.sum(z)
    """,
    "aliases do": """
        def f(x: "f64[3]"):
            z = x * 2.0
            same = z
            also = np.asarray(z)
            z += x
            also[0] = 1.0
            return np.sum(same * x)
    """,
    "np.add.at": """
        def f(x: "f64[3]", v: "f64[4]"):
            acc = np.zeros(3)
            np.add.at(acc, [0, 2, 0, 0], v)
            z = x.copy()
            np.add.at(z, [1, 1], v[:2] ** 2)
            return np.sum(acc * z)
    """,
    "scalars are immutable": """
        def f(x: "f64[3]"):
            s = x[0]
            t = s
            s += 1.0
            u = np.sum(x)
            u *= 2.0
            return s * t + u
    """,
    "float32": """
        def f(x: "f32[3]", y: "f32[2]"):
            z = x.copy()
            z[1:] = y * y
            z += np.float32(1.0)
            out = np.zeros_like(z, shape=2)  # float32 as z (np.float32 would defeat the check)
            out[0] = np.sum(z)
            out[1] = z[0]
            return np.sum(out * out)
    """,
}


@pytest.mark.parametrize("name", list(WRITES))
def test_writes(tmp_path, name):
    _source(tmp_path, "import numpy as np\n" + textwrap.dedent(WRITES[name]))


@needs_passes
def test_filled_vector_reads_as_one_array(tmp_path):
    compiled, _ = _source(
        tmp_path,
        """
        import numpy as np

        def f(x: "f64[3]"):
            out = np.zeros(3)
            out[0] = x[1] * x[2]
            out[2] = np.sin(x[0])
            return np.sum(out * x)
        """,
    )
    body = compiled.source.split("def f(x):")[1].split("\n\n\n")[0]
    assert "out = np.array([x[1] * x[2], 0.0, math.sin(x[0])])" in body


def test_tracing_leaves_the_module_as_it_was(tmp_path):
    path = write_source(
        tmp_path,
        """
        import numpy as np
        from numpy import zeros

        BUF = np.ones(3)

        def f(x: "f64[3]"):
            z = zeros(3)
            z[0] = x[0]
            return np.sum(z * BUF)
        """,
    )
    compiled = compile_file(path)
    module = compiled.loaded.module
    assert module.np is np and module.zeros is np.zeros
    assert module.BUF.tolist() == [1.0, 1.0, 1.0]


def _error(tmp_path, src: str) -> GradgenError:
    """Compile `src`; the error must name the line marked `# <-`."""
    path = write_source(tmp_path, src)
    line = next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if "# <-" in ln)
    with pytest.raises(GradgenError) as info:
        compile_file(path)
    err = info.value
    assert err.src is not None and (err.src.file, err.src.line) == ("expr.py", line), err.render()
    return err


ERRORS = [
    ("y = x[x > 0]", "boolean mask", "np.where"),
    ("y = x[5]", "out of bounds", None),
    ("y = x[0.5]", "not supported", None),
    ("y = x[[0.0, 1.0]]", "integers", None),
    ("z = np.zeros(4); z[[1, 1]] = x[:2]", "repeated indices", "np.add.at"),
    ("z = x.copy(); z[[0, 0, 1]] += 1.0", "repeated indices", "np.add.at"),  # numpy adds once
    ("z = np.broadcast_to(x * 1.0, (2, 4)); z[0, 0] = 1.0", "read-only", None),
    ("s = x[0]; s[...] = 1.0", "scalar", None),
    ("A[0] = x[0]", "numpy array", "np.zeros"),
    ("A[:2] = x[:2]", "numpy array", "np.zeros"),
    ("B = A; B += x[:3]", "numpy array", "np.zeros"),
    ("np.add.at(A, [0], x[0])", "numpy array", "np.zeros"),
    ("z = np.zeros(3); z += x", "shape", None),
    # numpy's diagonal views z; gradgen ran it on a copy, which a later write would miss
    ("z = np.zeros(4); c = np.lib.stride_tricks.as_strided(z); z[0] = x[0]", "concrete copy", None),
    ("z = np.zeros(4); z[:2] = x", "broadcast", None),
]


@pytest.mark.parametrize("stmt, words, hint", ERRORS, ids=[s for s, _, _ in ERRORS])
def test_errors_name_the_line(tmp_path, stmt, words, hint):
    err = _error(
        tmp_path,
        f"""
        import numpy as np

        A = np.zeros(3)

        def f(x: "f64[4]"):
            {stmt}  # <-
            return np.sum(x)
        """,
    )
    assert words in err.message, err.render()
    if hint:
        assert hint in (err.hint or ""), err.render()
