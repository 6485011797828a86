"""Each pass on small IR: IR in, IR out, in the printed form."""

from __future__ import annotations

import re

import numpy as np

from codegen import passes
from codegen.ir import Graph, format_graph, run
from codegen.ir import replay as ir_replay
from codegen.passes import batch, cse, dce, fold, fuse, simplify, widen


def body(graph: Graph) -> list[str]:
    """The printed node lines, without source locations."""
    return [ln.split("  #")[0].strip() for ln in format_graph(graph).splitlines()[1:]]


def vector_graph() -> tuple[Graph, object]:
    g = Graph()
    x = g.param("x", (3,), "f64")
    return g, x


def test_fold_evaluates_constant_subgraphs():
    g, x = vector_graph()
    c = g.apply("mul", g.const(2.0), g.const(3.0))
    g.outputs = [g.apply("mul", x, c)]
    out = fold.run(g)
    # the folded-away constants stay in the node list (dce leaves unread constants: no
    # stage emits them), so the product keeps its id
    assert body(dce.run(out)) == ["%4:f64[3] = mul %x 6.0", "in ( %4 ) }"]


def test_fold_keeps_uniform_arrays_as_broadcast_scalars():
    g, x = vector_graph()
    ones = g.apply("exp", g.const(np.zeros(3)))
    g.outputs = [g.apply("mul", x, ones)]
    out = simplify.run(fold.run(g))
    assert dce.run(out).outputs[0].op == "param"  # x * broadcast(1) -> x


def test_simplify_rules():
    g, x = vector_graph()
    y = g.apply("mul", x, 1.0)  # x * 1 -> x
    y = g.apply("add", y, 0.0)  # x + 0 -> x
    y = g.apply("neg", g.apply("neg", y))  # -(-x) -> x
    y = g.apply("mul", g.apply("neg", y), x)  # (-x) * x -> -(x * x)
    g.outputs = [y]
    out = dce.run(simplify.run(g))
    assert body(out) == ["%1:f64[3] = mul %x %x", "%2:f64[3] = neg %1", "in ( %2 ) }"]


def test_simplify_keeps_what_is_not_exact():
    g, x = vector_graph()
    g.outputs = [g.apply("add", g.apply("mul", x, 0.0), g.apply("sub", x, x))]
    out = dce.run(simplify.run(g))
    assert [n.op for n in out.nodes if n.op not in ("param", "const")] == ["mul", "sub", "add"]


def test_a_rule_that_would_change_the_type_is_dropped(monkeypatch):
    """Whatever rule hands back an operand, it must keep the value's type: `mask * 1.0`
    stays a float product, never the bool mask (with the rule's own check disabled too)."""
    from codegen.ops import elementwise

    monkeypatch.setattr(elementwise, "_keeps", lambda x, *others: True)
    g, x = vector_graph()
    mask = g.apply("gt", x, 0.0)
    g.outputs = [g.apply("add", g.apply("mul", mask, 1.0), g.apply("mul", mask, 1.0))]
    out = dce.run(simplify.run(g))
    assert [n.op for n in out.nodes if n.op not in ("param", "const")] == [
        "gt",
        "mul",
        "mul",
        "add",
    ]


def test_simplify_strips_broadcasts_that_the_op_does_itself():
    g = Graph()
    s = g.param("s", (), "f64")
    x = g.param("x", (2, 3), "f64")
    wide = g.apply("broadcast_to", s, shape=(2, 3))
    g.outputs = [g.apply("mul", wide, x)]
    out = dce.run(simplify.run(g))
    assert body(out) == ["%2:f64[2,3] = mul %s %x", "in ( %2 ) }"]


def test_fuse_recognizes_sigmoid():
    g, x = vector_graph()
    e = g.apply("exp", g.apply("neg", x))
    g.outputs = [g.apply("div", 1.0, g.apply("add", 1.0, e))]
    out = dce.run(fuse.run(g))
    assert body(out) == ["%1:f64[3] = sigmoid %x", "in ( %1 ) }"]
    xs = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(run(out, xs)[0], run(g, xs)[0])


def test_fuse_leaves_near_misses():
    g, x = vector_graph()
    e = g.apply("exp", x)  # no negation: not a sigmoid
    g.outputs = [g.apply("div", 1.0, g.apply("add", 1.0, e))]
    assert "sigmoid" not in {n.op for n in fuse.run(g).nodes}


