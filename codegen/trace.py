"""Stage 2, trace: run the user's function on Tracers and record the numpy calls as IR.

A Tracer speaks numpy's `__array_ufunc__` / `__array_function__` protocols and Python's
operators; each call is looked up in the op table (`ops.NUMPY`) and becomes a node stamped
with the user's file:line. Python control flow over Python values simply runs (loops are
unrolled); a branch on a traced value is an error at the user's line.

Arrays are mutable in numpy, and the tracer keeps numpy's semantics: `x[k] = v`, `x += v`
and np.add.at rebind the Tracer that owns the memory to a new, immutable node, and views
share their base's memory (see `Tracer`). Writing into a parameter writes into a copy, so
the caller's array is left as it was (numpy's would change). While the function runs, its
module's `np` is a proxy whose np.array / np.zeros / ... trace (`create.SHIMS`), so arrays
it creates can be filled in, and whose functions take lists of traced scalars as arrays.
A value that does not depend on the parameters is a constant: `if`, float(), indexing and
numpy functions gradgen does not trace work on it as in numpy.
"""

from __future__ import annotations

import bisect
import functools
import math
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

from . import flow, ops
from .errors import GradgenError, Src
from .ir import NUMPY_DTYPES, Graph, Node, dtype_of, evaluate
from .load import BOUND, RETURNING, FunctionSpec, Loaded, user_frame_src
from .ops import create
from .ops.shape import ARR, key_of_positions, nonnegative, normalize_key, real_key

SUPPORTED_HINT = "see 'Supported numpy' in gradgen's README.md for what traces"
BRANCH_HINT = (
    "`if`, `while` and `for` on traced values are traced as branches and loops, except "
    "around a `return` inside a loop (break out and return after the loop) and bool() "
    "or int() called on a traced value; or choose with np.where(cond, a, b)"
)


