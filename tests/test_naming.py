"""Values are named after the user's variables, and every node knows its user's line.

The load stage compiles naming hooks into the user's functions (`name = ...` is followed
by a hook call, a returned value passes through one); the tracer reads the bound values.
Outside a trace the hooks do nothing.
"""

from __future__ import annotations

import numpy as np

from codegen.load import load
from codegen.trace import trace_function
from helpers import write_source

SOURCE = """
import numpy as np


def _layer(h, w):
    z = h * w
    return np.tanh(z)


def _scale(v):
    v2 = v * 3.0
    u = v2 + 1.0


def f(x: "f64[3]", w: "f64[3]"):
    a = np.sin(x)
    a += w
    b: object = a * a
    c = np.cos(
        b
    ) * 2.0
    p, q = np.exp(x), np.log(w)
    hidden = _layer(np.exp(c), w)
    for k in range(2):
        s = hidden * k
    _scale(s)
    return np.sum(hidden + p * q + s)
"""


def _trace(tmp_path):
    loaded = load(write_source(tmp_path, SOURCE))
    spec = loaded.functions[0]
    return loaded, trace_function(loaded, spec)


def _named(graph):
    return {n.name: n for n in graph.nodes if n.name and n.op not in ("param", "const")}


def test_values_take_the_names_they_are_bound_to(tmp_path):
    _, graph = _trace(tmp_path)
    named = _named(graph)
    assert named["a"].op == "add"  # a += w: the name follows the rebinding
    assert named["b"].op == "mul"  # an annotated assignment
    assert named["c"].op == "mul"  # a statement over several lines
    assert named["hidden"].op == "tanh"  # the value a helper returned
    assert named["s"].op == "mul"


def test_a_helpers_locals_are_named_when_it_returns(tmp_path):
    _, graph = _trace(tmp_path)
    named = _named(graph)
    assert named["h"].op == "exp"  # the helper's parameter: the caller's unnamed argument
    assert named["z"].op == "mul"
    assert named["p"].op == "exp"  # tuple unpacking, named with the locals
    assert named["q"].op == "log"
    assert named["v2"].op == "mul"  # a helper that returns None by falling off its end
    assert named["u"].op == "add"


def test_each_node_has_its_statement_line(tmp_path):
    _, graph = _trace(tmp_path)
    lines = SOURCE.lstrip().splitlines()
    for node in graph.nodes:
        if node.op in ("param", "const"):
            continue
        text = lines[node.src.line - 1]
        assert node.src.file == "expr.py"
        if node.name in ("a", "b", "s", "z"):  # (hidden is made on the helper's line)
            assert text.strip().startswith(node.name), (node.name, text)
    cos = next(n for n in graph.nodes if n.op == "cos")
    assert lines[cos.src.line - 1].strip() == "c = np.cos("  # the call's own line


def test_hooks_do_nothing_outside_a_trace(tmp_path):
    loaded, _ = _trace(tmp_path)
    fn = loaded.functions[0].fn
    x, w = np.array([0.1, 0.2, 0.3]), np.array([0.5, 1.5, 2.5])
    a = np.sin(x) + w
    c = np.cos(a * a) * 2.0
    hidden = np.tanh(np.exp(c) * w)
    expected = np.sum(hidden + np.exp(x) * np.log(w) + hidden * 1)
    assert fn(x, w) == expected
    # tracing put the inert hooks back
    assert fn(x, w) == expected
