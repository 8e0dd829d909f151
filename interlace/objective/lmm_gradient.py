"""Analytic gradient of the LMM profiled deviance and REML criterion with respect to θ.

Notation (:mod:`interlace.linalg.pls`): A = ZᵀWZ, C = ZᵀWX, c = ZᵀWy, M = ΛᵀAΛ + I,
u and β the penalized least-squares solution at θ, r² its penalized residual sum of
squares, S = R_X R_Xᵀ = XᵀWX − CᵀΛM⁻¹ΛᵀC, ν = n (ML) or n − p (REML).  The criterion is

    d(θ) = log|M| + ν log r² [+ log|S|  (REML)] + const.

Λ is linear in θ: Λ = Σ_k θ_k Λ_k, and Λ_k is block-diagonal with one ``dT_k`` (the
derivative of term j's template, ones where θ_k sits) per level of the term.  Every
derivative below is a sum over levels ``l`` of ⟨dT_k, ·⟩ with a ``p_j × p_j`` block:

* **log|M|**: ``∂ log|M| = tr(M⁻¹ ∂M)``, ``∂M = Λ_kᵀAΛ + ΛᵀAΛ_k``, so
  ``∂_k log|M| = 2 tr(M⁻¹ΛᵀA Λ_k) = 2 Σ_l tr(Q_ll dT_k)`` with Q = M⁻¹ΛᵀA: only the
  diagonal level blocks of Q are needed.  The blocked engine gets them from its factor
  (:meth:`~interlace.linalg.blocked.BlockedPLS.logdet_grad_blocks`: the inverse of the dense
  L22 block by ``dpotri`` and A21's column pairs); otherwise they are read off
  ``AΛ M⁻¹`` column by column (:func:`solved_grad_blocks`, for q up to
  :data:`SOLVE_GRAD_MAX_Q`), and above that the criterion is differenced instead.
* **r²**: r² is a minimum over (β, u), so its derivative is the partial one at fixed
  (β, u) (envelope theorem): with the residual e = y − Xβ − ZΛu and
  ``r_Z = ZᵀWe = c − Cβ − AΛu``, ``∂_k r² = −2 eᵀWZΛ_k u = −2 Σ_l r_lᵀ dT_k u_l``.
* **log|S|** (REML): with B = M⁻¹ΛᵀC (q × p), ``∂S = −CᵀΛ_kB − BᵀΛ_kᵀC + Bᵀ∂M B``, so
  ``∂_k log|S| = tr(S⁻¹∂S) = −2 tr(Λ_kᵀ R_B S⁻¹ Bᵀ)`` with ``R_B = C − AΛB``:
  ``−2 Σ_l tr(dT_kᵀ (R_B S⁻¹Bᵀ)_ll)``.

Nothing here divides by θ, so the gradient is exact on the boundary (θ_k = 0) too.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import cho_solve

__all__ = ["SOLVE_GRAD_MAX_Q", "criterion_gradient", "solved_grad_blocks"]

#: Largest q for which the level blocks of M⁻¹ΛᵀA are read off q solves with M (CHOLMOD,
#: or a blocked layout without a fast path).
SOLVE_GRAD_MAX_Q = 2000


class _Gram:
    """``A v`` and ``C`` of loaded cross-products, by blocks (blocked engine) or whole (CHOLMOD)."""

    def __init__(self, cp: Any, whole: bool) -> None:
        self.q1, self.q2 = cp.q1, cp.q2
        self.S: Any = None
        if whole:
            self.S, C = cp.full()
            self.C = np.asarray(C)
        else:
            b = cp.blocks()
            self.C = np.vstack([b["A31"].T, b["A32"].T]) if self.q2 else np.asarray(b["A31"].T)
            self.A11 = b["A11"]
            self.A21, self.A22 = b["A21"], b["A22"]

    def times(self, V: np.ndarray) -> np.ndarray:
        """``A V`` for a ``q × m`` array."""
        if self.S is not None:
            return np.asarray(self.S @ V)
        q1 = self.q1
        l1, p1 = self.A11.shape[:2]
        V1 = V[:q1]
        out1 = (self.A11 @ V1.reshape(l1, p1, -1)).reshape(q1, -1)
        if not self.q2:
            return out1
        V2 = V[q1:]
        out1 = out1 + np.asarray(self.A21.T @ V2)
        out2 = np.asarray(self.A21 @ V1) + np.asarray(self.A22 @ V2)
        return np.vstack([out1, out2])


def solved_grad_blocks(pls: Any, theta: np.ndarray, gram: _Gram, chunk: int = 256) -> list[np.ndarray] | None:
    """Per term, ``Σ_l (M⁻¹ΛᵀA)_ll`` from solves with M at the last factored θ (None above
    :data:`SOLVE_GRAD_MAX_Q` columns).

    ``(M⁻¹ΛᵀA)[j, m] = (AΛ M⁻¹ e_j)[m]`` (A and M⁻¹ symmetric), so a chunk of unit columns
    solved with M and multiplied by AΛ gives the rows of Q that the level blocks need.
    """
    re = pls.re
    q = re.q
    if q > SOLVE_GRAD_MAX_Q:
        return None
    Lam = re.Lambda(theta)
    out = [np.zeros((t.p, t.p)) for t in re.terms]
    owner = np.concatenate([np.full(t.q, k) for k, t in enumerate(re.terms)])
    for a in range(0, q, chunk):
        b = min(q, a + chunk)
        E = np.zeros((q, b - a))
        E[np.arange(a, b), np.arange(b - a)] = 1.0
        Y = gram.times(np.asarray(Lam @ pls.solve_M(E)))
        for j in range(a, b):
            k = owner[j]
            t = re.terms[k]
            off = j - re.col_offsets[k]
            start = re.col_offsets[k] + (off // t.p) * t.p
            out[k][off % t.p, :] += Y[start:start + t.p, j - a]
    return out


def _level_sum(re: Any, k: int, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``Σ_l X_l Y_lᵀ`` over the levels of term k, for ``q × m`` arrays X, Y (rows of the term)."""
    t = re.terms[k]
    sl = slice(int(re.col_offsets[k]), int(re.col_offsets[k + 1]))
    Xr = X[sl].reshape(t.nlevels, t.p, -1)
    Yr = Y[sl].reshape(t.nlevels, t.p, -1)
    return np.einsum("lam,lbm->ab", Xr, Yr)


