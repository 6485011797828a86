"""The scan lowering: long scalar chains run as numpy arrays, to the same bits."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen import check, passes
from codegen.autodiff import vjp_graph
from codegen.ir import Graph, run
from codegen.passes import scan
from codegen.pipeline import compile_file
from helpers import compile_and_check, write_source


@pytest.fixture
def always(monkeypatch):
    """Lower every chain of 2 steps or more, paying or not."""
    monkeypatch.setattr(scan, "ALWAYS", True)
    monkeypatch.setattr(scan, "MIN_ROWS", 2)


def _tanh_chain(steps: int, dtype: str = "f64") -> Graph:
    """The vg graph of s <- c * tanh(a * s + b), as autodiff and the passes make it."""
    g = Graph()
    a, b, c, x0 = (g.param(n, (), dtype) for n in "abcx")
    s = x0
    for _ in range(steps):
        s = g.apply("mul", c, g.apply("tanh", g.apply("add", g.apply("mul", a, s), b)))
    g.outputs = [s]
    vjp = passes.run_pipeline(vjp_graph(g, ["a", "b", "c", "x"], seed="g"))
    return passes.run_pipeline(vjp, constants={"g": 1.0})


def _args(g: Graph, dtype=np.float64) -> list:
    values = {"a": 0.997, "b": 0.0003, "c": 0.998, "x": 0.9}
    return [np.asarray(values[p.name], dtype) for p in g.params]


def _bits(values) -> list[bytes]:
    return [np.asarray(v).tobytes() for v in values]


def test_a_long_chain_runs_as_scans_to_the_same_bits():
    g = _tanh_chain(300)
    out = scan.run(g)
    scans = [n for n in out.nodes if n.op == "scan"]
    # the cotangent carried back (a product, three factors a step) and three sums
    assert sorted((n.attrs["ufunc"], len(n.inputs) - 1) for n in scans) == [
        ("add", 1),
        ("add", 1),
        ("add", 1),
        ("multiply", 3),
    ]
    assert all(n.attrs["length"] >= 297 for n in scans)
    assert scan.cost(out) < scan.cost(g)
    assert _bits(run(out, *_args(g))) == _bits(run(g, *_args(g)))


def test_a_short_chain_stays_scalar_where_the_model_says_so():
    g = _tanh_chain(40)
    assert scan.run(g) is g


def test_short_chains_lower_when_asked(always):
    g = _tanh_chain(5)
    out = scan.run(g)
    assert "scan" in [n.op for n in out.nodes]
    assert _bits(run(out, *_args(g))) == _bits(run(g, *_args(g)))


def test_float32_chains_stay_float32(always):
    g = _tanh_chain(6, "f32")
    out = scan.run(g)
    assert {n.dtype for n in out.nodes if n.op in ("scan", "pack")} == {"f32"}
    args = _args(g, np.float32)
    assert _bits(run(out, *args)) == _bits(run(g, *args))


def test_a_factor_read_off_the_chain_itself_keeps_it_scalar(always):
    """p_{k+1} = p_k * (p_{k-1} + x): no array of factors can exist before the chain."""
    g = Graph()
    x = g.param("x", (), "f64")
    prev, p = x, g.apply("mul", x, x)
    for _ in range(6):
        prev, p = p, g.apply("mul", p, g.apply("add", prev, x))
    g.outputs = [p]
    out = scan.run(g)
    assert "scan" not in [n.op for n in out.nodes]
    assert _bits(run(out, np.float64(0.9))) == _bits(run(g, np.float64(0.9)))


def test_the_period_of_a_step_is_found_after_an_irregular_start(always):
    """Factors x, then (y, z) repeated: two columns, from the second link on."""
    g = Graph()
    x, y, z = (g.param(n, (), "f64") for n in "xyz")
    p = g.apply("mul", g.apply("sin", x), x)
    p = g.apply("mul", p, x)
    for _ in range(5):
        p = g.apply("mul", g.apply("mul", p, y), z)
    g.outputs = [p]
    out = scan.run(g)
    (node,) = [n for n in out.nodes if n.op == "scan"]
    assert node.attrs["length"] == 10 and len(node.inputs) == 3
    args = [np.float64(v) for v in (0.7, 1.1, 0.9)]
    assert _bits(run(out, *args)) == _bits(run(g, *args))


def test_the_scan_gate_differentiates_at_zeros():
    """Its VJP is unrolled scalar IR, so a zero element still gets its gradient."""
    g = Graph()
    v0, c = g.param("v0", (), "f64"), g.param("c", (), "f64")
    col = g.param("col", (3,), "f64")
    w = g.param("w", (7,), "f64")
    for ufunc in ("multiply", "add"):
        scanned = g.apply("scan", v0, c, col, ufunc=ufunc, length=6)
        g.outputs = [g.apply("sum", g.apply("mul", scanned, w), axis=(0,), keepdims=False)]
        grad = vjp_graph(g, ["v0", "c", "col"], seed=1.0)
        point = [np.float64(0.5), np.float64(1.5), np.array([2.0, 0.0, -1.0]), np.arange(1.0, 8.0)]
        _, *grads = run(grad, *point)
        h = 1e-6
        for k, p in enumerate(point[:3]):
            flat = np.array(p, dtype=float).reshape(-1)
            for i in range(flat.size):
                up, down = [list(point) for _ in range(2)]
                fu, fd = flat.copy(), flat.copy()
                fu[i] += h
                fd[i] -= h
                up[k], down[k] = fu.reshape(np.shape(p)), fd.reshape(np.shape(p))
                numeric = (run(g, *up)[0] - run(g, *down)[0]) / (2 * h)
                assert np.reshape(grads[k], -1)[i] == pytest.approx(numeric, rel=1e-6, abs=1e-6)


CHAIN = """import numpy as np


