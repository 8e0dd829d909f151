"""statsmodels MixedLM's profile log-likelihood by groups: score, Hessian, conditional moments.

The PLS engines give the criterion and the estimates; MixedLM's interface also asks for
derivatives *in its own parameters* (``score``, ``score_full``, ``hessian``, the
standard errors of ``params``): the fixed effects β, the lower triangle of
``Ψ = cov_re / scale`` by rows and ``v = vcomp / scale``.  With ``σ²`` profiled out the
log-likelihood is

    ℓ(β, Ψ, v) = −½ Σ_i log|V_i| − (ν/2) log q(β) − [REML] ½ log|M|  + const,
    V_i = I + Z_i Γ_i Z_iᵀ,   q(β) = Σ_i r_iᵀ V_i⁻¹ r_i,   M = Σ_i X_iᵀ V_i⁻¹ X_i,

``Z_i`` group ``i``'s ``[exog_re | vc_1 | vc_2 …]``, ``Γ_i = blockdiag(Ψ, v_1 I, …)``,
``r_i = y_i − X_i β`` and ``ν = n − p`` (REML) or ``n`` — MixedLM's ``loglike`` and
lme4's criterion alike.  Every quantity comes from ``Z_iᵀ V_i⁻¹ = (I + Z_iᵀZ_i Γ_i)⁻¹ Z_iᵀ``
(nothing of size ``n_i × n_i`` is formed; a group's design is used sparse when it is
mostly zeros, as in the one-group crossed idiom), and ``∂V_i/∂ψ_a = Z_i S_a D_a S_aᵀ Z_iᵀ``
for a column set ``S_a`` and a small symmetric ``D_a``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["GroupedDesign"]

#: A group's design is handled as a sparse matrix when it has at least this many
#: entries and at most :data:`SPARSE_DENSITY` of them are nonzero.
SPARSE_MIN_ENTRIES = 20_000
SPARSE_DENSITY = 0.2


def _dense(m: Any) -> np.ndarray:
    return np.asarray(m.toarray() if sp.issparse(m) else m, dtype=float)


class GroupedDesign:
    """MixedLM's data split by group, and the algebra of its profile log-likelihood.

    Parameters
    ----------
    X : ndarray (n, p)
        Fixed-effects design.
    y : ndarray (n,)
        Response.
    group_rows : list of ndarray of int
        Rows of each group (groups in sorted order).
    exog_re : ndarray (n, k_re) or None
        Design of the correlated random coefficients.
    vc_mats : list of list
        ``vc_mats[j][i]``: design of variance component ``j`` for the rows of group ``i``
        (dense or sparse).
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, group_rows: Sequence[np.ndarray],
                 exog_re: np.ndarray | None, vc_mats: Sequence[Sequence[Any]]) -> None:
        self.X = np.asarray(X, dtype=float)
        self.y = np.asarray(y, dtype=float)
        self.group_rows = list(group_rows)
        self.exog_re = None if exog_re is None else np.asarray(exog_re, dtype=float)
        self.vc_mats = [list(m) for m in vc_mats]
        self.k_fe = self.X.shape[1]
        self.k_re = 0 if self.exog_re is None else self.exog_re.shape[1]
        self.k_re2 = self.k_re * (self.k_re + 1) // 2
        self.k_vc = len(self.vc_mats)
        self.n = self.y.shape[0]

    @property
    def n_groups(self) -> int:
        return len(self.group_rows)

    def vc_width(self, j: int, i: int) -> int:
        """Columns of component ``j`` in group ``i``."""
        m = self.vc_mats[j][i]
        return int(m.shape[1]) if np.ndim(m) == 2 else 1

    # ------------------------------------------------------------ per group
    def design(self, i: int) -> Any:
        """``Z_i = [exog_re | vc_1 | vc_2 …]`` of group ``i`` (dense, or CSR when mostly zeros)."""
        rows = self.group_rows[i]
        parts: list[Any] = [self.exog_re[rows]] if self.exog_re is not None else []
        for j in range(self.k_vc):
            m = self.vc_mats[j][i]
            parts.append(m if sp.issparse(m) else np.asarray(m, dtype=float).reshape(rows.size, -1))
        if not parts:
            return np.zeros((rows.size, 0))
        size = rows.size * sum(p.shape[1] for p in parts)
        nnz = sum(p.nnz if sp.issparse(p) else np.count_nonzero(p) for p in parts)
        if size >= SPARSE_MIN_ENTRIES and nnz <= SPARSE_DENSITY * size:
            return sp.hstack([sp.csr_matrix(p) for p in parts], format="csr")
        return np.hstack([_dense(p) for p in parts])

    def psi(self, i: int, cov_re: np.ndarray, vcomp: np.ndarray) -> np.ndarray:
        """``Γ_i = blockdiag(Ψ, v_1 I, v_2 I, …)`` for group ``i``."""
        d = [np.asarray(cov_re, float)] if self.k_re else []
        d += [float(vcomp[j]) * np.eye(self.vc_width(j, i)) for j in range(self.k_vc)]
        k = sum(m.shape[0] for m in d)
        out = np.zeros((k, k))
        pos = 0
        for m in d:
            out[pos:pos + m.shape[0], pos:pos + m.shape[0]] = m
            pos += m.shape[0]
        return out

    def param_blocks(self, i: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """For group ``i``: each variance parameter's ``∂Γ_i`` as (column set ``S``, block ``D``)."""
        sets: list[np.ndarray] = []
        ds: list[np.ndarray] = []
        for a in range(self.k_re):
            for b in range(a + 1):
                if a == b:
                    sets.append(np.array([a]))
                    ds.append(np.ones((1, 1)))
                else:
                    sets.append(np.array([b, a]))
                    ds.append(np.array([[0.0, 1.0], [1.0, 0.0]]))
        off = self.k_re
        for j in range(self.k_vc):
            p = self.vc_width(j, i)
            sets.append(off + np.arange(p))
            ds.append(np.eye(p))
            off += p
        return sets, ds

    def solve(self, i: int, cov_re: np.ndarray, vcomp: np.ndarray, beta: np.ndarray, logdet: bool = False
              ) -> tuple:
        """Group ``i``'s ``Γ``, ``A = ZᵀV⁻¹Z``, ``w = ZᵀV⁻¹r``, ``B = ZᵀV⁻¹X``, ``XᵀV⁻¹X``, ``rᵀV⁻¹r``, ``XᵀV⁻¹r``.

        With ``logdet``, ``log|V_i| = log|I + ZᵀZ Γ|`` is appended.
        """
        rows = self.group_rows[i]
        Z = self.design(i)
        X = self.X[rows]
        r = self.y[rows] - X @ np.asarray(beta, float)
        G = self.psi(i, cov_re, vcomp)
        k = Z.shape[1]
        ZtZ = _dense(Z.T @ Z)
        Zr = np.asarray(Z.T @ r, dtype=float).ravel()
        ZX = _dense(Z.T @ X).reshape(k, -1)
        K = np.eye(k) + ZtZ @ G
        sol = np.linalg.solve(K, np.column_stack([ZtZ, Zr, ZX]))
        A = sol[:, :k]
        A = 0.5 * (A + A.T)
        w, B = sol[:, k], sol[:, k + 1:]
        XPX = X.T @ X - ZX.T @ G @ B
        rPr = float(r @ r - Zr @ G @ w)
        XPr = X.T @ r - ZX.T @ G @ w
        if logdet:
            return G, A, w, B, XPX, rPr, XPr, float(np.linalg.slogdet(K)[1])
        return G, A, w, B, XPX, rPr, XPr

    def loglike(self, beta: np.ndarray, cov_re: np.ndarray, vcomp: np.ndarray, reml: bool) -> float:
        """ℓ at given ``(β, Ψ, v)`` (module docstring), with its constant: MixedLM's ``loglike(profile_fe=False)``.

        ``−½ Σ log|V_i| − (ν/2)(1 + log(2π q/ν)) − [REML] ½ log|M|``; the group-by-group
        sums keep it as smooth in the parameters as MixedLM's own (for differencing).
        """
        p = self.k_fe
        nu = self.n - p if reml else self.n
        ld, q = 0.0, 0.0
        M = np.zeros((p, p))
        for i in range(self.n_groups):
            *_, XPX, rPr, _, ldv = self.solve(i, cov_re, vcomp, beta, logdet=True)
            ld += ldv
            q += rPr
            M += XPX
        val = -0.5 * ld - 0.5 * nu * (1.0 + np.log(2.0 * np.pi * q / nu))
        if reml and p:
            val -= 0.5 * float(np.linalg.slogdet(M)[1])
        return float(val)

    # ------------------------------------------------------------ whole data
    def derivatives(self, beta: np.ndarray, cov_re: np.ndarray, vcomp: np.ndarray, reml: bool,
                    hessian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Gradient and Hessian of ℓ in ``(β, lower triangle of Ψ by rows, v)`` (module docstring).

        Returns
        -------
        grad : ndarray (k_fe + k_re2 + k_vc,)
        hess : ndarray or None
            None when ``hessian`` is False.
        """
        beta = np.asarray(beta, float)
        p = self.k_fe
        m = self.k_re2 + self.k_vc
        nu = self.n - p if reml else self.n
        M = np.zeros((p, p))
        q = 0.0
        s = np.zeros(p)
        qa = np.zeros(m)
        lda = np.zeros(m)
        Ma = np.zeros((m, p, p))
        qba = np.zeros((m, p))
        ldab = np.zeros((m, m))
        qab = np.zeros((m, m))
        Kab = np.zeros((m, m, p, p))
        for i in range(self.n_groups):
            _, A, w, B, XPX, rPr, XPr = self.solve(i, cov_re, vcomp, beta)
            M += XPX
            q += rPr
            s += XPr
            sets, ds = self.param_blocks(i)
            Dw = [d @ w[S] for S, d in zip(sets, ds)]
            DB = [d @ B[S] for S, d in zip(sets, ds)]
            for a, (Sa, da) in enumerate(zip(sets, ds)):
                if Sa.size == 0:
                    continue
                lda[a] += np.sum(da * A[np.ix_(Sa, Sa)])
                qa[a] -= w[Sa] @ Dw[a]
                Ma[a] -= B[Sa].T @ DB[a]
                if not hessian:
                    continue
                qba[a] += B[Sa].T @ Dw[a]
                for b in range(a + 1):
                    Sb = sets[b]
                    if Sb.size == 0:
                        continue
                    Aab = A[np.ix_(Sa, Sb)]
                    t = np.sum((da @ Aab) * (Aab @ ds[b]))  # tr(D_a A_ab D_b A_ba), A and D symmetric
                    ldab[a, b] -= t
                    qab[a, b] += 2.0 * Dw[a] @ Aab @ Dw[b]
                    Kab[a, b] += DB[a].T @ Aab @ DB[b]
        qb = -2.0 * s
        g = np.zeros(p + m)
        g[:p] = -(nu / 2.0) * qb / q
        Minv = np.linalg.inv(M) if p else np.zeros((0, 0))
        for a in range(m):
            g[p + a] = -0.5 * lda[a] - (nu / 2.0) * qa[a] / q
            if reml and p:
                g[p + a] -= 0.5 * np.trace(Minv @ Ma[a])
        if not hessian:
            return g, None
        for a in range(m):
            for b in range(a):
                ldab[b, a] = ldab[a, b]
                qab[b, a] = qab[a, b]
                Kab[b, a] = Kab[a, b].T
        H = np.zeros((p + m, p + m))
        H[:p, :p] = -(nu / 2.0) * (2.0 * M / q - np.outer(qb, qb) / q ** 2)
        for a in range(m):
            H[p + a, :p] = H[:p, p + a] = -(nu / 2.0) * (2.0 * qba[a] / q - qb * qa[a] / q ** 2)
            for b in range(a + 1):
                h = -0.5 * ldab[a, b] - (nu / 2.0) * (qab[a, b] / q - qa[a] * qa[b] / q ** 2)
                if reml and p:
                    Mab = Kab[a, b] + Kab[a, b].T
                    h -= 0.5 * (np.trace(Minv @ Mab) - np.trace(Minv @ Ma[a] @ Minv @ Ma[b]))
                H[p + a, p + b] = H[p + b, p + a] = h
        return g, H

    def conditional(self, i: int, cov_re: np.ndarray, vcomp: np.ndarray, beta: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Group ``i``'s conditional mean ``Γ ZᵀV⁻¹r`` and relative covariance ``Γ − Γ A Γ`` given β."""
        G, A, w, *_ = self.solve(i, cov_re, vcomp, beta)
        return G @ w, G - G @ A @ G
