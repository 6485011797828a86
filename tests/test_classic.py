"""The classic numbers of the circuit and the sigmoid neuron, through the generated code."""

from __future__ import annotations

import os

import numpy as np
import pytest

from helpers import ROOT, compile_and_check


def test_circuit_numbers(tmp_path):
    compiled, module, reports = compile_and_check(ROOT / "examples" / "circuit.py", out=tmp_path)
    assert all(r.ok for r in reports)
    value, grads = module.circuit_value_and_grad(-2.0, 5.0, -4.0)
    assert value == -12.0
    assert grads == (-4.0, -4.0, 3.0)
    assert module.circuit(-2.0, 5.0, -4.0) == -12.0
    value, saved = module.circuit_forward(-2.0, 5.0, -4.0)
    assert module.circuit_backward(saved, 2.0) == (-8.0, -8.0, 6.0)
    assert module.circuit_vjp(-2.0, 5.0, -4.0, 1.0) == (-12.0, (-4.0, -4.0, 3.0))


def test_neuron_numbers(tmp_path):
    compiled, module, reports = compile_and_check(ROOT / "examples" / "neuron.py", out=tmp_path)
    assert all(r.ok for r in reports)
    w, x = np.array([2.0, -3.0, -3.0]), np.array([-1.0, -2.0])
    value, (dw, dx) = module.neuron_value_and_grad(w, x)
    np.testing.assert_allclose(value, 0.7310585786300049)
    np.testing.assert_allclose(dw, [-0.196612, -0.393224, 0.196612], atol=1e-6)
    np.testing.assert_allclose(dx, [0.393224, -0.589836], atol=1e-6)
    assert dw.shape == (3,) and dx.shape == (2,)


@pytest.mark.skipif(bool(os.environ.get("GRADGEN_PASSES")), reason="the flat form needs every pass")
def test_neuron_reads_like_flat_backprop(tmp_path):
    """One line per gate, reverse order, no dead lines, the user's names."""
    compiled, module, _ = compile_and_check(ROOT / "examples" / "neuron.py", out=tmp_path)
    src = compiled.source
    body = src.split("def neuron_value_and_grad(w, x):")[1].split("\n\n\n")[0]
    lines = [ln.strip() for ln in body.strip().splitlines()[1:]]
    assert lines[0] == "w0, w1, w2 = w.tolist()"
    assert "dot = w0 * x0 + w1 * x1 + w2" in lines
    assert any(ln.startswith("f = ") for ln in lines)
    assert "g_dot = f * (1.0 - f)  # sigmoid gate: s(1 - s)" in lines
    assert lines[-1] == "return f, (g_w, g_x)"
    assert len(lines) <= 12
    # every name assigned is read afterwards
    for i, ln in enumerate(lines[:-1]):
        if "=" in ln and not ln.startswith("#"):
            for target in ln.split("=")[0].replace(",", " ").split():
                assert target == "_" or any(target in later for later in lines[i + 1 :]), target
