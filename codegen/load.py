"""Stage 1, load: import the user's expr.py and read its functions' parameter specs."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import traceback
import io
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable

from . import flow
from .errors import GradgenError, Src

ANNOTATION = re.compile(r"^\s*(f64|f32)\s*\[\s*(.*?)\s*\]\s*$")
NON_FLOAT = re.compile(r"^\s*(i8|i16|i32|i64|u8|u16|u32|u64|int|bool|b1)\b")
DIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*$")


@dataclass(frozen=True)
class ParamSpec:
    """A parameter: its name, shape (concrete), dtype, and the named dims of its shape."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    dims: tuple[str | int, ...]  # as written: names stay names

    def type_str(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.dims))}]"


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    fn: Callable
    params: tuple[ParamSpec, ...]
    src: Src


@dataclass(frozen=True)
class Loaded:
    """What the load stage hands to the tracer."""

    path: Path
    module: ModuleType
    functions: tuple[FunctionSpec, ...]
    dims: dict[str, int]
    loops: str = "auto"  # --loops: how a `for` over a range is traced (see regions.py)
    # `# gradgen: max N` on a `while` line: line -> N, the loop's bound on the C target
    bounds: dict[int, int] = field(default_factory=dict)


def user_frame_src(tb, path: Path) -> Src | None:
    """The innermost frame of a traceback that lies in the user's file."""
    src = None
    target = str(path.resolve())
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename == target:
            src = Src(path.name, lineno)
    return src


# Hooks compiled into the user's functions, so that the tracer can name values after the
# user's variables: `name = ...` is followed by `BOUND("name", name)`, and `return v`
# becomes `return RETURNING(v)`. Outside a trace they hand the value back and do nothing.
BOUND = "__gradgen_bound__"
RETURNING = "__gradgen_returning__"


def _unbound(name: str, value: object) -> object:
    return value


def _returning(value: object) -> object:
    return value


def _blocks(stmt: ast.stmt) -> list[list[ast.stmt]]:
    """The statement lists nested directly in `stmt` (bodies, else-blocks, handlers, cases)."""
    out = [getattr(stmt, f) for f in ("body", "orelse", "finalbody") if hasattr(stmt, f)]
    out += [part.body for part in [*getattr(stmt, "handlers", ()), *getattr(stmt, "cases", ())]]
    return [b for b in out if isinstance(b, list)]


def _at(where: ast.AST) -> dict:
    """The position of `where`, as keyword arguments for a new AST node (cheaper than
    ast.fix_missing_locations, which walks the whole tree)."""
    return {
        "lineno": where.lineno,
        "col_offset": where.col_offset,
        "end_lineno": where.end_lineno,
        "end_col_offset": where.end_col_offset,
    }


_LOAD = ast.Load()


def _hook(hook: str, args: list[ast.expr], where: ast.AST) -> ast.Expr:
    """`hook(*args)` as an expression statement at `where`'s position."""
    at = _at(where)
    return ast.Expr(ast.Call(ast.Name(hook, _LOAD, **at), args, [], **at), **at)


def _instrument(body: list[ast.stmt], in_function: bool) -> list[ast.stmt]:
    """`body` with the naming hooks after each `name = ...` and around each returned value.

    Only function bodies get hooks (module and class level run once, untraced). The walk
    visits statements only, never expressions: linear in the number of lines.
    """
    out: list[ast.stmt] = []
    for stmt in body:
        function = isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
        inner = function or (in_function and not isinstance(stmt, ast.ClassDef))
        for block in _blocks(stmt):
            block[:] = _instrument(block, inner)
        if function and not isinstance(stmt.body[-1], ast.Return):
            # falling off the end returns None: the locals are named all the same
            last = stmt.body[-1]
            stmt.body.append(_hook(RETURNING, [ast.Constant(None, **_at(last))], last))
        out.append(stmt)
        if not in_function:
            continue
        target = None
        if isinstance(stmt, ast.Return):
            value = stmt.value or ast.Constant(None, **_at(stmt))
            stmt.value = _hook(RETURNING, [value], value).value
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
        elif isinstance(stmt, ast.AugAssign) or (
            isinstance(stmt, ast.AnnAssign) and stmt.value is not None
        ):
            target = stmt.target
        if isinstance(target, ast.Name):
            at = _at(stmt)
            args = [ast.Constant(target.id, **at), ast.Name(target.id, _LOAD, **at)]
            out.append(_hook(BOUND, args, stmt))
    return out


