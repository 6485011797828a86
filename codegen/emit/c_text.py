"""The C target's three files: the .c and .h (templates c_module.c.j2, c_header.h.j2) and the
loader module (c_loader.py.j2) with its CPython wrapper (c_wrapper.c.j2)."""

from __future__ import annotations

import functools
import re
from typing import Sequence

import jinja2

from .. import __version__
from . import c_expr as C
from ..sizes import Size, involves, macro_text
from .c import CUnit
from .python import template_dir


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _header_param(decl: str) -> str:
    """A definition's parameter as the header declares it: without restrict, which C++
    lacks (a top-level qualifier: the types stay compatible)."""
    return decl.replace(" *restrict ", " *")


def _param_name(decl: str) -> str:
    return re.split(r"[ *]", decl)[-1]


def _finish(units: Sequence[CUnit]) -> None:
    """Mark parameters a body does not read `(void)p;` (-Wextra warns of them)."""
    for u in units:
        for f in u.functions:
            body = "\n".join(f.lines)
            unused = [
                _param_name(p)
                for p in f.params
                if not re.search(rf"\b{re.escape(_param_name(p))}\b", body)
            ]
            f.lines = [f"(void){n};" for n in unused] + f.lines
            f.header_params = [_header_param(p) for p in f.params]


def _shape_text(shape: tuple, dtype: str) -> str:
    return f"{dtype}[{','.join(map(str, shape))}]"


def c_file(units: Sequence[CUnit], stem: str, source: str, constants: list[str]) -> str:
    _finish(units)
    body = "\n".join(line for u in units for f in u.functions for line in f.lines)
    helpers = [text for name, text in C.HELPERS.items() if re.search(rf"\b{name}\(", body)]
    return (
        _env()
        .get_template("c_module.c.j2")
        .render(
            version=__version__,
            source=source,
            header=f"{stem}.h",
            units=units,
            constants=constants,
            helpers=helpers,
            wide=any(f.wide for u in units for f in u.functions),
        )
    )


def h_file(units: Sequence[CUnit], stem: str, source: str) -> str:
    for u in units:
        u.out_text = _shape_text(u.out_shape, u.out_dtype)  # type: ignore[attr-defined]
        u.dims_args = f"({', '.join(d for d, _ in u.dims)})" if u.dims else ""  # type: ignore
        u.work_text = macro_text(u.work_size)  # type: ignore[attr-defined]
        u.saved_text = macro_text(u.saved_size)  # type: ignore[attr-defined]
    guard = re.sub(r"\W", "_", stem).upper() + "_H"
    return (
        _env()
        .get_template("c_header.h.j2")
        .render(version=__version__, source=source, units=units, guard=guard)
    )


# ---- the CPython wrapper ----


NPY = {"f64": "NPY_DOUBLE", "f32": "NPY_FLOAT"}
# integer and boolean results (np.argsort's) are doubles in C memory, handed back as numpy
# gives them
NPY_CAST = {"i64": "NPY_INT64", "bool": "NPY_BOOL"}


