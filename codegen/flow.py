"""Stage 1 (load), control flow: the user's `if`, `while` and `for` statements, conditional
expressions and `and` / `or` / `not` are rewritten, before the module runs, into calls of
hooks that receive the bodies as functions (AutoGraph's approach).

    if x > 0:                      def __gg_then_1(y): y = np.sqrt(x); return (y,)
        y = np.sqrt(x)      ->     def __gg_else_1(y): y = -x; return (y,)
    else:                          (y,) = __gradgen_if__(x > 0, __gg_then_1, __gg_else_1,
        y = -x                                            ("y",), ("y",), locals(), 3)

Outside a trace the hooks run the code as Python would (`runtime.py`); while tracing,
a test on a traced value makes the hook trace the bodies into a region (`regions.py`).
A body's function takes every name the statement assigns (so that `y = y + 1` reads the
value from before) and returns those that may be read afterwards: a name read after the
statement, or anywhere in an enclosing loop. `break` and `continue` become flags, with the
rest of the body guarded by them, and `return` inside `if`s becomes the last statement of
every branch (the code after the `if` moves into the branches that fall through).
Statements this cannot rewrite (a `return` or `yield` inside a loop, `global`, `nonlocal`,
a loop's `else:`) are left as they are: on Python values they run as before, and a test on
a traced value there is refused at its line.
"""

from __future__ import annotations

import ast
import itertools
from collections import Counter

IF = "__gradgen_if__"
WHILE = "__gradgen_while__"
FOR = "__gradgen_for__"
IFEXP = "__gradgen_ifexp__"
AND = "__gradgen_and__"
OR = "__gradgen_or__"
NOT = "__gradgen_not__"
HOOKS = (IF, WHILE, FOR, IFEXP, AND, OR, NOT)

