"""Many reads of parts of one array: their gradients meet in one array, made once.

Reading x[i] in a loop of n steps gives n scatter cotangents, each the size of x. Autodiff
keeps them as parts and builds one `multi_scatter`; the emitter makes its array once
(`g_x = np.zeros(...)`) and writes each part where its value is made (`g_x[i] = ...`,
`+=` over elements set before, `np.add.at` where a part's own key repeats an element).
So memory and code grow linearly with n, and repeated indices still add up.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from codegen import ir, ops, passes
from codegen.emit.expr import ATOM, Expr
from codegen.ops.shape import ScatterWrites
from codegen.pipeline import compile_file
from helpers import assert_ir_matches, compile_and_check, needs_passes, write_source

LOOP = """
import numpy as np


def f(a, b, x: "f64[{n}]"):
    h = 0.0
    for i in range({n}):
        h = np.tanh(a * h + b * x[i])
    return h
"""

READS = {
    "elements in a loop": LOOP.format(n=100),
    "elements of a small vector, some twice": """
        def f(x: "f64[6]"):
            return x[0] * x[1] + np.sin(x[1]) * x[-1] + x[3] * x[3]
    """,
    "elements of a matrix": """
        def f(x: "f64[9,8]"):
            s = 0.0
            for i in range(9):
                s = s + np.sin(x[i, (3 * i) % 8]) * x[i, i % 8]
            return s
    """,
    "rows, some twice, some never": """
        def f(x: "f64[6,3]", w: "f64[3]"):
            s = 0.0
            for t in [0, 2, 3, 2, 5]:
                s = s + np.sum(np.tanh(x[t] * w))
            return s
    """,
    "overlapping slices": """
        def f(x: "f64[80]"):
            s = 0.0
            for i in range(0, 76, 2):
                s = s + np.sum(np.sin(x[i : i + 4]) * x[i + 1 : i + 5])
            return s
    """,
    "columns and strided slices": """
        def f(x: "f64[5,70]"):
            s = 0.0
            for j in range(0, 70, 7):
                s = s + np.sum(np.cos(x[:, j]) * x[1::2, j + 1].sum())
            return s
    """,
    "fancy indices, repeated within a read and across reads": """
        IDX = np.array([[0, 3, 3], [5, 0, 1], [2, 2, 2], [4, 1, 0]])

        def f(x: "f64[70]", w: "f64[3]"):
            s = 0.0
            for k in range(4):
                s = s + np.sum(np.tanh(x[IDX[k]] * w))
            return s + np.sum(x[[1, 1]] ** 2)
    """,
    "parts and a dense use together": """
        def f(x: "f64[70]"):
            s = np.sum(x * x)
            for i in range(0, 70, 5):
                s = s * 0.5 + np.sin(x[i]) + np.sum(x[i : i + 3])
            return s
    """,
    "an intermediate array read element by element": """
        def f(x: "f64[70]", a):
            y = np.tanh(x * a)
            s = 0.0
            for i in range(70):
                s = s * a + y[i] * y[(i * 7) % 70]
            return s
    """,
    "float32": """
        def f(x: "f32[70]"):
            s = np.float32(0.0)
            for i in range(0, 68, 3):
                s = s + np.sin(x[i]) * x[i + 1]
            return s
    """,
}


def _source(name: str) -> str:
    body = textwrap.dedent(READS[name])
    return body if body.lstrip().startswith("import") else "import numpy as np\n" + body


@pytest.mark.parametrize("pass_set", ["all", "none"])
@pytest.mark.parametrize("name", list(READS))
def test_gradients_match_numeric(tmp_path, name, pass_set):
    path = write_source(tmp_path, _source(name))
    compiled, module, reports = compile_and_check(path, enabled_passes=passes.parse(pass_set))
    for r in reports:
        assert r.ok, "\n" + "\n".join(str(a) for a in r.args)
    if "f32" not in name:  # the interpreter runs float32 as traced, numpy float64
        assert_ir_matches(compiled, module)


@pytest.mark.parametrize("pass_set", ["all", "none"])
def test_repeated_indices_add_up(tmp_path, pass_set):
    source = """
        import numpy as np

        def f(x: "f64[70]"):
            s = 0.0
            for k in range(3):
                s = s + np.sum(x[[0, 0, 5]]) + x[5] + np.sum(x[4:7])
            return s
    """
    path = write_source(tmp_path, textwrap.dedent(source))
    compiled, module, _ = compile_and_check(path, enabled_passes=passes.parse(pass_set))
    _, (g,) = module.f_value_and_grad(np.arange(70.0))
    want = np.zeros(70)
    want[[0, 4, 5, 6]] = [6.0, 3.0, 9.0, 3.0]
    assert g.tolist() == want.tolist()
    assert "np.add.at(" in compiled.source


@pytest.mark.parametrize("pass_set", ["all", "none"])
def test_the_loop_makes_its_gradient_once(tmp_path, pass_set):
    """The issue's example: x[i] read in 500 steps gives one array, written element by
    element; the forward reads x as a list of floats."""
    path = write_source(tmp_path, LOOP.format(n=500))
    compiled = compile_file(path, enabled_passes=passes.parse(pass_set), loops="unroll")
    src = compiled.source
    # one array in value_and_grad, one in backward: no zeros per read
    assert src.count("np.zeros(") == 2
    assert src.count("g_x = np.zeros((500,))") == 2
    assert "g_x[499] = " in src and "g_x[0] = " in src and "g_x[0] +=" not in src
    assert "x_list = x.tolist()" in src and "b * x_list[7])" in src
    assert "np.add(" not in src and "np.add.at(" not in src
    # the vjp's forward hands the list over, not its 500 elements
    forward = src[src.index("def f_forward") : src.index("def f_backward")]
    assert "x_list," in forward and "x_list[3]," not in forward
    for name in ("value_and_grad", "vjp"):
        graph = getattr(compiled.functions[0], name)
        made = [n.op for n in graph.live_nodes()]
        assert made.count("multi_scatter") == 1 and "scatter" not in made


@needs_passes
def test_the_loop_needs_little_memory(tmp_path):
    compiled, module, reports = compile_and_check(write_source(tmp_path, LOOP.format(n=500)))
    assert all(r.ok for r in reports)
    figures = compiled.memory["f"]
    # x's gradient, the 500 values of h backward reads and a few more (it was 1.9 MiB:
    # 500 arrays of 500)
    assert figures["value_and_grad peak live bytes"] < 2 * 8 * 500 + 1024
    assert figures["backward peak live bytes"] < 8 * 500 + 1024


def _sizes(tmp_path, n: int) -> tuple[int, int, int]:
    path = write_source(tmp_path, LOOP.format(n=n), stem=f"loop{n}")
    compiled = compile_file(path, loops="unroll")  # (the unrolled path: issue 16)
    t = compiled.functions[0]
    return len(t.value_and_grad.nodes), len(t.vjp.nodes), compiled.source.count("\n")


def test_graph_and_code_grow_linearly(tmp_path):
    """Nodes and lines per step are the same at every length: no n-squared part."""
    small, medium, large = (_sizes(tmp_path, n) for n in (100, 200, 400))
    for a, b, c in zip(small, medium, large):
        assert c - b == 2 * (b - a), (small, medium, large)
    assert medium[0] - small[0] <= 14 * 100  # nodes a step in value_and_grad


def _multi_scatter(shape, parts):
    """A graph computing a multi_scatter of (value shape, key, arrays) parts."""
    graph = ir.Graph()
    values, arrays, keys = [], [], []
    for k, (value_shape, key, index_arrays) in enumerate(parts):
        values.append(graph.param(f"v{k}", value_shape, "f64"))
        arrays.extend(graph.const(np.array(a)) for a in index_arrays)
        keys.append(key)
    out = graph.apply("multi_scatter", *values, *arrays, keys=tuple(keys), shape=shape)
    graph.outputs = [out]
    return graph, out


PARTS = [
    ((), (2,), []),
    ((2,), (("slice", 1, 3, None),), []),
    ((3,), ((ops.shape.ARR, 0),), [[5, 0, 5]]),
    ((), (-1,), []),
    ((2,), ((ops.shape.ARR, 0),), [[4, 6]]),
]


def test_multi_scatter_is_the_sum_of_its_scatters():
    graph, _ = _multi_scatter((7,), PARTS)
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(p.shape) for p in graph.params]
    (got,) = ir.run(graph, *args)
    want = np.zeros(7)
    for arg, (_, key, arrays) in zip(args, PARTS):
        np.add.at(want, ops.shape.real_key(key, [np.array(a) for a in arrays]), arg)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)


def test_multi_scatter_lines_assign_add_or_add_at():
    """`=` over elements not set before, `+=` over elements set before, np.add.at where a
    part's own key repeats an element."""
    _, out = _multi_scatter((7,), PARTS)
    writes = ScatterWrites(out)
    lines = [
        writes.line("g", k, f"v{k}", ["I"] * len(arrays)) for k, (_, _, arrays) in enumerate(PARTS)
    ]
    want = ["g[2] = v0", "g[1:3] += v1", "np.add.at(g, I, v2)", "g[-1] = v3", "g[I] += v4"]
    assert writes.zeros == "np.zeros((7,))"
    assert lines == want
    # the op's own statements (every part at once) say the same
    args = [Expr(f"v{k}", ATOM) for k in range(len(PARTS))] + [Expr("I", ATOM)] * 2
    assert ops.OPS["multi_scatter"].py_stmts("g", args, out) == ["g = np.zeros((7,))", *want]
