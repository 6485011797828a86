"""Stage 8, check: import the written module and compare it with central differences.

The convention (DESIGN.md): float64 central differences with h = 1e-6 * max(1, |x_i|) on
the user's own function, at three seeded random points (or at the points the module's
`_check_args(rng)` gives); random points within 1e-4 of a kink are drawn again. Arguments
of at most 64 elements are checked element by element, larger ones along 8 random unit
directions plus 8 random elements. A value passes when |a - n| <= atol + rtol * |n|
(1e-6, 1e-5; float32 modules 1e-4, 1e-3), where atol also allows for the rounding in the
difference itself, 4 eps max|f(x +- h)| / h: without it a function whose value is large
(1e5) fails a right gradient.

That single step is all the common case costs. A comparison that fails it is looked at
again: central differences at steps 16 h down to h / 4**6, Richardson extrapolation of
each pair, and an error estimate from the spread of three successive extrapolations
(no smaller steps: below about 1e-10 a perturbation is lost in the rounding of the
intermediate values, and the differences settle on the slope of the rounding, not of the
function). The verdict is then
- ok: they converge (error estimate within the tolerance) and agree with the gradient;
- FAIL: they converge (to 1%, or within the tolerance) and disagree by more than the
  tolerance plus ten times their own error;
- inconclusive: they do not converge, which is the function's conditioning at that point
  (a chaotic recurrence, say), not evidence about the gradient. A random point found
  inconclusive is drawn again at a smaller input scale, a few times, before the check
  gives up and says so, with the numbers. Points from `_check_args` are the user's: they
  are never redrawn.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np

from . import ops
from .ops import control
from .errors import GradgenError, Src
from .ir import Graph, Node, evaluate, run
from .load import FunctionSpec, ParamSpec, user_frame_src

POINTS = 3
KINK_DISTANCE = 1e-4
ELEMENTWISE_LIMIT = 64
DIRECTIONS = 8
DRAWS = 60
TOL = {"f64": (1e-6, 1e-5), "f32": (1e-4, 1e-3)}
# Rounding allowance: a few ulps of f's value, so a large |f| cannot fail a right gradient.
ROUNDING = 4 * np.finfo(np.float64).eps

# The second look at a comparison that fails the single step (see the module docstring).
STEP_RATIO = 4.0  # successive steps differ by this factor
LEVELS_UP = 2  # steps above h: 16 h, 4 h
LEVELS_DOWN = 6  # steps below h, at most: down to h / 4**6, about 2.4e-10 max(1, |x|)
CONVERGED = 1e-2  # differences known to 1% can refute a gradient...
FAIL_MARGIN = 10.0  # ...that is off by more than the tolerance plus 10 times their error
# Input scales of the draws of a random point: the first, then smaller ones when the
# differences do not converge there.
SCALES = (1.0, 0.25, 0.0625, 0.015625)
CHECK_ARGS = "_check_args"

SEVERITY = {"ok": 0, "inconclusive": 1, "FAIL": 2}


@dataclass
class ArgReport:
    """The worst comparison seen for one argument (or the value): FAIL before
    inconclusive before ok, then the largest excess over the tolerance."""

    name: str
    shape: tuple
    where: str = ""
    generated: float = 0.0
    numeric: float = 0.0
    rel_err: float = 0.0
    verdict: str = "ok"
    excess: float = -np.inf  # |a - n| - tolerance: the worst is the largest
    err: float = 0.0  # the error estimate of `numeric`, when the steps were refined
    steps: tuple = ()  # (largest, smallest) step of the refined differences

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def see(
        self,
        a: float,
        n: float,
        where: str,
        atol: float,
        rtol: float,
        shown: bool = True,
        err: float = 0.0,
        verdict: str | None = None,
        steps: tuple = (),
    ) -> None:
        """Record one comparison; `shown=False` ones (the generated functions against each
        other) only appear in the report when they fail. `verdict` is given by a refined
        comparison; otherwise it is ok or FAIL by the tolerance."""
        diff = abs(a - n)
        excess = diff - (atol + rtol * abs(n)) - err
        if not np.isfinite(a) or not np.isfinite(n):
            excess = np.inf
        if verdict is None:
            verdict = "ok" if excess <= 0 else "FAIL"
        if (shown or verdict != "ok") and (SEVERITY[verdict], excess) > self._key():
            self.verdict, self.excess, self.where = verdict, excess, where
            self.generated, self.numeric, self.err, self.steps = a, n, err, steps
            self.rel_err = diff / max(abs(a), abs(n), 1e-12) if np.isfinite(diff) else np.inf

    def fail(self, where: str) -> None:
        """A comparison that could not be made (a gradient of the wrong shape)."""
        self.verdict, self.where, self.excess = "FAIL", where, np.inf

    def merge(self, other: ArgReport) -> None:
        """Take `other`'s worst comparison when it is worse than this one's."""
        if other._key() > self._key():
            self.__dict__.update(other.__dict__)

    def _key(self) -> tuple:
        return SEVERITY[self.verdict], self.excess


@dataclass
class FunctionReport:
    name: str
    args: list[ArgReport]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # the draws found inconclusive
    points: int = POINTS
    given: bool = False  # the points came from _check_args
    scales: tuple = (1.0,)  # the input scales tried

    @property
    def ok(self) -> bool:
        """Every comparison confirmed."""
        return all(a.ok for a in self.args)

    @property
    def failed(self) -> bool:
        """Some comparison refuted: the differences converged and disagree."""
        return any(a.verdict == "FAIL" for a in self.args)

    @property
    def verdict(self) -> str:
        return max((a.verdict for a in self.args), key=SEVERITY.__getitem__, default="ok")

    @property
    def inconclusive(self) -> list[str]:
        """The names whose check could not confirm them (when nothing failed)."""
        return [a.name for a in self.args if a.verdict == "inconclusive"]


def import_path(path: Path) -> ModuleType:
    """Import a generated module from its file, fresh each time."""
    name = f"_gradgen_check_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop(name, None)
    spec.loader.exec_module(module)
    return module


def _kink_distance(graph: Graph, env: dict[int, Any]) -> float:
    """How near the point is to a switch: of the ops' `kink`s, those in the branch taken
    and in every iteration of a loop included (a branch's test is a comparison, a kink)."""
    dist = np.inf
    for node in graph.live_nodes():
        if node.op in control.REGIONS:
            if _has_kinks(node):
                dist = min(dist, _region_kinks(node, [env[i.id] for i in node.inputs]))
            continue
        kink = ops.OPS[node.op].kink if node.op in ops.OPS else None
        if kink is not None:
            d = np.asarray(kink(*(env[i.id] for i in node.inputs), **node.attrs))
            if d.size:
                dist = min(dist, float(np.min(d)))
    return dist


def _has_kinks(node: Node) -> bool:
    """Whether a region's bodies (a while loop's test aside: see `_region_kinks`) hold an
    op with a kink, or a branch."""
    bodies = node.attrs["branches"] if node.op == "cond" else (node.attrs["body"],)
    for body in bodies:
        for n in body.nodes:
            if n.op == "cond" or (n.op in control.REGIONS and _has_kinks(n)):
                return True
            if n.op in ops.OPS and ops.OPS[n.op].kink is not None:
                return True
    return False


def _region_kinks(node: Node, inputs: list) -> float:
    """The kink distance inside a region run on `inputs`: the branch that runs, or each
    iteration's body as the loop runs them. A while loop's own test is left out: it
    switches where an iteration has converged (newton's `abs(x * x - a) > tol`), where
    the function does not jump."""
    attrs = node.attrs
    if attrs["role"] != "plain":  # (the check evaluates the traced function)
        return np.inf
    if node.op == "cond":
        body = attrs["branches"][0 if bool(inputs[0]) else 1]
        return _kink_distance(body, evaluate(body, inputs[1:]))
    body, cond, count, k = attrs["body"], attrs.get("cond"), attrs.get("count"), attrs["carried"]
    carried, invariant = list(inputs[:k]), list(inputs[k:])
    dist, i = np.inf, 0
    while (count is None or i < count) and i <= control.MAX_ITERATIONS:
        args = [np.int64(i), *carried, *invariant]
        if cond is not None and not bool(run(cond, *args)[0]):
            break
        env = evaluate(body, args)
        dist = min(dist, _kink_distance(body, env))
        carried = [env[o.id] for o in body.outputs[:k]]
        i += 1
    return dist


def first_nonfinite(graph: Graph, env: dict[int, Any]):
    """The first node whose value has a NaN or an infinity, or None."""
    for node in graph.live_nodes():
        v = env.get(node.id)
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            return node
    return None


def _nonfinite_warning(bad, tried: str) -> str:
    where = f" at {bad.src}" if bad.src else ""
    return (
        f"{bad.op}{where} gives a NaN or infinity at {tried}; "
        "the check may report a failure that is really the function's domain"
    )


def draw_point(
    params: tuple[ParamSpec, ...], graph: Graph, rng: np.random.Generator, scale: float = 1.0
) -> tuple[list, str | None]:
    """Arguments away from kinks and where every intermediate value is finite; `scale`
    shrinks the draws (a point drawn again where the differences did not converge)."""
    samplers: list[Callable[[tuple], np.ndarray]] = [
        lambda s: rng.standard_normal(s),
        lambda s: rng.uniform(0.5, 1.5, s),
        lambda s: rng.uniform(-0.9, 0.9, s),
        lambda s: rng.uniform(0.1, 0.9, s),
        lambda s: rng.uniform(1.1, 2.0, s),  # above 1: arccosh's domain
    ]
    warning = None
    args: list = []
    for attempt in range(DRAWS):
        sample = samplers[attempt % len(samplers)]
        args = [np.asarray(sample(p.shape), dtype=np.float64) for p in params]
        if scale != 1.0:
            args = [a * scale for a in args]
        try:
            env = evaluate(graph, args)
        except np.linalg.LinAlgError as e:  # outside the domain (cholesky of a non-PD A)
            warning = f"np.linalg raised {e!r} at the random points tried"
            continue
        except ArithmeticError as e:  # a while loop that does not end there (ops/control.py)
            warning = f"{e} at the random points tried"
            continue
        bad = first_nonfinite(graph, env)
        if bad is not None:
            warning = _nonfinite_warning(bad, "the random points tried")
            continue
        if _kink_distance(graph, env) > KINK_DISTANCE:
            return args, None
    return args, warning


# ---- _check_args(rng): the points the user chooses ----


def user_points(spec: FunctionSpec, seed: int = 0) -> list[list[np.ndarray]] | None:
    """The argument tuples of the module's `_check_args(rng)` for `spec`, validated against
    its annotations; None when the module has no `_check_args`.

    `_check_args(rng)` returns one tuple of arguments, a list of such tuples, or a dict from
    function names to either (functions it does not name get random points).
    """
    hook = spec.fn.__globals__.get(CHECK_ARGS)
    if hook is None:
        return None
    file = spec.src.file
    use = (
        f"define {CHECK_ARGS}(rng) returning a tuple of arguments for "
        f"{spec.name}({', '.join(p.name for p in spec.params)}), or a list of such tuples"
    )
    code = getattr(hook, "__code__", None)
    src = Src(file, code.co_firstlineno) if code is not None else None
    if not callable(hook):
        raise GradgenError(f"{CHECK_ARGS} in {file} is {_kind(hook)}, not a function", None, use)
    try:
        with np.errstate(all="ignore"):
            got = hook(np.random.default_rng(seed))
    except Exception as e:  # the user's code failed: show their line
        where = user_frame_src(e.__traceback__, Path(code.co_filename)) if code else None
        raise GradgenError(
            f"{CHECK_ARGS}(rng) in {file} raised {type(e).__name__}: {e}", where or src, use
        ) from None
    said = f"{CHECK_ARGS}(rng) in {file}"
    if isinstance(got, dict):
        for key in got:
            if not isinstance(key, str) or not callable(spec.fn.__globals__.get(key)):
                raise GradgenError(
                    f"{said} returned a dict with the key {key!r}, which is not a function "
                    f"of {file}",
                    src,
                    "a dict maps function names to their argument tuples",
                )
        if spec.name not in got:
            return None
        said += f"[{spec.name!r}]"
        got = got[spec.name]
    if isinstance(got, tuple):
        points = [got]
    elif isinstance(got, list):
        if not got:
            raise GradgenError(f"{said} returned an empty list", src, use)
        for i, point in enumerate(got):
            if not isinstance(point, (tuple, list)):
                raise GradgenError(
                    f"{said} returned a list whose item {i} is {_kind(point)}, not a tuple of "
                    "arguments",
                    src,
                    use,
                )
        points = got
    else:
        raise GradgenError(
            f"{said} returned {_kind(got)}, not a tuple of arguments or a list of them",
            src,
            use + " (one argument: (x,))",
        )
    return [
        _user_point(spec, point, f"{said}, point {i}" if len(points) > 1 else said, src)
        for i, point in enumerate(points)
    ]


def _kind(value: object) -> str:
    """What a value is, in a few words: "an array of shape (4, 3)", "a value of type int"."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return f"a value of type {type(value).__name__}"


def _user_point(spec: FunctionSpec, point, said: str, src: Src | None) -> list[np.ndarray]:
    params = spec.params
    if len(point) != len(params):
        raise GradgenError(
            f"{said} has {len(point)} argument{'s' if len(point) != 1 else ''}, but "
            f"{spec.name} takes {len(params)} ({', '.join(p.name for p in params) or 'none'})",
            src,
            "give one value per parameter, in order",
        )
    out = []
    for p, value in zip(params, point):
        try:
            arr = np.asarray(value)
        except Exception as e:
            raise GradgenError(
                f"{said}: argument {p.name!r} is not an array ({type(e).__name__}: {e})", src
            ) from None
        if arr.dtype.kind not in "fiu":
            raise GradgenError(
                f"{said}: argument {p.name!r} has dtype {arr.dtype}, not a real number type",
                src,
                "give float (or whole-number) arrays",
            )
        if arr.shape != p.shape:
            written = p.type_str()
            sized = f" = {p.shape}" if any(isinstance(d, str) for d in p.dims) else ""
            raise GradgenError(
                f"{said}: argument {p.name!r} has shape {arr.shape}, but {spec.name} annotates "
                f"it {written}{sized}",
                src,
                (
                    "a scalar is a float or a 0-d array"
                    if p.shape == ()
                    else f"give an array of shape {p.shape}"
                ),
            )
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise GradgenError(
                f"{said}: argument {p.name!r} holds a NaN or an infinity",
                src,
                "central differences need finite arguments",
            )
        out.append(arr)
    return out


# ---- the check ----


class _Inconclusive(Exception):
    """Stops checking a random point at its first inconclusive comparison: it is drawn
    again anyway. The message has the numbers."""


@dataclass
class _Api:
    """The generated functions of one traced function."""

    value_and_grad: Callable
    vjp: Callable
    plain: Callable
    forward: Callable
    backward: Callable

    @classmethod
    def of(cls, module: ModuleType, name: str) -> _Api:
        return cls(
            *(
                getattr(module, f"{name}{suffix}")
                for suffix in ("_value_and_grad", "_vjp", "", "_forward", "_backward")
            )
        )


def _call_user(fn: Callable, args: list) -> np.ndarray:
    with np.errstate(all="ignore"):
        # scalars as numpy scalars: they have .reshape, [None], ... as the user may expect;
        # arrays as copies: a function that writes into its parameter must not change the
        # point (the generated code works on a copy, so it never does)
        return np.asarray(
            fn(*[a.copy() if a.ndim else np.float64(a) for a in args]), dtype=np.float64
        )


def _to_module_args(args: list, params: tuple[ParamSpec, ...]) -> list:
    out = []
    for a, p in zip(args, params):
        arr = a.astype(np.float32) if p.dtype == "f32" else a
        out.append(
            float(arr) if p.dtype == "f64" and arr.ndim == 0 else (arr if arr.ndim else arr[()])
        )
    return out


def check_function(
    module: ModuleType,
    spec: FunctionSpec,
    graph: Graph,
    wrt: list[str],
    seed: int = 0,
    points: list[list[np.ndarray]] | None | str = CHECK_ARGS,
) -> FunctionReport:
    """Compare the generated gradients of `spec` with central differences on the user's
    function: at `points` (from `user_points`), at random points if None; by default at
    the module's `_check_args(rng)` if it has one."""
    rng = np.random.default_rng(seed)
    dtype = "f32" if any(p.dtype == "f32" for p in spec.params) else "f64"
    atol, rtol = TOL[dtype]
    if isinstance(points, str):
        points = user_points(spec, seed)
    index = {p.name: i for i, p in enumerate(spec.params)}
    reports = [ArgReport("value", graph.outputs[0].shape)]
    reports += [ArgReport(n, spec.params[index[n]].shape) for n in wrt]
    report = FunctionReport(spec.name, reports)
    api = _Api.of(module, spec.name)

    def at(args: list, k: int, stop_early: bool = False) -> None:
        for total, one in zip(
            reports, _check_point(api, spec, graph, wrt, args, k, rng, atol, rtol, stop_early)
        ):
            total.merge(one)

    if points is not None:
        report.points, report.given = len(points), True
        for k, args in enumerate(points):
            env = evaluate(graph, args)
            bad = first_nonfinite(graph, env)
            if bad is not None:
                report.warnings.append(_nonfinite_warning(bad, f"{CHECK_ARGS} point {k}"))
            elif _kink_distance(graph, env) <= KINK_DISTANCE:
                report.warnings.append(
                    f"{CHECK_ARGS} point {k} is within {KINK_DISTANCE:g} of a kink (a max, abs "
                    "or where switch), where central differences may disagree with the gradient"
                )
            at(args, k)
        return report

    for k in range(POINTS):
        args, warning = draw_point(spec.params, graph, rng)
        if warning and warning not in report.warnings:
            report.warnings.append(warning)
        for attempt, scale in enumerate(SCALES):
            try:
                at(args, k, stop_early=attempt < len(SCALES) - 1)
                break
            except _Inconclusive as stop:
                smaller = SCALES[attempt + 1]
                said = f"point {k} at input scale {scale:g}: {stop}"
                drawn, unfit = draw_point(spec.params, graph, rng, smaller)
                if unfit:  # nowhere to go: this point stands, checked in full
                    report.notes.append(
                        f"{said}; no point at input scale {smaller:g} avoids kinks and "
                        "non-finite values"
                    )
                    at(args, k)
                    break
                report.notes.append(f"{said}; drawn again at input scale {smaller:g}")
                report.scales = SCALES[: max(attempt + 2, len(report.scales))]
                args = drawn
    return report


def _check_point(
    api: _Api,
    spec: FunctionSpec,
    graph: Graph,
    wrt: list[str],
    args: list,
    k: int,
    rng: np.random.Generator,
    atol: float,
    rtol: float,
    stop_early: bool,
) -> list[ArgReport]:
    """The comparisons at one point, in fresh reports (the value's first, then `wrt`'s).

    With `stop_early`, the first inconclusive comparison (before any FAIL) raises
    _Inconclusive."""
    index = {p.name: i for i, p in enumerate(spec.params)}
    reports = [ArgReport("value", graph.outputs[0].shape)]
    reports += [ArgReport(n, spec.params[index[n]].shape) for n in wrt]
    f32 = any(p.dtype == "f32" for p in spec.params)
    scalar_out = graph.outputs[0].shape == ()
    margs = _to_module_args(args, spec.params)
    f_user = _call_user(spec.fn, args)
    out_g = np.ones(()) if scalar_out else rng.standard_normal(graph.outputs[0].shape)
    g = out_g.astype(np.float32) if f32 else out_g
    g = float(g) if scalar_out and not f32 else g
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if scalar_out:
            value, grads = api.value_and_grad(*margs)
        else:
            value, grads = api.vjp(*margs, g)
        plain = api.plain(*margs)
        split = api.vjp(*margs, g)
        value_fb, saved = api.forward(*margs)
        grads_fb = api.backward(saved, g)
    where = f"point {k}"
    _compare_array(reports[0], np.asarray(value, np.float64), f_user, where, atol, rtol)
    for other, label in ((plain, spec.name), (value_fb, f"{spec.name}_forward")):
        _compare_array(
            reports[0],
            np.asarray(other, np.float64),
            f_user,
            f"{where} ({label})",
            atol,
            rtol,
            shown=False,
        )
    for i, name in enumerate(wrt):
        for other, label in ((split, "vjp"), ((None, grads_fb), "forward/backward")):
            _compare_array(
                reports[1 + i],
                np.asarray(other[1][i], np.float64),
                np.asarray(grads[i], np.float64),
                f"{where} ({label} vs value_and_grad)",
                atol,
                rtol,
                shown=False,
            )

    def scalarized(xs: list) -> float:
        return float(np.sum(out_g * _call_user(spec.fn, xs)))

    def inconclusive(rep: ArgReport) -> None:
        if stop_early and not any(r.verdict == "FAIL" for r in reports):
            at = rep.where.removeprefix(where).strip()
            label = f"{rep.name} {at}" if at not in ("", "[]") else rep.name
            raise _Inconclusive(f"{label}: {_numbers(rep)}")

    for i, name in enumerate(wrt):
        _check_arg(
            reports[1 + i],
            scalarized,
            args,
            index[name],
            np.asarray(grads[i], np.float64),
            k,
            rng,
            atol,
            rtol,
            inconclusive,
        )
    return reports


def _compare_array(
    rep: ArgReport,
    a: np.ndarray,
    n: np.ndarray,
    where: str,
    atol: float,
    rtol: float,
    shown: bool = True,
) -> None:
    if a.shape != n.shape:
        rep.fail(f"{where}: shape {a.shape} != {n.shape}")
        return
    for idx in (
        np.ndindex(a.shape)
        if a.size <= ELEMENTWISE_LIMIT
        else [np.unravel_index(np.argmax(np.abs(a - n)), a.shape)]
    ):
        at = f"{where} {list(idx) if idx else ''}".strip()
        rep.see(float(a[idx]), float(n[idx]), at, atol, rtol, shown)


def _check_arg(
    rep: ArgReport,
    f: Callable[[list], float],
    args: list,
    j: int,
    grad: np.ndarray,
    point: int,
    rng: np.random.Generator,
    atol: float,
    rtol: float,
    inconclusive: Callable[[ArgReport], None] = lambda rep: None,
) -> None:
    x = args[j]
    if grad.shape != x.shape:
        rep.fail(f"shape {grad.shape}, expected {x.shape}")
        return

    def at(xj: np.ndarray) -> float:
        return f([xj if i == j else a for i, a in enumerate(args)])

    def difference(v: np.ndarray, h: float) -> tuple[float, float]:
        """The central difference along `v` with step h, and the rounding error it carries:
        float64 values of f of size |f| differ by at least eps |f|, which the step divides
        by 2h."""
        plus, minus = at(x + h * v), at(x - h * v)
        return (plus - minus) / (2 * h), ROUNDING * max(abs(plus), abs(minus)) / h

    def compare(a: float, v: np.ndarray, h: float, where: str) -> None:
        n, noise = difference(v, h)
        if np.isfinite(a) and abs(a - n) <= atol + noise + rtol * abs(n):
            rep.see(a, n, where, atol + noise, rtol)  # the common case: one step
            return
        if not np.isfinite(a):  # the function is finite here: a NaN gradient is wrong
            rep.see(a, n, where, atol + noise, rtol)
            return
        verdict, n, err, steps = refine(lambda s: difference(v, s), h, n, noise, a, atol, rtol)
        rep.see(a, n, where, atol, rtol, err=err, verdict=verdict, steps=steps)
        if verdict == "inconclusive":
            inconclusive(rep)

    def element(idx: tuple) -> None:
        h = 1e-6 * max(1.0, abs(float(x[idx])))
        e = np.zeros_like(x)
        e[idx] = 1.0
        compare(float(grad[idx]), e, h, f"point {point} {list(idx)}")

    if x.size <= ELEMENTWISE_LIMIT:
        for idx in np.ndindex(x.shape):
            element(idx)
        return
    for d in range(DIRECTIONS):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)
        h = 1e-6 * max(1.0, float(np.max(np.abs(x))))
        compare(float(np.sum(grad * v)), v, h, f"point {point} direction {d}")
    for _ in range(DIRECTIONS):
        element(tuple(int(rng.integers(0, s)) for s in x.shape))


