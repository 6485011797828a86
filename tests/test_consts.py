"""Module-level constants in the generated code: exact to the bit, readable, black-clean."""

from __future__ import annotations

import black
import numpy as np
import pytest

from codegen import check
from codegen.emit import consts
from codegen.pipeline import compile_file
from codegen.write import write_atomic
from helpers import ROOT, write_source

MODE = black.Mode(line_length=88)


def run(text: str, name: str) -> np.ndarray:
    space: dict = {"np": np}
    exec(compile(text, "<const>", "exec"), space)
    return space[name]


def bits(value: np.ndarray, dtype: str) -> np.ndarray:
    return np.ascontiguousarray(value).astype(consts.NUMPY[dtype])


def random_bits(rng, shape, dtype: str) -> np.ndarray:
    """Every bit pattern is likely: subnormals, huge values, NaNs with payloads and signs."""
    if dtype == "f64":
        return rng.integers(0, 2**64, size=shape, dtype=np.uint64).view(np.float64)
    return rng.integers(0, 2**32, size=shape, dtype=np.uint32).view(np.float32)


def cases():
    rng = np.random.default_rng(0)
    special = [np.nan, np.inf, -np.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308, 1 / 3]
    yield "normal", rng.standard_normal((20, 30)), "f64"
    yield "small", np.array([[1.5, -2.0], [0.1, 3.0]]), "f64"
    yield "special_small", np.array(special), "f64"
    yield "special_large", np.array(special * 20).reshape(8, 20), "f64"
    yield "whole", rng.integers(-5, 9, size=(7, 13)).astype(np.float64), "f64"
    yield "big_whole", np.array([2.0**52, -(2.0**53), 2.0**60, -0.0] * 30), "f64"
    yield "one_hot", np.eye(10)[rng.integers(0, 10, size=64)], "f64"
    yield "wide_rows", rng.standard_normal((3, 784)), "f64"
    yield "three_d", rng.standard_normal((2, 3, 5)), "f64"
    yield "three_d_rows", rng.integers(0, 3, size=(4, 16, 10)).astype(np.float64), "f64"
    yield "few_wide", np.linspace(0.0, 1.0, 7), "f64"
    yield "f32", rng.standard_normal((9, 11)).astype(np.float32), "f32"
    special32 = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, 3.4028235e38, 1 / 3]
    yield "f32_special", np.array(special32 * 10, dtype=np.float32), "f32"
    yield "f32_whole", rng.integers(-3, 3, size=100).astype(np.float32), "f32"
    yield "bits_f64", random_bits(rng, (12, 12), "f64"), "f64"
    yield "bits_f32", random_bits(rng, (300,), "f32"), "f32"
    yield "negative_nan", -np.full(70, np.nan), "f64"
    yield "bool", rng.standard_normal((6, 40)) > 0, "bool"
    yield "i64", rng.integers(-(2**62), 2**62, size=(5, 20)), "i64"
    yield "one", np.array([4.25]), "f64"
    yield "empty", np.zeros((0, 3)), "f64"


CASES = {name: (value, dtype) for name, value, dtype in cases()}


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_is_exact_to_the_bit(case):
    value, dtype = CASES[case]
    text = consts.definition("C", value, dtype)
    got = run(text, "C")
    assert got.shape == value.shape and got.dtype == consts.NUMPY[dtype]
    assert got.tobytes() == bits(value, dtype).tobytes(), text[:400]


@pytest.mark.parametrize("case", list(CASES))
def test_lines_fit_and_black_leaves_them(case):
    value, dtype = CASES[case]
    text = consts.definition("C", value, dtype) + "\n"
    assert max(len(line) for line in text.splitlines()) <= 88
    assert black.format_str(text, mode=MODE) == text


def test_small_constant_is_one_numpy_literal():
    assert consts.definition("W", np.array([[1.5, -2.0], [0.1, 3.0]]), "f64") == (
        "W = np.array([[1.5, -2.0], [0.1, 3.0]])"
    )
    text = consts.definition("S", np.array([np.nan, -0.0, np.inf, 1e-300]), "f64")
    assert text == 'S = np.array([float("nan"), -0.0, float("inf"), 1e-300])'
    f32 = consts.definition("F", np.array([0.1, 2.0], dtype=np.float32), "f32")
    assert f32 == "F = np.array([0.1, 2.0], dtype=np.float32)"  # float32's own short form


def test_one_hot_labels_read_as_a_table():
    rng = np.random.default_rng(0)
    labels = np.eye(10)[rng.integers(0, 10, size=64)]
    text = consts.definition("Y", labels, "f64")
    lines = text.splitlines()
    assert lines[0] == "# Y: f64[64,10], 64 ones, 576 zeros"
    assert lines[1] == "Y = np.array("
    assert lines[3] == "        " + str(labels[0].astype(int).tolist()) + ","
    assert len(lines) == 64 + 6 and lines[-2:] == ["    dtype=np.float64,", ")"]


