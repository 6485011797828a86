"""Stage 2, trace: run the user's function on Tracers and record the numpy calls as IR.

A Tracer speaks numpy's `__array_ufunc__` / `__array_function__` protocols and Python's
operators; each call is looked up in the op table (`ops.NUMPY`) and becomes a node stamped
with the user's file:line. Python control flow over Python values simply runs (loops are
unrolled); a branch on a traced value is an error at the user's line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import ops
from .errors import GradgenError, Src
from .ir import Graph, Node, dtype_of
from .load import FunctionSpec, Loaded, user_frame_src
from .ops.shape import normalize_key

SUPPORTED_HINT = "see 'Supported numpy' in gradgen's README.md for what traces"
BRANCH_HINT = (
    "compute both sides and choose with np.where(cond, a, b), or use np.maximum / "
    "np.minimum / np.abs; Python `if` and `while` may only test shapes and Python values"
)


class Tracer:
    """A stand-in for a numpy array or float while the user's function runs."""

    __array_priority__ = 1000
    __slots__ = ("node", "tracing")

    def __init__(self, node: Node, tracing: "Tracing"):
        self.node = node
        self.tracing = tracing

    # ---- array attributes: shapes are concrete Python values, so code may branch on them
    @property
    def shape(self) -> tuple[int, ...]:
        return self.node.shape

    @property
    def ndim(self) -> int:
        return self.node.ndim

    @property
    def size(self) -> int:
        return self.node.size

    @property
    def dtype(self) -> np.dtype:
        return np.dtype({"f64": np.float64, "f32": np.float32, "bool": np.bool_}[self.node.dtype])

    def __len__(self) -> int:
        if not self.node.shape:
            raise self.tracing.error("len() of a scalar", "a scalar has no length")
        return self.node.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"Tracer({self.node.dtype}{list(self.node.shape)})"

    # ---- the numpy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__":
            return self.tracing.unsupported(f"np.{ufunc.__name__}.{method}")
        if kwargs.get("out") is not None:
            raise self.tracing.error(
                f"np.{ufunc.__name__}(..., out=...) writes into an array",
                "assign the result to a new name instead of using out=",
            )
        kwargs.pop("out", None)
        return self.tracing.call(ufunc, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return self.tracing.call(func, args, kwargs)

    def __array__(self, dtype=None, copy=None):
        raise self.tracing.error(
            "a traced value was turned into a concrete numpy array (np.asarray, np.array of "
            "a traced array, or a function gradgen does not trace)",
            SUPPORTED_HINT,
        )

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

    def __neg__(self):
        return self.tracing.call(np.negative, (self,))

    def __pos__(self):
        return self

    def __abs__(self):
        return self.tracing.call(np.absolute, (self,))

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

    def __getitem__(self, key):
        try:
            norm = normalize_key(key, self.node.shape)
        except (TypeError, IndexError) as e:
            raise self.tracing.error(f"indexing a {self.node.dtype}{list(self.shape)} value: {e}") from None
        return self.tracing.wrap(self.tracing.apply("index", self.node, key=norm))

    def __setitem__(self, key, value):
        raise self.tracing.error(
            "assignment into a traced array (x[...] = ...) is not supported",
            "build the array from its parts instead, e.g. np.stack / np.concatenate, or "
            "np.where(mask, new, x)",
        )

    # ---- what would silently lose the trace
    def __bool__(self):
        raise self.tracing.error(
            "`if`, `while`, `and`, `or` or bool() on a traced value: the branch would depend "
            "on the parameters' values",
            BRANCH_HINT,
        )

    def __float__(self):
        raise self.tracing.error(
            "float() or a math.* function on a traced value would drop it from the trace",
            "use the numpy function instead (np.exp, np.sqrt, ...); they work on scalars too",
        )

    def __int__(self):
        raise self.tracing.error("int() of a traced value has no gradient", BRANCH_HINT)

    __index__ = __int__

    # ---- array methods and properties: the numpy functions of the same name (see METHODS)
    def __getattr__(self, attr: str):
        if attr.startswith("_"):  # numpy's and Python's protocol probes
            raise AttributeError(attr)
        fn = METHODS.get(attr)
        if fn is None:
            raise self.tracing.error(
                f"the array method or attribute .{attr} is not supported by gradgen", SUPPORTED_HINT
            )
        if attr in PROPERTIES:
            return self.tracing.call(fn, (self,))

        def method(*args, **kwargs):
            if attr == "reshape" and len(args) > 1:  # x.reshape(3, 4) as well as x.reshape((3, 4))
                args = (args,)
            if attr == "transpose" and len(args) > 1:
                args = (args,)
            return self.tracing.call(fn, (self, *args), kwargs)

        return method


# Array methods and properties traced as the numpy function of the same meaning. A method
# works once its numpy function is in the op table.
METHODS = {
    name: getattr(np, name)
    for name in [
        "sum", "mean", "max", "min", "prod", "reshape", "dot", "clip", "transpose",
        "ravel", "squeeze", "swapaxes", "cumsum", "round", "std", "var",
    ]
}
METHODS.update({"flatten": np.ravel, "T": np.transpose, "mT": np.matrix_transpose})
PROPERTIES = {"T", "mT"}


class Tracing:
    """One trace of one function: the graph being built and where the user's code lives."""

    def __init__(self, path: Path, module_globals: dict[str, Any]):
        self.path = str(path.resolve())
        self.file = path.name
        self.graph = Graph()
        # user's module-level arrays, so constants keep the user's names
        self.global_names = {
            id(v): k for k, v in module_globals.items() if isinstance(v, np.ndarray) and not k.startswith("__")
        }

    # ---- errors at the user's line
    def src(self) -> Src | None:
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename == self.path:
                return Src(self.file, frame.f_lineno)
            frame = frame.f_back
        return None

    def error(self, message: str, hint: str | None = None) -> GradgenError:
        return GradgenError(message, self.src(), hint)

    def unsupported(self, what: str) -> Any:
        raise self.error(f"{what} is not supported by gradgen", SUPPORTED_HINT)

    # ---- building
    def lift(self, x: Any) -> Any:
        """A Tracer's node, a constant node for an array; anything else as it is."""
        if isinstance(x, Tracer):
            return x.node
        if isinstance(x, (bool, int, float, np.generic)) and np.ndim(x) == 0:
            return x  # Python numbers stay as they are: weakly typed constants or attributes
        if isinstance(x, np.ndarray):
            node = self.graph.const(x, dtype_of(np.asarray(x)) if np.asarray(x).dtype != np.float64 else None)
            if node.name is None and id(x) in self.global_names:
                node.name = self.global_names[id(x)]
            return node
        if isinstance(x, (list, tuple)):
            return type(x)(self.lift(v) for v in x)  # stack, concatenate, shapes
        return x

    def wrap(self, x: Any) -> Any:
        return Tracer(x, self) if isinstance(x, Node) else x

    def apply(self, op: str, *inputs: Any, **attrs: Any) -> Node:
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
        front = ops.NUMPY.get(fn)
        if front is None:
            return self.unsupported(f"np.{getattr(fn, '__name__', fn)}")
        self.graph.src = self.src()
        lifted = tuple(self.lift(a) for a in args)
        try:
            out = front(lifted, dict(kwargs or {}), self)
        except GradgenError:
            raise
        except (ValueError, TypeError, IndexError) as e:
            shapes = " and ".join(str(list(a.shape)) for a in lifted if isinstance(a, Node))
            name = getattr(fn, "__name__", str(fn))
            raise self.error(f"np.{name} of shapes {shapes}: {e}") from None
        if isinstance(out, (list, tuple)):
            return type(out)(self.wrap(o) for o in out)
        return self.wrap(out)

    # Fronts call back `apply` and `const` on what they are given, graph or tracing alike.
    def const(self, value: Any, dtype: str | None = None) -> Node:
        return self.graph.const(value, dtype)

    @property
    def float_dtype(self) -> str:
        return self.graph.float_dtype


class _Namer:
    """Names nodes after the user's local variables, read at each line of their code."""

    def __init__(self, path: Path):
        self.path = str(path.resolve())
        self.taken: dict[str, int] = {}

    def __call__(self, frame, event, arg):
        if frame.f_code.co_filename != self.path:
            return None
        if event in ("line", "return"):
            for name, value in frame.f_locals.items():
                if isinstance(value, Tracer) and value.node.name is None and value.node.op not in ("const",):
                    value.node.name = name
        return self

    def install(self):
        self.previous = sys.gettrace()
        sys.settrace(self)

    def remove(self):
        sys.settrace(self.previous)


def trace_function(loaded: Loaded, spec: FunctionSpec) -> Graph:
    """Run `spec.fn` on Tracers for its parameters; the graph's single output is its return value."""
    tracing = Tracing(loaded.path, vars(loaded.module))
    graph = tracing.graph
    if spec.params and all(p.dtype == "f32" for p in spec.params):
        graph.float_dtype = "f32"
    tracers = [Tracer(graph.param(p.name, p.shape, p.dtype, spec.src), tracing) for p in spec.params]
    namer = _Namer(loaded.path)
    namer.install()
    try:
        result = spec.fn(*tracers)
    except GradgenError:
        raise
    except RecursionError:
        raise GradgenError(f"{spec.name} recursed too deeply while tracing", spec.src) from None
    except Exception as e:
        src = user_frame_src(e.__traceback__, loaded.path) or spec.src
        raise GradgenError(
            f"{spec.name} raised {type(e).__name__} while tracing: {e}",
            src,
            "the function runs once on stand-ins of its parameters' shapes; "
            + SUPPORTED_HINT,
        ) from None
    finally:
        namer.remove()
    graph.outputs = [_output_node(tracing, spec, result)]
    return graph


def _output_node(tracing: Tracing, spec: FunctionSpec, result: Any) -> Node:
    if isinstance(result, Tracer):
        if result.node.dtype == "bool":
            raise GradgenError(f"{spec.name} returns a comparison mask, which has no gradient", spec.src)
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
    raise GradgenError(f"{spec.name} returns a {type(result).__name__}, not an array or float", spec.src)