def refine(
    difference: Callable[[float], tuple[float, float]],
    h: float,
    d: float,
    noise: float,
    a: float,
    atol: float,
    rtol: float,
) -> tuple[str, float, float, tuple[float, float]]:
    """The second look at a derivative whose single central difference `d` (step h,
    rounding `noise`) disagrees with the generated `a`: (verdict, estimate, its error,
    (largest step, smallest step)).

    `difference(step)` gives a central difference and its rounding. Steps go from 16 h
    down by factors of 4; each pair of successive differences gives a Richardson
    extrapolation (the h^2 term cancels), and three successive extrapolations give an
    estimate (the last) and its error (their spread, plus rounding). The first estimate
    whose error is within the tolerance decides ok or FAIL; the descent stops early when
    rounding alone outgrows both the tolerance and 1% of |a|. Otherwise the best estimate
    is a FAIL when it is known to 1% and off by more than the tolerance plus FAIL_MARGIN
    times its error, and inconclusive if not.
    """
    ladder = [(h * STEP_RATIO**k, *difference(h * STEP_RATIO**k)) for k in range(LEVELS_UP, 0, -1)]
    ladder.append((h, d, noise))
    best: tuple[float, float] | None = None
    shrink = 1.0 / (STEP_RATIO**2 - 1.0)
    limit = max(atol + rtol * abs(a), CONVERGED * abs(a))
    for k in range(1, LEVELS_DOWN + 1):
        step = h / STEP_RATIO**k
        ladder.append((step, *difference(step)))
        last = ladder[-4:]
        if len(last) == 4:
            r = [d1 + (d1 - d0) * shrink for (_, d0, _), (_, d1, _) in zip(last, last[1:])]
            n = r[-1]
            err = max(abs(r[2] - r[1]), abs(r[1] - r[0])) + last[-1][2] + last[-2][2]
            if np.isfinite(n) and np.isfinite(err):
                tol = atol + rtol * abs(n)
                if err <= tol and abs(a - n) <= tol + err:
                    return "ok", n, err, (ladder[0][0], step)
                if err <= tol and abs(a - n) > tol + FAIL_MARGIN * err:
                    return "FAIL", n, err, (ladder[0][0], step)
                if best is None or err < best[1]:
                    best = (n, err)
        if last[-1][2] > limit:
            break
    steps = (ladder[0][0], ladder[-1][0])
    if best is None:
        return "inconclusive", d, np.inf, steps
    n, err = best
    tol = atol + rtol * abs(n)
    if err <= max(tol, CONVERGED * abs(n)) and abs(a - n) > tol + FAIL_MARGIN * err:
        return "FAIL", n, err, steps
    return "inconclusive", n, err, steps


