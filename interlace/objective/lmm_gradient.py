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
import scipy.sparse as sp
from scipy.linalg.lapack import dpotrs

__all__ = ["SOLVE_GRAD_MAX_Q", "criterion_gradient", "gradient_supported", "make_gram", "solved_grad_blocks"]

#: Largest q for which the level blocks of M⁻¹ΛᵀA are read off q solves with M (CHOLMOD,
#: or a blocked layout without a fast path): q solves cost about q/100 factorizations, so
#: above this differences of the criterion are cheaper.
SOLVE_GRAD_MAX_Q = 500


class _Gram:
    """``A v`` and ``C`` of loaded cross-products, by blocks (blocked engine) or whole (CHOLMOD)."""

    def __init__(self, cp: Any, whole: bool) -> None:
        self.q1, self.q2 = cp.q1, cp.q2
        self.A33 = np.asarray(cp.A33)
        self.S: Any = None
        if whole:
            self.S, C = cp.full()
            self.C = np.asarray(C)
        else:
            b = cp.blocks()
            self.C = np.vstack([b["A31"].T, b["A32"].T]) if self.q2 else np.asarray(b["A31"].T)
            self.A11 = b["A11"]
            self.A21, self.A22 = b["A21"], _sparse_if_few(b["A22"])
        self.pairing = _Pairing(cp.re)

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
        A21 = self.A21
        if sp.issparse(A21):
            out1 = out1 + np.asarray(A21.T @ V2)
            out2 = np.asarray(A21 @ V1)
        else:  # a dense A21 read as the right-hand operand: BLAS runs these few-column products faster
            out1 = out1 + (V2.T @ A21).T
            out2 = (V1.T @ A21.T).T
        out2 = out2 + np.asarray(self.A22 @ V2)
        return np.vstack([out1, out2])


def _sparse_if_few(A: Any) -> Any:
    """A dense block with few nonzeros (a later term's A22: one block per level) as CSR, read by every
    product; anything else as given."""
    if sp.issparse(A) or not isinstance(A, np.ndarray) or A.ndim != 2:
        return A
    return sp.csr_matrix(A) if np.count_nonzero(A) <= 0.05 * A.size else A


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


def _lam_times(re: Any, templates: list[np.ndarray], V: np.ndarray, transpose: bool = False) -> np.ndarray:
    """``Λ V`` (or ``Λᵀ V``) for a ``q × m`` array, term by term from the templates (no sparse Λ)."""
    out = np.empty_like(V)
    for k, t in enumerate(re.terms):
        sl = slice(int(re.col_offsets[k]), int(re.col_offsets[k + 1]))
        T = templates[k]
        if t.p == 1:
            out[sl] = T[0, 0] * V[sl]
        else:
            out[sl] = ((T.T if transpose else T) @ V[sl].reshape(t.nlevels, t.p, -1)).reshape(t.q, -1)
    return out


