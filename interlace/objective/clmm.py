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
import scipy.sparse as sp

from ..linalg.crossprod import row_structure
from .pirls import PIRLS, PIRLSState, RowSource

__all__ = ["CLMMDeviance", "GRADIENT_MAX_Q", "laplace_gradient"]

#: :meth:`CLMMDeviance.value_and_gradient` forms (ΛᵀZᵀWZΛ + I)⁻¹ densely: up to this many random effects
GRADIENT_MAX_Q = 1500
#: links whose log-likelihood is concave in η (Newton weights never held at their floor)
LOG_CONCAVE = ("logit", "probit", "cloglog", "loglog")


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
        self._rows: tuple[np.ndarray, np.ndarray] | None = None

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

    @property
    def has_gradient(self) -> bool:
        """Whether :meth:`value_and_gradient` is available: the Laplace objective, rows in memory, and at
        most :data:`GRADIENT_MAX_Q` random effects (the gradient forms (ΛᵀZᵀWZΛ + I)⁻¹ densely)."""
        resp = cast(OrdinalResponse, self.pirls.resp)
        return (self.nAGQ <= 1 and resp.link.name in LOG_CONCAVE and isinstance(self.pirls.source, RowSource)
                and 0 < self.pirls.re.q <= GRADIENT_MAX_Q)

    def value_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The Laplace −2 log L at ``x`` and its exact gradient (see :func:`laplace_gradient`)."""
        self.n_evals += 1
        alpha, beta, theta = self.split(x)
        if np.any(np.diff(alpha) <= 0):
            return np.inf, np.full(np.size(x), np.nan)
        resp = cast(OrdinalResponse, self.pirls.resp.with_params(alpha))
        st = self.pirls.run(theta, beta, resp=resp)
        f = self.pirls.laplace(st, resp)
        if self._rows is None:
            self._rows = row_structure(self.pirls.re)
        src = cast(RowSource, self.pirls.source)
        g_alpha, g_rest = laplace_gradient(resp, st, theta, src, self._rows)
        return f, np.concatenate([self.J.T @ g_alpha, g_rest])

    def solution(self, x: np.ndarray) -> PIRLSState:
        """The conditional modes at ``x``."""
        alpha, beta, theta = self.split(x)
        return self.pirls.run(theta, beta, resp=self.pirls.resp.with_params(alpha))


def laplace_gradient(resp: OrdinalResponse, st: PIRLSState, theta: np.ndarray, src: RowSource,
                     rows: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the Laplace −2 log L = −2ℓ(û) + ‖û‖² + log|M|, M = ΛᵀZᵀWZΛ + I, at the mode ``st``.

    With respect to the thresholds α and to (β, θ).  −2ℓ + ‖u‖² is stationary in u at the
    mode, so it contributes its partial derivatives at fixed u; log|M| contributes
    tr(M⁻¹ dM/dφ), where W changes with φ directly (α), through η at fixed u, and through
    the mode, dû/dφ = M⁻¹ (∂Λᵀ/∂φ Zᵀg + ΛᵀZᵀ(∂g/∂φ)|_u) (implicit differentiation of
    û = ΛᵀZᵀg).  The engine must be factored at the mode (as :meth:`PIRLS.run` leaves it);
    scalar random-effects terms only.

    Returns
    -------
    (ndarray, ndarray)
        The derivatives with respect to α (K − 1) and to (β, θ).
    """
    re = src.re
    cols, vals = rows
    n, m = cols.shape
    q, p = re.q, src.p
    K1 = resp.alpha.size
    y = resp.y
    u = st.u
    dv = resp.eta_derivatives(st.eta)
    g, h, dh = dv["g"], dv["h"], dv["dh"]
    lam = re.Lambda(theta).diagonal()
    zl = vals * lam[cols]                                                     # rows of ZΛ
    A = sp.csr_matrix((zl.ravel(), cols.ravel(), np.arange(0, n * m + 1, m)), shape=(n, q))
    S = src.engine(False).solve_M(np.eye(q))                                  # M⁻¹
    S = 0.5 * (S + S.T)
    s = np.zeros(n)                                                           # diag(ZΛ M⁻¹ ΛᵀZᵀ)
    for k in range(m):
        for l in range(m):
            s += zl[:, k] * zl[:, l] * S[cols[:, k], cols[:, l]]
    n_theta = theta.size
    npar = K1 + p + n_theta
    # ∂η/∂φ at fixed u (thresholds: 0), ∂g/∂α and ∂h/∂α at fixed η
    E = np.zeros((n, npar))
    E[:, K1:K1 + p] = src.X
    dlam = [re.Lambda(np.eye(n_theta)[j]).diagonal() for j in range(n_theta)]
    for j in range(n_theta):
        E[:, K1 + p + j] = np.sum(vals * dlam[j][cols] * u[cols], axis=1)
    up, lo = y < K1, y > 0
    iu, il = np.flatnonzero(up), np.flatnonzero(lo)
    Ga = np.zeros((n, npar))
    Ha = np.zeros((n, npar))
    Ga[iu, y[iu]] += dv["g_u"][iu]
    Ga[il, y[il] - 1] += dv["g_l"][il]
    Ha[iu, y[iu]] += dv["h_u"][iu]
    Ha[il, y[il] - 1] += dv["h_l"][il]
    # the mode's derivatives
    R = np.asarray(A.T @ (Ga - h[:, None] * E))
    Ztg = np.bincount(cols.ravel(), weights=(vals * g[:, None]).ravel(), minlength=q)
    for j in range(n_theta):
        R[:, K1 + p + j] += dlam[j] * Ztg
    deta = E + np.asarray(A @ (S @ R))
    dW = dh[:, None] * deta + Ha
    grad = -2.0 * (E.T @ g) + dW.T @ s
    grad[:K1] -= 2.0 * (np.bincount(y[iu], weights=dv["l_u"][iu], minlength=K1)
                        + np.bincount(y[il] - 1, weights=dv["l_l"][il], minlength=K1))
    # Λ itself depends on θ: 2 tr(M⁻¹ ΛᵀZᵀWZ ∂Λ/∂θ)
    for j in range(n_theta):
        zd = vals * dlam[j][cols]
        t = np.zeros(n)
        for k in range(m):
            for l in range(m):
                t += zd[:, k] * zl[:, l] * S[cols[:, k], cols[:, l]]
        grad[K1 + p + j] += 2.0 * float(h @ t)
    return grad[:K1], grad[K1:]