def test_summaries():
    rng = np.random.default_rng(1)
    floats = consts.definition("W", rng.standard_normal((20, 30)), "f64").splitlines()[0]
    assert floats.startswith("# W: f64[20,30], min -") and ", max " in floats
    assert ", mean " in floats
    whole = rng.integers(-3, 8, size=200).astype(np.float64)
    whole[:2] = [-3, 7]
    assert consts.definition("K", whole, "f64").splitlines()[0] == (
        "# K: f64[200], whole numbers from -3 to 7"
    )
    special = np.array([np.nan, np.inf, 1.0, 2.5] * 30)
    assert consts.definition("S", special, "f64").splitlines()[0] == (
        "# S: f64[120], 30 NaN, 30 infinite, min 1, max 2.5, mean 1.75"
    )
    mask = np.arange(100) % 4 == 0
    assert (
        consts.definition("M", mask, "bool").splitlines()[0] == "# M: bool[100], 25 true, 75 false"
    )


def test_rows_of_a_3d_constant_and_a_long_name():
    value = np.arange(4 * 16 * 10).reshape(4, 16, 10) % 3 * 1.0
    text = consts.definition("Y", value, "f64")
    assert text.endswith(".reshape((4, 16, 10))") and "        [0, 1, 2, 0," in text
    name = "A_CONSTANT_WITH_A_NAME_LONG_ENOUGH_TO_PUSH_ITS_LITERAL_PAST_THE_LINE"
    text = consts.definition(name, np.array([0.25, 0.5, 0.75]), "f64") + "\n"
    assert f"{name} = np.array(" in text.splitlines() and run(text, name).size == 3
    assert black.format_str(text, mode=MODE) == text


def test_wide_rows_are_cut_into_lines_and_reshaped():
    value = np.random.default_rng(2).standard_normal((3, 784))
    text = consts.definition("X", value, "f64")
    assert "np.concatenate(" in text and text.endswith(".reshape((3, 784))")


def test_only_unusual_nans_fall_back_to_bytes():
    assert "fromhex" not in consts.definition("C", np.full(100, np.nan), "f64")
    text = consts.definition("C", -np.full(100, np.nan), "f64")  # a NaN with its sign set
    assert "bytes.fromhex(" in text and text.splitlines()[0].startswith("# C: f64[100], 100 NaN")


def test_very_large_constants_are_bytes_with_a_summary():
    value = np.random.default_rng(4).standard_normal((70, 60))
    assert value.size > consts.LITERAL_LIMIT
    text = consts.definition("D", value, "f64")
    assert text.splitlines()[0].startswith("# D: f64[70,60], min ")
    assert text.splitlines()[0].endswith("; its bytes in hex (<f8)")
    assert "bytes.fromhex(" in text and text.endswith(".reshape((70, 60))")
    assert run(text, "D").tobytes() == value.tobytes()
    assert max(len(line) for line in text.splitlines()) <= 88
    assert black.format_str(text + "\n", mode=MODE) == text + "\n"


def test_mlp_labels_in_the_golden():
    golden = (ROOT / "generated" / "mlp_grad.py").read_text()
    assert "# Y: f64[64,10], 64 ones, 576 zeros\nY = np.array(\n" in golden
    block = golden.split("# Y: ")[1].split("\n\n")[0]
    assert "fromhex" not in golden and max(len(line) for line in block.splitlines()) <= 88


def test_mlp_module_imports_from_any_folder_with_the_same_labels(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("_mlp_example", ROOT / "examples" / "mlp.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.chdir(tmp_path)
    module = check.import_path(ROOT / "generated" / "mlp_grad.py")
    assert module.Y.dtype == np.float64 and module.Y.tobytes() == example.Y.tobytes()


def test_constants_through_the_pipeline(tmp_path):
    path = write_source(
        tmp_path,
        """
        import numpy as np

        _rng = np.random.default_rng(3)
        SCALE = _rng.standard_normal((6, 25))
        SCALE[0, :4] = [np.nan, -0.0, np.inf, -np.inf]
        MASK = np.arange(150).reshape(6, 25) % 3 == 0


        def f(x: "f64[6,25]"):
            return np.sum(np.where(MASK, x * x, 0.0) * np.nan_to_num(SCALE))


        def g(x: "f64[6,25]"):
            return np.sum(x * SCALE[1:2])
        """,
    )
    compiled = compile_file(path)
    assert black.format_str(compiled.source, mode=MODE) == compiled.source
    out = tmp_path / "out" / "expr_grad.py"
    write_atomic(out, compiled.source)
    module = check.import_path(out)
    user = compiled.loaded.module
    defined = {k: v for k, v in vars(module).items() if isinstance(v, np.ndarray)}
    assert defined, compiled.source
    for name, value in defined.items():
        original = getattr(user, name, None)
        if original is not None and np.shape(original) == value.shape:
            assert value.tobytes() == np.asarray(original, value.dtype).tobytes(), name
    assert compile_file(path).source == compiled.source  # deterministic


def test_an_array_of_zeros_of_both_signs_keeps_its_signs(tmp_path):
    path = write_source(
        tmp_path,
        """
        import numpy as np

        Z = np.array([0.0, -0.0, 0.0])


        def f(x: "f64[3]"):
            return np.sum(np.arctan2(Z, x))
        """,
    )
    compiled = compile_file(path)
    out = tmp_path / "out" / "expr_grad.py"
    write_atomic(out, compiled.source)
    assert "Z = np.array([0.0, -0.0, 0.0])" in compiled.source
    assert check.import_path(out).Z.tobytes() == np.array([0.0, -0.0, 0.0]).tobytes()
