"""CHOLMOD PLS engine (scikit-sparse): analyze the pattern once, refactor per θ.

Cross-products A = ZᵀWZ and C = ZᵀW[X y] are formed once; per θ the engine
factors ΛᵀAΛ + I numerically on the symbolic analysis made at construction
(a pattern that is a subset of the analyzed one, as when a θ is 0, is fine).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sksparse.cholmod import CholmodNotPositiveDefiniteError, analyze

from ..design.terms import RandomEffects
from .crossprod import WeightedGram, row_structure, weighted_cross
from .pls import Factorization, PLSSystem

__all__ = ["CholmodPLS"]


class CholmodPLS(PLSSystem):
    """CHOLMOD engine; see the module docstring."""

    engine = "cholmod"

    def __init__(self, re: RandomEffects, X: np.ndarray) -> None:
        super().__init__(re, X)
        self._rows = row_structure(re)
        self._gram = WeightedGram(*self._rows, *self._rows, (re.q, re.q), dense=False)
        self._factor = None

    @classmethod
    def from_blocks(cls, re: RandomEffects, n: int, A11: np.ndarray, A21, A22, A31: np.ndarray,
                    A32: np.ndarray, A33: np.ndarray) -> "CholmodPLS":
        """An engine on precomputed weighted cross-products of ``[Z X y]`` (no rows).

        Takes the blocks of :meth:`interlace.linalg.blocked.BlockedPLS.from_blocks`
        (same shapes and meaning) and assembles ``ZᵀWZ`` and ``ZᵀW[X y]`` from them;
        :meth:`set_data` is refused.
        """
        A33 = np.asarray(A33, dtype=float)
        p = A33.shape[0] - 1
        self = cls(re, np.zeros((0, p)))
        self.n = int(n)
        self._from_blocks = True
        t1 = re.terms[0]
        l1, p1 = t1.nlevels, t1.p
        r, c = np.meshgrid(np.arange(p1), np.arange(p1), indexing="ij")
        base = np.arange(l1)[:, None, None] * p1
        A11s = sp.csc_matrix((np.asarray(A11, float).reshape(l1, p1, p1).ravel(),
                              ((base + r).ravel(), (base + c).ravel())), shape=(t1.q, t1.q))
        q2 = re.q - t1.q
        if q2:
            A21s = sp.csr_matrix(A21)
            A = sp.bmat([[A11s, A21s.T], [A21s, sp.csr_matrix(A22)]], format="csc")
            C = np.vstack([np.asarray(A31, float).T, np.asarray(A32, float).T])
        else:
            A = A11s
            C = np.asarray(A31, float).T
        A.sum_duplicates()
        A.sort_indices()
        self.A = A
        self.C0 = np.ascontiguousarray(C)
        self.A33 = A33
        rng = np.random.default_rng(0)
        theta = rng.uniform(0.5, 1.5, re.n_theta)
        self._factor = analyze(self._system(theta), mode="auto")
        return self

    def gram_block(self, rows: slice, cols: slice):
        return self.A[:, cols][rows, :]

    def cross_block(self, rows: slice) -> np.ndarray:
        return self.C0[rows]

    def set_data(self, y, w=None) -> None:
        if getattr(self, "_from_blocks", False):
            raise NotImplementedError("this engine was built from cross-product blocks and has no rows")
        XY, w = self._xy(y, w)
        XYw = XY * w[:, None]
        self.A = self._gram(w).tocsc()
        self.C0 = weighted_cross(*self._rows, XYw, self.re.q).T
        self.A33 = XY.T @ XYw
        if self._factor is None:
            rng = np.random.default_rng(0)
            theta = rng.uniform(0.5, 1.5, self.re.n_theta)
            self._factor = analyze(self._system(theta), mode="auto")

    def _system(self, theta):
        Lam = self.re.Lambda(theta)
        self._Lam = Lam
        M = (Lam.T @ self.A @ Lam + sp.identity(self.re.q, format="csc")).tocsc()
        return M

    def factor(self, theta) -> Factorization:
        M = self._system(np.asarray(theta, float))
        F = self._factor
        try:
            F.cholesky_inplace(M)
        except CholmodNotPositiveDefiniteError:
            return Factorization(np.inf, np.inf, np.inf, ok=False)
        C = np.asarray(self._Lam.T @ self.C0)
        self._C = C
        S = F.solve_L(F.apply_P(C), use_LDLt_decomposition=False)
        M33 = self.A33 - S.T @ S
        return self._finish(M33, float(F.logdet()))

    def solve_M(self, B):
        return np.asarray(self._factor.solve_A(np.asarray(B, float)))

    def solve(self):
        p = self.p
        beta = self._beta()
        rhs = self._C[:, p] - self._C[:, :p] @ beta
        u = self._factor.solve_A(rhs)
        return beta, np.asarray(u).ravel()
