"""The blocked engine's Schur complement for vector-valued terms after a dense A21.

With Z = [Z1 Z2], the blocked engine eliminates the block-diagonal first term and factors

    M22 = Λ2ᵀ (A22 − G) Λ2 + I,   G = A21 blockdiag(D1ᵢ D1ᵢᵀ) A21ᵀ,   D1ᵢ = T1 L11ᵢ⁻ᵀ,

densely.  When the later terms are vector-valued (``(1 + x | b)``) Λ2 is block-diagonal
rather than diagonal, and when A21 is dense (crossed factors: most (a, b) pairs occur) the
pair Gram of :mod:`interlace.linalg.blocked` does not apply.  Here:

* G depends on the first term's θ only: ``B = A21 blockdiag(D1)`` and ``G = B Bᵀ`` (one BLAS
  ``dsyrk``, the dominant cost: q2² q1 multiply-adds) are kept and reused while θ1 stays
  (the finite-difference derivatives of lme4's checks move one or two θ at a time);
* Λ2ᵀ(A22 − G)Λ2 is two passes over the dense block (the level blocks T_k of each later
  term, as batched 2 × 2 products) and a scatter of the few nonzeros of Λ2ᵀA22Λ2;
* L21 = Λ2ᵀB is never formed: :class:`ScaledGramFactor` multiplies by it when the solution
  asks.

B is stored with the columns grouped by the position within the first term's block
(``(q2, p1, l1)``), so that every product with D1 is a contiguous multiply-add; the order of
the columns does not change G.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

__all__ = ["DenseGram", "ScaledGramFactor"]


class ScaledGramFactor:
    """L21 = Λ2ᵀ B P (P the column permutation of :class:`DenseGram`) as an operator: ``L21 @ X``
    and ``L21.T @ Y`` without forming L21."""

    def __init__(self, Lam2: sp.spmatrix, B: np.ndarray, l1: int, p1: int, transposed: bool = False) -> None:
        self._Lam2, self._B, self._l1, self._p1, self._t = Lam2, B, l1, p1, transposed

    @property
    def T(self) -> ScaledGramFactor:
        """The transpose."""
        return ScaledGramFactor(self._Lam2, self._B, self._l1, self._p1, not self._t)

    @property
    def shape(self) -> tuple[int, int]:
        """``(q2, q1)``, or ``(q1, q2)`` for the transpose."""
        q2, q1 = self._B.shape[0], self._l1 * self._p1
        return (q1, q2) if self._t else (q2, q1)

    def __matmul__(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        vec = X.ndim == 1
        X2 = X.reshape(X.shape[0], -1)
        k = X2.shape[1]
        l1, p1 = self._l1, self._p1
        if not self._t:  # Λ2ᵀ B (P X): rows of X from (level, r) order to (r, level)
            Xp = X2.reshape(l1, p1, k).transpose(1, 0, 2).reshape(l1 * p1, k)
            out = np.asarray(self._Lam2.T @ (self._B @ Xp))
        else:  # Pᵀ Bᵀ (Λ2 Y)
            Z = self._B.T @ np.asarray(self._Lam2 @ X2)
            out = Z.reshape(p1, l1, k).transpose(1, 0, 2).reshape(l1 * p1, k)
        return out.ravel() if vec else out


class DenseGram:
    """B = A21 blockdiag(D1) and G = B Bᵀ for one data set, cached on θ1; and M22 from them.

    Parameters
    ----------
    re : RandomEffects
    A21 : ndarray (q2, q1)
        Dense Z2ᵀWZ1, columns in the first term's (level, position) order.
    A22 : ndarray (q2, q2)
        Z2ᵀWZ2 (dense storage; its nonzeros are few: one block per level and pair of later terms).
    """

    def __init__(self, re: Any, A21: np.ndarray, A22: Any) -> None:
        t1 = re.terms[0]
        self.re = re
        self.l1, self.p1, self.q1 = t1.nlevels, t1.p, t1.q
        self.q2 = re.q - self.q1
        q2, l1, p1 = self.q2, self.l1, self.p1
        self._A = np.ascontiguousarray(np.asarray(A21, dtype=float).reshape(q2, l1, p1).transpose(0, 2, 1))
        self._A22 = sp.csr_matrix(A22, dtype=float)
        self._key: bytes | None = None
        self._B = np.empty((q2, p1, l1))
        self._G = np.zeros((q2, q2), order="F")  # dsyrk fills its lower triangle; the upper stays 0
        self._H = np.empty((q2, q2))
        # within the diagonal level blocks of the later terms, the lower entries the sandwich reads
        lo, up = [], []
        offs = re.col_offsets[1:] - self.q1
        for k, t in enumerate(re.terms[1:]):
            base = offs[k] + np.arange(t.nlevels) * t.p
            for a in range(t.p):
                for b in range(a + 1, t.p):
                    lo.append((base + b) * q2 + base + a)
                    up.append((base + a) * q2 + base + b)
        self._fix = (np.concatenate(lo), np.concatenate(up)) if lo else None

    def gram(self, key: bytes, D1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``B`` (q2 × p1·l1) and the upper triangle of ``G = B Bᵀ`` (C order) for the D1 of θ1 ``key``."""
        q2, l1, p1 = self.q2, self.l1, self.p1
        B2 = self._B.reshape(q2, p1 * l1)
        Gc = self._G.T  # C-ordered view: G's lower (Fortran) triangle is its upper one
        if key == self._key:
            return B2, Gc
        A, B = self._A, self._B
        tmp = np.empty((q2, l1)) if p1 > 1 else None
        for j in range(p1):
            np.multiply(A[:, 0, :], D1[:, 0, j], out=B[:, j, :])
            for i in range(1, p1):
                np.multiply(A[:, i, :], D1[:, i, j], out=tmp)
                B[:, j, :] += tmp
        # G = B Bᵀ: dsyrk with trans on Bᵀ (Fortran-ordered view, no copy), lower triangle in place
        self._G = sla.blas.dsyrk(1.0, B2.T, beta=0.0, c=self._G, trans=1, lower=1, overwrite_c=1)
        Gc = self._G.T
        if self._fix is not None:
            flat = Gc.reshape(-1)
            flat[self._fix[0]] = flat[self._fix[1]]
        self._key = key
        return B2, Gc

    def schur(self, theta: np.ndarray, Lam2: sp.spmatrix, Gc: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Upper triangle of Λ2ᵀ (A22 − G) Λ2 in ``out`` (C order, q2 × q2; the lower triangle is not meaningful).

        Block (x, y), x ≤ y, of each pair of later terms is T_xᵀ (A22 − G)_xy T_y: G times −Λ2 by
        column blocks, then Λ2ᵀ by row blocks, each a batched product with the small templates.
        """
        re, q2, H = self.re, self.q2, self._H
        terms = re.terms[1:]
        offs = re.col_offsets[1:] - self.q1
        temps = [t.cov.template(theta[re.theta_slice(k + 1)]) for k, t in enumerate(terms)]
        for k, t in enumerate(terms):
            sl, T = slice(offs[k], offs[k + 1]), temps[k]
            if len(terms) == 1:
                np.matmul(Gc.reshape(-1, t.p), -T, out=H.reshape(-1, t.p))
            elif t.p == 1:
                np.multiply(Gc[:, sl], -T[0, 0], out=H[:, sl])
            else:
                H[:, sl] = (Gc[:, sl].reshape(q2, t.nlevels, t.p) @ -T).reshape(q2, t.q)
        for k, t in enumerate(terms):
            sl, T = slice(offs[k], offs[k + 1]), temps[k]
            if t.p == 1:
                np.multiply(H[sl], T[0, 0], out=out[sl])
            else:
                np.matmul(T.T, H[sl].reshape(t.nlevels, t.p, q2), out=out[sl].reshape(t.nlevels, t.p, q2))
        S = (Lam2.T @ self._A22 @ Lam2).tocsr()
        rows = np.repeat(np.arange(q2), np.diff(S.indptr))
        out.reshape(-1)[rows * q2 + S.indices] += S.data
        return out
