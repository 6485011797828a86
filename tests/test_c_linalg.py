"""The C target's kernels (emit/c_kernels.py): dense linear algebra, argmax / argmin /
argsort, and gathers and scatters at indices computed while the function runs.

Each group of cases is one C module: it compiles under -std=c99 -Wall -Wextra -pedantic
-Werror, gives the Python target's numbers through every function of the API, and passes
the numeric check. Tolerances: 1e-12 relative where C runs numpy's algorithm (LU with
partial pivoting, Cholesky, Householder QR with LAPACK's signs, the sorts); 1e-9 for eigh
and the SVD, whose Jacobi iterations converge to a few ulps of a different rounding than
LAPACK's divide and conquer (and the vectors' gradients divide by the gaps between values,
which amplifies that by 1/gap: at most ~10 at the points drawn here).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from codegen import check
from codegen.pipeline import compile_file
from codegen.write import write_atomic
from helpers import annotate
from test_c_target import _cache  # noqa: F401 (autouse: a cache of the test session)
from test_c_target import STRICT, agree, write_c

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")

EXACT, ITERATIVE = 1e-12, 1e-9

GROUPS = {
    "lu": (
        EXACT,
        [
            ("a: f64[4,4]", "np.linalg.det(a + 4.0 * np.eye(4))"),
            ("a: f64[3,2,2]", "np.linalg.slogdet(a + 3.0 * np.eye(2))[1] * 2.0"),
            ("a: f64[3,3]", "np.linalg.slogdet(-(a * a) - np.eye(3))[0] * np.sum(a)"),
            ("a: f64[4,4], b: f64[2,4,3]", "np.linalg.solve(a + 4.0 * np.eye(4), b)"),
            ("a: f64[2,1,3,3], b: f64[2,3]", "np.linalg.solve(a + 3.0 * np.eye(3), b[0])"),
            ("a: f64[5,5]", "np.linalg.inv(a @ a.T + np.eye(5))"),
            ("a: f64[3,3]", "np.linalg.matrix_power(a + 3.0 * np.eye(3), -2)"),
            ("a: f64[4,3]", "np.linalg.pinv(a)"),
        ],
    ),
    "cholesky_qr": (
        EXACT,
        [
            ("a: f64[4,4]", "np.linalg.cholesky(a @ a.T + np.eye(4))"),
            ("a: f64[3,3]", "np.linalg.cholesky(a @ a.T + np.eye(3), upper=True)"),
            ("a: f64[2,3,3]", "np.linalg.cholesky(a @ np.swapaxes(a, 1, 2) + np.eye(3))"),
            ("a: f64[5,3]", "np.linalg.qr(a)[0] * np.arange(15.0).reshape(5, 3)"),
            ("a: f64[4,4]", "np.linalg.qr(a)[1]"),
            ("a: f64[2,4,3]", "np.linalg.qr(a)[1] + np.linalg.qr(a)[0][:, :3, :]"),
        ],
    ),
    "eigh_svd": (
        ITERATIVE,
        [
            ("a: f64[5,5]", "np.linalg.eigvalsh(a + a.T)"),
            (
                "a: f64[4,4]",
                "np.linalg.eigh(a + a.T, UPLO='U')[1] ** 2 * np.arange(16.0).reshape(4, 4)",
            ),
            ("a: f64[2,3,3]", "np.linalg.eigh(a + np.swapaxes(a, 1, 2))[0]"),
            ("a: f64[5,3]", "np.linalg.svd(a, compute_uv=False)"),
            ("a: f64[3,5]", "np.linalg.svd(a, compute_uv=False) * np.arange(3.0)"),
            (
                "a: f64[3,5]",
                "np.linalg.svd(a, full_matrices=False)[2] ** 2 * np.arange(15.0).reshape(3, 5)",
            ),
            (
                "a: f64[3,5]",
                "np.linalg.svd(a, full_matrices=False)[0] ** 2 * np.arange(9.0).reshape(3, 3)",
            ),
            ("a: f64[2,4,3]", "np.linalg.svd(a, full_matrices=False)[0] ** 2"),
            ("a: f64[2,2,3]", "np.linalg.svd(a, full_matrices=False)[2] ** 2 * a"),
            ("a: f64[4,3]", "np.linalg.norm(a, 2) + np.linalg.norm(a, 'nuc')"),
        ],
    ),
    "order": (
        EXACT,
        [
            ("x: f64[3,4]", "np.argmax(x, axis=0) * x"),
            ("x: f64[3,4]", "np.argmin(x, axis=1, keepdims=True) * x"),
            ("x: f64[3,4]", "x[np.arange(3), np.argmax(x, axis=1)]"),
            ("x: f64[3,4]", "np.take_along_axis(x, np.argmin(x, axis=0, keepdims=True), axis=0)"),
            ("x: f64[3,4]", "np.sort(x, axis=0) * np.arange(12.0).reshape(3, 4)"),
            ("x: f64[2,3,4]", "np.sort(x, axis=1) * np.arange(24.0).reshape(2, 3, 4)"),
            ("x: f64[6]", "x[np.argmax(x) - 1] * x"),
            ("x: f64[3,4]", "x[2, np.argmax(x[2])] * x"),
            ("x: f64[6]", "x[np.argmax(x) - 1] * x[np.argmin(x)] + x[0] * x[np.argsort(x)[2]]"),
            ("x: f64[6]", "x[np.argsort(x)[::-1]] * np.arange(6.0)"),
            ("x: f64[5], y: f64[5]", "y[np.argsort(x)] * np.arange(5.0)"),
            ("x: f64[3,5]", "np.median(x, axis=1) + np.quantile(x, 0.3, axis=1)"),
            ("x: f64[2,3,4]", "np.median(x, axis=(0, 2))"),
            ("x: f64[7]", "np.percentile(x, [10, 50, 90])"),
        ],
    ),
}


def _write(folder, cases) -> object:
    lines = ["import numpy as np", ""]
    for k, (params, expr) in enumerate(cases):
        lines += ["", f"def f{k}({annotate(params)}):", f"    return np.sum(np.sin({expr}))", ""]
    path = folder / "expr.py"
    path.write_text("\n".join(lines))
    return path


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_kernels_agree_with_python_and_check(tmp_path, group):
    rtol, cases = GROUPS[group]
    path = _write(tmp_path, cases)
    compiled, loader = write_c(path, tmp_path / "c")
    cc = subprocess.run(
        ["cc", *STRICT, "-c", str(tmp_path / "c" / "expr_grad.c"), "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert cc.returncode == 0, cc.stderr
    cm = check.import_path(loader)
    write_atomic(tmp_path / "py" / "expr_grad.py", compile_file(path).source)
    py = check.import_path(tmp_path / "py" / "expr_grad.py")
    for seed in (3, 4):
        agree(py, cm, compiled.functions, np.random.default_rng(seed), rtol=rtol)
    for t in compiled.functions:
        report = check.check_function(cm, t.spec, t.forward, t.wrt)
        assert report.ok, "\n" + check.format_report(report)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_kernels_without_passes(tmp_path, group):
    """The unoptimized graphs (nothing fused, folded or shared) emit and agree too."""
    rtol, cases = GROUPS[group]
    path = _write(tmp_path, cases)
    compiled, loader = write_c(path, tmp_path / "c", enabled_passes=[])
    cm = check.import_path(loader)
    write_atomic(tmp_path / "py" / "expr_grad.py", compile_file(path, enabled_passes=[]).source)
    py = check.import_path(tmp_path / "py" / "expr_grad.py")
    agree(py, cm, compiled.functions, np.random.default_rng(5), rtol=rtol)


F32 = """import numpy as np


