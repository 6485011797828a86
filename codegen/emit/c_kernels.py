"""C kernels: the ops whose C is an algorithm rather than a formula at one element.

- integer results: argmax and argmin (one pass, numpy's first winner, nan wins) and argsort
  (a stable merge sort of indices, nan last). An integer is a double in memory (exact below
  2^53) and a `long` where it indexes;
- gathers and scatters at indices computed while the function runs (`x[np.argmax(x)]`,
  `np.take_along_axis(x, np.argsort(x), 0)` and their gradients): what is known when
  generating (the constant indices, the strides) is folded into the offsets, as for a
  constant index; each computed index is read, wrapped when negative and checked where it
  could be out of range (the function then returns 3, where numpy raises IndexError);
- dense linear algebra: LU with partial pivoting (det, slogdet, inv, solve), Cholesky,
  cyclic Jacobi for eigh, one-sided Jacobi for the SVD, Householder QR with LAPACK's signs.

Two halves: `KERNELS`, the C text of small static helpers (written into a .c file only when
its code calls them, as `c_expr.HELPERS`: the code calls every helper it needs itself, so
a helper never calls another), and `emit(walker, node, top)`, one node's lines: operands
copied into scratch (contiguous doubles), a call per matrix of a stack, results copied
out where the caller's memory is not a double array of that layout. Scratch lies in the
caller's `work` from `top` on, past every slot the memory plan gave out, and is live only
during the node's own lines. Nothing allocates; the helpers keep no state.

Signs numpy leaves to LAPACK: an eigenvector, and a pair of singular vectors, is signed so
that its largest component (the first, at a tie) is positive; for singular vectors that is
the vector of the longer side (U's column when rows >= columns, else V's). The gradients of
functions free of those signs agree with the Python target's; QR follows LAPACK (R's
diagonal is -sign(a_jj) times the column's norm), so it agrees with numpy itself.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

LU = """\
/* LU with partial pivoting, in place: A = P L U, L unit lower (below the diagonal), U upper.
   piv[k]: the row swapped with row k at step k; returns the permutation's sign. A zero
   pivot (a singular matrix) is left in U, as LAPACK does. */
static double gradgen_lu(long n, double *a, double *piv)
{
    double sign = 1.0;
    for (long k = 0; k < n; k++) {
        long p = k;
        for (long i = k + 1; i < n; i++) {
            if (fabs(a[i * n + k]) > fabs(a[p * n + k])) p = i;
        }
        piv[k] = (double)p;
        if (p != k) {
            for (long j = 0; j < n; j++) {
                double t = a[k * n + j];
                a[k * n + j] = a[p * n + j];
                a[p * n + j] = t;
            }
            sign = -sign;
        }
        if (a[k * n + k] == 0.0) continue;
        for (long i = k + 1; i < n; i++) {
            double l = a[i * n + k] / a[k * n + k];
            a[i * n + k] = l;
            for (long j = k + 1; j < n; j++) a[i * n + j] -= l * a[k * n + j];
        }
    }
    return sign;
}"""

LU_SOLVE = """\
/* Solves A X = B in place (B: n rows of m), given gradgen_lu's factors of A. */
static void gradgen_lu_solve(long n, const double *lu, const double *piv, long m, double *b)
{
    for (long k = 0; k < n; k++) { /* B = P^T B: the row swaps, in order */
        long p = (long)piv[k];
        for (long j = 0; p != k && j < m; j++) {
            double t = b[k * m + j];
            b[k * m + j] = b[p * m + j];
            b[p * m + j] = t;
        }
    }
    for (long i = 1; i < n; i++) { /* L Y = B */
        for (long k = 0; k < i; k++) {
            for (long j = 0; j < m; j++) b[i * m + j] -= lu[i * n + k] * b[k * m + j];
        }
    }
    for (long i = n - 1; i >= 0; i--) { /* U X = Y */
        for (long k = i + 1; k < n; k++) {
            for (long j = 0; j < m; j++) b[i * m + j] -= lu[i * n + k] * b[k * m + j];
        }
        for (long j = 0; j < m; j++) b[i * m + j] /= lu[i * n + i];
    }
}"""

IDENTITY = """\
/* The n x n identity. */
static void gradgen_identity(long n, double *a)
{
    for (long i = 0; i < n * n; i++) a[i] = i % (n + 1) == 0 ? 1.0 : 0.0;
}"""

LU_SIGN = """\
/* The sign of det A (0 for a singular matrix) from gradgen_lu's factors and sign. */
static double gradgen_lu_sign(long n, const double *lu, double sign)
{
    for (long k = 0; k < n; k++) {
        double u = lu[k * n + k];
        sign = u > 0.0 ? sign : u < 0.0 ? -sign : 0.0 * u;
    }
    return sign;
}"""

LU_LOGDET = """\
/* log |det A| (-inf for a singular matrix) from gradgen_lu's factors. */
static double gradgen_lu_logdet(long n, const double *lu)
{
    double sum = 0.0;
    for (long k = 0; k < n; k++) sum += log(fabs(lu[k * n + k]));
    return sum;
}"""

CHOLESKY = """\
/* Cholesky, in place: L with L L^T = A from A's lower triangle; the upper one zeroed.
   Where A is not positive definite a square root of a negative gives nan. */
