"""Property-based fuzzing: random well-typed numpy programs through the whole pipeline.

The programs come from `fuzzgen.py` (beside this file), which reads the op table at run
time, so a new op is fuzzed the moment it is declared. Each program is compiled for every
target in `fuzzgen.TARGETS`, imported, checked against central differences, compared with
the reference IR interpreter and, when jax is importable, with `jax.vjp`. A failed numeric
check is a failure unless jax ran the program at the check's points and agreed with
gradgen there (`suspect`: the central differences were ill-conditioned).

Runs:

    python -m pytest tests/test_fuzz.py                     # bounded, derandomized (CI)
    GRADGEN_FUZZ=long python -m pytest tests/test_fuzz.py   # 10,000 programs, random seed
    python tests/fuzzgen.py --seeds 0:10000 --jobs 2 --report fuzz.md   # sweep, every failure
    python -m pytest -m jax tests/test_fuzz.py              # the tests that need jax

A failure shrinks (hypothesis) to a small program; paste its source into REGRESSIONS,
with an `xfail(strict=True)` mark while the bug stands.
"""

from __future__ import annotations

import dataclasses
import os
import random
import textwrap

import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import fuzzgen
from codegen import ops
from fuzzgen import TARGETS, Target

LONG = os.environ.get("GRADGEN_FUZZ", "").lower() == "long"