def _wrapper(
    fn_name: str,
    inputs: list,
    outputs: list,
    shape: str,
    work,
    lead: Sequence[str] = (),
    assumed: str = "",
    sizes: Sequence[int] = (),
) -> str:
    """One METH_FASTCALL function: convert `inputs`, call the C function, return.

    `inputs` [(name, shape, kind, dtype)], kind "param" (passed by value when a scalar) or
    "g" / "saved" (always a pointer); `outputs` [(name, shape, dtype)]; `shape` how they
    are returned: "value", "grads", "value+grads", "value+saved"; `lead` the named dims
    (the C function's leading arguments), `sizes` theirs when generated. Their sizes are
    read from the first parameter
    that has each as an axis, or from the head of `saved`, where the forward wrote them;
    every shape is then checked against them. `assumed`: what status 1 means for it.
    """
    lines = [
        f"static PyObject *w_{fn_name}(PyObject *self, PyObject *const *args, Py_ssize_t nargs)",
        "{",
        "    PyObject *result = NULL;",
    ]
    k_dims = len(lead)
    heap = involves(work) or work > 4096  # a small work buffer lives on the stack
    if heap:
        lines.append("    double *work = NULL;")
    elif work:
        lines.append(f"    double work[{work}];")
    for d, size in zip(lead, sizes):  # (a dim fixed where generated keeps that size)
        lines.append(f"    long {d} = {size};")
    call: list[str] = list(lead)
    cleanup: list[str] = []
    convert: list[str] = []
    sized: list[str] = []  # reading the dims, then checking the shapes that use them
    checks: list[str] = []
    source: dict[str, str] = {}  # dim -> where its size was read, for messages
    for k, (name, shp, kind, dtype) in enumerate(inputs):
        c = "float" if dtype == "f32" else "double"
        if shp == ():
            lines.append(f"    double s_{name};")
            convert.append(f"    if (gg_scalar(args[{k}], &s_{name}) < 0) goto done;")
            if kind == "param":
                call.append(f"s_{name}")
            elif dtype == "f32":
                lines.append(f"    float f_{name};")
                convert.append(f"    f_{name} = (float)s_{name};")
                call.append(f"&f_{name}")
            else:
                call.append(f"&s_{name}")
            continue
        want = "(" + ", ".join(map(_shape_entry, shp)) + ("," if len(shp) == 1 else "") + ")"
        lines.append(f"    PyArrayObject *a_{name} = NULL;")
        npy = NPY.get(dtype, "NPY_DOUBLE")
        if involves(shp) or (kind == "saved" and lead):
            lines.append(f"    npy_intp d_{name}[{len(shp)}];")
            convert.append(
                f'    a_{name} = gg_array(args[{k}], {npy}, {len(shp)}, NULL, "{fn_name}", '
                f'"{name}", "{want}");'
            )
            convert.append(f"    if (a_{name} == NULL) goto done;")
            if kind == "saved" and lead:  # the dims the forward wrote at its head
                sized.append(f'    if (gg_head(a_{name}, {k_dims}, "{fn_name}") < 0) goto done;')
                for j, d in enumerate(lead):
                    sized.append(f"    {d} = (long)((const double *)PyArray_DATA(a_{name}))[{j}];")
                    source.setdefault(d, "saved")
            for axis, size in enumerate(shp):
                d = _dim_name(size)
                if kind == "param" and d is not None and d not in source:
                    sized.append(f"    {d} = (long)PyArray_DIM(a_{name}, {axis});")
                    source[d] = f"axis {axis} of {name}"
            for axis, size in enumerate(shp):
                checks.append(f"    d_{name}[{axis}] = {size};")
            got = ", ".join(f"{d} = %ld" for d in lead)
            fmt = f"{fn_name}: {name} must have shape {want}, with {got}"
            checks.append(
                f"    if (!gg_shape(a_{name}, d_{name})) {{ PyErr_Format(PyExc_ValueError, "
                f'"{fmt} ({_sources(lead, source)})", {", ".join(lead)}); goto done; }}'
            )
        else:
            dims = ", ".join(str(d) for d in shp)
            lines.append(f"    static const npy_intp d_{name}[] = {{{dims}}};")
            if lead and assumed:  # (a dim fixed: say so)
                want = f"{want}: {assumed}"
            convert.append(
                f"    a_{name} = gg_array(args[{k}], {npy}, {len(shp)}, d_{name}, "
                f'"{fn_name}", "{name}", "{want}");'
            )
            convert.append(f"    if (a_{name} == NULL) goto done;")
        skip = f" + {k_dims}" if kind == "saved" and lead else ""
        call.append(f"(const {c} *)PyArray_DATA(a_{name}){skip}")
        cleanup.append(f"    Py_XDECREF(a_{name});")
    made: list[str] = []
    objs: list[str] = []
    for name, shp, dtype in outputs:
        c = "float" if dtype == "f32" else "double"
        if shp == ():
            lines.append(f"    {c} o_{name} = 0;")
            call.append(f"&o_{name}")
            if dtype in NPY_CAST:
                objs.append(
                    f"PyArray_Scalar(&(npy_{'int64' if dtype == 'i64' else 'bool'})"
                    f"{{(npy_{'int64' if dtype == 'i64' else 'bool'})o_{name}}}, "
                    f"PyArray_DescrFromType({NPY_CAST[dtype]}), NULL)"
                )
            else:
                objs.append(
                    f"gg_float32(o_{name})" if dtype == "f32" else f"PyFloat_FromDouble(o_{name})"
                )
            continue
        if involves(shp):
            lines.append(f"    npy_intp e_{name}[{len(shp)}];")
            made += [f"    e_{name}[{axis}] = {size};" for axis, size in enumerate(shp)]
        else:
            dims = ", ".join(str(d) for d in shp)
            lines.append(f"    static const npy_intp e_{name}[] = {{{dims}}};")
        lines.append(f"    PyObject *o_{name} = NULL;")
        made.append(
            f"    o_{name} = PyArray_SimpleNew({len(shp)}, (npy_intp *)e_{name}, "
            f"{NPY.get(dtype, 'NPY_DOUBLE')});"
        )
        made.append(f"    if (o_{name} == NULL) goto done;")
        data = f"PyArray_DATA((PyArrayObject *)o_{name})"
        if name == "saved" and lead:  # the dims first, for the backward to read
            for j, d in enumerate(lead):
                made.append(f"    ((double *){data})[{j}] = (double){d};")
            call.append(f"({c} *){data} + {k_dims}")
        else:
            call.append(f"({c} *){data}")
        cleanup.append(f"    Py_XDECREF(o_{name});")
        objs.append(f"o_{name}")
    call.append("work" if heap or work else "NULL")
    lines.append("    int status;")
    lines.append("    (void)self;")
    lines.append(f'    if (gg_nargs("{fn_name}", nargs, {len(inputs)}) < 0) return NULL;')
    lines += convert
    lines += sized
    lines += checks
    lines += made
    if heap:
        size = f"(size_t){work} + 1" if involves(work) else str(work)
        lines.append(f"    work = (double *)PyMem_RawMalloc(({size}) * sizeof(double));")
        lines.append("    if (work == NULL) { PyErr_NoMemory(); goto done; }")
        lines.append("    Py_BEGIN_ALLOW_THREADS")  # (no Python objects touched inside)
        lines.append(f"    status = {fn_name}({', '.join(call)});")
        lines.append("    Py_END_ALLOW_THREADS")
    else:
        lines.append(f"    status = {fn_name}({', '.join(call)});")
    why = assumed or "a named dim differs from the size generated for"
    lines.append(f'    if (status != 0) {{ gg_failed("{fn_name}", status, "{why}"); goto done; }}')
    for name, shp, dtype in outputs:
        if shp != () and dtype in NPY_CAST:
            lines += [
                "    {",
                f"        PyObject *cast = PyArray_Cast((PyArrayObject *)o_{name}, "
                f"{NPY_CAST[dtype]});",
                f"        Py_DECREF(o_{name});",
                f"        o_{name} = cast;",
                f"        if (o_{name} == NULL) goto done;",
                "    }",
            ]
    if shape == "value":
        lines.append(f"    result = {objs[0]};")
    elif shape == "grads":  # tuples made directly: Py_BuildValue parses a format each call
        lines.append(f"    result = gg_tuple({len(objs)}, {', '.join(objs)});")
    elif shape == "value+saved":
        lines.append(f"    result = gg_tuple(2, {objs[0]}, {objs[1]});")
    else:
        inner = f"gg_tuple({len(objs) - 1}, {', '.join(objs[1:])})"
        lines.append(f"    result = gg_tuple(2, {objs[0]}, {inner});")
    for name, shp, _ in outputs:  # (the result took these references, or dropped them)
        if shp != ():
            lines.append(f"    o_{name} = NULL;")
    lines.append("done:")
    lines += cleanup
    if heap:
        lines.append("    PyMem_RawFree(work);")
    lines.append("    return result;")
    lines.append("}")
    return "\n".join(lines)


