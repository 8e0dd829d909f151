"""The ordinal response of a cumulative link mixed model, for PIRLS.

P(Y ≤ j | η) = F(α_j − η) with the thresholds α and the link's distribution F
(:mod:`interlace.families.ordinal`).  PIRLS gets the Newton weights hᵢ = −∂²ℓᵢ/∂ηᵢ²
and working residual gᵢ/hᵢ (gᵢ = ∂ℓᵢ/∂ηᵢ), so the conditional modes and the Laplace
approximation use the observed information, as ``clmm`` does.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..families.ordinal import CumulativeLink

__all__ = ["OrdinalResponse"]


@dataclass
class OrdinalResponse:
    """An ordinal response for PIRLS.

    Attributes
    ----------
    y : ndarray of int
        Category index 0 … K−1.
    n_categories : int
    link : CumulativeLink
    alpha : ndarray
        Thresholds α₁ < … < α_{K−1} (:meth:`with_params` gives the response at others).
    offset : ndarray
    weights : ndarray
        Case weights (multiply each observation's log-likelihood).
    """

    y: np.ndarray
    n_categories: int
    link: CumulativeLink
    alpha: np.ndarray
    offset: np.ndarray
    weights: np.ndarray

    def with_params(self, alpha: np.ndarray) -> OrdinalResponse:
        """The same response with thresholds ``alpha``."""
        return replace(self, alpha=np.asarray(alpha, float))

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        a = np.concatenate([[-np.inf], self.alpha, [np.inf]])
        return a[self.y + 1], a[self.y]

    def probs(self, eta: np.ndarray) -> np.ndarray:
        """P(Y = yᵢ | ηᵢ)."""
        upper, lower = self._bounds()
        return np.maximum(self.link.cdf(upper - eta) - self.link.cdf(lower - eta), 1e-300)

    def category_probs(self, eta: np.ndarray) -> np.ndarray:
        """(n, K) matrix of P(Y = j | ηᵢ)."""
        a = np.concatenate([[-np.inf], self.alpha, [np.inf]])
        F = self.link.cdf(a[None, :] - np.asarray(eta, float)[:, None])
        return np.diff(F, axis=1)

    # -- the PIRLS interface ------------------------------------------------------
    def mean(self, eta: np.ndarray) -> np.ndarray:
        return eta

    def working(self, eta: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        upper, lower = self._bounds()
        P = self.probs(eta)
        fu, fl = self.link.pdf(upper - eta), self.link.pdf(lower - eta)
        fu = np.where(np.isfinite(upper), fu, 0.0)
        fl = np.where(np.isfinite(lower), fl, 0.0)
        g = -(fu - fl) / P                                   # ∂ℓ/∂η
        d2 = (self.link.dpdf(upper - eta) - self.link.dpdf(lower - eta)) / P - g * g  # ∂²ℓ/∂η²
        h = np.maximum(-d2, 1e-12) * self.weights
        return h, self.weights * g / h

    def loglik_obs(self, eta: np.ndarray, dispersion: float = 1.0) -> np.ndarray:
        return self.weights * np.log(self.probs(eta))

    def deviance(self, mu: np.ndarray) -> float:
        return -2.0 * float(np.sum(self.loglik_obs(mu)))

    def cond_minus2ll(self, mu: np.ndarray) -> float:
        return self.deviance(mu)
