"""Module-level array constants as Python text a reader can skim, exact to the bit.

A constant whose definition fits on one line is one numpy-style literal,
`W = np.array([[1.0, 2.0], [3.0, 4.0]])`. A longer one gets a comment giving its name,
type and a short summary, then its values wrapped to the line length: one row a line when
its rows fit on a line (the one-hot labels of examples/mlp.py read as a table), else a
flat list cut into lines and put back in shape with `.reshape`. Whole numbers are written
as integers with an explicit `dtype=`, the rest as the shortest literal that gives the
same bits (`repr`; a float32 value as its own shortest form when that parses back to it
through float64), NaN and infinity as `float("nan")`, `float("inf")`.

The layout is black's own (line length 88, magic trailing commas), so black leaves it as
it is, and so does a module too long for black. Two cases fall back to the array's bytes
in hex, wrapped the same way and read with `np.frombuffer`: a NaN with a sign or payload
that is not numpy's default (no literal gives it back), and a constant of more than
LITERAL_LIMIT elements (which nobody reads number by number, and whose numbers would cost
seconds of black and of compiling; its comment still says what it holds). Either way a
generated module stays one file importing only numpy.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np

LINE = 88  # black's line length, which the goldens follow
# Above this many elements the values are written as their bytes in hex: numbers would take
# black about 1 ms a line to format (7 s for 50,000 floats) and Python long to compile.
LITERAL_LIMIT = 4096
INDENT = "    "

# numpy's dtype of each IR dtype, and the keyword that makes it
NUMPY = {"f64": np.float64, "f32": np.float32, "i64": np.int64, "bool": np.bool_}
DTYPE_KW = {"f64": "np.float64", "f32": "np.float32", "i64": "np.int64", "bool": "bool"}
HEX_DTYPE = {"f64": "<f8", "f32": "<f4", "i64": "<i8", "bool": "?"}


def definition(name: str, value: np.ndarray, dtype: str) -> str:
    """The module-level lines that define `name` as `value` (of IR dtype `dtype`)."""
    value = _as(value, dtype)
    one_line = f"{name} = {literal(value, dtype)}"
    if len(one_line) <= LINE and "\n" not in one_line:
        return one_line
    about = f"{name}: {type_text(value, dtype)}, {summary(value, dtype)}"
    if value.size > LITERAL_LIMIT or not _literal_exact(value, dtype):
        body = _hex_form(value, dtype)
        about += f"; its bytes in hex ({HEX_DTYPE.get(dtype, value.dtype.str)})"
    else:
        items = _items(value, dtype, whole=True)
        body = _rows_form(items, value.shape, dtype) or _flat_form(items, value.shape, dtype)
    wrapped = textwrap.wrap(about, LINE - 2, break_long_words=False, break_on_hyphens=False)
    comment = "\n".join("# " + line for line in wrapped)
    return f"{comment}\n{name} = {body}"


def literal(value: np.ndarray, dtype: str) -> str:
    """`np.array([...])` as numpy prints it (no `dtype=` for float64): the short form."""
    value = _as(value, dtype)
    if value.size == 0:
        return f"np.zeros({_shape(value.shape)}{_dtype_kw(dtype)})"
    if not _literal_exact(value, dtype):
        return _hex_form(value, dtype)
    items = _items(value, dtype, whole=False)
    return f"np.array({_nested(items, value.shape)}{_dtype_kw(dtype)})"


def _as(value: np.ndarray, dtype: str) -> np.ndarray:
    """The value in the numpy dtype of its IR dtype: the bits the module must give back."""
    value = np.asarray(value)
    return value.astype(NUMPY[dtype], copy=False) if dtype in NUMPY else value


def type_text(value: np.ndarray, dtype: str) -> str:
    """`f64[64,10]`, as the parameters are annotated."""
    return f"{dtype}[{','.join(map(str, value.shape))}]"


def summary(value: np.ndarray, dtype: str) -> str:
    """A few words on the values: counts of ones and zeros for 0/1 data, else the range
    (and the mean of floats), with NaN and infinity counted apart."""
    flat = np.asarray(value).reshape(-1)
    n = flat.size
    if n == 0:
        return "empty"
    if dtype == "bool":
        return f"{int(np.count_nonzero(flat))} true, {n - int(np.count_nonzero(flat))} false"
    parts = []
    finite = flat
    if flat.dtype.kind == "f":
        nan = int(np.count_nonzero(np.isnan(flat)))
        inf = int(np.count_nonzero(np.isinf(flat)))
        if nan:
            parts.append(f"{nan} NaN")
        if inf:
            parts.append(f"{inf} infinite")
        finite = flat[np.isfinite(flat)].astype(np.float64)
    if finite.size == 0:
        return ", ".join(parts)
    lo, hi = finite.min(), finite.max()
    if np.all(finite == np.round(finite)):
        ones = int(np.count_nonzero(finite == 1))
        zeros = int(np.count_nonzero(finite == 0))
        if ones + zeros == finite.size:
            words = [f"{ones} ones" if ones != 1 else "1 one"]
            words.append(f"{zeros} zeros" if zeros != 1 else "1 zero")
            return ", ".join(parts + words)
        return ", ".join(parts + [f"whole numbers from {_num(lo)} to {_num(hi)}"])
    with np.errstate(over="ignore"):
        mean = float(np.mean(finite))
    words = [f"min {_num(lo)}", f"max {_num(hi)}"] + (
        [f"mean {_num(mean)}"] if math.isfinite(mean) else []
    )
    return ", ".join(parts + words)


def _num(v) -> str:
    v = float(v)
    return str(int(v)) if _whole(v) and abs(v) < 1e15 else f"{v:.4g}"


def _dtype_kw(dtype: str) -> str:
    return "" if dtype == "f64" else f", dtype={DTYPE_KW[dtype]}"


def _literal_exact(value: np.ndarray, dtype: str) -> bool:
    """Whether Python literals give back every bit: all but NaNs of another sign or payload."""
    if dtype not in NUMPY:
        return False
    if value.dtype.kind != "f":
        return True
    nan = np.isnan(value)
    if not nan.any():
        return True
    canonical = np.array(float("nan"), dtype=value.dtype).tobytes()
    return all(v.tobytes() == canonical for v in value[nan].reshape(-1))


def _float_item(v: float) -> str:
    if math.isnan(v):
        return 'float("nan")'
    if math.isinf(v):
        return 'float("inf")' if v > 0 else '-float("inf")'
    return repr(v).replace("e+", "e")  # black writes 1e308, not 1e+308


def _items(value: np.ndarray, dtype: str, whole: bool) -> list[str]:
    """Each element's literal, in C order. `whole`: integer-valued floats as integers (the
    definition then says its dtype)."""
    flat = value.reshape(-1)
    if dtype == "bool":
        return [repr(v) for v in flat.tolist()]
    if dtype == "i64":
        return [str(int(v)) for v in flat.tolist()]
    as64 = flat.astype(np.float64)
    items = []
    short32 = _short_f32(flat) if dtype == "f32" else None
    for i, v in enumerate(as64.tolist()):
        if whole and _whole(v):
            items.append(str(int(v)))
        elif short32 is not None and short32[i] is not None:
            items.append(short32[i])
        else:
            items.append(_float_item(v))
    return items


def _whole(v: float) -> bool:
    """An integer-valued float that an integer literal gives back (not -0.0)."""
    if not math.isfinite(v) or abs(v) >= 2**53 or v != int(v):
        return False
    return v != 0 or math.copysign(1.0, v) > 0


def _short_f32(flat: np.ndarray) -> list[str | None]:
    """float32 values' own shortest forms (`0.1`, not `0.10000000149011612`) where they parse
    back to the same float32 through float64, as `np.array(..., dtype=np.float32)` reads
    them; None where they do not (the float64 form is exact)."""
    out: list[str | None] = []
    for v in flat:
        text = str(v).replace("e+", "e") if np.isfinite(v) else None
        same = text is not None and np.float32(float(text)).tobytes() == v.tobytes()
        out.append(text if same else None)
    return out


def _nested(items: list[str], shape: tuple) -> str:
    """The items as a nested list literal of `shape` on one line."""
    if not shape:
        return items[0]
    if len(shape) == 1:
        return "[" + ", ".join(items) + "]"
    step = len(items) // shape[0] if shape[0] else 0
    return (
        "["
        + ", ".join(_nested(items[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0]))
        + "]"
    )


def _call(head: str, lines: list[str], dtype: str, shape: tuple, flat: bool) -> str:
    """`head(` + the lines (already indented) + `dtype=...,` + `)`, with `.reshape` when the
    layout is not the array's shape."""
    text = head + "(\n" + "\n".join(lines) + f"\n{INDENT}dtype={DTYPE_KW[dtype]},\n)"
    return text + (f".reshape({_shape(shape)})" if flat else "")


