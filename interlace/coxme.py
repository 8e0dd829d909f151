"""``interlace.coxme``: Cox proportional-hazards models with Gaussian random effects (R's ``coxme``)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy.typing as npt
import pandas as pd

from .errors import renamed_option
from .models.coxme import CoxME

if TYPE_CHECKING:
    from .results.coxme import CoxMEResultWrapper

__all__ = ["coxme"]


def coxme(formula: str, data: pd.DataFrame, groups: str | Sequence[str] | None = None,
          random: str | Sequence[str] | None = None, ties: str = "efron", duration_col: str | None = None,
          event_col: str | None = None, weights: str | npt.ArrayLike | None = None,
          offset: str | npt.ArrayLike | None = None, sparse: tuple[int, float] | None = (50, 0.02),
          optimizer: str = "coxme", engine: str = "auto", start: npt.ArrayLike | None = None,
          check_conv: bool = True, maxiter: int | None = None, subset: npt.ArrayLike | None = None,
          entry_col: str | None = None, method: str | None = None) -> CoxMEResultWrapper:
    """Fit a mixed-effects Cox model: λ(t) = λ₀(t) exp(xᵀβ + zᵀb), b ~ N(0, Σ(θ)).

    Parameters
    ----------
    formula : str
        ``"Surv(time, status) ~ age + sex"`` (status 1 = event, 0 = censored, or
        booleans; an expression such as ``status == 2`` works, read by interlace's own
        parser, never evaluated as Python), or counting-process data
        ``"Surv(start, stop, status) ~ ..."`` (time-varying covariates, recurrent events,
        left truncation: row i is at risk on (startᵢ, stopᵢ]); ``strata(s)`` (or
        ``strata(a, b)``) gives each stratum its own baseline hazard; lme4 random terms
        ``+ (1 | inst)``, ``(1 | centre/patient)``, ``(1 + x | g)``; or a one-sided
        ``"~ age + sex"`` with ``duration_col`` and ``event_col`` (and ``entry_col``).  No
        intercept is estimated (the baseline hazard takes its place).
    data : DataFrame
        Rows with a missing value in a used column are dropped (with a warning).
    groups, random
        As in :func:`interlace.fit` (random intercepts, nested, slopes).
    ties : {"efron", "breslow"}
        Handling of tied event times (coxme's default is Efron).
    duration_col, event_col : str, optional
        Time and status columns when the formula has no left side.
    entry_col : str, optional
        With ``duration_col``: entry times of counting-process data.
    weights : str or array-like, optional
        Positive case weights.
    offset : str or array-like, optional
        Added to the linear predictor.
    sparse : (int, float) or None
        coxme's ``sparse = c(50, .02)``: for the first random term, when its grouping
        factor has at least 50 levels, the levels with at most 2 % of the rows get a
        diagonal block in the Hessian of the random effects (see docs/coxme.md).
        None: the exact Hessian.
    optimizer : str
        ``"coxme"`` (default): coxme 2.2's estimation of the variances, to reproduce R's
        numbers; ``"bobyqa"`` (or another :func:`interlace.optimize.minimize` optimizer):
        the exact maximizer of the integrated likelihood, with lme4-style checks.  (As in
        every fitting function; the old name ``method=`` still works, with a ``FutureWarning``.)
    engine : {"auto", "blocked", "cholmod", "dense"}
        Factorization of the random-effects block of the Hessian (see :mod:`interlace.linalg.engines`).
    start : array-like, optional
        Starting θ (shared layout: relative Cholesky factors).
    check_conv : bool
        Warn on convergence problems and boundary (near-zero variance) fits.
    maxiter : int, optional
    subset : array-like of bool, optional

    Returns
    -------
    CoxMEResult
    """
    optimizer = renamed_option(optimizer, method, "optimizer", "method", default="coxme")
    model = CoxME.from_formula(formula, data, groups=groups, random=random, ties=ties, duration_col=duration_col,
                               event_col=event_col, weights=weights, offset=offset, sparse=sparse, engine=engine,
                               subset=subset, entry_col=entry_col)
    return model.fit(start_params=start, method=optimizer, maxiter=maxiter, check_conv=check_conv)
