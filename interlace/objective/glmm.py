"""GLMM objectives (lme4's ``glmer`` stages), on :class:`~interlace.objective.pirls.PIRLS`.

* :class:`JointPIRLSDeviance` — θ → the Laplace deviance at the joint (β, u) mode:
  lme4's first stage, and the whole fit for ``nAGQ=0``;
* :class:`LaplaceDeviance` — (θ, β) → the Laplace approximation (``nAGQ=1``) or
  adaptive Gauss-Hermite quadrature (``nAGQ>1``, one scalar term) at the mode of u.

The Laplace deviance is ``−2 Σ log p(y | u) + ‖u‖² + log|ΛᵀZᵀWZΛ + I|`` with W the
working weights at the conditional mode (lme4's ``glmerLaplace``).
"""
from __future__ import annotations

import numpy as np

from .agq import agq_deviance
from .glmm_gradient import (GLMMGradientRows, GRADIENT_FAMILIES, GRADIENT_MAX_Q_DENSE, GRADIENT_MAX_REST,
                            laplace_gradient)
from .pirls import PIRLS, PIRLSState, RowSource

__all__ = ["CANONICAL", "JointPIRLSDeviance", "LaplaceDeviance"]

#: (family, link) pairs whose IRLS weights are the observed information (the mode's derivatives then
#: come from the factored M)
CANONICAL = {("binomial", "logit"), ("poisson", "log"), ("gamma", "inverse"), ("inverse_gaussian", "1/mu^2"),
             ("gaussian", "identity")}


class JointPIRLSDeviance:
    """θ → Laplace deviance at the joint PIRLS mode of (β, u); β is warm-started from the last
    converged evaluation (lme4's first stage).

    Parameters
    ----------
    pirls : PIRLS
    """

    def __init__(self, pirls: PIRLS) -> None:
        self.pirls = pirls
        self.beta = np.zeros(pirls.p)
        self.n_evals = 0

    @property
    def x0(self) -> np.ndarray:
        """The identity templates (lme4's start)."""
        return self.pirls.re.theta0

    @property
    def lower(self) -> np.ndarray:
        return self.pirls.re.lower

    def warm_start(self, theta: np.ndarray) -> None:
        """β from glm's first iteration, then a first PIRLS at θ: the GLM start of the modes.

        glm's first iteration is a weighted least-squares step from the family's starting
        means (R's ``mustart``: y + 0.1 for counts, ...), so the start is on the data's
        scale: from β = 0 (μ = 1) counts near 10¹² need steps that overflow exp() and PIRLS
        stalls.  β keeps its start unless that PIRLS converges.
        """
        beta0 = self.glm_start()
        if beta0 is not None:
            self.beta = beta0
        self.pirls.run(theta, self.beta, joint=True, u0=np.zeros(self.pirls.re.q))

    def glm_start(self) -> np.ndarray | None:
        """glm's first weighted least-squares β from the family's starting means (None when the
        response has no ``mustart``, e.g. an ordinal one, or the rows cannot give it)."""
        start = getattr(self.pirls.source, "glm_start", None)
        if start is None or self.pirls.p == 0:
            return None
        return start(self.pirls.resp)

    def __call__(self, theta: np.ndarray) -> float:
        self.n_evals += 1
        st = self.pirls.run(theta, self.beta, joint=True)
        if st.converged:
            self.beta = st.beta
        return self.pirls.laplace(st)

    def solution(self, theta: np.ndarray) -> PIRLSState:
        """The joint mode at θ, from the current β."""
        return self.pirls.run(theta, self.beta, joint=True)


class LaplaceDeviance:
    """(θ, β) → −2 log L by the Laplace approximation or adaptive quadrature (lme4's second stage).

    Parameters
    ----------
    pirls : PIRLS
    nAGQ : int
        1: Laplace; more: that many adaptive Gauss-Hermite nodes (one scalar term).
    """

    def __init__(self, pirls: PIRLS, nAGQ: int = 1) -> None:
        self.pirls = pirls
        self.nAGQ = int(nAGQ)
        self.n_theta = pirls.re.n_theta
        self.n_evals = 0
        self._rows: GLMMGradientRows | None = None

    @property
    def x0(self) -> np.ndarray:
        return np.concatenate([self.pirls.re.theta0, np.zeros(self.pirls.p)])

    @property
    def lower(self) -> np.ndarray:
        return np.concatenate([self.pirls.re.lower, np.full(self.pirls.p, -np.inf)])

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(θ, β) from the parameter vector."""
        x = np.asarray(x, float)
        return x[:self.n_theta], x[self.n_theta:]

    def at(self, theta: np.ndarray, beta: np.ndarray, n_agq: int | None = None) -> float:
        """−2 log L at (θ, β) with ``n_agq`` nodes (default the objective's)."""
        st = self.pirls.run(theta, beta)
        k = self.nAGQ if n_agq is None else n_agq
        if k > 1:
            return agq_deviance(self.pirls.re, self.pirls.resp, st, np.asarray(theta, float), k)
        return self.pirls.laplace(st)

    def __call__(self, x: np.ndarray) -> float:
        self.n_evals += 1
        return self.at(*self.split(x))

    def solution(self, x: np.ndarray) -> PIRLSState:
        """The conditional mode of u at (θ, β)."""
        return self.pirls.run(*self.split(x))

    @property
    def has_gradient(self) -> bool:
        """Whether :meth:`value_and_gradient` is available: the Laplace approximation, rows in memory,
        a family of :data:`~interlace.objective.glmm_gradient.GRADIENT_FAMILIES`, at most
        :data:`~interlace.objective.glmm_gradient.GRADIENT_MAX_REST` columns outside the term of most
        levels, and for a non-canonical link at most
        :data:`~interlace.objective.glmm_gradient.GRADIENT_MAX_Q_DENSE` random effects."""
        re = self.pirls.re
        fam = getattr(self.pirls.resp, "family", None)
        if (self.nAGQ != 1 or fam is None or fam.name not in GRADIENT_FAMILIES or not re.terms
                or not isinstance(self.pirls.source, RowSource)):
            return False
        if re.q - int(re.col_offsets[1]) > GRADIENT_MAX_REST:
            return False
        return (fam.name, fam.link_name) in CANONICAL or re.q <= GRADIENT_MAX_Q_DENSE

    def value_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray | None]:
        """The Laplace deviance at x = (θ, β) and its exact gradient (:mod:`~interlace.objective.glmm_gradient`)."""
        self.n_evals += 1
        theta, beta = self.split(x)
        st = self.pirls.run(theta, beta)
        f = self.pirls.laplace(st)
        if not np.isfinite(f):
            return np.inf, None
        if self._rows is None:
            self._rows = GLMMGradientRows(self.pirls.source)  # type: ignore[arg-type]
        g = laplace_gradient(self.pirls.resp, st, theta, beta, self._rows, self.pirls.source.engine(False))
        return f, g
