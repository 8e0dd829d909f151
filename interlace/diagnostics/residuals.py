"""Residuals of every kind, conditional and marginal (lme4's ``residuals(m, type, scaled)``, nlme's ``level``).

=================  ==========================================================================
type               value (μ the fitted mean at the chosen level, w the prior weights)
=================  ==========================================================================
``response``       y − μ
``pearson``        (y − μ) √(w / V(μ)), divided by the residual SD ratio of a ``VarIdent``
``deviance``       sign(y − μ) √dᵢ(y, μ) (for Gaussian responses √w (y − μ))
``working``        (y − μ) / μ'(η) (the PIRLS working residual; y − μ for LMMs)
``standardized``   LMMs, conditional: √w (y − μ) / (σ̂ √(1 − hᵢᵢ)), hᵢᵢ the hat values
``normalized``     LMMs: the Pearson residuals decorrelated by the residual correlation
                   structure, A √w (y − μ) / σ̂ (nlme's ``type = "normalized"``); equal to
                   the scaled Pearson residuals without a structure
=================  ==========================================================================

``level="conditional"`` uses μ with the random effects (lme4's and nlme's level 1, the
default); ``"marginal"`` uses the fixed effects only (nlme's level 0).  ``scaled=True``
divides Pearson, deviance, response and working residuals by σ̂ (the dispersion's square
root for GLMMs with one), as lme4's ``scaled = TRUE``; standardized and normalized ones
are always scaled.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import InterlaceError

__all__ = ["RESIDUAL_TYPES", "residuals"]

RESIDUAL_TYPES = ("response", "pearson", "deviance", "working", "standardized", "normalized")
_LEVELS = {"conditional": True, "marginal": False, 1: True, 0: False}


def _family_parts(result, eta: np.ndarray, mu: np.ndarray):
    """Variance function values, dμ/dη, deviance residual contributions and σ̂ of the result."""
    family = getattr(result, "family", None)
    w = result.model.weights
    w = np.ones(mu.size) if w is None else np.asarray(w, float)
    y = np.asarray(result.model.endog, float)
    if family is None:  # linear mixed model
        return np.ones(mu.size), np.ones(mu.size), w * (y - mu) ** 2, w, float(result.sigma)
    return (family.variance(mu), family.mu_eta(eta), family.dev_resid(y, mu, w), w, float(result.sigma))


def residuals(result: Any, type: str | None = None, level: str | int = "conditional", scaled: bool = False
              ) -> pd.Series:
    """Residuals of a fitted LMM or GLMM (see module docstring).

    Parameters
    ----------
    result : CrossedLMEResult or GLMMResult
    type : str, optional
        One of :data:`RESIDUAL_TYPES`; default ``"response"`` for LMMs and
        ``"deviance"`` for GLMMs (lme4's defaults).
    level : {"conditional", "marginal"} or {1, 0}
    scaled : bool

    Returns
    -------
    Series
        Indexed as the fitted rows.
    """
    is_glmm = hasattr(result, "family")
    kind = ("deviance" if is_glmm else "response") if type is None else str(type).lower()
    if kind not in RESIDUAL_TYPES:
        raise InterlaceError(f"unknown residual type {type!r}: use one of {', '.join(RESIDUAL_TYPES)}")
    if level not in _LEVELS:
        raise InterlaceError(f"level must be 'conditional' (1) or 'marginal' (0), got {level!r}")
    conditional = _LEVELS[level]
    if kind in ("standardized", "normalized") and is_glmm:
        raise InterlaceError(f"{kind} residuals are defined for linear mixed models; use 'pearson' or 'deviance'")
    if kind == "standardized" and not conditional:
        raise InterlaceError("standardized residuals use the conditional hat values: level='conditional'")
    eta = result._eta_fit(include_re=conditional)
    mu = result._linear_predictor_link(eta)
    y = np.asarray(result.model.endog, float)
    V, mu_eta, dres, w, sigma = _family_parts(result, eta, mu)
    raw = y - mu
    residual = getattr(result.model, "residual", None)
    psi = getattr(result.sol, "psi", None)
    if kind == "response":
        r = raw
    elif kind == "working":
        r = raw / mu_eta
    elif kind == "deviance":
        r = np.sign(raw) * np.sqrt(np.maximum(dres, 0.0))
    else:
        r = raw * np.sqrt(w / V)
        if residual is not None and residual.variance is not None:
            r = r / residual.variance.ratios(residual.split(psi)[0])
        if kind == "standardized":
            h = result.hat_values().to_numpy()
            r = r / (sigma * np.sqrt(np.maximum(1.0 - h, 0.0)))
        elif kind == "normalized":
            if residual is not None and residual.correlation is not None:
                r = residual.correlation.whiten(r, residual.split(psi)[-1])
            r = r / sigma
    if scaled and kind not in ("standardized", "normalized"):
        r = r / sigma
    name = f"resid_{kind}" + ("" if conditional else "_marginal")
    return pd.Series(r, index=result.model.data.row_labels, name=name)