def _shape_entry(size) -> str:
    """A size as the loader's messages write it: `n`, `3*n`."""
    return str(size).strip("()").replace(" * ", "*") if isinstance(size, Size) else str(size)


def _dim_name(size) -> str | None:
    """The dim a size is, if it is one dim itself."""
    if isinstance(size, Size) and len(size.poly) == 1:
        ((m, c),) = size.poly.items()
        if c == 1 and len(m) == 1:
            return m[0]
    return None


def _sources(lead: Sequence[str], source: dict[str, str]) -> str:
    return ", ".join(f"{d} from {source.get(d, '?')}" for d in lead)


def _assumed(u: CUnit) -> str:
    """What a call with other sizes of the named dims meets (status 1), in words."""
    parts = []
    if u.fixed:
        sizes = ", ".join(f"{d}={size}" for d, size in u.dims if d in u.fixed)
        parts.append(f"its code is generated for {sizes} only")
    if u.conditions:
        parts.append("it needs " + " and ".join(u.conditions))
    if not parts:
        return ""
    return "; ".join(parts) + " (generate it again with other --dim sizes)"


def _refusing(fn_name: str, message: str) -> str:
    return "\n".join(
        [
            f"static PyObject *w_{fn_name}(PyObject *self, PyObject *const *args, Py_ssize_t nargs)",
            "{",
            "    (void)self;",
            "    (void)args;",
            "    (void)nargs;",
            f'    PyErr_SetString(PyExc_ValueError, "{message}");',
            "    return NULL;",
            "}",
        ]
    )


