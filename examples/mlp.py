"""A two-layer perceptron: 784-256-10, tanh, softmax cross-entropy, batch 64."""

import numpy as np

_rng = np.random.default_rng(0)
# One-hot labels of the batch: a constant, not differentiated.
Y = np.eye(10)[_rng.integers(0, 10, size=64)]


def mlp(W1: "f64[784,256]", b1: "f64[256]", W2: "f64[256,10]", b2: "f64[10]", X: "f64[64,784]"):
    h = np.tanh(X @ W1 + b1)
    logits = h @ W2 + b2
    z = logits - np.max(logits, axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.sum(Y * logp) / 64
