"""Benchmark case: a 784-256-10 tanh MLP with softmax cross-entropy, batch 64.

X (the inputs) and Y (one-hot labels) are module-level constants built from a fixed seed;
the gradient is taken with respect to the weights and biases.
"""

import numpy as np

_rng = np.random.default_rng(1)
X = _rng.normal(size=(64, 784))
Y = np.eye(10)[_rng.integers(0, 10, size=64)]


def mlp(W1: "f64[784,256]", b1: "f64[256]", W2: "f64[256,10]", b2: "f64[10]"):
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    z = z - np.max(z, axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.mean(np.sum(Y * logp, axis=1))


def _bench_args(rng):
    """Arguments for the benchmark and the tests (not traced: the name starts with _)."""
    W1 = rng.normal(size=(784, 256)) / np.sqrt(784)
    b1 = 0.1 * rng.normal(size=256)
    W2 = rng.normal(size=(256, 10)) / np.sqrt(256)
    b2 = 0.1 * rng.normal(size=10)
    return W1, b1, W2, b2
