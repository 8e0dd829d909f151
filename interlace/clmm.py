"""``interlace.clmm``: cumulative link mixed models for ordinal outcomes (R's ``ordinal::clmm``)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy.typing as npt
import pandas as pd

from .models.clmm import CLMM

if TYPE_CHECKING:
    from .results.clmm import CLMMResultWrapper

__all__ = ["clmm"]


def clmm(formula: str, data: pd.DataFrame, groups: str | Sequence[str] | None = None,
         random: str | Sequence[str] | None = None, link: str = "logit", threshold: str = "flexible",
         nAGQ: int = 1, levels: Sequence[Any] | None = None, weights: str | npt.ArrayLike | None = None,
         engine: str = "auto", optimizer: str = "auto", start: npt.ArrayLike | None = None,
         check_conv: bool = True, maxiter: int | None = None) -> CLMMResultWrapper:
    """Fit a cumulative link mixed model: P(Y ≤ j) = F(α_j − xᵀβ − zᵀb).

    Parameters
    ----------
    formula : str
        ``"rating ~ temp + contact"`` (no intercept is estimated: the thresholds take
        its place), optionally with random terms ``+ (1 | judge)``.
    data : DataFrame
        The response is an ordered pandas Categorical, integers (ordered by value),
        or any values with ``levels=`` giving their order.
    groups, random
        As in :func:`interlace.fit` (random intercepts, crossed or nested).
    link : {"logit", "probit", "cloglog", "loglog", "cauchit"}
    threshold : {"flexible", "symmetric", "equidistant"}
    nAGQ : int
        1: Laplace (default); >1: adaptive Gauss-Hermite quadrature (one term only).
    levels : list, optional
        Order of the response categories.
    weights : str or array-like, optional
        Case weights.
    optimizer : str
        ``"auto"`` (default): L-BFGS-B on the exact gradient of the Laplace approximation
        where it is available (``nAGQ=1``, a log-concave link, at most 1,500 random effects,
        500 with CHOLMOD),
        else BOBYQA; or any optimizer of :func:`interlace.fit` (``"bobyqa"``, ...).
    engine, start, check_conv, maxiter
        As in :func:`interlace.fit`.

    Returns
    -------
    CLMMResult
        Thresholds, coefficients and variance parameters, as ordinal's ``clmm``.
    """
    model = CLMM.from_formula(formula, data, groups=groups, random=random, link=link, threshold=threshold,
                              nAGQ=nAGQ, levels=levels, weights=weights, engine=engine)
    return model.fit(start_params=start, method=optimizer, maxiter=maxiter, check_conv=check_conv)