class Tracer:
    """A stand-in for a numpy array or float while the user's function runs.

    Nodes are immutable values; a Tracer is a mutable array. `x[k] = v` and `x += v`
    rebind the Tracer that owns the memory to a new node (`index_update`, or the new
    value). A view (`y = x[0:2]`, x.T, reshape, ...) shares its base's memory as numpy's
    does: a write into the view writes into the base, and a view whose elements were
    written re-reads them from the base when next used. Which results are views, and
    which elements they see, numpy itself decides: the tracer applies the same call to an
    array of flat positions (`positions`) and sees whether the result shares its memory.
    """

    __array_priority__ = 1000
    __slots__ = "_node tracing base _positions rederive seen writes param copied".split()

    def __init__(
        self,
        node: Node,
        tracing: "Tracing",
        *,
        base=None,
        positions=None,
        rederive=None,
        param=None,
    ):
        self._node = node
        self.tracing = tracing
        self.base: Tracer | None = base  # the array whose memory this one views; None: its own
        self._positions = positions  # flat positions in the memory's owner, in this shape
        self.rederive = rederive  # a view: rebuilds its node from the current base
        self.seen = len(base.writes) if base is not None else 0  # base writes accounted for
        self.writes: list = []  # the positions each write into this memory set (None: all)
        self.param: str | None = param  # a parameter's name: no writes into it
        self.copied: Src | None = None  # where numpy took a concrete copy: no writes after

    @property
    def node(self) -> Node:
        """The current value; a view re-reads its base after writes that touched it."""
        base = self.base
        if base is not None and self.seen < len(base.writes):
            touched = base.writes[self.seen :]
            self.seen = len(base.writes)
            if any(w is None or np.isin(self._positions, w).any() for w in touched):
                self._node = self.rederive()
        node = self._node
        if node._graph is not self.tracing.graph._ref:  # read inside a region's body
            return self.tracing.capture(node)
        return node

    @property
    def positions(self) -> np.ndarray:
        """The flat positions of this array's elements in the memory of `root`."""
        if self._positions is None:
            self._positions = np.arange(self._node.size, dtype=np.int64).reshape(self._node.shape)
        return self._positions

    @property
    def root(self) -> "Tracer":
        return self if self.base is None else self.base

    @property
    def scalar(self) -> bool:
        """A 0-d value that is not a view acts as a numpy scalar: immutable."""
        return self._node.ndim == 0 and self.base is None

    def derived(self, node: Node, positions: Any, rederive) -> "Tracer":
        """The Tracer of `node` computed from this one: a view when numpy's result on the
        positions (`positions`) shares their memory, else a new array."""
        root = self.root
        if isinstance(positions, np.ndarray) and np.may_share_memory(positions, root.positions):
            return Tracer(node, self.tracing, base=root, positions=positions, rederive=rederive)
        return Tracer(node, self.tracing)

    # ---- array attributes: shapes are concrete Python values, so code may branch on them
    @property
    def shape(self) -> tuple[int, ...]:
        return self._node.shape

    @property
    def ndim(self) -> int:
        return self._node.ndim

    @property
    def size(self) -> int:
        return self._node.size

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(NUMPY_DTYPES[self._node.dtype])

    @property
    def flags(self) -> types.SimpleNamespace:
        """A traced array is laid out as numpy's C-ordered arrays are."""
        f_order = sum(d > 1 for d in self.shape) <= 1
        return types.SimpleNamespace(
            c_contiguous=True,
            f_contiguous=f_order,
            contiguous=True,
            fortran=f_order,
            fnc=False,
            forc=True,
            owndata=self.base is None,
            writeable=True,
            aligned=True,
        )

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.dtype.itemsize * self._node.size

    def __len__(self) -> int:
        if not self._node.shape:
            raise self.tracing.error("len() of a scalar", "a scalar has no length")
        return self._node.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"Tracer({self._node.dtype}{list(self._node.shape)})"

    # ---- the numpy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.pop("out", None)
        if method == "at" and ufunc in (np.add, np.subtract) and len(inputs) == 3:
            x, key, value = inputs
            return self.tracing.add_at(x, key, value if ufunc is np.add else np.negative(value))
        if method == "at" and ufunc is np.add:
            return self.tracing.add_at(*inputs)
        # np.add.reduce, np.maximum.accumulate, np.multiply.outer: their fronts are keyed
        # by the bound method (see ops/composite.py)
        fn = ufunc if method == "__call__" else getattr(ufunc, method)
        if fn not in ops.NUMPY:
            name = f"np.{ufunc.__name__}" + (f".{method}" if method != "__call__" else "")
            return self.tracing.fallback(name, fn, inputs, kwargs)
        dtype = kwargs.get("dtype")
        if dtype is not None and np.dtype(dtype).kind == "f":  # computed in that float type
            kwargs.pop("dtype")
            inputs = tuple(
                a.astype(dtype) if isinstance(a, Tracer) and a.dtype != dtype else a for a in inputs
            )
        result = self.tracing.call(fn, inputs, kwargs)
        if out is None:
            return result
        return self.tracing.write_out(out, result, f"np.{ufunc.__name__}")

    def __array_function__(self, func, types, args, kwargs):
        return self.tracing.call(func, args, kwargs)

    def __array__(self, dtype=None, copy=None):
        value = self.tracing.concrete(self.node)
        if value is None:
            raise self.tracing.error(
                "a traced value was turned into a concrete numpy array (np.asarray of a "
                "traced array, storing it into a numpy array, or a function gradgen does not "
                "trace)",
                f"{CREATE_HINT}; {SUPPORTED_HINT}",
            )
        # numpy may keep this as the array itself (np.asarray): it must not change later
        self.root.copied = self.root.copied or self.tracing.src()
        return np.asarray(value, dtype=dtype)

    # ---- Python operators, reflected ones too
    def __add__(self, o):
        return self.tracing.call(np.add, (self, o))

    def __radd__(self, o):
        return self.tracing.call(np.add, (o, self))

    def __sub__(self, o):
        return self.tracing.call(np.subtract, (self, o))

    def __rsub__(self, o):
        return self.tracing.call(np.subtract, (o, self))

    def __mul__(self, o):
        return self.tracing.call(np.multiply, (self, o))

    def __rmul__(self, o):
        return self.tracing.call(np.multiply, (o, self))

    def __truediv__(self, o):
        return self.tracing.call(np.true_divide, (self, o))

    def __rtruediv__(self, o):
        return self.tracing.call(np.true_divide, (o, self))

    def __pow__(self, o):
        return self.tracing.call(np.power, (self, o))

    def __rpow__(self, o):
        return self.tracing.call(np.power, (o, self))

    def __mod__(self, o):
        return self.tracing.call(np.remainder, (self, o))

    def __rmod__(self, o):
        return self.tracing.call(np.remainder, (o, self))

    def __matmul__(self, o):
        return self.tracing.call(np.matmul, (self, o))

    def __rmatmul__(self, o):
        return self.tracing.call(np.matmul, (o, self))

    def __neg__(self):
        return self.tracing.call(np.negative, (self,))

    def __pos__(self):
        return Tracer(self.node, self.tracing)  # +x is a new array of the same value

    def __abs__(self):
        return self.tracing.call(np.absolute, (self,))

    def __floordiv__(self, o):
        return self.tracing.call(np.floor_divide, (self, o))

    def __rfloordiv__(self, o):
        return self.tracing.call(np.floor_divide, (o, self))

    def __divmod__(self, o):
        return self.tracing.call(np.divmod, (self, o))

    def __rdivmod__(self, o):
        return self.tracing.call(np.divmod, (o, self))

    def __round__(self, ndigits=None):
        value = self.tracing.concrete(self.node)
        if value is not None:  # Python's round of a constant: an int without ndigits
            return round(value.item(), ndigits) if value.ndim == 0 else round(value, ndigits)
        return self.tracing.call(np.round, (self, ndigits or 0))

    # On masks (comparisons) these are numpy's logical and, or, xor and not
    def __and__(self, o):
        return self.tracing.call(np.bitwise_and, (self, o))

    def __rand__(self, o):
        return self.tracing.call(np.bitwise_and, (o, self))

    def __or__(self, o):
        return self.tracing.call(np.bitwise_or, (self, o))

    def __ror__(self, o):
        return self.tracing.call(np.bitwise_or, (o, self))

    def __xor__(self, o):
        return self.tracing.call(np.bitwise_xor, (self, o))

    def __rxor__(self, o):
        return self.tracing.call(np.bitwise_xor, (o, self))

    def __invert__(self):
        return self.tracing.call(np.invert, (self,))

    # In place: numpy writes into the array itself, so other names for it (and its
    # views) see the change. Scalars are immutable, and `s += t` just rebinds s.
    def __iadd__(self, o):
        return self.inplace(np.add, o)

    def __isub__(self, o):
        return self.inplace(np.subtract, o)

    def __imul__(self, o):
        return self.inplace(np.multiply, o)

    def __itruediv__(self, o):
        return self.inplace(np.true_divide, o)

    def __ipow__(self, o):
        return self.inplace(np.power, o)

    def __imatmul__(self, o):
        return self.inplace(np.matmul, o)

    def __ifloordiv__(self, o):
        return self.inplace(np.floor_divide, o)

    def __imod__(self, o):
        return self.inplace(np.remainder, o)

    def __iand__(self, o):
        return self.inplace(np.bitwise_and, o)

    def __ior__(self, o):
        return self.inplace(np.bitwise_or, o)

    def __ixor__(self, o):
        return self.inplace(np.bitwise_xor, o)

    def __lt__(self, o):
        return self.tracing.call(np.less, (self, o))

    def __le__(self, o):
        return self.tracing.call(np.less_equal, (self, o))

    def __gt__(self, o):
        return self.tracing.call(np.greater, (self, o))

    def __ge__(self, o):
        return self.tracing.call(np.greater_equal, (self, o))

    def __eq__(self, o):  # type: ignore[override]
        return self.tracing.call(np.equal, (self, o))

    def __ne__(self, o):  # type: ignore[override]
        return self.tracing.call(np.not_equal, (self, o))

    __hash__ = None  # type: ignore[assignment]

    # ---- indexing and assignment
    def key(self, key: Any) -> tuple[tuple, list[np.ndarray], list[np.ndarray]]:
        """(normalized key, index arrays, the positions it selects), errors at the user's line."""
        parts = tuple(
            self.tracing.index_value(k) for k in (key if isinstance(key, tuple) else (key,))
        )
        what = f"indexing a {self._node.dtype}{list(self.shape)} value"
        try:
            norm, arrays = normalize_key(parts if isinstance(key, tuple) else parts[0])
            selected = self.positions[real_key(norm, arrays)]  # numpy checks the key here
            norm = nonnegative(norm, self.shape)
        except (TypeError, IndexError, ValueError) as e:
            raise self.tracing.error(f"{what}: {e}") from None
        return norm, arrays, selected

    def __getitem__(self, key):
        if _runtime_indices(key, self.tracing):
            return Tracer(self.tracing.gather(self, key), self.tracing)  # a copy, as numpy's
        norm, arrays, selected = self.key(key)
        consts = self.tracing.index_arrays(arrays, key)
        node = self.tracing.apply("index", self.node, *consts, key=norm)
        return self.derived(
            node, selected, lambda: self.tracing.apply("index", self.node, *consts, key=norm)
        )

    def __setitem__(self, key, value):
        mask = self.tracing.traced_mask(key)
        if mask is not None:  # x[x < 0] = 0: the shape stays, so it is a np.where
            return self.assign_all(self.tracing.masked(self, mask, value))
        if _runtime_indices(key, self.tracing):
            raise self.tracing.error(
                "assignment at indices computed from the parameters (argsort, argmax, ...)",
                "build the result with np.take_along_axis or np.where instead",
            )
        if self.scalar:
            raise self.tracing.error(
                "assignment into an element of a scalar", "a scalar value has no elements to assign"
            )
        norm, arrays, selected = self.key(key)
        self.write(norm, arrays, np.asarray(selected), value)

    def write(self, key: tuple, arrays: list, selected: np.ndarray, value: Any) -> None:
        """numpy's `self[key] = value`, into the memory of `root`."""
        root, tracing = self.root, self.tracing
        if (
            isinstance(value, Tracer)
            and value.root is root
            and np.array_equal(value.positions, selected)
        ):
            # x[k] += v wrote through the view x[k] already; numpy then stores that view
            # back into x[k], which changes nothing
            return
        if root.copied is not None:
            raise tracing.error(
                f"writing into an array that numpy took a concrete copy of at line "
                f"{root.copied.line} (np.asarray or a function gradgen runs in numpy): the "
                "copy would not see the write",
                "write into the array before that line, or work on a copy",
            )
        if root.param is not None and root.param not in tracing.written:
            # the generated code writes into a copy (index_update copies): say so once
            tracing.written[root.param] = tracing.src()
        if not self.positions.flags.writeable:
            raise tracing.error("assignment into a read-only view (np.broadcast_to makes those)")
        if np.unique(selected).size != selected.size:
            raise tracing.error(
                "assignment with repeated indices: numpy does not define which value is kept",
                "to add up at repeated indices, use np.add.at(x, idx, v)",
            )
        v = tracing.value_node(value, root._node.dtype)
        if v.ndim > selected.ndim:  # numpy drops leading length-1 axes of the value
            lead = v.ndim - selected.ndim
            if any(d != 1 for d in v.shape[:lead]):
                raise tracing.error(
                    f"could not broadcast a value of shape {v.shape} into shape {selected.shape}"
                )
            v = tracing.apply("reshape", v, shape=v.shape[lead:])
        try:
            if np.broadcast_shapes(v.shape, selected.shape) != selected.shape:
                raise ValueError
        except ValueError:
            raise tracing.error(
                f"could not broadcast a value of shape {v.shape} into shape {selected.shape}"
            ) from None
        if self.base is not None:  # through a view: the same elements, addressed on the base
            key, arrays = key_of_positions(selected, root.shape)
        consts = tracing.index_arrays(arrays)
        root._node = tracing.apply("index_update", root.node, v, *consts, key=key)
        root.writes.append(selected.reshape(-1))

    def assign_all(self, value: "Tracer") -> None:
        """`self[...] = value` for an in-place operation's result."""
        if value.shape != self.shape:
            raise self.tracing.error(
                f"an in-place operation on an array of shape {self.shape} whose result has "
                f"shape {value.shape} (numpy: non-broadcastable output operand)",
                "assign the result to a new name instead",
            )
        node = value.node
        if self.base is None and self.param is None and node.dtype == self._node.dtype:
            self._node = node  # the whole array is new: no need to index
            self.writes.append(None)
            return
        self.write((Ellipsis,), [], self.positions, value)

    def inplace(self, ufunc, other) -> "Tracer":
        result = self.tracing.call(ufunc, (self, other))
        if self.scalar:
            return result
        self.assign_all(result)
        return self

    # ---- what would silently lose the trace, unless the value is a constant
    def __bool__(self):
        value = self.tracing.concrete(self.node)
        if value is None:
            raise self.tracing.error(
                "`if`, `while`, `and`, `or` or bool() on a traced value: the branch would depend "
                "on the parameters' values",
                BRANCH_HINT,
            )
        return bool(value)

    def __float__(self):
        value = self.tracing.concrete(self.node)
        if value is None:
            raise self.tracing.error(
                "float(), a math.* function, or storing into a numpy array (a[i] = t) on a "
                "traced value would drop it from the trace",
                "use the numpy function instead (np.exp, np.sqrt, ...); they work on scalars "
                f"too; {CREATE_HINT}",
            )
        return float(value)

    def __int__(self):
        value = self.tracing.concrete(self.node)
        if value is None:
            raise self.tracing.error("int() of a traced value has no gradient", BRANCH_HINT)
        return int(value)

    def __index__(self):
        value = self.tracing.concrete(self.node)
        if value is None:
            raise self.tracing.error(
                "a traced value used as an index or a count has no gradient", BRANCH_HINT
            )
        if value.ndim or not np.issubdtype(value.dtype, np.integer):
            raise self.tracing.error("only integer scalar arrays can be converted to an index")
        return int(value)

    # ---- array methods and properties: the numpy functions of the same name (see METHODS)
    def __getattr__(self, attr: str):
        if attr.startswith("_"):  # numpy's and Python's protocol probes
            raise AttributeError(attr)
        if attr in ("item", "tolist"):  # concrete Python values: constants only

            def concrete(*args):
                value = self.tracing.concrete(self.node)
                if value is None:
                    raise self.tracing.error(
                        f".{attr}() of a traced value would drop it from the trace", SUPPORTED_HINT
                    )
                return getattr(value, attr)(*args)

            return concrete
        if attr in IN_PLACE:  # x.sort(), x.fill(v): numpy writes into the array
            return functools.partial(IN_PLACE[attr], self)
        if attr == "astype":
            return self.astype
        if attr == "flat":  # x.flat[k]: the flattened view
            return self.tracing.call(np.ravel, (self,))
        if attr == "view":
            return self.view
        if attr == "compress":  # x.compress(condition) is np.compress(condition, x)
            return lambda condition, axis=None: self.tracing.call(
                np.compress, (condition, self), {"axis": axis}
            )
        fn = METHODS.get(attr)
        if fn is None:
            raise self.tracing.error(
                f"the array method or attribute .{attr} is not supported by gradgen", SUPPORTED_HINT
            )
        if attr in PROPERTIES:
            return self.tracing.call(fn, (self,))

        def method(*args, **kwargs):
            if attr in ("reshape", "transpose") and len(args) > 1:  # x.reshape(3, 4) too
                args = (args,)
            result = self.tracing.call(fn, (self, *args), kwargs)
            if attr == "flatten":  # np.ravel's value, but always a copy, never a view
                result = Tracer(result.node, self.tracing)
            return result

        return method

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True) -> "Tracer":
        """numpy's x.astype: a float as another float, a mask or an integer as a float
        (no gradient reaches a mask or an integer), a float as a mask (x != 0) or an
        integer (truncated: no gradient)."""
        tracing, node = self.tracing, self.node
        target = _DTYPE_OF_KIND.get((np.dtype(dtype).kind, np.dtype(dtype).itemsize))
        if target is None:
            raise tracing.error(
                f"x.astype({np.dtype(dtype)}): only float64, float32, bool and integer "
                "arrays are traced (complex numbers are not supported)"
            )
        if target == node.dtype:
            return self if copy is False else Tracer(node, tracing)
        if target == "bool":
            return tracing.call(np.not_equal, (self, 0))
        if target == "i64" and node.dtype in ("f64", "f32"):
            node = tracing.call(np.trunc, (self,)).node
        return Tracer(tracing.apply("astype", node, dtype=target), tracing)

    def sort(self, axis=-1, kind=None, order=None, **kwargs) -> None:
        """x.sort(): x's elements sorted in place."""
        self.assign_all(self.tracing.call(np.sort, (self,), dict(axis=axis, kind=kind, **kwargs)))

    def partition(self, kth, axis=-1, kind="introselect", order=None) -> None:
        self.assign_all(self.tracing.call(np.partition, (self, kth), dict(axis=axis)))

    def view(self, dtype=None, type=None) -> "Tracer":
        """x.view(): a new array object on the same memory (of the same dtype only)."""
        if (dtype is not None and np.dtype(dtype) != self.dtype) or type is not None:
            raise self.tracing.error("x.view() as another dtype or type is not supported")
        return self.tracing.call(np.reshape, (self, self.shape))

    def fill(self, value) -> None:
        """x.fill(v): every element set to v."""
        if self.scalar:
            raise self.tracing.error("fill() of a scalar", "a scalar value has no elements to fill")
        self.write((Ellipsis,), [], self.positions, value)


