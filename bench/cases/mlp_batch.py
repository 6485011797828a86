"""Benchmark case: bench/cases/mlp.py with its batch a named dim B and the data as
parameters, for the C target's code that serves every batch size (the gradient is taken
with respect to the weights and biases: `wrt` below)."""

import numpy as np

DIMS = {"B": 64}


def mlp(
    W1: "f64[784,256]",
    b1: "f64[256]",
    W2: "f64[256,10]",
    b2: "f64[10]",
    X: "f64[B,784]",
    Y: "f64[B,10]",
):
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    z = z - np.max(z, axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.mean(np.sum(Y * logp, axis=1))
