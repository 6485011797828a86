"""Layer normalization with a learned scale and shift; the output is a matrix (use _vjp)."""

import numpy as np

DIMS = {"N": 4}


def layernorm(x: "f64[N,6]", gamma: "f64[6]", beta: "f64[6]"):
    mu = np.mean(x, axis=-1, keepdims=True)
    centered = x - mu
    var = np.mean(centered**2, axis=-1, keepdims=True)
    return centered / np.sqrt(var + 1e-5) * gamma + beta
