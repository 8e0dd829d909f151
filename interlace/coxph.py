"""``interlace.coxph``: Cox proportional-hazards models without random effects (R's ``survival::coxph``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy.typing as npt
import pandas as pd

from .models.coxph import CoxPH

if TYPE_CHECKING:
    from .results.coxph import CoxPHResultsWrapper

__all__ = ["coxph"]


def coxph(formula: str, data: pd.DataFrame, ties: str = "efron", weights: str | npt.ArrayLike | None = None,
          offset: str | npt.ArrayLike | None = None, robust: bool | None = None, duration_col: str | None = None,
          event_col: str | None = None, entry_col: str | None = None, init: npt.ArrayLike | None = None,
          maxiter: int = 20, eps: float = 1e-9, check_conv: bool = True, subset: npt.ArrayLike | None = None
          ) -> CoxPHResultsWrapper:
    """Fit a Cox model: λ(t | x) = λ₀ₛ(t) exp(xᵀβ), one baseline hazard per stratum s.

    Parameters
    ----------
    formula : str
        ``"Surv(time, status) ~ age + sex"`` (right-censored) or
        ``"Surv(start, stop, status) ~ ..."`` (counting-process data: time-varying
        covariates, recurrent events, left truncation), with ``strata(s)`` (or
        ``strata(a, b)``) for separate baseline hazards and ``cluster(id)`` for robust
        standard errors, as in survival.  ``Surv()`` arguments may be expressions such as
        ``status == 2`` (read by interlace's own parser, never evaluated as Python).  A
        one-sided ``"~ age"`` with ``duration_col``/``event_col`` (and ``entry_col``) also works.
    data : DataFrame
        Rows with a missing value in a used column are dropped (with a warning).
    ties : {"efron", "breslow"}
    weights : str or array-like, optional
        Positive case weights.  Non-integer weights make the reported variance robust, as coxph.
    offset : str or array-like, optional
    robust : bool, optional
        Force (True) or suppress (False) the robust sandwich variance.
    duration_col, event_col, entry_col : str, optional
    init : array-like, optional
        Initial coefficients (the score test is at these).
    maxiter, eps
        coxph's ``iter.max`` and ``eps``.
    check_conv : bool
    subset : array-like of bool, optional

    Returns
    -------
    CoxPHResults
        ``params``, ``bse``, ``summary()`` (concordance; likelihood-ratio, Wald and score
        tests), ``predict(type="lp"|"risk"|"expected"|"survival")``, ``survfit(newdata)``
        (survival curves, with ``.plot()``), ``baseline_hazard()``, ``residuals(type)``.
    """
    model = CoxPH.from_formula(formula, data, ties=ties, weights=weights, offset=offset, robust=robust,
                               duration_col=duration_col, event_col=event_col, entry_col=entry_col, subset=subset)
    return model.fit(start_params=init, maxiter=maxiter, eps=eps, check_conv=check_conv)
