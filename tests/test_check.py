"""The numeric check: ok / FAIL / inconclusive, the second look at a failing step, the
redraws at smaller scales, and the points a module chooses with `_check_args(rng)`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from codegen import check, cli, ops
from helpers import compile_and_check, write_source

# A scalar chain that is ill-conditioned at some N(0,1) points (|4w| > 1 folds the line
# onto itself thirty times) and tame at smaller ones.
CHAIN = """
import numpy as np


def chain(w: "f64[]", b: "f64[]", x: "f64[]"):
    s = x
    for _ in range(30):
        s = np.sin(4.0 * w * s + b)
    return s
"""

# The RNN of the issue: 50 steps, hidden 32, batch 8; chaotic at N(0,1) weights.
RNN = """
import numpy as np


def rnn(xs: "f64[50,8,16]", Wxh: "f64[16,32]", Whh: "f64[32,32]", b: "f64[32]"):
    h = np.zeros((8, 32))
    for t in range(50):
        h = np.tanh(xs[t] @ Wxh + h @ Whh + b)
    return np.sum(h * h)
"""

# The logistic map at r = 4: chaotic at every input scale, so never confirmed.
LOGISTIC = """
import numpy as np


def logistic(x: "f64[]"):
    s = 0.3 + 0.01 * np.tanh(x)
    for _ in range(40):
        s = 4.0 * s * (1.0 - s)
    return s
"""

NORMAL_POINTS = """

def _check_args(rng):
    shapes = [(50, 8, 16), (16, 32), (32, 32), (32,)]
    return tuple(rng.standard_normal(s) for s in shapes)
"""


def wrong(monkeypatch, op: str, rule) -> None:
    """Replace `op`'s VJP rule for this test (the compile reads the op table)."""
    monkeypatch.setitem(ops.OPS, op, dataclasses.replace(ops.OPS[op], vjp=rule))


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def last_line(out: str) -> str:
    return out.rstrip().splitlines()[-1]


# ---- a wrong rule still FAILs; a right ill-conditioned one no longer does ----


@pytest.mark.parametrize(
    "rule",
    [
        lambda g, out, x: (g * 2.0 * ops.apply("cos", x),),  # off by a factor of 2
        lambda g, out, x: (g * (ops.apply("cos", x) + 1e-3),),  # off by a little
    ],
    ids=["twice", "slightly"],
)
def test_wrong_rule_fails_on_the_scalar_chain(tmp_path, monkeypatch, rule):
    wrong(monkeypatch, "sin", rule)
    _, _, (report,) = compile_and_check(write_source(tmp_path, CHAIN))
    assert report.failed and report.verdict == "FAIL"
    text = check.format_report(report)
    assert "FAIL" in text and " ± " in text  # the converged differences, with their error


def test_right_rule_on_the_ill_conditioned_scalar_chain(tmp_path):
    _, _, (report,) = compile_and_check(write_source(tmp_path, CHAIN))
    assert report.ok, check.format_report(report)
    # a point at scale 1 did not converge, was said to, and was drawn again smaller
    assert report.notes and "drawn again at input scale 0.25" in report.notes[0]
    assert "do not converge" in report.notes[0]


@pytest.mark.parametrize(
    "rule",
    [
        lambda g, out, x: (g * (1.0 - out),),
        lambda g, out, x: (g * (1.0 - 1.001 * out * out),),
    ],
    ids=["1-t", "slightly"],
)
def test_wrong_rule_fails_on_the_rnn(tmp_path, monkeypatch, rule):
    wrong(monkeypatch, "tanh", rule)
    _, _, (report,) = compile_and_check(write_source(tmp_path, RNN))
    assert report.failed, check.format_report(report)


def test_wrong_rule_fails_on_the_rnn_at_normal_points(tmp_path, monkeypatch):
    wrong(monkeypatch, "tanh", lambda g, out, x: (g * (1.0 - 1.001 * out * out),))
    _, _, (report,) = compile_and_check(write_source(tmp_path, RNN + NORMAL_POINTS))
    assert report.given and report.failed, check.format_report(report)


