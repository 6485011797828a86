"""JAX versions of the cases: ``jax.jit(f)`` and ``jax.jit(jax.value_and_grad(f))``.

float64 is switched on (``jax_enable_x64``) when this module is imported. The functions
are plain ``jax.numpy`` with Python loops unrolled at trace time, like the expr files;
the case's module-level arrays are closed over and so become compile-time constants.
Both callables block until the result is ready, so a timing covers the computation,
not just its dispatch. The first call traces and compiles: the harness times it apart.
"""

from __future__ import annotations

from types import ModuleType

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (after the x64 switch)

from . import Impl  # noqa: E402


def _neuron(module: ModuleType):
    def f(w, x):
        return 1.0 / (1.0 + jnp.exp(-(w[0] * x[0] + w[1] * x[1] + w[2])))

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
            s = c * jnp.tanh(a * s + b)
        return s

    return f


def _element_reads(module: ModuleType):
    steps = module.STEPS

    def f(a, b, x):
        h = 0.0
        for i in range(steps):
            h = jnp.tanh(a * h + b * x[i])
        return h

    return f


def _mlp(module: ModuleType):
    X, Y = jnp.asarray(module.X), jnp.asarray(module.Y)

    def f(W1, b1, W2, b2):
        h = jnp.tanh(X @ W1 + b1)
        z = h @ W2 + b2
        z = z - jnp.max(z, axis=1, keepdims=True)
        logp = z - jnp.log(jnp.sum(jnp.exp(z), axis=1, keepdims=True))
        return -jnp.mean(jnp.sum(Y * logp, axis=1))

    return f


def _elementwise(module: ModuleType):
    def f(x):
        return jnp.sum(jnp.tanh(x) * jnp.exp(-x * x) + jnp.sin(x))

    return f


def _rnn(module: ModuleType):
    XS = jnp.asarray(module.XS)

    def f(Wx, Wh, b):
        h = jnp.tanh(XS[0] @ Wx + b)
        for t in range(1, XS.shape[0]):
            h = jnp.tanh(XS[t] @ Wx + h @ Wh + b)
        return jnp.sum(h * h)

    return f


def _convnet(module: ModuleType):
    Y = jnp.asarray(module.Y)
    n = Y.shape[0]

    def f(K, gamma, beta, W, c, X):
        conv = jax.lax.conv_general_dilated(X[:, None], K[:, None], (1, 1), "VALID")
        act = jnp.maximum(conv, 0.0)
        k, h, w = act.shape[1:]
        pooled = act.reshape(n, k, h // 2, 2, w // 2, 2).max(axis=(3, 5))
        mu = pooled.mean(axis=(0, 2, 3), keepdims=True)
        var = pooled.var(axis=(0, 2, 3), keepdims=True)
        normed = (pooled - mu) / jnp.sqrt(var + 1e-5)
        scaled = gamma[:, None, None] * normed + beta[:, None, None]
        logits = scaled.reshape(n, -1) @ W + c
        return -(Y * jax.nn.log_softmax(logits, axis=1)).sum() / n

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
    return tuple(jax.device_put(jnp.asarray(a, dtype=jnp.float64)) for a in args)


def build(case: str, module: ModuleType) -> Impl:
    """The jitted forward and value_and_grad for a case (KeyError if none)."""
    f = _BUILDERS[case](module)
    n_params = f.__code__.co_argcount
    jit_forward = jax.jit(f)
    jit_value_and_grad = jax.jit(jax.value_and_grad(f, argnums=tuple(range(n_params))))

    def forward(*params):
        return jit_forward(*params).block_until_ready()

    def value_and_grad(*params):
        return jax.block_until_ready(jit_value_and_grad(*params))

    return Impl(forward, value_and_grad, _prepare)
