"""Stage 8, check: import the written module and compare it with central differences.

The convention (DESIGN.md): float64 central differences with h = 1e-6 * max(1, |x_i|) on
the user's own function, at three seeded random points; points within 1e-4 of a kink are
drawn again. Arguments of at most 64 elements are checked element by element, larger ones
along 8 random unit directions plus 8 random elements. A value passes when
|a - n| <= atol + rtol * |n| (1e-6, 1e-5; float32 modules 1e-4, 1e-3), where atol also
allows for the rounding in the difference itself, 4 eps max|f(x +- h)| / h: without it
a function whose value is large (1e5) fails a right gradient.
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
from .ir import Graph, evaluate
from .load import FunctionSpec, ParamSpec

POINTS = 3
KINK_DISTANCE = 1e-4
ELEMENTWISE_LIMIT = 64
DIRECTIONS = 8
DRAWS = 60
TOL = {"f64": (1e-6, 1e-5), "f32": (1e-4, 1e-3)}
# Rounding allowance: a few ulps of f's value, so a large |f| cannot fail a right gradient.
ROUNDING = 4 * np.finfo(np.float64).eps


@dataclass
class ArgReport:
    """The worst comparison seen for one argument (or the value)."""

    name: str
    shape: tuple
    where: str = ""
    generated: float = 0.0
    numeric: float = 0.0
    rel_err: float = 0.0
    ok: bool = True
    excess: float = -np.inf  # |a - n| - tolerance: the worst is the largest

    def see(
        self, a: float, n: float, where: str, atol: float, rtol: float, shown: bool = True
    ) -> None:
        """Record one comparison; `shown=False` ones (the generated functions against each
        other) only appear in the report when they fail."""
        err = abs(a - n)
        excess = err - (atol + rtol * abs(n))
        if not np.isfinite(a) or not np.isfinite(n):
            excess = np.inf
        if excess > self.excess and (shown or excess > 0):
            self.excess, self.where, self.generated, self.numeric = excess, where, a, n
            self.rel_err = err / max(abs(a), abs(n), 1e-12) if np.isfinite(err) else np.inf
        self.ok = self.ok and excess <= 0


@dataclass
class FunctionReport:
    name: str
    args: list[ArgReport]
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.args)


def import_path(path: Path) -> ModuleType:
    """Import a generated module from its file, fresh each time."""
    name = f"_gradgen_check_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop(name, None)
    spec.loader.exec_module(module)
    return module


def _kink_distance(graph: Graph, env: dict[int, Any]) -> float:
    dist = np.inf
    for node in graph.live_nodes():
        kink = ops.OPS[node.op].kink if node.op in ops.OPS else None
        if kink is not None:
            d = np.asarray(kink(*(env[i.id] for i in node.inputs), **node.attrs))
            if d.size:
                dist = min(dist, float(np.min(d)))
    return dist


def first_nonfinite(graph: Graph, env: dict[int, Any]):
    """The first node whose value has a NaN or an infinity, or None."""
    for node in graph.live_nodes():
        v = env.get(node.id)
        if v is not None and v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            return node
    return None


def draw_point(
    params: tuple[ParamSpec, ...], graph: Graph, rng: np.random.Generator
) -> tuple[list, str | None]:
    """Arguments away from kinks and where every intermediate value is finite."""
    samplers: list[Callable[[tuple], np.ndarray]] = [
        lambda s: rng.standard_normal(s),
        lambda s: rng.uniform(0.5, 1.5, s),
        lambda s: rng.uniform(-0.9, 0.9, s),
        lambda s: rng.uniform(0.1, 0.9, s),
    ]
    warning = None
    args: list = []
    for attempt in range(DRAWS):
        sample = samplers[attempt % len(samplers)]
        args = [np.asarray(sample(p.shape), dtype=np.float64) for p in params]
        env = evaluate(graph, args)
        bad = first_nonfinite(graph, env)
        if bad is not None:
            where = f" at {bad.src}" if bad.src else ""
            warning = (
                f"{bad.op}{where} gives a NaN or infinity at the random points tried; "
                "the check may report a failure that is really the function's domain"
            )
            continue
        if _kink_distance(graph, env) > KINK_DISTANCE:
            return args, None
    return args, warning


def _call_user(fn: Callable, args: list) -> np.ndarray:
    with np.errstate(all="ignore"):
        # scalars as numpy scalars: they have .reshape, [None], ... as the user may expect
        return np.asarray(fn(*[a if a.ndim else np.float64(a) for a in args]), dtype=np.float64)


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
) -> FunctionReport:
    """Compare the generated gradients of `spec` with central differences on the user's function."""
    rng = np.random.default_rng(seed)
    dtype = "f32" if any(p.dtype == "f32" for p in spec.params) else "f64"
    atol, rtol = TOL[dtype]
    index = {p.name: i for i, p in enumerate(spec.params)}
    reports = [ArgReport("value", graph.outputs[0].shape)]
    reports += [ArgReport(n, spec.params[index[n]].shape) for n in wrt]
    value_and_grad = getattr(module, f"{spec.name}_value_and_grad")
    vjp = getattr(module, f"{spec.name}_vjp")
    forward_only = getattr(module, spec.name)
    report = FunctionReport(spec.name, reports)
    scalar_out = graph.outputs[0].shape == ()
    for k in range(POINTS):
        args, warning = draw_point(spec.params, graph, rng)
        if warning and warning not in report.warnings:
            report.warnings.append(warning)
        margs = _to_module_args(args, spec.params)
        f_user = _call_user(spec.fn, args)
        out_g = np.ones(()) if scalar_out else rng.standard_normal(graph.outputs[0].shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if scalar_out:
                value, grads = value_and_grad(*margs)
            else:
                value, grads = vjp(*margs, out_g.astype(np.float32) if dtype == "f32" else out_g)
            plain = forward_only(*margs)
            split = vjp(*margs, out_g.astype(np.float32) if dtype == "f32" else out_g)
        _compare_array(reports[0], np.asarray(value, np.float64), f_user, f"point {k}", atol, rtol)
        _compare_array(
            reports[0],
            np.asarray(plain, np.float64),
            f_user,
            f"point {k} ({spec.name})",
            atol,
            rtol,
            shown=False,
        )
        for i, name in enumerate(wrt):
            _compare_array(
                reports[1 + i],
                np.asarray(split[1][i], np.float64),
                np.asarray(grads[i], np.float64),
                f"point {k} (vjp vs value_and_grad)",
                atol,
                rtol,
                shown=False,
            )

        def scalarized(xs: list) -> float:
            return float(np.sum(out_g * _call_user(spec.fn, xs)))

        for i, name in enumerate(wrt):
            j = index[name]
            _check_arg(
                reports[1 + i],
                scalarized,
                args,
                j,
                np.asarray(grads[i], np.float64),
                k,
                rng,
                atol,
                rtol,
            )
    return report


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
        rep.ok, rep.where, rep.excess = False, f"{where}: shape {a.shape} != {n.shape}", np.inf
        return
    for idx in (
        np.ndindex(a.shape)
        if a.size <= ELEMENTWISE_LIMIT
        else [np.unravel_index(np.argmax(np.abs(a - n)), a.shape)]
    ):
        at = f"{where} {list(idx) if idx else ''}".strip()
        rep.see(float(a[idx]), float(n[idx]), at, atol, rtol, shown)


def _check_arg(rep, f, args, j, grad, point, rng, atol, rtol) -> None:
    x = args[j]
    if grad.shape != x.shape:
        rep.ok, rep.where, rep.excess = False, f"shape {grad.shape}, expected {x.shape}", np.inf
        return

    def at(xj: np.ndarray) -> float:
        return f([xj if i == j else a for i, a in enumerate(args)])

    def difference(step: np.ndarray, h: float) -> tuple[float, float]:
        """The central difference, and the rounding error it carries: float64 values of f
        of size |f| differ by at least eps |f|, which the step divides by 2h."""
        plus, minus = at(x + step), at(x - step)
        return (plus - minus) / (2 * h), ROUNDING * max(abs(plus), abs(minus)) / h

    def element(idx: tuple) -> None:
        h = 1e-6 * max(1.0, abs(float(x[idx])))
        e = np.zeros_like(x)
        e[idx] = h
        n, noise = difference(e, h)
        rep.see(float(grad[idx]), n, f"point {point} {list(idx)}", atol + noise, rtol)

    if x.size <= ELEMENTWISE_LIMIT:
        for idx in np.ndindex(x.shape):
            element(idx)
        return
    for d in range(DIRECTIONS):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)
        h = 1e-6 * max(1.0, float(np.max(np.abs(x))))
        n, noise = difference(h * v, h)
        rep.see(float(np.sum(grad * v)), n, f"point {point} direction {d}", atol + noise, rtol)
    for _ in range(DIRECTIONS):
        element(tuple(int(rng.integers(0, s)) for s in x.shape))


def format_report(report: FunctionReport) -> str:
    """The per-argument table the CLI prints."""
    rows = [("arg", "shape", "worst at", "generated", "numeric", "rel err", "")]
    for a in report.args:
        rows.append(
            (
                a.name,
                str(a.shape),
                a.where,
                f"{a.generated:.6g}",
                f"{a.numeric:.6g}",
                f"{a.rel_err:.1e}",
                "ok" if a.ok else "FAIL",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"check {report.name}: {POINTS} points, central differences"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines += [f"  warning: {w}" for w in report.warnings]
    return "\n".join(lines)
