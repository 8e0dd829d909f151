"""Symmetric positive-definite factorizations of a random-effects block M (q × q).

Used where the weights are not diagonal (the Cox partial likelihood couples the rows
of a risk set), so the PLS engines' ΛᵀZᵀWZΛ + I forms do not apply and M is
assembled directly.  Three engines share one interface (``logdet``, ``solve``,
``trace_inv``):

* :class:`DenseSPD` — LAPACK Cholesky of a dense M;
* :class:`ArrowheadSPD` — M = [[diag(a), B], [Bᵀ, C]]: a diagonal block (the
  sparse levels of a grouping factor) bordered by a dense block; eliminating the
  diagonal block leaves the small dense Schur complement C − Bᵀ diag(a)⁻¹ B
  (coxme's ``bdsmatrix`` structure), so the cost is O(q_S q_D²);
* :class:`CholmodSPD` — CHOLMOD on the same arrowhead pattern stored sparse
  (symbolic analysis once, numeric refactorization per call).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .pls import HAVE_CHOLMOD

__all__ = ["ArrowheadSPD", "CholmodSPD", "DenseSPD", "NotPositiveDefinite"]


class NotPositiveDefinite(np.linalg.LinAlgError):
    """The matrix to factor is not numerically positive definite."""


class DenseSPD:
    """Cholesky factor of a dense symmetric positive-definite matrix."""

    engine = "dense"

    def __init__(self, M: np.ndarray) -> None:
        try:
            self.L = sla.cholesky(np.asarray(M, float), lower=True, check_finite=True)
        except (np.linalg.LinAlgError, ValueError) as exc:
            raise NotPositiveDefinite(str(exc)) from None
        self.q = self.L.shape[0]

    @property
    def logdet(self) -> float:
        return 2.0 * float(np.sum(np.log(np.diag(self.L))))

    def solve(self, B: np.ndarray) -> np.ndarray:
        return sla.cho_solve((self.L, True), B, check_finite=False)

    def inverse(self) -> np.ndarray:
        return self.solve(np.eye(self.q))

    def trace_inv(self) -> float:
        Li = sla.solve_triangular(self.L, np.eye(self.q), lower=True, check_finite=False)
        return float(np.sum(Li ** 2))


class ArrowheadSPD:
    """M = [[diag(a), B], [Bᵀ, C]] in the order (S, D); ``S``/``D`` give those rows' positions in M.

    Parameters
    ----------
    a : ndarray (q_S,)
    B : ndarray (q_S, q_D)
    C : ndarray (q_D, q_D)
    S, D : ndarray of int
        Positions of the diagonal-block and dense rows in the caller's order.
    """

    engine = "blocked"

    def __init__(self, a: np.ndarray, B: np.ndarray, C: np.ndarray, S: np.ndarray, D: np.ndarray) -> None:
        a = np.asarray(a, float)
        if not (np.all(np.isfinite(a)) and np.all(a > 0)):
            raise NotPositiveDefinite("diagonal block is not positive")
        self.S, self.D = np.asarray(S), np.asarray(D)
        self.q = self.S.size + self.D.size
        self.a = a
        self.l = np.sqrt(a)
        self.W = np.asarray(B, float) / self.l[:, None]
        Sch = np.asarray(C, float) - self.W.T @ self.W
        try:
            self.LD = sla.cholesky(Sch, lower=True, check_finite=True) if Sch.size else np.zeros((0, 0))
        except (np.linalg.LinAlgError, ValueError) as exc:
            raise NotPositiveDefinite(str(exc)) from None

    @property
    def logdet(self) -> float:
        return float(np.sum(np.log(self.a)) + 2.0 * np.sum(np.log(np.diag(self.LD))))

    def solve(self, B: np.ndarray) -> np.ndarray:
        B = np.asarray(B, float)
        vec = B.ndim == 1
        if vec:
            B = B[:, None]
        yS = B[self.S] / self.l[:, None]
        out = np.empty_like(B)
        if self.D.size:
            yD = sla.solve_triangular(self.LD, B[self.D] - self.W.T @ yS, lower=True, check_finite=False)
            xD = sla.solve_triangular(self.LD.T, yD, lower=False, check_finite=False)
            out[self.D] = xD
            out[self.S] = (yS - self.W @ xD) / self.l[:, None]
        else:
            out[self.S] = yS / self.l[:, None]
        return out[:, 0] if vec else out

    def inverse(self) -> np.ndarray:
        return self.solve(np.eye(self.q))

    def inv_diag_S(self) -> np.ndarray:
        """Diagonal of M⁻¹ on the diagonal-block rows: 1/a + ‖L_D⁻¹ (B/a)ᵀ e_i‖²."""
        d = 1.0 / self.a
        if self.D.size:
            Y = sla.solve_triangular(self.LD, (self.W / self.l[:, None]).T, lower=True, check_finite=False)
            d = d + np.sum(Y ** 2, axis=0)
        return d

    def inv_DD(self) -> np.ndarray:
        """The dense rows' block of M⁻¹ (the inverse Schur complement)."""
        if not self.D.size:
            return np.zeros((0, 0))
        return sla.cho_solve((self.LD, True), np.eye(self.D.size), check_finite=False)

    def trace_inv(self) -> float:
        t = float(np.sum(self.inv_diag_S()))
        if self.D.size:
            Li = sla.solve_triangular(self.LD, np.eye(self.D.size), lower=True, check_finite=False)
            t += float(np.sum(Li ** 2))
        return t


class CholmodSPD:
    """CHOLMOD factor of the arrowhead matrix stored sparse (see :class:`ArrowheadSPD`).

    ``pattern`` (a previous :class:`CholmodSPD` or None) reuses the symbolic analysis.
    """

    engine = "cholmod"

    def __init__(self, a: np.ndarray, B: np.ndarray, C: np.ndarray, S: np.ndarray, D: np.ndarray,
                 pattern: CholmodSPD | None = None) -> None:
        if not HAVE_CHOLMOD:  # pragma: no cover - depends on the machine
            raise ImportError("engine='cholmod' needs scikit-sparse; use engine='blocked'")
        from sksparse.cholmod import CholmodNotPositiveDefiniteError, analyze

        S, D = np.asarray(S), np.asarray(D)
        q = S.size + D.size
        self.q = q
        A = sp.diags(np.asarray(a, float))
        Bs = sp.csr_matrix(np.asarray(B, float))
        Cs = sp.csr_matrix(np.asarray(C, float))
        perm = np.concatenate([S, D])
        block = sp.bmat([[A, Bs], [Bs.T, Cs]], format="csc")
        inv = np.empty(q, np.int64)
        inv[perm] = np.arange(q)
        M = block[inv][:, inv].tocsc()
        # keep every structural entry so the pattern never shrinks between calls
        M.sort_indices()
        self._parts = (a, B, C, S, D)
        self._analysis: Any = pattern._analysis if pattern is not None and pattern.q == q else analyze(M, mode="auto")
        try:
            self.F = self._analysis.cholesky(M)
        except CholmodNotPositiveDefiniteError as exc:
            raise NotPositiveDefinite(str(exc)) from None

    @property
    def logdet(self) -> float:
        return float(self.F.logdet())

    def solve(self, B: np.ndarray) -> np.ndarray:
        return np.asarray(self.F.solve_A(np.asarray(B, float)))

    def inverse(self) -> np.ndarray:
        return self.solve(np.eye(self.q))

    def trace_inv(self) -> float:
        """From the block formulas of :class:`ArrowheadSPD` (a CHOLMOD solve per column would cost q solves)."""
        return ArrowheadSPD(*self._parts).trace_inv()
