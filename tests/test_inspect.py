"""Inspection from the command line: --draw (with --at and --draw-level), --json, --show
highlighted on a terminal and plain when piped, and notes about the user's code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from codegen import cli
from codegen import draw as draw_module
from helpers import ROOT, write_source

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@needs_dot
def test_draw_writes_the_picture_and_nothing_else(tmp_path, capsys):
    target = tmp_path / "pics" / "circuit.svg"
    status, out, err = run(
        capsys,
        ROOT / "examples" / "circuit.py",
        "--draw",
        target,
        "--at",
        "x=-2,y=5,z=-4",
        "--out",
        tmp_path / "gen",
    )
    assert status == 0, err
    assert out.strip() == f"wrote {target}"
    svg = target.read_text()
    assert "q = 3" in svg and "f = &#45;12" in svg and "mul: swaps" in svg
    assert not (tmp_path / "gen").exists()


def test_draw_without_graphviz_writes_dot(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(draw_module.shutil, "which", lambda name: None)
    target = tmp_path / "neuron.png"
    status, out, err = run(
        capsys,
        ROOT / "examples" / "neuron.py",
        "--draw",
        target,
        "--at",
        "w=[2,-3,-3],x=[-1,-2]",
    )
    assert status == 0, err
    assert "dot -Tpng" in out and not target.exists()
    text = (tmp_path / "neuron.dot").read_text()
    assert "neuron at w=[2,-3,-3], x=[-1,-2]" in text
    for grad in ("-0.1966", "-0.3932", "0.1966", "0.3932", "-0.5898"):  # the classic five
        assert grad in text


def test_draw_level_lines(tmp_path, capsys):
    target = tmp_path / "mlp.dot"
    status, _, err = run(
        capsys, ROOT / "examples" / "mlp.py", "--draw", target, "--draw-level", "lines"
    )
    assert status == 0, err
    text = target.read_text()
    assert "line 11" in text and "h = np.tanh(X @ W1 + b1)" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--at", "x=1"], "--at chooses the point of a drawing"),
        (["--draw", "c.svg", "--at", "q=1"], "'q', not a parameter"),
        (["--draw", "c.gif"], ".dot, .svg, .png or .pdf"),
        (["--json", "--no-check"], "--json prints the check's report"),
    ],
)
def test_inspection_mistakes(tmp_path, capsys, argv, message):
    argv = [a if not a.endswith((".svg", ".gif")) else str(tmp_path / a) for a in argv]
    status, out, err = run(capsys, ROOT / "examples" / "circuit.py", *argv, "--out", tmp_path)
    assert status == 2 and message in err, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_json_report(tmp_path, capsys):
    status, out, err = run(capsys, ROOT / "examples" / "neuron.py", "--json", "--out", tmp_path)
    assert status == 0, err
    report = json.loads(out)  # stdout is the report alone
    assert "check neuron" in err and "wrote" in err
    assert report["version"] == 1 and report["verdict"] == "ok"
    assert report["module"] == str(tmp_path / "neuron_grad.py")
    (fn,) = report["functions"]
    assert fn["name"] == "neuron" and fn["verdict"] == "ok" and fn["points"] == 3
    assert [a["name"] for a in fn["args"]] == ["value", "w", "x"]
    for a in fn["args"]:
        assert set(a) == {
            "name",
            "shape",
            "verdict",
            "worst_at",
            "generated",
            "numeric",
            "numeric_err",
            "rel_err",
        }
        assert a["verdict"] == "ok" and isinstance(a["generated"], float)
    assert fn["args"][1]["shape"] == [3]


def test_json_report_of_a_failure(tmp_path, capsys, monkeypatch):
    from codegen import ops

    spec = ops.OPS["sin"]
    monkeypatch.setitem(
        ops.OPS, "sin", type(spec)(**{**spec.__dict__, "vjp": lambda g, out, x: (g,)})
    )
    path = write_source(
        tmp_path, 'import numpy as np\n\ndef f(x: "f64[3]"):\n    return np.sum(np.sin(x))\n'
    )
    status, out, err = run(capsys, path, "--json", "--out", tmp_path / "o")
    assert status == 1
    report = json.loads(out)
    assert report["verdict"] == "FAIL"
    assert report["functions"][0]["args"][1]["verdict"] == "FAIL"


def test_show_is_plain_when_piped():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NO_COLOR", None)
    for what in ("code", "ir"):
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "cli.py"),
                str(ROOT / "examples" / "circuit.py"),
                "--show",
                what,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "\x1b[" not in done.stdout and (
            "def circuit" in done.stdout or "lambda" in done.stdout
        )


def test_show_is_coloured_on_a_terminal(capsys, monkeypatch):
    pytest.importorskip("pygments")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    status, out, _ = run(capsys, ROOT / "examples" / "circuit.py", "--show", "code")
    assert status == 0
    assert "\x1b[" in out


def test_note_for_a_write_into_a_parameter(tmp_path, capsys):
    path = write_source(
        tmp_path,
        'import numpy as np\n\ndef f(x: "f64[3]"):\n    x[0] = 2.0\n    return np.sum(x * x)\n',
    )
    status, out, err = run(capsys, path, "--out", tmp_path / "o")
    assert status == 0, err
    assert "note: expr.py:4: f writes into its parameter 'x'" in err
    assert out.rstrip().endswith("ok")


def test_explain_names_the_forward_line(tmp_path, capsys):
    status, out, _ = run(capsys, ROOT / "examples" / "neuron.py", "--explain", "--show", "code")
    assert status == 0
    body = out.split("def neuron_value_and_grad", 1)[1].split("def neuron_forward", 1)[0]
    lines = [line.strip() for line in body.splitlines()]
    at = lines.index("# from f = 1.0 / (1.0 + np.exp(-dot))  (neuron.py:8)")
    assert lines[at + 1].startswith("g_dot = f * (1.0 - f)  # sigmoid gate")
    assert "# from dot = w[0] * x[0] + w[1] * x[1] + w[2]  (neuron.py:7)" in lines
    plain = run(capsys, ROOT / "examples" / "neuron.py", "--show", "code")[1]
    assert "# from" not in plain  # off by default: the goldens do not change
    quiet = run(
        capsys, ROOT / "examples" / "neuron.py", "--show", "code", "--explain", "--no-comments"
    )[1]
    assert "# from" not in quiet
