"""Tidy tables of a fitted mixed model in broom.mixed's shape: ``tidy``, ``glance``, ``augment``.

* :func:`tidy`: one row per parameter, columns ``effect``, ``group``, ``term``,
  ``estimate``, ``std.error``, ``statistic``, ``df`` (linear mixed models: the
  result's ``df_method``, Satterthwaite by default as broom.mixed on an lmerTest fit),
  ``p.value``, and with ``conf_int`` ``conf.low``/``conf.high`` (t intervals with
  those df for LMMs, Wald z for GLMMs and CLMMs, as broom.mixed).  ``effect`` is
  ``"fixed"`` (the fixed effects; for a CLMM the thresholds first), ``"ran_pars"``
  (standard deviations ``sd__<coef>`` and correlations ``cor__<coef>.<coef>`` per
  grouping factor, in lme4's order of the factors (most levels first), then
  ``sd__Observation`` of the residual) and, on request,
  ``"ran_vals"`` (the conditional modes and their conditional SDs, ``level`` column).
* :func:`glance`: one row: ``nobs``, ``sigma``, ``logLik``, ``AIC``, ``BIC``,
  ``REMLcrit`` (REML fits) or ``deviance``, ``df.residual``.
* :func:`augment`: the model frame with ``.fitted`` (link scale for GLMMs), ``.resid``
  (lme4's default residuals: response for LMMs, deviance for GLMMs), ``.hat``,
  ``.cooksd`` (lme4's ``cooks.distance``), ``.fixed`` (Xβ̂), ``.mu``, ``.offset``,
  ``.sqrtXwt``, ``.sqrtrwt``, ``.weights``, ``.wtres`` (and ``.eta`` for GLMMs), as
  broom.mixed's ``augment.merMod``.

Term names are interlace's (``Intercept``, ``period[T.2]``), not R's.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.stats as st

from ..errors import InterlaceError

__all__ = ["augment", "glance", "tidy"]

_EFFECTS = ("fixed", "ran_pars", "ran_vals")


def _res(result: Any) -> Any:
    return getattr(result, "_results", result)


def _is_lmm(res: Any) -> bool:
    return hasattr(res, "fe_df")


def _fixed_rows(res: Any, conf_int: bool, conf_level: float) -> pd.DataFrame:
    alpha = 1.0 - conf_level
    if _is_lmm(res):
        tab = res._fe_tests()
        est, se = tab["Estimate"].to_numpy(), tab["Std. Error"].to_numpy()
        out = pd.DataFrame({"term": list(tab.index), "estimate": est, "std.error": se,
                            "statistic": tab["t value"].to_numpy(), "df": tab["df"].to_numpy(),
                            "p.value": tab["Pr(>|t|)"].to_numpy()})
        q = st.t.isf(alpha / 2, out["df"].to_numpy())
    else:
        names = list(getattr(res, "_param_names", None) or res._names)
        est, se = np.asarray(res.params, float), np.asarray(res.bse, float)
        z = est / se
        out = pd.DataFrame({"term": names, "estimate": est, "std.error": se, "statistic": z,
                            "p.value": 2 * st.norm.sf(np.abs(z))})
        q = st.norm.isf(alpha / 2)
    if conf_int:
        out["conf.low"] = out["estimate"] - q * out["std.error"]
        out["conf.high"] = out["estimate"] + q * out["std.error"]
    out.insert(0, "group", None)
    out.insert(0, "effect", "fixed")
    return out


def _ran_pars_rows(res: Any) -> pd.DataFrame:
    rows = []
    covs = res.random_effects_cov
    order = sorted(res._blocks, key=lambda b: min(b.term_index))  # lme4's order: most levels first
    for name, C in ((b.name, covs[b.name]) for b in order):
        names = list(C.index)
        V = C.to_numpy()
        sd = np.sqrt(np.maximum(np.diag(V), 0.0))
        for i, a in enumerate(names):  # broom.mixed's order: sd_i, then cor_(i, j > i)
            rows.append((name, f"sd__{a}", sd[i]))
            for j in range(i + 1, len(names)):
                den = sd[i] * sd[j]
                rows.append((name, f"cor__{a}.{names[j]}", V[i, j] / den if den > 0 else np.nan))
    resid = res._residual_variance
    if resid is not None:
        rows.append(("Residual", "sd__Observation", float(np.sqrt(resid))))
    out = pd.DataFrame(rows, columns=["group", "term", "estimate"])
    out.insert(0, "effect", "ran_pars")
    return out


def _ran_vals_rows(res: Any) -> pd.DataFrame:
    parts = []
    sds = res.random_effects_condsd
    for name, vals in res.random_effects.items():
        v = vals.to_frame(name="Intercept") if isinstance(vals, pd.Series) else vals
        s = sds[name]
        s = s.to_frame(name="Intercept") if isinstance(s, pd.Series) else s
        for term in v.columns:
            parts.append(pd.DataFrame({"effect": "ran_vals", "group": name, "level": [str(x) for x in v.index],
                                       "term": term, "estimate": v[term].to_numpy(float),
                                       "std.error": s[term].to_numpy(float)}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def tidy(result: Any, effects: str | tuple[str, ...] | list[str] = ("fixed", "ran_pars"), conf_int: bool = False,
         conf_level: float = 0.95) -> pd.DataFrame:
    """broom.mixed's ``tidy(m)``: one row per parameter (see the module docstring).

    Parameters
    ----------
    result : fitted LMM, GLMM or CLMM result
    effects : str or sequence of {"fixed", "ran_pars", "ran_vals"}
    conf_int : bool
        Add ``conf.low``/``conf.high`` for the fixed effects.
    conf_level : float

    Returns
    -------
    DataFrame
    """
    res = _res(result)
    eff = (effects,) if isinstance(effects, str) else tuple(effects)
    bad = [e for e in eff if e not in _EFFECTS]
    if bad or not eff:
        raise InterlaceError(f"effects must be among {_EFFECTS}, got {list(eff)!r}")
    if not 0 < conf_level < 1:
        raise InterlaceError(f"conf_level must lie in (0, 1), got {conf_level!r}")
    parts = []
    for e in eff:
        if e == "fixed":
            parts.append(_fixed_rows(res, conf_int, conf_level))
        elif e == "ran_pars":
            parts.append(_ran_pars_rows(res))
        else:
            parts.append(_ran_vals_rows(res))
    out = pd.concat([p for p in parts if len(p)], ignore_index=True)
    cols = ["effect", "group", "level", "term", "estimate", "std.error", "statistic", "df", "p.value",
            "conf.low", "conf.high"]
    return out[[c for c in cols if c in out.columns]]


def glance(result: Any) -> pd.DataFrame:
    """broom.mixed's ``glance(m)``: one row of fit statistics.

    Returns
    -------
    DataFrame
        ``nobs``, ``sigma``, ``logLik``, ``AIC``, ``BIC``, then ``REMLcrit`` (REML fits) or
        ``deviance`` (ML fits: −2 logLik; GLMMs: the conditional deviance, lme4's
        ``deviance``), and ``df.residual`` (rows minus parameters).
    """
    res = _res(result)
    row: dict[str, Any] = {"nobs": int(res.nobs), "sigma": float(getattr(res, "sigma", 1.0)),
                           "logLik": float(res.llf), "AIC": float(res.aic), "BIC": float(res.bic)}
    if getattr(res, "reml", False):
        row["REMLcrit"] = -2.0 * float(res.llf)
    else:
        dev = getattr(res, "deviance", None)  # GLMMs: the conditional deviance; CLMMs: −2 logLik
        row["deviance"] = float(dev) if isinstance(dev, (int, float, np.floating)) else -2.0 * float(res.llf)
    row["df.residual"] = int(res.nobs) - int(res.df_modelwc)
    return pd.DataFrame([row])


def augment(result: Any) -> pd.DataFrame:
    """broom.mixed's ``augment(m)``: the model frame with fitted values, residuals and influence.

    Returns
    -------
    DataFrame
        The complete-case rows used in the fit, then ``.fitted``, ``.resid``, ``.hat``,
        ``.cooksd``, ``.fixed``, ``.mu``, ``.offset``, ``.sqrtXwt``, ``.sqrtrwt``,
        ``.weights``, ``.wtres`` (GLMMs: also ``.eta``); see the module docstring.
    """
    res = _res(result)
    model = res.model
    if model.model_frame is None:
        raise InterlaceError("augment() needs a model built from a formula (it returns the model frame)")
    if not hasattr(res, "_eta_fit") or not hasattr(model, "random_effects_structure"):
        raise InterlaceError(f"augment() is not available for {type(res).__name__}")
    family = getattr(model, "family", None)
    if family is None and not _is_lmm(res):
        raise InterlaceError("augment() is available for linear and generalized linear mixed models")
    frame = model.model_frame.data.copy()
    y = np.asarray(model.endog, float)
    n = y.size
    w = np.ones(n) if model.weights is None else np.asarray(model.weights, float)
    off = np.zeros(n) if model.offset is None else np.asarray(model.offset, float)
    eta = res._eta_fit(True)
    fixed = res._eta_fit(False)
    if family is None:
        mu = eta
        sqrt_xwt = np.sqrt(w)
        sqrt_rwt = np.sqrt(w)
        resid = y - mu
        dispersion = float(res.scale)
    else:
        mu = family.linkinv(eta)
        var = family.variance(mu)
        sqrt_rwt = np.sqrt(w / var)
        sqrt_xwt = sqrt_rwt * np.abs(family.mu_eta(eta))
        resid = np.asarray(res.resid_deviance(), float)
        dispersion = float(res.sigma) ** 2
    wtres = sqrt_rwt * (y - mu)
    hat = np.asarray(res.hat_values(), float)
    p = np.linalg.matrix_rank(np.asarray(model.exog, float))
    with np.errstate(divide="ignore", invalid="ignore"):  # lme4: infinite distances become NaN
        cooks = (wtres / (1.0 - hat)) ** 2 * hat / (dispersion * p)
    cooks[~np.isfinite(cooks)] = np.nan
    cols = {".fitted": eta if family is not None else mu, ".resid": resid, ".hat": hat, ".cooksd": cooks,
            ".fixed": fixed, ".mu": mu, ".offset": off, ".sqrtXwt": sqrt_xwt, ".sqrtrwt": sqrt_rwt,
            ".weights": w, ".wtres": wtres}
    if family is not None:
        cols[".eta"] = eta
    for k, v in cols.items():
        frame[k] = np.asarray(v, float)
    return frame.reset_index(drop=True)
