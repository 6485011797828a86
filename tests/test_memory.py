"""Memory planning in the emitted code: del at last use, out= into dead buffers, figures."""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from codegen.stats import format_stats
from helpers import (
    assert_checked,
    assert_same_arrays,
    compile_and_check,
    needs_passes,
    write_source,
)

ELEMENTWISE = """
import numpy as np


def ew(x: "f64[100000]"):
    return np.sum(np.tanh(x) * np.exp(-x * x) + np.sin(x))
"""


def test_large_arrays_are_dropped_and_reused(tmp_path):
    compiled, module, reports = compile_and_check(write_source(tmp_path, ELEMENTWISE))
    assert_checked(reports)
    src = compiled.source
    assert "del " in src
    assert ", out=" in src
    x = np.linspace(-2, 2, 100000)
    value, (g,) = module.ew_value_and_grad(x)
    t = np.tanh(x)
    e = np.exp(-x * x)
    np.testing.assert_allclose(
        g, (1 - t * t) * e - 2 * x * t * e + np.cos(x), rtol=1e-9, atol=1e-15
    )
    assert not np.shares_memory(g, x)


def test_small_code_has_no_memory_lines(tmp_path):
    src = write_source(
        tmp_path, 'import numpy as np\n\ndef f(x: "f64[5]"):\n    return np.sum(np.tanh(x) * x)\n'
    )
    compiled, _, _ = compile_and_check(src)
    assert "del " not in compiled.source and "out=" not in compiled.source


@needs_passes
def test_stats_report(tmp_path):
    compiled, _, _ = compile_and_check(write_source(tmp_path, ELEMENTWISE))
    text = format_stats(compiled)
    assert "passes on value_and_grad: fold" in text
    assert "flops (estimate): forward" in text
    assert "saved for backward: x, " in text
    assert "peak live bytes" in text
    assert compiled.memory["ew"]["value_and_grad peak live bytes"] > 0


VIEW_THEN_REUSE = """
import numpy as np


def f(x: "f64[100,100]"):
    a = x * 2.0
    v = a[0:50]
    w = v * v
    b = np.exp(a)
    return np.sum(b) + np.sum(w) + np.sum(v)
"""


def test_no_out_into_a_buffer_a_view_still_reads(tmp_path):
    """Regression: `b = np.exp(a, out=a)` while `v = a[0:50]` is still read."""
    compiled, module, reports = compile_and_check(write_source(tmp_path, VIEW_THEN_REUSE))
    assert_checked(reports)  # a large |f| (1e5) must not fail a right gradient
    assert "out=a)" not in compiled.source


ALIASES = """
import numpy as np


def f(x: "f64[3]", y: "f64[3]", b: "f64[3]", W: "f64[2,3]"):
    return np.sum(x * y) + np.sum(b) + np.sum(W.T * 2.0) + np.sum(x.reshape(3, 1) * W.T)
"""


def test_gradients_never_share_memory(tmp_path):
    """g_x = y, a read-only broadcast, a view of a constant: each comes back as its own array,
    so an optimizer may update the parameters and the gradients in place."""
    compiled, module, reports = compile_and_check(write_source(tmp_path, ALIASES))
    assert_checked(reports)
    rng = np.random.default_rng(0)
    args = [rng.normal(size=s) for s in [(3,), (3,), (3,), (2, 3)]]
    before = [a.copy() for a in args]
    for grads in (module.f_value_and_grad(*args)[1], module.f_vjp(*args, 1.0)[1]):
        arrays = list(grads) + args
        for i, gi in enumerate(grads):
            assert gi.flags.writeable
            for j, a in enumerate(arrays):
                if j != i:
                    assert not np.shares_memory(gi, a), (i, j)
        for gi in grads:
            gi *= 0.0  # the caller owns them
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b)
    # the constants the module holds are intact
    np.testing.assert_allclose(module.f_value_and_grad(*args)[1][2], np.ones(3))


CHAIN = """
import numpy as np


def f(a: "f64[]", b: "f64[]", x: "f64[]"):
    s = x
    for _ in range(40):
        s = b * np.tanh(a * s)
    return s
"""