_LOAD, _STORE = ast.Load(), ast.Store()
_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Lambda,
    ast.ClassDef,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def rewrite(tree: ast.Module) -> None:
    """Rewrite the control flow of every function in the module, in place."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and _rewritable(node):
            _Function(node).run()


def _rewritable(fn: ast.FunctionDef) -> bool:
    for node in _walk_scope(fn.body):
        if isinstance(node, (ast.Global, ast.Nonlocal, ast.Yield, ast.YieldFrom, ast.Await)):
            return False
    return True


def _walk_scope(stmts):
    """The nodes of `stmts`, not descending into nested functions, lambdas or classes."""
    todo = list(stmts)
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, _SCOPES):
                todo.append(child)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield child  # (its name is assigned here)


def _loads(stmts) -> Counter:
    """How many times each name is read in `stmts` (nested functions included: closures)."""
    out: Counter = Counter()
    for s in stmts:
        for node in ast.walk(s):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                out[node.id] += 1
    return out


def _assigned(stmts) -> list[str]:
    """The names `stmts` bind (in order of first binding), nested scopes excluded; an array
    written into (`x[i] = v`, `x += v`) counts as its name bound again."""
    out: dict[str, None] = {}
    for node in _walk_scope(stmts):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            out[node.id] = None
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = None
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                out[(alias.asname or alias.name).split(".")[0]] = None
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            base = node.value
            while isinstance(base, ast.Subscript):
                base = base.value
            if isinstance(base, ast.Name):
                out[base.id] = None
    return [n for n in out if n != "_"] + (["_"] if "_" in out else [])


def _has(stmts, kinds, through_loops: bool = False) -> bool:
    """Whether `stmts` hold a statement of `kinds` (not in nested scopes; not inside nested
    loops unless `through_loops`)."""
    todo = list(stmts)
    while todo:
        node = todo.pop()
        if isinstance(node, kinds):
            return True
        if isinstance(node, _SCOPES):
            continue
        if not through_loops and isinstance(node, (ast.For, ast.While, ast.AsyncFor)):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return False


def _ends_in_return(stmts: list[ast.stmt]) -> bool:
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    return isinstance(last, ast.If) and _ends_in_return(last.body) and _ends_in_return(last.orelse)


def _at(node: ast.AST) -> dict:
    return {
        "lineno": node.lineno,
        "col_offset": node.col_offset,
        "end_lineno": getattr(node, "end_lineno", node.lineno),
        "end_col_offset": getattr(node, "end_col_offset", node.col_offset),
    }


class _Function:
    """The rewrite of one function's body."""

    def __init__(self, fn: ast.FunctionDef):
        self.fn = fn
        self.loads = _loads(fn.body)
        self.ids = itertools.count(1)

    def run(self) -> None:
        body = self._lift_returns(self.fn.body)
        self.fn.body = self._block(body, loop=None)

    # ---- return inside `if`: every branch ends in its return
    def _lift_returns(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        for k, st in enumerate(stmts):
            if not isinstance(st, ast.If) or not _has([st], ast.Return):
                continue
            if _has_return_in_loop(st):
                return stmts  # a return inside a loop: left as it is
            rest = stmts[k + 1 :]
            if not rest:
                rest = [ast.Return(None, **_at(st))]
            body = st.body if _ends_in_return(st.body) else st.body + rest
            orelse = st.orelse if _ends_in_return(st.orelse) else st.orelse + rest
            new = ast.If(st.test, self._lift_returns(body), self._lift_returns(orelse), **_at(st))
            return stmts[:k] + [new]
        return stmts

    # ---- statements
    def _block(self, stmts: list[ast.stmt], loop: ast.stmt | None) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for st in stmts:
            out.extend(self._stmt(st, loop))
        return out

    def _stmt(self, st: ast.stmt, loop) -> list[ast.stmt]:
        if isinstance(st, ast.If):
            return self._if(st, loop)
        if isinstance(st, ast.While) and self._loop_ok(st):
            return self._loop(st, loop)
        if isinstance(st, ast.For) and self._loop_ok(st):
            return self._loop(st, loop)
        if isinstance(st, (ast.For, ast.While, ast.With, ast.Try)):
            for field in ("body", "orelse", "finalbody"):
                if hasattr(st, field):
                    setattr(st, field, self._block(getattr(st, field), loop or st))
            for h in getattr(st, "handlers", ()):
                h.body = self._block(h.body, loop)
        _Expressions().visit(st)
        return [st]

    def _loop_ok(self, st) -> bool:
        return not st.orelse and not _has(st.body, ast.Return, through_loops=True)

    def _live(self, names: list[str], st: ast.stmt, loop) -> list[str]:
        """The names of `names` that may be read after `st` runs."""
        inside = _loads([st])
        around = _loads([loop]) if loop is not None else Counter()
        looping = isinstance(st, (ast.For, ast.While))
        body = getattr(st, "body", [])
        return [
            n
            for n in names
            if self.loads[n] > inside[n]
            or around[n]
            or (looping and inside[n] and _read_first(body, n))
            or n.startswith("__gg_")
        ]

    def _def(self, name: str, params: list[str], body: list[ast.stmt], at) -> ast.FunctionDef:
        args = ast.arguments(
            posonlyargs=[],
            args=[ast.arg(p, **at) for p in params],
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[],
        )
        return ast.FunctionDef(name, args, body or [ast.Pass(**at)], [], None, **at)

    def _names(self, names: list[str], at) -> ast.Tuple:
        return ast.Tuple([ast.Constant(n, **at) for n in names], _LOAD, **at)

    def _tuple(self, names: list[str], ctx, at) -> ast.Tuple:
        return ast.Tuple([ast.Name(n, ctx, **at) for n in names], ctx, **at)

    def _call(self, hook: str, args: list[ast.expr], at) -> ast.Call:
        return ast.Call(ast.Name(hook, _LOAD, **at), args, [], **at)

    def _locals(self, at) -> ast.Call:
        return ast.Call(ast.Name("locals", _LOAD, **at), [], [], **at)

    def _if(self, st: ast.If, loop) -> list[ast.stmt]:
        at = _at(st)
        k = next(self.ids)
        returns = _ends_in_return(st.body) and _ends_in_return(st.orelse)
        if _has([st], ast.Return) and not returns:
            st.body, st.orelse = self._block(st.body, loop), self._block(st.orelse, loop)
            _Expressions().visit(st.test)
            return [st]  # (a return it could not lift: left as it is)
        params = _assigned(st.body + st.orelse)
        outs = [] if returns else self._live(params, st, loop)
        body = self._block(st.body, loop)
        orelse = self._block(st.orelse, loop)
        if not returns:
            body = body + [ast.Return(self._tuple(outs, _LOAD, at), **at)]
            orelse = orelse + [ast.Return(self._tuple(outs, _LOAD, at), **at)]
        then_fn = self._def(f"__gg_then_{k}", params, body, at)
        else_fn = self._def(f"__gg_else_{k}", params, orelse, at)
        test = _Expressions().visit(st.test)
        call = self._call(
            IF,
            [
                test,
                ast.Name(then_fn.name, _LOAD, **at),
                ast.Name(else_fn.name, _LOAD, **at),
                self._names(params, at),
                self._names(outs, at),
                self._locals(at),
                ast.Constant(st.lineno, **at),
                ast.Constant(returns, **at),
            ],
            at,
        )
        if returns:
            last: ast.stmt = ast.Return(call, **at)
        elif outs:
            last = ast.Assign([self._tuple(outs, _STORE, at)], call, **at)
        else:
            last = ast.Expr(call, **at)
        return [then_fn, else_fn, last]

    def _loop(self, st, loop) -> list[ast.stmt]:
        at = _at(st)
        k = next(self.ids)
        brk, cnt = f"__gg_break_{k}", f"__gg_continue_{k}"
        breaks = _has(st.body, ast.Break)
        continues = _has(st.body, ast.Continue)
        body = _Jumps(brk if breaks else None, cnt if continues else None).block(st.body)
        if continues:
            body = [_assign(cnt, False, at), *body]
        head: list[ast.stmt] = [_assign(brk, False, at)] if breaks else []
        target = st.target if isinstance(st, ast.For) else None
        params = _assigned(([ast.Assign([target], ast.Constant(0), **at)] if target else []) + body)
        params = [p for p in params if p != cnt] + ([brk] if breaks and brk not in params else [])
        outs = self._live(params, st, loop)
        if target is not None:  # the loop variable is carried only if read after the loop
            own = set(_assigned([ast.Assign([target], ast.Constant(0), **at)]))
            inside = _loads([st])
            outs = [o for o in outs if o not in own or self.loads[o] > inside[o] or loop]
        if breaks and brk not in outs:
            outs.append(brk)
        inner = self._block(body, loop or st)
        inner.append(ast.Return(self._tuple(outs, _LOAD, at), **at))
        item = f"__gg_item_{k}"
        if target is not None:
            inner.insert(0, ast.Assign([target], ast.Name(item, _LOAD, **at), **at))
        body_fn = self._def(
            f"__gg_body_{k}", ([item] if target is not None else []) + params, inner, at
        )
        common = [
            self._names(params, at),
            self._names(outs, at),
            self._locals(at),
            ast.Constant(st.lineno, **at),
            ast.Constant(brk if breaks else None, **at),
        ]
        fns: list[ast.stmt] = [body_fn]
        if isinstance(st, ast.While):
            test = st.test
            if breaks:
                test = ast.BoolOp(
                    ast.And(),
                    [ast.UnaryOp(ast.Not(), ast.Name(brk, _LOAD, **at), **at), test],
                    **at,
                )
            test = _Expressions().visit(test)
            test_fn = self._def(f"__gg_test_{k}", params, [ast.Return(test, **at)], at)
            fns.insert(0, test_fn)
            args = [ast.Name(test_fn.name, _LOAD, **at), ast.Name(body_fn.name, _LOAD, **at)]
            call = self._call(WHILE, args + common, at)
        else:
            it = _Expressions().visit(st.iter)
            pure = ast.Constant(_pure(st.body), **at)
            call = self._call(FOR, [it, ast.Name(body_fn.name, _LOAD, **at)] + common + [pure], at)
        last = (
            ast.Assign([self._tuple(outs, _STORE, at)], call, **at)
            if outs
            else ast.Expr(call, **at)
        )
        return head + fns + [last]


def _read_first(stmts: list[ast.stmt], name: str) -> bool:
    """Whether a pass through `stmts` may read `name` before it assigns it (the value from
    the iteration before): a loop carries only such names (and those read after it).
    Conservative: any statement that reads it, other than a plain assignment that does
    not, counts as a read."""
    for st in stmts:
        if isinstance(st, ast.Assign) and all(isinstance(t, ast.Name) for t in st.targets):
            if _loads([st.value])[name]:
                return True
            if any(t.id == name for t in st.targets):
                return False
            continue
        if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) and st.value:
            if _loads([st.value])[name]:
                return True
            if st.target.id == name:
                return False
            continue
        if _loads([st])[name]:
            return True
    return False


