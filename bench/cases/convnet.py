"""Benchmark case: a small CNN, batch 32 of 16x16 images: a 3x3 convolution with 8 filters
(sliding windows and einsum), ReLU, 2x2 max-pooling by a reshape, batch norm, a linear
layer to 10 classes and softmax cross-entropy. The images are a parameter too, so every
system also computes their gradient (a deeper network's conv layers need it).
"""

import numpy as np

_rng = np.random.default_rng(2)
Y = np.eye(10)[_rng.integers(0, 10, size=32)]  # one-hot labels: a constant


def convnet(
    K: "f64[8,3,3]",
    gamma: "f64[8]",
    beta: "f64[8]",
    W: "f64[392,10]",
    c: "f64[10]",
    X: "f64[32,16,16]",
):
    windows = np.lib.stride_tricks.sliding_window_view(X, (3, 3), axis=(1, 2))
    conv = np.einsum("nhwij,kij->nkhw", windows, K)
    act = np.maximum(conv, 0.0)
    pooled = act.reshape(32, 8, 7, 2, 7, 2).max(axis=(3, 5))
    mu = pooled.mean(axis=(0, 2, 3), keepdims=True)
    var = pooled.var(axis=(0, 2, 3), keepdims=True)
    normed = (pooled - mu) / np.sqrt(var + 1e-5)
    scaled = gamma[:, None, None] * normed + beta[:, None, None]
    logits = scaled.reshape(32, 392) @ W + c
    z = logits - np.max(logits, axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.sum(Y * logp) / 32


def _bench_args(rng):
    """Arguments for the benchmark and the tests (not traced: the name starts with _)."""
    K = rng.normal(size=(8, 3, 3)) / 3.0
    gamma = 1.0 + 0.1 * rng.normal(size=8)
    beta = 0.1 * rng.normal(size=8)
    W = rng.normal(size=(392, 10)) / np.sqrt(392)
    c = 0.1 * rng.normal(size=10)
    X = rng.normal(size=(32, 16, 16))
    return K, gamma, beta, W, c, X
