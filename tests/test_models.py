"""The example models end to end: checked gradients, a hand-written MLP, minimal saves."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import ROOT, compile_and_check, needs_passes

MODELS = ["mlp", "attention", "rnn", "layernorm"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    return {name: compile_and_check(ROOT / "examples" / f"{name}.py", out=out) for name in MODELS}


@pytest.mark.parametrize("name", MODELS)
def test_example_passes_the_check(built, name):
    compiled, module, reports = built[name]
    for r in reports:
        assert r.ok, "\n" + "\n".join(str(a) for a in r.args)


def hand_mlp(W1, b1, W2, b2, X, Y):
    """Hand-written numpy backprop of examples/mlp.py."""
    n = X.shape[0]
    h = np.tanh(X @ W1 + b1)
    logits = h @ W2 + b2
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = -np.sum(Y * (z - np.log(s))) / n
    dlogits = (e / s * Y.sum(axis=1, keepdims=True) - Y) / n
    dW2 = h.T @ dlogits
    db2 = dlogits.sum(axis=0)
    dh = dlogits @ W2.T
    da = dh * (1 - h * h)
    return loss, (X.T @ da, da.sum(axis=0), dW2, db2, da @ W1.T)


def test_mlp_matches_hand_written_backprop(built):
    compiled, module, _ = built["mlp"]
    rng = np.random.default_rng(3)
    args = [
        rng.standard_normal((784, 256)) * 0.05,
        rng.standard_normal(256) * 0.1,
        rng.standard_normal((256, 10)) * 0.1,
        rng.standard_normal(10) * 0.1,
        rng.standard_normal((64, 784)),
    ]
    Y = compiled.loaded.module.Y
    value, grads = module.mlp_value_and_grad(*args)
    ref_value, ref_grads = hand_mlp(*args, Y)
    np.testing.assert_allclose(value, ref_value, rtol=1e-10)
    for ours, ref in zip(grads, ref_grads):
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


@needs_passes
def test_mlp_saves_only_what_backward_reads(built):
    """The forward/backward split saves no intermediate that backward never uses."""
    compiled, module, _ = built["mlp"]
    saved_names = compiled.memory["mlp"]["saved for backward"]
    src = compiled.source
    backward = src.split("def mlp_backward(saved, g):")[1].split("\ndef ")[0]
    body = backward.split(" = saved", 1)[1]
    for name in saved_names:
        assert name in body, f"{name} is saved but backward never reads it"
    # and nothing larger than needed: the batch-sized intermediates are h, the softmax
    # parts, and the parameters the matmuls need
    assert len(saved_names) <= 8, saved_names


def test_layernorm_has_no_value_and_grad(built):
    compiled, module, _ = built["layernorm"]
    x, gamma, beta = np.ones((4, 6)), np.ones(6), np.zeros(6)
    with pytest.raises(ValueError, match="layernorm_vjp"):
        module.layernorm_value_and_grad(x, gamma, beta)
    value, grads = module.layernorm_vjp(x + np.arange(6), gamma, beta, np.ones((4, 6)))
    assert value.shape == (4, 6) and [g.shape for g in grads] == [(4, 6), (6,), (6,)]
