"""Batching: many small matrix products that share an operand become one large product.

Unrolled sequence models (an RNN over T steps) make T products of the same shape; numpy
pays its call overhead T times and BLAS runs at small sizes. Two rewrites:

- rows: A[t] @ W for several t of one 3-D A and one 2-D W becomes
  (A.reshape(-1, k) @ W).reshape(T, b, m)[t]: one product for the whole sequence, whose
  gradient for W is again one product.
- sums: X_1 @ Y_1 + ... + X_n @ Y_n with equal 2-D shapes (the per-step weight gradients
  the copy gate adds up) becomes concatenate(X, axis=1) @ concatenate(Y, axis=0); a sum of
  row sums sum(G_i, axis=0) becomes one sum of the concatenated rows.

Both reassociate the additions inside a product, so unlike `simplify` they are not
bit-exact; the results agree to rounding, which the numeric check covers.
"""

from __future__ import annotations

from collections import defaultdict

from ..ir import Graph, Node, replay

MIN_ROWS = 2  # products of rows of one array before they are batched
MIN_TERMS = 3  # terms of a sum of products before they are batched


def _row_product(n: Node) -> tuple[Node, int, Node] | None:
    """(A, t, W) when n is A[t] @ W with A 3-D and W 2-D."""
    if n.op != "matmul" or len(n.inputs) != 2:
        return None
    a, w = n.inputs
    key = a.attrs.get("key") if a.op == "index" and len(a.inputs) == 1 else None
    if key is None or len(key) != 1 or not isinstance(key[0], int) or w.ndim != 2:
        return None
    base = a.inputs[0]
    if base.ndim != 3 or a.ndim != 2:
        return None
    return base, key[0] % base.shape[0], w


def _uses(graph: Graph) -> dict[int, int]:
    uses: dict[int, int] = defaultdict(int)
    for n in graph.nodes:
        for i in n.inputs:
            uses[i.id] += 1
    for o in graph.outputs:
        uses[o.id] += 1
    return uses


def _sum_leaves(root: Node, uses: dict[int, int]) -> list[Node]:
    """The terms of an add chain ending at root (inner adds used only by the chain)."""
    leaves, stack = [], [root]
    while stack:
        n = stack.pop()
        for i in reversed(n.inputs):
            if i.op == "add" and uses[i.id] == 1 and i.shape == root.shape:
                stack.append(i)
            else:
                leaves.append(i)
    return leaves


def _row_of(x: Node) -> tuple[Node, int] | None:
    if x.op == "index" and len(x.inputs) == 1 and x.inputs[0].ndim == 3:
        key = x.attrs["key"]
        if len(key) == 1 and isinstance(key[0], int):
            return x.inputs[0], key[0] % x.inputs[0].shape[0]
    return None


def _stack_rows(parts: list[Node], env: dict[int, Node], new: Graph) -> Node:
    """The 2-D parts one below the other: a reshape when they are all rows of one array."""
    rows = [_row_of(p) for p in parts]
    if all(rows) and len({r[0].id for r in rows}) == 1:
        base = rows[0][0]
        if [r[1] for r in rows] == list(range(base.shape[0])):
            return new.apply(
                "reshape", env[base.id], shape=(base.shape[0] * base.shape[1], base.shape[2])
            )
    return new.apply("concatenate", *(env[p.id] for p in parts), axis=0)


def _is_swap(x: Node) -> bool:
    return x.op == "transpose" and x.attrs.get("axes") == (1, 0)


