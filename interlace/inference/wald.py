"""Wald z tests of fixed-effect contrasts with the plug-in covariance (``df_method="normal"``)."""
from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.stats as st

from .satterthwaite import FTest, TTest, t_test

__all__ = ["NormalTests"]


class NormalTests:
    """Wald z tests with the plug-in covariance (infinite degrees of freedom)."""

    def __init__(self, result: Any) -> None:
        self.beta = np.asarray(result.params, float)
        self.vcov_beta = np.asarray(result.cov_params(), float)
        self.sigma = float(np.sqrt(result.scale))

    def contest1d(self, L: npt.ArrayLike, rhs: float = 0.0) -> TTest:
        return t_test(L, self.beta, self.vcov_beta, np.inf, rhs)

    def contest_md(self, L: npt.ArrayLike, rhs: float | npt.ArrayLike = 0.0) -> FTest:
        L = np.atleast_2d(np.asarray(L, float))
        rhs = np.broadcast_to(np.asarray(rhs, float), (L.shape[0],))
        d = L @ self.beta - rhs
        V = L @ self.vcov_beta @ L.T
        q = int(np.linalg.matrix_rank(V))
        if q == 0:
            return FTest(np.nan, 0, np.nan, np.nan, np.nan)
        F = float(d @ np.linalg.pinv(V) @ d) / q
        return FTest(F, q, np.inf, float(st.chi2.sf(q * F, q)), F * self.sigma ** 2)