_COMMON = dict(
    deadline=None,
    database=None,  # nothing written into the checkout; failures print their source
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
settings.register_profile("gradgen-fuzz", max_examples=250, derandomize=True, **_COMMON)
settings.register_profile("gradgen-fuzz-long", max_examples=10_000, derandomize=False, **_COMMON)
FUZZ = settings.get_profile("gradgen-fuzz-long" if LONG else "gradgen-fuzz")
# jax.vjp compiles every program (~0.8 s, ten times the rest of a program's cost): every
# 4th program in long runs, as in the fuzzgen sweeps (10,000 programs take about 45 min on
# one core; with jax on every program they took over 2 h), every 10th by default.
JAX_EVERY = 4 if LONG else 10
HAS_JAX = fuzzgen.jax_available()


def _target_params(names=None):
    return [
        pytest.param(t, id=t.name, marks=() if t.available() else pytest.mark.skip("unavailable"))
        for t in TARGETS
        if names is None or t.name in names
    ]


# Each program on the C target costs a run of the C compiler (about 0.3 s): a bounded
# number of its own, so CI stays short; the long run gives it as many as the others.
COMPILED = {"c"}
C_PROGRAMS = 10_000 if LONG else 25


def _assert_ok(verdict: fuzzgen.Verdict, source: str, passes) -> None:
    """ok, or suspect: the numeric check failed where jax ran and agreed with gradgen."""
    assert verdict.status in ("ok", "suspect"), (
        f"{verdict.kind} failure (passes: {'all' if passes is None else passes})\n"
        f"{verdict.detail}\n--- program ---\n{source}"
    )


_seen = {"programs": 0}


@pytest.mark.parametrize(
    "target", _target_params([t.name for t in TARGETS if t.name not in COMPILED])
)
@FUZZ
@given(data=st.data())
def test_random_programs(target: Target, data):
    """Every generated program compiles, and its gradients agree with every oracle we have."""
    _random_program(target, data)


@pytest.mark.parametrize("target", _target_params(COMPILED))
@settings(FUZZ, max_examples=C_PROGRAMS)
@given(data=st.data())
def test_random_programs_compiled(target: Target, data):
    """The same on the targets that run a C compiler, fewer programs (a program that uses
    an op the C target does not emit yet is skipped, as one that leaves its domain)."""
    _random_program(target, data)


def _random_program(target: Target, data) -> None:
    program = fuzzgen.generate(fuzzgen.HypothesisChooser(data))
    note(program.source)
    note(f"passes: {program.passes}")
    _seen["programs"] += 1
    use_jax = HAS_JAX and _seen["programs"] % JAX_EVERY == 0
    verdict = fuzzgen.judge(program.source, program.passes, target, use_jax=use_jax)
    assume(verdict.status != "rejected")  # the program left its domain at the check's points
    _assert_ok(verdict, program.source, program.passes)


JAX_PROGRAMS = 100 if LONG else 12


@pytest.mark.parametrize("target", _target_params())
@settings(FUZZ, max_examples=JAX_PROGRAMS)
@given(data=st.data())
def test_random_programs_against_jax(target: Target, data):
    """Programs of their own (another test name, other derandomized draws), each compared
    with jax.vjp; a program jax cannot run (x[i] = v, ...) is checked as above."""
    pytest.importorskip("jax")
    program = fuzzgen.generate(fuzzgen.HypothesisChooser(data))
    note(program.source)
    note(f"passes: {program.passes}")
    verdict = fuzzgen.judge(program.source, program.passes, target, use_jax=True)
    assume(verdict.status != "rejected")
    _assert_ok(verdict, program.source, program.passes)


# ---- the judge: a failed numeric check is forgiven only on jax's positive agreement -----

SIN_IN_PLACE = """
import numpy as np


def f(x: "f64[3]"):
    y = np.zeros(3)
    y[0] = np.sin(x[0])
    return np.sum(y * x)
"""

SIN_PLAIN = """
import numpy as np


def f(x: "f64[3]"):
    return np.sum(np.sin(x) * x)
"""


@pytest.fixture
def wrong_sin(monkeypatch):
    """sin's gate planted wrong: 2 cos instead of cos."""
    wrong = dataclasses.replace(
        ops.OPS["sin"], vjp=lambda g, out, x: (g * 2.0 * ops.apply("cos", x),)
    )
    monkeypatch.setitem(ops.OPS, "sin", wrong)


def test_failed_check_stays_failed_when_jax_refuses_or_is_missing(wrong_sin):
    """jax cannot run `y[0] = v` (or is not installed): nothing vouches for gradgen, so the
    failed check is a failure, whether or not the crosscheck extra is installed."""
    source = textwrap.dedent(SIN_IN_PLACE).lstrip()
    verdict = fuzzgen.judge(source, None, TARGETS[0], use_jax=True, arbitrate=True)
    assert (verdict.status, verdict.kind) == ("fail", "check"), verdict
    assert "jax unknown" in verdict.detail, verdict.detail


def test_failed_check_stays_failed_when_jax_disagrees(wrong_sin):
    pytest.importorskip("jax")
    source = textwrap.dedent(SIN_PLAIN).lstrip()
    verdict = fuzzgen.judge(source, None, TARGETS[0], use_jax=False, arbitrate=True)
    assert (verdict.status, verdict.kind) == ("fail", "check"), verdict
    assert "jax disagree" in verdict.detail, verdict.detail
    # and the plain cross-check catches it on its own
    verdict = fuzzgen.judge(source, None, TARGETS[0], use_jax=True, arbitrate=False)
    assert (verdict.status, verdict.kind) == ("fail", "jax"), verdict


def test_failed_check_is_suspect_only_when_jax_agrees_at_its_points(monkeypatch):
    """A right gradient whose check fails (a tolerance below zero stands in for
    ill-conditioned differences): jax runs it at the check's own points and agrees."""
    pytest.importorskip("jax")
    from codegen import check

    points = []
    monkeypatch.setitem(check.TOL, "f64", (-1.0, 0.0))
    real = fuzzgen.compare_jax

    def spy(*args, **kwargs):
        points.append(kwargs.get("at"))
        return real(*args, **kwargs)

    monkeypatch.setattr(fuzzgen, "compare_jax", spy)
    source = textwrap.dedent(SIN_PLAIN).lstrip()
    verdict = fuzzgen.judge(source, None, TARGETS[0], use_jax=False, arbitrate=True)
    assert (verdict.status, verdict.kind) == ("suspect", "check"), verdict
    (at,) = points
    assert at is not None and len(at["f"]) >= check.POINTS  # the points the check drew


# ---- regressions: shrunk failures, kept as explicit sources -----------------------------


def _bug(source: str, passes, id: str, reason: str):
    """A regression for an open bug: xfail(strict), so fixing it turns the test red until
    the mark is removed."""
    return pytest.param(source, passes, id=id, marks=pytest.mark.xfail(strict=True, reason=reason))


REGRESSIONS = [
    pytest.param(
        """
        import numpy as np


        def f(math: "f64[]"):
            return np.tanh(math)
        """,
        None,
        id="param-named-math",
    ),
    pytest.param(
        """
        import numpy as np


        def f(math: "f64[]", x0: "f64[2,1]"):
            return np.sum(1 / (1 + np.exp(-math)) + x0)
        """,
        None,
        id="param-named-math-sigmoid",
    ),
    pytest.param(
        """
        import numpy as np


        def f(x: "f64[]"):
            return np.hypot(0.0, x - x)
        """,
        None,
        id="hypot-at-origin-scalar",
    ),
    pytest.param(
        """
        import numpy as np


        def f(x: "f64[3]"):
            return np.sum(np.hypot(x - x, 0.0) + x)
        """,
        None,
        id="hypot-at-origin-array",
    ),
    pytest.param(
        """
        import numpy as np


        def f(x: "f64[]", y: "f64[]"):
            dead = np.sin(y)
            return x * 2.0
        """,
        [],
        id="dead-code-without-dce",
    ),
    pytest.param(
        """
        import numpy as np


        def f(x: "f64[3]", math: "f64[3]"):
            return np.sum(x * x)
        """,
        None,
        id="renamed-param-zero-gradient",
    ),
    pytest.param(
        """
        import numpy as np


        def f(saved: "f64[1]", x0: "f64[2]", x1: "f64[1]"):
            v0 = np.not_equal(saved, x0) * x1
            return np.sum(np.negative(v0))
        """,
        None,
        id="mask-times-minus-one-is-not-negated",  # -mask: numpy has no bool negative
    ),
    pytest.param(
        """
        import numpy as np


        def f(a: "f64[3]", b: "f64[3]"):
            m = (a > 0) * 1.0 + (b > 0) * 1.0
            return np.sum(m * a * b)
        """,
        None,
        id="mask-times-one-stays-float",  # was mask + mask: a logical or
    ),
]


@pytest.mark.parametrize("target", _target_params())
@pytest.mark.parametrize("source, passes", REGRESSIONS)
def test_regression(target: Target, source: str, passes):
    source = textwrap.dedent(source).lstrip()
    _assert_ok(fuzzgen.judge(source, passes, target), source, passes)


# ---- the generator itself ----------------------------------------------------------------


def test_every_op_is_reachable():
    """Every op users can call has a form: a ufunc, an operator, an example or a generic form."""
    uncovered = fuzzgen.catalog().uncovered
    assert not uncovered, (
        f"the fuzzer cannot write {uncovered}: give each op `examples=` in its defop "
        "(tests/fuzzgen.py turns examples into templates)"
    )


def _forms():
    cat = fuzzgen.catalog()
    return [pytest.param(f, id=f.label) for fs in cat.forms.values() for f in fs]


@pytest.mark.parametrize("form", _forms())
def test_each_form(form: fuzzgen.Form):
    """A small program rooted at each form compiles and checks (no jax: kept fast)."""
    program = fuzzgen.Generator(fuzzgen.ReplayChooser(random.Random(1))).program_with(form)
    verdict = fuzzgen.judge(program.source, None, TARGETS[0], use_jax=False)
    assert verdict.status != "rejected", verdict.detail
    _assert_ok(verdict, program.source, None)


def test_generator_is_deterministic():
    assert fuzzgen.from_seed(11).source == fuzzgen.from_seed(11).source
    assert len({fuzzgen.from_seed(s).source for s in range(20)}) > 15


def test_replay_reproduces_a_program():
    program = fuzzgen.from_seed(5)
    again = fuzzgen.generate(fuzzgen.ReplayChooser(None, program.choices))
    assert again.source == program.source and again.passes == program.passes


def test_shrink_finds_a_smaller_program():
    """The sweep's shrinker keeps a property while making the program smaller."""
    seed = next(s for s in range(200) if "np.sin(" in fuzzgen.from_seed(s).source)
    program = fuzzgen.from_seed(seed)
    small = fuzzgen.shrink(program.choices, lambda p: "np.sin(" in p.source, budget=300)
    assert "np.sin(" in small.source
    assert len(small.source) <= len(program.source)
