"""Hand-written flat numpy backprop: the practical limit gradgen is measured against.

Each case gets the forward pass and value-and-gradient an expert would write by hand:
forward values are reused in the backward pass, buffers are updated in place where that
saves a temporary, scalars run on Python floats and ``math``, and knowledge of the
constants is used where a person would use it (the mlp labels are one-hot, the rnn's
input projection is one matrix product over all steps). Only numpy is needed.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np

from . import Impl


def _neuron(module: ModuleType) -> Impl:
    exp = math.exp

    def forward(w, x):
        w0, w1, w2 = w.tolist()
        x0, x1 = x.tolist()
        return 1.0 / (1.0 + exp(-(w0 * x0 + w1 * x1 + w2)))

    def value_and_grad(w, x):
        w0, w1, w2 = w.tolist()
        x0, x1 = x.tolist()
        f = 1.0 / (1.0 + exp(-(w0 * x0 + w1 * x1 + w2)))
        g = f * (1.0 - f)  # sigmoid' = f (1 - f)
        return f, (np.array([g * x0, g * x1, g]), np.array([g * w0, g * w1]))

    return Impl(forward, value_and_grad)


def _circuit(module: ModuleType) -> Impl:
    def forward(x, y, z):
        return (x + y) * z

    def value_and_grad(x, y, z):
        q = x + y
        return q * z, (z, z, q)

    return Impl(forward, value_and_grad)


def _scalar_chain(module: ModuleType) -> Impl:
    steps = module.STEPS
    tanh = math.tanh

    def forward(a, b, c, x0):
        s = x0
        for _ in range(steps):
            s = c * tanh(a * s + b)
        return s

    def value_and_grad(a, b, c, x0):
        ins = [0.0] * steps  # s entering each step
        ts = [0.0] * steps  # tanh output of each step
        s = x0
        for i in range(steps):
            ins[i] = s
            t = tanh(a * s + b)
            ts[i] = t
            s = c * t
        g = 1.0
        ga = gb = gc = 0.0
        for i in range(steps - 1, -1, -1):
            t = ts[i]
            gc += g * t
            gu = g * c * (1.0 - t * t)
            ga += gu * ins[i]
            gb += gu
            g = gu * a
        return s, (ga, gb, gc, g)

    return Impl(forward, value_and_grad)


def _mlp(module: ModuleType) -> Impl:
    X, Y = module.X, module.Y
    n = X.shape[0]
    labels = Y.argmax(axis=1)
    if not np.array_equal(Y, np.eye(Y.shape[1])[labels]):
        raise ValueError("the hand-written mlp relies on one-hot labels Y")
    rows = np.arange(n)
    XT = X.T

    def forward(W1, b1, W2, b2):
        h = X @ W1
        h += b1
        np.tanh(h, out=h)
        z = h @ W2
        z += b2
        z -= z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return (lse.sum() - z[rows, labels].sum()) / n

    def value_and_grad(W1, b1, W2, b2):
        h = X @ W1
        h += b1
        np.tanh(h, out=h)
        z = h @ W2
        z += b2
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        s = p.sum(axis=1, keepdims=True)
        value = (np.log(s).sum() - z[rows, labels].sum()) / n
        # softmax cross-entropy: dz = (softmax(z) - Y) / n, built in p
        p /= s
        p[rows, labels] -= 1.0
        p *= 1.0 / n
        gW2 = h.T @ p
        gb2 = p.sum(axis=0)
        dh = p @ W2.T
        # tanh gate: dh * (1 - h^2), with h's buffer reused
        np.multiply(h, h, out=h)
        np.subtract(1.0, h, out=h)
        dh *= h
        # at batch 1 the product is an outer product: a broadcast multiply beats gemm
        gW1 = np.multiply(XT, dh) if n == 1 else XT @ dh
        gb1 = dh.sum(axis=0)
        return value, (gW1, gb1, gW2, gb2)

    return Impl(forward, value_and_grad)


def _elementwise(module: ModuleType) -> Impl:
    def forward(x):
        e = np.multiply(x, x)
        np.negative(e, out=e)
        np.exp(e, out=e)
        t = np.tanh(x)
        te = np.dot(t, e)  # sum(t * e) without a temporary
        return te + np.sin(x, out=t).sum()

    def value_and_grad(x):
        t = np.tanh(x)
        e = np.multiply(x, x)
        np.negative(e, out=e)
        np.exp(e, out=e)
        u = np.sin(x)
        value = np.dot(t, e) + u.sum()
        # d/dx = e * (1 - t^2) - 2 x t e + cos x = e * (1 - t (t + 2x)) + cos x
        g = np.add(x, x)
        g += t
        g *= t
        np.subtract(1.0, g, out=g)
        g *= e
        g += np.cos(x, out=u)
        return value, (g,)

    return Impl(forward, value_and_grad)


def _rnn(module: ModuleType) -> Impl:
    XS = module.XS
    steps, batch, n_in = XS.shape
    X2 = XS.reshape(steps * batch, n_in)  # all steps' inputs as one matrix (a view)
    X2T = X2.T

    def forward(Wx, Wh, b):
        A = (X2 @ Wx).reshape(steps, batch, -1)  # input projection for every step at once
        A += b
        h = np.tanh(A[0])
        for t in range(1, steps):
            a = A[t]
            a += h @ Wh
            h = np.tanh(a, out=a)
        return np.dot(h.ravel(), h.ravel())

    def value_and_grad(Wx, Wh, b):
        H = (X2 @ Wx).reshape(steps, batch, -1)  # becomes the hidden states, in place
        H += b
        np.tanh(H[0], out=H[0])
        for t in range(1, steps):
            H[t] += H[t - 1] @ Wh
            np.tanh(H[t], out=H[t])
        h = H[-1]
        value = np.dot(h.ravel(), h.ravel())
        # backward through time; D[t] is the gradient at step t's pre-activation
        D = np.empty_like(H)
        dh = 2.0 * h
        WhT = Wh.T
        for t in range(steps - 1, -1, -1):
            d = D[t]
            np.multiply(H[t], H[t], out=d)
            np.subtract(1.0, d, out=d)
            d *= dh
            if t:
                dh = d @ WhT
        D2 = D.reshape(steps * batch, -1)
        gWx = X2T @ D2
        gWh = H[:-1].reshape(-1, H.shape[2]).T @ D2[batch:]
        gb = D2.sum(axis=0)
        return value, (gWx, gWh, gb)

    return Impl(forward, value_and_grad)


_BUILDERS = {
    "neuron": _neuron,
    "circuit": _circuit,
    "scalar_chain": _scalar_chain,
    "mlp": _mlp,
    "mlp_b1": _mlp,
    "elementwise": _elementwise,
    "rnn": _rnn,
}


def build(case: str, module: ModuleType) -> Impl:
    """The hand-written forward and value_and_grad for a case (KeyError if none)."""
    return _BUILDERS[case](module)
