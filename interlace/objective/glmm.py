"""GLMM objectives: penalized IRLS for the conditional modes and the Laplace deviance.

Uses the same random-effects structure and PLS engines as the LMM: each PIRLS
iteration forms the working weights and response, hands them to the PLS system
(``set_data``) and solves.  Two flavours, as in lme4:

* joint (``nAGQ=0`` and lme4's first stage): PIRLS over (β, u) for given θ;
* conditional (the Laplace and quadrature objectives): PIRLS over u for given (θ, β).

The Laplace deviance is ``−2 Σ log p(y | u) + ‖u‖² + log|ΛᵀZᵀWZΛ + I|`` with W the
working weights at the conditional mode (lme4's ``glmerLaplace``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..design.terms import RandomEffects
from ..families import GLMFamily
from ..linalg import make_pls

__all__ = ["GLMMResponse", "PIRLS", "PIRLSState"]


@dataclass
class GLMMResponse:
    """The response side of a GLMM.

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

    @property
    def constants(self) -> dict:
        """The family's μ-free terms of this response (computed once)."""
        c = self.__dict__.get("_constants")
        if c is None:
            c = self.__dict__["_constants"] = self.family.response_constants(self.y, self.weights)
        return c

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


@dataclass
class PIRLSState:
    """Converged PIRLS quantities at one (θ, β)."""

    beta: np.ndarray
    u: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    ldL2: float
    pwrss: float
    converged: bool
    iterations: int


class PIRLS:
    """Penalized iteratively reweighted least squares on the shared PLS engines.

    Parameters
    ----------
    re : RandomEffects
    X : ndarray (n, p)
    resp : GLMMResponse or any response with ``mean``, ``working``, ``deviance``,
        ``cond_minus2ll`` and an ``offset`` (e.g. :class:`~interlace.families.ordinal.OrdinalResponse`)
    engine : str
        PLS engine (see :func:`interlace.linalg.make_pls`).
    tol : float
        Relative change of the penalized deviance at which iterations stop ...
    utol : float
        ... together with the largest change of u (and β) in an iteration.
    """

    def __init__(self, re: RandomEffects, X: np.ndarray, resp: GLMMResponse, engine: str = "auto",
                 tol: float = 1e-10, utol: float = 1e-9, maxit: int = 100) -> None:
        self.re = re
        self.X = np.asarray(X, float)
        self.resp = resp
        self.Z = re.Z()
        self.n, self.p = self.X.shape
        self.pls_u = make_pls(re, self.X[:, :0], engine)
        self._pls_joint = None
        self.engine = engine
        self.tol, self.utol, self.maxit = tol, utol, maxit
        self.u = np.zeros(re.q)

    @property
    def pls_joint(self):
        if self._pls_joint is None:
            self._pls_joint = make_pls(self.re, self.X, self.engine)
        return self._pls_joint

    def eta(self, theta, beta, u) -> np.ndarray:
        b = self.re.Lambda(theta) @ u
        return self.resp.offset + self.X @ beta + self.Z @ b

    def _pdev(self, mu, u) -> float:
        return self.resp.deviance(mu) + float(u @ u)

    def _working(self, eta, mu):
        return self.resp.working(eta, mu)

    def run(self, theta, beta, u0=None, joint: bool = False) -> PIRLSState:
        """Iterate to the conditional mode at θ (and β unless ``joint``)."""
        theta = np.asarray(theta, float)
        beta = np.asarray(beta, float).copy()
        u = (self.u if u0 is None else np.asarray(u0, float)).copy()
        resp = self.resp
        pls = self.pls_joint if joint else self.pls_u
        Lam = self.re.Lambda(theta)
        Xb = self.X @ beta
        eta = self.resp.offset + Xb + self.Z @ (Lam @ u)
        mu = resp.mean(eta)
        old = self._pdev(mu, u)
        converged = False
        it = 0
        for it in range(1, self.maxit + 1):
            w, r = self._working(eta, mu)
            if joint:
                z = eta - self.resp.offset + r
            else:
                z = eta - self.resp.offset - Xb + r
            pls.set_data(z, w)
            f = pls.factor(theta)
            if not f.ok:
                break
            beta_new, u_new = pls.solve()
            du = u_new - u
            db = beta_new - beta if joint else None
            if not (np.all(np.isfinite(du)) and (not joint or np.all(np.isfinite(db)))):
                break
            step = 1.0
            improved = False
            for _ in range(12):
                u_try = u + step * du
                b_try = beta + step * db if joint else beta
                eta_try = self.resp.offset + self.X @ b_try + self.Z @ (Lam @ u_try)
                mu_try = resp.mean(eta_try)
                new = self._pdev(mu_try, u_try)
                if np.isfinite(new) and new <= old * (1 + 1e-12) + 1e-12:
                    improved = True
                    break
                step /= 2
            if not improved:  # no step lowers the penalized deviance: stay at the last iterate,
                # which is the mode when the proposed change is only rounding noise
                size = float(np.max(np.abs(du), initial=0.0))
                if joint:
                    size = max(size, float(np.max(np.abs(db), initial=0.0)))
                converged = size < 1e-6
                break
            u, eta, mu = u_try, eta_try, mu_try
            if joint:
                beta = b_try
                Xb = self.X @ beta
            change = abs(old - new) / (abs(new) + 0.1)
            old = new
            # both the penalized deviance and the mode itself must settle: the Laplace
            # deviance is not stationary in u for families with a dispersion
            step_size = step * float(np.max(np.abs(du), initial=0.0))
            if joint:
                step_size = max(step_size, step * float(np.max(np.abs(db), initial=0.0)))
            if change < self.tol and step_size < self.utol:
                converged = True
                break
        # factor once more with the weights at the mode (the Laplace determinant)
        w, r = self._working(eta, mu)
        z = eta - self.resp.offset - (0 if joint else Xb) + r
        pls.set_data(z, w)
        f = pls.factor(theta)
        self.u = u
        return PIRLSState(beta, u, eta, mu, f.ldL2, old, converged, it)

    def cond_minus2ll(self, mu: np.ndarray) -> float:
        """−2 log p(y | u) of the response at μ."""
        return self.resp.cond_minus2ll(mu)

    def laplace(self, st: PIRLSState) -> float:
        """Laplace approximation to −2 log L at a PIRLS state (lme4's ``glmerLaplace``)."""
        return self.cond_minus2ll(st.mu) + float(st.u @ st.u) + st.ldL2
