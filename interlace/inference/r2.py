"""Nakagawa's R² and the intraclass correlation, as R's ``performance`` package computes them.

The variance of the response is split as ``insight::get_variance`` (insight 0.19,
behind ``performance::r2_nakagawa`` and ``performance::icc``) splits it:

* **fixed**: the sample variance (n − 1 denominator) of the fixed-effects predictions Xβ̂;
* **random**: per random-effects term whose factor has fewer levels than there are
  rows, ``mean_i(z_iᵀ Σ z_i)`` with Σ the term's covariance matrix and z_i the row's
  values of the term's coefficients taken from X (a coefficient absent from the fixed
  effects is left out, as insight does; Johnson's 2014 extension to random slopes),
  summed over the terms;
* **distribution-specific**: σ² for linear mixed models; π²/3 (logit), 1 (probit),
  π²/6 (cloglog) for binomial models; for log-link counts ``log1p(V(μ)/μ²)`` at
  μ = exp(β₀) of the *null model* (the same random effects, intercept only, refitted
  through :meth:`~interlace.models.base.MixedModel.refit`; V the family's variance
  function), 0.25 for the square-root link; σ̂² for Gamma models;
* **dispersion**: for GLMMs the variance of observation-level random effects (a term
  with one level per row, e.g. ``(1 | obs)``), 0 for LMMs.

The residual variance is distribution + dispersion.  Then

    R²_marginal = fixed / (fixed + random + residual),
    R²_conditional = (fixed + random) / (fixed + random + residual),
    ICC_adjusted = random / (random + residual),
    ICC_unadjusted = random / (fixed + random + residual).

A fit with a variance on its boundary (a diagonal θ below ``tolerance``, 1e-5 as
insight) has no random variance: the conditional R² and the ICCs are NaN, with a warning.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InterlaceError, warn_user

__all__ = ["VarianceComponents", "icc", "r2_nakagawa", "variance_components"]

_BINOMIAL = {"logit": np.pi ** 2 / 3, "probit": 1.0, "cloglog": np.pi ** 2 / 6}


@dataclass
class VarianceComponents:
    """The variance decomposition behind R² and the ICC (insight's ``get_variance``).

    Attributes
    ----------
    fixed, random, residual, distribution, dispersion : float
        See the module docstring (``random`` is NaN for a singular fit).
    intercept : dict
        Variance of each grouping factor's random intercept (insight's ``var.intercept``).
    """

    fixed: float
    random: float
    residual: float
    distribution: float
    dispersion: float
    intercept: dict


def _res(result: Any) -> Any:
    return getattr(result, "_results", result)


def _term_variance(res: Any, k: int, X: np.ndarray, names: list[str]) -> float:
    """mean_i(z_iᵀ Σ_k z_i) with z_i the term's coefficients' columns of X (insight's ``.sigma_sum``)."""
    re = res.model.random_effects_structure
    t = re.terms[k]
    S = t.cov.covariance(res.theta[re.theta_slice(k)], res._re_scale)
    cols = {n: X[:, j] for j, n in enumerate(names)}
    if "Intercept" not in cols:
        cols["Intercept"] = np.ones(X.shape[0])
    keep = [i for i, c in enumerate(t.coef_names) if c in cols]
    if not keep:
        return 0.0
    Z = np.column_stack([cols[t.coef_names[i]] for i in keep])
    Sk = S[np.ix_(keep, keep)]
    return float(np.einsum("ij,jk,ik->", Z, Sk, Z) / X.shape[0])


def _null_intercept(res: Any) -> float:
    """β₀ of the model with the same random effects and only an intercept, refitted."""
    import pandas as pd

    model = res.model
    n = int(model.nobs)
    exog = pd.DataFrame({"Intercept": np.ones(n)}, index=model.data.row_labels)
    null = model.refit(exog=exog, check_conv=False)
    return float(np.asarray(null.params)[0])


def _distribution_variance(res: Any) -> float:
    family = getattr(res.model, "family", None)
    if family is None:
        if not hasattr(res, "fe_df"):
            raise InterlaceError("R² and ICC are available for linear and generalized linear mixed models")
        return float(res.scale)
    name, link = family.name, family.link_name
    if name == "binomial":
        if link not in _BINOMIAL:
            raise InterlaceError(f"no distribution-specific variance for the binomial {link!r} link "
                                 "(performance knows logit, probit and cloglog)")
        return _BINOMIAL[link]
    if name == "poisson":
        if link == "sqrt":
            return 0.25
        if link != "log":
            raise InterlaceError(f"no distribution-specific variance for the Poisson {link!r} link")
        mu = float(np.exp(_null_intercept(res)))
        if mu < 6:
            warn_user(f"mu of {mu:.1f} is too close to zero, estimate of the distribution-specific variance "
                      "may be unreliable", UserWarning)
        return float(np.log1p(family.variance(np.array([mu]))[0] / mu ** 2))
    if name == "gamma":
        return float(res.sigma) ** 2
    raise InterlaceError(f"R² and ICC are not available for the {name} family (performance's definitions "
                         "cover Gaussian, binomial, Poisson and Gamma mixed models)")


def variance_components(result: Any, tolerance: float = 1e-5) -> VarianceComponents:
    """The variance decomposition of a fitted LMM or GLMM (see the module docstring)."""
    res = _res(result)
    model = res.model
    re = model.random_effects_structure
    if not re.terms:
        raise InterlaceError("R² and ICC of a mixed model need random effects")
    X = np.asarray(model.exog, float)
    names = list(res._names)
    beta = np.asarray(res.params, float)[res._fe]
    fixed = float(np.var(X @ beta, ddof=1))
    n = X.shape[0]
    random = dispersion = 0.0
    for k, t in enumerate(re.terms):
        missing = [c for c in t.coef_names if c != "Intercept" and c not in names]
        if missing:
            warn_user(f"random slopes {missing} are not fixed effects: this inflates the conditional R²/ICC "
                      "(respecify the fixed effects)", UserWarning)
        v = _term_variance(res, k, X, names)
        if t.nlevels == n:
            dispersion += v
        else:
            random += v
    if getattr(model, "family", None) is None:
        dispersion = 0.0
    singular = bool(np.any(np.abs(res.theta[re.lower == 0]) < tolerance))
    if singular:
        warn_user("some variance components equal zero (singular fit): the random-effect variance, the "
                  "conditional R² and the ICC are not available", UserWarning)
        random = np.nan
    dist = _distribution_variance(res)
    intercept = {}
    for b in res._blocks:
        C = res.random_effects_cov[b.name]
        if C.index[0] == "Intercept":
            intercept[b.name] = float(C.iloc[0, 0])
    return VarianceComponents(fixed, random, dist + dispersion, dist, dispersion, intercept)


def r2_nakagawa(result: Any, tolerance: float = 1e-5) -> dict[str, float]:
    """Nakagawa's marginal and conditional R² (``performance::r2_nakagawa``).

    Parameters
    ----------
    result : fitted LMM or GLMM (binomial, Poisson, Gamma)
    tolerance : float
        A diagonal θ below this makes the fit singular (no conditional R²).

    Returns
    -------
    dict
        ``{"conditional": R²_c, "marginal": R²_m}``.
    """
    v = variance_components(result, tolerance)
    if np.isnan(v.random):
        return {"conditional": np.nan, "marginal": v.fixed / (v.fixed + v.residual)}
    total = v.fixed + v.random + v.residual
    return {"conditional": (v.fixed + v.random) / total, "marginal": v.fixed / total}


def icc(result: Any, tolerance: float = 1e-5) -> dict[str, float]:
    """The adjusted and unadjusted intraclass correlation (``performance::icc``).

    Returns
    -------
    dict
        ``{"adjusted": random / (random + residual), "unadjusted": random / (fixed + random + residual)}``
        (NaN for a singular fit).
    """
    v = variance_components(result, tolerance)
    return {"adjusted": v.random / (v.random + v.residual),
            "unadjusted": v.random / (v.fixed + v.random + v.residual)}
