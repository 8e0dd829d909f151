"""``drop1``: a test of each fixed-effect term that can be dropped (lmerTest's and lme4's ``drop1``).

The terms tested are R's ``drop.scope``: the terms not contained in another term
(in ``y ~ A * B`` only ``A:B``; in ``y ~ A + B`` both).

* ``test="F"`` (linear mixed models; lmerTest's ``drop1``): an F test of the term's
  coefficients with Satterthwaite's or Kenward-Roger's denominator df (the result's
  ``df_method`` or ``ddf``), through the result's ``contest``; the hypothesis is
  lmerTest's ``get_contrasts_marginal``: the rows of the identity for the term's
  columns (the type I contrasts when the model has a single term).
* ``test="Chisq"`` (GLMMs, CLMMs, and LMMs on request; lme4's ``drop1(m, test =
  "Chisq")``): each reduced model is refitted without the term's columns
  (:meth:`~interlace.models.base.MixedModel.refit` with the other columns of X, by ML:
  a REML fit is refitted by ML first, as ``anova`` does, with a warning), and the table
  holds ``npar`` (the parameters dropped), ``AIC`` of each model (the full one on the
  ``<none>`` row), ``LRT`` = 2 (llf_full − llf_reduced) and ``Pr(Chi)``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st

from ..errors import InterlaceError, warn_user
from .anova import contrasts_type1, fixed_terms, ftest_frame

__all__ = ["drop1", "marginal_terms"]


def _res(result: Any) -> Any:
    return getattr(result, "_results", result)


def marginal_terms(model: Any) -> list:
    """The terms that can be dropped respecting marginality (R's ``drop.scope``)."""
    _, terms = fixed_terms(model)
    sets = [set(t.factors) for t in terms]
    return [t for i, t in enumerate(terms) if not any(sets[i] < sets[j] for j in range(len(terms)) if j != i)]


def _f_table(res: Any, terms: list, ddf: str | None) -> pd.DataFrame:
    from .ddf import parse_df_method

    model = res.model
    p = int(np.asarray(model.exog).shape[1])
    n_terms = len(fixed_terms(model)[1])
    method = res.df_method if ddf is None else parse_df_method(ddf)
    eng = res._ddf_engine(method)
    type1 = contrasts_type1(model) if (p <= 1 or n_terms <= 1) else None
    rows = {}
    for t in terms:
        L = type1[t.name] if type1 is not None else np.eye(p)[t.columns]
        rows[t.name] = eng.contest_md(L)
    how = {"satterthwaite": "Satterthwaite's method", "kenward-roger": "Kenward-Roger's method",
           "containment": "containment (nlme) df", "normal": "Wald chi-square / NumDF (DenDF = inf)"}[method]
    out = ftest_frame(rows, f"Single term deletions using {how}")
    return out


def _chisq_table(res: Any, terms: list) -> pd.DataFrame:
    if getattr(res, "reml", False):
        warn_user("refitting model(s) with ML (instead of REML) for the likelihood-ratio tests", UserWarning)
        res = _res(res.model.refit(reml=False))
    model = res.model
    exog = model.data.orig_exog
    X = exog if isinstance(exog, pd.DataFrame) else pd.DataFrame(np.asarray(exog), columns=res._names)
    start = None
    rows = [("<none>", np.nan, res.aic, np.nan, np.nan)]
    for t in terms:
        keep = [j for j in range(X.shape[1]) if j not in set(t.columns.tolist())]
        reduced = _res(model.refit(exog=X.iloc[:, keep], start=start, check_conv=False))
        npar = res.df_modelwc - reduced.df_modelwc
        lrt = max(2.0 * (res.llf - reduced.llf), 0.0)
        rows.append((t.name, npar, reduced.aic, lrt, st.chi2.sf(lrt, npar) if npar > 0 else np.nan))
    out = pd.DataFrame([r[1:] for r in rows], index=[r[0] for r in rows], columns=["npar", "AIC", "LRT", "Pr(Chi)"])
    out["npar"] = out["npar"].astype("Int64")
    out.attrs["heading"] = "Single term deletions"
    return out


def drop1(result: Any, test: str | None = None, ddf: str | None = None, scope: list[str] | None = None
          ) -> pd.DataFrame:
    """Test dropping each marginal fixed-effect term (see the module docstring).

    Parameters
    ----------
    result : fitted LMM, GLMM or CLMM
    test : {"F", "Chisq"}, optional
        Default "F" for linear mixed models (lmerTest), "Chisq" otherwise (lme4).
    ddf : {"satterthwaite", "kenward-roger", "normal"}, optional
        F tests: the denominator df (default the result's ``df_method``).
    scope : list of str, optional
        The terms to test (default every marginal term); each must be marginal.

    Returns
    -------
    DataFrame
        ``test="F"``: ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``, ``F value``, ``Pr(>F)``
        per term; ``test="Chisq"``: ``npar``, ``AIC``, ``LRT``, ``Pr(Chi)`` with the full
        model on the ``<none>`` row.  ``attrs["heading"]`` describes the test.
    """
    res = _res(result)
    model = res.model
    is_lmm = hasattr(res, "fe_df")
    test = ("F" if is_lmm else "Chisq") if test is None else str(test)
    if test.lower() in ("f",):
        if not is_lmm:
            raise InterlaceError("F tests in drop1 are for linear mixed models; use test='Chisq' (likelihood ratio)")
        test = "F"
    elif test.lower() in ("chisq", "lrt", "chi2"):
        test = "Chisq"
    else:
        raise InterlaceError(f"test must be 'F' or 'Chisq', got {test!r}")
    terms = marginal_terms(model)
    if scope is not None:
        names = {t.name: t for t in terms}
        bad = [s for s in scope if s not in names]
        if bad:
            raise InterlaceError(f"only marginal terms can be dropped: {bad} not among {list(names)}")
        terms = [names[s] for s in scope]
    terms = [t for t in terms if t.columns.size]
    if test == "F":
        return _f_table(res, terms, ddf)
    return _chisq_table(res, terms)