# numpy dtype (kind, item size) -> gradgen dtype, for x.astype
_DTYPE_OF_KIND = {
    ("f", 8): "f64",
    ("f", 4): "f32",
    ("b", 1): "bool",
    **{(kind, size): "i64" for kind in "iu" for size in (1, 2, 4, 8)},
}
# Methods that write into the array (and return None)
IN_PLACE = {"sort": Tracer.sort, "partition": Tracer.partition, "fill": Tracer.fill}

# Array methods and properties traced as the numpy function of the same meaning. A method
# works once its numpy function is in the op table.
METHODS = {
    name: getattr(np, name)
    for name in (
        "sum mean max min prod reshape dot clip transpose ravel squeeze swapaxes cumsum round "
        "std var copy diagonal trace repeat take argsort argmax argmin cumprod ptp any all "
        "nonzero conj conjugate argpartition real imag searchsorted choose put"
    ).split()
}
METHODS.update({"flatten": np.ravel, "T": np.transpose})
if hasattr(np, "matrix_transpose"):  # numpy >= 2
    METHODS["mT"] = np.matrix_transpose
PROPERTIES = {"T", "mT", "real", "imag"}
# Functions whose result may be a view of their argument (numpy decides which, per call).
VIEWS = {
    getattr(np, name, np.transpose)
    for name in (
        "reshape ravel squeeze expand_dims transpose swapaxes moveaxis matrix_transpose "
        "broadcast_to split array_split atleast_1d atleast_2d atleast_3d flip fliplr flipud "
        "rot90 diagonal rollaxis real real_if_close hsplit vsplit dsplit unstack"
    ).split()
}
CREATE_HINT = (
    "to fill an array with traced values, create it inside the traced function with "
    "np.zeros / np.ones / np.empty / np.full (gradgen traces those), or build it with "
    "np.array([...]) / np.stack / np.concatenate"
)
MASK_HINT = (
    "keep the shape and select with np.where(mask, x, 0.0) (then sum or multiply); "
    "a constant numpy mask, or integer indices, work too"
)