def test_right_rnn_at_normal_points_is_not_a_failure(tmp_path, capsys):
    path = write_source(tmp_path, RNN + NORMAL_POINTS)
    compiled, module, (report,) = compile_and_check(path)
    assert not report.failed, check.format_report(report)
    # the premise: one central difference there disagrees with the right gradient, which
    # the check used to call a FAIL
    (args,) = check.user_points(compiled.functions[0].spec)
    _, grads = module.rnn_value_and_grad(*args)
    e = np.zeros_like(args[3])
    e[0] = h = 1e-6
    fn = compiled.functions[0].spec.fn
    one_step = (fn(*args[:3], args[3] + e) - fn(*args[:3], args[3] - e)) / (2 * h)
    assert abs(one_step - grads[3][0]) > 1e-2 * abs(grads[3][0])
    # the command: status 0, no FAIL, and the last line says what it could not confirm
    status, out, _ = run(capsys, path, "--out", tmp_path / "cli")
    assert status == 0 and "FAIL" not in out
    assert last_line(out) == "ok" or last_line(out).startswith("not confirmed:")


def test_right_rnn_at_random_points_is_not_a_failure(tmp_path, capsys):
    status, out, _ = run(capsys, write_source(tmp_path, RNN), "--out", tmp_path / "o")
    assert status == 0 and "FAIL" not in out, out


def test_never_converging_is_inconclusive_not_failed(tmp_path, capsys):
    path = write_source(tmp_path, LOGISTIC)
    _, _, (report,) = compile_and_check(path)
    assert not report.ok and not report.failed and report.inconclusive == ["x"]
    assert len(report.notes) == check.POINTS * (len(check.SCALES) - 1)  # drawn again each time
    status, out, _ = run(capsys, path, "--out", tmp_path / "o")
    assert status == 0, out
    row = next(line for line in out.splitlines() if line.strip().startswith("x "))
    assert row.rstrip().endswith("inconclusive") and " ± " in row
    assert "inconclusive: x at point" in out and "ill-conditioned" in out
    assert last_line(out).startswith("not confirmed: the check could not confirm logistic: x")
    assert "_check_args(rng)" in last_line(out)
    assert (tmp_path / "o" / "expr_grad.py").exists()


def test_no_fit_point_at_a_smaller_scale_keeps_the_first(tmp_path):
    # log(x - 1.2) has no domain at input scale 1/4 (the draws there are below 0.375,
    # or normal ones, which would have to be above 4.8)
    source = LOGISTIC.replace("np.tanh(x)", "np.tanh(np.log(x - 1.2))")
    _, _, (report,) = compile_and_check(write_source(tmp_path, source))
    assert report.inconclusive == ["x"] and not report.failed and not report.warnings
    assert len(report.notes) == check.POINTS
    assert all("no point at input scale 0.25 avoids kinks" in n for n in report.notes)


def test_ok_stays_exactly_ok_and_one_step_costs_no_more(tmp_path, capsys, monkeypatch):
    path = write_source(
        tmp_path,
        """
        import numpy as np

        CALLS = []


        def f(x: "f64[3]"):
            CALLS.append(1)
            return np.sum(np.sin(x))
        """,
    )
    status, out, _ = run(capsys, path, "--out", tmp_path / "o")
    assert status == 0 and last_line(out) == "ok" and "note" not in out
    compiled, module, (report,) = compile_and_check(path)
    calls = compiled.functions[0].spec.fn.__globals__["CALLS"]
    calls.clear()
    report = check.check_function(module, *_unit(compiled))
    # per point: the value once, then one central difference (two calls) per element
    assert report.ok and len(calls) == check.POINTS * (1 + 2 * 3)


def _unit(compiled):
    t = compiled.functions[0]
    return t.spec, t.forward, t.wrt


# ---- the second look, on its own ----


def _differences(f):
    def difference(h):
        plus, minus = f(h), f(-h)
        return (plus - minus) / (2 * h), check.ROUNDING * max(abs(plus), abs(minus)) / h

    return difference


