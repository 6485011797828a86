"""Shape functions: reshape and what lowers to it, broadcast_to, concatenate, stack, split.

Each case runs through the whole pipeline: the check compares the generated module with
the user's own numpy function, value and central-difference gradients.
"""

from __future__ import annotations

import numpy as np
import pytest

from codegen.errors import GradgenError
from codegen.ops.shape import key_of_positions, real_key
from codegen.pipeline import compile_file
from helpers import assert_ir_matches, compile_and_check, write_expr, write_source

CASES = [
    ("x: f64[2,3]", "np.expand_dims(x, axis=(0, 2))"),
    ("x: f64[2,3]", "np.expand_dims(x, -1) * x[:, None, :]"),
    ("x: f64[1,3,1]", "np.squeeze(x, axis=-1) + np.squeeze(x)"),
    ("x: f64[1]", "np.squeeze(x) * x"),
    ("x: f64[2,3]", "x.reshape(3, 2) + x.reshape((3, -1))"),
    ("x: f64[2,3]", "x.T.ravel() * x.ravel()"),
    ("x: f64[3]", "np.broadcast_to(x[:, None], (3, 4)) * np.arange(4.0)"),
    ("x: f64[2], y: f64[]", "np.concatenate([x, np.atleast_1d(y), x[::-1]])"),
    ("x: f64[2,3], y: f64[1,3]", "np.concatenate([x, y, x]) ** 2"),
    ("x: f64[2,3], y: f64[2,1]", "np.concatenate((y, x, y), axis=1)"),
    ("x: f64[3], y: f64[]", "np.stack([x, x * y, np.ones(3)], axis=1)"),
    ("x: f64[], y: f64[]", "np.stack([x, y, x * y])"),
    ("x: f64[1,2], y: f64[1,2]", "np.stack((x, y), axis=-2)"),
    ("x: f64[6]", "np.split(x, 3)[1] * np.split(x, [1, 4])[2][::-1][:2]"),
    ("x: f64[6]", "np.split(x, [2, 10])[0] + np.split(x, [4, 1])[2][:2]"),
    ("x: f64[2,5]", "np.array_split(x, 3, axis=1)[2] - np.array_split(x, 3, axis=1)[0][:, :1]"),
    ("x: f64[5,2]", "np.array_split(x, [1, 3])[1] * 2.0"),
    ("x: f64[3], y: f64[2,3]", "np.vstack([x, y]) + np.vstack((y, x))"),
]


@pytest.mark.parametrize("params, expr", CASES, ids=[e for _, e in CASES])
def test_shape_function(tmp_path, params, expr):
    compiled, module, reports = compile_and_check(write_expr(tmp_path, params, expr))
    for r in reports:
        assert r.ok, "\n" + "\n".join(str(a) for a in r.args)
    assert_ir_matches(compiled, module)


def test_split_returns_parts_for_unpacking(tmp_path):
    src = """
    import numpy as np

    def f(x: "f64[2,6]"):
        a, b, c = np.split(x, 3, axis=1)
        first, rest = np.split(x, [1])
        return np.sum(a * b - c) + np.sum(first * rest)
    """
    compiled, module, reports = compile_and_check(write_source(tmp_path, src))
    assert all(r.ok for r in reports)
    assert "x[:, :2]" in compiled.source and "x[:, 2:4]" in compiled.source


def test_stack_and_concatenate_read_as_written(tmp_path):
    src = """
    import numpy as np

    def f(x: "f64[3]", y: "f64[3]"):
        s = np.stack([x, y], axis=1)
        c = np.concatenate([x, y])
        return np.sum(s * s) + np.sum(c[1:] * c[:-1])
    """
    compiled, module, reports = compile_and_check(write_source(tmp_path, src))
    assert all(r.ok for r in reports)
    text = compiled.source
    assert "np.stack([x, y], axis=1)" in text and "np.concatenate([x, y])" in text
    assert "stack gate: unstacks" in text and "concatenate gate: slices back" in text


def _error(tmp_path, src: str) -> tuple[GradgenError, int]:
    path = write_source(tmp_path, src)
    line = next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if "# <-" in ln)
    with pytest.raises(GradgenError) as info:
        compile_file(path)
    return info.value, line


@pytest.mark.parametrize(
    "expr, words",
    [
        ("np.concatenate([x, x.T])", "concatenate"),
        ("np.stack([x, x[0]])", "same shape"),
        ("np.split(x, 4, axis=1)", "equal division"),
        ("np.squeeze(x, axis=0)", "squeeze"),
        ("np.broadcast_to(x, (3, 2))", "broadcast"),
        ("np.concatenate([x[0, 0], x[0, 1]])", "zero-dimensional"),
    ],
)
def test_shape_errors_name_the_line(tmp_path, expr, words):
    err, line = _error(
        tmp_path,
        f"""
        import numpy as np

        def f(x: "f64[2,3]"):
            y = x * 2.0
            return np.sum({expr})  # <-
        """,
    )
    assert err.src is not None and (err.src.file, err.src.line) == ("expr.py", line)
    assert words in err.message


@pytest.mark.parametrize(
    "view",
    [
        "x[2]",
        "x[2][1:]",
        "x[1:3, ::2]",
        "x[None, 1]",
        "x[::-1, 2]",
        "x.T",
        "x[[0, 2]]",
        "x[0, None, 1:3]",
    ]
    + ["x.reshape(6, 4)[1:3]", "x[:, ::-2]", "x[0][::-1]", "x[..., 3]", "x.T[1:3, ::-1]"],
)
def test_key_of_positions_selects_the_view(view):
    """A write through a view is addressed on the base by the key this finds."""
    x = np.arange(24).reshape(4, 6)
    positions = np.asarray(eval(view))
    key, arrays = key_of_positions(positions, x.shape)
    np.testing.assert_array_equal(x[real_key(key, arrays)], positions)
    if not arrays:
        assert all(isinstance(k, (int, tuple)) or k is None for k in key)
