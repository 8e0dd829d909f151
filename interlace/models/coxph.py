"""Cox proportional-hazards models without random effects (R's ``survival::coxph``).

The same pipeline as :class:`~interlace.models.coxme.CoxME` — the formula, strata,
counting-process data and the risk sets are :class:`~interlace.models.survival.CoxModel`'s
— with an empty random-effects structure and R's Newton-Raphson on the partial
likelihood (:func:`~interlace.objective.coxph.coxph_fit`).  ``cluster(id)`` in the formula
(or non-integer case weights, as coxph decides) gives the robust sandwich variance
D ᵀD, D the dfbeta residuals summed within clusters.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..errors import ConvergenceWarning, FormulaError, InterlaceError, warn_user
from ..linalg.threads import limit_blas_threads
from ..objective.coxph import coxph_fit
from .survival import CoxModel, cox_formula

if TYPE_CHECKING:
    from ..results.coxph import CoxPHResultsWrapper

__all__ = ["CoxPH"]


class CoxPH(CoxModel):
    """Cox model without random effects. Usually built with :meth:`from_formula` or :func:`interlace.coxph`.

    Parameters
    ----------
    endog : array-like (n,)
        Follow-up (stop) times.
    exog : array-like (n, p)
        Covariates, without an intercept.
    status : array-like (n,)
        1 = event, 0 = censored.
    ties : {"efron", "breslow"}
    weights, offset
        As :class:`~interlace.models.survival.CoxModel`.
    robust : bool, optional
        Report the robust (sandwich) variance.  Default as coxph: when a cluster is
        given or the case weights are not integers.

    Other Parameters
    ----------------
    start : array-like (n,), optional
        Entry times of counting-process ``(start, stop]`` data.
    strata : array-like of int (n,), optional
        Stratum codes (each stratum has its own baseline hazard).
    strata_labels : list of str, optional
    cluster : array-like (n,), optional
        Cluster of each row, for the robust variance.
    """

    def __init__(self, endog: Any, exog: Any, status: Any = None, ties: str = "efron", weights: Any = None,
                 offset: Any = None, robust: bool | None = None, **kwargs: Any) -> None:
        re = kwargs.pop("random_effects", None)
        if re is not None and re.terms:
            raise InterlaceError("CoxPH has no random effects; use CoxME (interlace.coxme) for frailties")
        super().__init__(endog, exog, re, status, ties=ties, weights=weights, offset=offset, **kwargs)
        self.robust = robust

    def _init_kwargs(self) -> dict:
        return {**super()._init_kwargs(), "robust": self.robust}

    @classmethod
    def from_formula(cls, formula: str, data: pd.DataFrame, ties: str = "efron",
                     weights: str | npt.ArrayLike | None = None, offset: str | npt.ArrayLike | None = None,
                     robust: bool | None = None,
                     duration_col: str | None = None, event_col: str | None = None, entry_col: str | None = None,
                     subset: npt.ArrayLike | None = None, *args: Any, **kwargs: Any) -> CoxPH:
        """Build the model from ``"Surv(time, status) ~ x + strata(s) + cluster(id)"`` (or
        ``Surv(start, stop, status)``; other parameters as :func:`interlace.coxph`)."""
        parts = cox_formula(formula, data, None, None, duration_col, event_col, entry_col, weights, offset, subset)
        if parts.specs:
            raise FormulaError(f"{formula!r} has random-effects terms: use interlace.coxme for a Cox model with "
                               "frailties (interlace.coxph fits fixed effects only)")
        mod = cls._from_parts(parts, None, ties, robust=robust)
        mod.data.frame = data
        mod.offset_arg = offset if isinstance(offset, str) and not parts.offset_terms else None
        return mod

    @property
    def uses_robust(self) -> bool:
        """Whether the fit reports the robust variance (coxph's default rule unless ``robust`` is given)."""
        if self.robust is not None:
            return bool(self.robust)
        w = self.weights
        return self.cluster is not None or (w is not None and bool(np.any(w != np.floor(w))))

    def fit(self, start_params: npt.ArrayLike | None = None, method: str = "newton", maxiter: int = 20,
            check_conv: bool = True, blas_threads: int | None = 1, eps: float = 1e-9, **kwargs: Any
            ) -> CoxPHResultsWrapper:
        """Newton-Raphson on the partial likelihood, as coxph (see :func:`~interlace.objective.coxph.coxph_fit`).

        Parameters
        ----------
        start_params : array-like, optional
            Initial coefficients (coxph's ``init``; the score test is computed there).
        method : {"newton"}
        maxiter : int
            coxph's ``iter.max``.
        check_conv : bool
            Warn when Newton-Raphson does not converge.
        blas_threads : int or None
        eps : float
            coxph's ``eps``: relative change of the log partial likelihood.

        Returns
        -------
        CoxPHResultsWrapper
        """
        from ..results.coxph import CoxPHResults, CoxPHResultsWrapper

        if method != "newton":
            raise InterlaceError(f"CoxPH is fitted by Newton-Raphson (method='newton'), got {method!r}")
        X = np.asarray(self.exog, float)
        cd = self.cox_data
        with limit_blas_threads(blas_threads), np.errstate(over="ignore", under="ignore"):
            fit = coxph_fit(X, cd, self.offset, init=start_params, maxiter=maxiter, eps=eps)
            robust = self.uses_robust
            rcov, rscore = None, None
            if robust and X.shape[1]:
                rcov, rscore = self._robust(fit, X, start_params)
        if check_conv and not fit.converged:
            warn_user(f"Newton-Raphson did not converge in {fit.iterations} iterations (coxph's iter.max); "
                      "a coefficient may be infinite", ConvergenceWarning)
        return CoxPHResultsWrapper(CoxPHResults(self, fit, robust, rcov, rscore))

    def _robust(self, fit, X: np.ndarray, init) -> tuple[np.ndarray, float]:
        """Sandwich variance DᵀD (D: weighted dfbeta residuals summed by cluster) and the robust score test."""
        cd = self.cox_data
        off = np.zeros(X.shape[0]) if self.offset is None else self.offset
        U = cd.state(off + X @ fit.coef).score_residuals(X)
        D = U @ fit.vcov
        b0 = np.zeros(X.shape[1]) if init is None else np.asarray(init, float)
        U0 = cd.state(off + X @ b0).score_residuals(X)
        if self.cluster is not None:
            codes = np.unique(self.cluster, return_inverse=True)[1].ravel()
            k = int(codes.max()) + 1
            D = np.column_stack([np.bincount(codes, weights=D[:, j], minlength=k) for j in range(D.shape[1])])
            U0 = np.column_stack([np.bincount(codes, weights=U0[:, j], minlength=k) for j in range(U0.shape[1])])
        V = D.T @ D
        u = U0.sum(axis=0)
        try:
            rscore = float(u @ np.linalg.solve(U0.T @ U0, u))
        except np.linalg.LinAlgError:
            rscore = float("nan")
        return 0.5 * (V + V.T), rscore