def test_refine_confirms_a_steep_smooth_derivative():
    # exp(1e4 t): one step of 1e-6 is off by 1.7e-5 relative, the refinement is not
    diff = _differences(lambda t: np.exp(1e4 * t))
    d, noise = diff(1e-6)
    assert abs(d - 1e4) > 1e-5 * 1e4
    verdict, n, err, steps = check.refine(diff, 1e-6, d, noise, 1e4, 1e-6, 1e-5)
    assert verdict == "ok" and abs(n - 1e4) <= err + 1e-6 + 1e-5 * 1e4 and steps[0] > steps[1]
    verdict, *_ = check.refine(diff, 1e-6, d, noise, 1.001e4, 1e-6, 1e-5)
    assert verdict == "FAIL"


def test_refine_says_inconclusive_on_noise():
    rng = np.random.default_rng(0)
    diff = _differences(lambda t: float(rng.standard_normal()))
    d, noise = diff(1e-6)
    verdict, n, err, _ = check.refine(diff, 1e-6, d, noise, 3.0, 1e-6, 1e-5)
    assert verdict == "inconclusive" and err > 1.0


# ---- the generated functions are still compared with each other ----


@pytest.mark.parametrize("broken", ["f_backward", "f", "f_forward"])
def test_generated_functions_are_compared(tmp_path, broken):
    path = write_source(
        tmp_path, 'import numpy as np\n\ndef f(x: "f64[3]"):\n    return np.sum(np.sin(x))\n'
    )
    compiled, module, _ = compile_and_check(path)
    good = getattr(module, broken)
    if broken == "f_backward":
        setattr(module, broken, lambda saved, g: tuple(2.0 * a for a in good(saved, g)))
    elif broken == "f":
        setattr(module, broken, lambda x: good(x) + 1.0)
    else:
        setattr(module, broken, lambda x: (good(x)[0] + 1.0, good(x)[1]))
    report = check.check_function(module, *_unit(compiled))
    assert report.failed
    worst = {a.name: a for a in report.args}
    if broken == "f_backward":
        assert "vs value_and_grad" in worst["x"].where
    else:
        assert f"({broken})" in worst["value"].where


def test_vjp_of_a_vector_output(tmp_path):
    path = write_source(
        tmp_path, 'import numpy as np\n\ndef f(x: "f64[3]"):\n    return np.sin(x)\n'
    )
    _, _, (report,) = compile_and_check(path)
    assert report.ok


# ---- _check_args(rng): the user's points ----

BASE = """
import numpy as np

DIMS = {"n": 4}


def f(W: "f64[n,3]", c: "f64[]"):
    SEEN.append(W)
    return np.sum(np.tanh(W * c))


SEEN = []
"""


def _seen(compiled) -> list:
    return [w for w in compiled.functions[0].spec.fn.__globals__["SEEN"] if type(w) is np.ndarray]


def test_check_args_single_tuple(tmp_path, capsys):
    W = "np.arange(12.0).reshape(4, 3) / 10"
    path = write_source(tmp_path, BASE + f"\n\ndef _check_args(rng):\n    return ({W}, 0.5)\n")
    compiled, _, (report,) = compile_and_check(path)
    assert report.ok and report.given and report.points == 1
    assert any(np.array_equal(w, np.arange(12.0).reshape(4, 3) / 10) for w in _seen(compiled))
    text = check.format_report(report)
    assert text.startswith("check f: 1 point from _check_args, central differences")
    status, out, _ = run(capsys, path, "--out", tmp_path / "o")
    assert status == 0 and last_line(out) == "ok"


def test_check_args_list_and_rng(tmp_path):
    path = write_source(
        tmp_path,
        BASE
        + "\n\ndef _check_args(rng):\n"
        + "    return [(rng.standard_normal((4, 3)), 0.3), (np.ones((4, 3)), np.float64(-2.0))]\n",
    )
    compiled, _, (report,) = compile_and_check(path)
    assert report.ok and report.given and report.points == 2
    first = check.user_points(compiled.functions[0].spec)
    again = check.user_points(compiled.functions[0].spec)
    assert np.array_equal(first[0][0], again[0][0])  # a seeded rng: the same points
    assert np.array_equal(first[0][0], np.random.default_rng(0).standard_normal((4, 3)))
    seen = _seen(compiled)
    assert any(np.array_equal(w, np.ones((4, 3))) for w in seen)


