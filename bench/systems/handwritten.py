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


def _element_reads(module: ModuleType) -> Impl:
    steps = module.STEPS
    tanh = math.tanh

    def forward(a, b, x):
        h = 0.0
        for xi in x.tolist():
            h = tanh(a * h + b * xi)
        return h

    def value_and_grad(a, b, x):
        xs = x.tolist()
        hs = [0.0] * (steps + 1)  # h entering each step, and the last
        h = 0.0
        for i in range(steps):
            h = tanh(a * h + b * xs[i])
            hs[i + 1] = h
        g_x = np.empty(steps)
        g_h, g_a, g_b = 1.0, 0.0, 0.0
        for i in range(steps - 1, -1, -1):
            t = hs[i + 1]
            g_u = g_h * (1.0 - t * t)
            g_a += g_u * hs[i]
            g_b += g_u * xs[i]
            g_x[i] = g_u * b
            g_h = g_u * a
        return h, (g_a, g_b, g_x)

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


def _convnet(module: ModuleType) -> Impl:
    """im2col: the windows as one matrix, the convolution one matmul (NHWC inside), the
    pooling's and the batch norm's backward in closed form, the images' gradient added back
    one window offset at a time."""
    Y = module.Y
    n = Y.shape[0]
    labels = Y.argmax(axis=1)
    rows = np.arange(n)
    eps = 1e-5

    def forward_parts(K, gamma, beta, W, c, X):
        k, kh, kw = K.shape
        h, w = X.shape[1] - kh + 1, X.shape[2] - kw + 1
        cols = np.lib.stride_tricks.sliding_window_view(X, (kh, kw), axis=(1, 2))
        cols = cols.reshape(n * h * w, kh * kw)
        conv = cols @ K.reshape(k, kh * kw).T  # (n h w, k)
        act = np.maximum(conv, 0.0).reshape(n, h // 2, 2, w // 2, 2, k)
        pooled = act.max(axis=(2, 4))  # (n, h/2, w/2, k)
        mu = pooled.mean(axis=(0, 1, 2))
        d = pooled - mu
        var = np.einsum("nijk,nijk->k", d, d) / (n * (h // 2) * (w // 2))
        inv = 1.0 / np.sqrt(var + eps)
        normed = d * inv
        scaled = normed * gamma
        scaled += beta
        flat = scaled.transpose(0, 3, 1, 2).reshape(n, -1)  # the case's (n, k, h, w) order
        z = flat @ W
        z += c
        z -= z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        loss = (lse.sum() - z[rows, labels].sum()) / n
        return loss, (cols, conv, act, pooled, normed, inv, flat, z, lse, h, w)

    def forward(K, gamma, beta, W, c, X):
        return forward_parts(K, gamma, beta, W, c, X)[0]

    def value_and_grad(K, gamma, beta, W, c, X):
        loss, (cols, conv, act, pooled, normed, inv, flat, z, lse, h, w) = forward_parts(
            K, gamma, beta, W, c, X
        )
        k, kh, kw = K.shape
        g_z = np.exp(z - lse[:, None])  # softmax
        g_z[rows, labels] -= 1.0
        g_z /= n
        g_W = flat.T @ g_z
        g_c = g_z.sum(axis=0)
        g_scaled = (g_z @ W.T).reshape(n, k, h // 2, w // 2).transpose(0, 2, 3, 1)
        g_beta = g_scaled.sum(axis=(0, 1, 2))
        g_gamma = np.einsum("nijk,nijk->k", g_scaled, normed)
        g_normed = g_scaled * gamma
        m = n * (h // 2) * (w // 2)
        g_pooled = (
            inv
            / m
            * (
                m * g_normed
                - g_normed.sum(axis=(0, 1, 2))
                - normed * np.einsum("nijk,nijk->k", g_normed, normed)
            )
        )
        wins = act == pooled[:, :, None, :, None, :]  # ties split evenly, as gradgen does
        g_act = wins * (g_pooled / wins.sum(axis=(2, 4)))[:, :, None, :, None, :]
        g_conv = g_act.reshape(n * h * w, k)
        g_conv *= conv > 0.0
        g_K = (g_conv.T @ cols).reshape(k, kh, kw)
        g_cols = (g_conv @ K.reshape(k, kh * kw)).reshape(n, h, w, kh, kw)
        g_X = np.zeros((n, h + kh - 1, w + kw - 1))
        for i in range(kh):
            for j in range(kw):
                g_X[:, i : i + h, j : j + w] += g_cols[:, :, :, i, j]
        return loss, (g_K, g_gamma, g_beta, g_W, g_c, g_X)

    return Impl(forward, value_and_grad)


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


def build(case: str, module: ModuleType) -> Impl:
    """The hand-written forward and value_and_grad for a case (KeyError if none)."""
    return _BUILDERS[case](module)
