"""The blocked engine's Schur complement for vector-valued terms after a dense A21.

With Z = [Z1 Z2], the blocked engine eliminates the block-diagonal first term and factors

    M22 = Λ2ᵀ (A22 − G) Λ2 + I,   G = A21 blockdiag(Wᵢ) A21ᵀ,   Wᵢ = T1 (T1ᵀ A11ᵢ T1 + I)⁻¹ T1ᵀ,

densely.  When the later terms are vector-valued (``(1 + x | b)``) Λ2 is block-diagonal
rather than diagonal, and when A21 is dense (crossed factors: most (a, b) pairs occur) the
pair Gram of :mod:`interlace.linalg.blocked` does not apply.  Here:

* G depends on the first term's θ only.  It is ``B Bᵀ`` for ``B = A21 blockdiag(Cᵢ)``, any
  ``Cᵢ Cᵢᵀ = Wᵢ`` (lower triangular for 2 × 2 blocks: three multiply-adds per entry instead
  of four), formed in one array kept between evaluations and one BLAS ``dsyrk`` (the dominant
  cost: q2² q1 multiply-adds).  The last few G are kept (:data:`GRAM_CACHE_COUNT`,
  :data:`GRAM_CACHE_BYTES`) and reused for the same θ1: the checks' Hessian moves one θ at a
  time, so half of its points share the θ1 of the search's last one.  The engine keeps only
  the last one once it is asked for the solution (:meth:`DenseGram.trim`);
* Λ2ᵀ(A22 − G)Λ2 is two passes over the dense block (the level blocks T_k of each later
  term, as batched products with the small templates) and a scatter of the few nonzeros of
  Λ2ᵀA22Λ2;
* L21 = Λ2ᵀ A21 blockdiag(D1) is never formed: :class:`ScaledGramFactor` multiplies by it;
* the log-determinant's gradient (:meth:`DenseGram.grad_blocks`) needs only L22⁻¹ and
  L22⁻¹Λ2ᵀA21, not Σ22, H or G.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

__all__ = ["DenseGram", "GRAD_IDENTITY_MIN_SV", "GRAM_CACHE_BYTES", "GRAM_CACHE_COUNT", "PASS_BYTES",
           "ScaledGramFactor", "grad_blocks_declined"]

#: Memory for the Grams G kept for reuse (at least one is kept): 8 of 2,000 × 2,000.
GRAM_CACHE_BYTES = 256 * 2**20
#: Elementwise passes over the q2 × q1 arrays run by row chunks of about this many bytes, so that
#: a chunk's several passes read it from cache rather than memory.
PASS_BYTES = 256 * 2**10
#: At most this many Grams are kept: the gradient's checks revisit the search's last θ1 after
#: their three θ1 columns, and an evicted array is refilled in place (no new pages to fault in).
GRAM_CACHE_COUNT = 6


class ScaledGramFactor:
    """L21 = Λ2ᵀ A21 blockdiag(D1) as an operator: ``L21 @ X`` and ``L21.T @ Y`` without forming L21.

    Parameters
    ----------
    Lam2 : sparse matrix (q2, q2)
    A21 : ndarray (q2, q1)
    D1 : ndarray (l1, p1, p1)
        Per level of the first term, ``T1 L11ᵢ⁻ᵀ``.
    """

    def __init__(self, Lam2: sp.spmatrix, A21: np.ndarray, D1: np.ndarray, transposed: bool = False) -> None:
        self._Lam2, self._A21, self._D1, self._t = Lam2, A21, D1, transposed

    @property
    def T(self) -> ScaledGramFactor:
        """The transpose."""
        return ScaledGramFactor(self._Lam2, self._A21, self._D1, not self._t)

    @property
    def shape(self) -> tuple[int, int]:
        """``(q2, q1)``, or ``(q1, q2)`` for the transpose."""
        return self._A21.shape[::-1] if self._t else self._A21.shape

    def toarray(self) -> np.ndarray:
        """The dense matrix (q2 × q1, or its transpose)."""
        l1, p1 = self._D1.shape[:2]
        return self @ np.eye(l1 * p1) if not self._t else (self.T @ np.eye(l1 * p1)).T

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        A = self.toarray()
        return A if dtype is None else A.astype(dtype)

    def __matmul__(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        vec = X.ndim == 1
        X2 = X.reshape(X.shape[0], -1)
        k = X2.shape[1]
        l1, p1 = self._D1.shape[:2]
        if not self._t:  # Λ2ᵀ A21 (D1 X), D1 X level by level
            DX = np.matmul(self._D1, X2.reshape(l1, p1, k)).reshape(l1 * p1, k)
            # A21 as BLAS's right-hand operand: faster for these few columns than A21 @ DX
            out = np.asarray(self._Lam2.T @ (DX.T @ self._A21.T).T)
        else:  # D1ᵀ A21ᵀ (Λ2 Y)
            Z = (np.asarray(self._Lam2 @ X2).T @ self._A21).T.reshape(l1, p1, k)
            out = np.matmul(np.transpose(self._D1, (0, 2, 1)), Z).reshape(l1 * p1, k)
        return out.ravel() if vec else out


def _roots_2x2(T1: np.ndarray, A11: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower-triangular ``Cᵢ = [[c00, 0], [c10, c11]]`` with ``Cᵢ Cᵢᵀ = T1 Mᵢ⁻¹ T1ᵀ``, ``Mᵢ = T1ᵀA11ᵢT1 + I``.

    With ``Mᵢ = Uᵢ Uᵢᵀ`` (Uᵢ upper triangular), ``Cᵢ = T1 Uᵢ⁻ᵀ`` is lower triangular times lower triangular.
    """
    t11, t21, t22 = T1[0, 0], T1[1, 0], T1[1, 1]
    a00, a01, a11 = A11[:, 0, 0], A11[:, 0, 1], A11[:, 1, 1]
    m00 = a00 * (t11 * t11) + a01 * (2.0 * t11 * t21) + a11 * (t21 * t21) + 1.0
    m01 = t22 * (a01 * t11 + a11 * t21)
    u11 = np.sqrt(a11 * (t22 * t22) + 1.0)
    u01 = m01 / u11
    u00 = np.sqrt(m00 - u01 * u01)
    return t11 / u00, (t21 - t22 * u01 / u11) / u00, t22 / u11