def _theta_pairing(re: Any, blocks: list[np.ndarray], transpose: bool) -> np.ndarray:
    """``g_k = Σ_{entries (r, c) of template j holding θ_k} block_j[r, c]`` (``[c, r]`` if ``transpose``)."""
    g = np.zeros(re.n_theta)
    for k, t in enumerate(re.terms):
        cov = t.cov
        B = blocks[k]
        vals = B[cov.cols, cov.rows] if transpose else B[cov.rows, cov.cols]
        np.add.at(g, re.theta_offsets[k] + cov.theta_index, vals)
    return g


def criterion_gradient(pls: Any, theta: np.ndarray, reml: bool, dof: int, gram: _Gram) -> np.ndarray | None:
    """The gradient of the LMM criterion at θ, the engine factored at θ (see the module docstring).

    Parameters
    ----------
    pls : PLSSystem
        Factored at ``theta``.
    reml : bool
    dof : int
        ν: n (ML) or n − p (REML).
    gram : _Gram
        Products of the loaded cross-products.

    Returns
    -------
    ndarray or None
        None when the engine offers no level blocks of M⁻¹ΛᵀA at this size.
    """
    re = pls.re
    theta = np.asarray(theta, float)
    fast = getattr(pls, "logdet_grad_blocks", None)
    Q = fast(theta) if fast is not None else None
    if Q is None:
        Q = solved_grad_blocks(pls, theta, gram)
    if Q is None:
        return None
    g = 2.0 * _theta_pairing(re, Q, transpose=True)
    p = pls.p
    Lam = re.Lambda(theta)
    beta, u = pls.solve()
    L33 = pls._last_L33()
    pwrss = float(L33[p, p] ** 2)
    C = gram.C
    rz = C[:, p] - C[:, :p] @ beta - gram.times(np.asarray(Lam @ u)[:, None])[:, 0]
    blocks = [_level_sum(re, k, rz[:, None], u[:, None]) for k in range(len(re.terms))]
    g += (dof / pwrss) * (-2.0) * _theta_pairing(re, blocks, transpose=False)
    if reml and p:
        CX = C[:, :p]
        B = pls.solve_M(np.asarray(Lam.T @ CX))
        RB = CX - gram.times(np.asarray(Lam @ B))
        Sinv_Bt = cho_solve((L33[:p, :p], True), B.T)  # S⁻¹Bᵀ, S = R_X R_Xᵀ
        blocks = [_level_sum(re, k, RB, Sinv_Bt.T) for k in range(len(re.terms))]
        g += -2.0 * _theta_pairing(re, blocks, transpose=False)
    return g


def make_gram(pls: Any) -> _Gram:
    """The products :func:`criterion_gradient` reads, from the engine's loaded cross-products."""
    assert pls.cp is not None, "the engine has no data"
    return _Gram(pls.cp, whole=(pls.engine == "cholmod") or not pls.re.terms)

