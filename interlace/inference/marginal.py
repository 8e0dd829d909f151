"""The marginal covariance of a linear mixed model and its derivatives in the variance parameters.

For a fitted LMM the marginal covariance of y is

    V = Z Σ Zᵀ + σ² W⁻¹,   Σ = blockdiag over terms k of (I_{levels_k} ⊗ Σ_k),

with Σ_k = σ² T_k T_kᵀ (T_k the term's template, linear in θ) and W the prior
weights.  V is *linear* in the covariance parameters τ: per term the entries of
Σ_k along a basis of its covariance family (for an unstructured term the lower
triangle of Σ_k, pbkrtest's parameters; one variance for a scaled identity), then
σ².  So V = Σ_m τ_m G_m with fixed matrices

    G_m = Z_k (I ⊗ E_m) Z_kᵀ      (E_m a symmetric p_k × p_k pattern)
    G_res = W⁻¹.

:class:`MarginalDerivatives` computes, at the estimates, every quantity the
Satterthwaite and Kenward-Roger methods need from these derivatives:

* ``P[m] = −XᵀV⁻¹G_mV⁻¹X`` and ``Q[m, n] = XᵀV⁻¹G_mV⁻¹G_nV⁻¹X`` (p × p);
* ``Ktrace[m, n] = tr(V⁻¹G_mV⁻¹G_n)`` and ``trVG[m] = tr(V⁻¹G_m)``;
* the response terms ``r̃ᵀG_m r̃`` and ``r̃ᵀG_m P G_n r̃`` with r̃ = V⁻¹(y − Xβ̂)
  and P = V⁻¹ − V⁻¹XΦXᵀV⁻¹, Φ = (XᵀV⁻¹X)⁻¹;
* from them the gradient and Hessian of the REML criterion or the ML deviance in τ
  (:meth:`MarginalDerivatives.criterion_derivatives`).

Nothing n × n is formed.  V⁻¹ is applied through the PLS factor (Woodbury):
V⁻¹ = σ⁻²(W − WZΛ M⁻¹ ΛᵀZᵀW) with M = ΛᵀZᵀWZΛ + I, so every product lives in
the q-dimensional random-effects space.  Costs (n rows, q random effects, p fixed
effects, m parameters):

* ``P``, ``Q``, response terms: O(m · (nnz(Z) + solve_M) · p) and O(n p) memory;
* the traces need C = ZᵀV⁻¹Z, formed column block by column block (whole levels
  of one term, about ``chunk`` columns at a time) and never stored whole:
  q solves with M (2q right-hand sides in all) and O(q²·p²) flops, O(q · chunk)
  memory.  This O(q²) part dominates for large q (a few seconds at q ≈ 5000).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ..design.covariance import BlockDiagonal, CovarianceStructure, ScaledIdentity, Unstructured
from ..errors import InterlaceError

if TYPE_CHECKING:
    from ..design.terms import RandomEffects

__all__ = ["MarginalDerivatives", "covariance_basis", "theta_to_tau_jacobians"]


def covariance_basis(cov: CovarianceStructure) -> list[np.ndarray]:
    """Symmetric p × p matrices E_m spanning a term's covariance family: Σ = Σ_m τ_m E_m.

    Unstructured: one matrix per lower-triangle entry (``E_ii``, ``E_ij + E_ji``),
    in the order of θ (pbkrtest's order of ``VarCorr`` entries); scaled identity:
    the identity; block diagonal: each block's basis, embedded.
    """
    p = cov.p
    if isinstance(cov, Unstructured):
        out = []
        for r, c in zip(cov.rows, cov.cols):
            E = np.zeros((p, p))
            E[r, c] = E[c, r] = 1.0
            out.append(E)
        return out
    if isinstance(cov, ScaledIdentity):
        return [np.eye(p)]
    if isinstance(cov, BlockDiagonal):
        out = []
        for k, b in enumerate(cov.blocks):
            sl = cov.col_slice(k)
            for Eb in covariance_basis(b):
                E = np.zeros((p, p))
                E[sl, sl] = Eb
                out.append(E)
        return out
    raise InterlaceError(f"no linear covariance parameterization known for {type(cov).__name__}")


def _template_derivatives(cov: CovarianceStructure) -> list[np.ndarray]:
    """∂T/∂θ_a for each of the term's θ (T is linear in θ)."""
    out = []
    for a in range(cov.n_theta):
        D = np.zeros((cov.p, cov.p))
        sel = cov.theta_index == a
        D[cov.rows[sel], cov.cols[sel]] = 1.0
        out.append(D)
    return out


def theta_to_tau_jacobians(re: RandomEffects, theta: np.ndarray, sigma: float
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """τ, ∂τ/∂φ and ∂²τ/∂φ² for φ = (θ, σ) (lmerTest's variance parameters).

    Returns
    -------
    tau : ndarray (m,)
    J : ndarray (m, nθ + 1)
    K : ndarray (m, nθ + 1, nθ + 1)
    """
    nth = re.n_theta
    nphi = nth + 1
    taus, Js, Ks = [], [], []
    s2 = sigma * sigma
    for k, t in enumerate(re.terms):
        basis = covariance_basis(t.cov)
        B = np.column_stack([E.ravel() for E in basis])
        Bp = np.linalg.pinv(B)  # vec(Σ) -> τ (exact for Σ in the family)
        th = theta[re.theta_slice(k)]
        T = t.cov.template(th)
        S = T @ T.T
        dT = _template_derivatives(t.cov)
        off = int(re.theta_offsets[k])
        m = len(basis)
        Jk = np.zeros((m, nphi))
        Kk = np.zeros((m, nphi, nphi))
        dS = [D @ T.T + T @ D.T for D in dT]
        for a, dSa in enumerate(dS):
            Jk[:, off + a] = Bp @ (s2 * dSa).ravel()
            Kk[:, off + a, nth] = Kk[:, nth, off + a] = Bp @ (2 * sigma * dSa).ravel()
            for b in range(a, len(dT)):
                d2 = dT[a] @ dT[b].T + dT[b] @ dT[a].T
                Kk[:, off + a, off + b] = Kk[:, off + b, off + a] = Bp @ (s2 * d2).ravel()
        Jk[:, nth] = Bp @ (2 * sigma * S).ravel()
        Kk[:, nth, nth] = Bp @ (2 * S).ravel()
        taus.append(Bp @ (s2 * S).ravel())
        Js.append(Jk)
        Ks.append(Kk)
    Jr = np.zeros((1, nphi))
    Jr[0, nth] = 2 * sigma
    Kr = np.zeros((1, nphi, nphi))
    Kr[0, nth, nth] = 2.0
    return (np.concatenate(taus + [np.array([s2])]), np.vstack(Js + [Jr]), np.concatenate(Ks + [Kr]))


class MarginalDerivatives:
    """Derivatives of V in τ at the estimates of a fitted LMM (see the module docstring).

    Parameters
    ----------
    result : CrossedLMEResult
    chunk : int
        Columns of ZᵀV⁻¹Z formed at a time for the traces.

    Attributes
    ----------
    params : list of tuple
        ``(term index, E)`` per random-effects parameter, then ``(None, None)`` for σ².
    P : ndarray (m, p, p)
    Q : ndarray (m, m, p, p)
    Phi : ndarray (p, p)
        (XᵀV⁻¹X)⁻¹, lme4's ``vcov``.
    """

    def __init__(self, result: Any, chunk: int = 256) -> None:
        model = result.model
        re = model.random_effects_structure
        self.re = re
        self.reml = bool(result.reml)
        theta = np.asarray(result.theta, float)
        self.sigma2 = float(result.scale)
        X = np.asarray(model.exog, float)
        n, p = X.shape
        self.n, self.p, self.q = n, p, re.q
        y = np.asarray(model.endog, float)
        if model.offset is not None:
            y = y - model.offset
        w = np.ones(n) if model.weights is None else np.asarray(model.weights, float)
        if np.any(w <= 0):
            raise InterlaceError("degrees of freedom need positive prior weights")
        self.w = w
        pls = model.deviance_function().pls
        pls.factor(theta)
        self._pls = pls
        Z = re.Z().tocsc()
        Lam = re.Lambda(theta).tocsc()
        self._Z, self._Lam = Z, Lam
        S = (Z.T @ sp.diags(w) @ Z).tocsc()
        LtS = (Lam.T @ S).tocsc()
        self._S, self._LtS, self._SL = S, LtS, LtS.T.tocsc()

        beta = np.asarray(result.params, float)
        self.Phi = np.asarray(result.cov_params(), float)
        VX = self.vinv(X)
        rt = self.vinv((y - X @ beta)[:, None])
        U = np.hstack([VX, rt])  # n × (p+1)
        Ub = np.asarray(Z.T @ U)  # q × (p+1)

        UWU = U.T @ (U / w[:, None])
        self._q_space_products(Ub, UWU, pls, Lam, chunk)

    def _q_space_products(self, Ub: np.ndarray, UWU: np.ndarray, pls, Lam, chunk: int) -> None:
        """From Ub = Zᵀ V⁻¹ U (q × (p+1), U = [V⁻¹X, V⁻¹r̃]) and UᵀW⁻¹U on: every product
        the df methods need (P, Q, r̃ᵀG r̃, r̃ᵀ G P G r̃, the traces), in q-space only, so the
        row-free chunked results (:mod:`interlace.scale`) share it."""
        re, p, s2 = self.re, self.p, self.sigma2
        # parameters: per term its covariance basis, then σ² (G = W⁻¹)
        self.params: list[tuple[int | None, np.ndarray | None]] = []
        for k, t in enumerate(re.terms):
            for E in covariance_basis(t.cov):
                self.params.append((k, E))
        self.params.append((None, None))
        m = len(self.params)
        self.m = m

        # Ŷ_m = (I ⊗ E_m) Zᵀ U restricted to term k (q-space form of G_m U = Z Ŷ_m)
        Yhat = []
        for k, E in self.params[:-1]:
            Yk = np.zeros_like(Ub)
            a, b = re.col_offsets[k], re.col_offsets[k + 1]
            t = re.terms[k]
            blk = Ub[a:b].reshape(t.nlevels, t.p, p + 1)
            Yk[a:b] = np.einsum("ij,ajc->aic", E, blk).reshape(b - a, p + 1)
            Yhat.append(Yk)
        UF = np.empty((m, p + 1, p + 1))
        for i, Yk in enumerate(Yhat):
            UF[i] = Ub.T @ Yk
        UF[-1] = UWU
        # F_mᵀ V⁻¹ F_n
        CY = [self.cmul(Yk) for Yk in Yhat]
        Xi = (Ub - self._SL @ pls.solve_M(Lam.T @ Ub)) / s2  # Zᵀ V⁻¹ W⁻¹ U
        LUb = Lam.T @ Ub
        FVF = np.empty((m, m, p + 1, p + 1))
        for i, Yi in enumerate(Yhat):
            for j in range(i, len(Yhat)):
                FVF[i, j] = Yi.T @ CY[j]
                FVF[j, i] = FVF[i, j].T
            FVF[i, -1] = Yi.T @ Xi
            FVF[-1, i] = FVF[i, -1].T
        FVF[-1, -1] = (UWU - LUb.T @ pls.solve_M(LUb)) / s2

        self.P = -UF[:, :p, :p]
        self.Q = FVF[:, :, :p, :p]
        self.rGr = UF[:, p, p].copy()  # r̃ᵀ G_m r̃
        a_vec = UF[:, :p, p]  # Xᵀ V⁻¹ G_m r̃
        self.rGPGr = FVF[:, :, p, p] - a_vec @ self.Phi @ a_vec.T  # r̃ᵀ G_m P G_n r̃
        self.trVG, self.Ktrace = self._traces(chunk)

    # ------------------------------------------------------------ operators
    def vinv(self, Y: np.ndarray) -> np.ndarray:
        """V⁻¹ Y for an n × k array (Woodbury through the PLS factor)."""
        WY = self.w[:, None] * Y
        s = self._pls.solve_M(np.asarray(self._Lam.T @ (self._Z.T @ WY)))
        return (WY - self.w[:, None] * np.asarray(self._Z @ (self._Lam @ s))) / self.sigma2

    def cmul(self, Yq: np.ndarray) -> np.ndarray:
        """(ZᵀV⁻¹Z) Y for a q × k array."""
        SY = np.asarray(self._S @ Yq)
        return (SY - self._SL @ self._pls.solve_M(np.asarray(self._LtS @ Yq))) / self.sigma2

    # ------------------------------------------------------------ traces
    def _traces(self, chunk: int):
        re, s2, pls = self.re, self.sigma2, self._pls
        K4 = {}  # (k, m) -> Σ_ab C_ab ⊗ C_ab, shape (p_k, p_m, p_k, p_m)
        diagC = [np.zeros((t.nlevels, t.p, t.p)) for t in re.terms]
        diagD = [np.zeros((t.nlevels, t.p, t.p)) for t in re.terms]
        trMinv = 0.0
        trMinv2 = 0.0
        q = self.q
        for m_, tl in enumerate(re.terms):
            off_l = int(re.col_offsets[m_])
            per = max(1, chunk // tl.p)
            for a0 in range(0, tl.nlevels, per):
                a1 = min(tl.nlevels, a0 + per)
                J = np.arange(off_l + a0 * tl.p, off_l + a1 * tl.p)
                nJ = J.size
                TJ = self._LtS[:, J].toarray()
                IJ = np.zeros((q, nJ))
                IJ[J, np.arange(nJ)] = 1.0
                sol = pls.solve_M(np.hstack([TJ, IJ]))
                RJ, NJ = sol[:, :nJ], sol[:, nJ:]
                trMinv += float(np.trace(NJ[J]))
                trMinv2 += float(np.sum(NJ * NJ))
                CJ = (self._S[:, J].toarray() - np.asarray(self._SL @ RJ)) / s2
                nlev = a1 - a0
                for k, tk in enumerate(re.terms):
                    ra, rb = re.col_offsets[k], re.col_offsets[k + 1]
                    blk = CJ[ra:rb].reshape(tk.nlevels, tk.p, nlev, tl.p)
                    contrib = np.einsum("aibj,aubv->ijuv", blk, blk)
                    K4[(k, m_)] = K4.get((k, m_), 0.0) + contrib
                own = CJ[J].reshape(nlev, tl.p, nlev, tl.p)
                idx = np.arange(nlev)
                Caa = own[idx, :, idx, :]  # (nlev, p, p)
                Rl = RJ.reshape(q, nlev, tl.p)
                RtR = np.einsum("xai,xaj->aij", Rl, Rl)
                diagC[m_][a0:a1] = Caa
                diagD[m_][a0:a1] = Caa / s2 - RtR / (s2 * s2)
        m = self.m
        trVG = np.empty(m)
        Kt = np.empty((m, m))
        for i, (k, E) in enumerate(self.params[:-1]):
            trVG[i] = float(np.einsum("ij,aji->", E, diagC[k]))
            Kt[i, -1] = Kt[-1, i] = float(np.einsum("ij,aji->", E, diagD[k]))
            for j in range(i, m - 1):
                m_, F = self.params[j]
                v = float(np.einsum("xy,zt,yzxt->", E, F, K4[(k, m_)]))
                Kt[i, j] = Kt[j, i] = v
        n = self.n
        trVG[-1] = (n - q + trMinv) / s2
        Kt[-1, -1] = (n - q + trMinv2) / (s2 * s2)
        return trVG, Kt

    # ------------------------------------------------------------ criterion
    def trace_PGPG(self) -> np.ndarray:
        """tr(P G_m P G_n) (pbkrtest's ``IE2``: the REML information in τ, times 2)."""
        Phi = self.Phi
        PhiP = np.einsum("ij,mjk->mik", Phi, self.P)
        return (self.Ktrace - 2 * np.einsum("ij,mnji->mn", Phi, self.Q)
                + np.einsum("mij,nji->mn", PhiP, PhiP))

    def criterion_derivatives(self) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian in τ of the REML criterion (REML fits) or the deviance (ML fits).

        The criterion is lme4's / lmerTest's ``devfun_vp`` up to a constant: with β
        profiled out, ``log|V| + r̃ᵀV r̃`` (+ ``log|XᵀV⁻¹X|`` for REML).
        """
        Phi = self.Phi
        cross = 2 * self.rGPGr
        if self.reml:
            g = self.trVG + np.einsum("ij,mji->m", Phi, self.P) - self.rGr
            H = -self.trace_PGPG() + cross
        else:
            g = self.trVG - self.rGr
            H = -self.Ktrace + cross
        return g, H

    def vcov_beta_derivatives(self) -> np.ndarray:
        """∂Φ/∂τ_m = −Φ P_m Φ, shape (m, p, p)."""
        return -np.einsum("ij,mjk,kl->mil", self.Phi, self.P, self.Phi)
