"""Blocked PLS engine on numpy/scipy (no CHOLMOD needed).

Blocks, with Z = [Z1 Z2] (Z1 the term with most levels):

* L11: block-diagonal, one ``p1 × p1`` Cholesky factor per level of term 1
  (a vector of square roots for a scalar term).
* L21 = Λ2ᵀ A21 Λ1 L11⁻ᵀ: sparse (or dense when A21 is dense).
* L22: dense Cholesky of Λ2ᵀA22Λ2 + I − L21 L21ᵀ.
* L31, L32, L33: the dense [X y] rows.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..design.terms import RandomEffects
from .crossprod import WeightedGram, row_structure, weighted_cross
from .pls import Factorization, PLSSystem

__all__ = ["BlockedPLS", "DENSE_A21_ELEMENTS", "MAX_COLUMN_PAIRS"]

#: A21 (terms 2..k × term 1) is stored dense when it has at most this many elements
#: (or is more than a quarter full): small dense products beat sparse bookkeeping.
DENSE_A21_ELEMENTS = 200_000
#: Largest number of (i ≤ j, k) column pairs kept for forming L21 L21ᵀ by ``bincount``.
MAX_COLUMN_PAIRS = 20_000_000


def _pair_count(A21: sp.csr_matrix) -> int:
    m = np.bincount(A21.indices, minlength=A21.shape[1])
    return int(np.sum(m * (m + 1) // 2))


def _column_pairs(A21: sp.csr_matrix, rows: np.ndarray, q2: int):
    """For every column k of A21, the pairs of its nonzeros (i ≤ j): data positions, k, and
    the position of (i, j) among the distinct pairs."""
    cols = A21.indices
    order = np.argsort(cols, kind="stable")  # within a column, rows stay ascending
    bounds = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=A21.shape[1]))])
    Pi, Pj, K = [], [], []
    tri = {}
    for k in range(A21.shape[1]):
        seg = order[bounds[k]:bounds[k + 1]]
        m = seg.size
        if m == 0:
            continue
        if m not in tri:
            tri[m] = np.triu_indices(m)
        a, b = tri[m]
        Pi.append(seg[a])
        Pj.append(seg[b])
        K.append(np.full(a.size, k))
    Pi, Pj, K = np.concatenate(Pi), np.concatenate(Pj), np.concatenate(K)
    uniq, inv = np.unique(rows[Pi] * q2 + rows[Pj], return_inverse=True)
    ui, uj = np.divmod(uniq, q2)
    return Pi, Pj, K, inv.ravel(), ui, uj


class BlockedPLS(PLSSystem):
    """Blocked Cholesky engine; see the module docstring."""

    engine = "blocked"

    def __init__(self, re: RandomEffects, X: np.ndarray) -> None:
        super().__init__(re, X)
        t1 = re.terms[0]
        self.l1, self.p1 = t1.nlevels, t1.p
        self.q1 = t1.q
        self.q2 = re.q - self.q1
        p1, l1 = self.p1, self.l1
        # per-row nonzeros of Z1 and Z2, and the fixed patterns of their weighted products
        self._rows1 = row_structure(re, 0, 1)
        if self.q2:
            self._rows2 = row_structure(re, 1)
            probe = WeightedGram(*self._rows2, *self._rows1, (self.q2, self.q1), dense=False)
            # small or filled blocks are cheaper dense
            dense21 = probe.nnz > 0.25 * self.q1 * self.q2 or self.q1 * self.q2 <= DENSE_A21_ELEMENTS
            self._gram21 = WeightedGram(*self._rows2, *self._rows1, (self.q2, self.q1), dense=True) if dense21 \
                else probe
            self._gram22 = WeightedGram(*self._rows2, *self._rows2, (self.q2, self.q2), dense=True)
        # index pattern of the block-diagonal D1 = blockdiag(T1 L11_i^{-T})
        r, c = np.meshgrid(np.arange(p1), np.arange(p1), indexing="ij")
        base = np.arange(l1)[:, None, None] * p1
        self._d1_rows = (base + r).ravel()
        self._d1_cols = (base + c).ravel()
        # pattern of Λ2 (terms 2..k), fixed once: data entry -> θ index
        if self.q2:
            marker = re.Lambda(np.arange(1.0, re.n_theta + 1.0))[self.q1:, self.q1:].tocsc()
            marker.sort_indices()
            self._lam2 = (marker.indices.copy(), marker.indptr.copy(), marker.data.astype(np.int64) - 1)
            # all later terms scalar: Λ2 is diagonal and scaling replaces sparse products
            self._diag2 = all(t.p == 1 for t in re.terms[1:])
            if self._diag2:
                self._lam2_lind = marker.data.astype(np.int64) - 1

    def _Lambda2(self, theta: np.ndarray) -> sp.csc_matrix:
        idx, ptr, lind = self._lam2
        return sp.csc_matrix((theta[lind], idx, ptr), shape=(self.q2, self.q2))

    def set_data(self, y, w=None) -> None:
        XY, w = self._xy(y, w)
        t1 = self.re.terms[0]
        X1 = t1.X
        p1, l1 = self.p1, self.l1
        A11 = np.empty((l1, p1, p1))
        for a in range(p1):
            for b in range(a, p1):
                A11[:, a, b] = np.bincount(t1.codes, w * X1[:, a] * X1[:, b], minlength=l1)
                A11[:, b, a] = A11[:, a, b]
        self.A11 = A11
        XYw = XY * w[:, None]
        self.A31 = weighted_cross(*self._rows1, XYw, self.q1)
        self.A33 = XY.T @ XYw
        if self.q2:
            self.A22 = self._gram22(w)  # M22 is dense anyway
            A21 = self._gram21(w)
            if sp.issparse(A21) and not hasattr(self, "_a21_rows"):
                self._a21_rows = np.repeat(np.arange(self.q2), np.diff(A21.indptr))
            self.A21 = A21
            self.A32 = weighted_cross(*self._rows2, XYw, self.q2)
            if self._use_pairs():
                Pi, Pj = self._pairs[0], self._pairs[1]
                self._pair_prod = A21.data[Pi] * A21.data[Pj]

    def _D1(self, T1: np.ndarray):
        """L11 blocks and D1 = T1 L11⁻ᵀ per level; returns (logdet contribution, D1 blocks)."""
        if self.p1 == 1:
            t = T1[0, 0]
            d = np.sqrt(t * t * self.A11[:, 0, 0] + 1.0)
            self._L11 = d[:, None, None]
            return 2.0 * np.sum(np.log(d)), (t / d)[:, None, None]
        if self.p1 == 2:
            return self._D1_2x2(T1)
        M11 = np.einsum("ba,ibc,cd->iad", T1, self.A11, T1)
        M11 += np.eye(self.p1)
        L11 = np.linalg.cholesky(M11)
        self._L11 = L11
        # D1_i = T1 L11_i^{-T}  <=>  D1_i^T = L11_i^{-1} T1^T
        D1t = np.linalg.solve(L11, np.broadcast_to(T1.T, L11.shape))
        ld = 2.0 * np.sum(np.log(np.diagonal(L11, axis1=1, axis2=2)))
        return ld, np.transpose(D1t, (0, 2, 1))

    def _D1_2x2(self, T1: np.ndarray):
        """Closed-form 2 × 2 blocks (a random intercept and slope): no batched LAPACK calls."""
        A = self.A11
        a11, a12, a22 = A[:, 0, 0], A[:, 0, 1], A[:, 1, 1]
        t11, t21, t22 = T1[0, 0], T1[1, 0], T1[1, 1]
        # M = Tᵀ A T + I with T lower triangular
        m11 = t11 * t11 * a11 + 2 * t11 * t21 * a12 + t21 * t21 * a22 + 1.0
        m21 = t22 * (t11 * a12 + t21 * a22)
        m22 = t22 * t22 * a22 + 1.0
        l11 = np.sqrt(m11)
        l21 = m21 / l11
        l22 = np.sqrt(m22 - l21 * l21)
        L = np.zeros((self.l1, 2, 2))
        L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = l11, l21, l22
        self._L11 = L
        # D1 = T L⁻ᵀ, with L⁻ᵀ = [[1/l11, −l21/(l11 l22)], [0, 1/l22]]
        D = np.empty((self.l1, 2, 2))
        D[:, 0, 0] = t11 / l11
        D[:, 0, 1] = -t11 * l21 / (l11 * l22)
        D[:, 1, 0] = t21 / l11
        D[:, 1, 1] = (t22 - t21 * l21 / l11) / l22
        return 2.0 * float(np.sum(np.log(l11) + np.log(l22))), D

    def _times_D1(self, A, D1):
        """A (k × q1, dense or sparse) times blockdiag(D1)."""
        if sp.issparse(A):
            if self.p1 == 1:
                return (A @ sp.diags(D1[:, 0, 0])).tocsr()
            D = sp.csr_matrix((D1.ravel(), (self._d1_rows, self._d1_cols)), shape=(self.q1, self.q1))
            return (A @ D).tocsr()
        if self.p1 == 1:
            return A * D1[:, 0, 0]
        k = A.shape[0]
        return np.einsum("kia,iab->kib", A.reshape(k, self.l1, self.p1), D1).reshape(k, self.q1)

    def _use_pairs(self) -> bool:
        """Whether L21 L21ᵀ is formed from precomputed column pairs of a sparse A21.

        With a scalar first term and diagonal Λ2, L21 L21ᵀ = Λ2 (A21 diag(δ²) A21ᵀ) Λ2, a
        weighted sum over the columns k of A21 of outer products a_k a_kᵀ whose pattern
        never changes: its entries are one ``bincount`` over the pairs (i ≤ j, k) instead
        of a sparse matrix product per evaluation (InstEval: ~1.4 M pairs, 3× faster).
        """
        if not (self.q2 and self._diag2 and self.p1 == 1 and sp.issparse(self.A21)):
            return False
        if not hasattr(self, "_pairs"):
            self._pairs = _column_pairs(self.A21, self._a21_rows, self.q2) if \
                _pair_count(self.A21) <= MAX_COLUMN_PAIRS else None
        return self._pairs is not None

    def _pair_gram(self, c: np.ndarray) -> np.ndarray:
        """Dense symmetric A21 diag(c) A21ᵀ from the column pairs."""
        Pi, Pj, K, inv, ui, uj = self._pairs
        vals = np.bincount(inv, weights=self._pair_prod * c[K], minlength=ui.size)
        S = np.zeros((self.q2, self.q2))
        S[ui, uj] = vals
        S[uj, ui] = vals
        return S

    def _scaled_blocks(self, theta, D1):
        """L21, Λ2ᵀA22Λ2 and A32Λ2 when Λ2 is diagonal (every later term scalar)."""
        lam2 = theta[self._lam2_lind]
        A21 = self.A21
        if sp.issparse(A21):
            if self.p1 == 1:
                data = A21.data * lam2[self._a21_rows] * D1[:, 0, 0][A21.indices]
                L21 = sp.csr_matrix((data, A21.indices, A21.indptr), shape=A21.shape)
            else:
                L21 = self._times_D1(A21, D1)
                L21 = sp.csr_matrix((L21.data * lam2[np.repeat(np.arange(self.q2), np.diff(L21.indptr))],
                                     L21.indices, L21.indptr), shape=L21.shape)
        else:
            L21 = lam2[:, None] * self._times_D1(A21, D1)
        M22 = self.A22 * lam2[:, None]
        M22 *= lam2[None, :]
        return L21, M22, self.A32 * lam2[None, :]

    def factor(self, theta) -> Factorization:
        re = self.re
        theta = np.asarray(theta, float)
        T1 = re.terms[0].cov.template(theta[re.theta_slice(0)])
        try:
            ld1, D1 = self._D1(T1)
        except np.linalg.LinAlgError:
            return Factorization(np.inf, np.inf, np.inf, ok=False)
        self._D1blocks, self._T1 = D1, T1
        L31 = self._times_D1(self.A31, D1)
        self._L31 = L31
        ld2 = 0.0
        if self.q2:
            if self._diag2:
                L21, M22, LamA32 = self._scaled_blocks(theta, D1)
            else:
                Lam2 = self._Lambda2(theta)
                L21 = Lam2.T @ self._times_D1(self.A21, D1)
                M22 = np.asarray((Lam2.T @ (Lam2.T @ self.A22).T).T)
                LamA32 = np.asarray((Lam2.T @ self.A32.T).T)
            M22[np.diag_indices_from(M22)] += 1.0
            if self._use_pairs():
                lam2 = theta[self._lam2_lind]
                LL = self._pair_gram(D1[:, 0, 0] ** 2)
                LL *= lam2[:, None]
                LL *= lam2[None, :]
            else:
                LL = L21 @ L21.T
            M22 -= LL.toarray() if sp.issparse(LL) else LL
            try:
                L22 = sla.cholesky(M22, lower=True, check_finite=False, overwrite_a=True)
            except np.linalg.LinAlgError:
                return Factorization(np.inf, np.inf, np.inf, ok=False)
            self._L21, self._L22 = L21, L22
            R = LamA32 - np.asarray(L21 @ L31.T).T
            L32 = sla.solve_triangular(L22, R.T, lower=True, check_finite=False).T
            self._L32 = L32
            ld2 = 2.0 * float(np.sum(np.log(np.diag(L22))))
            M33 = self.A33 - L31 @ L31.T - L32 @ L32.T
        else:
            M33 = self.A33 - L31 @ L31.T
        return self._finish(M33, float(ld1) + ld2)

    def _L11_solve(self, B1: np.ndarray, transpose: bool) -> np.ndarray:
        """Solve with the block-diagonal L11 (or its transpose) for the rows of block 1."""
        k = B1.shape[1]
        R = B1.reshape(self.l1, self.p1, k)
        if self.p1 == 1:
            return (R / self._L11).reshape(self.q1, k)
        L = np.transpose(self._L11, (0, 2, 1)) if transpose else self._L11
        return np.linalg.solve(L, R).reshape(self.q1, k)

    def solve_M(self, B):
        B = np.asarray(B, float)
        B1, B2 = B[: self.q1], B[self.q1:]
        # forward: L y = b
        y1 = self._L11_solve(B1, transpose=False)
        if self.q2:
            y2 = sla.solve_triangular(self._L22, B2 - np.asarray(self._L21 @ y1), lower=True, check_finite=False)
            x2 = sla.solve_triangular(self._L22.T, y2, lower=False, check_finite=False)
            x1 = self._L11_solve(y1 - np.asarray(self._L21.T @ x2), transpose=True)
            return np.vstack([x1, x2])
        return self._L11_solve(y1, transpose=True)

    def solve(self):
        p = self.p
        beta = self._beta()
        if self.q2:
            r2 = self._L32[p] - self._L32[:p].T @ beta
            u2 = sla.solve_triangular(self._L22.T, r2, lower=False, check_finite=False)
            r1 = self._L31[p] - self._L31[:p].T @ beta - np.asarray(self._L21.T @ u2).ravel()
        else:
            u2 = np.zeros(0)
            r1 = self._L31[p] - self._L31[:p].T @ beta
        R1 = r1.reshape(self.l1, self.p1)
        if self.p1 == 1:
            u1 = R1[:, 0] / self._L11[:, 0, 0]
        else:
            u1 = np.linalg.solve(np.transpose(self._L11, (0, 2, 1)), R1[..., None])[..., 0].ravel()
        return beta, np.concatenate([u1, u2])