def test_scalar_code_rebinds_dead_names(tmp_path):
    """A rebound user name is rebound in the generated code too, and a parameter read at
    every step gets a running sum: the function holds a few floats, not one per gate."""
    compiled, module, reports = compile_and_check(write_source(tmp_path, CHAIN))
    assert_checked(reports)
    src = compiled.source
    forward = src.split("def f_value_and_grad")[0]
    assert forward.count("    s = b * math.tanh(a * s)") == 39
    vg = src.split("def f_value_and_grad")[1].split("\ndef ")[0]
    assert vg.count("g_a = g_a + ") == 38 and vg.count("g_b = g_b + ") == 38
    assert "g_s = " in vg and "g_s_1" not in vg
    # no sum with more than two terms: every branch is added where it is made
    assert max(line.count(" + ") for line in vg.splitlines()) <= 2
    assert len(set(re.findall(r"\bt\d+\b", vg))) < 100


def test_reused_names_do_not_confuse_del(tmp_path):
    """A dead array whose name the next statement takes is not `del`-ed after it."""
    src = write_source(
        tmp_path,
        'import numpy as np\n\ndef f(x: "f64[5000]"):\n'
        "    h = np.tanh(x)\n    h = np.sin(h) * 2.0\n    h = np.exp(h) + h\n    return np.sum(h * h)\n",
    )
    compiled, module, reports = compile_and_check(src)
    assert_checked(reports)
    x = np.linspace(-1, 1, 5000)
    h = np.sin(np.tanh(x)) * 2.0
    h = np.exp(h) + h
    np.testing.assert_allclose(module.f(x), np.sum(h * h))


def _function(src: str, name: str) -> str:
    return src.split(f"\ndef {name}(")[1].split("\ndef ")[0]