def test_cse_merges_identical_nodes():
    g, x = vector_graph()
    a = g.apply("sin", x)
    b = g.apply("sin", x)
    assert a is not b  # tracing does not intern: CSE is the pass's job
    g.outputs = [g.apply("mul", a, b)]
    out = dce.run(cse.run(g))
    assert body(out) == ["%1:f64[3] = sin %x", "%2:f64[3] = mul %1 %1", "in ( %2 ) }"]


def test_dce_drops_dead_nodes():
    g, x = vector_graph()
    g.apply("cos", x)
    g.outputs = [g.apply("sin", x)]
    assert [n.op for n in dce.run(g).nodes] == ["param", "sin"]
    assert [n.op for n in g.nodes] == ["param", "cos", "sin"]  # passes are pure


def test_pipeline_log_and_switches():
    g, x = vector_graph()
    g.outputs = [g.apply("mul", g.apply("sin", x), 1.0)]
    log: list = []
    passes.run_pipeline(g, passes.parse("all"), log)
    # the rule passes share one rebuild; the others run alone
    assert [name for name, _, _ in log] == ["fold+simplify+fuse+cse", "batch", "dce"]
    assert passes.parse("none") == [] and passes.parse("cse,dce") == ["cse", "dce"]
    try:
        passes.parse("cse,bogus")
    except ValueError as e:
        assert "bogus" in str(e)
    else:
        raise AssertionError("an unknown pass must be refused")


def test_batch_turns_row_products_into_one_product():
    g = Graph()
    w = g.param("w", (3, 5), "f64")
    xs = g.const(np.arange(24.0).reshape(4, 2, 3))
    total = None
    for t in range(4):
        p = g.apply("matmul", g.apply("index", xs, key=(t,)), w)
        total = p if total is None else g.apply("add", total, p)
    g.outputs = [total]
    out = dce.run(batch.run(g))
    assert [n.op for n in out.nodes].count("matmul") == 1
    wv = np.random.default_rng(0).standard_normal((3, 5))
    np.testing.assert_allclose(run(out, wv)[0], run(g, wv)[0], rtol=1e-12)


def test_batch_turns_a_sum_of_products_into_one_product():
    g = Graph()
    hs = [g.param(f"h{i}", (2, 3), "f64") for i in range(4)]
    ds = [g.param(f"d{i}", (2, 5), "f64") for i in range(4)]
    total = None
    for h, d in zip(hs, ds):
        p = g.apply("matmul", g.apply("transpose", h, axes=(1, 0)), d)
        total = p if total is None else g.apply("add", total, p)
    g.outputs = [total]
    out = dce.run(batch.run(g))
    ops_used = [n.op for n in out.nodes if n.op not in ("param", "const")]
    assert ops_used.count("matmul") == 1 and "concatenate" in ops_used
    rng = np.random.default_rng(1)
    args = [rng.standard_normal((2, 3)) for _ in range(4)] + [
        rng.standard_normal((2, 5)) for _ in range(4)
    ]
    np.testing.assert_allclose(run(out, *args)[0], run(g, *args)[0], rtol=1e-12)


def test_batch_leaves_two_terms_alone():
    g = Graph()
    a, b = g.param("a", (2, 2), "f64"), g.param("b", (2, 2), "f64")
    g.outputs = [g.apply("add", g.apply("matmul", a, b), g.apply("matmul", b, a))]
    assert [n.op for n in dce.run(batch.run(g)).nodes].count("matmul") == 2


def test_seeding_a_parameter_with_a_constant():
    """value_and_grad is the vjp with g = 1: g * x becomes x once g is a constant."""
    g, x = vector_graph()
    seed = g.param("g", (3,), "f64")
    g.outputs = [g.apply("sin", g.apply("mul", seed, x))]
    out = passes.run_pipeline(g, enabled=passes.NAMES, constants={"g": 1.0})
    assert [p.name for p in out.params] == ["x"]
    assert body(out) == ["%2:f64[3] = sin %x", "in ( %2 ) }"]  # %1: the seed's constant
    # with every pass off the constant is still put in
    bare = passes.run_pipeline(g, enabled=[], constants={"g": 1.0})
    assert [p.name for p in bare.params] == ["x"]
    np.testing.assert_allclose(run(bare, np.arange(3.0))[0], np.sin(np.arange(3.0)))


