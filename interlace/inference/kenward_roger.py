"""Kenward-Roger adjusted covariance of β̂ and denominator degrees of freedom (pbkrtest's method).

Kenward & Roger (1997) correct two things the Wald test with the plug-in
Φ = Cov(β̂) = (XᵀV̂⁻¹X)⁻¹ gets wrong in small samples: Φ underestimates the
variance of β̂ (the variance parameters are estimated), and the Wald statistic is
not F-distributed.  With V = Σ_m τ_m G_m linear in the covariance parameters τ
(per random-effects term the entries of its covariance matrix, then σ²; see
:mod:`interlace.inference.marginal`), pbkrtest computes

    P_m = −XᵀV⁻¹G_mV⁻¹X,   Q_mn = XᵀV⁻¹G_mV⁻¹G_nV⁻¹X,
    I_mn = tr(V⁻¹G_mV⁻¹G_n) − 2 tr(Φ Q_mn) + tr(Φ P_m Φ P_n),   W = 2 I⁻¹,
    Φ_A = Φ + 2 Φ [Σ_mn W_mn (Q_mn − P_m Φ P_n)] Φ,

(the second-derivative terms of V vanish for a linear parameterization, and
pbkrtest omits them), then for a contrast matrix L of rank q the moments of the
scaled Wald statistic F = (Lβ̂)ᵀ(LΦ_ALᵀ)⁻¹(Lβ̂)/q give an F(q, m) reference with
denominator df m and a scale factor λ (pbkrtest's ``Lb_ddf`` / ``KRmodcomp``).

Kenward-Roger needs a REML fit (pbkrtest refits ML fits by REML; lmerTest refuses
them).  With prior weights the residual part of V is σ²W⁻¹ here (pbkrtest uses
σ²I, which ignores the weights).

Cost: that of :class:`~interlace.inference.marginal.MarginalDerivatives` — O(q²)
for the traces, O(m² p²) for the rest; no n × n matrix is formed.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.stats as st

from ..errors import InterlaceError
from .marginal import MarginalDerivatives
from .satterthwaite import FTest, TTest, t_test

__all__ = ["KenwardRoger"]


def _div_zero(x: float, y: float, tol: float = 1e-14) -> float:
    return 1.0 if abs(x) < tol and abs(y) < tol else x / y


def _full_row_rank(L: np.ndarray) -> np.ndarray:
    """L itself, or an orthonormal basis of its row space if its rows are dependent."""
    r = np.linalg.matrix_rank(L)
    if r < L.shape[0]:
        Q, _ = np.linalg.qr(L.T)
        return Q[:, :r].T
    return L


class KenwardRoger:
    """Kenward-Roger adjustment for a fitted linear mixed model (REML).

    Parameters
    ----------
    result : CrossedLMEResult
    marginal : MarginalDerivatives, optional
        Reused if given.

    Attributes
    ----------
    vcov_adjusted : ndarray (p, p)
        Φ_A, pbkrtest's ``vcovAdj``.
    vcov_beta : ndarray (p, p)
        Φ, the unadjusted covariance (lme4's ``vcov``).
    W : ndarray (m, m)
        2 I⁻¹, the asymptotic covariance of the covariance parameters τ.
    """

    def __init__(self, result: Any, marginal: MarginalDerivatives | None = None) -> None:
        if not result.reml:
            raise InterlaceError("Kenward-Roger's method is only available for REML fits "
                                 "(as in lmerTest): refit with method='REML'")
        md = marginal if marginal is not None else MarginalDerivatives(result)
        Phi = md.Phi
        P, Q = md.P, md.Q
        IE2 = md.trace_PGPG()
        ev = np.linalg.eigvalsh(IE2)
        self.condition = float(np.min(np.abs(ev)))
        W = 2 * np.linalg.inv(IE2) if self.condition > 1e-10 else 2 * np.linalg.pinv(IE2)
        self.W = 0.5 * (W + W.T)
        PPhi = np.einsum("mij,jk->mik", P, Phi)
        PPhiP = np.einsum("mij,njk->mnik", PPhi, P)
        UU = np.einsum("mn,mnij->ij", self.W, Q - PPhiP)
        UU = 0.5 * (UU + UU.T)
        self.vcov_beta = Phi
        self.vcov_adjusted = Phi + 2 * Phi @ UU @ Phi
        self.P = P
        self.beta = np.asarray(result.params, float)
        self.sigma = float(np.sqrt(result.scale))

    # ------------------------------------------------------------ df
    def _moments(self, L: np.ndarray):
        Phi = self.vcov_beta
        Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
        TP = Theta @ Phi
        u = np.einsum("ij,mjk,kl->mil", TP, self.P, Phi)  # Θ Φ P_m Φ
        tr = np.einsum("mii->m", u)
        A1 = float(tr @ self.W @ tr)
        A2 = float(np.einsum("mn,mij,nji->", self.W, u, u))
        return A1, A2

    def _ddf_scale(self, L: np.ndarray, q: int):
        A1, A2 = self._moments(L)
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        V0 = 1 + c1 * B
        V1 = 1 - c2 * B
        V2 = 1 - c3 * B
        V0 = 0.0 if abs(V0) < 1e-10 else V0
        rho = _div_zero(1 - A2 / q, V1) ** 2 * V0 / (q * V2)
        df2 = 4 + (q + 2) / (q * rho - 1)
        scale = 1.0 if abs(df2 - 2) < 0.01 else df2 * (1 - A2 / q) / (df2 - 2)
        return float(df2), float(scale)

    def df(self, L: npt.ArrayLike) -> float:
        """KR denominator df of one contrast (pbkrtest's ``Lb_ddf``)."""
        L = np.atleast_2d(np.asarray(L, float))
        return self._ddf_scale(L, L.shape[0])[0]

    def contest1d(self, L: npt.ArrayLike, rhs: float = 0.0) -> TTest:
        """t test of ``Lᵀβ = rhs`` with the adjusted SE and KR df (lmerTest's ``contest1D``)."""
        return t_test(L, self.beta, self.vcov_adjusted, self.df, rhs)

    def contest_md(self, L: npt.ArrayLike, rhs: float | npt.ArrayLike = 0.0) -> FTest:
        """KR F test of ``L β = rhs`` (pbkrtest's ``KRmodcomp`` as lmerTest reports it).

        ``F`` is the scaled statistic λ·W/q (the one the p-value uses); ``mean_sq``
        is (W/q)·σ², with W the Wald statistic in the adjusted covariance.
        """
        L = np.atleast_2d(np.asarray(L, float))
        rhs = np.broadcast_to(np.asarray(rhs, float), (L.shape[0],))
        betaH = np.linalg.pinv(L) @ rhs if np.any(rhs != 0) else np.zeros_like(self.beta)
        L = _full_row_rank(L)
        q = L.shape[0]
        if q == 0:
            return FTest(np.nan, 0, np.nan, np.nan, np.nan)
        d = L @ (self.beta - betaH)
        Fu = float(d @ np.linalg.solve(L @ self.vcov_adjusted @ L.T, d)) / q
        ddf, scale = self._ddf_scale(L, q)
        F = scale * Fu
        return FTest(F, q, ddf, float(st.f.sf(F, q, ddf)), Fu * self.sigma ** 2)