def _shape(shape: tuple) -> str:
    return f"({shape[0]},)" if len(shape) == 1 else f"({', '.join(map(str, shape))})"


def _rows_form(items: list[str], shape: tuple, dtype: str) -> str | None:
    """One row of the last axis a line, when every row fits and there are several."""
    if len(shape) < 2 or shape[-1] == 0 or len(items) // shape[-1] < 2:
        return None
    width = shape[-1]
    rows = ["[" + ", ".join(items[i : i + width]) + "]" for i in range(0, len(items), width)]
    inner = INDENT * 2
    if max(len(r) for r in rows) + len(inner) + 1 > LINE:
        return None
    lines = [f"{INDENT}["] + [f"{inner}{r}," for r in rows] + [f"{INDENT}],"]
    return _call("np.array", lines, dtype, shape, flat=len(shape) > 2)


def _flat_form(items: list[str], shape: tuple, dtype: str) -> str:
    """The items in C order, as many a line as fit; several lines are concatenated."""
    inner = INDENT * 2
    chunks: list[list[str]] = [[]]
    used = len(inner) + len("[],")
    for item in items:
        extra = len(item) + (2 if chunks[-1] else 0)
        if chunks[-1] and used + extra > LINE:
            chunks.append([])
            used = len(inner) + len("[],")
            extra = len(item)
        chunks[-1].append(item)
        used += extra
    lists = ["[" + ", ".join(c) + "]" for c in chunks]
    reshape = len(shape) != 1
    if len(lists) == 1:
        return _call("np.array", [f"{INDENT}{lists[0]},"], dtype, shape, flat=reshape)
    lines = [f"{INDENT}("] + [f"{inner}{x}," for x in lists] + [f"{INDENT}),"]
    return _call("np.concatenate", lines, dtype, shape, flat=reshape)


def _hex_form(value: np.ndarray, dtype: str) -> str:
    """The bytes in hex, wrapped: exact for any value, read with np.frombuffer."""
    code = HEX_DTYPE.get(dtype, value.dtype.str)
    data = np.ascontiguousarray(value).astype(code).tobytes().hex()
    inner = INDENT * 2
    width = (LINE - len(inner) - 2) // 2 * 2  # whole bytes a line, in quotes
    chunks = [data[i : i + width] for i in range(0, len(data), width)] or [""]
    lines = (
        [f"{INDENT}bytes.fromhex("]
        + [f'{inner}"{c}"' for c in chunks]
        + [f"{INDENT}),", f'{INDENT}dtype="{code}",']
    )
    text = "np.frombuffer(\n" + "\n".join(lines) + "\n)"
    return text + (f".reshape({_shape(value.shape)})" if value.ndim != 1 else "")
