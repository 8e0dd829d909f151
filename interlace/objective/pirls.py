"""Penalized iteratively reweighted least squares (PIRLS) on the shared PLS engines.

Each iteration forms the working weights and response of a
:class:`~interlace.response.base.Response`, loads their cross-products into a PLS engine
and solves.  Two flavours, as in lme4:

* joint (``nAGQ=0`` and lme4's first stage): PIRLS over (β, u) for given θ;
* conditional (the Laplace and quadrature objectives): PIRLS over u for given (θ, β).

GLMMs and CLMMs both use it; their objectives are :mod:`interlace.objective.glmm` and
:mod:`interlace.objective.clmm`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..linalg.crossprod import RowProducts
from ..linalg.engines import RowEngines
from ..linalg.pls import PLSSystem
from ..response.base import Response

__all__ = ["PIRLS", "PIRLSState"]


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
    engines : RowEngines
        Engines for the rows (Z, X): one for u alone, one for (β, u) (made on first use).
    resp : Response
        The response (:class:`~interlace.response.base.Response`); :meth:`run` may be given
        another one (the same data at other response parameters).
    tol : float
        Relative change of the penalized deviance at which iterations stop ...
    utol : float
        ... together with the largest change of u (and β) in an iteration.
    """

    def __init__(self, engines: RowEngines, resp: Response, tol: float = 1e-10, utol: float = 1e-9,
                 maxit: int = 100) -> None:
        self.re = engines.re
        self.X = engines.X
        self.resp = resp
        self.Z = self.re.Z()
        self.n, self.p = self.X.shape
        self._engines = engines
        self.pls_u, self._rows_u = engines.get(fixed=False)
        self._joint: tuple[PLSSystem, RowProducts] | None = None
        self.engine = engines.name
        self.tol, self.utol, self.maxit = tol, utol, maxit
        self.u = np.zeros(self.re.q)

    def _joint_engine(self) -> tuple[PLSSystem, RowProducts]:
        if self._joint is None:
            self._joint = self._engines.get(fixed=True)
        return self._joint

    def eta(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Linear predictor offset + Xβ + ZΛθu."""
        b = self.re.Lambda(theta) @ u
        return self.resp.offset + self.X @ beta + self.Z @ b

    def run(self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray | None = None, joint: bool = False,
            resp: Response | None = None) -> PIRLSState:
        """Iterate to the conditional mode at θ (and β unless ``joint``).

        Parameters
        ----------
        theta, beta : ndarray
        u0 : ndarray, optional
            Start (default: the last mode found, a warm start).
        joint : bool
            Iterate over (β, u) with ``beta`` the start, instead of over u at ``beta``.
        resp : Response, optional
            The response to use (default the one given at construction).
        """
        theta = np.asarray(theta, float)
        beta = np.asarray(beta, float).copy()
        u = (self.u if u0 is None else np.asarray(u0, float)).copy()
        resp = self.resp if resp is None else resp
        pls, rows = self._joint_engine() if joint else (self.pls_u, self._rows_u)
        Lam = self.re.Lambda(theta)
        Xb = self.X @ beta
        eta = resp.offset + Xb + self.Z @ (Lam @ u)
        mu = resp.mean(eta)
        old = resp.deviance(mu) + float(u @ u)
        converged = False
        it = 0
        for it in range(1, self.maxit + 1):  # noqa: B007 - the count is reported after the loop
            w, r = resp.working(eta, mu)
            z = eta - resp.offset + r if joint else eta - resp.offset - Xb + r
            pls.load(rows(z, w))
            f = pls.factor(theta)
            if not f.ok:
                break
            beta_new, u_new = pls.solve()
            du = u_new - u
            db = beta_new - beta if joint else np.zeros_like(beta)
            if not (np.all(np.isfinite(du)) and (not joint or np.all(np.isfinite(db)))):
                break
            step = 1.0
            improved = False
            for _ in range(12):
                u_try = u + step * du
                b_try = beta + step * db if joint else beta
                eta_try = resp.offset + self.X @ b_try + self.Z @ (Lam @ u_try)
                mu_try = resp.mean(eta_try)
                new = resp.deviance(mu_try) + float(u_try @ u_try)
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
        w, r = resp.working(eta, mu)
        z = eta - resp.offset - (0 if joint else Xb) + r
        pls.load(rows(z, w))
        f = pls.factor(theta)
        self.u = u
        return PIRLSState(beta, u, eta, mu, f.ldL2, old, converged, it)

    def laplace(self, st: PIRLSState, resp: Response | None = None) -> float:
        """Laplace approximation to −2 log L at a PIRLS state (lme4's ``glmerLaplace``)."""
        resp = self.resp if resp is None else resp
        return resp.cond_minus2ll(st.mu) + float(st.u @ st.u) + st.ldL2

    def factored(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray, resp: Response | None = None
                 ) -> PLSSystem:
        """The u-engine loaded with the working weights at the mode near ``u`` and factored at θ
        (conditional variances of the modes)."""
        self.run(theta, beta, u0=u, resp=resp)
        return self.pls_u

    def joint_factored(self, theta: np.ndarray, st: PIRLSState, resp: Response | None = None
                       ) -> tuple[PLSSystem, np.ndarray]:
        """The (β, u) engine loaded with the working weights at the state ``st`` and factored at θ,
        and those weights (lme4's ``RX``; the GLMM hat matrix)."""
        resp = self.resp if resp is None else resp
        w, r = resp.working(st.eta, st.mu)
        pls, rows = self._joint_engine()
        pls.load(rows(st.eta - resp.offset + r, w))
        pls.factor(theta)
        return pls, w

    def rx_vcov(self, theta: np.ndarray, st: PIRLSState, resp: Response | None = None) -> np.ndarray:
        """Covariance of β from the joint PLS factor at the state's working weights (lme4's ``RX``)."""
        RXinv = np.linalg.inv(self.joint_factored(theta, st, resp)[0].RX())
        return RXinv.T @ RXinv
