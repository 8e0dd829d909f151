"""Likelihood-ratio comparison of nested mixed models (lme4's ``anova(m1, m2)`` for two models)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats as st

from ..errors import InterlaceError, warn_user

__all__ = ["LRTest", "lr_test", "as_ml"]


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


def as_ml(result):
    """The ML fit of the same model: ``result`` itself if fitted by ML, else a refit."""
    res = getattr(result, "_results", result)
    if not res.reml:
        return res
    return getattr(res.model.fit(reml=False, check_conv=False), "_results")


def _same_data(a, b) -> bool:
    ya, yb = np.asarray(a.model.endog, float), np.asarray(b.model.endog, float)
    return ya.shape == yb.shape and np.allclose(ya, yb, rtol=0, atol=0)


def lr_test(full, restricted, refit: bool = True) -> LRTest:
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