def numpy_name(fn: Any) -> str:
    """How the user wrote a numpy function: np.sum, np.linalg.norm, np.fft.fft."""
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, np.ufunc):  # np.add.reduce
        return f"np.{owner.__name__}.{fn.__name__}"
    module = getattr(fn, "__module__", None) or "numpy"
    sub = module[len("numpy") :] if module.startswith("numpy.") and "._" not in module else ""
    return f"np{sub}.{getattr(fn, '__name__', fn)}"


def _nodes_in(obj: Any) -> list[Node]:
    if isinstance(obj, Node):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [n for o in obj for n in _nodes_in(o)]
    return []


def _runtime_indices(key: Any, tracing: "Tracing") -> bool:
    """Whether the key holds integers computed at run time (argsort, argmax): traced
    integer values that are not constants."""
    return any(
        isinstance(k, Tracer) and k.dtype.kind in "iu" and tracing.concrete(k.node) is None
        for k in (key if isinstance(key, tuple) else (key,))
    )


def _holds_tracer(obj: Any) -> bool:
    if isinstance(obj, Tracer):
        return True
    return isinstance(obj, (list, tuple)) and any(_holds_tracer(o) for o in obj)


class Scope:
    """A graph being traced: the function's, or a region body's with the values it reads
    from the enclosing graph (`outer`, one parameter each, after its own parameters)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.captured: dict[int, Node] = {}  # enclosing node id -> its parameter here
        self.outer: list[Node] = []

    def capture(self, node: Node) -> Node:
        p = self.captured.get(node.id)
        if p is None:
            p = self.graph.param(node.name or "v", node.shape, node.dtype, node.src)
            self.captured[node.id] = p
            self.outer.append(node)
        return p


class Tracing:
    """One trace of one function: the graph being built and where the user's code lives."""

    def __init__(self, path: Path, module_globals: dict[str, Any]):
        self.path = str(path.resolve())
        self.file = path.name
        self.graph = Graph()
        self.root = Scope(self.graph)
        self.scopes: list[Scope] = []  # the region bodies being traced, innermost last
        self._line_tables: dict[int, tuple[list[int], list[int | None], types.CodeType]] = {}
        self._srcs: dict[int, Src] = {}  # one Src a line, shared by its nodes
        self.in_front = False  # running an op's front, whose nodes all take one line
        self.written: dict[str, Src | None] = {}  # parameters the function writes into
        # user's module-level arrays, so constants keep the user's names
        self.global_names = {
            id(v): k
            for k, v in module_globals.items()
            if isinstance(v, np.ndarray) and not k.startswith("__")
        }

    # ---- regions: bodies traced into graphs of their own (see regions.py)
    def capture(self, node: Node) -> Node:
        """`node`, made in an enclosing graph, as the body being traced sees it: a constant
        is copied in; any other value enters each body on the way as a parameter."""
        if node.op == "const":
            copy = self.graph.const(node.value, node.dtype)
            copy.name = copy.name or node.name
            return copy
        chain = [self.root, *self.scopes]
        owner = next((k for k, s in enumerate(chain) if node._graph is s.graph._ref), None)
        if owner is None:
            raise self.error(
                "a value computed inside a branch or loop that depends on the parameters is "
                "used outside it (kept in a list or an array from outside?)",
                "give it a name that the branch or loop assigns, and use that name after it",
            )
        for scope in chain[owner + 1 :]:
            node = scope.capture(node)
        return node

    # ---- errors at the user's line
    def src(self) -> Src | None:
        frame = sys._getframe(1)
        while frame is not None:
            code = frame.f_code
            if code.co_filename == self.path:
                return self._src_at(code, frame.f_lasti)
            frame = frame.f_back
        return None

    def _src_at(self, code: types.CodeType, offset: int) -> Src:
        """The line of bytecode `offset` in `code`. `frame.f_lineno` would give it too, but
        outside a debugger it scans the function's line table from the start: quadratic
        over a long unrolled function. The table is read once per function instead."""
        table = self._line_tables.get(id(code))  # a code object hashes its whole body
        if table is None:
            ranges = list(code.co_lines())
            starts, lines = [r[0] for r in ranges], [r[2] for r in ranges]
            table = self._line_tables[id(code)] = (starts, lines, code)  # keeps its id unique
        k = bisect.bisect_right(table[0], offset) - 1
        line = table[1][k] if k >= 0 else None
        line = code.co_firstlineno if line is None else line
        src = self._srcs.get(line)
        if src is None:
            src = self._srcs[line] = Src(self.file, line)
        return src

    def error(self, message: str, hint: str | None = None) -> GradgenError:
        return GradgenError(message, self.src(), hint)

    def unsupported(self, what: str) -> Any:
        raise self.error(f"{what} is not supported by gradgen", SUPPORTED_HINT)

    # ---- building
    def lift(self, x: Any) -> Any:
        """A Tracer's node, a constant node for an array; anything else as it is."""
        if isinstance(x, Tracer):
            return x.node
        if isinstance(x, complex) or (
            isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind == "c"
        ):
            raise self.error(
                "complex numbers are not supported: gradgen differentiates real-valued code",
                "write the real and imaginary parts as two real arrays",
            )
        if isinstance(x, (bool, int, float, np.generic)) and np.ndim(x) == 0:
            return x  # Python numbers stay as they are: weakly typed constants or attributes
        if isinstance(x, np.ndarray):
            row = self._row_of_global(x)
            if row is not None:  # XS[t] of a module constant: emit it as XS[t], not a copy
                return self.graph.apply("index", self.lift(row[0]), key=(row[1],))
            node = self.graph.const(
                x, dtype_of(np.asarray(x)) if np.asarray(x).dtype != np.float64 else None
            )
            if node.name is None and id(x) in self.global_names:
                node.name = self.global_names[id(x)]
            return node
        if isinstance(x, (list, tuple)):
            return type(x)(self.lift(v) for v in x)  # stack, concatenate, shapes
        return x

    def _row_of_global(self, x: np.ndarray) -> tuple[np.ndarray, int] | None:
        """(G, t) when x is the view G[t] of a user's module-level array G."""
        base = x.base
        if base is None or id(base) not in self.global_names or base.ndim != x.ndim + 1:
            return None
        if x.dtype != base.dtype or x.shape != base.shape[1:] or x.strides != base.strides[1:]:
            return None
        offset = x.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        if base.strides[0] <= 0 or offset % base.strides[0]:
            return None
        return base, offset // base.strides[0]

    def value_node(self, value: Any, dtype: str) -> Node:
        """A value to store into an array of `dtype`, as a node."""
        if isinstance(value, (list, tuple)):
            value = self.call(np.array, (value,)) if _holds_tracer(value) else np.asarray(value)
        lifted = self.lift(value)
        if isinstance(lifted, Node):
            return lifted
        return self.graph.const(np.asarray(lifted, dtype=np.float64), dtype)

    def index_value(self, k: Any) -> Any:
        """A part of an index key: a traced part must be a constant (and not a mask)."""
        if not isinstance(k, Tracer):
            return k
        value = self.concrete(k.node)
        if value is not None:
            return value
        if k.dtype == np.bool_:
            raise self.error(
                "indexing with a traced boolean mask (x[x > 0]): the result's shape would "
                "depend on the parameters' values",
                MASK_HINT,
            )
        raise self.error("indexing with a traced value: indices have no gradient", BRANCH_HINT)

    def traced_mask(self, key: Any) -> "Tracer | None":
        """The key when it is one boolean mask computed from the parameters."""
        if isinstance(key, Tracer) and key.dtype == np.bool_ and self.concrete(key.node) is None:
            return key
        return None

    def masked(self, x: Tracer, mask: Tracer, value: Any) -> Tracer:
        """x with `value` where `mask` holds: numpy's x[mask] = value, for a mask over x's
        leading axes and a value that broadcasts to one element (or row) of them."""
        rest = x.shape[mask.ndim :]
        if x.shape[: mask.ndim] != mask.shape:
            raise self.error(
                f"assignment through a boolean mask of shape {mask.shape} into an array of "
                f"shape {x.shape}: the mask must match the array's leading axes"
            )
        shape = value.shape if isinstance(value, Tracer) else np.shape(value)
        try:
            fits = np.broadcast_shapes(shape, rest) == rest
        except ValueError:
            fits = False
        if not fits:
            raise self.error(
                "assignment through a mask computed from the parameters (x[x > 0] = v) of a "
                f"value of shape {shape}: where its elements go would depend on how many "
                "elements the mask selects",
                "assign one value (or one row), or use np.where(mask, v, x)",
            )
        if x.dtype.kind not in "fb":
            raise self.error("assignment through a traced mask into an integer array")
        wide = self.call(np.reshape, (mask, mask.shape + (1,) * len(rest)))
        return self.call(np.where, (wide, value, x))

    def index_arrays(self, arrays: list[np.ndarray], key: Any = None) -> list[Node]:
        """Index arrays as integer constants, named after the user's global when it is one."""
        named = [
            k for k in (key if isinstance(key, tuple) else (key,)) if isinstance(k, np.ndarray)
        ]
        names = [self.global_names.get(id(k)) for k in named] if len(named) == len(arrays) else []
        nodes = []
        for a, name in zip(arrays, names + [None] * len(arrays)):
            node = self.graph.const(a, "i64")
            node.name = node.name or name or "IDX"
            nodes.append(node)
        return nodes

    def gather(self, x: Tracer, key: Any) -> Node:
        """x[key] where parts of the key are integers computed at run time (argsort,
        argmax): they enter the index op as array inputs; numpy checks the key on
        stand-ins of their shapes."""
        parts = key if isinstance(key, tuple) else (key,)
        norm: list = []
        inputs: list = []
        stand_ins: list = []
        for k in parts:
            if isinstance(k, Tracer) and k.dtype.kind in "iu" and self.concrete(k.node) is None:
                norm.append((ARR, len(inputs)))
                inputs.append(k.node)
                stand_ins.append(np.zeros(k.shape, dtype=np.int64))
                continue
            one, arrays = normalize_key((self.index_value(k),))
            for entry in one:
                if isinstance(entry, tuple) and entry[0] == ARR:
                    entry = (ARR, len(inputs))
                    inputs.append(None)
                    stand_ins.append(arrays.pop(0))
                norm.append(entry)
        consts = iter(self.index_arrays([a for a, n in zip(stand_ins, inputs) if n is None]))
        inputs = [next(consts) if n is None else n for n in inputs]
        try:
            x.positions[real_key(tuple(norm), stand_ins)]  # numpy checks the key here
        except (TypeError, IndexError, ValueError) as e:
            raise self.error(f"indexing a {x.node.dtype}{list(x.shape)} value: {e}") from None
        return self.apply("index", x.node, *inputs, key=nonnegative(tuple(norm), x.shape))

    def wrap(self, x: Any) -> Any:
        return Tracer(x, self) if isinstance(x, Node) else x

    def apply(self, op: str, *inputs: Any, **attrs: Any) -> Node:
        if not self.in_front:  # inside a front the user's line is known already
            self.graph.src = self.src()
        try:
            return self.graph.apply(op, *inputs, **attrs)
        except GradgenError:
            raise
        except (ValueError, TypeError, IndexError) as e:
            shapes = " and ".join(str(list(i.shape)) for i in inputs if isinstance(i, Node))
            raise self.error(f"{op} of shapes {shapes}: {e}") from None

    def call(self, fn: Any, args: tuple, kwargs: dict | None = None) -> Any:
        """Trace `fn(*args, **kwargs)` through the op table."""
        kwargs = dict(kwargs or {})
        if fn not in SEQUENCES and any(_scalar_list(a) for a in args):  # x * [1.0, a]
            args = tuple(self.call(np.array, (a,)) if _scalar_list(a) else a for a in args)
        front = ops.NUMPY.get(fn)
        if front is None:
            return self.fallback(numpy_name(fn), fn, args, kwargs)
        if kwargs.get("out") is not None and not getattr(front, "raw", False):
            out = kwargs.pop("out")  # np.clip(x, 0, 1, out=y): the result written into y
            return self.write_out(out, self.call(fn, args, kwargs), numpy_name(fn))
        if getattr(front, "raw", False):  # it writes into its arguments: the user's tracers
            self.graph.src = self.src()
            return front(args, kwargs, self)
        out = self.run_front(fn, front, args, kwargs)
        if fn in VIEWS:
            return self.views(fn, args, kwargs, out)
        if isinstance(out, (list, tuple)):
            return type(out)(self.wrap(o) for o in out)
        return self.wrap(out)

    def write_out(self, out: Any, result: Any, name: str) -> Any:
        """numpy's out=: the result written into the array `out` (a traced one)."""
        target = out[0] if isinstance(out, tuple) and len(out) == 1 else out
        if not isinstance(target, Tracer):
            raise self.error(
                f"an in-place update of a numpy array with a traced value (a += t, or "
                f"{name}(..., out=a)) would drop the value from the trace",
                f"{CREATE_HINT}, or assign the result to a new name",
            )
        if not isinstance(result, Tracer):
            result = self.wrap(self.value_node(result, target.node.dtype))
        target.assign_all(result)
        return target

    def run_front(self, fn: Any, front, args: tuple, kwargs: dict) -> Any:
        """The front's node(s) for `fn(*args, **kwargs)`, with errors at the user's line."""
        self.graph.src = self.src()
        lifted = tuple([self.lift(a) for a in args])
        named = {k: v.node if isinstance(v, Tracer) else v for k, v in kwargs.items()}
        outer = self.in_front
        self.in_front = True
        try:
            return front(lifted, named, self)
        except GradgenError:
            raise
        except (ValueError, TypeError, IndexError) as e:
            shapes = " and ".join(str(list(a.shape)) for a in _nodes_in(lifted))
            raise self.error(f"{numpy_name(fn)} of shapes {shapes}: {e}") from None
        finally:
            self.in_front = outer

    def views(self, fn: Any, args: tuple, kwargs: dict, out: Any) -> Any:
        """Wrap `fn`'s result(s): views where numpy's result on the positions is one."""
        sources = [a for a in args if isinstance(a, Tracer)]
        try:
            probed = fn(*(a.positions if isinstance(a, Tracer) else a for a in args), **kwargs)
        except Exception:  # numpy accepts what the front did; if not, results are copies
            probed = None
        many = isinstance(out, (list, tuple))
        outs, probes = (list(out), list(probed or ())) if many else ([out], [probed])
        front = ops.NUMPY[fn]
        result = []
        for i, node in enumerate(outs):
            p = probes[i] if i < len(probes) else None
            src = next(
                (
                    s
                    for s in sources
                    if isinstance(p, np.ndarray) and np.may_share_memory(p, s.root.positions)
                ),
                None,
            )
            if src is None or not isinstance(node, Node):
                result.append(self.wrap(node))
                continue

            def rederive(i=i):
                again = self.run_front(fn, front, args, kwargs)
                return again[i] if many else again

            result.append(Tracer(node, self, base=src.root, positions=p, rederive=rederive))
        return type(out)(result) if many else result[0]

    def fallback(self, what: str, fn: Any, args: tuple, kwargs: dict) -> Any:
        """A function gradgen does not trace runs in numpy when its arguments are constants."""
        seen: list[tuple[Tracer, np.ndarray]] = []
        try:
            values = self.concrete_args(args, seen), self.concrete_args(kwargs, seen)
        except LookupError:
            return self.unsupported(what)
        before = [v.copy() for _, v in seen]
        result = fn(*values[0], **values[1])
        for (t, v), b in zip(seen, before):
            if not np.array_equal(v, b, equal_nan=True):
                raise self.error(f"{what} writes into its argument, which gradgen does not trace")
            if isinstance(result, np.ndarray) and np.may_share_memory(result, v):
                t.root.copied = t.root.copied or self.src()  # the result views a copy
        return result

    def concrete_args(self, obj: Any, seen: list) -> Any:
        """`obj` with its Tracers as their constant values (LookupError if one is not)."""
        if isinstance(obj, Tracer):
            value = self.concrete(obj.node)
            if value is None:
                raise LookupError
            seen.append((obj, value))
            return value
        if isinstance(obj, dict):
            return {k: self.concrete_args(v, seen) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.concrete_args(v, seen) for v in obj)
        return obj

    def concrete(self, node: Node) -> np.ndarray | None:
        """The value of a node that does not depend on the parameters (else None)."""
        seen: dict[int, Node] = {}
        stack = [node]
        while stack:
            n = stack.pop()
            if n.id in seen:
                continue
            if n.op == "param":
                return None
            seen[n.id] = n
            stack.extend(n.inputs)
        env = evaluate(self.graph, (), sorted(seen.values(), key=lambda n: n.id))
        return np.array(env[node.id])  # a copy: a constant node's value must never change

    def add_at(self, x: Any, key: Any, value: Any = None) -> None:
        """np.add.at(x, key, value): x += value at key, repeated indices adding up."""
        if not isinstance(x, Tracer):
            raise self.error(
                "np.add.at into a numpy array with a traced value would drop it from the trace",
                CREATE_HINT,
            )
        norm, arrays, selected = x.key(key)
        v = self.value_node(1.0 if value is None else value, x.node.dtype)
        v = (
            self.apply("broadcast_to", v, shape=np.shape(selected))
            if v.shape != np.shape(selected)
            else v
        )
        added = self.apply("scatter", v, *self.index_arrays(arrays, key), key=norm, shape=x.shape)
        x.assign_all(self.wrap(self.apply("add", x.node, added)))

    def shim(self, fn: Any):
        """The user's np.<fn> while tracing: creating an array from traced values traces."""

        @functools.wraps(fn)
        def traced(*args, **kwargs):
            if fn in create.NO_COPY + (np.array,) and not _holds_tracer(args[:1]):
                return fn(*args, **kwargs)  # constants stay plain numpy arrays
            if fn in create.NO_COPY and isinstance(args[0], Tracer):
                if kwargs.get("dtype") in (None, args[0].dtype):
                    return args[0]  # np.asarray of an array is that array
            return self.call(fn, args, kwargs)

        return traced

    # Fronts call back `apply` and `const` on what they are given, graph or tracing alike.
    def const(self, value: Any, dtype: str | None = None) -> Node:
        return self.graph.const(value, dtype)

    @property
    def float_dtype(self) -> str:
        return self.graph.float_dtype


