"""The command line: outputs, --show, exit statuses, and one clear message per mistake."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys

import pytest

from codegen import cli
from codegen import ops
from helpers import ROOT, write_source


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_writes_and_checks(tmp_path, capsys):
    status, out, err = run(capsys, ROOT / "examples" / "neuron.py", "--out", tmp_path)
    assert status == 0, err
    assert (tmp_path / "neuron_grad.py").exists()
    assert "check neuron" in out and out.rstrip().endswith("ok")
    assert list(tmp_path.iterdir()) == [tmp_path / "neuron_grad.py"]  # no temp files left


def test_no_comments(tmp_path, capsys):
    status, out, _ = run(capsys, ROOT / "examples" / "neuron.py", "--show", "code", "--no-comments")
    assert status == 0 and "def neuron_value_and_grad" in out
    assert "# " not in out.split('"""', 4)[-1]  # no comments after the module docstring


def test_show_ir_and_grad_ir(tmp_path, capsys):
    status, out, _ = run(capsys, ROOT / "examples" / "circuit.py", "--show", "ir")
    assert status == 0
    assert (
        "lambda x:f64[], y:f64[], z:f64[]" in out and "add %x %y" in out and "circuit.py:5" in out
    )
    status, out, _ = run(capsys, ROOT / "examples" / "circuit.py", "--show", "grad-ir")
    assert status == 0, out
    # f = (x + y) * z: the add's and the mul's lines, then the value and the gradients
    # (g_x, g_y, g_z) = (z, z, q): add distributes, mul swaps
    q = re.search(r"%(\d+) \(q\):f64\[\] = add %x %y  # circuit\.py:5", out)
    f = q and re.search(rf"%(\d+) \(f\):f64\[\] = mul %{q[1]} %z  # circuit\.py:6", out)
    assert f, out
    assert f"in ( %{f[1]}, %z, %z, %{q[1]} )" in out, out
    assert not (tmp_path / "circuit_grad.py").exists()


def test_wrt_selects_gradients(tmp_path, capsys):
    status, out, err = run(
        capsys, ROOT / "examples" / "circuit.py", "--out", tmp_path, "--wrt", "z"
    )
    assert status == 0, err
    text = (tmp_path / "circuit_grad.py").read_text()
    assert "with respect to z" in text


def test_unused_parameter_gets_zero_gradient(tmp_path, capsys):
    path = write_source(
        tmp_path,
        'import numpy as np\n\ndef f(x: "f64[3]", y: "f64[2]"):\n    return np.sum(x * x)\n',
    )
    status, out, err = run(capsys, path, "--out", tmp_path / "o")
    assert status == 0, err
    mod = __import__("codegen.check", fromlist=["import_path"]).import_path(
        tmp_path / "o" / "expr_grad.py"
    )
    _, (gx, gy) = mod.f_value_and_grad(__import__("numpy").ones(3), __import__("numpy").ones(2))
    assert list(gy) == [0.0, 0.0] and list(gx) == [2.0, 2.0, 2.0]


def test_dims_from_flag_and_module(tmp_path, capsys):
    path = write_source(
        tmp_path,
        'import numpy as np\nDIMS = {"n": 3}\n\ndef f(x: "f64[n]"):\n    return np.sum(x * x)\n',
    )
    status, out, err = run(capsys, path, "--out", tmp_path / "a")
    assert status == 0, err
    assert "f64[n]" in (tmp_path / "a" / "expr_grad.py").read_text()
    assert re.search(r"^\s*x\s+\(3,\)\s", out, re.M), out  # checked at the module's n = 3
    status, out, err = run(capsys, path, "--out", tmp_path / "b", "--dim", "n=5")
    assert status == 0, err
    assert re.search(r"^\s*x\s+\(5,\)\s", out, re.M), out  # the flag wins: n = 5
    mod = __import__("codegen.check", fromlist=["import_path"]).import_path(
        tmp_path / "b" / "expr_grad.py"
    )
    x = __import__("numpy").arange(5.0)
    value, (g,) = mod.f_value_and_grad(x)
    assert value == 30.0 and list(g) == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_failed_check_is_status_1_and_keeps_the_module(tmp_path, capsys, monkeypatch):
    wrong = dataclasses.replace(
        ops.OPS["sin"], vjp=lambda g, out, x: (g * 2.0 * ops.apply("cos", x),)
    )
    monkeypatch.setitem(ops.OPS, "sin", wrong)
    path = write_source(
        tmp_path, 'import numpy as np\n\ndef f(x: "f64[3]"):\n    return np.sum(np.sin(x))\n'
    )
    status, out, err = run(capsys, path, "--out", tmp_path / "o")
    assert status == 1
    assert "FAIL" in out and "check FAILED" in out
    assert (tmp_path / "o" / "expr_grad.py").exists()