def _peak(fn, *args):
    """fn(*args) and the most bytes it held at once (after a warm-up call)."""
    fn(*args)
    tracemalloc.start()
    try:
        result = fn(*args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_sum_of_dead_arrays_is_added_in_place(tmp_path):
    """`np.sum(a + b)` with `a` and `b` dead after it: the add writes into one of them, so
    three arrays of x's size never coexist, and the result keeps the buffer's name."""
    compiled, module, reports = compile_and_check(write_source(tmp_path, ELEMENTWISE))
    assert_checked(reports)
    assert compiled.memory["ew"]["forward peak live bytes"] == 2 * 800_000
    forward = _function(compiled.source, "ew")
    assert "+= " in forward and "*= " in forward
    assert not re.search(r"= np\.(add|multiply)\(", forward)  # augmented, not renamed
    x = np.linspace(-2, 2, 100000)
    value, peak = _peak(module.ew, x)
    assert peak < 2.5 * 800_000
    np.testing.assert_allclose(value, np.sum(np.tanh(x) * np.exp(-x * x) + np.sin(x)))


STEP = """
import numpy as np


def f(x: "f64[{n}]", b: "f64[{n}]"):
    return np.sum(np.tanh(np.exp(x) + b))
"""


def test_out_starts_at_two_kib(tmp_path):
    """Below 2 KiB numpy's allocation cache makes a new array as cheap as a reused one, so
    small code keeps its one-line form; from 2 KiB (256 float64) the buffer is reused."""
    small, _, _ = compile_and_check(write_source(tmp_path, STEP.format(n=128)))
    assert "np.tanh(np.exp(x) + b)" in _function(small.source, "f")
    large, _, reports = compile_and_check(write_source(tmp_path, STEP.format(n=256), "big"))
    assert_checked(reports)
    forward = _function(large.source, "f")
    assert "+= b" in forward and "out=" in forward


@needs_passes
def test_a_value_read_twice_gives_its_buffer_at_the_last_read(tmp_path):
    """tanh(x) * exp(-x*x) is read by the forward sum and by backward: backward's last read
    writes into it. Four arrays of x's size at most, as in the hand-written gradient."""
    compiled, module, reports = compile_and_check(write_source(tmp_path, ELEMENTWISE))
    assert_checked(reports)
    assert compiled.memory["ew"]["value_and_grad peak live bytes"] <= 4 * 800_000 + 8
    x = np.linspace(-2, 2, 100000)
    (_, (g,)), peak = _peak(module.ew_value_and_grad, x)
    assert peak < 4.5 * 800_000
    t, e = np.tanh(x), np.exp(-x * x)
    np.testing.assert_allclose(g, (1 - t * t) * e - 2 * x * t * e + np.cos(x), rtol=1e-9)


@needs_passes
def test_constant_gradients_are_not_computed_as_well(tmp_path):
    """A zero gradient is `np.zeros_like(x)` in the return, with no dead line computing it."""
    vg = _checked_value_and_grad(
        tmp_path, 'x: "f64[2]", y: "f64[2]"', "return np.sum(-(np.not_equal(x, 1.0) * y))"
    )
    assert "np.zeros_like(x)" in vg and "broadcast_to" not in vg


def _checked_value_and_grad(tmp_path, params: str, body: str) -> str:
    """The text of f_value_and_grad for `def f(params): body`, checked numerically."""
    src = write_source(tmp_path, f"import numpy as np\n\ndef f({params}):\n    {body}\n")
    compiled, _, reports = compile_and_check(src)
    assert_checked(reports)
    return _function(compiled.source, "f_value_and_grad")


PRODUCT_THEN_ADD = """
import numpy as np


def f(w: "f64[32,32]", c: "f64[32,32]"):
    return np.sum(np.tanh(c + w @ w) * np.tanh(c - w @ w.T))
"""


def test_a_result_written_into_its_second_operand(tmp_path):
    """`c + t` into t's buffer is `t += c` (addition commutes, bit for bit); `c - t` is
    not, and stays a call with out=."""
    compiled, module, reports = compile_and_check(write_source(tmp_path, PRODUCT_THEN_ADD))
    assert_checked(reports)
    forward = _function(compiled.source, "f")
    assert re.search(r"^\s*t\d* \+= c$", forward, re.M), forward
    assert re.search(r"np\.subtract\(c, (t\d*), out=\1\)", forward), forward
    assert "np.add(" not in forward
    rng = np.random.default_rng(0)
    w, c = rng.normal(size=(32, 32)) / 6, rng.normal(size=(32, 32))
    assert module.f(w, c) == np.sum(np.tanh(c + w @ w) * np.tanh(c - w @ w.T))


@needs_passes
def test_a_result_takes_the_dead_buffer_of_its_own_kind(tmp_path):
    """With a gradient and a temporary both dead, the temporary's buffer takes the tanh
    gate's product, which keeps its name: `t *= g_h`, not `t = np.multiply(g_h, t, out=g_h)`."""
    vg = _checked_value_and_grad(
        tmp_path,
        'x: "f64[16,32]", w: "f64[32,32]"',
        "h = np.tanh(x @ w)\n    return np.sum(np.tanh(h @ w))",
    )
    assert re.search(r"^\s*t\d* \*= g_h  #", vg, re.M), vg
    assert "np.multiply(g_h" not in vg


RNN = """
import numpy as np


def rnn(Wx: "f64[8,32]", Wh: "f64[32,32]", xs: "f64[6,B,8]"):
    h = np.tanh(xs[0] @ Wx)
    for t in range(1, 6):
        h = np.tanh(xs[t] @ Wx + h @ Wh)
    return np.sum(h * h)
"""


def _rnn_args():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 32)) / 3, rng.normal(size=(32, 32)) / 6, rng.normal(size=(6, 8, 8))


@needs_passes
def test_batched_rows_are_written_into_one_buffer(tmp_path, monkeypatch):
    """The batched weight gradients of an unrolled RNN concatenate the hidden states and
    the per-step cotangents: each is written straight into its row of one buffer
    (`out=buf[k]`), and every concatenation is the buffer or a slice of it, so no rows
    are copied and no second set of them is alive. Same bits as the copying code."""
    path = write_source(tmp_path, RNN, "rnn")
    compiled, module, reports = compile_and_check(path, dims={"B": 8})
    assert_checked(reports)
    assert compiled.specialized == {}  # the buffers are sized by arrays, not by numbers
    vg = _function(compiled.source, "rnn_value_and_grad")
    assert re.search(r"= np\.empty\(\(5, \*t\d+\[0\]\.shape\)\)", vg), vg
    assert re.search(r"= np\.tanh\(\w+, out=\w+\[4\]\)", vg), vg
    assert "np.concatenate(" not in vg and "np.stack(" not in vg
    backward = _function(compiled.source, "rnn_backward")  # rows of backward values only
    assert "out=h" not in backward and re.search(r"out=\w+\[\d\]\)", backward)

    monkeypatch.setattr("codegen.memory.INPLACE_MIN_BYTES", 10**9)  # rows copied
    copying, plain, _ = compile_and_check(path, tmp_path / "plain", dims={"B": 8})
    assert "np.concatenate(" in _function(copying.source, "rnn_value_and_grad")
    args = _rnn_args()
    (value, grads), peak = _peak(module.rnn_value_and_grad, *args)
    (value_c, grads_c), peak_c = _peak(plain.rnn_value_and_grad, *args)
    assert value == value_c, (value, value_c)
    assert_same_arrays(grads, grads_c, "(rows in one buffer vs copied rows)")
    assert peak < 0.8 * peak_c
    g = np.float64(1.0)
    v, saved = module.rnn_forward(*args)
    assert_same_arrays(module.rnn_backward(saved, g), grads, "(backward vs value_and_grad)")