class _NumpyProxy(types.ModuleType):
    """numpy as the user's function sees it while traced: array creation traces."""

    def __init__(self, tracing: Tracing):
        super().__init__("numpy", np.__doc__)
        self._tracing = tracing
        for fn in create.SHIMS:
            setattr(self, fn.__name__, tracing.shim(fn))
        self.r_ = _Concatenator(tracing, np.r_, columns=False)
        self.c_ = _Concatenator(tracing, np.c_, columns=True)
        self.vectorize = functools.partial(_Vectorized, tracing)
        self.require = tracing.shim(np.require)  # (numpy's makes a concrete array first)

    def __getattr__(self, name: str) -> Any:
        value = _proxied(getattr(np, name), self._tracing)
        setattr(self, name, value)  # looked up once per trace
        return value


class _Vectorized:
    """np.vectorize(pyfunc) as the user's function sees it while traced: called on traced
    arrays, pyfunc runs on each element (a traced scalar) and the results are packed into
    an array of the arguments' broadcast shape, as numpy's loop would."""

    def __init__(self, tracing: Tracing, pyfunc: Any = None, *args: Any, **kwargs: Any):
        if isinstance(pyfunc, np.vectorize):  # one made before tracing (a decorator)
            self._numpy = pyfunc
        else:
            self._numpy = np.vectorize(pyfunc, *args, **kwargs)
        self._tracing = tracing
        functools.update_wrapper(self, self._numpy.pyfunc)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not any(_holds_tracer(a) for a in (*args, *kwargs.values())):
            return self._numpy(*args, **kwargs)
        tracing, numpy = self._tracing, self._numpy
        if numpy.signature is not None or kwargs or numpy.excluded:
            raise tracing.error(
                "np.vectorize with signature=, excluded= or keyword arguments, called on "
                "traced values, is not supported",
                "call the function on whole arrays (numpy functions work element by element)",
            )
        args = [tracing.call(np.array, (a,)) if _holds_tracer(a) else a for a in args]
        shape = np.broadcast_shapes(
            *(np.shape(a) if not isinstance(a, Tracer) else a.shape for a in args)
        )
        wide = [
            (
                tracing.call(np.broadcast_to, (a, shape))
                if isinstance(a, Tracer)
                else np.broadcast_to(a, shape)
            )
            for a in args
        ]
        results = [numpy.pyfunc(*(a[index] for a in wide)) for index in np.ndindex(*shape)]
        if results and isinstance(results[0], tuple):
            return tuple(
                _packed(tracing, [r[k] for r in results], shape) for k in range(len(results[0]))
            )
        return _packed(tracing, results, shape)


