"""Benchmark case: the mlp case (784-256-10, tanh, softmax cross-entropy) at batch 1.

Same function as mlp.py with a single example: the matrix products shrink to
vector-matrix products, so per-op overhead weighs more.
"""

import numpy as np

_rng = np.random.default_rng(1)
X = _rng.normal(size=(1, 784))
Y = np.eye(10)[_rng.integers(0, 10, size=1)]


def mlp_b1(W1: "f64[784,256]", b1: "f64[256]", W2: "f64[256,10]", b2: "f64[10]"):
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
