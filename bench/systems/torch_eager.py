"""PyTorch eager versions of the cases: the same math in torch ops, float64, CPU.

Parameters are leaf tensors with ``requires_grad``; ``value_and_grad`` runs the forward
pass and ``torch.autograd.grad`` (no ``.grad`` accumulation to reset between calls);
``forward`` runs under ``torch.no_grad()``, as inference would. Constants are tensors
made once from the case's module-level arrays.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import torch

from . import Impl


def _neuron(module: ModuleType):
    def f(w, x):
        return 1.0 / (1.0 + torch.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))

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
            s = c * torch.tanh(a * s + b)
        return s

    return f


def _element_reads(module: ModuleType):
    steps = module.STEPS

    def f(a, b, x):
        h = 0.0
        for i in range(steps):
            h = torch.tanh(a * h + b * x[i])
        return h

    return f


def _mlp(module: ModuleType):
    X, Y = torch.from_numpy(module.X), torch.from_numpy(module.Y)

    def f(W1, b1, W2, b2):
        h = torch.tanh(X @ W1 + b1)
        z = h @ W2 + b2
        z = z - torch.amax(z, dim=1, keepdim=True)
        logp = z - torch.log(torch.sum(torch.exp(z), dim=1, keepdim=True))
        return -torch.mean(torch.sum(Y * logp, dim=1))

    return f


def _elementwise(module: ModuleType):
    def f(x):
        return torch.sum(torch.tanh(x) * torch.exp(-x * x) + torch.sin(x))

    return f


def _rnn(module: ModuleType):
    XS = torch.from_numpy(module.XS)

    def f(Wx, Wh, b):
        h = torch.tanh(XS[0] @ Wx + b)
        for t in range(1, XS.shape[0]):
            h = torch.tanh(XS[t] @ Wx + h @ Wh + b)
        return torch.sum(h * h)

    return f


def _convnet(module: ModuleType):
    import torch.nn.functional as F

    Y = torch.from_numpy(module.Y)
    n = Y.shape[0]

    def f(K, gamma, beta, W, c, X):
        conv = F.conv2d(X[:, None], K[:, None])  # (n, k, h, w): torch's own convolution
        act = torch.relu(conv)
        pooled = F.max_pool2d(act, 2)
        mu = pooled.mean(dim=(0, 2, 3), keepdim=True)
        var = ((pooled - mu) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        normed = (pooled - mu) / torch.sqrt(var + 1e-5)
        scaled = gamma[:, None, None] * normed + beta[:, None, None]
        logits = scaled.reshape(n, -1) @ W + c
        return -(Y * torch.log_softmax(logits, dim=1)).sum() / n

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
    "convnet": _convnet,
}


def _prepare(args: tuple) -> tuple:
    return tuple(
        torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64, requires_grad=True)
        for a in args
    )


def build(case: str, module: ModuleType) -> Impl:
    """The torch eager forward and value_and_grad for a case (KeyError if none)."""
    f = _BUILDERS[case](module)

    def forward(*params):
        with torch.no_grad():
            return f(*params)

    def value_and_grad(*params):
        value = f(*params)
        return value.detach(), torch.autograd.grad(value, params)

    return Impl(forward, value_and_grad, _prepare)
