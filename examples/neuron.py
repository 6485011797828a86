"""The classic sigmoid neuron: f = 1 / (1 + exp(-(w0*x0 + w1*x1 + w2)))."""

import numpy as np


def neuron(w: "f64[3]", x: "f64[2]"):
    dot = w[0] * x[0] + w[1] * x[1] + w[2]
    f = 1.0 / (1.0 + np.exp(-dot))
    return f