def _packed(tracing: Tracing, values: list, shape: tuple) -> Any:
    if not any(isinstance(v, Tracer) for v in values):
        return np.array(values, dtype=np.float64).reshape(shape)
    return tracing.call(np.reshape, (tracing.call(np.array, (values,)), shape))


class _Concatenator:
    """np.r_[a, b, ...] and np.c_[a, b, ...] of traced values: numpy's own turn each item
    into a concrete array. Items are joined end to end (r_) or as columns (c_)."""

    def __init__(self, tracing: Tracing, numpy: Any, columns: bool):
        self._tracing, self._numpy, self._columns = tracing, numpy, columns

    def __getitem__(self, key: Any) -> Any:
        items = key if isinstance(key, tuple) else (key,)
        if not any(_holds_tracer(item) for item in items):
            return self._numpy[key]
        tracing, name = self._tracing, "np.c_" if self._columns else "np.r_"
        if any(isinstance(item, str) for item in items):
            raise tracing.error(
                f"{name}[...] with a directive string is not supported on traced values",
                "use np.concatenate / np.stack with axis=",
            )
        parts = []
        for item in items:
            if isinstance(item, slice):
                item = np.r_[item]
            elif isinstance(item, (list, tuple)) and _holds_tracer(item):
                item = tracing.call(np.array, (item,))
            ndim = item.ndim if isinstance(item, Tracer) else np.ndim(item)
            if self._columns and ndim < 2:
                item = tracing.call(np.reshape, (item, (-1, 1)))
            elif ndim == 0:
                item = tracing.call(np.reshape, (item, (1,)))
            parts.append(item)
        return tracing.call(np.concatenate, (parts,), {"axis": -1 if self._columns else 0})