def test_settled_nodes_are_copied_until_an_input_changes():
    """A settled node is not optimized again while its inputs are as they were; one whose
    input a rule rewrote is; and both still meet in CSE."""
    g, x = vector_graph()
    seed = g.param("g", (), "f64")
    kept = g.apply("mul", x, 1.0)  # settled and unchanged: left as it is
    scaled = g.apply("mul", x, seed)  # reads g: rewritten once g = 1
    again = g.apply("exp", scaled)  # its input changed: rules and CSE apply
    g.outputs = [g.apply("add", g.apply("exp", x), g.apply("add", kept, again))]
    rules = {"fold", "simplify", "intern"}
    out = ir_replay(g, rules, constants={"g": 1.0}, settled=lambda n: True)
    lines = body(out)
    assert "mul %x 1.0" in " ".join(lines)  # the settled x * 1 was not simplified
    exps = [ln for ln in lines if "= exp %x" in ln]
    assert len(exps) == 1  # exp(x * g) with g = 1 met the existing exp(x)
    ref = ir_replay(g, rules, constants={"g": 1.0})
    xs = [np.array([0.1, 0.2, 0.3])]
    np.testing.assert_allclose(run(out, *xs)[0], run(ref, *xs)[0])


def test_settled_nodes_get_the_rules_within_rule_depth_of_a_change(monkeypatch):
    """Rules look at most ops.RULE_DEPTH levels below a node, so a settled node is tried
    again only when the rebuilt graph differs that close below it: a fusion three levels
    up from the change still happens, a node further up is copied."""
    from codegen import ir, ops

    assert ops.RULE_DEPTH == 3
    g, x = vector_graph()
    seed = g.param("g", (), "f64")
    z = g.apply("mul", x, seed)  # x * g: becomes -x once g = -1
    sigmoid = g.apply("div", 1.0, g.apply("add", 1.0, g.apply("exp", z)))  # z three levels down
    chain = z
    for _ in range(5):
        chain = g.apply("sin", chain)
    g.outputs = [g.apply("add", sigmoid, chain)]
    tried: list[str] = []
    apply = ir.Graph.apply

    def counting(self, op, *inputs, **attrs):
        tried.append(op)
        return apply(self, op, *inputs, **attrs)

    monkeypatch.setattr(ir.Graph, "apply", counting)
    rules = {"fold", "simplify", "fuse", "intern"}
    out = ir_replay(g, rules, constants={"g": -1.0}, settled=lambda n: True)
    monkeypatch.undo()
    assert "sigmoid %x" in " ".join(body(out))  # 1 / (1 + exp(-x)), seen three levels up
    assert tried.count("sin") == 3  # the sines four and five levels up are copied
    ref = ir_replay(g, rules, constants={"g": -1.0})
    xs = [np.array([0.1, 0.2, 0.3])]
    np.testing.assert_allclose(run(out, *xs)[0], run(ref, *xs)[0])
    assert body(out) == body(ref)  # the same graph as trying every rule on every node


def _bias_steps(op: str, steps: int, bias_shape=(4,), tag=None) -> Graph:
    """x_1 op b, then (x_k + previous) op b: `steps` broadcasts of b to x's shape."""
    g = Graph()
    xs = [g.param(f"x{k}", (3, 4), "f64") for k in range(steps)]
    b = g.param("b", bias_shape, "f64")
    h = None
    g.tag = tag
    for x in xs:
        h = g.apply(op, x if h is None else g.apply("add", x, h), b)
    g.tag = None
    g.outputs = [h]
    return g


def _args(g: Graph) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.standard_normal(p.shape) + 2.0 for p in g.params]


def test_widen_writes_a_much_broadcast_operand_out_once():
    g = _bias_steps("add", 3)
    out = widen.run(g)
    wide = [n for n in out.nodes if n.op == "widen"]
    assert len(wide) == 1 and wide[0].name == "b_wide" and wide[0].shape == (3, 4)
    assert wide[0].inputs[1].name == "x0"  # the size is read off the first step's operand
    users = [n for n in out.nodes if wide[0] in n.inputs]
    assert [n.op for n in users] == ["add"] * 3
    b = next(p for p in out.params if p.name == "b")
    assert not any(b in n.inputs for n in out.nodes if n.op != "widen")
    args = _args(g)
    assert run(out, *args)[0].tobytes() == run(g, *args)[0].tobytes()  # the same bits


def test_widen_leaves_two_broadcasts_and_scalars_alone():
    g = _bias_steps("add", widen.MIN_USES - 1)
    assert widen.run(g) is g
    g = _bias_steps("add", 5, bias_shape=())  # a 0-d operand is numpy's fast case
    assert widen.run(g) is g