def chain(a: "f64[]", b: "f64[]", c: "f64[]", x0: "f64[]"):
    s = x0
    for _ in range({steps}):
        s = c * np.tanh(a * s + b)
    return s
"""


def test_generated_scans_match_the_scalar_code_bit_for_bit(tmp_path):
    src = write_source(tmp_path, CHAIN.format(steps=300), "chain")
    compiled, module, reports = compile_and_check(src, enabled_passes=passes.NAMES, loops="unroll")
    assert all(r.ok for r in reports)
    text = compiled.source
    assert "np.multiply.accumulate(g_s_steps, out=g_s_steps)  # mul gate: 299 steps" in text
    assert re.search(r"np\.fromiter\(\s*\(\s*t298,", text)  # the forward's tanh outputs
    assert [n for n, _, _ in compiled.functions[0].pass_log["value_and_grad"]][-2:] == [
        "scan",
        "widen",
    ]
    off = compile_file(src, enabled_passes=[n for n in passes.NAMES if n != "scan"], loops="unroll")
    assert "accumulate" not in off.source
    (tmp_path / "off").mkdir()
    (tmp_path / "off" / "chain_grad.py").write_text(off.source)
    scalar = check.import_path(tmp_path / "off" / "chain_grad.py")
    args = (0.997, 0.0003, 0.998, 0.9)
    assert module.chain_value_and_grad(*args) == scalar.chain_value_and_grad(*args)
    assert module.chain_vjp(*args, 0.25) == scalar.chain_vjp(*args, 0.25)
    (_, saved), (_, scalar_saved) = module.chain_forward(*args), scalar.chain_forward(*args)
    assert len(saved) < len(scalar_saved)  # s = c * t is computed again, on an array
    assert module.chain_backward(saved, -2.0) == scalar.chain_backward(scalar_saved, -2.0)
    assert all(isinstance(g, float) for g in module.chain_value_and_grad(*args)[1])


def test_scalars_pack_with_np_array_or_fromiter(tmp_path):
    src = write_source(
        tmp_path,
        "import numpy as np\n\n\n"
        'def f(x: "f64[]", y: "f64[]"):\n'
        "    few = np.stack([x, y * x, y])\n"
        "    many = np.stack([x * k for k in range(20)])\n"
        "    return np.sum(np.sin(few)) + np.sum(many * many)\n\n\n"
        'def h(x: "f32[]"):\n'
        "    many = np.stack([x * k for k in range(20)])\n"
        "    return np.sum(many * many)\n",
    )
    compiled, module, reports = compile_and_check(src)
    assert all(r.ok for r in reports)
    assert "few = np.array([x, y * x, y])" in compiled.source
    assert re.search(r"np\.fromiter\(\s*\(", compiled.source)
    assert re.search(r"\),\s*np\.float64,\s*20,?\s*\)", compiled.source)
    assert re.search(r"\),\s*np\.float32,\s*20,?\s*\)", compiled.source)
    value, (g,) = module.h_value_and_grad(np.float32(0.5))
    assert value.dtype == np.float32 and g.dtype == np.float32


UNARY = ("tanh", "sin", "neg", "exp")
BINARY = ("add", "sub", "mul")


@st.composite
def step_programs(draw):
    """s <- step(s) for a random step of a few ops over s and the parameters, unrolled."""
    ops_ = draw(
        st.lists(
            st.tuples(st.sampled_from(UNARY + BINARY), st.integers(0, 9)), min_size=1, max_size=5
        )
    )
    steps = draw(st.integers(3, 12))
    lines, names = [], ["s", "p", "q"]
    for k, (op, pick) in enumerate(ops_):
        x = names[pick % len(names)]
        y = names[(pick // 3) % len(names)]
        expr = {
            "tanh": f"np.tanh({x})",
            "sin": f"np.sin({x})",
            "exp": f"np.exp(0.1 * {x})",
            "neg": f"-{x}",
            "add": f"{x} + {y}",
            "sub": f"{x} - {y}",
            "mul": f"{x} * {y} * 0.5",
        }[op]
        lines.append(f"        t{k} = {expr}")
        names.append(f"t{k}")
    body = "\n".join(lines)
    return (
        "import numpy as np\n\n\n"
        'def f(s: "f64[]", p: "f64[]", q: "f64[]"):\n'
        f"    for _ in range({steps}):\n{body}\n"
        f"        s = {names[-1]} * p + s * q\n"
        "    return s\n"
    )


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(source=step_programs(), alone=st.booleans())
def test_random_loops_lower_to_the_same_bits(tmp_path_factory, source, alone):
    """With every pass, or the scan alone (graphs without CSE or folding), against the
    same passes without the scan."""
    folder = tmp_path_factory.mktemp("loop")
    src = write_source(folder, source, "loop")
    others = [] if alone else [n for n in passes.NAMES if n != "scan"]
    saved = scan.ALWAYS, scan.MIN_ROWS
    scan.ALWAYS, scan.MIN_ROWS = True, 2
    try:
        on = compile_file(src, enabled_passes=others + ["scan"]).source
    finally:
        scan.ALWAYS, scan.MIN_ROWS = saved
    off = compile_file(src, enabled_passes=others).source
    (folder / "on").mkdir()
    (folder / "off").mkdir()
    (folder / "on" / "loop_grad.py").write_text(on)
    (folder / "off" / "loop_grad.py").write_text(off)
    a = check.import_path(folder / "on" / "loop_grad.py")
    b = check.import_path(folder / "off" / "loop_grad.py")
    args = (0.3, 0.7, 0.9)
    with np.errstate(all="ignore"):
        assert _bits([a.f(*args)]) == _bits([b.f(*args)])
        va, ga = a.f_value_and_grad(*args)
        vb, gb = b.f_value_and_grad(*args)
        assert _bits([va, *ga]) == _bits([vb, *gb]), source
        assert _bits(a.f_vjp(*args, 0.5)[1]) == _bits(b.f_vjp(*args, 0.5)[1]), source