def test_check_args_dict_by_function(tmp_path):
    path = write_source(
        tmp_path,
        BASE
        + '\n\ndef g(x: "f64[2]"):\n    return np.sum(x * x)\n'
        + "\n\ndef _check_args(rng):\n    return {'g': (np.array([1.0, 2.0]),)}\n",
    )
    compiled, _, reports = compile_and_check(path)
    by_name = {r.name: r for r in reports}
    assert by_name["g"].given and by_name["g"].points == 1
    assert not by_name["f"].given and by_name["f"].points == check.POINTS


def test_check_args_inconclusive_is_not_redrawn(tmp_path):
    path = write_source(tmp_path, LOGISTIC + "\n\ndef _check_args(rng):\n    return (0.7,)\n")
    _, _, (report,) = compile_and_check(path)
    assert report.inconclusive == ["x"] and not report.notes
    assert "at the points of _check_args" in check.format_report(report)


BAD = {
    "not_callable": (
        "_check_args = 3",
        "_check_args in expr.py is a value of type int, not a function",
    ),
    "raises": (
        "def _check_args(rng):\n    raise ValueError('boom')",
        "expr.py:15: error: _check_args(rng) in expr.py raised ValueError: boom",
    ),
    "no_rng": (
        "def _check_args():\n    return (np.ones((4, 3)), 1.0)",
        "raised TypeError: _check_args() takes 0 positional arguments but 1 was given",
    ),
    "array": (
        "def _check_args(rng):\n    return np.ones((4, 3))",
        "_check_args(rng) in expr.py returned an array of shape (4, 3), not a tuple of arguments",
    ),
    "empty": ("def _check_args(rng):\n    return []", "returned an empty list"),
    "item": (
        "def _check_args(rng):\n    return [(np.ones((4, 3)), 1.0), np.ones((4, 3))]",
        "returned a list whose item 1 is an array of shape (4, 3), not a tuple of arguments",
    ),
    "count": (
        "def _check_args(rng):\n    return (np.ones((4, 3)),)",
        "_check_args(rng) in expr.py has 1 argument, but f takes 2 (W, c)",
    ),
    "shape": (
        "def _check_args(rng):\n    return (np.ones((3, 4)), 1.0)",
        "argument 'W' has shape (3, 4), but f annotates it f64[n,3] = (4, 3)",
    ),
    "scalar": (
        "def _check_args(rng):\n    return [(np.ones((4, 3)), 1.0), (np.ones((4, 3)), np.ones(1))]",
        "_check_args(rng) in expr.py, point 1: argument 'c' has shape (1,), but f annotates "
        "it f64[]",
    ),
    "dtype": (
        "def _check_args(rng):\n    return (np.ones((4, 3)) * 1j, 1.0)",
        "argument 'W' has dtype complex128, not a real number type",
    ),
    "text": (
        "def _check_args(rng):\n    return ('W', 1.0)",
        "argument 'W' has dtype <U1, not a real number type",
    ),
    "nan": (
        "def _check_args(rng):\n    return (np.ones((4, 3)), float('nan'))",
        "argument 'c' holds a NaN or an infinity",
    ),
    "dict_key": (
        "def _check_args(rng):\n    return {'h': (np.ones(2),)}",
        "returned a dict with the key 'h', which is not a function of expr.py",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_check_args_is_one_clear_message(tmp_path, capsys, case):
    source, message = BAD[case]
    path = write_source(tmp_path, BASE + "\n\n" + source + "\n")
    status, out, err = run(capsys, path, "--out", tmp_path / "o")
    assert status == 2, (out, err)
    assert message in err, err
    assert err.startswith("gradgen: expr.py:") or "expr.py" in err.splitlines()[0]
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_bad_check_args_is_ignored_with_no_check(tmp_path, capsys):
    path = write_source(tmp_path, BASE + "\n\ndef _check_args(rng):\n    return []\n")
    status, out, err = run(capsys, path, "--out", tmp_path / "o", "--no-check")
    assert status == 0, err