def load_module(path: Path) -> ModuleType:
    """Import expr.py as a fresh module, turning its failures into user errors."""
    if not path.is_file():
        raise GradgenError(f"no such file: {path}", hint="give the path of a Python file")
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, str(path.resolve()))
        flow.rewrite(tree)
        tree.body = _instrument(tree.body, in_function=False)
        code = compile(tree, str(path.resolve()), "exec", dont_inherit=True)
    except SyntaxError as e:
        raise GradgenError(f"syntax error: {e.msg}", Src(path.name, e.lineno or 0)) from None
    except UnicodeDecodeError as e:
        raise GradgenError(f"{path} is not UTF-8 text: {e}") from None
    module = ModuleType("_gradgen_user_" + re.sub(r"\W", "_", path.stem))
    module.__file__ = str(path.resolve())
    module.__dict__.update({BOUND: _unbound, RETURNING: _returning, **flow.PLAIN})
    try:
        exec(code, module.__dict__)
    except Exception as e:  # the user's code failed: show their frame, not ours
        src = user_frame_src(e.__traceback__, path)
        raise GradgenError(
            f"importing {path.name} raised {type(e).__name__}: {e}",
            src,
            "fix the module so that `python " + path.name + "` runs",
        ) from None
    return module


def parse_annotation(
    annotation: object, param: str, fn_src: Src, dims: dict[str, int]
) -> ParamSpec:
    """`"f64[4,3]"`, `"f32[n]"`, `"f64[]"`, `float` or nothing -> a ParamSpec."""
    if annotation is inspect.Parameter.empty or annotation is float or annotation == "float":
        return ParamSpec(param, (), "f64", ())
    if not isinstance(annotation, str):
        annotation = getattr(annotation, "__name__", repr(annotation))
    if annotation in ("int", "bool") or NON_FLOAT.match(annotation):
        raise GradgenError(
            f"parameter {param!r} is annotated {annotation!r}: gradgen differentiates "
            "float parameters only",
            fn_src,
            "annotate it f64[...] or f32[...], or make it a module-level constant",
        )
    m = ANNOTATION.match(annotation)
    if not m:
        raise GradgenError(
            f"parameter {param!r} has the annotation {annotation!r}, which is not a type "
            "gradgen reads",
            fn_src,
            'write "f64[3]", "f64[4,3]", "f64[]" (a scalar), "f32[n]" with n from --dim n=4 '
            "or DIMS, or leave it unannotated for a float64 scalar",
        )
    dtype, body = m.groups()
    shape: list[int] = []
    written: list[str | int] = []
    for part in [p.strip() for p in body.split(",")] if body else []:
        if part.isdigit():
            shape.append(int(part))
            written.append(int(part))
        elif DIM_NAME.match(part):
            if part not in dims:
                raise GradgenError(
                    f"parameter {param!r} uses the dim {part!r}, whose size is not given",
                    fn_src,
                    f"pass --dim {part}=SIZE, or set DIMS = {{{part!r}: SIZE}} in the module",
                )
            shape.append(dims[part])
            written.append(part)
        else:
            raise GradgenError(
                f"parameter {param!r}: {part!r} in {annotation!r} is neither a size nor a dim name",
                fn_src,
                'dims are whole numbers or names, e.g. "f64[n,3]"',
            )
    return ParamSpec(param, tuple(shape), dtype, tuple(written))


