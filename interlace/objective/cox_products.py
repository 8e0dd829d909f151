"""The blocks of the Cox Hessian for the mixed model's design, from one risk-set state.

The penalized Cox fit needs, at every Newton iteration, the blocks of [Z X]ᵀA[Z X]
(A = −∂² log PL/∂η∂ηᵀ, see :mod:`interlace.response.survival`) split as coxme splits them:
the *sparse* intercept columns S of the first random term (only the diagonal of their
block, coxme's approximation), the other random-effects columns D (dense) and X.

:class:`CoxProducts` analyses the design once — the nonzeros of Z as (row, column, value)
triples, the pairs of nonzeros that share a row, the sparse level of each row — so that
each evaluation is a handful of ``numpy.bincount`` calls over the rows and dense products
of the risk-set means, with no sparse-matrix objects built per iteration.  Z v and Zᵀ g
are done the same way (:meth:`CoxProducts.z_dot`, :meth:`CoxProducts.zt_dot`), and a
diagonal Λθ (scalar random-effects terms only) is kept as a vector.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..design.terms import RandomEffects
from ..response.survival import CoxState

__all__ = ["CoxBlocks", "CoxProducts"]


def _row_pairs(rows: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair (e1, e2) of entries (given sorted by row) that share a row."""
    counts = np.bincount(rows, minlength=n_rows)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    c = counts[rows]
    e1 = np.repeat(np.arange(rows.size), c)
    within = np.arange(e1.size) - np.repeat(np.cumsum(c) - c, c)
    e2 = first[rows[e1]] + within
    return e1, e2


@dataclass
class CoxBlocks:
    """The Hessian blocks at one state: ``hS`` (diagonal of S's block), ``HSD``, ``HSX``, ``HDD``,
    ``HDX``, ``HXX`` (dense)."""

    hS: np.ndarray
    HSD: np.ndarray
    HSX: np.ndarray
    HDD: np.ndarray
    HDX: np.ndarray
    HXX: np.ndarray


