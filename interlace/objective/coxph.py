"""A Cox model without random effects (R's ``survival::coxph``): Newton-Raphson on the partial likelihood.

Used as the start of the mixed-effects Cox fit (coxme starts from it) and for its
null log-likelihood.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..response.survival import CoxData

__all__ = ["CoxPHFit", "coxph_fit"]


@dataclass
class CoxPHFit:
    """A Cox model without random effects (R's ``coxph``).

    Attributes
    ----------
    coef : ndarray
    vcov : ndarray
        Inverse of the information matrix XᵀAX at ``coef``.
    loglik : tuple
        (log PL at the initial values, log PL at ``coef``), as ``coxph``'s ``loglik``.
    iterations : int
        Newton-Raphson iterations as ``coxph`` counts them (its ``iter``).
    converged : bool
    score : float
        Score (log-rank) test statistic at the initial values, uᵀI⁻¹u (``coxph``'s ``score``).
    """

    coef: np.ndarray
    vcov: np.ndarray
    loglik: tuple
    iterations: int
    converged: bool
    score: float = float("nan")


def coxph_fit(X: np.ndarray, cd: CoxData, offset: npt.ArrayLike | None = None, init: npt.ArrayLike | None = None,
              maxiter: int = 20, eps: float = 1e-9) -> CoxPHFit:
    """Fit a Cox model by Newton-Raphson with step halving, as ``survival::coxph`` does.

    Iteration k evaluates log PL at the proposed β; it stops when the relative change
    of log PL is at most ``eps`` (after a full step), halves the step when log PL fell,
    and otherwise takes the next Newton step.  The iteration count is ``coxph``'s
    ``iter`` (coxme uses it to set its inner iterations).
    """
    X = np.asarray(X, float)
    n, p = X.shape
    off = np.zeros(n) if offset is None else np.asarray(offset, float)
    beta = np.zeros(p) if init is None else np.asarray(init, float).copy()

    def evaluate(b):
        st = cd.state(off + X @ b if p else off)
        if p == 0:
            return st, np.zeros(0), np.zeros((0, 0))
        return st, X.T @ st.grad, st.gram(X)

    st, u, imat = evaluate(beta)
    ll0 = st.loglik
    if p == 0:
        return CoxPHFit(beta, np.zeros((0, 0)), (ll0, ll0), 0, True, 0.0)
    try:
        score = float(u @ np.linalg.solve(imat, u))
    except np.linalg.LinAlgError:
        score = float("nan")
    loglik = ll0
    it = 0
    converged = False
    if maxiter > 0:
        newbeta = beta + np.linalg.solve(imat, u)
        halving = False
        for it in range(1, maxiter + 1):
            st_n, u_n, imat_n = evaluate(newbeta)
            newlk = st_n.loglik
            if abs(1 - loglik / newlk) <= eps and not halving:
                beta, loglik, imat = newbeta, newlk, imat_n
                converged = True
                break
            if it == maxiter:
                break
            if not np.isfinite(newlk) or newlk < loglik:
                halving = True
                newbeta = 0.5 * (newbeta + beta)
            else:
                halving = False
                loglik, imat = newlk, imat_n
                beta = newbeta
                newbeta = beta + np.linalg.solve(imat_n, u_n)
    vcov = np.linalg.inv(imat)
    return CoxPHFit(beta, 0.5 * (vcov + vcov.T), (ll0, loglik), it, converged, score)