class _Ufunc:
    """A numpy ufunc as the user's function sees it while traced: a list of traced values
    is an array, as for numpy's other functions (np.exp([a, b]),
    np.maximum.reduce([a, b, c])); numpy would turn it into a concrete array first."""

    def __init__(self, ufunc: np.ufunc, tracing: Tracing):
        self._ufunc, self._tracing = ufunc, tracing
        self.__name__ = ufunc.__name__
        self.__doc__ = ufunc.__doc__

    def _arrays(self, args: tuple) -> tuple:
        return tuple(self._tracing.call(np.array, (a,)) if _scalar_list(a) else a for a in args)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._ufunc(*self._arrays(args), **kwargs)

    def reduce(self, array: Any, *args: Any, **kwargs: Any) -> Any:
        return self._ufunc.reduce(*self._arrays((array,)), *args, **kwargs)

    def accumulate(self, array: Any, *args: Any, **kwargs: Any) -> Any:
        return self._ufunc.accumulate(*self._arrays((array,)), *args, **kwargs)

    def reduceat(self, array: Any, *args: Any, **kwargs: Any) -> Any:
        return self._ufunc.reduceat(*self._arrays((array,)), *args, **kwargs)

    def outer(self, a: Any, b: Any, **kwargs: Any) -> Any:
        return self._ufunc.outer(*self._arrays((a, b)), **kwargs)

    def __getattr__(self, name: str) -> Any:  # at, nin, nout, identity, ...
        return getattr(self._ufunc, name)

    def __repr__(self) -> str:
        return repr(self._ufunc)


class _SubmoduleProxy(types.ModuleType):
    """np.linalg as the user's function sees it: its functions take lists as arrays."""

    def __init__(self, module: types.ModuleType, tracing: Tracing):
        super().__init__(module.__name__, module.__doc__)
        self._module, self._tracing = module, tracing

    def __getattr__(self, name: str) -> Any:
        value = _proxied(getattr(self._module, name), self._tracing)
        setattr(self, name, value)
        return value


def _proxied(value: Any, tracing: Tracing) -> Any:
    if value is np.linalg:
        return _SubmoduleProxy(value, tracing)
    if isinstance(value, np.ufunc):
        return _Ufunc(value, tracing)
    if callable(value) and not isinstance(value, (np.ufunc, type)) and value in ops.NUMPY:
        return _lists_as_arrays(value, tracing)
    return value


# Functions whose list arguments are sequences of arrays, which numpy's dispatch looks
# inside: a list of traced scalars stays a list for them (np.stack([a, b]) is a pack).
SEQUENCES = {
    fn
    for fn in (
        np.array,
        np.stack,
        np.concatenate,
        np.vstack,
        np.hstack,
        np.dstack,
        np.column_stack,
        np.block,
        np.select,
        np.linalg.multi_dot,
        getattr(np, "row_stack", None),
    )
    if fn is not None
}


def _scalar_list(obj: Any) -> bool:
    """A (nested) list or tuple of numbers and traced values, with at least one traced:
    numpy does not look inside lists for traced values, so np.sum([1, a * a]) or
    np.mean([x, y], axis=0) would otherwise turn the tracer into a concrete array. numpy
    reads such a list as np.array(list), which traces."""
    if not isinstance(obj, (list, tuple)) or not obj:
        return False
    traced = False
    stack = list(obj)
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, Tracer):
            traced = True
        elif not isinstance(item, (int, float, np.integer, np.floating)):
            return False
    return traced


def _lists_as_arrays(fn: Any, tracing: Tracing) -> Any:
    """The user's np.<fn>, taking lists of traced scalars and numbers as arrays."""
    if fn in SEQUENCES:  # numpy looks inside their lists, and they take them as they are
        return fn

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if any(_scalar_list(a) for a in args):
            args = tuple(tracing.call(np.array, (a,)) if _scalar_list(a) else a for a in args)
        return fn(*args, **kwargs)

    return call


def _swap_numpy(namespace: dict, tracing: Tracing) -> dict:
    """Point the user's `np` (and names imported from numpy) at a proxy, `math` (and its
    functions imported by name) at one whose functions take traced values, and Python's
    max and min at ones that do; returns the old values (ABSENT: none)."""
    proxy = _NumpyProxy(tracing)
    maths = _MathProxy(tracing)
    saved = {}
    for name, value in list(namespace.items()):
        if value is np:
            saved[name], namespace[name] = value, proxy
        elif value is math:
            saved[name], namespace[name] = value, maths
        elif any(value is fn for fn in create.SHIMS):
            saved[name], namespace[name] = value, getattr(proxy, value.__name__)
        elif isinstance(value, np.vectorize):  # @np.vectorize on a module-level function
            saved[name], namespace[name] = value, _Vectorized(tracing, value)
        elif callable(value) and getattr(math, getattr(value, "__name__", ""), None) is value:
            saved[name], namespace[name] = value, getattr(maths, value.__name__)
    for name, builtin, ufunc, reduction in (
        ("max", max, np.maximum, np.max),
        ("min", min, np.minimum, np.min),
    ):
        if name not in namespace:
            saved[name] = ABSENT
            namespace[name] = _extreme(builtin, ufunc, reduction, tracing)
    return saved


ABSENT = object()  # a name the user's module did not have before tracing


def _restore(namespace: dict, saved: dict) -> None:
    for name, value in saved.items():
        if value is ABSENT:
            namespace.pop(name, None)
        else:
            namespace[name] = value