class CoxProducts:
    """Analysis of (Z, X) for the Cox Hessian (see the module docstring).

    Parameters
    ----------
    re : RandomEffects
    X : ndarray (n, p)
    S : ndarray of int
        Z columns of coxme's sparse intercepts (may be empty).
    codes, levels, nlevels
        Level code of each row for the sparse term, the sparse levels, the term's number
        of levels (None when S is empty).
    """

    def __init__(self, re: RandomEffects, X: np.ndarray, S: np.ndarray, codes: np.ndarray | None = None,
                 levels: np.ndarray | None = None, nlevels: int = 0) -> None:
        n, q = re.n, re.q
        self.n, self.q = n, q
        self.X = X
        self.p = X.shape[1]
        Z = re.Z().tocoo()
        order = np.lexsort((Z.col, Z.row))
        zr, zc, zv = Z.row[order].astype(np.int64), Z.col[order].astype(np.int64), Z.data[order].astype(float)
        self.z_rows, self.z_cols, self.z_vals = zr, zc, zv
        # scalar random intercepts only: Z is one 0/1 indicator per row and term
        self._indicator_cols: list[np.ndarray] | None = None
        if re.terms and all(t.p == 1 and np.all(t.X[:, 0] == 1.0) for t in re.terms):
            self._indicator_cols = [np.asarray(re.col_offsets[k] + t.codes, np.int64) for k, t in enumerate(re.terms)]
        self.S = np.asarray(S, np.int64)
        self.D = np.setdiff1d(np.arange(q), self.S)
        qS, qD = self.S.size, self.D.size
        self.qS, self.qD = qS, qD
        dpos = np.full(q, -1, np.int64)
        dpos[self.D] = np.arange(qD)
        spos_col = np.full(q, -1, np.int64)
        spos_col[self.S] = np.arange(qS)
        inD = dpos[zc] >= 0
        self.d_rows, self.d_cols, self.d_vals = zr[inD], dpos[zc[inD]], zv[inD]
        # pairs of D entries in one row: the sparse pattern of ZDᵀ diag(s) ZD
        e1, e2 = _row_pairs(self.d_rows, n)
        self.dd_rows = self.d_rows[e1]
        self.dd_key = self.d_cols[e1] * qD + self.d_cols[e2]
        self.dd_vals = self.d_vals[e1] * self.d_vals[e2]
        # the sparse level of each row (the intercept column of a sparse level has value 1)
        inS = spos_col[zc] >= 0
        spos = np.full(n, -1, np.int64)
        spos[zr[inS]] = spos_col[zc[inS]]
        self.s_rows = np.flatnonzero(spos >= 0)
        self.s_pos = spos[self.s_rows]
        self.s_all = self.s_rows.size == n          # every row in a sparse level: no gathers
        self.XT = np.ascontiguousarray(X.T)
        self.XT_s = self.XT if self.s_all else np.ascontiguousarray(self.XT[:, self.s_rows])
        self.s_keys_x = (np.arange(self.p)[:, None] * qS + self.s_pos[None, :]).ravel()
        self.s_keys_d = (np.arange(qD)[:, None] * qS + self.s_pos[None, :]).ravel() if qD else None
        has_s = spos[self.d_rows] >= 0
        self.sd_rows = self.d_rows[has_s]
        self.sd_key = spos[self.sd_rows] * qD + self.d_cols[has_s]
        self.sd_vals = self.d_vals[has_s]
        self.codes, self.levels, self.nlevels = codes, levels, nlevels
        # Λθ: a vector when diagonal
        lam = re.Lambda(np.arange(1.0, re.n_theta + 1.0)).tocoo()
        self.lam_diagonal = bool(np.all(lam.row == lam.col)) and lam.nnz == q
        if self.lam_diagonal:
            self.lam_index = np.empty(q, np.int64)
            self.lam_index[lam.row] = np.rint(lam.data).astype(np.int64) - 1
        self.re = re

    # ---------------------------------------------------------------- Z and Λ
    def z_dot(self, v: np.ndarray) -> np.ndarray:
        """Z v (n,)."""
        if self._indicator_cols is not None:          # one indicator column per row and term: a gather
            out = v.take(self._indicator_cols[0])
            for cols in self._indicator_cols[1:]:
                out += v.take(cols)
            return out
        return np.bincount(self.z_rows, weights=self.z_vals * v[self.z_cols], minlength=self.n)

    def zt_dot(self, g: np.ndarray) -> np.ndarray:
        """Zᵀ g (q,)."""
        if self._indicator_cols is not None and len(self._indicator_cols) == 1:
            return np.bincount(self._indicator_cols[0], weights=g, minlength=self.q)
        return np.bincount(self.z_cols, weights=self.z_vals * g[self.z_rows], minlength=self.q)

    def lam_vector(self, theta: np.ndarray) -> np.ndarray | None:
        """The diagonal of Λθ when Λθ is diagonal, else None."""
        if not self.lam_diagonal:
            return None
        return np.asarray(theta, float)[self.lam_index]

    def lam(self, theta: np.ndarray) -> np.ndarray | sp.csc_matrix:
        """Λθ: its diagonal (a vector) when diagonal, else the sparse matrix."""
        d = self.lam_vector(theta)
        return d if d is not None else self.re.Lambda(theta).tocsc()

    # ---------------------------------------------------------------- Hessian blocks
    def blocks(self, st: CoxState, with_x: bool = True) -> CoxBlocks:
        """The blocks of [Z X]ᵀA[Z X] at the state ``st`` (S's block: its diagonal only); without
        ``with_x`` only those of Z (the X blocks are left empty)."""
        X, qS, qD = self.X, self.qS, self.qD
        p = self.p if with_x else 0
        s = st.s
        SX = st.x_sums(X) if p else None
        PX = st.weights_of(SX) if SX is not None else None
        SD = st.sums_coo(self.d_rows, self.d_cols, self.d_vals, qD) if qD else None
        XT = self.XT
        HXX = XT @ (XT * s).T - st.outer(SX, SX, PX) if SX is not None else np.zeros((0, 0))
        if SD is not None:
            sd = self.d_vals * s[self.d_rows]
            if SX is not None:
                first = np.stack([np.bincount(self.d_cols, weights=sd * X[self.d_rows, j], minlength=qD)
                                  for j in range(p)], axis=1)
                HDX = first - st.outer(SD, SX, PX)
            else:
                HDX = np.zeros((qD, 0))
            HDD = np.bincount(self.dd_key, weights=s[self.dd_rows] * self.dd_vals,
                              minlength=qD * qD).reshape(qD, qD).astype(float) - st.outer(SD, SD)
        else:
            HDX, HDD = np.zeros((0, p)), np.zeros((0, 0))
        if qS:
            assert self.codes is not None and self.levels is not None
            hS = st.indicator_diag(self.codes, self.nlevels)[self.levels]
            rows = None if self.s_all else self.s_rows
            s_r = s if rows is None else s.take(rows)
            HSX = np.zeros((qS, 0))
            HSD = np.zeros((qS, 0))
            if SX is not None:
                RT = self.XT_s * s_r
                RT -= st.cross_rows_sums(SX, rows, PX)
                HSX = np.bincount(self.s_keys_x, weights=RT.ravel(), minlength=p * qS).reshape(p, qS).T
            if SD is not None:
                assert self.s_keys_d is not None
                GD = st.cross_rows_sums(SD, rows)
                HSD = np.bincount(self.sd_key, weights=s[self.sd_rows] * self.sd_vals,
                                  minlength=qS * qD).reshape(qS, qD).astype(float)
                HSD -= np.bincount(self.s_keys_d, weights=GD.ravel(), minlength=qD * qS).reshape(qD, qS).T
        else:
            hS, HSD, HSX = np.zeros(0), np.zeros((0, qD)), np.zeros((0, p))
        return CoxBlocks(hS, HSD, HSX, HDD, HDX, HXX)