def loader_file(units: Sequence[CUnit], stem: str, source: str) -> str:
    wrappers, names = [], []
    for u in units:
        n = u.name
        # (every wrapper of the unit: its work size, its dims and what they must be)
        wrap = functools.partial(
            _wrapper,
            work=u.work_size,
            lead=[d for d, _ in u.dims],
            assumed=_assumed(u),
            sizes=[size for _, size in u.dims],
        )
        params = [(p, s, "param", t) for p, s, t in u.params]
        grads = [(f"g_{p}", s, t) for p, s, t in u.wrt]
        value = [("value", u.out_shape, u.out_dtype)]
        g = [("g", u.out_shape, "g", u.out_dtype)]
        if u.dims:  # the dims at the head, then what backward reads
            saved_size: tuple = (len(u.dims) + u.saved_size,)
        else:  # (a buffer of one unused double when empty)
            saved_size = (max(u.saved_size, 1),)
        wrappers.append(wrap(n, params, value, "value"))
        if u.out_shape == ():
            wrappers.append(wrap(f"{n}_value_and_grad", params, value + grads, "value+grads"))
        else:
            msg = (
                f"{n} returns an array, and value_and_grad needs a scalar output: "
                f"use {n}_vjp(*args, g) with g the upstream gradient"
            )
            wrappers.append(_refusing(f"{n}_value_and_grad", msg))
        wrappers.append(wrap(f"{n}_vjp", params + g, value + grads, "value+grads"))
        saved = [("saved", saved_size, "f64")]
        wrappers.append(wrap(f"{n}_forward", params, value + saved, "value+saved"))
        back = [("saved", saved_size, "saved", "f64")] + g
        wrappers.append(wrap(f"{n}_backward", back, grads, "grads"))
        names += [n, f"{n}_value_and_grad", f"{n}_vjp", f"{n}_forward", f"{n}_backward"]
    env = _env()
    wrapper = env.get_template("c_wrapper.c.j2").render(
        version=__version__, stem=stem, wrappers=wrappers, names=names
    )
    return env.get_template("c_loader.py.j2").render(
        version=__version__,
        source=source,
        stem=stem,
        functions=[u.name for u in units],
        names=names,
        wrapper=wrapper,
    )
