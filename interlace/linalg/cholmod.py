"""CHOLMOD PLS engine (scikit-sparse): analyze the pattern once, refactor per θ.

The engine reads the whole cross-products ``S = ZᵀWZ`` and ``C = ZᵀW[X y]``
(:meth:`~interlace.linalg.crossprod.CrossProducts.full`); per θ it factors
ΛᵀSΛ + I numerically on the symbolic analysis made at the first load (a pattern that
is a subset of the analyzed one, as when a θ is 0, is fine).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sksparse.cholmod import CholmodNotPositiveDefiniteError, analyze

from .crossprod import CrossProducts
from .pls import Factorization, PLSSystem

__all__ = ["CholmodPLS"]


class CholmodPLS(PLSSystem):
    """CHOLMOD engine (see the module docstring); built as :class:`~interlace.linalg.pls.PLSSystem`."""

    engine = "cholmod"
    _numeric = ("cp", "A33", "_L33", "A", "C0", "_C", "_Lam")

    def __init__(self, re: Any, p: int) -> None:
        super().__init__(re, p)
        self._factor: Any = None  # sksparse.cholmod.Factor after the first load

    def load(self, cp: CrossProducts) -> None:
        """Take ``S`` and ``C`` of ``cp``; the first load makes the symbolic analysis."""
        super().load(cp)
        self.A, self.C0 = cp.full()
        if self._factor is None:
            rng = np.random.default_rng(0)
            theta = rng.uniform(0.5, 1.5, self.re.n_theta)
            self._factor = analyze(self._system(theta), mode="auto")

    def spawn(self) -> PLSSystem:
        new = super().spawn()
        assert isinstance(new, CholmodPLS)
        if self._factor is not None:
            new._factor = self._factor.copy()  # factored in place per θ: not shared
        return new

    def _system(self, theta: np.ndarray) -> sp.csc_matrix:
        Lam = self.re.Lambda(theta)
        self._Lam = Lam
        return (Lam.T @ self.A @ Lam + sp.identity(self.re.q, format="csc")).tocsc()

    def factor(self, theta: np.ndarray) -> Factorization:
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

    def solve_M(self, B: np.ndarray) -> np.ndarray:
        return np.asarray(self._factor.solve_A(np.asarray(B, float)))

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.p
        beta = self._beta()
        rhs = self._C[:, p] - self._C[:, :p] @ beta
        u = self._factor.solve_A(rhs)
        return beta, np.asarray(u).ravel()
