"""Circuit diagrams (codegen/draw.py): the classic numbers on the wires, both levels,
rendering with Graphviz when it is installed, and the .dot fallback when it is not."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from codegen import draw
from codegen.errors import GradgenError
from codegen.load import load
from codegen.trace import trace_function
from helpers import ROOT, write_source

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")


def _traced(path):
    loaded = load(path, None, {}, "unroll")  # (as --draw traces: loops unrolled)
    spec = loaded.functions[0]
    return spec, trace_function(loaded, spec)


def _wire_labels(text: str) -> list[tuple[str, str]]:
    """(value, gradient) of every wire, in the order the DOT text lists them."""
    found = re.findall(
        r'<font color="#1b7a3e">([^<]*)</font><br/><font color="#c0392b">([^<]*)</font>', text
    )
    return [(v, g) for v, g in found]


def test_circuit_classic_numbers():
    spec, graph = _traced(ROOT / "examples" / "circuit.py")
    args, caption = draw.point(spec, graph, draw.parse_at("x=-2,y=5,z=-4"))
    text = draw.circuit(graph, args, caption)
    wires = _wire_labels(text)
    assert ("-2", "-4") in wires and ("5", "-4") in wires  # x, y: dx = dy = -4
    assert ("q = 3", "-4") in wires  # dq = -4
    assert ("-4", "3") in wires  # z: dz = q = 3
    assert ("f = -12", "1") in wires
    assert "add: distributes" in text and "mul: swaps" in text
    assert "circuit at x=-2, y=5, z=-4" in text


def test_neuron_classic_gradients():
    spec, graph = _traced(ROOT / "examples" / "neuron.py")
    args = [np.array([2.0, -3.0, -3.0]), np.array([-1.0, -2.0])]
    w = draw.wires(graph, args)
    g_w = w.grads[graph.params[0].id]
    g_x = w.grads[graph.params[1].id]
    np.testing.assert_allclose(g_w, [-0.19661193, -0.39322387, 0.19661193], rtol=1e-6)
    np.testing.assert_allclose(g_x, [0.39322387, -0.5898358], rtol=1e-6)
    text = draw.circuit(graph, args, "neuron")
    assert "w[0]" in text and "1 ÷" in text and "f = 0.7311" in text


def test_wire_gradients_match_autodiff(tmp_path):
    """The drawn gradients of the parameters are the generated module's."""
    from helpers import compile_and_check, write_expr

    path = write_expr(
        tmp_path, "x: f64[3], y: f64[2,3]", "np.tanh(x * y) @ x + np.maximum(y[0], 0.1) @ x"
    )
    compiled, module, _ = compile_and_check(path)
    t = compiled.functions[0]
    rng = np.random.default_rng(3)
    args = [rng.standard_normal(3), rng.standard_normal((2, 3))]
    w = draw.wires(t.forward, args)
    _, grads = module.f_value_and_grad(*args)
    for p, g in zip(t.forward.params, grads):
        np.testing.assert_allclose(w.grads[p.id], g, rtol=1e-12, atol=1e-14)


def _big(tmp_path, steps: int):
    return write_source(
        tmp_path,
        f"""
        import numpy as np

        def chain(a, b, x: "f64[{steps}]"):
            h = 0.0
            for i in range({steps}):
                h = np.tanh(a * h + b * x[i])
            return h
        """,
    )


def test_large_graph_collapses_to_source_lines(tmp_path):
    path = _big(tmp_path, 400)
    spec, graph = _traced(path)
    gates = sum(1 for n in graph.live_nodes() if n.op not in ("param", "const"))
    assert gates >= 2000
    args, caption = draw.point(spec, graph, {})
    text = draw.circuit(graph, args, caption, source=path.read_text().splitlines())
    assert text.count("[shape=box") <= 10  # parameters and one box per line
    assert "line 6" in text and "h = np.tanh(a * h + b * x[i])" in text
    assert "from a seeded random point" in text


@needs_dot
def test_renders_svg_and_png(tmp_path):
    spec, graph = _traced(ROOT / "examples" / "circuit.py")
    args, caption = draw.point(spec, graph, draw.parse_at("x=-2,y=5,z=-4"))
    text = draw.circuit(graph, args, caption)
    assert draw.render(text, tmp_path / "c.svg") == f"wrote {tmp_path / 'c.svg'}"
    svg = (tmp_path / "c.svg").read_text()
    assert "<svg" in svg and "q = 3" in svg and "f = &#45;12" in svg
    draw.render(text, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_dot
def test_large_graph_renders(tmp_path):
    spec, graph = _traced(_big(tmp_path, 400))
    args, caption = draw.point(spec, graph, {})
    draw.render(draw.circuit(graph, args, caption), tmp_path / "big.svg")
    assert "<svg" in (tmp_path / "big.svg").read_text()


def test_without_graphviz_writes_dot_and_says_how(tmp_path, monkeypatch):
    monkeypatch.setattr(draw.shutil, "which", lambda name: None)
    said = draw.render("digraph circuit {}\n", tmp_path / "c.png")
    assert (tmp_path / "c.dot").read_text() == "digraph circuit {}\n"
    assert not (tmp_path / "c.png").exists()
    assert "dot -Tpng" in said and "c.dot" in said and "graphviz" in said


@pytest.mark.parametrize(
    "at, message",
    [("x=1,q=2", "'q', not a parameter"), ("x", "NAME=VALUE"), ("x=abc", "NAME=VALUE")],
)
def test_bad_at(at, message):
    spec, graph = _traced(ROOT / "examples" / "circuit.py")
    with pytest.raises(GradgenError) as e:
        draw.point(spec, graph, draw.parse_at(at))
    assert message in e.value.message


def test_arrays_at_in_brackets():
    spec, graph = _traced(ROOT / "examples" / "neuron.py")
    args, caption = draw.point(spec, graph, draw.parse_at("w=[2,-3,-3],x=[-1,-2]"))
    np.testing.assert_array_equal(args[0], [2.0, -3.0, -3.0])
    np.testing.assert_array_equal(args[1], [-1.0, -2.0])
    assert caption == "neuron at w=[2,-3,-3], x=[-1,-2]"


@pytest.mark.parametrize("at", ["w=1", "w=[1,2]", "w=[[1,2,3]]"])
def test_array_at_of_the_wrong_shape(at):
    spec, graph = _traced(ROOT / "examples" / "neuron.py")
    with pytest.raises(GradgenError) as e:
        draw.point(spec, graph, draw.parse_at(at))
    assert "f64[3]" in e.value.message and "brackets" in e.value.hint


@pytest.mark.parametrize("at", ["w=[1,2", "w=[__import__]", "w=[1;2]"])
def test_at_is_numbers_only(at):
    with pytest.raises(GradgenError) as e:
        draw.parse_at(at)
    assert "NAME=VALUE" in e.value.message


def test_bad_extension(tmp_path):
    with pytest.raises(GradgenError) as e:
        draw.render("digraph {}", tmp_path / "c.jpg")
    assert ".dot, .svg, .png or .pdf" in e.value.message


def test_traced_branch_is_refused_with_its_line(tmp_path):
    path = write_source(
        tmp_path,
        """
        import numpy as np

        def f(x):
            if x > 0:
                return np.sqrt(x)
            return -x
        """,
    )
    spec, graph = _traced(path)
    with pytest.raises(GradgenError, match="a circuit has no branches") as e:
        draw.circuit(graph, [np.float64(2.0)], "")
    assert e.value.src.line == 4