def test_widen_rewrites_only_ops_exact_whatever_the_inner_loop():
    for op in ("sub", "mul", "div", "maximum", "minimum"):
        g = _bias_steps(op, 3)
        out = widen.run(g)
        assert [n.op for n in out.nodes].count("widen") == 1, op
        args = _args(g)
        assert run(out, *args)[0].tobytes() == run(g, *args)[0].tobytes(), op
    # pow may take a vectorized approximation on contiguous operands only
    g = _bias_steps("pow", 4)
    assert widen.run(g) is g


def test_widen_needs_an_operand_of_the_full_shape():
    g = Graph()
    col, row = g.param("col", (3, 1), "f64"), g.param("row", (4,), "f64")
    h = g.apply("add", col, row)
    for _ in range(3):  # col * row broadcasts both: there is no array to read the size off
        h = g.apply("add", g.apply("mul", col, row), h)
    g.outputs = [h]
    assert widen.run(g) is g


def test_widen_keeps_forward_and_backward_apart():
    g = _bias_steps("add", 3)
    h = g.outputs[0]
    g.tag = "some gate"
    b = next(p for p in g.params if p.name == "b")
    for _ in range(3):
        h = g.apply("mul", h, b)
    g.tag = None
    g.outputs = [h]
    out = widen.run(g)
    wide = [n for n in out.nodes if n.op == "widen"]
    # one copy for the forward steps, one for the backward ones: a split forward saves
    # neither for backward
    assert [w.tag for w in wide] == [None, "some gate"]
    # in one function (value_and_grad), backward reads the forward's copy
    shared = widen.run(g, split=False)
    assert [n.op for n in shared.nodes].count("widen") == 1
    args = _args(g)
    assert run(shared, *args)[0].tobytes() == run(g, *args)[0].tobytes()


def test_widen_is_a_lowering_after_autodiff(tmp_path):
    from codegen.pipeline import compile_file

    src = tmp_path / "steps.py"
    src.write_text(
        "import numpy as np\n\n\n"
        'def f(x: "f64[5,B,3]", b: "f64[3]"):\n'
        "    h = x[0] + b\n"
        "    for t in range(1, 5):\n"
        "        h = np.tanh(x[t] + h + b)\n"
        "    return np.sum(h)\n"
    )
    compiled = compile_file(src, dims={"B": 2}, enabled_passes=passes.NAMES)
    (t,) = compiled.functions
    assert [name for name, _, _ in t.pass_log["forward"]][-1] == "widen"
    assert "widen" not in [n.op for n in t.forward.nodes]  # what autodiff read
    assert "b_wide = np.empty(" in compiled.source
    assert compiled.specialized == {}  # the size comes from an operand: B stays free
    off = compile_file(src, dims={"B": 2}, enabled_passes=[n for n in passes.NAMES if n != "widen"])
    assert "b_wide" not in off.source


def test_widened_code_keeps_dtypes(tmp_path):
    """float32 copies stay float32 and a bool mask broadcast three times copies as bool;
    the numeric check passes on both."""
    from helpers import compile_and_check, write_source

    src = write_source(
        tmp_path,
        "import numpy as np\n\n\n"
        'def f(x: "f32[4,3]", b: "f32[3]", m: "f64[3]"):\n'
        "    keep = m > 0.0\n"
        "    h = np.where(keep, x + b, 0.0)\n"
        "    h = np.where(keep, np.tanh(h * b), h)\n"
        "    return np.sum(np.where(keep, h - b, h))\n",
    )
    compiled, module, reports = compile_and_check(src, enabled_passes=passes.NAMES)
    assert all(r.ok for r in reports)
    assert "b_wide = np.empty(x.shape, dtype=np.float32)" in compiled.source
    assert re.search(r"= np\.empty\(\w+\.shape, dtype=bool\)", compiled.source)
    rng = np.random.default_rng(0)
    x, b = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    m = np.array([1.0, -1.0, 2.0])
    value, grads = module.f_value_and_grad(x, b, m)
    assert value.dtype == np.float32 and grads[0].dtype == np.float32


def test_widen_leaves_arrays_beyond_the_cache_alone():
    g = Graph()
    x = g.param("x", (widen.MAX_BYTES // 8 // 64 + 1, 64), "f64")
    b = g.param("b", (64,), "f64")
    g.outputs = [g.apply("mul", g.apply("add", g.apply("sub", x, b), b), b)]
    assert widen.run(g) is g
