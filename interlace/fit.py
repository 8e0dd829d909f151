"""``interlace.fit``: the one-call entry point for linear mixed models."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy.typing as npt
import pandas as pd

from .errors import InterlaceError
from .models.lmm import CrossedLME, parse_method

if TYPE_CHECKING:
    import dask.dataframe as dd

    from .correlation import CorrelationStructure, VarIdent
    from .results.lmm import CrossedLMEResultWrapper
    from .scale.results import ChunkedLMEResult

__all__ = ["fit"]


def fit(formula: str, data: pd.DataFrame | dd.DataFrame | str | os.PathLike[str],
        groups: str | Sequence[str] | None = None,
        random: str | Sequence[str] | None = None, method: str = "REML",
        weights: str | npt.ArrayLike | VarIdent | None = None, offset: str | npt.ArrayLike | None = None,
        engine: str = "auto", optimizer: str = "auto", start: npt.ArrayLike | None = None,
        check_conv: bool = True, maxiter: int | None = None, df_method: str | None = None,
        correlation: CorrelationStructure | None = None) -> CrossedLMEResultWrapper | ChunkedLMEResult:
    """Fit a linear mixed model (lme4's ``lmer``).

    Parameters
    ----------
    formula : str
        Fixed effects ``"y ~ x1 + x2"``; may also hold lme4 random terms
        (``"y ~ x + (1 + x | g)"``).
    data : DataFrame, Dask DataFrame or path
        A pandas DataFrame, a Dask DataFrame (fitted partition by partition on its
        cluster, see :mod:`interlace.scale`), or the path of a parquet file or directory
        (read in batches: :func:`interlace.scale.fit_parquet`).
    groups : str or list of str, optional
        One random intercept per column, crossed; the first is the primary
        grouping factor (used by :meth:`bootstrap_se`).
    random : str or list of str, optional
        lme4 terms: ``(1|g)``, ``(1 + x|g)``, ``(0 + x|g)``, ``(x||g)``,
        ``(1|a:b)``, ``(1|a/b)``, ``(1|a/b/c)``.
    method : {"REML", "ML"}
    weights, offset : str or array-like, optional
        Prior weights and an offset (column names or vectors of ``len(data)``).
        ``weights`` may instead be :class:`interlace.VarIdent` (a residual SD per
        stratum, nlme's ``weights = varIdent(form = ~ 1 | g)``).
    engine : {"auto", "blocked", "cholmod"}
        Sparse Cholesky engine; all give the same estimates.
    optimizer : {"auto", "bobyqa", "L-BFGS-B", "Nelder-Mead", "Powell"}
        ``"auto"``: L-BFGS-B with the analytic gradient of the criterion, then Newton steps
        (:mod:`interlace.optimize.gradient`) where the engine gives the gradient, else BOBYQA
        (lme4's optimizer, always available as ``"bobyqa"``).
    start : array-like, optional
        Starting θ.
    check_conv : bool
        lme4's post-fit convergence and singularity checks (warnings).
    maxiter : int, optional
        Objective evaluation budget.
    df_method : {"satterthwaite", "kenward-roger", "containment", "normal"}, optional
        Denominator degrees of freedom of the fixed-effect t tests behind
        ``fe_df``, ``fe_pvalues``, ``fe_conf_int()``, the summary, ``anova()`` and
        ``contest()``: Satterthwaite (lmerTest's default), Kenward-Roger (pbkrtest;
        REML fits only, with the adjusted covariance of β̂), "containment" (nlme's;
        the default with a ``correlation`` or ``VarIdent`` structure), or "normal"
        (Wald z).  statsmodels' ``pvalues`` and ``conf_int()`` stay Wald z.
    correlation : AR1, CAR1 or CompoundSymmetry, optional
        Residual correlation within groups (nlme's ``correlation=``): e.g.
        ``interlace.AR1(time="visit", group="subject")``.  With a correlation or
        ``VarIdent`` structure the random-effects terms may be omitted (nlme's ``gls``).

    Returns
    -------
    CrossedLMEResult
        (wrapped by statsmodels' results wrapper.)

    Examples
    --------
    >>> from interlace import fit, datasets
    >>> res = fit("Reaction ~ Days", datasets.load("sleepstudy"), random=["(Days | Subject)"])
    >>> round(res.fe_params["Days"], 4)
    10.4673
    """
    from .scale.dask import is_dask_dataframe

    if is_dask_dataframe(data) or isinstance(data, (str, os.PathLike)):
        # blocks of [Z X y]'[Z X y] summed on the cluster, or over a parquet file's batches (interlace.scale)
        from .scale import fit_dask, fit_parquet

        if correlation is not None or not isinstance(weights, (str, type(None))):
            raise InterlaceError("a Dask DataFrame or parquet fit takes weights/offset as column names and no "
                                 "correlation structure")
        fit_chunked = fit_dask if is_dask_dataframe(data) else fit_parquet
        return cast(Any, fit_chunked)(formula, data, groups=groups, random=random, method=method,
                                      weights=weights, offset=offset, engine=engine, optimizer=optimizer,
                                      start=start, check_conv=check_conv, maxiter=maxiter,
                                      df_method=df_method or "satterthwaite")
    reml = parse_method(method)
    model = CrossedLME.from_formula(formula, data, groups=groups, random=random, reml=reml,
                                    weights=weights, offset=offset, engine=engine, df_method=df_method,
                                    correlation=correlation)
    return model.fit(start_params=start, method=optimizer, maxiter=maxiter, check_conv=check_conv)
