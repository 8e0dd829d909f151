"""What PIRLS needs from a response: the conditional distribution of y given the linear predictor."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Response"]


@runtime_checkable
class Response(Protocol):
    """A response PIRLS can iterate on (GLM and ordinal responses implement it).

    Attributes
    ----------
    offset : ndarray (n,)
        Added to the linear predictor.
    weights : ndarray (n,)
        Prior (case) weights.
    """

    offset: np.ndarray
    weights: np.ndarray

    def with_params(self, params: Any) -> Response:
        """The same response at other response parameters (ordinal thresholds, negative-binomial
        shape): a new object, the original unchanged."""

    def mean(self, eta: np.ndarray) -> np.ndarray:
        """Conditional mean μ(η) (η itself for an ordinal response)."""

    def working(self, eta: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """IRLS (or Newton) weights and working residual at (η, μ)."""

    def deviance(self, mu: np.ndarray) -> float:
        """The discrepancy PIRLS minimizes together with ‖u‖²."""

    def cond_minus2ll(self, mu: np.ndarray) -> float:
        """−2 log p(y | u) at μ (the Laplace deviance's data term)."""

    def loglik_obs(self, eta: np.ndarray, dispersion: float = 1.0) -> np.ndarray:
        """Per-observation conditional log-likelihood at η (adaptive quadrature)."""
