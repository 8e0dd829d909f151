"""The response of a GLMM: data, prior weights, offset and a GLM family, for PIRLS."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..families import GLMFamily

__all__ = ["GLMResponse"]


@dataclass
class GLMResponse:
    """The response side of a GLMM: data and a GLM family.

    Attributes
    ----------
    y : ndarray
        Response (a proportion for binomial data).
    weights : ndarray
        Prior weights (the number of trials for binomial proportions).
    offset : ndarray
    family : GLMFamily
    """

    y: np.ndarray
    weights: np.ndarray
    offset: np.ndarray
    family: GLMFamily

    def with_params(self, nb_theta: float) -> GLMResponse:
        """The same response with another negative-binomial shape (the only family parameter)."""
        return replace(self, family=self.family.with_nb_theta(nb_theta))

    @classmethod
    def with_constants(cls, y: np.ndarray, weights: np.ndarray, offset: np.ndarray, family: GLMFamily,
                       constants: dict) -> GLMResponse:
        """A response whose μ-free terms (:attr:`constants`) are already known, e.g. saved with its rows."""
        self = cls(y, weights, offset, family)
        self.__dict__["_constants"] = (family, constants)
        return self

    @property
    def constants(self) -> dict:
        """The family's μ-free terms of this response (computed once)."""
        c = self.__dict__.get("_constants")
        if c is None or c[0] is not self.family:
            c = self.__dict__["_constants"] = (self.family, self.family.response_constants(self.y, self.weights))
        return c[1]

    def cond_loglik(self, mu: np.ndarray, dispersion: float = 1.0) -> float:
        return float(np.sum(self.family.loglik_obs(self.y, mu, self.weights, dispersion, self.constants)))

    def dev_resid(self, mu: np.ndarray) -> np.ndarray:
        return self.family.dev_resid(self.y, mu, self.weights, self.constants)

    # -- the interface PIRLS uses (any response with these four methods plugs in) ----
    def mean(self, eta: np.ndarray) -> np.ndarray:
        """Conditional mean μ(η)."""
        return self.family.linkinv(eta)

    def working(self, eta: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """IRLS weights and working residual: ``w = μ'(η)²/V(μ)`` (× prior), ``r = (y − μ)/μ'(η)``."""
        d = self.family.mu_eta(eta)
        return self.weights * d * d / self.family.variance(mu), (self.y - mu) / d

    def loglik_obs(self, eta: np.ndarray, dispersion: float = 1.0) -> np.ndarray:
        """Per-observation conditional log-likelihood at η (for quadrature)."""
        return self.family.loglik_obs(self.y, self.mean(eta), self.weights, dispersion, self.constants)

    def deviance(self, mu: np.ndarray) -> float:
        """The discrepancy PIRLS minimizes (with ‖u‖²): the sum of deviance residuals."""
        return float(np.sum(self.dev_resid(mu)))

    def cond_minus2ll(self, mu: np.ndarray) -> float:
        """−2 log p(y | u) as lme4 evaluates it (R's ``family$aic``).

        For families with a dispersion (Gamma, inverse Gaussian) the dispersion is
        its ML-style estimate ``Σ deviance residuals / Σ weights`` at μ, and 2 is
        added for it, as in R's ``Gamma()$aic``.
        """
        if self.family.has_dispersion:
            disp = float(np.sum(self.dev_resid(mu)) / np.sum(self.weights))
            return -2.0 * self.cond_loglik(mu, disp) + 2.0
        return -2.0 * self.cond_loglik(mu)
