"""Negative-binomial GLMMs with the shape estimated (lme4's ``glmer.nb``).

The NB shape θ (variance μ + μ²/θ) is estimated by maximizing the GLMM
log-likelihood profiled over it: each trial θ is a full ``glmer`` fit with the
negative-binomial family at that θ (warm-started from the previous one), and a
Brent search on log θ finds the maximum.  The start is the ML θ given the
conditional means of a Poisson GLMM, as in lme4.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.optimize as so
import scipy.stats as st

from ..families import GLMFamily
from .glmm import GLMM

__all__ = ["fit_negative_binomial", "theta_ml"]


def theta_ml(y: np.ndarray, mu: np.ndarray, w: np.ndarray | None = None) -> float:
    """ML estimate of the NB shape given means ``mu`` (as MASS's ``theta.ml``)."""
    w = np.ones_like(y) if w is None else w

    def nll(lt):
        th = np.exp(lt)
        return -np.sum(w * st.nbinom.logpmf(y, th, th / (th + mu)))

    res = so.minimize_scalar(nll, bounds=(-10, 15), method="bounded", options={"xatol": 1e-8})
    return float(np.exp(res.x))


def fit_negative_binomial(model: GLMM, method: str = "bobyqa", maxiter: int | None = None,
                          check_conv: bool = True, xtol: float = 1e-7) -> Any:
    """Fit ``model`` (whose family is negative binomial) with the shape estimated.

    Every trial shape is a refit of ``model`` with that family (:meth:`GLMM.refit`), sharing
    its engines.

    Parameters
    ----------
    model : GLMM
        Built with ``family=GLMFamily("negative_binomial", link)``.
    xtol : float
        Tolerance on log θ of the profile search.

    Returns
    -------
    GLMMResultWrapper
        Its ``nb_theta`` is the estimated shape.
    """
    fam: GLMFamily = model.family
    y = np.asarray(model.endog, float)
    with warnings.catch_warnings():  # Poisson start, as lme4
        warnings.simplefilter("ignore")
        r0 = model.refit(family="poisson", method=method, maxiter=maxiter,
                         check_conv=False)
    th0 = theta_ml(y, r0.fittedvalues.to_numpy(), model.weights)
    start = {"theta": r0.theta}

    def neg_llf(lt: float) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = model.refit(family=fam.with_nb_theta(float(np.exp(lt))), start=start["theta"], method=method,
                            maxiter=maxiter, check_conv=False)
        start["theta"] = r.theta
        return -r.llf

    lt0 = np.log(th0)
    res = so.minimize_scalar(neg_llf, bracket=(lt0 - 0.3, lt0 + 0.3), method="brent", options={"xtol": xtol})
    nb_theta = float(np.exp(res.x))
    return model.refit(family=fam.with_nb_theta(nb_theta), start=start["theta"], method=method, maxiter=maxiter,
                       check_conv=check_conv)
