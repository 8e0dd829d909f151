"""Covariance structures of random-effects terms: θ ↔ relative covariance factor.

Each structure maps its slice of θ to a lower-triangular ``p × p`` template ``T``
with ``Σ = σ² T Tᵀ`` (lme4's relative covariance factor).  The unstructured
template stores the lower triangle column by column, as lme4's ``theta``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Unstructured"]


class Unstructured:
    """General positive semi-definite ``p × p`` covariance (lme4's default).

    Parameters
    ----------
    p : int
        Number of random coefficients per level.
    """

    def __init__(self, p: int) -> None:
        self.p = p
        r, c = np.tril_indices(p)  # lower triangle, ordered column by column
        idx = np.lexsort((r, c))
        self.rows, self.cols = r[idx], c[idx]

    @property
    def n_theta(self) -> int:
        """Number of parameters."""
        return self.p * (self.p + 1) // 2

    @property
    def theta0(self) -> np.ndarray:
        """Starting value: the identity template."""
        return (self.rows == self.cols).astype(float)

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds: 0 on the diagonal, -inf elsewhere."""
        return np.where(self.rows == self.cols, 0.0, -np.inf)

    def template(self, theta: np.ndarray) -> np.ndarray:
        """Lower-triangular ``T`` from this term's θ."""
        T = np.zeros((self.p, self.p))
        T[self.rows, self.cols] = theta
        return T

    def covariance(self, theta: np.ndarray, scale: float) -> np.ndarray:
        """``σ² T Tᵀ``."""
        T = self.template(theta)
        return scale * T @ T.T

    def theta_from_covariance(self, cov: np.ndarray, scale: float) -> np.ndarray:
        """Inverse of :meth:`covariance` (Cholesky factor; zeros where singular)."""
        c = np.asarray(cov, float) / scale
        try:
            T = np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            w, v = np.linalg.eigh(c)
            T = np.linalg.qr((v * np.sqrt(np.clip(w, 0, None))).T)[1].T
            T = T * np.sign(np.where(np.diag(T) == 0, 1, np.diag(T)))
        return T[self.rows, self.cols]
