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
from scipy.linalg import lapack

from .pls import HAVE_CHOLMOD

__all__ = ["ArrowheadSPD", "CholmodSPD", "DenseSPD", "NotPositiveDefinite", "cho_factor", "cho_solve"]


class NotPositiveDefinite(np.linalg.LinAlgError):
    """The matrix to factor is not numerically positive definite."""


def cho_factor(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a symmetric positive-definite matrix (LAPACK ``dpotrf`` called directly:
    the Cox Newton iterations factor small matrices hundreds of times, where scipy's wrappers cost
    more than the factorization)."""
    A = np.asarray(A, float)
    if A.size == 0:
        return np.zeros(A.shape)
    L, info = lapack.dpotrf(A, lower=1, clean=1)
    if info != 0 or not np.isfinite(L.trace()):          # NaN or infinite entries end up on the diagonal
        raise NotPositiveDefinite(f"matrix is not positive definite (LAPACK dpotrf info {info})")
    return L


def cho_solve(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A⁻¹B from the lower Cholesky factor L of A (LAPACK ``dpotrs``)."""
    B = np.asarray(B, float)
    if L.size == 0:
        return np.zeros(B.shape)
    x, info = lapack.dpotrs(L, B, lower=1)
    if info != 0:  # pragma: no cover - only for invalid arguments
        raise np.linalg.LinAlgError(f"LAPACK dpotrs info {info}")
    return x


class DenseSPD:
    """Cholesky factor of a dense symmetric positive-definite matrix."""

    engine = "dense"

    def __init__(self, M: np.ndarray) -> None:
        self.L = cho_factor(M)
        self.q = self.L.shape[0]

    @property
    def logdet(self) -> float:
        return 2.0 * float(np.sum(np.log(np.diag(self.L))))

    def solve(self, B: np.ndarray) -> np.ndarray:
        return cho_solve(self.L, B)

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
        if not (a.min() > 0 and np.isfinite(a.max())):
            raise NotPositiveDefinite("diagonal block is not positive")
        self.S, self.D = np.asarray(S), np.asarray(D)
        self.q = self.S.size + self.D.size
        self.a = a
        # no dense rows, diagonal block in order: M is diag(a) (every random effect a sparse level)
        self.diagonal = self.D.size == 0 and bool(np.all(self.S == np.arange(self.q)))
        self.l = np.sqrt(a)
        if self.diagonal:
            self.W, self.LD = np.zeros((a.size, 0)), np.zeros((0, 0))
            return
        self.W = np.asarray(B, float) / self.l[:, None]
        Sch = np.asarray(C, float) - self.W.T @ self.W
        self.LD = cho_factor(Sch)

    @property
    def logdet(self) -> float:
        if self.diagonal:
            return float(np.log(self.a).sum())
        return float(np.sum(np.log(self.a)) + 2.0 * np.sum(np.log(np.diag(self.LD))))

    def solve(self, B: np.ndarray) -> np.ndarray:
        B = np.asarray(B, float)
        if self.diagonal:
            return B / (self.a if B.ndim == 1 else self.a[:, None])
        vec = B.ndim == 1
        if vec:
            B = B[:, None]
        yS = B[self.S] / self.l[:, None]
        out = np.empty_like(B)
        if self.D.size:
            xD = cho_solve(self.LD, B[self.D] - self.W.T @ yS)    # the Schur complement's solve
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
        if self.D.size and not self.diagonal:
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