UNARY = ["np.tanh({})", "np.sin({})", "np.exp(-{})", "({} * 2.0)", "np.abs({})"]


@st.composite
def row_programs(draw):
    """Arrays made by ufuncs, read by concatenations and stacks along axis 0 of random
    subsets (in random order) and by other code: the shapes `_plan_rows` works on."""
    n = draw(st.integers(2, 5))
    lines, parts = [], []
    for k in range(n):
        src = draw(st.sampled_from(["x", "y", *parts]))
        op = draw(st.sampled_from(UNARY))
        other = draw(st.sampled_from(["", " + y", " * x", *[f" - {p}" for p in parts]]))
        lines.append(f"    a{k} = {op.format(src)}{other}")
        parts.append(f"a{k}")
    terms, first = [], None
    for j in range(draw(st.integers(1, 3))):
        chosen = draw(st.lists(st.sampled_from(parts), min_size=2, max_size=n, unique=True))
        if draw(st.booleans()):
            chosen = sorted(chosen, key=parts.index)
        if first and len(first) > 2 and draw(st.booleans()):  # a run of an earlier one
            start = draw(st.integers(0, len(first) - 2))
            chosen = first[start : draw(st.integers(start + 2, len(first)))]
        first = first or chosen
        fn = draw(st.sampled_from(["np.concatenate", "np.stack"]))
        lines.append(f"    c{j} = {fn}([{', '.join(chosen)}])")
        terms.append(draw(st.sampled_from([f"np.sum(c{j} * c{j})", f"np.sum(np.tanh(c{j}))"])))
    terms += [f"np.sum({p} * x)" for p in draw(st.lists(st.sampled_from(parts), max_size=2))]
    return (
        'import numpy as np\n\n\ndef f(x: "f64[3,4]", y: "f64[3,4]"):\n'
        + "\n".join(lines)
        + f"\n    return {' + '.join(terms)}\n"
    )


@needs_passes
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=row_programs())
def test_rows_in_place_on_random_programs(tmp_path_factory, source):
    """With every array planned (thresholds at 0), the code that writes rows into shared
    buffers passes the numeric check and gives the same bits as the code that copies."""
    from codegen import memory

    note(source)
    folder = tmp_path_factory.mktemp("rows")
    path = write_source(folder, source)
    saved = memory.INPLACE_MIN_BYTES, memory.DEL_MIN_ELEMENTS
    try:
        memory.INPLACE_MIN_BYTES = memory.DEL_MIN_ELEMENTS = 0
        compiled, module, reports = compile_and_check(path, folder / "rows")
        memory.INPLACE_MIN_BYTES = 10**9
        _, copying, _ = compile_and_check(path, folder / "copies")
    finally:
        memory.INPLACE_MIN_BYTES, memory.DEL_MIN_ELEMENTS = saved
    assert_checked(reports, compiled.source)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    for fn in ("f_value_and_grad", "f_vjp"):
        args = (x, y) if fn == "f_value_and_grad" else (x, y, 1.0)
        (v1, g1), (v2, g2) = getattr(module, fn)(*args), getattr(copying, fn)(*args)
        assert v1 == v2, (fn, v1, v2, compiled.source)
        assert_same_arrays(g1, g2, f"({fn}: rows vs copies)\n{compiled.source}")
