"""Satterthwaite denominator degrees of freedom for fixed-effect contrasts (lmerTest's method).

lmerTest (Kuznetsova, Brockhoff & Christensen 2017) works with the variance
parameters φ = (θ, σ): θ the relative covariance parameters, σ the residual
standard deviation.  At the estimates it takes

* A = 2 H⁻¹, the asymptotic covariance of φ̂, from the Hessian H of the
  criterion lmerTest calls ``devfun_vp`` (the REML criterion for REML fits, the
  deviance for ML fits, with β profiled out and σ free); H is inverted on its
  eigenvalues above 1e-8 (a Moore-Penrose inverse, as lmerTest);
* the Jacobian J_a = ∂ Cov(β̂)/∂φ_a of Cov(β̂) = (XᵀV⁻¹X)⁻¹.

For a contrast l the variance of lᵀβ̂ is v = lᵀ Cov(β̂) l and its degrees of freedom

    ν = 2 v² / (gᵀ A g),      g_a = lᵀ J_a l.

A contrast matrix L with several rows is tested, as lmerTest's ``contestMD``, by
rotating to the eigenvectors of L Cov(β̂) Lᵀ: the rotated contrasts are
independent t statistics t_m with ν_m degrees of freedom, F = Σ t_m² / q, and the
denominator df of F is 2E/(E − q) with E = Σ ν_m/(ν_m − 2) (2 if any ν_m ≤ 2).

H and J are computed in one of two ways (``hessian``):

* ``"analytic"``: exactly, from the derivatives of V in the covariance parameters
  τ (:mod:`interlace.inference.marginal`) and the chain rule τ(φ).  Cost is that
  of :class:`~interlace.inference.marginal.MarginalDerivatives`, dominated by
  O(q²) work for the traces (q random effects).
* ``"numeric"``: Richardson-extrapolated central differences of the criterion's
  pieces (log-determinants and penalized RSS, each a PLS factorization at a
  perturbed θ) and of (RX RXᵀ)⁻¹, at steps h and h/2 (relative 1e-2); the
  σ-derivatives are exact.  Agrees with the analytic df to about 1e-7.  Cost:
  about 4 nθ² PLS factorizations, independent of q otherwise.
* ``"auto"`` (default): analytic up to :data:`ANALYTIC_MAX_Q` random effects.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.stats as st

from ..errors import ConvergenceWarning, InterlaceError, warn_user
from .marginal import MarginalDerivatives, theta_to_tau_jacobians

__all__ = ["ANALYTIC_MAX_Q", "FTest", "Satterthwaite", "TTest", "fstat_ddf"]

#: ``hessian="auto"`` uses the analytic derivatives up to this many random effects.
ANALYTIC_MAX_Q = 5000
#: Eigenvalues of the Hessian at or below this are dropped from its inverse (lmerTest's ``tol``).
EIGEN_TOL = 1e-8


def fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """Denominator df of an F statistic that is the mean of q independent t² with ``nu`` df."""
    nu = np.asarray(nu, float)
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - nu.size)


@dataclass
class TTest:
    """One contrast: estimate, standard error, df, t and two-sided p-value."""

    estimate: float
    se: float
    df: float
    t: float
    p: float


@dataclass
class FTest:
    """A multi-row contrast: F value, numerator and denominator df, p-value; ``mean_sq = F σ²``."""

    F: float
    ndf: int
    ddf: float
    p: float
    mean_sq: float

    @property
    def sum_sq(self) -> float:
        return self.mean_sq * self.ndf


def t_test(L: npt.ArrayLike, beta: np.ndarray, vcov: np.ndarray, ddf: float | Callable[[np.ndarray], float],
           rhs: float = 0.0) -> TTest:
    """t test of ``Lᵀβ = rhs`` with covariance ``vcov`` and ``ddf`` degrees of freedom; ``ddf``
    may be a function of L, called only when needed (normal reference for ``np.inf``)."""
    L = np.asarray(L, float).ravel()
    est = float(L @ beta)
    se = float(np.sqrt(L @ vcov @ L))
    df = float(ddf(L)) if callable(ddf) else float(ddf)
    t = (est - rhs) / se
    p = 2 * st.norm.sf(abs(t)) if np.isinf(df) else 2 * st.t.sf(abs(t), df)
    return TTest(est, se, df, t, float(p))


class Satterthwaite:
    """lmerTest's Satterthwaite machinery for a fitted linear mixed model.

    Parameters
    ----------
    result : CrossedLMEResult
    hessian : {"auto", "analytic", "numeric"}
    marginal : MarginalDerivatives, optional
        Reused if given (the Kenward-Roger computation builds the same object).

    Attributes
    ----------
    hessian : ndarray (nθ + 1, nθ + 1)
        Hessian of lmerTest's ``devfun_vp`` in (θ, σ).
    vcov_varpar : ndarray
        2 H⁻¹ (lmerTest's ``vcov_varpar``).
    jacobian : ndarray (nθ + 1, p, p)
        ∂ Cov(β̂)/∂(θ, σ) (lmerTest's ``Jac_list``).
    vcov_beta : ndarray (p, p)
    method : str
        ``"analytic"`` or ``"numeric"``.
    """

    def __init__(self, result: Any, hessian: str = "auto", marginal: MarginalDerivatives | None = None) -> None:
        if hessian not in ("auto", "analytic", "numeric"):
            raise InterlaceError(f"hessian must be 'auto', 'analytic' or 'numeric', got {hessian!r}")
        re = result.model.random_effects_structure
        if hessian == "auto":
            hessian = "analytic" if (marginal is not None or re.q <= ANALYTIC_MAX_Q) else "numeric"
        self.method = hessian
        self.sigma = float(np.sqrt(result.scale))
        self.beta = np.asarray(result.params, float)
        self.vcov_beta = np.asarray(result.cov_params(), float)
        if hessian == "analytic":
            md = marginal if marginal is not None else MarginalDerivatives(result)
            g, H_tau = md.criterion_derivatives()
            _, J, K = theta_to_tau_jacobians(re, np.asarray(result.theta, float), self.sigma)
            self.hessian = J.T @ H_tau @ J + np.einsum("m,mab->ab", g, K)
            self.jacobian = np.einsum("ma,mij->aij", J, md.vcov_beta_derivatives())
        else:
            self.hessian, self.jacobian = _numeric_derivatives(result)
        self.hessian = 0.5 * (self.hessian + self.hessian.T)
        evals, evecs = np.linalg.eigh(self.hessian)
        self.messages: list[str] = []
        neg = evals < -EIGEN_TOL
        zero = np.abs(evals) <= EIGEN_TOL
        if neg.any():
            self.messages.append(f"Model failed to converge with {int(neg.sum())} negative eigenvalue"
                                 f"{'s' if neg.sum() > 1 else ''} of the Hessian of the variance parameters: "
                                 + " ".join(f"{v:.1e}" for v in evals[neg]))
        if zero.any():
            self.messages.append(f"Model may not have converged with {int(zero.sum())} eigenvalue"
                                 f"{'s' if zero.sum() > 1 else ''} of the Hessian of the variance "
                                 "parameters close to zero: " + " ".join(f"{v:.1e}" for v in evals[zero]))
        for msg in self.messages:
            warn_user(msg, ConvergenceWarning)
        pos = evals > EIGEN_TOL
        V = evecs[:, pos]
        self.vcov_varpar = 2 * (V / evals[pos]) @ V.T

    # ------------------------------------------------------------ tests
    def df(self, L: npt.ArrayLike) -> float:
        """Satterthwaite df of one contrast ``L`` (a vector of length p)."""
        L = np.asarray(L, float).ravel()
        v = float(L @ self.vcov_beta @ L)
        g = np.einsum("i,aij,j->a", L, self.jacobian, L)
        return 2 * v * v / float(g @ self.vcov_varpar @ g)

    def contest1d(self, L: npt.ArrayLike, rhs: float = 0.0) -> TTest:
        """t test of ``Lᵀβ = rhs`` (lmerTest's ``contest1D``)."""
        return t_test(L, self.beta, self.vcov_beta, self.df, rhs)

    def contest_md(self, L: npt.ArrayLike, rhs: float | npt.ArrayLike = 0.0,
                   eps: float = np.sqrt(np.finfo(float).eps)) -> FTest:
        """F test of ``L β = rhs`` (lmerTest's ``contestMD``)."""
        L = np.atleast_2d(np.asarray(L, float))
        rhs = np.broadcast_to(np.asarray(rhs, float), (L.shape[0],))
        if L.shape[0] == 1:
            t = self.contest1d(L[0], float(rhs[0]))
            return FTest(t.t ** 2, 1, t.df, _fp(t.t ** 2, 1, t.df), t.t ** 2 * self.sigma ** 2)
        beta = self.beta
        if np.any(rhs != 0):
            beta = beta - np.linalg.pinv(L) @ rhs
        d, P = np.linalg.eigh(L @ self.vcov_beta @ L.T)
        d, P = d[::-1], P[:, ::-1]
        tol = max(eps * d[0], 0.0)
        q = int(np.sum(d > tol))
        if q == 0:
            return FTest(np.nan, 0, np.nan, np.nan, np.nan)
        PtL = (P.T @ L)[:q]
        if q == 1:
            t = self.contest1d(PtL[0], 0.0)
            tv = float(PtL[0] @ beta) / t.se
            return FTest(tv ** 2, 1, t.df, _fp(tv ** 2, 1, t.df), tv ** 2 * self.sigma ** 2)
        t2 = (PtL @ beta) ** 2 / d[:q]
        F = float(np.sum(t2) / q)
        nu = np.array([2 * d[m] ** 2 / _qform(np.einsum("i,aij,j->a", PtL[m], self.jacobian, PtL[m]),
                                              self.vcov_varpar) for m in range(q)])
        ddf = fstat_ddf(nu)
        return FTest(F, q, ddf, _fp(F, q, ddf), F * self.sigma ** 2)


def _qform(x, A) -> float:
    return float(x @ A @ x)


def _fp(F, ndf, ddf) -> float:
    return float(st.f.sf(F, ndf, ddf))


# ---------------------------------------------------------------------------- numeric derivatives
def _numeric_derivatives(result, rel_step: float = 1e-2, levels: int = 2):
    """Hessian of ``devfun_vp`` in (θ, σ) and the Jacobian of Cov(β̂), by extrapolated differences.

    ``devfun_vp(θ, σ) = a(θ) + b(θ)/σ² + c log(2πσ²)`` with a = log|L_Z|² (+ log|R_X|² for
    REML), b the penalized weighted RSS and c = n (− p for REML); Cov(β̂) = σ² C(θ) with
    C = (R_X R_Xᵀ)⁻¹.  Only a, b and C are differenced (in θ); σ enters exactly.
    """
    model = result.model
    dev = model.deviance_function()
    pls = dev.pls
    reml = bool(result.reml)
    theta0 = np.asarray(result.theta, float)
    nth = theta0.size
    p = pls.p

    def pieces(theta):
        f = pls.factor(theta)
        RX = pls.RX()
        Ci = np.linalg.inv(RX)
        C = Ci.T @ Ci
        a = f.ldL2 + (f.ldRX2 if reml else 0.0)
        return np.concatenate([[a, f.pwrss], C.ravel()])

    base = pieces(theta0)
    h0 = rel_step * np.maximum(np.abs(theta0), 0.1)
    grads, hesss = [], []
    for lev in range(levels):
        h = h0 / 2 ** lev
        plus = [pieces(theta0 + h[i] * np.eye(nth)[i]) for i in range(nth)]
        minus = [pieces(theta0 - h[i] * np.eye(nth)[i]) for i in range(nth)]
        G = np.array([(plus[i] - minus[i]) / (2 * h[i]) for i in range(nth)])  # nth × k
        Hm = np.zeros((nth, nth, 2))
        for i in range(nth):
            Hm[i, i] = (plus[i][:2] - 2 * base[:2] + minus[i][:2]) / h[i] ** 2
            for j in range(i + 1, nth):
                ei, ej = h[i] * np.eye(nth)[i], h[j] * np.eye(nth)[j]
                v = (pieces(theta0 + ei + ej)[:2] - pieces(theta0 + ei - ej)[:2]
                     - pieces(theta0 - ei + ej)[:2] + pieces(theta0 - ei - ej)[:2]) / (4 * h[i] * h[j])
                Hm[i, j] = Hm[j, i] = v
        grads.append(G)
        hesss.append(Hm)
    G = _richardson(grads)
    Hm = _richardson(hesss)
    pls.factor(theta0)  # leave the engine at the estimates

    sigma = float(np.sqrt(result.scale))
    b = base[1]
    c = dev.n - p if reml else dev.n
    H = np.zeros((nth + 1, nth + 1))
    H[:nth, :nth] = Hm[:, :, 0] + Hm[:, :, 1] / sigma ** 2
    H[:nth, nth] = H[nth, :nth] = -2 * G[:, 1] / sigma ** 3
    H[nth, nth] = 6 * b / sigma ** 4 - 2 * c / sigma ** 2
    jac = np.empty((nth + 1, p, p))
    jac[:nth] = sigma ** 2 * G[:, 2:].reshape(nth, p, p)
    jac[nth] = 2 * sigma * base[2:].reshape(p, p)
    return H, jac


def _richardson(estimates: list[np.ndarray]) -> np.ndarray:
    """Richardson extrapolation of central differences at steps h, h/2, h/4, … (error O(h²) each)."""
    table = [np.asarray(e, float) for e in estimates]
    k = 1
    while len(table) > 1:
        f = 4.0 ** k
        table = [(f * table[i + 1] - table[i]) / (f - 1) for i in range(len(table) - 1)]
        k += 1
    return table[0]
