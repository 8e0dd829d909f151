"""Profiled deviance and REML criterion of a linear mixed model as a function of θ.

With ``f = factor(θ)`` of the PLS system (see :mod:`interlace.linalg.pls`):

* ML:   ``ldL2 + n (1 + log(2π r²/n)) − Σ log w``
* REML: ``ldL2 + ldRX2 + (n − p)(1 + log(2π r²/(n − p))) − Σ log w``

exactly as lme4's ``lmerResp::Laplace``.  σ̂² is ``r²/n`` (ML) or ``r²/(n − p)`` (REML).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..linalg.engines import RowEngines
from ..linalg.pls import Factorization, PLSSystem
from .start import moment_start

__all__ = ["LMMDeviance", "LMMSolution"]


@dataclass
class LMMSolution:
    """Everything computed at the optimum θ.

    Attributes
    ----------
    theta, beta, u, b : ndarray
        θ, fixed effects, spherical and actual random effects (b = Λu).
    sigma2 : float
    objective : float
        Deviance (ML) or REML criterion at θ.
    pwrss, ldL2, ldRX2 : float
    RX : ndarray (p, p)
        Lower factor with ``RX RXᵀ = XᵀV⁻¹X · σ²``; ``cov(β) = σ² (RX RXᵀ)⁻¹``.
    psi : ndarray or None
        Residual-structure parameters (nlme's unconstrained scale), if the model has one.
    """

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    b: np.ndarray
    sigma2: float
    objective: float
    pwrss: float
    ldL2: float
    ldRX2: float
    RX: np.ndarray
    psi: np.ndarray | None = None


class LMMDeviance:
    """The criterion to minimize over θ (follows :class:`~interlace.objective.base.Objective`).

    Parameters
    ----------
    pls : PLSSystem
        An engine loaded with the cross-products of ``[Z X y]`` (y with any offset
        subtracted, W the prior weights).
    reml : bool
    sum_log_w : float
        ``Σ log w`` of the prior weights (0 without weights).
    """

    def __init__(self, pls: PLSSystem, reml: bool, sum_log_w: float = 0.0) -> None:
        self.pls = pls
        self.reml = bool(reml)
        self.n, self.p = pls.n, pls.p
        self.ldW = float(sum_log_w)
        self.n_evals = 0
        self._theta0: np.ndarray | None = None

    @classmethod
    def from_rows(cls, engines: RowEngines, y: np.ndarray, weights: np.ndarray | None, reml: bool) -> LMMDeviance:
        """The criterion of the rows ``engines`` was made for, with response ``y`` (offset subtracted)."""
        pls, rows = engines.get()
        pls.load(rows(y, weights))
        return cls(pls, reml, float(np.sum(np.log(weights))) if weights is not None else 0.0)

    @property
    def theta0(self) -> np.ndarray:
        """Default starting parameters: moment estimates (:func:`~interlace.objective.start.moment_start`)."""
        if self._theta0 is None:
            assert self.pls.cp is not None, "the engine has no data"
            self._theta0 = moment_start(self.pls.cp)
        return self._theta0.copy()

    x0 = theta0

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of the parameters."""
        return self.pls.re.lower

    @property
    def dof(self) -> int:
        """Degrees of freedom of the residual variance estimate (n or n − p)."""
        return self.n - self.p if self.reml else self.n

    def _criterion(self, f: Factorization) -> float:
        if not f.ok or not np.isfinite(f.pwrss) or f.pwrss <= 0:
            return np.inf
        nu = self.dof
        val = f.ldL2 + nu * (1.0 + np.log(2.0 * np.pi * f.pwrss / nu)) - self.ldW
        if self.reml:
            val += f.ldRX2
        return float(val)

    def __call__(self, theta: np.ndarray) -> float:
        self.n_evals += 1
        return self._criterion(self.pls.factor(theta))

    def factored(self, sol: LMMSolution) -> PLSSystem:
        """The engine factored at the solution (for conditional variances, hat values, derivatives)."""
        self.pls.factor(sol.theta)
        return self.pls

    def solution(self, theta: np.ndarray) -> LMMSolution:
        """β, u, b and σ² at θ (computed only once, at the optimum)."""
        theta = np.asarray(theta, float)
        f = self.pls.factor(theta)
        obj = self._criterion(f)
        beta, u = self.pls.solve()
        b = np.asarray(self.pls.re.Lambda(theta) @ u).ravel()
        return LMMSolution(theta, beta, u, b, f.pwrss / self.dof, obj, f.pwrss, f.ldL2, f.ldRX2,
                           self.pls.RX().copy())