static void gradgen_cholesky(long n, double *a)
{
    for (long j = 0; j < n; j++) {
        double d = a[j * n + j];
        for (long k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
        d = sqrt(d);
        a[j * n + j] = d;
        for (long i = j + 1; i < n; i++) {
            double s = a[i * n + j];
            for (long k = 0; k < j; k++) s -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = s / d;
        }
        for (long i = 0; i < j; i++) a[i * n + j] = 0.0;
    }
}"""

EIGH = """\
/* The symmetric eigendecomposition of the matrix with a's lower triangle, by cyclic Jacobi
   rotations (a is overwritten): w ascending, v's columns the eigenvectors, each signed so
   that its largest component (the first, at a tie) is positive. */
static void gradgen_eigh(long n, double *a, double *w, double *v)
{
    for (long i = 0; i < n; i++) {
        for (long j = 0; j < n; j++) {
            v[i * n + j] = i == j ? 1.0 : 0.0;
            if (j > i) a[i * n + j] = a[j * n + i];
        }
    }
    for (int sweep = 0; sweep < 64; sweep++) {
        int rotated = 0;
        for (long p = 0; p < n; p++) {
            for (long q = p + 1; q < n; q++) {
                double apq = a[p * n + q], app = a[p * n + p], aqq = a[q * n + q];
                if (fabs(apq) <= 1e-18 * (fabs(app) + fabs(aqq))) continue;
                rotated = 1;
                /* the rotation by t = tan(phi) that zeroes a[p][q]: A = J^T A J, V = V J */
                double theta = (aqq - app) / (2.0 * apq);
                double t = (theta >= 0.0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (long k = 0; k < n; k++) {
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (long k = 0; k < n; k++) {
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for (long k = 0; k < n; k++) {
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
                a[p * n + q] = a[q * n + p] = 0.0;
            }
        }
        if (!rotated) break;
    }
    for (long i = 0; i < n; i++) w[i] = a[i * n + i];
    for (long i = 0; i < n; i++) { /* ascending (a selection sort), then the signs */
        long best = i;
        for (long j = i + 1; j < n; j++) {
            if (w[j] < w[best]) best = j;
        }
        double t = w[i];
        w[i] = w[best];
        w[best] = t;
        long big = 0;
        for (long k = 0; k < n; k++) {
            t = v[k * n + i];
            v[k * n + i] = v[k * n + best];
            v[k * n + best] = t;
            if (fabs(v[k * n + i]) > fabs(v[big * n + i])) big = k;
        }
        if (v[big * n + i] < 0.0) {
            for (long k = 0; k < n; k++) v[k * n + i] = -v[k * n + i];
        }
    }
}"""

SVD = """\
/* The thin SVD of an m x n matrix, m >= n, by one-sided Jacobi rotations of its columns:
   u (m x n, the matrix on entry) is overwritten by U, s gets the singular values,
   descending, v (n x n) V. Each pair is signed so that U's column has its largest
   component (the first, at a tie) positive. A zero singular value leaves its column of U
   zero. */
static void gradgen_svd(long m, long n, double *u, double *s, double *v)
{
    for (long i = 0; i < n * n; i++) v[i] = i % (n + 1) == 0 ? 1.0 : 0.0;
    for (int sweep = 0; sweep < 64; sweep++) {
        int rotated = 0;
        for (long p = 0; p < n; p++) {
            for (long q = p + 1; q < n; q++) {
                double alpha = 0.0, beta = 0.0, gamma = 0.0;
                for (long k = 0; k < m; k++) {
                    alpha += u[k * n + p] * u[k * n + p];
                    beta += u[k * n + q] * u[k * n + q];
                    gamma += u[k * n + p] * u[k * n + q];
                }
                if (fabs(gamma) <= 1e-15 * sqrt(alpha * beta)) continue;
                rotated = 1;
                /* the rotation that makes columns p and q orthogonal, applied to V too */
                double zeta = (beta - alpha) / (2.0 * gamma);
                double t = (zeta >= 0.0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(zeta * zeta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), sn = t * c;
                for (long k = 0; k < m; k++) {
                    double ukp = u[k * n + p], ukq = u[k * n + q];
                    u[k * n + p] = c * ukp - sn * ukq;
                    u[k * n + q] = sn * ukp + c * ukq;
                }
                for (long k = 0; k < n; k++) {
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - sn * vkq;
                    v[k * n + q] = sn * vkp + c * vkq;
                }
            }
        }
        if (!rotated) break;
    }
    for (long j = 0; j < n; j++) { /* the column norms are the singular values */
        double norm = 0.0;
        for (long k = 0; k < m; k++) norm += u[k * n + j] * u[k * n + j];
        s[j] = sqrt(norm);
        for (long k = 0; s[j] > 0.0 && k < m; k++) u[k * n + j] /= s[j];
    }
    for (long i = 0; i < n; i++) { /* descending (a selection sort), then the signs */
        long best = i;
        for (long j = i + 1; j < n; j++) {
            if (s[j] > s[best]) best = j;
        }
        double t = s[i];
        s[i] = s[best];
        s[best] = t;
        for (long k = 0; k < n; k++) {
            t = v[k * n + i];
            v[k * n + i] = v[k * n + best];
            v[k * n + best] = t;
        }
        long big = 0;
        for (long k = 0; k < m; k++) {
            t = u[k * n + i];
            u[k * n + i] = u[k * n + best];
            u[k * n + best] = t;
            if (fabs(u[k * n + i]) > fabs(u[big * n + i])) big = k;
        }
        if (u[big * n + i] < 0.0) {
            for (long k = 0; k < m; k++) u[k * n + i] = -u[k * n + i];
            for (long k = 0; k < n; k++) v[k * n + i] = -v[k * n + i];
        }
    }
}"""

QR = """\
/* Householder QR of an m x n matrix, m >= n, in place, as LAPACK's dgeqrf: R in the upper
   triangle, reflector j (v = [1, a[j+1..m-1][j]], H = I - tau[j] v v^T) below the diagonal.
   R's diagonal is -sign(alpha) |x| (numpy's signs); a column already zero below the
   diagonal is left alone (tau 0). */
static void gradgen_qr(long m, long n, double *a, double *tau)
{
    for (long j = 0; j < n; j++) {
        double alpha = a[j * n + j], norm = 0.0;
        for (long i = j + 1; i < m; i++) norm += a[i * n + j] * a[i * n + j];
        tau[j] = 0.0;
        if (norm == 0.0) continue;
        double beta = -copysign(sqrt(alpha * alpha + norm), alpha);
        tau[j] = (beta - alpha) / beta;
        for (long i = j + 1; i < m; i++) a[i * n + j] /= alpha - beta;
        a[j * n + j] = beta;
        for (long c = j + 1; c < n; c++) { /* H applied to the columns right of j */
            double d = a[j * n + c];
            for (long i = j + 1; i < m; i++) d += a[i * n + j] * a[i * n + c];
            d *= tau[j];
            a[j * n + c] -= d;
            for (long i = j + 1; i < m; i++) a[i * n + c] -= d * a[i * n + j];
        }
    }
}"""

QR_Q = """\
/* Q (m x n) from gradgen_qr's reflectors: H_0 ... H_{n-1} applied to the first n columns of
   the identity, the last first (LAPACK's dorgqr). */
static void gradgen_qr_q(long m, long n, const double *a, const double *tau, double *q)
{
    for (long i = 0; i < m * n; i++) q[i] = i % (n + 1) == 0 && i / n < n ? 1.0 : 0.0;
    for (long j = n - 1; j >= 0; j--) {
        for (long c = j; c < n; c++) {
            double d = q[j * n + c];
            for (long i = j + 1; i < m; i++) d += a[i * n + j] * q[i * n + c];
            d *= tau[j];
            q[j * n + c] -= d;
            for (long i = j + 1; i < m; i++) q[i * n + c] -= d * a[i * n + j];
        }
    }
}"""

QR_R = """\
/* R (n x n) from gradgen_qr's result: its upper triangle. */
static void gradgen_qr_r(long n, const double *a, double *r)
{
    for (long i = 0; i < n; i++) {
        for (long j = 0; j < n; j++) r[i * n + j] = j >= i ? a[i * n + j] : 0.0;
    }
}"""

ARGSORT = """\
/* The stable argsort of x[0..n): order[k] is the index of the k-th smallest, nan last (as
   numpy's), as a double. A bottom-up merge sort; tmp is n doubles of scratch. */
static void gradgen_argsort(long n, const double *x, double *order, double *tmp)
{
    for (long k = 0; k < n; k++) order[k] = (double)k;
    for (long width = 1; width < n; width *= 2) {
        for (long lo = 0; lo < n; lo += 2 * width) {
            long mid = lo + width < n ? lo + width : n;
            long hi = lo + 2 * width < n ? lo + 2 * width : n;
            long i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                double a = x[(long)order[i]], b = x[(long)order[j]];
                /* the right run's element goes first only if it is smaller: ties keep
                   their order */
                tmp[k++] = b < a || (a != a && b == b) ? order[j++] : order[i++];
            }
            while (i < mid) tmp[k++] = order[i++];
            while (j < hi) tmp[k++] = order[j++];
        }
        for (long k = 0; k < n; k++) order[k] = tmp[k];
    }
}"""

# helper name -> its C definition, after a blank line (c_expr.HELPERS holds them too)
KERNELS = {
    "gradgen_lu": LU,
    "gradgen_lu_solve": LU_SOLVE,
    "gradgen_identity": IDENTITY,
    "gradgen_lu_sign": LU_SIGN,
    "gradgen_lu_logdet": LU_LOGDET,
    "gradgen_cholesky": CHOLESKY,
    "gradgen_eigh": EIGH,
    "gradgen_svd": SVD,
    "gradgen_qr": QR,
    "gradgen_qr_q": QR_Q,
    "gradgen_qr_r": QR_R,
    "gradgen_argsort": ARGSORT,
}
KERNELS = {name: "\n" + text for name, text in KERNELS.items()}

# ops producing indices that are in range for an axis of their own length (no check needed)
INDEX_OPS = ("argmax", "argmin", "argsort")


def computed_indices(node) -> bool:
    """Whether `node` gathers or scatters at indices computed while the function runs from
    the values (its C is then a kernel of this module, not a view or a table of constant
    offsets): an index array that is not a constant and is not a scalar, or is computed
    from argmax, argmin or argsort. (A scalar integer of a loop, `x[i]`, is a view that
    emit/c.py moves at run time.)"""
    if node.op in ("index", "scatter"):
        arrays = node.inputs[1:]
    elif node.op == "multi_scatter":
        arrays = node.inputs[len(node.attrs["keys"]) :]
    else:
        return False
    return any(a.op != "const" and (a.shape != () or _from_index_ops(a)) for a in arrays)


def _from_index_ops(node) -> bool:
    """Whether the integer `node` is computed from an argmax, argmin or argsort."""
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n.op in INDEX_OPS:
            return True
        if n.id not in seen and n.dtype == "i64":
            seen.add(n.id)
            todo += n.inputs
    return False


def emit(w, node, top: int) -> tuple[list[str], int]:
    """The lines of kernel node `node` for the walker `w` (emit/c.py's CWalker), its
    scratch from `work + top`: (lines, doubles of scratch used)."""
    k = _Kernel(w, node, top)
    if computed_indices(node):
        {"index": _gather, "scatter": _scatter, "multi_scatter": _multi_scatter}[node.op](k)
    else:
        EMITTERS[node.op](k)
    return k.lines + k.after, k.at - top


class _Kernel:
    """One kernel node's lines: scratch handed out past the work slots, and the copies of
    results into memory of the caller that is not a double array (a float output)."""

    def __init__(self, w, node, top: int):
        from . import c as emit_c

        self.c = emit_c
        self.w, self.node = w, node
        self.at = top
        self.lines: list[str] = []
        self.after: list[str] = []  # copies out, after the calls

    def fresh(self, hint: str) -> str:
        return self.w.namer.fresh(hint)

    def scratch(self, hint: str, shape: Sequence[int]):
        """`math.prod(shape)` doubles of work, as a contiguous view named after `hint`."""
        name = self.fresh(hint)
        start = "work" if self.at == 0 else f"work + {self.at}"
        self.lines.append(f"double *{name} = {start};")
        self.at += max(math.prod(shape), 1)
        return self.c.View(name, 0, self.c.contiguous(tuple(shape)), tuple(shape))

    def result(self, hint: str, transposed: bool = False):
        """Where a kernel writes the node's array: its home when that is work or saved (a
        double array in C order), else scratch copied there afterwards (transposed: the
        kernel writes the last two axes swapped)."""
        home = self.w.homes[self.node.id]
        if not transposed and (self.node.id in self.w.decls or home.base == "saved"):
            return home
        shape = home.shape
        if transposed:
            shape = (*shape[:-2], shape[-1], shape[-2])
        buf = self.scratch(hint, shape)
        self.after += self.move(home, swap_last(buf) if transposed else buf)
        return buf

    def memory(self, node, hint: str):
        """A view of `node`'s elements in memory (a constant broadcast stays a fill): its
        own, or a copy in scratch where it has none (a scalar, a gather through a table)."""
        v = self.w.value(node)
        if isinstance(v, self.c.View) and v.table is None:
            return v
        buf = self.scratch(hint, node.shape)
        self.copy_in(buf, node)
        return buf

    def copy_in(self, dest, node) -> None:
        """dest = node (broadcast to dest's shape), element by element."""
        self.lines += self.w._copy(dest, node)

    def move(self, dest, src) -> list[str]:
        """dest = src for two views of one shape."""
        loop = self.c.Loop(dest.shape)
        return loop.render([f"{loop.leaf(dest)} = {loop.leaf(src)};"])

    def per_matrix(self, batch: Sequence[int], body: list[str]) -> None:
        """`body` once per matrix of a stack: a loop over i0 when there are several."""
        count = math.prod(batch)
        if count == 1:
            self.lines += body
        else:
            self.lines.append(f"for (long i0 = 0; i0 < {count}; i0++) {{")
            self.lines += ["    " + line for line in body]
            self.lines.append("}")

    def at_matrix(self, view, step: int, batch: Sequence[int]) -> str:
        """A pointer to the i0-th matrix of a contiguous stack `view` (`step` doubles each)."""
        parts = [view.base] + ([str(view.offset)] if view.offset else [])
        if math.prod(batch) > 1:
            parts.append(f"{step} * i0" if step != 1 else "i0")
        return " + ".join(parts)

    def at_element(self, batch: Sequence[int]) -> str:
        """The node's value for the i0-th matrix: a scalar's local, or an array's element."""
        if self.node.shape == ():
            return self.w.values[self.node.id].expr.text
        home = self.w.homes[self.node.id]
        index = "i0" if math.prod(batch) > 1 else ""
        if home.offset:
            index = f"{home.offset} + {index}" if index else str(home.offset)
        return f"{home.base}[{index or 0}]"


def swap_last(v):
    """The view with its last two axes swapped."""
    from .c import View

    s, sh = v.strides, v.shape
    return View(v.base, v.offset, (*s[:-2], s[-1], s[-2]), (*sh[:-2], sh[-1], sh[-2]), v.root)


# ---- dense linear algebra ----


def _lu_scalar(k: _Kernel) -> None:
    """det, and slogdet's sign and log: LU, then U's diagonal."""
    a = k.node.inputs[0]
    n, batch = a.shape[-1], a.shape[:-2]
    lu = k.scratch("lu", a.shape)
    piv = k.scratch("piv", (n,))
    k.copy_in(lu, a)
    at = k.at_matrix(lu, n * n, batch)
    sign = k.fresh("sign") if k.node.op != "slogdet_log" else ""
    out = k.at_element(batch)
    value = {
        # numpy's det: the sign times exp(log |det|), which neither overflows nor
        # underflows where the determinant itself does not
        "det": f"gradgen_lu_sign({n}, {at}, {sign}) * exp(gradgen_lu_logdet({n}, {at}))",
        "slogdet_sign": f"gradgen_lu_sign({n}, {at}, {sign})",
        "slogdet_log": f"gradgen_lu_logdet({n}, {at})",
    }[k.node.op]
    lu_call = f"gradgen_lu({n}, {at}, {piv.base})"
    body = [f"{lu_call};" if k.node.op == "slogdet_log" else f"double {sign} = {lu_call};"]
    body.append(f"{'double ' if k.node.shape == () else ''}{out} = {value};")
    k.per_matrix(batch, body)


def _inv(k: _Kernel) -> None:
    a = k.node.inputs[0]
    n, batch = a.shape[-1], a.shape[:-2]
    lu = k.scratch("lu", a.shape)
    piv = k.scratch("piv", (n,))
    inv = k.result("inv")
    k.copy_in(lu, a)
    at, out = k.at_matrix(lu, n * n, batch), k.at_matrix(inv, n * n, batch)
    k.per_matrix(
        batch,
        [
            f"gradgen_lu({n}, {at}, {piv.base});",
            f"gradgen_identity({n}, {out});",
            f"gradgen_lu_solve({n}, {at}, {piv.base}, {n}, {out});",
        ],
    )


def _solve(k: _Kernel) -> None:
    """x = A^-1 b for each matrix of the broadcast stack; b a vector or n rows of m."""
    a, b = k.node.inputs
    n = a.shape[-1]
    m = 1 if b.ndim == 1 else b.shape[-1]
    batch = k.node.shape[:-1] if b.ndim == 1 else k.node.shape[:-2]
    lu = k.scratch("lu", (*batch, n, n))
    piv = k.scratch("piv", (n,))
    x = k.result("x")
    k.copy_in(lu, a)
    k.copy_in(x, b)
    at, out = k.at_matrix(lu, n * n, batch), k.at_matrix(x, n * m, batch)
    k.per_matrix(
        batch,
        [
            f"gradgen_lu({n}, {at}, {piv.base});",
            f"gradgen_lu_solve({n}, {at}, {piv.base}, {m}, {out});",
        ],
    )


def _cholesky(k: _Kernel) -> None:
    a = k.node.inputs[0]
    n, batch = a.shape[-1], a.shape[:-2]
    low = k.result("low", transposed=k.node.attrs.get("upper", False))
    k.copy_in(low, a)
    k.per_matrix(batch, [f"gradgen_cholesky({n}, {k.at_matrix(low, n * n, batch)});"])


def _eigh(k: _Kernel) -> None:
    """eigh_values and eigh_vectors: the other part goes to scratch."""
    a = k.node.inputs[0]
    n, batch = a.shape[-1], a.shape[:-2]
    sym = k.scratch("sym", a.shape)
    vectors = k.node.op == "eigh_vectors"
    w = k.scratch("w", (*batch, n)) if vectors else k.result("w")
    v = k.result("v") if vectors else k.scratch("v", a.shape)
    # the lower triangle is read; UPLO='U' reads the upper one: A^T's lower triangle
    k.copy_in(sym if k.node.attrs["uplo"] == "L" else swap_last(sym), a)
    at = [k.at_matrix(sym, n * n, batch), k.at_matrix(w, n, batch), k.at_matrix(v, n * n, batch)]
    k.per_matrix(batch, [f"gradgen_eigh({n}, {', '.join(at)});"])


def _svd(k: _Kernel) -> None:
    """svd_s, svd_u, svd_vh (reduced). The kernel wants rows >= columns: a wide A is
    decomposed as A^T = U' S V'^T, so U = V' and Vh = U'^T."""
    a = k.node.inputs[0]
    m, n = a.shape[-2:]
    batch = a.shape[:-2]
    tall = m >= n
    p, q = (m, n) if tall else (n, m)
    part = k.node.op[len("svd_") :]
    # which of the kernel's matrices is the result, and whether transposed
    mine = {
        "s": ("s", False),
        "u": ("u" if tall else "v", False),
        "vh": ("v" if tall else "u", True),
    }
    name, transposed = mine[part]
    shapes = {"u": (*batch, p, q), "s": (*batch, q), "v": (*batch, q, q)}
    bufs = {}
    for key in ("u", "s", "v"):
        bufs[key] = k.result(key, transposed) if key == name else k.scratch(key, shapes[key])
    k.copy_in(bufs["u"] if tall else swap_last(bufs["u"]), a)
    steps = {"u": p * q, "s": q, "v": q * q}
    at = [k.at_matrix(bufs[key], steps[key], batch) for key in ("u", "s", "v")]
    k.per_matrix(batch, [f"gradgen_svd({p}, {q}, {', '.join(at)});"])


def _qr(k: _Kernel) -> None:
    a = k.node.inputs[0]
    m, n = a.shape[-2:]
    batch = a.shape[:-2]
    fac = k.scratch("qr", a.shape)
    tau = k.scratch("tau", (n,))
    out = k.result(k.node.op[-1])
    k.copy_in(fac, a)
    at = k.at_matrix(fac, m * n, batch)
    if k.node.op == "qr_q":
        last = f"gradgen_qr_q({m}, {n}, {at}, {tau.base}, {k.at_matrix(out, m * n, batch)});"
    else:
        last = f"gradgen_qr_r({n}, {at}, {k.at_matrix(out, n * n, batch)});"
    k.per_matrix(batch, [f"gradgen_qr({m}, {n}, {at}, {tau.base});", last])


# ---- integer results ----


def _arg_best(k: _Kernel) -> None:
    """argmax / argmin: one pass per result, keeping the first winner; a nan wins (numpy's)."""
    c, node = k.c, k.node
    x = node.inputs[0]
    if x.ndim == 0:
        k.lines += _assign(k, "0.0")
        return
    axis = node.attrs["axis"]
    axes = list(range(x.ndim)) if axis is None else [axis]
    kept = [d for d in range(x.ndim) if d not in axes]
    order = kept + axes
    src = k.memory(x, "x")
    shape = tuple(x.shape[d] for d in order)
    view = c.View(src.base, src.offset, tuple(src.strides[d] for d in order), shape, fill=src.fill)
    loop = c.Loop(shape)
    elem = loop.leaf(view)
    best, at, pos, v = k.fresh("best"), k.fresh("at"), k.fresh("k"), k.fresh("v")
    start, beats = ("-INFINITY", ">") if node.op == "argmax" else ("INFINITY", "<")
    body = [
        f"const double {v} = {elem};",
        f"if ({v} {beats} {best} || ({v} != {v} && {best} == {best})) {{",
        f"    {best} = {v};",
        f"    {at} = {pos};",
        "}",
        f"{pos}++;",
    ]
    head = [f"double {best} = {start};", f"long {at} = 0, {pos} = 0;"]
    if node.shape == ():
        tail = [f"double {k.w.values[node.id].expr.text} = (double){at};"]
    else:
        home = k.w.homes[node.id]
        strides = c.contiguous(tuple(x.shape[d] for d in kept)) + (0,) * len(axes)
        out = c.View(home.base, home.offset, strides, shape)
        tail = [f"{loop.leaf(out)} = (double){at};"]
    k.lines += loop.render(body, inner=len(axes), head=head, tail=tail)


def _assign(k: _Kernel, text: str) -> list[str]:
    """The node's value, `text` everywhere."""
    if k.node.shape == ():
        return [f"double {k.w.values[k.node.id].expr.text} = {text};"]
    home = k.w.homes[k.node.id]
    loop = k.c.Loop(home.shape)
    return loop.render([f"{loop.leaf(home)} = {text};"])


def _argsort(k: _Kernel) -> None:
    """Each row (the axis moved last; axis None: the flattened array) sorted stably."""
    c, node = k.c, k.node
    x = node.inputs[0]
    axis = node.attrs["axis"]
    if axis is None:
        rows, n = (), x.size
        order = list(range(x.ndim))
    else:
        order = [d for d in range(x.ndim) if d != axis] + [axis]
        rows, n = tuple(x.shape[d] for d in order[:-1]), x.shape[axis]
    moved = tuple(x.shape[d] for d in order)
    vals = k.scratch("vals", (*rows, n))
    # the values, written with the axis last: a view of the scratch in x's own axis order
    back = [order.index(d) for d in range(x.ndim)]
    dest = c.View(vals.base, 0, tuple(c.contiguous(moved)[i] for i in back), tuple(x.shape))
    tmp = k.scratch("tmp", (n,))
    k.copy_in(dest, x)
    home = k.w.homes[node.id]
    if axis is None or axis == x.ndim - 1:
        idx = k.result("order")
    else:
        idx = k.scratch("order", (*rows, n))
        perm = tuple(c.contiguous(moved)[i] for i in back)
        k.after += k.move(home, c.View(idx.base, 0, perm, tuple(x.shape)))
    at_vals, at_idx = k.at_matrix(vals, n, rows), k.at_matrix(idx, n, rows)
    k.per_matrix(rows, [f"gradgen_argsort({n}, {at_vals}, {at_idx}, {tmp.base});"])


# ---- gathers and scatters at computed indices ----


def _axis_of(key: tuple, j: int, ndim: int) -> int:
    """The axis of the indexed array that index array j of `key` indexes."""
    from ..ops.shape import ARR

    consuming = sum(1 for e in key if e is not None and e is not Ellipsis)
    axis = 0
    for e in key:
        if e is Ellipsis:
            axis += ndim - consuming
        elif e is not None:
            if isinstance(e, tuple) and e[0] == ARR and e[1] == j:
                return axis
            axis += 1
    raise AssertionError(f"index array {j} is not in the key")


def _in_range(index_node, size: int) -> bool:
    """Whether every value of `index_node` is in [0, size) whatever the parameters."""
    while index_node.op in ("index", "reshape", "transpose", "broadcast_to"):
        index_node = index_node.inputs[0]  # (elements moved about: the same values)
    if index_node.op not in INDEX_OPS:
        return False
    x, axis = index_node.inputs[0], index_node.attrs["axis"]
    return (x.size if axis is None else x.shape[axis]) <= size


def _computed_reads(k: _Kernel, loop, target, shape, key, arrays) -> tuple[list[str], str]:
    """The lines reading the computed indices at the loop's element, and the element of
    `target` (a view of the indexed array) they address: (lines, `base[offset]` text)."""
    from ..ops import OPS
    from ..ops.shape import real_key

    c = k.c
    known = [a.value if a.op == "const" else np.zeros(a.shape, np.int64) for a in arrays]
    base = np.asarray(OPS["index"].eval(target.offsets(), *known, key=key), dtype=np.int64)
    fit = c.fit_view(base, "", None)
    if not shape:  # one element: no loop
        terms = [str(int(base))] if int(base) else []
    elif fit is not None:  # (an offset of 0 everywhere is left out)
        terms = [] if not fit.offset and not any(fit.strides) else [loop.leaf(fit)]
    else:
        table = k.w.consts.table(base.reshape(-1))
        terms = [f"{table}[{loop.flat()}]"]
    lines = []
    for j, a in enumerate(arrays):
        if a.op == "const":
            continue
        d = _axis_of(key, j, len(target.shape))
        size, stride = target.shape[d], target.strides[d]
        # which element of index array j the loop's element reads: index a probe whose
        # values along axis d are their own positions, with j's elements numbered
        probe_shape = list(target.shape)
        probe_shape[d] = max(size, a.size)
        probe = np.arange(probe_shape[d]).reshape(
            [-1 if i == d else 1 for i in range(len(probe_shape))]
        )
        probe = np.broadcast_to(probe, probe_shape)
        numbered = list(known)
        numbered[j] = np.arange(a.size, dtype=np.int64).reshape(a.shape)
        pos = np.asarray(probe[real_key(key, numbered)], dtype=np.int64)
        if a.shape == ():  # a local, an element, or an expression inlined here
            read = k.w.element(a, None).text
        elif (src := k.memory(a, "idx")).fill is not None:
            read = src.fill.text
        else:
            offsets = src.offsets().reshape(-1)[pos]
            view = c.fit_view(offsets, src.base, None)
            if view is None:
                table = k.w.consts.table(offsets.reshape(-1))
                view = c.View(src.base, 0, c.contiguous(pos.shape), pos.shape, table=table)
            read = loop.leaf(view) if shape else f"{src.base}[{int(offsets)}]"
        name = k.fresh("k")
        lines.append(f"long {name} = (long){read};")
        if not _in_range(a, size):
            lines += [
                f"if ({name} < 0) {name} += {size};",
                f"if ({name} < 0 || {name} >= {size}) return 3; /* numpy: IndexError */",
            ]
        if stride:
            terms.append(name if stride == 1 else f"{stride} * {name}")
    return lines, f"{target.base}[{' + '.join(terms) or '0'}]"


def _gather(k: _Kernel) -> None:
    """x[key] with computed index arrays: each element read at its computed offset."""
    c, node = k.c, k.node
    x, arrays = node.inputs[0], node.inputs[1:]
    src = k.memory(x, "x")
    if src.fill is not None:  # every element is the same value: no index read at all
        k.lines += _assign(k, src.fill.text)
        return
    loop = c.Loop(node.shape)
    reads, elem = _computed_reads(k, loop, src, node.shape, node.attrs["key"], arrays)
    if node.shape == ():
        k.lines += reads + [f"double {k.w.values[node.id].expr.text} = {elem};"]
        return
    home = k.w.homes[node.id]
    k.lines += loop.render(reads + [f"{loop.leaf(home)} = {elem};"])


def _scatter_into(k: _Kernel, value, key, arrays) -> list[str]:
    """home[key] += value at computed indices, one element at a time (repeats add up)."""
    from ..ops.shape import indexed_shape

    c = k.c
    home = k.w.homes[k.node.id]
    shape = indexed_shape(home.shape, key, [a.shape for a in arrays])  # value broadcasts to it
    loop = c.Loop(shape)
    reads, elem = _computed_reads(k, loop, home, shape, key, arrays)
    g = k.w.element(value, loop if shape else None).text
    return loop.render(reads + [f"{elem} += {g};"])


def _zeros(k: _Kernel) -> None:
    home = k.w.homes[k.node.id]
    loop = k.c.Loop(home.shape)
    k.lines += loop.render([f"{loop.leaf(home)} = 0.0;"])


def _scatter(k: _Kernel) -> None:
    _zeros(k)
    node = k.node
    k.lines += _scatter_into(k, node.inputs[0], node.attrs["key"], node.inputs[1:])


def _multi_scatter(k: _Kernel) -> None:
    from ..ops.shape import real_key, scatter_parts

    _zeros(k)
    home = k.w.homes[k.node.id]
    for value, arrays, key in scatter_parts(k.node.inputs, k.node.attrs["keys"]):
        if all(a.op == "const" for a in arrays):
            part = np.asarray(home.offsets()[real_key(key, [a.value for a in arrays])])
            k.lines += k.w._copy(k.w._target(part, home), value, "+=")
        else:
            k.lines += _scatter_into(k, value, key, arrays)


EMITTERS = {
    "det": _lu_scalar,
    "slogdet_sign": _lu_scalar,
    "slogdet_log": _lu_scalar,
    "inv": _inv,
    "solve": _solve,
    "cholesky": _cholesky,
    "eigh_values": _eigh,
    "eigh_vectors": _eigh,
    "svd_s": _svd,
    "svd_u": _svd,
    "svd_vh": _svd,
    "qr_q": _qr,
    "qr_r": _qr,
    "argmax": _arg_best,
    "argmin": _arg_best,
    "argsort": _argsort,
}
