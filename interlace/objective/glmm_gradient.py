"""The exact gradient of a GLMM's Laplace deviance with respect to (θ, β), at the PIRLS mode.

The Laplace deviance (lme4's ``glmerLaplace``) is

    D(θ, β) = T(û) + ‖û‖² + log|M|,    M = ΛᵀZᵀWZΛ + I,

with T = −2 log p(y | u) as R's ``family$aic`` evaluates it, W the IRLS (Fisher) weights at
the mode û, and û the minimizer of the penalized deviance P(u) = dev(μ(u)) + ‖u‖².  Per row,
with μ', μ'' the link's inverse derivatives, V the variance function and a the prior weight:

* ``d = ∂dev/∂η = −2a(y − μ)μ'/V``; T's derivative is ``κ d`` with κ = 1 for families
  without a dispersion and, with lme4's dispersion estimate φ = dev/Σa inside T,
  κ = 1/φ + (∂T/∂φ)/Σa for the Gamma, inverse Gaussian and Gaussian families;
* ``w = aμ'²/V`` (the weights in M), ``w' = dw/dη = a(2μ'μ''/V − μ'³V'/V²)``;
* ``ω = ½ ∂²dev/∂η² = w − a(y − μ)(μ''V − μ'²V')/V²`` (the observed weights; ω = w for
  canonical links).

The mode solves ΛᵀZᵀd + 2u = 0, so by implicit differentiation, with E_φ = ∂η/∂φ at fixed u
(X for β, Z(∂Λ/∂θ_j)û for θ_j) and M_ω = ΛᵀZᵀΩZΛ + I (M itself for canonical links):

    dû/dφ = −M_ω⁻¹ (ΛᵀZᵀ Ω E_φ + ½ (∂Λ/∂φ)ᵀZᵀd),    dη/dφ = E_φ + ZΛ dû/dφ.

T + ‖u‖² then contributes ``κ dᵀE_φ + 2(1 − κ)ûᵀ dû/dφ`` (its u-gradient is 2(1 − κ)û at
the mode: zero without a dispersion) and log|M| contributes tr(M⁻¹ dM/dφ) =
``Σ_i w'_i s_i (dη/dφ)_i`` plus, for θ_j, ``2 tr(M⁻¹ΛᵀZᵀWZ ∂Λ/∂θ_j)``, where
s = diag(ZΛM⁻¹ΛᵀZᵀ) are the leverages.  Both traces need M⁻¹ only at the pairs of columns
that share a row: with the term of most levels first (columns ``1``, the rest ``2``),
M⁻¹'s columns ``2`` come from q₂ solves with the factored M, and its level blocks on ``1``
from ``Σ11_ll = (M11_ll)⁻¹ (I − (M12 Σ21)_ll)`` (M11 is block diagonal), summed over rows.
Nothing here divides by θ, so the gradient is exact on the boundary too.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import digamma

from ..linalg.crossprod import row_pattern, row_structure
from .pirls import PIRLSState, RowSource

__all__ = ["GRADIENT_MAX_REST", "GLMMGradientRows", "laplace_gradient"]

#: Largest number of random-effects columns outside the term of most levels (the solves with M for
#: M⁻¹'s columns there: q × q₂ numbers); above it the gradient is not offered.
GRADIENT_MAX_REST = 2000
#: Largest q for a non-canonical link, whose M_ω is formed and solved densely.
GRADIENT_MAX_Q_DENSE = 3000
#: families whose Laplace gradient is available
GRADIENT_FAMILIES = ("binomial", "poisson", "negative_binomial", "gamma", "inverse_gaussian", "gaussian")


def _variance_deriv(family: Any, mu: np.ndarray) -> np.ndarray:
    """V'(μ) of the family's variance function."""
    name = family.name
    if name == "binomial":
        return 1.0 - 2.0 * mu
    if name == "poisson":
        return np.ones_like(mu)
    if name == "negative_binomial":
        return 1.0 + 2.0 * mu / family.nb_theta
    if name == "gamma":
        return 2.0 * mu
    if name == "inverse_gaussian":
        return 3.0 * mu * mu
    return np.zeros_like(mu)


def _kappa(resp: Any, mu: np.ndarray) -> float:
    """T's derivative in η as a multiple of the deviance's (1 without a dispersion; see the module docstring)."""
    fam = resp.family
    if not fam.has_dispersion:
        return 1.0
    a = np.asarray(resp.weights, float)
    sw = float(np.sum(a))
    phi = float(np.sum(resp.dev_resid(mu))) / sw
    if fam.name == "gamma":  # ∂T/∂φ = −(2/φ²) [Σa (ψ(1/φ) + log φ) + D/2], D = φ Σa
        dT = -(2.0 / phi**2) * (sw * (digamma(1.0 / phi) + np.log(phi)) + 0.5 * phi * sw)
        return 1.0 / phi + dT / sw
    return 1.0 / phi  # inverse Gaussian and Gaussian: ∂T/∂φ = Σa/φ − D/φ² = 0 at φ = D/Σa


class GLMMGradientRows:
    """What :func:`laplace_gradient` reuses at every evaluation: Z's row structure, the pattern of
    ZΛ, the split of the columns into the term of most levels and the rest, ∂T_k/∂θ_j.

    Parameters
    ----------
    src : RowSource
    """

    def __init__(self, src: RowSource) -> None:
        re = src.re
        self.src, self.re = src, re
        self.cols, self.vals = row_structure(re)
        n, m = self.cols.shape
        self.n, self.m, self.q = n, m, re.q
        # structure columns of each term
        starts = np.concatenate([[0], np.cumsum([t.p for t in re.terms])]).astype(int)
        self.slices = [slice(int(starts[k]), int(starts[k + 1])) for k in range(len(re.terms))]
        # the term of most levels is re.terms[0] (stored by decreasing levels): block 1; the rest: block 2
        self.p1 = re.terms[0].p
        self.q1 = int(re.col_offsets[1])
        self.q2 = self.q - self.q1
        self.ZL = row_pattern(self.cols, self.q)
        self.flat_cols = self.cols.ravel()
        # flat positions in M⁻¹'s columns of block 2 (q × q₂, C order) of each row's pairs (a, b), b in block 2
        self.pair_flat = {(a, b): self.cols[:, a] * self.q2 + (self.cols[:, b] - self.q1)
                          for a in range(m) for b in range(self.slices[0].stop, m)}
        self.level1 = re.terms[0].codes.astype(np.intp)
        # ∂T_k/∂θ_j (Λ is linear in θ): for each θ_j its term and the template's derivative
        self.dtemplates: list[tuple[int, np.ndarray]] = []
        for k, t in enumerate(re.terms):
            for j in range(t.cov.n_theta):
                e = np.zeros(t.cov.n_theta)
                e[j] = 1.0
                self.dtemplates.append((k, t.cov.template(e)))

    def row_values(self, theta: np.ndarray) -> np.ndarray:
        """The nonzeros of ZΛ per row (n × m): for each term, the row's z times the template."""
        zl = np.empty_like(self.vals)
        for k, T in enumerate(self.re.templates(np.asarray(theta, float))):
            sl = self.slices[k]
            if T.shape[0] == 1:
                zl[:, sl] = self.vals[:, sl] * T[0, 0]
            else:
                zl[:, sl] = self.vals[:, sl] @ T
        return zl

    def inverse_pairs(self, pls: Any, zl: np.ndarray, w: np.ndarray) -> np.ndarray:
        """M⁻¹ at each row's pairs of columns: ``P[i, a, b] = (M⁻¹)[cols[i, a], cols[i, b]]`` (n × m × m)."""
        n, m, q1, p1 = self.n, self.m, self.q1, self.p1
        s1 = self.slices[0]
        P = np.empty((n, m, m))
        X2 = None
        if self.q2:
            E = np.zeros((self.q, self.q2))
            E[np.arange(q1, self.q), np.arange(self.q2)] = 1.0
            X2 = np.asarray(pls.solve_M(E))                    # M⁻¹'s columns of block 2 (q × q₂)
            for (a, b), flat in self.pair_flat.items():
                P[:, a, b] = np.take(X2, flat)
                P[:, b, a] = P[:, a, b]
        # level blocks of block 1: Σ11_ll = M11_ll⁻¹ (I − (M12 Σ21)_ll)
        L1 = self.re.terms[0].nlevels
        z1 = zl[:, s1]
        M11 = np.zeros((L1, p1, p1))
        B = np.zeros((L1, p1, p1))
        for a in range(p1):
            for b in range(a, p1):
                M11[:, a, b] = np.bincount(self.level1, weights=w * z1[:, a] * z1[:, b], minlength=L1)
                M11[:, b, a] = M11[:, a, b]
        M11[:, np.arange(p1), np.arange(p1)] += 1.0
        if self.q2:
            # (M12 Σ21)[a, b] over the rows of each level: Σ_i w_i z1[i, a] Σ_r zl[i, r] Σ[c_r(i), c1_b(i)]
            v = np.zeros((n, p1))
            for b in range(p1):
                for r in range(s1.stop, m):
                    v[:, b] += zl[:, r] * P[:, b, r]
            for a in range(p1):
                for b in range(p1):
                    B[:, a, b] = np.bincount(self.level1, weights=w * z1[:, a] * v[:, b], minlength=L1)
        if p1 == 1:
            S11: np.ndarray = (1.0 - B) / M11
        else:
            S11 = np.linalg.solve(M11, np.eye(p1) - B)
            S11 = 0.5 * (S11 + np.transpose(S11, (0, 2, 1)))
        P[:, s1, s1] = S11[self.level1]
        return P

    def ZL_times(self, zl: np.ndarray) -> sp.csr_matrix:
        """ZΛ as a CSR matrix with the row values ``zl``."""
        A = self.ZL.copy()
        A.data = zl.ravel()
        return A


