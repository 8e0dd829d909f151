"""Wald intervals for residual correlation/variance parameters (nlme's ``intervals`` for corStruct/varStruct)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st

from ..errors import ConvergenceWarning, warn_user

__all__ = ["criterion_hessian", "residual_wald_intervals"]


def criterion_hessian(fun: Callable[[np.ndarray], float], x: np.ndarray, rel_step: float = 1e-3) -> np.ndarray:
    """Central-difference Hessian of ``fun`` at ``x``, Richardson-extrapolated over steps h and h/2."""
    x = np.asarray(x, float)
    k = x.size
    h0 = rel_step * np.maximum(np.abs(x), 0.1)

    def hess(h):
        H = np.empty((k, k))
        f0 = fun(x)
        E = np.diag(h)
        for i in range(k):
            H[i, i] = (fun(x + 2 * E[i]) - 2 * f0 + fun(x - 2 * E[i])) / (4 * h[i] ** 2)
            for j in range(i):
                H[i, j] = H[j, i] = (fun(x + E[i] + E[j]) - fun(x + E[i] - E[j])
                                     - fun(x - E[i] + E[j]) + fun(x - E[i] - E[j])) / (4 * h[i] * h[j])
        return H

    H1, H2 = hess(h0), hess(h0 / 2)
    return (4 * H2 - H1) / 3


def residual_wald_intervals(result: Any, level: float = 0.95) -> pd.DataFrame:
    """See :meth:`~interlace.results.lmm.CrossedLMEResult.residual_conf_int`."""
    model = result.model
    dev = model.deviance_function()
    x = np.concatenate([result.theta, result.sol.psi])
    free = np.flatnonzero(x > dev.lower + 1e-6)  # θ on the boundary stay fixed, as nlme cannot move them
    def sub(v):
        y = x.copy()
        y[free] = v
        return dev(y)
    H = criterion_hessian(sub, x[free]) / 2.0  # Hessian of −log L
    ipsi = np.searchsorted(free, np.arange(dev.n_theta, x.size))
    try:
        cov = np.linalg.inv(H)[np.ix_(ipsi, ipsi)]
        se = np.sqrt(np.diag(cov))
    except np.linalg.LinAlgError:
        se = np.full(ipsi.size, np.nan)
    if not np.all(np.isfinite(se)):
        warn_user("the Hessian of the criterion is not positive definite: residual-structure intervals are NaN",
                  ConvergenceWarning)
    z = st.norm.isf((1 - level) / 2)
    psi = result.sol.psi
    res = model.residual
    lo, hi = psi - z * se, psi + z * se
    parts = res.parts
    out_lo, out_hi = [], []
    for p_, a, b in zip(parts, res.split(lo), res.split(hi)):
        va, vb = p_.natural(a), p_.natural(b)
        out_lo.append(np.minimum(va, vb))
        out_hi.append(np.maximum(va, vb))
    est = np.concatenate(res.natural(psi))
    return pd.DataFrame({"lower": np.concatenate(out_lo), "est.": est, "upper": np.concatenate(out_hi)},
                        index=res.names())