class DenseGram:
    """G = A21 blockdiag(Wᵢ) A21ᵀ for one data set, kept for the last θ1; and M22 from it.

    Parameters
    ----------
    re : RandomEffects
    A11 : ndarray (l1, p1, p1)
        The first term's diagonal blocks Z1ᵀWZ1.
    A21 : ndarray (q2, q1)
        Dense Z2ᵀWZ1, C order (read, not copied).
    A22 : ndarray (q2, q2)
        Z2ᵀWZ2 (dense storage; its nonzeros are few: one block per level and pair of later terms).
    """

    def __init__(self, re: Any, A11: np.ndarray, A21: np.ndarray, A22: Any) -> None:
        t1 = re.terms[0]
        self.re = re
        self.l1, self.p1, self.q1 = t1.nlevels, t1.p, t1.q
        self.q2 = re.q - self.q1
        q2 = self.q2
        self._A11 = A11
        self._A = np.ascontiguousarray(A21, dtype=float)
        self._A22 = sp.csr_matrix(A22, dtype=float)
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._keep = max(1, min(GRAM_CACHE_COUNT, GRAM_CACHE_BYTES // (8 * q2 * q2)))
        self._H = np.empty((q2, q2))
        self._buf: np.ndarray | None = None  # see _work
        self._linv: np.ndarray | None = None  # L22⁻¹ of the gradient (grad_blocks)
        # within the diagonal level blocks of the later terms, the lower entries the sandwich reads
        lo, up = [], []
        offs = re.col_offsets[1:] - self.q1
        for k, t in enumerate(re.terms[1:]):
            base = offs[k] + np.arange(t.nlevels) * t.p
            for a in range(t.p):
                for b in range(a + 1, t.p):
                    lo.append((base + b) * q2 + base + a)
                    up.append((base + a) * q2 + base + b)
        self._fix = (np.concatenate(lo), np.concatenate(up)) if lo else None

    def _work(self) -> np.ndarray:
        """A q2 × q1 array reused by every θ (B of the Gram, X of the gradient): at 3,000,000 rows
        64 MB that would otherwise be mapped and faulted in at each evaluation."""
        if self._buf is None:
            self._buf = np.empty((self.q2, self.q1))
        return self._buf

    def gram(self, key: bytes, T1: np.ndarray, D1: np.ndarray) -> np.ndarray:
        """The upper triangle of G (a C-ordered q2 × q2 view) for the first term's θ ``key``
        (template ``T1``, blocks ``D1 = T1 L11⁻ᵀ``)."""
        G = self._cache.get(key)
        if G is not None:
            self._cache.move_to_end(key)
            return G.T
        q2, l1, p1 = self.q2, self.l1, self.p1
        # a Fortran array whose lower triangle dsyrk fills (its upper one holds only the fixed entries)
        G = self._cache.popitem(last=False)[1] if len(self._cache) >= self._keep else np.zeros((q2, q2), order="F")
        A = self._A.reshape(q2, l1, p1)
        # B = A21 blockdiag(Cᵢ) with its columns ordered (coefficient, level): B[:, j] is contiguous
        B = self._work().reshape(q2, p1, l1)
        if p1 == 2:  # B0 = A0 c00 + A1 c10, B1 = A1 c11 (B1 holds A1 c10 first: no temporary)
            c00, c10, c11 = _roots_2x2(T1, self._A11)
            step = max(1, PASS_BYTES // (8 * self.q1))
            for r in range(0, q2, step):  # by row chunks that stay in cache over the four passes
                a, b = A[r:r + step], B[r:r + step]
                np.multiply(a[:, :, 1], c10, out=b[:, 1])
                np.multiply(a[:, :, 0], c00, out=b[:, 0])
                b[:, 0] += b[:, 1]
                np.multiply(a[:, :, 1], c11, out=b[:, 1])
        else:  # B_j = Σ_i A_i D1[:, i, j]
            for j in range(p1):
                np.multiply(A[:, :, 0], D1[:, 0, j], out=B[:, j])
                for i in range(1, p1):
                    B[:, j] += A[:, :, i] * D1[:, i, j]
        # G = B Bᵀ: dsyrk with trans on Bᵀ (a Fortran-ordered view, no copy)
        G = sla.blas.dsyrk(1.0, B.reshape(q2, p1 * l1).T, beta=0.0, c=G, trans=1, lower=1, overwrite_c=1)
        Gc = G.T  # C-ordered view: G's lower (Fortran) triangle is its upper one
        if self._fix is not None:
            flat = Gc.reshape(-1)
            flat[self._fix[0]] = flat[self._fix[1]]
        self._cache[key] = G
        return Gc

    def grad_blocks(self, theta: np.ndarray, L22: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]] | None:
        """The parts of the log-determinant's gradient blocks that need the dense block.

        With Σ22 = (L22 L22ᵀ)⁻¹ and X = L22⁻¹ Λ2ᵀ A21 (one ``dtrtri`` of L22, q2³/3 flops, and one
        ``dtrmm``, q2² q1; both in arrays kept between calls):

        * the first term's ``S_c = A21_cᵀ Λ2 Σ22 Λ2ᵀ A21_c = X_cᵀ X_c`` per level c;
        * a later term's ``Σ_l (Σ22 Λ2ᵀ H)_ll = (n_l I − Σ_l Σ22_ll) T⁻¹``: M22 = Λ2ᵀHΛ2 + I gives
          Σ22 Λ2ᵀ H = (I − Σ22) Λ2⁻¹, so only Σ22's diagonal level blocks are read (column
          products of L22⁻¹); neither H, G nor the full Σ22 is formed.

        Parameters
        ----------
        theta : ndarray
        L22 : ndarray (q2, q2)
            Lower Cholesky factor of M22 at ``theta`` (not modified).

        Returns
        -------
        (S, blocks) or None
            ``S`` of shape ``(l1, p1, p1)`` and one ``p × p`` block per later term; None when a
            later term's template is too close to singular (:func:`grad_blocks_declined`).
        """
        re, q2, q1, l1, p1 = self.re, self.q2, self.q1, self.l1, self.p1
        if grad_blocks_declined(re, theta):
            return None
        temps = _later_templates(re, theta)
        if self._linv is None:
            self._linv = np.empty((q2, q2), order="F")
        np.copyto(self._linv, L22)
        Linv, info = sla.lapack.dtrtri(self._linv, lower=1, overwrite_c=1)
        if info != 0:
            return None
        # Λ2ᵀ A21 by the later terms' level blocks T_kᵀ, into the kept q2 × q1 array (C order)
        B = self._work()
        offs = re.col_offsets[1:] - self.q1
        for k, t in enumerate(re.terms[1:]):
            T, p = temps[k], t.p
            src = self._A[offs[k]:offs[k + 1]].reshape(t.nlevels, p, q1)
            dst = B[offs[k]:offs[k + 1]].reshape(t.nlevels, p, q1)
            step = max(1, PASS_BYTES // (8 * p * q1))
            for r in range(0, t.nlevels, step):  # by level chunks that stay in cache
                _template_rows(T, src[r:r + step], dst[r:r + step])
        # Xᵀ = Bᵀ L22⁻ᵀ in place of Bᵀ (a Fortran-ordered view): X = L22⁻¹ Λ2ᵀ A21, C order
        X = sla.blas.dtrmm(1.0, Linv, B.T, side=1, lower=1, trans_a=1, overwrite_b=1).T
        S = np.empty((l1, p1, p1))
        # column products of X: the squares in one contiguous pass, then one pair (a, b) of the first
        # term's coefficients at a time
        sq = np.einsum("ij,ij->j", X, X).reshape(l1, p1)
        for a in range(p1):
            S[:, a, a] = sq[:, a]
            for b in range(a):
                S[:, a, b] = S[:, b, a] = np.einsum("ij,ij->j", X[:, a::p1], X[:, b::p1])
        LT = Linv.T  # row r: column r of L22⁻¹ (Σ22 = L22⁻ᵀ L22⁻¹); C order
        blocks = []
        for k, t in enumerate(re.terms[1:]):
            R = LT[int(offs[k]):int(offs[k + 1])].reshape(t.nlevels, t.p, q2)
            D = np.einsum("lik,ljk->ij", R, R)
            blocks.append((t.nlevels * np.eye(t.p) - D) @ np.linalg.inv(temps[k]))
        return S, blocks

    def trim(self) -> None:
        """Keep only the last Gram (the solution's θ): a fitted model's engine holds one q2 × q2 array."""
        while len(self._cache) > 1:
            self._cache.popitem(last=False)

    def schur(self, theta: np.ndarray, Lam2: sp.spmatrix, Gc: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Upper triangle of Λ2ᵀ (A22 − G) Λ2 in ``out`` (C order, q2 × q2; the lower triangle is not meaningful).

        Block (x, y), x ≤ y, of each pair of later terms is T_xᵀ (A22 − G)_xy T_y: G times −Λ2 by
        column blocks, then Λ2ᵀ by row blocks, each a batched product with the small templates.
        """
        re, q2, H = self.re, self.q2, self._H
        terms = re.terms[1:]
        offs = re.col_offsets[1:] - self.q1
        temps = [t.cov.template(theta[re.theta_slice(k + 1)]) for k, t in enumerate(terms)]
        if len(terms) == 1 and terms[0].p > 1:  # both passes by level chunks that stay in cache
            t, T = terms[0], temps[0]
            step = max(1, PASS_BYTES // (8 * t.p * q2)) * t.p
            for r in range(0, q2, step):
                Hc = H[r:r + step]
                np.matmul(Gc[r:r + step].reshape(-1, t.p), -T, out=Hc.reshape(-1, t.p))
                np.matmul(T.T, Hc.reshape(-1, t.p, q2), out=out[r:r + step].reshape(-1, t.p, q2))
            return self._add_sandwich(Lam2, out)
        for k, t in enumerate(terms):
            sl, T = slice(offs[k], offs[k + 1]), temps[k]
            if len(terms) == 1:
                np.matmul(Gc.reshape(-1, t.p), -T, out=H.reshape(-1, t.p))
            elif t.p == 1:
                np.multiply(Gc[:, sl], -T[0, 0], out=H[:, sl])
            else:
                H[:, sl] = (Gc[:, sl].reshape(q2, t.nlevels, t.p) @ -T).reshape(q2, t.q)
        for k, t in enumerate(terms):
            sl, T = slice(offs[k], offs[k + 1]), temps[k]
            if t.p == 1:
                np.multiply(H[sl], T[0, 0], out=out[sl])
            else:
                np.matmul(T.T, H[sl].reshape(t.nlevels, t.p, q2), out=out[sl].reshape(t.nlevels, t.p, q2))
        return self._add_sandwich(Lam2, out)

    def _add_sandwich(self, Lam2: sp.spmatrix, out: np.ndarray) -> np.ndarray:
        """``out += Λ2ᵀ A22 Λ2`` (its few nonzeros)."""
        q2 = self.q2
        S = (Lam2.T @ self._A22 @ Lam2).tocsr()
        rows = np.repeat(np.arange(q2), np.diff(S.indptr))
        out.reshape(-1)[rows * q2 + S.indices] += S.data
        return out


#: Below this smallest singular value of a later term's template, :func:`dense_grad_blocks`
#: declines (its identity ``Σ22 Λ2ᵀH = (I − Σ22)Λ2⁻¹`` loses about ε/σ² relative there).
GRAD_IDENTITY_MIN_SV = 1e-2


def _template_rows(T: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    """``dst[:, a] = Σ_b T[b, a] src[:, b]`` for ``(levels, p, m)`` arrays: Tᵀ times each level's rows.

    The zero entries of T (a lower-triangular template's upper ones) are skipped, and the last
    row of ``dst``, written last, holds the partial products of the others: no temporary array.
    """
    p = T.shape[0]
    for a in range(p):
        nz = [b for b in range(p) if T[b, a] != 0.0]
        if not nz:
            dst[:, a] = 0.0
            continue
        np.multiply(src[:, nz[0]], T[nz[0], a], out=dst[:, a])
        for b in nz[1:]:
            if a < p - 1:
                np.multiply(src[:, b], T[b, a], out=dst[:, p - 1])
                dst[:, a] += dst[:, p - 1]
            else:
                dst[:, a] += src[:, b] * T[b, a]


def _later_templates(re: Any, theta: np.ndarray) -> list[np.ndarray]:
    """The templates of the terms after the first at θ."""
    return [t.cov.template(theta[re.theta_slice(k + 1)]) for k, t in enumerate(re.terms[1:])]


def grad_blocks_declined(re: Any, theta: np.ndarray) -> bool:
    """Whether :meth:`DenseGram.grad_blocks` declines at θ: a later term's template is too close to
    singular for its identity (smallest singular value below :data:`GRAD_IDENTITY_MIN_SV`)."""
    return any(np.linalg.svd(T, compute_uv=False)[-1] < GRAD_IDENTITY_MIN_SV for T in _later_templates(re, theta))