def f(a: "f32[3,3]", x: "f32[5]"):
    return np.linalg.inv(a + 3.0 * np.eye(3)) * np.sum(np.sort(x) * np.arange(5.0))


def g(a: "f32[4,3]"):
    return np.linalg.svd(a, compute_uv=False) + np.linalg.det(a.T @ a)
"""


def test_float32(tmp_path):
    """float32 parameters and results (a kernel's result written to a float output goes
    through scratch): the Python target's numbers to float32's precision, and the check."""
    path = tmp_path / "f32.py"
    path.write_text(F32)
    compiled, loader = write_c(path, tmp_path / "c")
    cm = check.import_path(loader)
    write_atomic(tmp_path / "py" / "f32_grad.py", compile_file(path).source)
    py = check.import_path(tmp_path / "py" / "f32_grad.py")
    rng = np.random.default_rng(0)
    a, x = rng.standard_normal((3, 3)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    value, want = cm.f(a, x), py.f(a, x)
    np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-6)
    ga = rng.standard_normal((3, 3)).astype(np.float32)
    (_, g1), (_, g2) = cm.f_vjp(a, x, ga), py.f_vjp(a, x, ga)
    for p, q in zip(g1, g2):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-5)
    b = rng.standard_normal((4, 3)).astype(np.float32)
    assert cm.g(b).dtype == np.float32  # svd_s's result, a float output
    np.testing.assert_allclose(cm.g(b), py.g(b), rtol=1e-5, atol=1e-5)
    for t in compiled.functions:
        assert check.check_function(cm, t.spec, t.forward, t.wrt).ok


SINGULAR = """import numpy as np


