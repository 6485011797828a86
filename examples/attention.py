"""Single-head self-attention over T tokens of width 16, then a squared loss."""

import numpy as np

DIMS = {"T": 8}


def attention(x: "f64[T,16]", Wq: "f64[16,16]", Wk: "f64[16,16]", Wv: "f64[16,16]"):
    q = x @ Wq
    k = x @ Wk
    v = x @ Wv
    scores = q @ k.T / np.sqrt(16.0)
    scores = scores - np.max(scores, axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights = weights / np.sum(weights, axis=-1, keepdims=True)
    out = weights @ v
    return np.sum(out * out)
