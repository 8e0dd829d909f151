"""Likelihood-ratio comparison of nested mixed models (lme4's ``anova(m1, m2)`` for two models)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st

from ..errors import InterlaceError, warn_user

__all__ = ["LRTest", "lr_test", "as_ml", "anova"]


@dataclass
class LRTest:
    """Result of a likelihood-ratio test.

    Attributes
    ----------
    statistic : float
        ``2 (llf_full − llf_restricted)`` on ML fits.
    df : int
        Difference in the number of parameters.
    pvalue : float
        Upper χ²(df) tail probability.
    refitted : bool
        True when REML fits were refitted by ML first (as lme4's ``anova`` does).
    """

    statistic: float
    df: int
    pvalue: float
    refitted: bool

    def __iter__(self):  # unpacks like statsmodels' compare_lr_test: (lr, p, df)
        return iter((self.statistic, self.pvalue, self.df))


def as_ml(result: Any) -> Any:
    """The ML fit of the same model: ``result`` itself if fitted by ML, else a refit."""
    res = getattr(result, "_results", result)
    if not res.reml:
        return res
    return res.model.refit(reml=False, check_conv=False)._results


def _same_data(a, b) -> bool:
    ya, yb = np.asarray(a.model.endog, float), np.asarray(b.model.endog, float)
    return ya.shape == yb.shape and np.allclose(ya, yb, rtol=0, atol=0)


def lr_test(full: Any, restricted: Any, refit: bool = True) -> LRTest:
    """Likelihood-ratio test of ``restricted`` nested in ``full``.

    Parameters
    ----------
    full, restricted : CrossedLMEResult
        Fits to the same rows of the same response.
    refit : bool
        Refit REML fits by ML first (lme4's default, needed when the fixed
        effects differ); with ``refit=False`` both must use the same criterion.
    """
    a = getattr(full, "_results", full)
    b = getattr(restricted, "_results", restricted)
    if not _same_data(a, b):
        raise InterlaceError(
            "models were not fitted to the same data (different rows or response); "
            "a likelihood-ratio test needs identical observations"
        )
    if not refit and a.reml != b.reml:
        raise InterlaceError("cannot compare a REML fit with an ML fit; use refit=True")
    if a.df_modelwc == b.df_modelwc:
        raise InterlaceError("models have the same number of parameters: they are not nested")
    refitted = False
    if refit and (a.reml or b.reml):
        a, b = as_ml(a), as_ml(b)
        refitted = True
        warn_user("refitting model(s) with ML (instead of REML) for the likelihood-ratio test", UserWarning)
    elif a.reml != b.reml:
        raise InterlaceError("cannot compare a REML fit with an ML fit; use refit=True")
    df = a.df_modelwc - b.df_modelwc
    if df == 0:
        raise InterlaceError("models have the same number of parameters: they are not nested")
    if df < 0:
        a, b, df = b, a, -df
    stat = max(2.0 * (a.llf - b.llf), 0.0)
    return LRTest(float(stat), int(df), float(st.chi2.sf(stat, df)), refitted)


def anova(*results: Any, refit: bool = True, **named: Any) -> pd.DataFrame:
    """lme4's ``anova(m1, m2, ...)``: models ordered by parameters, each tested against the previous.

    Parameters
    ----------
    *results, **named : CrossedLMEResult or GLMMResult
        Fits to the same data; keyword arguments name the rows (positional ones are
        named ``m1``, ``m2``, … in the order given).
    refit : bool
        Refit REML fits by ML first (lme4's default), with a warning.

    Returns
    -------
    DataFrame
        Columns npar, AIC, BIC, logLik, deviance (−2 logLik), Chisq, Df, Pr(>Chisq);
        ``attrs["models"]`` holds each row's formula.
    """
    items = [(f"m{i + 1}", r) for i, r in enumerate(results)] + list(named.items())
    if len(items) < 2:
        raise InterlaceError("anova needs at least two models to compare")
    fits = [(name, getattr(r, "_results", r)) for name, r in items]
    base = fits[0][1]
    for name, r in fits[1:]:
        if not _same_data(base, r):
            raise InterlaceError(f"model {name!r} was not fitted to the same data as {fits[0][0]!r} "
                                 "(different rows or response)")
    if refit and any(r.reml for _, r in fits):
        warn_user("refitting model(s) with ML (instead of REML)", UserWarning)
        fits = [(name, as_ml(r)) for name, r in fits]
    elif len({r.reml for _, r in fits}) > 1:
        raise InterlaceError("cannot compare REML and ML fits; use refit=True")
    fits.sort(key=lambda nr: nr[1].df_modelwc)  # stable: ties keep the order given
    rows = []
    prev = None
    for name, r in fits:
        npar = r.df_modelwc
        row = {"npar": npar, "AIC": r.aic, "BIC": r.bic, "logLik": r.llf, "deviance": -2 * r.llf,
               "Chisq": np.nan, "Df": np.nan, "Pr(>Chisq)": np.nan}
        if prev is not None:
            df = npar - prev.df_modelwc
            stat = max(2 * (r.llf - prev.llf), 0.0)
            row.update({"Chisq": stat, "Df": df, "Pr(>Chisq)": st.chi2.sf(stat, df) if df > 0 else np.nan})
        rows.append((name, row))
        prev = r
    out = pd.DataFrame([r for _, r in rows], index=[n for n, _ in rows])
    out["Df"] = out["Df"].astype("Int64")
    out.attrs["models"] = {name: str(r.model.formula) for name, r in fits}
    return out
