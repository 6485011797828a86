"""The classic circuit: f = (x + y) * z."""


def circuit(x: "f64[]", y: "f64[]", z: "f64[]"):
    q = x + y
    f = q * z
    return f
