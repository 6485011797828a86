"""HIPS autograd versions of the cases: ``autograd.value_and_grad`` over ``autograd.numpy``.

The functions are the expr files' math written against ``autograd.numpy``; the forward
is the same function called on plain arrays (autograd's wrappers, no tape).
"""

from __future__ import annotations

from types import ModuleType

import autograd
import autograd.numpy as anp

from . import Impl


def _neuron(module: ModuleType):
    def f(w, x):
        return 1.0 / (1.0 + anp.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))

    return f


def _circuit(module: ModuleType):
    def f(x, y, z):
        return (x + y) * z

    return f


def _scalar_chain(module: ModuleType):
    steps = module.STEPS

    def f(a, b, c, x0):
        s = x0
        for _ in range(steps):
            s = c * anp.tanh(a * s + b)
        return s

    return f


def _element_reads(module: ModuleType):
    steps = module.STEPS

    def f(a, b, x):
        h = 0.0
        for i in range(steps):
            h = anp.tanh(a * h + b * x[i])
        return h

    return f


def _mlp(module: ModuleType):
    X, Y = module.X, module.Y

    def f(W1, b1, W2, b2):
        h = anp.tanh(anp.dot(X, W1) + b1)
        z = anp.dot(h, W2) + b2
        z = z - anp.max(z, axis=1, keepdims=True)
        logp = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
        return -anp.mean(anp.sum(Y * logp, axis=1))

    return f


def _elementwise(module: ModuleType):
    def f(x):
        return anp.sum(anp.tanh(x) * anp.exp(-x * x) + anp.sin(x))

    return f


def _rnn(module: ModuleType):
    XS = module.XS

    def f(Wx, Wh, b):
        h = anp.tanh(anp.dot(XS[0], Wx) + b)
        for t in range(1, XS.shape[0]):
            h = anp.tanh(anp.dot(XS[t], Wx) + anp.dot(h, Wh) + b)
        return anp.sum(h * h)

    return f


_BUILDERS = {
    "neuron": _neuron,
    "circuit": _circuit,
    "scalar_chain": _scalar_chain,
    "element_reads": _element_reads,
    "mlp": _mlp,
    "mlp_b1": _mlp,
    "elementwise": _elementwise,
    "rnn": _rnn,
}


def build(case: str, module: ModuleType) -> Impl:
    """autograd's forward and value_and_grad for a case (KeyError if none)."""
    f = _BUILDERS[case](module)
    n_params = f.__code__.co_argcount
    return Impl(f, autograd.value_and_grad(f, argnum=tuple(range(n_params))))