def _numbers(a: ArgReport) -> str:
    """A refined comparison in words, with its numbers."""
    steps = f" with steps {a.steps[0]:.1e} to {a.steps[1]:.1e}" if a.steps else ""
    if a.verdict == "inconclusive":
        return (
            f"central differences{steps} do not converge to the tolerance (best "
            f"{a.numeric:.6g} ± {a.err:.1e}; generated {a.generated:.6g})"
        )
    return f"generated {a.generated:.6g}, central differences {a.numeric:.6g} ± {a.err:.1e}{steps}"


def format_report(report: FunctionReport) -> str:
    """The per-argument table the CLI prints."""
    rows = [("arg", "shape", "worst at", "generated", "numeric", "rel err", "")]
    for a in report.args:
        numeric = f"{a.numeric:.6g}"
        if a.err and not a.ok:
            numeric += f" ± {a.err:.1e}"
        rows.append(
            (
                a.name,
                str(a.shape),
                a.where,
                f"{a.generated:.6g}",
                numeric,
                f"{a.rel_err:.1e}",
                a.verdict,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    source = " from _check_args" if report.given else ""
    plural = "s" if report.points != 1 else ""
    lines = [f"check {report.name}: {report.points} point{plural}{source}, central differences"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines += [f"  warning: {w}" for w in report.warnings]
    lines += [f"  note: {n}" for n in report.notes]
    for a in report.args:
        if a.verdict == "inconclusive":
            tried = (
                "at the points of _check_args"
                if report.given
                else f"at input scales down to {report.scales[-1]:g}"
            )
            lines.append(
                f"  inconclusive: {a.name} at {a.where.removesuffix(' []')}: {_numbers(a)}; "
                "the function is too "
                f"ill-conditioned there {tried} to confirm or refute the gradient"
            )
    return "\n".join(lines)


# ---- the report as JSON (--json), for scripts and CI ----

JSON_VERSION = 1


def _number(x: float) -> float | str | None:
    """A JSON number; NaN and infinities as strings (JSON has none)."""
    x = float(x)
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def report_json(reports: list[FunctionReport], module: str) -> dict:
    """The check as a JSON-ready dict, the shape the README documents:
    {"version": 1, "module": path, "verdict": "ok" | "inconclusive" | "FAIL",
     "functions": [{"name", "verdict", "points", "given", "scales", "warnings", "notes",
                    "args": [{"name", "shape", "verdict", "worst_at", "generated",
                              "numeric", "numeric_err", "rel_err"}]}]}"""
    functions = []
    for r in reports:
        functions.append(
            {
                "name": r.name,
                "verdict": r.verdict,
                "points": r.points,
                "given": r.given,
                "scales": [float(s) for s in r.scales],
                "warnings": list(r.warnings),
                "notes": list(r.notes),
                "args": [
                    {
                        "name": a.name,
                        "shape": [int(d) for d in a.shape],
                        "verdict": a.verdict,
                        "worst_at": a.where,
                        "generated": _number(a.generated),
                        "numeric": _number(a.numeric),
                        "numeric_err": _number(a.err),
                        "rel_err": _number(a.rel_err),
                    }
                    for a in r.args
                ],
            }
        )
    verdict = max((f["verdict"] for f in functions), key=SEVERITY.__getitem__, default="ok")
    return {"version": JSON_VERSION, "module": module, "verdict": verdict, "functions": functions}
