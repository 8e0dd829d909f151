"""Adaptive Gauss-Hermite quadrature for GLMMs with one scalar random-effects term.

For group i with conditional mode ûᵢ and hᵢ = (ΛᵀZᵀWZΛ + I)ᵢᵢ (diagonal for a
single scalar term), with probabilists' Hermite nodes xₖ and weights wₖ
(``numpy.polynomial.hermite_e.hermegauss``, Σwₖ = √(2π)):

    −2 log Lᵢ = log hᵢ − 2 log Σₖ (wₖ/√(2π)) exp(ℓᵢ(uₖ) − uₖ²/2 + xₖ²/2),
    uₖ = ûᵢ + xₖ/√hᵢ,

where ℓᵢ is the conditional log-likelihood of group i's rows.  One node
(x = 0) gives the Laplace approximation.
"""
from __future__ import annotations

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import logsumexp

from ..design.terms import RandomEffects
from ..errors import InterlaceError
from ..response.base import Response
from .pirls import PIRLSState

__all__ = ["agq_deviance"]


def agq_deviance(re: RandomEffects, resp: Response, st: PIRLSState, theta: np.ndarray, n_nodes: int,
                 dispersion: float = 1.0) -> float:
    """−2 log L by adaptive Gauss-Hermite quadrature at the PIRLS state ``st`` (one scalar term)."""
    term = re.terms[0]
    codes = term.codes
    zcol = term.X[:, 0]
    lam = float(theta[0])
    if st.eta is None or st.mu is None:
        raise InterlaceError("adaptive quadrature needs the rows in memory")
    w, _ = resp.working(st.eta, st.mu)
    h = 1.0 + lam * lam * np.bincount(codes, w * zcol * zcol, minlength=term.nlevels)
    s = 1.0 / np.sqrt(h)
    x, wk = hermegauss(n_nodes)
    logw = np.log(wk / np.sqrt(2 * np.pi))
    eta_fixed = st.eta - zcol * lam * st.u[codes]
    terms = np.empty((term.nlevels, n_nodes))
    for k in range(n_nodes):
        uk = st.u + x[k] * s
        eta = eta_fixed + zcol * lam * uk[codes]
        ll = np.bincount(codes, resp.loglik_obs(eta, dispersion), minlength=term.nlevels)
        terms[:, k] = logw[k] + ll - 0.5 * uk * uk + 0.5 * x[k] ** 2
    return float(np.sum(np.log(h)) - 2.0 * np.sum(logsumexp(terms, axis=1)))