def _level_sum(re: Any, k: int, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``Σ_l X_l Y_lᵀ`` over the levels of term k, for ``q × m`` arrays X, Y (rows of the term)."""
    t = re.terms[k]
    sl = slice(int(re.col_offsets[k]), int(re.col_offsets[k + 1]))
    if t.p == 1:
        return np.array([[float(np.vdot(X[sl], Y[sl]))]])
    m = X.shape[1]
    Xr = X[sl].reshape(t.nlevels, t.p, m).transpose(1, 0, 2).reshape(t.p, -1)
    Yr = Y[sl].reshape(t.nlevels, t.p, m).transpose(1, 0, 2).reshape(t.p, -1)
    return Xr @ Yr.T


class _Pairing:
    """``g_k = Σ_{entries (r, c) of a template holding θ_k} block[r, c]`` over the terms, by one bincount."""

    def __init__(self, re: Any) -> None:
        self.n = re.n_theta
        flat, which, offset = [], [], 0
        for k, t in enumerate(re.terms):
            cov = t.cov
            flat.append(offset + cov.rows * t.p + cov.cols)
            which.append(re.theta_offsets[k] + cov.theta_index)
            offset += t.p * t.p
        self.flat = np.concatenate(flat).astype(np.intp)
        self.which = np.concatenate(which).astype(np.intp)

    def __call__(self, blocks: list[np.ndarray]) -> np.ndarray:
        vals = np.concatenate([b.ravel() for b in blocks])[self.flat]
        return np.bincount(self.which, weights=vals, minlength=self.n)


def criterion_gradient(pls: Any, theta: np.ndarray, reml: bool, dof: int, pwrss: float, gram: _Gram
                       ) -> np.ndarray | None:
    """The gradient of the LMM criterion at θ, the engine factored at θ (see the module docstring).

    Parameters
    ----------
    pls : PLSSystem
        Factored at ``theta``.
    reml : bool
    dof : int
        ν: n (ML) or n − p (REML).
    pwrss : float
        The penalized residual sum of squares at θ.
    gram : _Gram
        Products of the loaded cross-products (:func:`make_gram`).

    Returns
    -------
    ndarray or None
        None when the engine offers no level blocks of M⁻¹ΛᵀA at this size.
    """
    re = pls.re
    theta = np.asarray(theta, float)
    templates = re.templates(theta)
    p = pls.p
    C = gram.C
    nterms = len(re.terms)
    c = -2.0 * dof / pwrss
    # the solves first: the engine's level blocks may invert its factor in place (BlockedPLS)
    if reml and p:
        # one solve with M for B = M⁻¹ΛᵀC_X and M⁻¹Λᵀc; then β = S⁻¹(Xᵀy − C_XᵀΛ M⁻¹Λᵀc), u = M⁻¹Λᵀc − Bβ
        forward = getattr(pls, "forward_C", None)
        got = forward(theta) if forward is not None else None
        if got is not None:  # L⁻¹ΛᵀC from the factor: C_XᵀΛM⁻¹Λᵀc = (L⁻¹ΛᵀC_X)ᵀ L⁻¹Λᵀc
            Y, Bf = got
            cross = Y[:, :p].T @ Y[:, p]
        else:
            LC = _lam_times(re, templates, C, transpose=True)
            Bf = pls.solve_M(LC)
            cross = LC[:, :p].T @ Bf[:, p]
        RX = pls.RX()
        beta = dpotrs(RX, gram.A33[:p, p] - cross, lower=1)[0]
        u = Bf[:, p] - Bf[:, :p] @ beta
        W = np.column_stack([u, Bf[:, :p]])
        AW = gram.times(_lam_times(re, templates, W))
        rz = C[:, p] - C[:, :p] @ beta - AW[:, 0]
        RB = C[:, :p] - AW[:, 1:]
        Sinv_Bt = dpotrs(RX, np.ascontiguousarray(Bf[:, :p].T), lower=1)[0]  # S⁻¹Bᵀ, S = R_X R_Xᵀ
    else:
        beta, u = pls.solve()
        rz = C[:, p] - C[:, :p] @ beta - gram.times(_lam_times(re, templates, u[:, None]))[:, 0]
    fast = getattr(pls, "logdet_grad_blocks", None)
    Q = fast(theta) if fast is not None else None
    if Q is None:
        Q = solved_grad_blocks(pls, theta, gram)
    if Q is None:
        return None
    if reml and p:
        blocks = [2.0 * Q[k].T + c * _level_sum(re, k, rz[:, None], u[:, None])
                  - 2.0 * _level_sum(re, k, RB, Sinv_Bt.T) for k in range(nterms)]
    else:
        blocks = [2.0 * Q[k].T + c * _level_sum(re, k, rz[:, None], u[:, None]) for k in range(nterms)]
    return gram.pairing(blocks)


def gradient_supported(pls: Any) -> bool:
    """Whether :func:`criterion_gradient` is available for the engine's loaded products: the
    engine's own level blocks (:meth:`~interlace.linalg.blocked.BlockedPLS.logdet_grad_supported`),
    else the solves of :func:`solved_grad_blocks` up to :data:`SOLVE_GRAD_MAX_Q` columns."""
    if not pls.re.terms:
        return False
    fast = getattr(pls, "logdet_grad_supported", None)
    if fast is not None and fast():
        return True
    return pls.re.q <= SOLVE_GRAD_MAX_Q


def make_gram(pls: Any) -> _Gram:
    """The products :func:`criterion_gradient` reads, from the engine's loaded cross-products."""
    assert pls.cp is not None, "the engine has no data"
    return _Gram(pls.cp, whole=(pls.engine == "cholmod") or not pls.re.terms)