def _extreme(builtin: Any, ufunc: np.ufunc, reduction: Any, tracing: Tracing) -> Any:
    """Python's max (or min) as the user's function sees it while traced: of traced
    scalars, np.maximum of them (ties split the gradient, as np.maximum's do); of a traced
    array, its maximum along the first axis (what iterating over it compares)."""

    @functools.wraps(builtin)
    def extreme(*args, **kwargs):
        items = args[0] if len(args) == 1 else args
        if len(args) == 1 and not isinstance(items, Tracer) and not kwargs:
            items = list(items)  # a generator is read once
            args = (items,)
        traced = isinstance(items, Tracer) or any(isinstance(v, Tracer) for v in items)
        if kwargs or not traced:  # key=, default=: Python's own
            return builtin(*args, **kwargs)
        if isinstance(items, Tracer):
            return reduction(items, axis=0) if items.ndim else builtin(*args)
        if any(np.size(v) > 1 for v in items if isinstance(v, Tracer)):
            raise tracing.error(
                f"{builtin.__name__}() of arrays compares them as truth values, which numpy "
                "refuses for arrays of more than one element",
                f"for the element-wise {builtin.__name__}imum, use np.{ufunc.__name__}(a, b)",
            )
        return functools.reduce(ufunc, items)

    return extreme


# math.<name> -> the numpy function computing it on a traced value
MATH = {
    name: getattr(np, numpy or name)
    for name, numpy in (
        ("sin", None),
        ("cos", None),
        ("tan", None),
        ("asin", "arcsin"),
        ("acos", "arccos"),
        ("atan", "arctan"),
        ("atan2", "arctan2"),
        ("sinh", None),
        ("cosh", None),
        ("tanh", None),
        ("asinh", "arcsinh"),
        ("acosh", "arccosh"),
        ("atanh", "arctanh"),
        ("exp", None),
        ("exp2", None),
        ("expm1", None),
        ("log1p", None),
        ("log2", None),
        ("log10", None),
        ("sqrt", None),
        ("cbrt", None),
        ("pow", "power"),
        ("fabs", None),
        ("copysign", None),
        ("degrees", None),
        ("radians", None),
        ("fmod", None),
        ("floor", None),
        ("ceil", None),
        ("trunc", None),
        ("isnan", None),
        ("isinf", None),
        ("isfinite", None),
    )
}


def _math_log(x, base=None):
    return np.log(x) if base is None else np.log(x) / np.log(base)


def _math_hypot(*coordinates):
    return np.sqrt(sum(c * c for c in coordinates))


def _math_fsum(iterable):
    return sum(iterable)


def _math_prod(iterable, *, start=1):
    return functools.reduce(np.multiply, iterable, start)


MATH.update(log=_math_log, hypot=_math_hypot, fsum=_math_fsum, prod=_math_prod)


class _MathProxy(types.ModuleType):
    """The math module as the user's function sees it while traced: a function of a
    traced value is the numpy function of the same meaning (math.exp(t) is np.exp(t));
    of constants it is math's own."""

    def __init__(self, tracing: Tracing):
        super().__init__("math", math.__doc__)
        self._tracing = tracing

    def __getattr__(self, name: str) -> Any:
        real = getattr(math, name)
        traced = MATH.get(name)
        if traced is None:
            return real
        tracing = self._tracing

        @functools.wraps(real)
        def call(*args, **kwargs):
            args = tuple(list(a) if isinstance(a, types.GeneratorType) else a for a in args)
            values = list(args) + [v for a in args if isinstance(a, (list, tuple)) for v in a]
            if not any(isinstance(a, Tracer) and tracing.concrete(a.node) is None for a in values):
                return real(*args, **kwargs)
            return traced(*args, **kwargs)

        setattr(self, name, call)
        return call


class _Namer:
    """Names nodes after the user's variables, through the hooks that load compiled into
    the user's functions: after `name = ...` the value bound to `name` takes that name, and
    when a function returns, each of its locals still unnamed takes its local's name (a
    helper's parameters, loop variables, unpacked tuples)."""

    def bound(self, name: str, value: Any) -> Any:
        if isinstance(value, Tracer):
            node = value._node
            if node.name is None and node.op not in ("const", "param"):
                node.name = name
        return value

    def returning(self, value: Any) -> Any:
        if isinstance(value, flow.Undefined):  # returned after a branch that left it unset
            frame = sys._getframe(1)
            raise GradgenError(
                value.why or f"{value.name!r} is returned but never assigned",
                Src(Path(frame.f_code.co_filename).name, frame.f_lineno),
            )
        for name, local in sys._getframe(1).f_locals.items():
            if name.startswith("__gg_"):
                continue  # (control flow's own names: see flow.py)
            node = local._node if isinstance(local, Tracer) else None
            if node is not None and node.name is None and node.op != "const":
                node.name = name
        return value


def trace_function(loaded: Loaded, spec: FunctionSpec) -> Graph:
    from . import regions  # (its hooks build on this module's Tracer)

    """Run `spec.fn` on Tracers for its parameters; the graph's one output is its return value."""
    tracing = Tracing(loaded.path, vars(loaded.module))
    graph = tracing.graph
    if spec.params and all(p.dtype == "f32" for p in spec.params):
        graph.float_dtype = "f32"
    tracers = [
        Tracer(graph.param(p.name, p.shape, p.dtype, spec.src), tracing, param=p.name)
        for p in spec.params
    ]
    namer = _Namer()
    saved = _swap_numpy(spec.fn.__globals__, tracing)
    hooks = {BOUND: namer.bound, RETURNING: namer.returning}
    hooks.update(regions.Flow(tracing, loaded.loops).hooks())
    saved.update({k: spec.fn.__globals__.get(k) for k in hooks})
    spec.fn.__globals__.update(hooks)
    try:
        result = spec.fn(*tracers)
    except GradgenError:
        raise
    except RecursionError:
        raise GradgenError(f"{spec.name} recursed too deeply while tracing", spec.src) from None
    except Exception as e:
        src = user_frame_src(e.__traceback__, loaded.path) or spec.src
        if isinstance(e, ValueError) and "setting an array element with a sequence" in str(e):
            # numpy's message when a traced scalar is stored into a numpy array: a[i] = t
            raise GradgenError(
                "storing a traced value into a numpy array (a[i] = t) would drop it from the trace",
                src,
                CREATE_HINT,
            ) from None
        raise GradgenError(
            f"{spec.name} raised {type(e).__name__} while tracing: {e}",
            src,
            "the function runs once on stand-ins of its parameters' shapes; " + SUPPORTED_HINT,
        ) from None
    finally:
        _restore(spec.fn.__globals__, saved)
    graph.outputs = [_output_node(tracing, spec, result)]
    graph.notes = [
        f"{src or spec.src}: {spec.name} writes into its parameter {name!r}: the generated "
        "code works on a copy, so the caller's array is not modified (numpy's would be)"
        for name, src in tracing.written.items()
    ]
    return graph


def _output_node(tracing: Tracing, spec: FunctionSpec, result: Any) -> Node:
    if isinstance(result, Tracer):
        if result.node.dtype == "bool":
            raise GradgenError(
                f"{spec.name} returns a comparison mask, which has no gradient", spec.src
            )
        return result.node
    if isinstance(result, (tuple, list)) or result is None:
        what = "None" if result is None else f"a {type(result).__name__}"
        raise GradgenError(
            f"{spec.name} returns {what}; gradgen differentiates a function returning one array "
            "or float",
            spec.src,
            "return a single value (e.g. the loss); write one function per output",
        )
    if isinstance(result, (int, float, np.ndarray, np.generic)):
        return tracing.graph.const(np.asarray(result, dtype=np.float64))
    raise GradgenError(
        f"{spec.name} returns a {type(result).__name__}, not an array or float", spec.src
    )
