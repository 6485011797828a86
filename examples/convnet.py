"""A small convolutional network on 12x12 images, batch 16: a 3x3 convolution with 4
filters (sliding windows and einsum), ReLU, 2x2 max-pooling (a reshape), batch norm, a
linear layer to 10 classes and softmax cross-entropy."""

import numpy as np

_rng = np.random.default_rng(0)
Y = np.eye(10)[_rng.integers(0, 10, size=16)]  # one-hot labels: a constant


def convnet(
    K: "f64[4,3,3]",
    gamma: "f64[4]",
    beta: "f64[4]",
    W: "f64[100,10]",
    c: "f64[10]",
    X: "f64[16,12,12]",
):
    windows = np.lib.stride_tricks.sliding_window_view(X, (3, 3), axis=(1, 2))
    conv = np.einsum("nhwij,kij->nkhw", windows, K)
    act = np.maximum(conv, 0.0)
    pooled = act.reshape(16, 4, 5, 2, 5, 2).max(axis=(3, 5))
    mu = pooled.mean(axis=(0, 2, 3), keepdims=True)
    var = pooled.var(axis=(0, 2, 3), keepdims=True)
    normed = (pooled - mu) / np.sqrt(var + 1e-5)
    scaled = gamma[:, None, None] * normed + beta[:, None, None]
    logits = scaled.reshape(16, 100) @ W + c
    z = logits - np.max(logits, axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.sum(Y * logp) / 16
