"""The cumulative link mixed model objective (R's ``ordinal::clmm``) on :class:`~interlace.objective.pirls.PIRLS`.

Parameters ``x = (threshold parameters, β, θ)`` (ordinal's order); the thresholds are
``α = J · x[:n_alpha]`` for the threshold structure's Jacobian J.  At each x the
conditional modes of u come from PIRLS on the ordinal response at α (observed-information
Newton weights), and the objective is the Laplace approximation (or adaptive
Gauss-Hermite quadrature for one scalar term) to −2 log L.
"""
from __future__ import annotations

from typing import cast

import numpy as np

from ..response.ordinal import OrdinalResponse
from .agq import agq_deviance
from .pirls import PIRLS, PIRLSState

__all__ = ["CLMMDeviance"]


class CLMMDeviance:
    """−2 log L of a CLMM at (threshold parameters, β, θ).

    Parameters
    ----------
    pirls : PIRLS
        On the model's engines, with an :class:`~interlace.response.ordinal.OrdinalResponse`
        (its thresholds are replaced at every evaluation through ``with_params``).
    J : ndarray (K − 1, n_alpha)
        Thresholds = J · threshold parameters.
    nAGQ : int
        1: Laplace; >1: adaptive Gauss-Hermite quadrature (one scalar term).
    """

    def __init__(self, pirls: PIRLS, J: np.ndarray, nAGQ: int = 1) -> None:
        self.pirls = pirls
        self.J = np.asarray(J, float)
        self.nAGQ = int(nAGQ)
        self.n_alpha = self.J.shape[1]
        self.p = pirls.p
        self.n_evals = 0

    @property
    def x0(self) -> np.ndarray:
        """Thresholds from the cumulative proportions of the response, β = 0, θ at the identity templates."""
        resp = self.pirls.resp
        assert isinstance(resp, OrdinalResponse)
        K = resp.n_categories
        cum = np.cumsum(np.bincount(resp.y, weights=resp.weights, minlength=K))[:-1] / np.sum(resp.weights)
        alpha0 = resp.link.ppf(np.clip(cum, 1e-6, 1 - 1e-6))
        a0 = np.linalg.lstsq(self.J, alpha0, rcond=None)[0]
        return np.concatenate([a0, np.zeros(self.p), self.pirls.re.theta0])

    @property
    def lower(self) -> np.ndarray:
        return np.concatenate([np.full(self.n_alpha + self.p, -np.inf), self.pirls.re.lower])

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds α, β, θ) from the parameter vector."""
        x = np.asarray(x, float)
        na, p = self.n_alpha, self.p
        return self.J @ x[:na], x[na:na + p], x[na + p:]

    def response(self, x: np.ndarray) -> OrdinalResponse:
        """The ordinal response at the thresholds of ``x``."""
        return cast(OrdinalResponse, self.pirls.resp.with_params(self.split(x)[0]))

    def __call__(self, x: np.ndarray) -> float:
        self.n_evals += 1
        alpha, beta, theta = self.split(x)
        if np.any(np.diff(alpha) <= 0):
            return np.inf
        resp = self.pirls.resp.with_params(alpha)
        st = self.pirls.run(theta, beta, resp=resp)
        if self.nAGQ > 1:
            return agq_deviance(self.pirls.re, resp, st, theta, self.nAGQ)
        return self.pirls.laplace(st, resp)

    def solution(self, x: np.ndarray) -> PIRLSState:
        """The conditional modes at ``x``."""
        alpha, beta, theta = self.split(x)
        return self.pirls.run(theta, beta, resp=self.pirls.resp.with_params(alpha))
