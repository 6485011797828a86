"""Benchmark case: a vanilla tanh RNN, hidden 32, input 16, 50 steps, batch 8.

h_t = tanh(x_t @ Wx + h_{t-1} @ Wh + b) with h_0 = 0; the loss is the sum of the final
hidden state squared. The input sequence XS is a module-level constant of shape (50, 8, 16).
"""

import numpy as np

_rng = np.random.default_rng(2)
XS = _rng.normal(size=(50, 8, 16))


def rnn(Wx: "f64[16,32]", Wh: "f64[32,32]", b: "f64[32]"):
    h = np.tanh(XS[0] @ Wx + b)  # step 0: h_0 = 0, so h_0 @ Wh drops out
    for t in range(1, XS.shape[0]):
        h = np.tanh(XS[t] @ Wx + h @ Wh + b)
    return np.sum(h * h)


def _bench_args(rng):
    """Arguments for the benchmark and the tests (not traced: the name starts with _)."""
    Wx = rng.normal(size=(16, 32)) / np.sqrt(16)
    Wh = rng.normal(size=(32, 32)) / np.sqrt(32)
    b = 0.1 * rng.normal(size=32)
    return Wx, Wh, b