def laplace_gradient(resp: Any, st: PIRLSState, theta: np.ndarray, beta: np.ndarray, rows: GLMMGradientRows,
                     pls: Any) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the Laplace deviance with respect to (θ, β) at the PIRLS mode ``st``, and the
    mode's derivatives dû/d(θ, β) (q × (n_θ + p)).

    ``pls`` is the u-engine loaded with the IRLS weights at the mode and factored at θ (as
    :meth:`~interlace.objective.pirls.PIRLS.run` leaves it).  See the module docstring.
    """
    src = rows.src
    theta = np.asarray(theta, float)
    fam = resp.family
    assert st.eta is not None and st.mu is not None
    eta, mu, u = st.eta, st.mu, st.u
    a = np.asarray(resp.weights, float)
    y = np.asarray(resp.y, float)
    with np.errstate(all="ignore"):
        d1 = fam.mu_eta(eta)
        d2 = np.asarray(fam.link.inverse_deriv2(eta), float)
        d2[~np.isfinite(d2)] = 0.0
        V = fam.variance(mu)
        Vp = _variance_deriv(fam, mu)
        r = y - mu
        w = a * d1 * d1 / V
        d = -2.0 * a * r * d1 / V
        curv = a * r * (d2 * V - d1 * d1 * Vp) / (V * V)
        omega = w - curv
        wp = a * (2.0 * d1 * d2 / V - d1**3 * Vp / (V * V))
    kappa = _kappa(resp, mu)
    n, p, nth = rows.n, src.p, theta.size
    npar = nth + p
    zl = rows.row_values(theta)
    P = rows.inverse_pairs(pls, zl, w)
    # zlP = zl_i P_i (n × m) and the leverages s_i = zl_i P_i zl_i
    m = rows.m
    zlP = zl[:, 0, None] * P[:, 0, :]
    for a_ in range(1, m):
        zlP += zl[:, a_, None] * P[:, a_, :]
    s = np.sum(zlP * zl, axis=1)
    # ∂η/∂φ at fixed u
    E = np.empty((n, npar))
    ucols = u[rows.cols]
    zdl = []
    for j, (k, dT) in enumerate(rows.dtemplates):
        sl = rows.slices[k]
        zd = rows.vals[:, sl] @ dT
        zdl.append(zd)
        E[:, j] = np.sum(zd * ucols[:, sl], axis=1)
    E[:, nth:] = src.X
    ZL = rows.ZL_times(zl)
    R = np.asarray(ZL.T @ (omega[:, None] * E))
    Ztd = np.bincount(rows.flat_cols, weights=(rows.vals * d[:, None]).ravel(), minlength=rows.q)
    for j, (k, dT) in enumerate(rows.dtemplates):
        t = rows.re.terms[k]
        o = int(rows.re.col_offsets[k])
        blk = Ztd[o:o + t.q].reshape(t.nlevels, t.p)
        R[o:o + t.q, j] += 0.5 * (blk @ dT).ravel()       # ½ (∂Λ/∂θ_j)ᵀ Zᵀ d, level by level
    canonical = bool(np.all(np.abs(curv) <= 1e-8 * np.maximum(w, 1e-300)))
    if canonical:
        du = -np.asarray(pls.solve_M(R))
    else:
        Mo = (ZL.T @ sp.diags(omega) @ ZL).toarray()
        Mo[np.diag_indices_from(Mo)] += 1.0
        du = -np.linalg.solve(Mo, R)
    deta = E + np.asarray(ZL @ du)
    grad = kappa * (E.T @ d) + deta.T @ (wp * s)
    if kappa != 1.0:
        grad += 2.0 * (1.0 - kappa) * (du.T @ u)
    for j, (k, _) in enumerate(rows.dtemplates):
        sl = rows.slices[k]
        grad[j] += 2.0 * float(np.sum(w[:, None] * zlP[:, sl] * zdl[j]))
    return grad, du