def _has_return_in_loop(st: ast.stmt) -> bool:
    for node in _walk_scope([st]):
        if isinstance(node, (ast.For, ast.While)) and _has(node.body, ast.Return, True):
            return True
    return False


# methods that change the object they are called on: a body calling one (rows.append(h))
# has effects that tracing it once more, as a region, would repeat
_MUTATORS = {
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "update",
    "setdefault",
    "add",
    "discard",
    "sort",
    "fill",
    "put",
    "resize",
    "itemset",
    "reverse",
    "popitem",
}


def _pure(stmts) -> bool:
    for node in _walk_scope(stmts):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _MUTATORS:
                return False
    return True


def _assign(name: str, value, at) -> ast.Assign:
    return ast.Assign([ast.Name(name, _STORE, **at)], ast.Constant(value, **at), **at)


class _Jumps:
    """`break` and `continue` of one loop as flags; the statements after one that may have
    set a flag run under `if not (flags):`."""

    def __init__(self, brk: str | None, cnt: str | None):
        self.brk, self.cnt = brk, cnt

    def block(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for k, st in enumerate(stmts):
            jumps = _has([st], (ast.Break, ast.Continue))
            out.append(self.stmt(st))
            rest = stmts[k + 1 :]
            if jumps and rest:
                at = _at(st)
                flags = [ast.Name(f, _LOAD, **at) for f in (self.brk, self.cnt) if f]
                test = flags[0] if len(flags) == 1 else ast.BoolOp(ast.Or(), flags, **at)
                guard = ast.UnaryOp(ast.Not(), test, **at)
                out.append(ast.If(guard, self.block(rest), [], **at))
                break
        return out

    def stmt(self, st: ast.stmt) -> ast.stmt:
        at = _at(st)
        if isinstance(st, ast.Break):
            return _assign(self.brk, True, at)
        if isinstance(st, ast.Continue):
            return _assign(self.cnt, True, at)
        if isinstance(st, ast.If):
            return ast.If(st.test, self.block(st.body), self.block(st.orelse), **at)
        if isinstance(st, (ast.With, ast.Try)):
            st.body = self.block(st.body)
        return st


class _Expressions(ast.NodeTransformer):
    """`a and b`, `a or b`, `not a` and `a if c else b` as hook calls (the right-hand
    operands and the branches as lambdas: evaluated only when Python would)."""

    def visit_FunctionDef(self, node):
        return node  # (rewritten as a function of its own)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_BoolOp(self, node: ast.BoolOp):
        self.generic_visit(node)
        hook = AND if isinstance(node.op, ast.And) else OR
        at = _at(node)
        out = node.values[-1]
        for value in reversed(node.values[:-1]):
            out = ast.Call(ast.Name(hook, _LOAD, **at), [value, _thunk(out, at)], [], **at)
        return out

    def visit_UnaryOp(self, node: ast.UnaryOp):
        self.generic_visit(node)
        if not isinstance(node.op, ast.Not):
            return node
        at = _at(node)
        return ast.Call(ast.Name(NOT, _LOAD, **at), [node.operand], [], **at)

    def visit_IfExp(self, node: ast.IfExp):
        self.generic_visit(node)
        at = _at(node)
        args = [
            node.test,
            _thunk(node.body, at),
            _thunk(node.orelse, at),
            ast.Constant(node.lineno, **at),
        ]
        return ast.Call(ast.Name(IFEXP, _LOAD, **at), args, [], **at)


def _thunk(e: ast.expr, at) -> ast.Lambda:
    args = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[])
    return ast.Lambda(args, e, **at)