def _batched_sum(
    leaves: list[Node], uses: dict[int, int], env: dict[int, Node], new: Graph
) -> Node | None:
    products: dict[tuple, list[Node]] = defaultdict(list)
    row_sums: dict[tuple, list[Node]] = defaultdict(list)
    rest: list[Node] = []
    for leaf in leaves:
        if leaf.op == "matmul" and uses[leaf.id] == 1 and all(i.ndim == 2 for i in leaf.inputs):
            products[(leaf.inputs[0].shape, leaf.inputs[1].shape)].append(leaf)
        elif (
            leaf.op == "sum"
            and uses[leaf.id] == 1
            and leaf.inputs[0].ndim == 2
            and leaf.attrs["axis"] == (0,)
            and not leaf.attrs["keepdims"]
        ):
            row_sums[leaf.inputs[0].shape].append(leaf)
        else:
            rest.append(leaf)
    terms: list[Node] = []
    changed = False
    for group in products.values():
        if len(group) < MIN_TERMS:
            terms += [env[n.id] for n in group]
            continue
        changed = True
        lefts = [n.inputs[0] for n in group]
        if all(_is_swap(x) for x in lefts):  # X_1.T @ Y_1 + ... = [X_1; ...].T @ [Y_1; ...]
            pairs = sorted(
                zip(lefts, group), key=lambda p: (_row_of(p[0].inputs[0]) or (None, 0))[1]
            )
            left = new.apply(
                "transpose", _stack_rows([x.inputs[0] for x, _ in pairs], env, new), axes=(1, 0)
            )
            right = _stack_rows([n.inputs[1] for _, n in pairs], env, new)
        else:
            left = new.apply("concatenate", *(env[x.id] for x in lefts), axis=1)
            right = _stack_rows([n.inputs[1] for n in group], env, new)
        terms.append(new.apply("matmul", left, right))
    for group in row_sums.values():
        if len(group) < MIN_TERMS:
            terms += [env[n.id] for n in group]
            continue
        changed = True
        stacked = _stack_rows([n.inputs[0] for n in group], env, new)
        terms.append(new.apply("sum", stacked, axis=(0,), keepdims=False))
    if not changed:
        return None
    total = terms[0]
    for t in terms[1:] + [env[n.id] for n in rest]:
        total = new.apply("add", total, t)
    return total


def _worth_batching(leaves: list[Node], uses: dict[int, int]) -> bool:
    """Whether a sum has enough products (or row sums) of one shape to batch."""
    groups: dict[tuple, int] = defaultdict(int)
    for leaf in leaves:
        if uses[leaf.id] != 1:
            continue
        if leaf.op == "matmul" and all(i.ndim == 2 for i in leaf.inputs):
            groups[("matmul", leaf.inputs[0].shape, leaf.inputs[1].shape)] += 1
        elif leaf.op == "sum" and leaf.inputs[0].ndim == 2 and leaf.attrs["axis"] == (0,):
            groups[("sum", leaf.inputs[0].shape)] += 1
    return any(n >= MIN_TERMS for n in groups.values())


def _candidates(graph: Graph) -> int:
    """Products and row sums, the only nodes either rewrite starts from."""
    return sum(
        1 for n in graph.nodes if n.op == "matmul" or (n.op == "sum" and n.inputs[0].ndim == 2)
    )


def run(graph: Graph) -> Graph:
    if _candidates(graph) < min(MIN_ROWS, MIN_TERMS):
        return graph  # scalar and elementwise code: nothing to batch, and no scan for it
    uses = _uses(graph)
    graph_nodes = {n.id: n for n in graph.nodes}
    rows: dict[tuple[int, int], set[int]] = defaultdict(set)
    for n in graph.nodes:
        found = _row_product(n)
        if found is not None:
            rows[(found[0].id, found[2].id)].add(found[1])
    inner = {  # adds that only feed a larger add chain
        i.id
        for n in graph.nodes
        if n.op == "add"
        for i in n.inputs
        if i.op == "add" and uses[i.id] == 1 and i.shape == n.shape
    }
    roots = {n.id for n in graph.nodes if n.op == "add" and n.id not in inner}
    products: dict[tuple[int, int], Node] = {}

    def substitute(node: Node, env: dict[int, Node], new: Graph) -> Node | None:
        found = _row_product(node)
        if found is not None and len(rows[(found[0].id, found[2].id)]) >= MIN_ROWS:
            base, t, w = found
            key = (base.id, w.id)
            if key not in products:
                t_, b, k = base.shape
                flat = new.apply("reshape", env[base.id], shape=(t_ * b, k))
                full = new.apply("matmul", flat, env[w.id])
                products[key] = new.apply("reshape", full, shape=(t_, b, w.shape[1]))
            return new.apply("index", products[key], key=(t,))
        if node.id in roots:
            return _batched_sum(_sum_leaves(node, uses), uses, env, new)
        return None

    roots = {r for r in roots if _worth_batching(_sum_leaves(graph_nodes[r], uses), uses)}
    if not roots and not any(len(ts) >= MIN_ROWS for ts in rows.values()):
        return graph  # nothing to batch: skip the rebuild
    return replay(graph, {"intern"}, substitute=substitute)
