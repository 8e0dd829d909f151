"""L1-penalized generalized least squares by cyclic coordinate descent ("shooting").

statsmodels' ``MixedLM.fit_regularized`` holds the covariance parameters at their
unpenalized estimates and minimizes over β

    (y − Xβ)ᵀ V⁻¹ (y − Xβ) + Σ_j α_j |β_j|,

one coordinate at a time (Friedman, Hastie and Tibshirani 2008, J. Stat. Softw. 33(1)).
With ``W = XᵀV⁻¹X`` and ``c = XᵀV⁻¹y`` the criterion in ``β_j`` is
``a β_j² + b β_j + α_j |β_j|`` with ``a = W_jj`` and ``b = −2 (c_j − Σ_{k≠j} W_jk β_k)``,
minimized by soft thresholding.  As in statsmodels, a coefficient smaller than ``ceps``
in magnitude is left as it is, and the sweeps stop when no coefficient moves by
``ptol`` or more.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["l1_coordinate_descent"]


def l1_coordinate_descent(W: npt.ArrayLike, c: npt.ArrayLike, alpha: npt.ArrayLike, start: npt.ArrayLike,
                          ceps: float = 1e-4, ptol: float = 1e-6, maxit: int = 200) -> tuple[np.ndarray, int]:
    """Minimize ``βᵀWβ − 2cᵀβ + Σ α_j |β_j|`` by coordinate descent (see the module docstring).

    Parameters
    ----------
    W : array-like (p, p)
        ``XᵀV⁻¹X`` (symmetric positive definite).
    c : array-like (p,)
        ``XᵀV⁻¹y``.
    alpha : array-like (p,)
        Penalty weights.
    start : array-like (p,)
        Starting β (statsmodels: the unpenalized estimate).
    ceps : float
        Coefficients smaller than this in magnitude are not updated.
    ptol : float
        Stop when a sweep changes no coefficient by ``ptol`` or more.
    maxit : int
        Largest number of sweeps.

    Returns
    -------
    beta : ndarray (p,)
    sweeps : int
        Sweeps made.
    """
    W = np.asarray(W, dtype=float)
    c = np.asarray(c, dtype=float)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), c.shape)
    beta = np.array(start, dtype=float)
    sweeps = 0
    while sweeps < maxit:
        sweeps += 1
        old = beta.copy()
        for j in range(beta.size):
            if abs(beta[j]) < ceps:
                continue
            beta[j] = 0.0
            a = W[j, j]
            b = -2.0 * (c[j] - W[j] @ beta)
            if b > alpha[j]:
                beta[j] = -(b - alpha[j]) / (2.0 * a)
            elif b < -alpha[j]:
                beta[j] = -(b + alpha[j]) / (2.0 * a)
        if np.max(np.abs(old - beta), initial=0.0) < ptol:
            break
    return beta, sweeps