def det(a: "f64[3,3]"):
    return np.linalg.det(a)


def logdet(a: "f64[3,3]"):
    return np.linalg.slogdet(a)[1]


def sign(a: "f64[3,3]"):
    return np.linalg.slogdet(a)[0]


def inv(a: "f64[3,3]"):
    return np.linalg.inv(a)


def sv(a: "f64[3,3]"):
    return np.linalg.svd(a, compute_uv=False)
"""


def test_a_singular_matrix_gives_numpy_values_or_inf_never_a_crash(tmp_path):
    """det 0, slogdet (0, -inf), singular values with a 0, as numpy; inv (where numpy
    raises LinAlgError) returns inf or nan rather than crashing or reading out of bounds."""
    path = tmp_path / "sing.py"
    path.write_text(SINGULAR)
    _, loader = write_c(path, tmp_path / "c")
    cm = check.import_path(loader)
    a = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]])
    assert cm.det(a) == 0.0
    assert cm.sign(a) == 0.0 and cm.logdet(a) == -np.inf
    np.testing.assert_allclose(cm.sv(a), np.linalg.svd(a, compute_uv=False), atol=1e-14)
    with np.errstate(all="ignore"):
        assert not np.all(np.isfinite(cm.inv(a)))
    assert cm.det(np.zeros((3, 3))) == 0.0


def test_an_index_out_of_range_returns_3(tmp_path):
    """A computed index numpy would refuse (IndexError) makes the C function return 3,
    which the loader raises; it never reads out of bounds."""
    path = tmp_path / "oob.py"
    path.write_text(
        "import numpy as np\n\n\n" 'def f(x: "f64[4]"):\n    return x[np.argmax(x) + 2]\n'
    )
    compiled, loader = write_c(path, tmp_path / "c")
    cm = check.import_path(loader)
    assert cm.f(np.array([1.0, 5.0, 0.0, 0.0])) == 0.0  # index 3
    with pytest.raises(IndexError, match="out of range"):
        cm.f(np.array([1.0, 0.0, 0.0, 5.0]))  # index 5


def test_kernels_are_written_only_when_called(tmp_path):
    path = tmp_path / "one.py"
    path.write_text('import numpy as np\n\n\ndef f(a: "f64[3,3]"):\n    return np.linalg.det(a)\n')
    text = compile_file(path, target="c").files[".c"]
    assert "static double gradgen_lu(" in text and "static double gradgen_lu_sign(" in text
    assert "gradgen_svd" not in text and "gradgen_argsort" not in text


def test_integer_results_come_back_as_integers(tmp_path):
    """A function whose value is np.argsort's or np.argmax's: int64, as numpy gives it
    (the C keeps them as doubles; the loader hands back integers)."""
    path = tmp_path / "ints.py"
    path.write_text(
        "import numpy as np\n\n\n"
        'def order(x: "f64[4]"):\n    return np.argsort(x)\n\n\n'
        'def best(x: "f64[4]"):\n    return np.argmax(x)\n'
    )
    compiled, loader = write_c(path, tmp_path / "c")
    cm = check.import_path(loader)
    x = np.array([3.0, 1.0, 2.0, 0.0])
    got = cm.order(x)
    assert got.dtype == np.int64 and got.tolist() == [3, 1, 2, 0]
    value, (g,) = cm.order_vjp(x, np.ones(4))
    assert value.dtype == np.int64 and np.all(g == 0.0)
    best = cm.best(x)
    assert isinstance(best, np.int64) and best == 0