# ---- the hooks outside a trace: Python's own semantics


class Undefined:
    """The value of a name a statement may leave unbound: any use of it fails."""

    __slots__ = ("name", "why")

    def __init__(self, name: str, why: str = ""):
        self.name, self.why = name, why

    def fail(self, *args, **kwargs):
        raise NameError(self.why or f"local variable {self.name!r} referenced before assignment")

    __bool__ = __float__ = __int__ = __index__ = __len__ = __iter__ = __call__ = fail
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = fail
    __rtruediv__ = __pow__ = __rpow__ = __neg__ = __pos__ = __abs__ = __getitem__ = fail
    __matmul__ = __rmatmul__ = __lt__ = __le__ = __gt__ = __ge__ = __mod__ = __rmod__ = fail
    __array__ = __array_ufunc__ = __array_function__ = __setitem__ = __floordiv__ = fail

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        self.fail()

    def __repr__(self) -> str:
        return f"<unbound {self.name}>"


def values(env: dict, params) -> list:
    """The current value of each name (Undefined where it is not bound yet)."""
    return [env[p] if p in env else Undefined(p) for p in params]


def plain_if(test, then, orelse, params, outs, env, line, returns):
    return (then if test else orelse)(*values(env, params))


def plain_while(test, body, params, outs, env, line, brk):
    state = dict(zip(params, values(env, params)))
    while test(*(state[p] for p in params)):
        state.update(zip(outs, body(*(state[p] for p in params))))
    return tuple(state[o] for o in outs)


def plain_for(iterable, body, params, outs, env, line, brk, pure=True):
    state = dict(zip(params, values(env, params)))
    for item in iterable:
        state.update(zip(outs, body(item, *(state[p] for p in params))))
        if brk is not None and state[brk]:
            break
    return tuple(state[o] for o in outs)


def plain_ifexp(test, a, b, line):
    return a() if test else b()


def plain_and(a, b):
    return b() if a else a


def plain_or(a, b):
    return a if a else b()


def plain_not(a):
    return not a


PLAIN = {
    IF: plain_if,
    WHILE: plain_while,
    FOR: plain_for,
    IFEXP: plain_ifexp,
    AND: plain_and,
    OR: plain_or,
    NOT: plain_not,
}
