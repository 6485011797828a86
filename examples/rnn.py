"""An Elman RNN unrolled over 8 steps by a Python loop; loss on the last hidden state."""

import numpy as np

DIMS = {"B": 4}
STEPS = 8


def rnn(Wx: "f64[3,5]", Wh: "f64[5,5]", b: "f64[5]", xs: "f64[8,B,3]"):
    h = np.tanh(xs[0] @ Wx + b)
    for t in range(1, STEPS):
        h = np.tanh(xs[t] @ Wx + h @ Wh + b)
    return np.sum(h * h)
