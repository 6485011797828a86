"""The C target's three files: the .c and .h (templates c_module.c.j2, c_header.h.j2) and the
loader module (c_loader.py.j2) with its CPython wrapper (c_wrapper.c.j2)."""

from __future__ import annotations

import re
from typing import Sequence

import jinja2

from .. import __version__
from . import c_expr as C
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
        )
    )


def h_file(units: Sequence[CUnit], stem: str, source: str) -> str:
    for u in units:
        u.out_text = _shape_text(u.out_shape, u.out_dtype)  # type: ignore[attr-defined]
        u.dims_args = f"({', '.join(d for d, _ in u.dims)})" if u.dims else ""  # type: ignore
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
    fn_name: str, inputs: list, outputs: list, shape: str, work: int, lead: Sequence[str] = ()
) -> str:
    """One METH_FASTCALL function: convert `inputs`, call the C function, return.

    `inputs` [(name, shape, kind, dtype)], kind "param" (passed by value when a scalar) or
    "g" / "saved" (always a pointer); `outputs` [(name, shape, dtype)]; `shape` how they
    are returned: "value", "grads", "value+grads", "value+saved"; `lead` the C arguments
    before the rest (the sizes of named dims).
    """
    lines = [
        f"static PyObject *w_{fn_name}(PyObject *self, PyObject *const *args, Py_ssize_t nargs)",
        "{",
        "    PyObject *result = NULL;",
    ]
    heap = work > 4096  # a small work buffer lives on the stack, a large one is allocated
    if heap:
        lines.append("    double *work = NULL;")
    elif work:
        lines.append(f"    double work[{work}];")
    call: list[str] = list(lead)
    cleanup: list[str] = []
    convert: list[str] = []
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
        else:
            dims = ", ".join(str(d) for d in shp)
            lines.append(f"    static const npy_intp d_{name}[] = {{{dims}}};")
            lines.append(f"    PyArrayObject *a_{name} = NULL;")
            want = "(" + ", ".join(map(str, shp)) + ("," if len(shp) == 1 else "") + ")"
            convert.append(
                f"    a_{name} = gg_array(args[{k}], {NPY.get(dtype, 'NPY_DOUBLE')}, {len(shp)}, d_{name}, "
                f'"{fn_name}", "{name}", "{want}");'
            )
            convert.append(f"    if (a_{name} == NULL) goto done;")
            call.append(f"(const {c} *)PyArray_DATA(a_{name})")
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
        else:
            dims = ", ".join(str(d) for d in shp)
            lines.append(f"    static const npy_intp e_{name}[] = {{{dims}}};")
            lines.append(f"    PyObject *o_{name} = NULL;")
            made.append(
                f"    o_{name} = PyArray_SimpleNew({len(shp)}, (npy_intp *)e_{name}, "
                f"{NPY.get(dtype, 'NPY_DOUBLE')});"
            )
            made.append(f"    if (o_{name} == NULL) goto done;")
            call.append(f"({c} *)PyArray_DATA((PyArrayObject *)o_{name})")
            cleanup.append(f"    Py_XDECREF(o_{name});")
            objs.append(f"o_{name}")
    call.append("work" if work else "NULL")
    lines.append("    int status;")
    lines.append("    (void)self;")
    lines.append(f'    if (gg_nargs("{fn_name}", nargs, {len(inputs)}) < 0) return NULL;')
    lines += convert
    lines += made
    if heap:
        lines.append(f"    work = (double *)PyMem_RawMalloc({work} * sizeof(double));")
        lines.append("    if (work == NULL) { PyErr_NoMemory(); goto done; }")
        lines.append("    Py_BEGIN_ALLOW_THREADS")  # (no Python objects touched inside)
        lines.append(f"    status = {fn_name}({', '.join(call)});")
        lines.append("    Py_END_ALLOW_THREADS")
    else:
        lines.append(f"    status = {fn_name}({', '.join(call)});")
    lines.append(f'    if (status != 0) {{ gg_failed("{fn_name}", status); goto done; }}')
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
        n, work = u.name, u.work_size
        lead = [str(size) for _, size in u.dims]
        params = [(p, s, "param", t) for p, s, t in u.params]
        grads = [(f"g_{p}", s, t) for p, s, t in u.wrt]
        value = [("value", u.out_shape, u.out_dtype)]
        g = [("g", u.out_shape, "g", u.out_dtype)]
        saved_size = (max(u.saved_size, 1),)  # (a buffer of one unused double when empty)
        wrappers.append(_wrapper(n, params, value, "value", work, lead))
        if u.out_shape == ():
            wrappers.append(
                _wrapper(f"{n}_value_and_grad", params, value + grads, "value+grads", work, lead)
            )
        else:
            msg = (
                f"{n} returns an array, and value_and_grad needs a scalar output: "
                f"use {n}_vjp(*args, g) with g the upstream gradient"
            )
            wrappers.append(_refusing(f"{n}_value_and_grad", msg))
        wrappers.append(_wrapper(f"{n}_vjp", params + g, value + grads, "value+grads", work, lead))
        saved = [("saved", saved_size, "f64")]
        wrappers.append(_wrapper(f"{n}_forward", params, value + saved, "value+saved", work, lead))
        back = [("saved", saved_size, "saved", "f64")] + g
        wrappers.append(_wrapper(f"{n}_backward", back, grads, "grads", work, lead))
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