def resolve_dims(module: ModuleType, cli_dims: dict[str, int], path: Path) -> dict[str, int]:
    """Named dim sizes: --dim wins over the module's DIMS."""
    dims = dict(getattr(module, "DIMS", {}) or {})
    if not isinstance(dims, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and v > 0 for k, v in dims.items()
    ):
        raise GradgenError(
            f"DIMS in {path.name} must map dim names to positive whole numbers",
            Src(path.name, 1),
        )
    dims.update(cli_dims)
    return dims


def find_functions(
    module: ModuleType, path: Path, fn: str | None, dims: dict[str, int]
) -> tuple[FunctionSpec, ...]:
    """The functions to trace: public top-level functions defined in the file, or `fn`."""
    found = {}
    for name, obj in vars(module).items():
        if (
            inspect.isfunction(obj)
            and not name.startswith("_")
            and obj.__code__.co_filename == str(path.resolve())
        ):
            found[name] = obj
    if fn is not None:
        if fn not in found:
            listed = ", ".join(sorted(found)) or "none"
            raise GradgenError(
                f"{path.name} has no traceable function {fn!r} (it has: {listed})",
                hint="--fn names a top-level function whose name does not start with _",
            )
        found = {fn: found[fn]}
    if not found:
        raise GradgenError(
            f"{path.name} defines no function to trace",
            Src(path.name, 1),
            "define a top-level function whose name does not start with _, "
            'e.g. def f(x: "f64[3]"): return np.sum(x * x)',
        )
    specs = []
    for name, obj in found.items():
        src = Src(path.name, obj.__code__.co_firstlineno)
        sig = inspect.signature(obj)
        params = []
        for p in sig.parameters.values():
            if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                raise GradgenError(
                    f"{name}: parameter {p.name!r} is *args, **kwargs or keyword-only",
                    src,
                    "give every parameter its own name and annotation",
                )
            params.append(parse_annotation(p.annotation, p.name, src, dims))
        specs.append(FunctionSpec(name, obj, tuple(params), src))
    return tuple(specs)


BOUND_COMMENT = re.compile(r"#\s*gradgen:\s*(.*)")


def loop_bounds(path: Path) -> dict[int, int]:
    """The bounds that `while` lines give with a `# gradgen: max N` comment: {line: N}.
    (The C target preallocates a while loop's tape; see emit/c_regions.py.)"""
    source = path.read_text(encoding="utf-8")
    if "gradgen:" not in source:
        return {}
    whiles = {n.lineno for n in ast.walk(ast.parse(source)) if isinstance(n, ast.While)}
    bounds: dict[int, int] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT:
            continue
        m = BOUND_COMMENT.match(tok.string)
        if m is None:
            continue
        line = tok.start[0]
        src = Src(path.name, line)
        words = m.group(1).split()
        if len(words) != 2 or words[0] != "max" or not words[1].isdigit() or int(words[1]) < 1:
            raise GradgenError(
                f"cannot read the comment {tok.string.strip()!r}",
                src,
                "a `while` loop's bound is written `# gradgen: max N`, N a positive integer",
            )
        if line not in whiles:
            raise GradgenError(
                "`# gradgen: max N` bounds a `while` loop, and this line starts none",
                src,
                "put it at the end of the `while` line (a `for` loop's bound is its count)",
            )
        bounds[line] = int(words[1])
    return bounds


def load(
    path: str | Path,
    fn: str | None = None,
    cli_dims: dict[str, int] | None = None,
    loops: str = "auto",
) -> Loaded:
    """Load expr.py and the specs of the functions to trace."""
    path = Path(path)
    module = load_module(path)
    dims = resolve_dims(module, cli_dims or {}, path)
    functions = find_functions(module, path, fn, dims)
    return Loaded(path, module, functions, dims, loops, loop_bounds(path))