# ---- every mistake: status 2, one message naming the file and line, nothing written ----

ERRORS = {
    "syntax": ("def f(x):\n    return x +\n", "expr.py:2", "syntax error"),
    "import raises": ("import numpy as np\nX = np.ones(3)\nY = X[7]\n", "expr.py:3", "IndexError"),
    "no function": ("import numpy as np\nX = 1\n", "expr.py:1", "defines no function"),
    "bad annotation": ('def f(x: "float64(3)"):\n    return x\n', "expr.py:1", "annotation"),
    "unknown dim": ('def f(x: "f64[n]"):\n    return x\n', "expr.py:1", "--dim n=SIZE"),
    "int parameter": ('def f(x: "i64[3]"):\n    return x\n', "expr.py:1", "float parameters only"),
    "returns tuple": ("def f(x):\n    return x, x\n", "expr.py:1", "returns a tuple"),
    "returns None": ("def f(x):\n    y = x * 2\n", "expr.py:1", "returns None"),
    "return in a loop on traced": (
        "def f(x):\n    for i in range(3):\n        if x > i:\n            return x * i\n"
        "    return x\n",
        "expr.py:3",
        "return after the loop",
    ),
    "bool of traced": (
        "def f(x):\n    if bool(x > 0):\n        return x\n    return -x\n",
        "expr.py:2",
        "np.where",
    ),
    "math on traced": ("import math\n\ndef f(x):\n    return math.erf(x)\n", "expr.py:4", "np.exp"),
    "float on traced": ("def f(x):\n    return float(x) * 2\n", "expr.py:2", "np.exp"),
    "unsupported numpy": (
        'import numpy as np\n\ndef f(x: "f64[3]"):\n    return np.sum(np.fft.fft(x).real)\n',
        "expr.py:4",
        "np.fft.fft is not supported",
    ),
    "shape mismatch": (
        'import numpy as np\n\ndef f(x: "f64[3]", y: "f64[4]"):\n    z = x * y\n    return np.sum(z)\n',
        "expr.py:4",
        "[3] and [4]",
    ),
    "parameter named g": ("def f(g):\n    return g * 2\n", "expr.py:1", "named 'g'"),
    "ufunc keyword": (
        'import numpy as np\n\ndef f(x: "f64[3]"):\n    return np.sum(np.add(x, 1.0, where=x > 0))\n',
        "expr.py:4",
        "where= is not supported",
    ),
    "raises while tracing": (
        "def _helper(x):\n    return x * undefined_name\n\ndef f(x):\n    return _helper(x)\n",
        "expr.py:2",
        "NameError",
    ),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_user_error_message(tmp_path, capsys, name):
    source, where, words = ERRORS[name]
    path = write_source(tmp_path, source)
    out_dir = tmp_path / "out"
    status, out, err = run(capsys, path, "--out", out_dir)
    assert status == 2
    assert where in err, err
    assert words in err, err
    assert "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_unknown_fn(tmp_path, capsys):
    path = write_source(tmp_path, "def f(x):\n    return x * 2\n")
    status, _, err = run(capsys, path, "--fn", "h", "--out", tmp_path / "o")
    assert status == 2 and "no traceable function 'h'" in err and "it has: f" in err


def test_wrt_naming_no_parameter(tmp_path, capsys):
    path = write_source(tmp_path, "def f(x):\n    return x * 2\n")
    status, _, err = run(capsys, path, "--wrt", "y", "--out", tmp_path / "o")
    assert status == 2 and "'y'" in err and "expr.py:1" in err
    status, _, err = run(capsys, path, "--wrt", ",", "--out", tmp_path / "o")
    assert status == 2 and "names no parameter" in err


def test_unknown_target_and_bad_dim(tmp_path, capsys):
    status, _, err = run(
        capsys, ROOT / "examples" / "circuit.py", "--target", "fortran", "--out", tmp_path
    )
    assert status == 2 and "unknown --target 'fortran'" in err
    status, _, err = run(capsys, ROOT / "examples" / "circuit.py", "--dim", "n", "--out", tmp_path)
    assert status == 2 and "NAME=SIZE" in err
    assert not any(tmp_path.iterdir())


def test_missing_file(tmp_path, capsys):
    status, _, err = run(capsys, tmp_path / "nope.py", "--out", tmp_path / "o")
    assert status == 2 and "no such file" in err


def test_output_folder_not_writable(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    status, _, err = run(capsys, ROOT / "examples" / "circuit.py", "--out", blocker)
    assert status == 2 and "is a file" in err


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes through permissions"
)
def test_output_folder_without_write_permission(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        status, _, err = run(capsys, ROOT / "examples" / "circuit.py", "--out", locked)
    finally:
        locked.chmod(0o700)
    assert status == 2 and f"cannot write to {locked}: Permission denied" in err
    assert "--out" in err and not any(locked.iterdir())


@pytest.mark.parametrize("fails", ["mkstemp", "replace"])
def test_output_folder_refusing_writes(tmp_path, capsys, monkeypatch, fails):
    """The same refusal for root too (which permissions do not stop): the OS says no when
    the temporary file is made, or when it is renamed into place; nothing is left behind."""
    import codegen.write as write

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    if fails == "mkstemp":
        monkeypatch.setattr(write.tempfile, "mkstemp", refuse)
    else:
        monkeypatch.setattr(write.os, "replace", refuse)
    out = tmp_path / "o"
    out.mkdir()
    status, _, err = run(capsys, ROOT / "examples" / "circuit.py", "--out", out)
    assert status == 2 and "Permission denied" in err and "pass a writable --out DIR" in err
    assert "Traceback" not in err
    assert not any(out.iterdir())


def test_never_clobbers_a_foreign_file(tmp_path, capsys):
    target = tmp_path / "circuit_grad.py"
    target.write_text("# my own code\n")
    status, _, err = run(capsys, ROOT / "examples" / "circuit.py", "--out", tmp_path)
    assert status == 2 and "not generated by gradgen" in err and "--force" in err
    assert target.read_text() == "# my own code\n"
    status, _, err = run(capsys, ROOT / "examples" / "circuit.py", "--out", tmp_path, "--force")
    assert status == 0, err
    assert target.read_text().startswith("# Generated by gradgen")


def test_console_has_no_traceback_for_errors(tmp_path):
    """The real process: message on stderr, status 2, no traceback."""
    path = write_source(
        tmp_path, "def f(x):\n    if bool(x > 1):\n        return x\n    return x\n"
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2
    assert "expr.py:2" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 3


def test_nan_at_every_point_warns_with_the_node(tmp_path, capsys):
    path = write_source(
        tmp_path, 'import numpy as np\n\ndef f(x: "f64[3]"):\n    return np.sum(np.log(x - 10.0))\n'
    )
    status, out, err = run(capsys, path, "--out", tmp_path / "o")
    assert status == 1, out + err  # NaN values: the check cannot pass
    assert "warning: log at expr.py:4 gives a NaN or infinity" in out
    assert (tmp_path / "o" / "expr_grad.py").exists()  # written, for reading


def test_large_modules_skip_black_and_say_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRADGEN_BLACK_MAX_LINES", "10")
    status, out, err = run(capsys, ROOT / "examples" / "neuron.py", "--out", tmp_path)
    assert status == 0, err
    assert "more than black's limit of 10" in err
    compile((tmp_path / "neuron_grad.py").read_text(), "neuron_grad.py", "exec")


def test_fuzz_regressions(tmp_path, capsys):
    """Shrunk fuzz failures: a scalar parameter used as a numpy scalar, and dead code that
    reads a parameter when dce is off."""
    scalar = write_source(
        tmp_path,
        'import numpy as np\n\ndef f(x0: "f64[5]", x2: "f64[]"):\n'
        "    return np.sum(np.max(x0) + x2.reshape(()) + x2[None])\n",
        stem="scalar",
    )
    assert run(capsys, scalar, "--out", tmp_path / "a")[0] == 0
    dead = write_source(
        tmp_path,
        'import numpy as np\n\ndef f(x1: "f64[3]", x2: "f64[]", x3: "f64[2]"):\n'
        "    unused = np.sum(x3) * 2.0\n    return np.sum(x1 * x2)\n",
        stem="dead",
    )
    assert run(capsys, dead, "--out", tmp_path / "b", "--passes", "fold,simplify,cse")[0] == 0
