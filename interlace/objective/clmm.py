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
import scipy.sparse as sp

from ..linalg.crossprod import row_pattern, row_structure
from ..response.ordinal import OrdinalResponse
from .agq import agq_deviance
from .pirls import PIRLS, PIRLSState, RowSource

__all__ = ["CLMMDeviance", "GRADIENT_MAX_Q", "GRADIENT_MAX_Q_SPARSE", "GradientRows", "laplace_gradient"]

#: :meth:`CLMMDeviance.value_and_gradient` forms (ΛᵀZᵀWZΛ + I)⁻¹ densely: up to this many random effects
#: with the blocked engine (at 1,500 a gradient costs ~5 evaluations, and saves ~6× as many) ...
GRADIENT_MAX_Q = 1500
#: ... and this many with CHOLMOD, whose solves with a dense right-hand side cost more (at 1,000 random
#: effects a gradient costs ~12 evaluations)
GRADIENT_MAX_Q_SPARSE = 500
#: :meth:`CLMMDeviance.value_and_gradient` starts PIRLS at the mode predicted from the last gradient (û + dû/dx ·
#: Δx) when no parameter moved by more than this; else at the last mode
TANGENT_STEP = 0.25
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
        self._rows: GradientRows | None = None
        self._tangent: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

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
        """Whether :meth:`value_and_gradient` is available: the Laplace objective, a log-concave link, rows
        in memory, and at most :data:`GRADIENT_MAX_Q` random effects (:data:`GRADIENT_MAX_Q_SPARSE` with
        CHOLMOD; the gradient forms (ΛᵀZᵀWZΛ + I)⁻¹ densely)."""
        resp = cast(OrdinalResponse, self.pirls.resp)
        limit = GRADIENT_MAX_Q if self.pirls.engine == "blocked" else GRADIENT_MAX_Q_SPARSE
        return (self.nAGQ <= 1 and resp.link.name in LOG_CONCAVE and isinstance(self.pirls.source, RowSource)
                and 0 < self.pirls.re.q <= limit)

    def value_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The Laplace −2 log L at ``x`` and its exact gradient (see :func:`laplace_gradient`)."""
        self.n_evals += 1
        alpha, beta, theta = self.split(x)
        if np.any(np.diff(alpha) <= 0):
            return np.inf, np.full(np.size(x), np.nan)
        resp = cast(OrdinalResponse, self.pirls.resp.with_params(alpha))
        st = None
        if self._tangent is not None:  # start at the mode predicted to first order from the last gradient's point
            x_last, u_last, du_dx = self._tangent
            step = np.asarray(x, float) - x_last
            if np.max(np.abs(step), initial=0.0) <= TANGENT_STEP:
                st = self.pirls.run(theta, beta, u0=u_last + du_dx @ step, resp=resp)
                if not (st.converged and np.isfinite(st.ldL2)):
                    st = None
        if st is None:
            st = self.pirls.run(theta, beta, resp=resp)
        f = self.pirls.laplace(st, resp)
        if not np.isfinite(f):
            return np.inf, np.full(np.size(x), np.nan)
        if self._rows is None:
            self._rows = GradientRows(cast(RowSource, self.pirls.source), resp.y, resp.alpha.size)
        g_alpha, g_rest, du = laplace_gradient(resp, st, theta, self._rows)
        K1 = g_alpha.size
        self._tangent = (np.array(x, float), st.u.copy(), np.hstack([du[:, :K1] @ self.J, du[:, K1:]]))
        return f, np.concatenate([self.J.T @ g_alpha, g_rest])

    def solution(self, x: np.ndarray) -> PIRLSState:
        """The conditional modes at ``x``."""
        alpha, beta, theta = self.split(x)
        return self.pirls.run(theta, beta, resp=self.pirls.resp.with_params(alpha))


class GradientRows:
    """What :func:`laplace_gradient` reuses at every evaluation: Z's row structure, the pattern of ZΛ,
    the positions of each row's pair of columns in (ΛᵀZᵀWZΛ + I)⁻¹, ∂Λ/∂θ per row, and where each
    row's thresholds sit.

    Parameters
    ----------
    src : RowSource
    y : ndarray of int
        Category index per row.
    n_alpha : int
        Number of thresholds (K − 1).
    """

    def __init__(self, src: RowSource, y: np.ndarray, n_alpha: int) -> None:
        re = src.re
        self.src = src
        self.cols, self.vals = row_structure(re)
        n, m = self.cols.shape
        q = re.q
        self.n, self.m, self.q, self.K1 = n, m, q, n_alpha
        self.pairs = [(a, b, self.cols[:, a] * q + self.cols[:, b]) for a in range(m) for b in range(m)]
        self.A = row_pattern(self.cols, q)
        self.flat_cols = self.cols.ravel()
        n_theta = re.n_theta
        # ∂Λ/∂θ_j is constant (Λ is linear in θ): its diagonal at each row's columns
        self.dlam = [re.Lambda(np.eye(n_theta)[j]).diagonal() for j in range(n_theta)]
        self.dlam_rows = [vals_j for vals_j in (self.vals * d[self.cols] for d in self.dlam)]
        self.iu = np.flatnonzero(y < n_alpha)
        self.il = np.flatnonzero(y > 0)
        self.yu, self.yl = y[self.iu], y[self.il] - 1
        # flat positions of (row, its upper / lower threshold) in an n × (K − 1 + p + n_θ) array
        width = n_alpha + src.p + n_theta
        self.flat_u, self.flat_l = self.iu * width + self.yu, self.il * width + self.yl

    def rows_of_ZLambda(self, theta: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
        """The nonzeros of ZΛ per row (n × m) and ZΛ as a CSR matrix."""
        lam = self.src.re.Lambda(theta).diagonal()
        zl = self.vals * lam[self.cols]
        A = self.A.copy()
        A.data = zl.ravel()
        return zl, A


def laplace_gradient(resp: OrdinalResponse, st: PIRLSState, theta: np.ndarray, rows: GradientRows
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient of the Laplace −2 log L = −2ℓ(û) + ‖û‖² + log|M|, M = ΛᵀZᵀWZΛ + I, at the mode ``st``.

    With respect to the thresholds α and to (β, θ).  −2ℓ + ‖u‖² is stationary in u at the
    mode, so it contributes its partial derivatives at fixed u; log|M| contributes
    tr(M⁻¹ dM/dφ), where W changes with φ directly (α), through η at fixed u, and through
    the mode, dû/dφ = M⁻¹ (∂Λᵀ/∂φ Zᵀg + ΛᵀZᵀ(∂g/∂φ)|_u) (implicit differentiation of
    û = ΛᵀZᵀg).  The engine must be factored at the mode (as :meth:`PIRLS.run` leaves it);
    scalar random-effects terms only.

    Returns
    -------
    (ndarray, ndarray, ndarray)
        The derivatives with respect to α (K − 1) and to (β, θ), and those of the mode,
        dû/d(α, β, θ) (q × (K − 1 + p + n_θ)).
    """
    src = rows.src
    n, q, p, K1 = rows.n, rows.q, src.p, rows.K1
    u = st.u
    assert st.eta is not None  # rows in memory (CLMMDeviance.has_gradient)
    dv = resp.eta_derivatives(st.eta)
    g, h, dh = dv["g"], dv["h"], dv["dh"]
    n_theta = theta.size
    npar = K1 + p + n_theta
    iu, il = rows.iu, rows.il
    l_alpha = (np.bincount(rows.yu, weights=dv["l_u"][iu], minlength=K1)
               + np.bincount(rows.yl, weights=dv["l_l"][il], minlength=K1))
    if not np.any(theta):  # Λ = 0 (the clm start): û = 0, M = I, and −2 log L is even in θ
        du = np.zeros((q, npar))
        Ztg = np.bincount(rows.flat_cols, weights=(rows.vals * g[:, None]).ravel(), minlength=q)
        for j in range(n_theta):
            du[:, K1 + p + j] = rows.dlam[j] * Ztg
        return -2.0 * l_alpha, np.concatenate([-2.0 * (src.X.T @ g), np.zeros(n_theta)]), du
    zl, A = rows.rows_of_ZLambda(theta)
    S = src.engine(False).solve_M(np.eye(q))                                  # M⁻¹
    Sf = (0.5 * (S + S.T)).ravel()
    Spair = {(a, b): np.take(Sf, flat) for a, b, flat in rows.pairs}
    s = np.zeros(n)                                                           # diag(ZΛ M⁻¹ ΛᵀZᵀ)
    for (a, b), Sab in Spair.items():
        s += zl[:, a] * zl[:, b] * Sab
    # ∂η/∂φ at fixed u for (β, θ) (for α it is 0), and ∂g/∂α at fixed η (one row per threshold side)
    Eb = np.empty((n, p + n_theta))
    Eb[:, :p] = src.X
    ucols = u[rows.cols]
    for j, dz in enumerate(rows.dlam_rows):
        Eb[:, p + j] = np.einsum("ij,ij->i", dz, ucols)
    V = np.zeros((n, npar))
    V.ravel()[rows.flat_u] = dv["g_u"][iu]
    V.ravel()[rows.flat_l] = dv["g_l"][il]
    np.multiply(-h[:, None], Eb, out=V[:, K1:])
    # the mode's derivatives
    R = np.asarray(A.T @ V)
    Ztg = np.bincount(rows.flat_cols, weights=(rows.vals * g[:, None]).ravel(), minlength=q)
    for j in range(n_theta):
        R[:, K1 + p + j] += rows.dlam[j] * Ztg
    du = S @ R
    deta = np.asarray(A @ du)
    deta[:, K1:] += Eb
    grad = deta.T @ (dh * s)
    grad[K1:] -= 2.0 * (Eb.T @ g)
    grad[:K1] += (np.bincount(rows.yu, weights=dv["h_u"][iu] * s[iu], minlength=K1)
                  + np.bincount(rows.yl, weights=dv["h_l"][il] * s[il], minlength=K1) - 2.0 * l_alpha)
    # Λ itself depends on θ: 2 tr(M⁻¹ ΛᵀZᵀWZ ∂Λ/∂θ)
    for j, dz in enumerate(rows.dlam_rows):
        t = np.zeros(n)
        for (a, b), Sab in Spair.items():
            t += dz[:, a] * zl[:, b] * Sab
        grad[K1 + p + j] += 2.0 * float(h @ t)
    return grad[:K1], grad[K1:], du
