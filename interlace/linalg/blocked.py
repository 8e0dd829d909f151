"""Blocked PLS engine on numpy/scipy (no CHOLMOD needed).

Blocks, with Z = [Z1 Z2] (Z1 the term with most levels):

* L11: block-diagonal, one ``p1 × p1`` Cholesky factor per level of term 1
  (a vector of square roots for a scalar term).
* L21 = Λ2ᵀ A21 Λ1 L11⁻ᵀ: sparse (or dense when A21 is dense).
* L22: dense Cholesky of Λ2ᵀA22Λ2 + I − L21 L21ᵀ (with vector-valued later terms and a
  dense A21, L21 L21ᵀ comes from :mod:`interlace.linalg.dense_gram`, kept per θ of term 1).
* L31, L32, L33: the dense [X y] rows.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .crossprod import CrossProducts
from .dense_gram import DenseGram, ScaledGramFactor
from .pls import Factorization, PLSSystem
from .scalar_crossed import MAX_ELEMENTS as LEAN_MAX_ELEMENTS
from .scalar_crossed import ScalarCrossedFactor

__all__ = ["BlockedPLS", "GRAD_DENSE_ELEMENTS", "MAX_COLUMN_PAIRS"]

#: Largest number of (i ≤ j, k) column pairs kept for forming L21 L21ᵀ by ``bincount``.
MAX_COLUMN_PAIRS = 20_000_000


def _pair_count(A21: sp.csr_matrix) -> int:
    m = np.bincount(A21.indices, minlength=A21.shape[1])
    return int(np.sum(m * (m + 1) // 2))


def _small_monomial_map() -> np.ndarray:
    """The (16 × 21) map from the products t_a t_b of (t11, t21, t22, 1) to the 12 entries of the
    (3 × 4) matrix giving M11, M21, M22 from (a11, a12, a22, 1) and the 9 of the (3 × 3) matrix giving
    W11, W21, W22 · det from (M11, M21, M22) (see :meth:`BlockedPLS._factor_small`)."""
    B = np.zeros((4, 4, 21))
    one = 3
    entries = {  # output entry: [(a, b, coefficient), ...] for the monomial t_a t_b
        0: [(0, 0, 1.0)], 1: [(0, 1, 2.0)], 2: [(1, 1, 1.0)], 3: [(one, one, 1.0)],
        5: [(2, 0, 1.0)], 6: [(2, 1, 1.0)], 10: [(2, 2, 1.0)], 11: [(one, one, 1.0)],
        12 + 2: [(0, 0, 1.0)], 12 + 4: [(0, 2, -1.0)], 12 + 5: [(0, 1, 1.0)],
        12 + 6: [(2, 2, 1.0)], 12 + 7: [(1, 2, -2.0)], 12 + 8: [(1, 1, 1.0)],
    }
    for out, terms in entries.items():
        for a, b, coef in terms:
            B[a, b, out] += coef
    return B.reshape(16, 21)


_SMALL_MONOMIALS = _small_monomial_map()

#: Largest ``3 · levels · (p + 1)²`` for which a lone 2 × 2 term is evaluated from the outer
#: products of A31 (:meth:`BlockedPLS._factor_small`).
SMALL_PRODUCTS_ELEMENTS = 1_000_000

#: With more dense columns than this, a sparse L21 without precomputed pairs is multiplied
#: out by BLAS rank-k updates of dense column chunks (:meth:`BlockedPLS._subtract_gram_syrk`).
SYRK_MIN_COLUMNS = 500
#: Elements of one dense chunk of L21 in those updates (32 MB).
SYRK_CHUNK_ELEMENTS = 4_000_000
#: Largest q2² for which distinct pairs are found through a dense lookup table (no sort).
DENSE_PAIR_TABLE = 40_000_000
#: Column pairs processed at once where pair-sized temporaries are avoided.
PAIR_CHUNK = 1 << 18
#: Column pairs of the light columns kept, merged by weight class, when A21 has too many
#: pairs for :data:`MAX_COLUMN_PAIRS` (:meth:`BlockedPLS._class_split`).
SPLIT_COLUMN_PAIRS = 12_000_000


def _class_pair_matrix(A21: sp.csc_matrix, cols: np.ndarray, classes: np.ndarray, n_classes: int):
    """Upper-triangle entries of ``Σ_{k in cols} a_k a_kᵀ`` summed within each weight class.

    Returns
    -------
    positions : ndarray
        Flat positions ``i · q2 + j`` (i ≤ j), ascending.
    N : scipy.sparse.csr_matrix (positions × classes)
        ``N[p, κ] = Σ_{k in cols, class κ} a_ik a_jk``, so that ``A21 diag(c) A21ᵀ``
        restricted to ``cols`` is ``N @ c_class`` at ``positions`` whenever ``c`` is
        constant within a class (a gather from the few class weights: ~1 ns per entry).
    """
    q2 = A21.shape[0]
    itype = np.int32 if q2 * q2 < 2**31 else np.int64
    pos, data = [], []
    for kappa in range(n_classes):
        B = A21[:, cols[classes == kappa]]
        K = sp.triu(B @ B.T, format="coo")
        pos.append(K.row.astype(itype) * itype(q2) + K.col.astype(itype))
        data.append(K.data)
        del B, K
    # the pieces as the columns of one sparse (q2² × classes) matrix, turned into rows by scipy's
    # conversion (compiled, one pass): its non-empty rows are the distinct positions, in order,
    # each with its classes ascending (a lookup table and a counting sort in numpy took 1.6 s on
    # users × items, 1.1·10⁷ entries; this 0.2 s, within the memory of the fit's dense blocks)
    cptr = np.zeros(n_classes + 1, dtype=np.int64)
    np.cumsum([p.size for p in pos], out=cptr[1:])
    flat, vals = np.concatenate(pos), np.concatenate(data)
    del pos, data
    Q = sp.csc_matrix((vals, flat, cptr), shape=(q2 * q2, n_classes)).tocsr()
    del flat, vals
    nonempty = np.diff(Q.indptr) > 0
    positions = np.flatnonzero(nonempty).astype(itype)
    indptr = np.append(Q.indptr[:-1][nonempty], Q.indptr[-1])
    del nonempty
    return positions, sp.csr_matrix((Q.data, Q.indices, indptr), shape=(positions.size, n_classes))


def _column_order(A21: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """The positions of A21's CSR data in column-major order (rows ascending within a column) and
    the columns' starts in that order (``q1 + 1`` entries)."""
    order = np.argsort(A21.indices, kind="stable")
    cptr = np.concatenate([[0], np.cumsum(np.bincount(A21.indices, minlength=A21.shape[1]))])
    return order, cptr


def _scratch(buffers: tuple[np.ndarray, ...], dtype: Any, n: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """An array of ``n`` elements of ``dtype`` in the memory of the first of ``buffers`` (1-d
    float64 arrays) large enough, and the buffers left (that one's rest in place of it); a new
    array when none is."""
    size = n * np.dtype(dtype).itemsize
    for i, buf in enumerate(buffers):
        if buf.nbytes >= size:
            used = -(-size // 8)  # whole float64 elements
            return buf[:used].view(dtype)[:n], buffers[:i] + (buf[used:],) + buffers[i + 1:]
    return np.empty(n, dtype=dtype), buffers


def _column_pairs(A21: sp.csr_matrix, rows: np.ndarray, q2: int, scratch: tuple[np.ndarray, ...] = ()):
    """For every column k of A21, the pairs of its nonzeros (i ≤ j), grouped by distinct pair.

    Returns ``(ra, rb, K, indptr, ui, uj)``: per pair its column ``K`` and the ranks ``ra ≤ rb``
    of its two nonzeros within that column (in :func:`_column_order`); the pairs of the distinct
    pair ``(ui[d], uj[d])`` (ascending flat positions ``ui · q2 + uj``) are ``indptr[d]:indptr[d + 1]``,
    so that ``K`` and ``indptr`` with the products ``A21[i,k] A21[j,k]`` are a CSR matrix
    (distinct pairs × columns) and ``Σ_k c_k a_ik a_jk`` is one sparse mat-vec.

    Pair-sized arrays are small: the ranks in the narrowest unsigned type (uint8 when no
    column has more than 256 nonzeros), ``K`` in int32, and intermediates freed as soon as
    used.  InstEval's 1.8 M pairs keep 11 MB (int64 positions and indices took 58 MB).
    ``scratch``: 1-d float64 arrays whose memory the pair keys, their lookup table and the packed
    ranks may use (the engine passes the buffers of its pair products and of M22, which it fills
    afterwards: the grouping then costs little memory beyond what the fit keeps).
    """
    cols = A21.indices
    nnz = cols.size
    order, cptr = _column_order(A21)
    counts = np.diff(cptr)
    pos = np.arange(nnz)
    npair = np.repeat(cptr[1:], counts) - pos  # each element pairs with itself and the later ones of its column
    n_pairs = int(npair.sum())
    itype = np.int32 if max(n_pairs, nnz, A21.shape[1]) < 2**31 else np.int64
    ktype = np.int32 if q2 * q2 < 2**31 else np.int64
    top = int(counts.max(initial=1))
    rtype = np.uint8 if top <= 2**8 else np.uint16 if top <= 2**16 else itype
    # pair e is (first, second) in column order, first repeated over its pairs (a repeat, not a
    # gather); second = e − shift[first], formed chunk by chunk (no pair-sized index array)
    end = np.cumsum(npair)
    shift_first = (end - npair - pos).astype(itype)
    srows = rows[order].astype(ktype)
    rank = (pos - np.repeat(cptr[:-1], counts)).astype(rtype)
    # the two ranks packed in one word of twice their width, carried through the grouping below
    ptype, shift = {np.uint8: (np.uint16, 8), np.uint16: (np.uint32, 16)}.get(rtype, (np.uint64, 32))
    keys, scratch = _scratch(scratch, ktype, n_pairs)
    packed, scratch = _scratch(scratch, ptype, n_pairs)
    first_key = srows * ktype(q2)
    first_rank = rank.astype(ptype) << ptype(shift)
    for a in range(0, n_pairs, PAIR_CHUNK):
        b = min(a + PAIR_CHUNK, n_pairs)
        f0, f1 = np.searchsorted(end, [a, b - 1], side="right")
        reps = npair[f0:f1 + 1].copy()  # the chunk's pairs of firsts f0..f1
        reps[0] = min(int(end[f0]), b) - a
        if f1 > f0:
            reps[-1] = b - int(end[f1] - npair[f1])
        second = np.arange(a, b, dtype=itype) - np.repeat(shift_first[f0:f1 + 1], reps)
        np.add(np.repeat(first_key[f0:f1 + 1], reps), srows[second], out=keys[a:b])
        np.bitwise_or(np.repeat(first_rank[f0:f1 + 1], reps), rank[second], out=packed[a:b])
    del srows, order, rank, pos, npair, end, shift_first, first_key, first_rank
    if q2 * q2 <= DENSE_PAIR_TABLE:  # distinct keys by a lookup table: O(pairs), no sort
        table, scratch = _scratch(scratch, np.int32, q2 * q2)
        table.fill(0)
        table[keys] = 1
        uniq = np.flatnonzero(table)
        table[uniq] = np.arange(uniq.size, dtype=np.int32)
        inv = keys  # the keys' ranks written over them (both int32): no second pair-sized array
        for a in range(0, n_pairs, PAIR_CHUNK):
            inv[a:a + PAIR_CHUNK] = table[keys[a:a + PAIR_CHUNK]]
        del table
    else:
        uniq, inv = np.unique(keys, return_inverse=True)
        inv = inv.ravel().astype(itype)
    del keys
    # the pairs come column by column: with the distinct pairs as rows they are a CSC matrix, and
    # scipy's O(pairs) CSC → CSR conversion (a counting sort) groups them by distinct pair, each
    # group in ascending column order, carrying the packed ranks as data
    colptr = np.concatenate([[0], np.cumsum(counts * (counts + 1) // 2)]).astype(itype)
    G = sp.csc_matrix((packed, inv, colptr), shape=(uniq.size, A21.shape[1])).tocsr()
    del packed, inv, colptr
    packed, K, indptr = G.data, G.indices, G.indptr
    del G
    if np.dtype(rtype).itemsize * 2 == packed.itemsize and np.dtype(rtype).kind == "u":
        # the two halves of each word, read in place: ra the high one, rb the low one
        halves = packed.view(rtype).reshape(-1, 2)
        hi = 1 if np.little_endian else 0
        ra, rb = halves[:, hi], halves[:, 1 - hi]
    else:
        ra = (packed >> ptype(shift)).astype(rtype)
        rb = (packed & ptype((1 << shift) - 1)).astype(rtype)
    del packed
    ui, uj = np.divmod(uniq.astype(ktype), ktype(q2))  # ui · q2 + uj fits ktype
    return ra, rb, K, indptr, ui, uj


#: Below this θ of a later scalar term, :meth:`BlockedPLS.logdet_grad_blocks` sums its blocks over the
#: nonzeros of H instead of from diag(Σ22) (whose identity loses ~ε/θ² relative).
IDENTITY_MIN_THETA = 1e-2
#: Largest q2 · q1 for which :meth:`BlockedPLS.logdet_grad_blocks` forms Σ̃ A21 densely
#: when A21's column pairs are not kept.
GRAD_DENSE_ELEMENTS = 30_000_000


def _inv_lower_product(L: np.ndarray, full: bool = True, overwrite: bool = False) -> np.ndarray:
    """``(L Lᵀ)⁻¹`` from the lower Cholesky factor ``L`` (LAPACK ``dpotri``): its lower triangle,
    and the upper one too when ``full``; with ``overwrite`` (and ``L`` Fortran-ordered) in ``L``'s memory."""
    S, info = sla.lapack.dpotri(L, lower=1, overwrite_c=int(overwrite))
    if info != 0:
        raise np.linalg.LinAlgError("dpotri failed")
    if full:
        S = np.tril(S)
        S += np.tril(S, -1).T
    return S


class BlockedPLS(PLSSystem):
    """Blocked Cholesky engine; see the module docstring.

    Parameters
    ----------
    re : RandomEffects
    p : int
        Number of fixed-effects columns.
    """

    engine = "blocked"
    #: column pairs of a sparse A21 (:func:`_column_pairs`), found at the first load; None: not kept
    _pairs: Any
    #: the numbers of the last A21 the pair matrix was built from
    _pair_matrix_src: Any
    #: θ whose L22 :meth:`_invert_l22` overwrote with Σ22 (absent: L22 holds the factor)
    _l22_spent: np.ndarray
    _numeric = ("cp", "A33", "_L33", "A11", "A21", "A22", "A31", "A32", "_pair_prod", "_prod_scratch", "_pair_matrix",
                "_pair_matrix_src", "_split", "_m22_buf", "_L11", "_L11_parts", "_A11_stack", "_L21", "_L22",
                "_L31", "_L32", "_D1blocks", "_T1", "_dense_gram", "_pending", "_small", "_l22_spent", "_lean",
                "_lean_pending", "_forward_theta")

    def __init__(self, re: Any, p: int) -> None:
        super().__init__(re, p)
        t1 = re.terms[0]
        self.l1, self.p1 = t1.nlevels, t1.p
        self.q1 = t1.q
        self.q2 = re.q - self.q1
        p1, l1 = self.p1, self.l1
        if p1 == 2:  # θ positions of T1's entries (1,1), (2,1), (2,2) (−1: held at 0), for _factor_small
            cov = t1.cov
            pos = {(int(r), int(c)): int(i) for r, c, i in zip(cov.rows, cov.cols, cov.theta_index)}
            off = re.theta_slice(0).start
            self._small_index = tuple(pos[rc] + off if rc in pos else -1 for rc in ((0, 0), (1, 0), (1, 1)))
            # columns of [θ, 0, 1] giving (t11, t21, t22, 1), for factor_many
            self._small_ext = np.array([i if i >= 0 else re.n_theta for i in self._small_index] + [re.n_theta + 1])
        # index pattern of the block-diagonal D1 = blockdiag(T1 L11_i^{-T})
        r, c = np.meshgrid(np.arange(p1), np.arange(p1), indexing="ij")
        base = np.arange(l1)[:, None, None] * p1
        self._d1_rows = (base + r).ravel()
        self._d1_cols = (base + c).ravel()
        # pattern of Λ2 (terms 2..k), fixed once: data entry -> θ index
        if self.q2:
            marker = re.Lambda(np.arange(1.0, re.n_theta + 1.0))[self.q1:, self.q1:].tocsc()
            marker.sort_indices()
            self._lam2 = (marker.indices.copy(), marker.indptr.copy(), marker.data.astype(np.int64) - 1)
            # all later terms scalar: Λ2 is diagonal and scaling replaces sparse products
            self._diag2 = all(t.p == 1 for t in re.terms[1:])
            if self._diag2:
                self._lam2_lind = marker.data.astype(np.int64) - 1
        #: θ positions of a scalar first term and of the later scalar terms' λ (a single θ: an int), for
        #: :class:`~interlace.linalg.scalar_crossed.ScalarCrossedFactor`; None when not every term is scalar
        self._lean_index: tuple[int, Any] | None = None
        cov1 = t1.cov
        if self.q2 and p1 == 1 and self._diag2 and cov1.theta_index.size == 1:
            lind = self._lam2_lind
            one = bool(np.all(lind == lind[0]))
            self._lean_index = (re.theta_slice(0).start + int(cov1.theta_index[0]), int(lind[0]) if one else lind)

    def _Lambda2(self, theta: np.ndarray) -> sp.csc_matrix:
        idx, ptr, lind = self._lam2
        return sp.csc_matrix((theta[lind], idx, ptr), shape=(self.q2, self.q2))

    def load(self, cp: CrossProducts) -> None:
        """Take the blocks of ``cp`` (the patterns of A21 and A22 must not change between loads)."""
        super().load(cp)
        b = cp.blocks()
        self.__dict__.pop("_split", None)  # its pair sums hold the previous data's weights
        self.__dict__.pop("_last_factor", None)  # a factorization of the previous data
        self.__dict__.pop("_dense_gram", None)  # its Gram holds the previous data's
        self.A11, self.A31 = b["A11"], b["A31"]
        if self.p1 == 2:  # the three distinct entries of each 2 × 2 block, stacked for one product per θ
            A = self.A11
            self._A11_stack = np.stack([A[:, 0, 0], A[:, 0, 1], A[:, 1, 1]])
        self.__dict__.pop("_pending", None)
        self.__dict__.pop("_lean", None)  # built from these products at the first factorization
        self.__dict__.pop("_lean_pending", None)
        self.__dict__.pop("_forward_theta", None)  # L31 and L32 of the previous data (forward_C)
        self._small = self._small_products() if self.q2 == 0 and self.p1 == 2 else None
        if self.q2:
            self.A22, self.A32 = b["A22"], b["A32"]
            A21 = b["A21"]
            if sp.issparse(A21) and not hasattr(self, "_a21_rows"):
                self._a21_rows = np.repeat(np.arange(self.q2, dtype=A21.indices.dtype), np.diff(A21.indptr))
            self.A21 = A21
            if self._use_pairs():
                self._pair_prod = self._pair_products(A21, reload="_pair_prod" in self.__dict__)

    def _D1(self, T1: np.ndarray):
        """L11 blocks and D1 = T1 L11⁻ᵀ per level; returns (logdet contribution, D1 blocks)."""
        if self.p1 == 1:
            t = T1[0, 0]
            d = np.sqrt(t * t * self.A11[:, 0, 0] + 1.0)
            self._L11 = d[:, None, None]
            return 2.0 * np.sum(np.log(d)), (t / d)[:, None, None]
        if self.p1 == 2:
            return self._D1_2x2(T1)
        M11 = T1.T @ self.A11 @ T1  # batched T1ᵀ A11_i T1 (BLAS; einsum's generic loop is ~50× slower at p1 = 15)
        M11 += np.eye(self.p1)
        L11 = np.linalg.cholesky(M11)
        self._L11 = L11
        # D1_i = T1 L11_i^{-T}  <=>  D1_i^T = L11_i^{-1} T1^T
        D1t = np.linalg.solve(L11, np.broadcast_to(T1.T, L11.shape))
        ld = 2.0 * np.sum(np.log(np.diagonal(L11, axis1=1, axis2=2)))
        return ld, np.transpose(D1t, (0, 2, 1))

    def _D1_2x2(self, T1: np.ndarray):
        """Closed-form 2 × 2 blocks (a random intercept and slope): no batched LAPACK calls.

        With T lower triangular, M = Tᵀ A T + I has entries linear in the stacked
        (a11, a12, a22) of each level: one 3 × 3 by 3 × l1 product gives them all.
        """
        t11, t21, t22 = T1[0, 0], T1[1, 0], T1[1, 1]
        C = np.array([[t11 * t11, 2.0 * t11 * t21, t21 * t21],
                      [0.0, t22 * t11, t22 * t21],
                      [0.0, 0.0, t22 * t22]])
        m = C @ self._A11_stack  # rows: m11 − 1, m21, m22 − 1
        l11 = np.sqrt(m[0] + 1.0)
        l21 = m[1] / l11
        l22 = np.sqrt(m[2] + 1.0 - l21 * l21)
        self._L11 = None  # built from its parts only when a solve needs it (see _l11)
        self._L11_parts = (l11, l21, l22)
        # D1 = T L⁻ᵀ, with L⁻ᵀ = [[1/l11, −l21/(l11 l22)], [0, 1/l22]]
        r11 = 1.0 / l11
        D = np.empty((self.l1, 2, 2))
        D[:, 0, 0] = t11 * r11
        D[:, 1, 0] = t21 * r11
        D[:, 0, 1] = D[:, 0, 0] * (-l21 / l22)
        D[:, 1, 1] = (t22 - t21 * l21 * r11) / l22
        return 2.0 * float(np.log(l11 * l22).sum()), D

    def _small_products(self):
        """What :meth:`_factor_small` needs from the data: ``(A11 entries and ones, outer products of A31)``.

        One 2 × 2 term and nothing else (a random intercept and slope per subject): per level
        the 3 distinct entries of A11 with a row of ones, and the products ``u uᵀ``,
        ``u vᵀ + v uᵀ``, ``v vᵀ`` of the level's two columns u, v of A31, flattened so that
        ``Σ_l A31_l W_l A31_lᵀ`` is one vector-matrix product.  None when that matrix would be large.
        """
        k = self.A31.shape[0]
        if 3 * self.l1 * k * k > SMALL_PRODUCTS_ELEMENTS:
            return None
        R = self.A31.reshape(k, self.l1, 2)
        u, v = R[:, :, 0].T, R[:, :, 1].T  # (l1, k)
        uv = u[:, :, None] * v[:, None, :]
        G = np.concatenate([(u[:, :, None] * u[:, None, :]).reshape(self.l1, k * k),
                            (uv + np.transpose(uv, (0, 2, 1))).reshape(self.l1, k * k),
                            (v[:, :, None] * v[:, None, :]).reshape(self.l1, k * k)])
        return np.vstack([self._A11_stack, np.ones(self.l1)]), G

    def _factor_small(self, theta: np.ndarray, T1: tuple[float, float, float]) -> Factorization:
        """The criterion's pieces for one 2 × 2 term and no other (see :meth:`_small_products`).

        With M_l = Tᵀ A11_l T + I, ``log|L11|² = Σ log det M_l`` and L31 L31ᵀ = Σ_l A31_l W_l A31_lᵀ
        with W_l = D1_l D1_lᵀ = T M_l⁻¹ Tᵀ, whose three entries are linear in those of M_l over
        det M_l: a dozen numpy calls per θ instead of the level blocks of L11 and D1 (which
        :meth:`_full_state` forms only when a solve needs them).
        """
        A11e, G = self.__dict__["_small"]
        t11, t21, t22 = T1
        # rows: M11, M21, M22 of every level
        m = np.array([[t11 * t11, 2.0 * t11 * t21, t21 * t21, 1.0],
                      [0.0, t22 * t11, t22 * t21, 0.0],
                      [0.0, 0.0, t22 * t22, 1.0]]) @ A11e
        det = m[0] * m[2] - m[1] * m[1]
        # W det = T adj(M) Tᵀ, adj(M) = [[M22, −M21], [−M21, M11]]: rows W11, W21 (G holds u vᵀ + v uᵀ), W22
        W = np.array([[0.0, 0.0, t11 * t11],
                      [0.0, -t11 * t22, t11 * t21],
                      [t22 * t22, -2.0 * t21 * t22, t21 * t21]]) @ m
        W /= det
        k = self.p + 1
        M33 = self.A33 - (W.ravel() @ G).reshape(k, k)
        self._pending = theta.copy()
        for name in ("_L31", "_D1blocks", "_L11", "_L11_parts"):
            self.__dict__.pop(name, None)
        return self._finish(M33, float(np.log(det).sum()))

    def factor_many(self, thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(ldL2, ldRX2, pwrss)`` at each row of ``thetas`` in one vectorized pass, for a lone 2 × 2
        term (:meth:`_factor_small`; None for other structures).  The engine's own factor is not
        changed.  Entries are inf where a factor fails."""
        small = self.__dict__.get("_small")
        if small is None:
            return None
        A11e, G = small
        th = np.atleast_2d(np.asarray(thetas, float))
        K = th.shape[0]
        # monomials t_a t_b of (t11, t21, t22, 1); C (rows of M) and adj-products K are linear in them
        ext = np.concatenate([th, np.zeros((K, 1)), np.ones((K, 1))], axis=1)[:, self._small_ext]
        CK = (ext[:, :, None] * ext[:, None, :]).reshape(K, 16) @ _SMALL_MONOMIALS
        m = CK[:, :12].reshape(K, 3, 4) @ A11e
        det = m[:, 0] * m[:, 2] - m[:, 1] * m[:, 1]
        Kc = CK[:, 12:].reshape(K, 3, 3)
        W = (Kc @ m) / det[:, None, :]
        k = self.p + 1
        M33 = self.A33[None] - (W.reshape(K, -1) @ G).reshape(K, k, k)
        with np.errstate(all="ignore"):
            ldL2 = np.log(det).sum(axis=1)
            try:
                L = np.linalg.cholesky(M33)
            except np.linalg.LinAlgError:  # some point not positive definite: one at a time
                out = np.array([[f.ldL2, f.ldRX2, f.pwrss] if f.ok else [np.inf] * 3
                                for f in (self.factor(t) for t in th)])
                return out[:, 0], out[:, 1], out[:, 2]
            d = np.diagonal(L, axis1=1, axis2=2)
            ldRX2 = 2.0 * np.log(d[:, :self.p]).sum(axis=1)
        bad = ~(np.isfinite(ldL2) & np.isfinite(L.reshape(K, -1).sum(axis=1)))
        pwrss = d[:, self.p] ** 2
        if bad.any():
            ldL2, ldRX2, pwrss = (np.where(bad, np.inf, v) for v in (ldL2, ldRX2, pwrss))
        return ldL2, ldRX2, pwrss

    def _full_state(self) -> None:
        """The level blocks of L11, D1 and L31 at the θ :meth:`_factor_small` left pending, or L11, D1, L31
        and L21 at the θ :meth:`_factor_lean` left pending."""
        lean = self.__dict__.pop("_lean_pending", None)
        if lean is not None:
            t1, lam, d, delta = lean
            self._L11, self._D1blocks, self._T1 = d[:, None, None], delta[:, None, None], np.array([[t1]])
            self._L31 = self.A31 * delta
            L21 = self.A21 * delta
            L21 *= np.reshape(lam, (-1, 1))  # as _scaled_blocks: λ (A21 D1)
            self._L21 = L21
            return
        theta = self.__dict__.pop("_pending", None)
        if theta is not None:
            T1 = self.re.terms[0].cov.template(theta[self.re.theta_slice(0)])
            D1 = self._D1(T1)[1]
            self._D1blocks, self._T1 = D1, T1
            self._L31 = self._times_D1(self.A31, D1)

    def _l11(self) -> np.ndarray:
        """The ``(l1, p1, p1)`` blocks of L11 at the last θ."""
        self._full_state()
        if self._L11 is None:
            l11, l21, l22 = self._L11_parts
            L = np.zeros((self.l1, 2, 2))
            L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = l11, l21, l22
            self._L11 = L
        return self._L11

    def _times_D1(self, A, D1):
        """A (k × q1, dense or sparse) times blockdiag(D1)."""
        if sp.issparse(A):
            if self.p1 == 1:
                return (A @ sp.diags(D1[:, 0, 0])).tocsr()
            D = sp.csr_matrix((D1.ravel(), (self._d1_rows, self._d1_cols)), shape=(self.q1, self.q1))
            return (A @ D).tocsr()
        if self.p1 == 1:
            return A * D1[:, 0, 0]
        k = A.shape[0]
        R = A.reshape(k, self.l1, self.p1)
        out = R[:, :, 0, None] * D1[None, :, 0, :]
        for a in range(1, self.p1):  # p1 multiply-adds: far faster than einsum's generic loop here
            out += R[:, :, a, None] * D1[None, :, a, :]
        return out.reshape(k, self.q1)

    def _use_pairs(self) -> bool:
        """Whether L21 L21ᵀ is formed from precomputed column pairs of a sparse A21.

        With a scalar first term, L21 L21ᵀ = Λ2ᵀ (A21 diag(δ²) A21ᵀ) Λ2, and A21 diag(δ²) A21ᵀ
        is a weighted sum over the columns k of A21 of outer products a_k a_kᵀ whose pattern
        never changes: its entries are one sparse mat-vec over the pairs (i ≤ j, k) instead
        of a sparse matrix product per evaluation (InstEval: 1.8 M pairs; 3 scalar terms:
        8 → 3 ms, with a 2 × 2 term: 20 → 5 ms).
        """
        if not (self.q2 and self.p1 == 1 and sp.issparse(self.A21)):
            return False
        if not hasattr(self, "_pairs"):
            n_pairs = _pair_count(self.A21)
            self._pairs = None
            if n_pairs <= MAX_COLUMN_PAIRS:
                # the grouping's temporaries live in the memory of the pair products and of M22,
                # which the first load and the first factorization then fill: no memory of their own
                self._prod_scratch = np.empty(n_pairs)
                self._pairs = _column_pairs(self.A21, self._a21_rows, self.q2,
                                            scratch=(self._prod_scratch, self._m22_buffer().ravel()))
        return self._pairs is not None

    def _pair_products(self, A21: sp.csr_matrix, reload: bool = False) -> np.ndarray:
        """``A21[i,k] A21[j,k]`` for every column pair of :func:`_column_pairs`, in its order.

        From the ranks in chunks (no pair-sized temporaries) at an engine's first load; an engine
        loaded again (PIRLS: new working weights every iteration) keeps the pairs' data positions
        (int32) and gathers from them, 1.5× faster.
        """
        ra, rb, K, indptr, ui, uj = self._pairs
        prod = self.__dict__.pop("_prod_scratch", None)  # the memory :meth:`_use_pairs` grouped the pairs in
        pos = self.__dict__.get("_pair_positions")
        if pos is not None:
            return A21.data[pos[0]] * A21.data[pos[1]]
        if not hasattr(self, "_pair_order"):
            self._pair_order = tuple(a.astype(K.dtype) for a in _column_order(A21))
        order, cptr = self._pair_order
        start = cptr[:-1]
        if reload:
            Pi, Pj = np.empty(K.size, dtype=K.dtype), np.empty(K.size, dtype=K.dtype)
            for a in range(0, K.size, PAIR_CHUNK):
                base = start[K[a:a + PAIR_CHUNK]]
                Pi[a:a + PAIR_CHUNK] = order[base + ra[a:a + PAIR_CHUNK]]
                Pj[a:a + PAIR_CHUNK] = order[base + rb[a:a + PAIR_CHUNK]]
            self._pair_positions = (Pi, Pj)
            return A21.data[Pi] * A21.data[Pj]
        v = A21.data[order]  # column-major values
        if prod is None or prod.size != K.size:
            prod = np.empty(K.size)
        for a in range(0, K.size, PAIR_CHUNK):  # in chunks: no pair-sized temporaries
            b = min(K.size, a + PAIR_CHUNK)
            base = start[K[a:b]]
            np.multiply(v[base + ra[a:b]], v[base + rb[a:b]], out=prod[a:b])
        return prod

    def _class_split(self):
        """Light and heavy columns of a sparse A21 whose column pairs are too many to keep.

        With a scalar first term the weight of column k in A21 diag(δ²) A21ᵀ is
        δ_k² = θ²/(θ² A11_k + 1): columns with equal A11_k (unweighted data: the same
        number of rows) share it at every θ.  The columns with fewest nonzeros, up to
        :data:`SPLIT_COLUMN_PAIRS` pairs, are kept as one sparse matrix of their pair sums
        per weight class (:func:`_class_pair_matrix`): per evaluation one mat-vec over the
        classes.  The others (users who rated hundreds of items) go through the BLAS
        rank-k updates.  Users × items (6,040 × 3,699, 1.97·10⁸ pairs): the 3,927 users
        with fewest ratings give 1.2·10⁷ pairs (1.1·10⁷ after merging into 118 classes,
        a 27 ms mat-vec) and the rank-k updates shrink to the other 2,113 (0.56 s instead
        of 1.5 s per evaluation).

        Returns
        -------
        dict or None
            ``heavy`` (columns for the rank-k updates), ``rep`` (one column per class),
            ``positions`` and ``N``; None when the split does not apply.
        """
        if "_split" in self.__dict__:
            return self._split
        self._split = None
        if not (self.q2 >= SYRK_MIN_COLUMNS and self.p1 == 1 and self._diag2 and sp.issparse(self.A21)):
            return None
        m = np.bincount(self.A21.indices, minlength=self.q1).astype(np.int64)
        order = np.argsort(m, kind="stable")
        n_light = int(np.searchsorted(np.cumsum(m[order] * (m[order] + 1) // 2), SPLIT_COLUMN_PAIRS, side="right"))
        light = order[:n_light]
        a11 = self.A11[light, 0, 0]
        values, classes = np.unique(a11, return_inverse=True)
        if n_light == 0 or values.size > n_light // 4:  # weights (nearly) all distinct: nothing to merge
            return None
        classes = classes.ravel()
        rep = light[np.unique(classes, return_index=True)[1]]
        positions, N = _class_pair_matrix(self.A21.tocsc(), light, classes, values.size)
        heavy = np.sort(order[n_light:])
        # the heavy columns of A21, in CSC once: per evaluation only their values are rescaled
        A21h = self.A21[:, heavy].tocsc()
        self._split = {"heavy": heavy, "rep": rep, "positions": positions, "N": N, "A21_heavy": A21h,
                       "heavy_of_entry": heavy[np.repeat(np.arange(heavy.size), np.diff(A21h.indptr))]}
        return self._split

    def _pair_gram(self, c: np.ndarray) -> np.ndarray:
        """Entries (i ≤ j) of A21 diag(c) A21ᵀ at the distinct pairs ``(ui, uj)``, as a vector."""
        ra, rb, K, indptr, ui, uj = self._pairs
        P = self.__dict__.get("_pair_matrix")
        if P is None or self._pair_matrix_src is not self._pair_prod:
            if not hasattr(self, "_pair_upper"):
                self._pair_upper = ui * self.q2 + uj  # flat position of (i, j), i ≤ j, in M22: ascending
            P = sp.csr_matrix((self._pair_prod, K, indptr), shape=(ui.size, self.l1))
            self._pair_matrix, self._pair_matrix_src = P, self._pair_prod
        return P @ c

    def _scaled_blocks(self, theta, D1, fill: bool = True):
        """L21, Λ2ᵀA22Λ2 and A32Λ2 when Λ2 is diagonal (every later term scalar); ``fill=False``: the
        M22 buffer is returned as it is (the weight-class path writes all of it)."""
        lam2 = theta[self._lam2_lind]
        A21 = self.A21
        if sp.issparse(A21):
            if self.p1 == 1:
                data = A21.data * lam2[self._a21_rows] * D1[:, 0, 0][A21.indices]
                L21 = sp.csr_matrix((data, A21.indices, A21.indptr), shape=A21.shape)
            else:
                L21 = self._times_D1(A21, D1)
                L21 = sp.csr_matrix((L21.data * lam2[np.repeat(np.arange(self.q2), np.diff(L21.indptr))],
                                     L21.indices, L21.indptr), shape=L21.shape)
        else:
            L21 = lam2[:, None] * self._times_D1(A21, D1)
        # only M22's upper triangle is ever read (see factor); A22 = Z2ᵀWZ2 is sparse in a
        # dense array, so zero the buffer and scatter its scaled upper nonzeros
        M22 = self._m22_buffer()
        if not fill:
            return L21, M22, self.A32 * lam2[None, :]
        pos, r, c, src = self._a22_upper()
        M22.fill(0.0)
        values = self.A22.data if sp.issparse(self.A22) else self.A22.ravel()
        M22.ravel()[pos] = values[src] * (lam2[r] * lam2[c])
        return L21, M22, self.A32 * lam2[None, :]

    def _a22_upper(self):
        """Flat positions, rows, columns of the possible nonzeros of A22 on or above the diagonal,
        and where their values sit in ``A22.data`` (sparse A22) or ``A22.ravel()`` (dense)."""
        if not hasattr(self, "_a22_pattern"):
            if sp.issparse(self.A22):
                A = self.A22
                r = np.repeat(np.arange(self.q2), np.diff(A.indptr))
                c = A.indices.astype(np.int64)
                src = np.arange(c.size)
            else:
                src = self.cp.a22_support()
                r, c = np.divmod(src, self.q2)
            keep = r <= c
            self._a22_pattern = (r[keep] * self.q2 + c[keep], r[keep], c[keep], src[keep])
        return self._a22_pattern

    def _sandwich(self, theta: np.ndarray, gvals: np.ndarray) -> np.ndarray:
        """Upper triangle of Λ2ᵀ (A22 − G) Λ2 in the M22 buffer, G the pair Gram (values ``gvals``).

        Λ2 = blockdiag_k(I ⊗ T_k) over the terms after the first, so each block (a, b), a ≤ b,
        is T_aᵀ S_ab T_b per pair of levels: a scalar multiple for scalar terms, a small
        einsum otherwise.
        """
        ui, uj = self._pairs[4], self._pairs[5]
        S = self._m22_buffer()
        np.copyto(S, self.A22)
        flat = S.ravel()
        flat[self._pair_upper] -= gvals
        off = ui != uj  # vector-term diagonal blocks need the lower triangle too
        flat[uj[off] * self.q2 + ui[off]] -= gvals[off]
        re = self.re
        terms = re.terms[1:]
        offs = re.col_offsets[1:] - self.q1
        temps = [t.cov.template(theta[re.theta_slice(k + 1)]) for k, t in enumerate(terms)]
        for a, ta in enumerate(terms):
            sa = slice(offs[a], offs[a + 1])
            for b in range(a, len(terms)):
                tb = terms[b]
                sb = slice(offs[b], offs[b + 1])
                blk = S[sa, sb]
                if ta.p == 1 and tb.p == 1:
                    blk *= temps[a][0, 0] * temps[b][0, 0]
                else:
                    B = blk.reshape(ta.nlevels, ta.p, tb.nlevels, tb.p)
                    blk[...] = np.einsum("ij,xiyk,kl->xjyl", temps[a], B, temps[b]).reshape(blk.shape)
        return S

    def _split_schur(self, theta: np.ndarray, D1: np.ndarray, M22: np.ndarray) -> np.ndarray:
        """Upper triangle of Λ2ᵀ(A22 − A21 diag(δ²) A21ᵀ)Λ2 in M22, on the weight-class path.

        The unscaled Schur block S = A22 − A21 diag(δ²) A21ᵀ depends on the first term's θ
        only (δ² is a function of it; Λ2 is diagonal): it is kept, with that θ, in a second
        q2 × q2 array, and M22 is S scaled by Λ2 on both sides.  Evaluations that change only
        the later terms' θ (half of a finite-difference stencil's points, grouped by
        :class:`~interlace.optimize.stencil.GroupedCriteria`) skip the light pairs' mat-vec and
        the heavy columns' rank-k updates (users × items: 0.6 of 0.9 s).
        """
        split = self._split
        key = theta[self.re.theta_slice(0)].tobytes()
        S = split.get("schur")
        if split.get("schur_key") != key:
            split["schur_key"] = None
            if S is None:
                S = split["schur"] = np.empty((self.q2, self.q2))
            pos, _, _, src = self._a22_upper()
            S.fill(0.0)
            S.ravel()[pos] = (self.A22.data if sp.issparse(self.A22) else self.A22.ravel())[src]
            d = D1[:, 0, 0]
            S.ravel()[split["positions"]] -= split["N"] @ (d[split["rep"]] ** 2)
            A = split["A21_heavy"]  # the heavy columns of A21 δ, scaled in place of a sparse copy
            Ah = sp.csc_matrix((A.data * d[split["heavy_of_entry"]], A.indices, A.indptr), shape=A.shape)
            S = split["schur"] = self._subtract_gram_syrk(Ah, S)
            split["schur_key"] = key
        lam2 = theta[self._lam2_lind]
        if lam2.min() == lam2.max():  # one scalar later term
            np.multiply(S, lam2[0] * lam2[0], out=M22)
        else:
            np.multiply(S, lam2[:, None], out=M22)
            M22 *= lam2[None, :]
        return M22

    def _subtract_gram_syrk(self, L21: sp.spmatrix, M22: np.ndarray) -> np.ndarray:
        """M22 − L21 L21ᵀ (upper triangle) by BLAS ``dsyrk`` over dense column chunks of L21.

        For a sparse L21 whose column pairs are too many to precompute (users × items
        designs: ~10⁸ pairs) a sparse product per evaluation is slow and its result dense
        anyway; rank-k updates of dense chunks run at BLAS speed with bounded memory.
        """
        M = M22 if M22.flags.c_contiguous else np.ascontiguousarray(M22)
        Lc = L21.tocsc()  # no copy when L21 is CSC already
        chunk = max(64, int(SYRK_CHUNK_ELEMENTS // max(self.q2, 1)))
        C = M.T  # Fortran order: dsyrk updates it in place; its lower triangle is M's upper one
        for a in range(0, Lc.shape[1], chunk):
            B = Lc[:, a:a + chunk].toarray(order="F")
            C = sla.blas.dsyrk(-1.0, B, beta=1.0, c=C, lower=1, overwrite_c=1)
        return C.T

    def _m22_buffer(self) -> np.ndarray:
        """A reused q2 × q2 array for M22 (and, factored in place, L22): no 10-MB allocation per θ."""
        buf = self.__dict__.get("_m22_buf")
        if buf is None or buf.shape != (self.q2, self.q2):
            buf = self._m22_buf = np.empty((self.q2, self.q2))
        return buf

    def factor(self, theta: np.ndarray) -> Factorization:
        re = self.re
        theta = np.asarray(theta, float)
        self.__dict__.pop("_forward_theta", None)
        if self.__dict__.get("_small") is not None:
            # T1's three entries as floats, read off θ without forming the template
            th = theta.tolist()
            i11, i21, i22 = self._small_index
            return self._factor_small(theta, (th[i11] if i11 >= 0 else 0.0, th[i21] if i21 >= 0 else 0.0,
                                              th[i22] if i22 >= 0 else 0.0))
        if self._lean_index is not None:
            f = self._factor_lean(theta)
            if f is not None:
                return f
        last = self.__dict__.pop("_last_factor", None)
        if last is not None and last[0] == theta.tobytes():  # the state is still this θ's
            self._last_factor = last
            return last[1]
        T1 = re.terms[0].cov.template(theta[re.theta_slice(0)])
        self.__dict__.pop("_pending", None)
        self.__dict__.pop("_lean_pending", None)
        try:
            ld1, D1 = self._D1(T1)
        except np.linalg.LinAlgError:
            return Factorization(np.inf, np.inf, np.inf, ok=False)
        self._D1blocks, self._T1 = D1, T1
        L31 = self._times_D1(self.A31, D1)
        self._L31 = L31
        ld2 = 0.0
        dense = False  # factored through DenseGram (see forward_C)
        if self.q2:
            pairs = self._use_pairs()
            subtracted = pairs  # L21 L21ᵀ already subtracted from M22
            if self._diag2:
                L21, M22, LamA32 = self._scaled_blocks(theta, D1, fill=pairs or self._class_split() is None)
                if pairs:
                    # only the upper triangle is subtracted (in memory order): the Cholesky reads nothing else
                    lam2 = theta[self._lam2_lind]
                    ui, uj = self._pairs[4], self._pairs[5]
                    vals = self._pair_gram(D1[:, 0, 0] ** 2)
                    vals *= lam2[ui] * lam2[uj]
                    M22.ravel()[self._pair_upper] -= vals
            elif not pairs and not sp.issparse(self.A21):  # vector-valued later terms, dense A21 (crossed)
                Lam2 = self._Lambda2(theta)
                dg = self.__dict__.get("_dense_gram")
                if dg is None:
                    dg = self._dense_gram = DenseGram(re, self.A11, self.A21, self.A22)
                G = dg.gram(theta[re.theta_slice(0)].tobytes(), T1, D1)
                M22 = dg.schur(theta, Lam2, G, self._m22_buffer())
                L21 = ScaledGramFactor(Lam2, self.A21, D1)
                LamA32 = np.asarray((Lam2.T @ self.A32.T).T)
                subtracted = dense = True
            else:
                Lam2 = self._Lambda2(theta)
                L21 = Lam2.T @ self._times_D1(self.A21, D1)
                LamA32 = np.asarray((Lam2.T @ self.A32.T).T)
                if pairs:  # Λ2ᵀ (A22 − A21 diag(δ²) A21ᵀ) Λ2, one pass over the dense block
                    M22 = self._sandwich(theta, self._pair_gram(D1[:, 0, 0] ** 2))
                else:
                    M22 = np.asarray((Lam2.T @ (Lam2.T @ self.A22).T).T)
            split = None if subtracted else self._class_split()
            if split is not None:
                M22 = self._split_schur(theta, D1, M22)
            elif not subtracted:
                if sp.issparse(L21) and self.q2 >= SYRK_MIN_COLUMNS:
                    M22 = self._subtract_gram_syrk(L21, M22)
                elif not sp.issparse(L21) and M22.flags.c_contiguous:
                    # BLAS rank-k update of M22's upper triangle in place (M22ᵀ's lower, Fortran order):
                    # half the flops of L21 L21ᵀ and no q2 × q2 temporary; the Cholesky reads nothing else
                    sla.blas.dsyrk(-1.0, np.asarray(L21, float).T, beta=1.0, c=M22.T, trans=1, lower=1,
                                   overwrite_c=1)
                else:
                    LL = L21 @ L21.T
                    M22 -= LL.toarray() if sp.issparse(LL) else LL
            M22[np.diag_indices_from(M22)] += 1.0
            try:
                # M22ᵀ is Fortran-ordered: LAPACK factors it in place (L22 L22ᵀ = M22ᵀ = M22),
                # reading only M22ᵀ's lower triangle, i.e. M22's upper one
                L22 = sla.cholesky(M22.T, lower=True, check_finite=False, overwrite_a=True)
            except np.linalg.LinAlgError:
                return Factorization(np.inf, np.inf, np.inf, ok=False)
            self._L21, self._L22 = L21, L22
            self.__dict__.pop("_l22_spent", None)
            R = LamA32 - np.asarray(L21 @ L31.T).T
            L32 = sla.solve_triangular(L22, R.T, lower=True, check_finite=False).T
            self._L32 = L32
            if dense:
                self._forward_theta = theta.tobytes()
            ld2 = 2.0 * float(np.sum(np.log(np.diag(L22))))
            M33 = self.A33 - L31 @ L31.T - L32 @ L32.T
        else:
            M33 = self.A33 - L31 @ L31.T
        f = self._finish(M33, float(ld1) + ld2)
        if f.ok and self.__dict__.get("_split") is not None:
            # a factorization costs ~1 s on the weight-class path (users × items): the fit's last
            # evaluation and its solution are at the same θ, so the second reuses the first
            self._last_factor = (theta.tobytes(), f)
        return f

    def _lean_factor(self) -> ScalarCrossedFactor | None:
        """The :class:`~interlace.linalg.scalar_crossed.ScalarCrossedFactor` of the loaded products (made once per
        load), or None where it does not apply (a term not scalar, a sparse A21, buffers above
        :data:`~interlace.linalg.scalar_crossed.MAX_ELEMENTS`)."""
        lean = self.__dict__.get("_lean")
        if lean is None:
            n = self.q2 + self.p + 1
            fits = (self._lean_index is not None and self.cp is not None and not sp.issparse(self.A21)
                    and n * (n + self.q1) <= LEAN_MAX_ELEMENTS)
            lean = self._lean = ScalarCrossedFactor(self.A11[:, 0, 0], self.A21, self.A22, self.A31, self.A32,
                                                    self.A33, self.p) if fits else False
        return lean if isinstance(lean, ScalarCrossedFactor) else None

    @property
    def keeps_leading_theta(self) -> bool:
        """Whether evaluations that share θ's first element share most of their work: the lean path keeps the
        first term's Schur block per θ1 (:mod:`~interlace.linalg.scalar_crossed`), so the points of a
        finite-difference stencil grouped by it (:class:`~interlace.optimize.stencil.GroupedCriteria`) cost
        three such blocks and a small Cholesky each."""
        return self._lean_index is not None and self._lean_index[0] == 0 and self._lean_factor() is not None

    def _factor_lean(self, theta: np.ndarray) -> Factorization | None:
        """:meth:`factor` for scalar terms with a dense A21 (:mod:`~interlace.linalg.scalar_crossed`): L22, L32
        and L33 from one Cholesky factor, L11, D1, L31 and L21 left pending (:meth:`_full_state`); None where
        that does not apply or fails (the general path then runs)."""
        lean = self._lean_factor()
        if lean is None:
            return None
        i1, i2 = self._lean_index  # type: ignore[misc]
        t1 = float(theta[i1])
        lam = float(theta[i2]) if isinstance(i2, int) else theta[i2]
        got = lean.factor(t1, lam)
        if got is None:
            return None
        ldL2, ldRX2, pwrss, first, L = got
        q2 = self.q2
        self.__dict__.pop("_pending", None)
        self.__dict__.pop("_l22_spent", None)
        self._lean_pending = (t1, lam, first[2], first[3])
        self._L22, self._L32 = L[:q2, :q2], L[q2:, :q2]
        self._L33 = L[q2:, q2:].copy()
        return Factorization(ldL2, ldRX2, pwrss)

    def _L11_solve(self, B1: np.ndarray, transpose: bool) -> np.ndarray:
        """Solve with the block-diagonal L11 (or its transpose) for the rows of block 1."""
        k = B1.shape[1]
        R = B1.reshape(self.l1, self.p1, k)
        if self.p1 == 1:
            return (R / self._l11()).reshape(self.q1, k)
        L = np.transpose(self._l11(), (0, 2, 1)) if transpose else self._l11()
        return np.linalg.solve(L, R).reshape(self.q1, k)

    def _l22(self) -> np.ndarray:
        """L22 at the last factored θ (factored again when the gradient inverted it in place)."""
        theta = self.__dict__.get("_l22_spent")
        if theta is not None:
            self.factor(theta)
        return self._L22

    def _invert_l22(self, theta: np.ndarray, full: bool) -> np.ndarray:
        """Σ22 = (L22L22ᵀ)⁻¹ (lower triangle, or all with ``full``) in L22's buffer when L22 is
        Fortran-ordered (as factored in the M22 buffer): no second q2 × q2 array at the gradient
        (10 MB on InstEval); a solve that needs L22 afterwards factors θ again (:meth:`_l22`)."""
        L22 = self._l22()
        inplace = bool(L22.flags.f_contiguous)
        S = _inv_lower_product(L22, full=full, overwrite=inplace)
        if inplace:
            self._l22_spent = np.array(theta, float)
        return S

    def solve_M(self, B: np.ndarray) -> np.ndarray:
        B = np.asarray(B, float)
        B1, B2 = B[: self.q1], B[self.q1:]
        # forward: L y = b
        y1 = self._L11_solve(B1, transpose=False)
        if self.q2:
            L22 = self._l22()
            y2 = sla.solve_triangular(L22, B2 - np.asarray(self._L21 @ y1), lower=True, check_finite=False)
            return self._back_M(y1, y2)
        return self._L11_solve(y1, transpose=True)

    def _back_M(self, y1: np.ndarray, y2: np.ndarray) -> np.ndarray:
        """Lᵀ x = y for the rows of blocks 1 and 2 (the backward half of :meth:`solve_M`)."""
        x2 = sla.solve_triangular(self._l22().T, y2, lower=False, check_finite=False)
        x1 = self._L11_solve(y1 - np.asarray(self._L21.T @ x2), transpose=True)
        return np.vstack([x1, x2])

    def forward_C(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(Y, M⁻¹ΛᵀC)`` with ``Y = L⁻¹ΛᵀC`` for the loaded ``C = ZᵀW[X y]`` at θ, from the factor's
        own L31 and L32 (only the backward solve is done), or None where the last factorization was not
        at θ through :class:`~interlace.linalg.dense_gram.DenseGram` (the caller then solves with M).

        Parameters
        ----------
        theta : ndarray
            The θ the engine was last factored at.
        """
        if self.__dict__.get("_forward_theta") != np.asarray(theta, float).tobytes():
            return None
        Y1, Y2 = np.ascontiguousarray(self._L31.T), np.ascontiguousarray(self._L32.T)
        return np.vstack([Y1, Y2]), self._back_M(Y1, Y2)

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        if "_dense_gram" in self.__dict__:
            self._dense_gram.trim()  # the optimizer's Grams are no longer needed
        self._full_state()
        p = self.p
        beta = self._beta()
        if self.q2:
            r2 = self._L32[p] - self._L32[:p].T @ beta
            u2 = sla.solve_triangular(self._l22().T, r2, lower=False, check_finite=False)
            r1 = self._L31[p] - self._L31[:p].T @ beta - np.asarray(self._L21.T @ u2).ravel()
        else:
            u2 = np.zeros(0)
            r1 = self._L31[p] - self._L31[:p].T @ beta
        R1 = r1.reshape(self.l1, self.p1)
        if self.p1 == 1:
            u1 = R1[:, 0] / self._l11()[:, 0, 0]
        else:
            u1 = np.linalg.solve(np.transpose(self._l11(), (0, 2, 1)), R1[..., None])[..., 0].ravel()
        return beta, np.concatenate([u1, u2])

    def logdet_grad_supported(self) -> bool:
        """Whether :meth:`logdet_grad_blocks` gives the blocks for the loaded products (not when
        A21's column pairs are merged by weight class, or Σ̃A21 would exceed :data:`GRAD_DENSE_ELEMENTS`)."""
        if not self.q2:
            return True
        if self._use_pairs():
            return True
        if self._class_split() is not None:
            return False
        return self.q2 * self.q1 <= GRAD_DENSE_ELEMENTS

    def logdet_grad_blocks(self, theta: np.ndarray) -> list[np.ndarray] | None:
        """Per term, ``Σ_l (M⁻¹ΛᵀA)_ll`` (a ``p × p`` matrix) at the last factored θ, or None.

        M = ΛᵀAΛ + I, A = ZᵀWZ and ``l`` runs over the term's levels; with ``dT_k`` the
        derivative of the term's template, ``∂ log|M| / ∂θ_k = 2 Σ_l tr((M⁻¹ΛᵀA)_ll dT_k)``.
        The blocks come from the factor without forming M⁻¹ (see
        :mod:`interlace.objective.lmm_gradient` for the derivation):

        * term 1 (block-diagonal M11 = T1ᵀA11T1 + I per level c, W_c = Λ2ᵀA21[:, c]):
          ``Q_c = (M11_c⁻¹ + M11_c⁻¹T1ᵀS_cT1M11_c⁻¹) T1ᵀA11_c − M11_c⁻¹T1ᵀS_c`` with
          ``S_c = W_cᵀ Σ22 W_c`` and Σ22 = (L22L22ᵀ)⁻¹ (``dpotri``: two triangular-inverse
          passes, about twice the Cholesky's flops); with a scalar first term and A21's column
          pairs kept, all S_c are one transposed mat-vec of the pair matrix;
        * the later terms: M's Schur complement is ``Λ2ᵀHΛ2 + I`` with ``H = A22 − A21 Λ1 M11⁻¹ Λ1ᵀ A12``
          free of θ2, so their blocks are the level blocks of ``Σ22 Λ2ᵀ H``.

        None where this is not implemented cheaply (A21's pairs merged by weight class, or
        Σ̃A21 larger than :data:`GRAD_DENSE_ELEMENTS`): the caller then differences the criterion.
        """
        self._full_state()
        re = self.re
        theta = np.asarray(theta, float)
        T1 = self._T1
        p1, l1 = self.p1, self.l1
        A11 = self.A11
        if p1 == 1:
            t = T1[0, 0]
            d2 = (self._l11()[:, 0, 0]) ** 2  # θ²a + 1
            a = A11[:, 0, 0]
        if p1 == 2:  # closed form from the factor's parts: L⁻¹ = [[1/l11, 0], [−l21/(l11 l22), 1/l22]]
            l11, l21, l22 = self._L11_parts if self._L11 is None else \
                (self._L11[:, 0, 0], self._L11[:, 1, 0], self._L11[:, 1, 1])
            i11, i22 = 1.0 / l11, 1.0 / l22
            i21 = -l21 * i11 * i22
            M11inv = np.empty((l1, 2, 2))
            M11inv[:, 0, 0] = i11 * i11 + i21 * i21
            M11inv[:, 0, 1] = M11inv[:, 1, 0] = i21 * i22
            M11inv[:, 1, 1] = i22 * i22
            TA = T1.T @ A11
        elif p1 > 1:
            Linv = np.linalg.inv(self._l11())
            M11inv = np.transpose(Linv, (0, 2, 1)) @ Linv
            TA = T1.T @ A11  # (l1, p1, p1): T1ᵀ A11_c
        if not self.q2:
            if p1 == 1:
                return [np.array([[float(np.sum(t * a / d2))]])]
            return [np.sum(M11inv @ TA, axis=0)]
        if getattr(self, "_split", None) is not None:
            return None
        pairs = self._use_pairs()
        if not pairs and self.q2 * self.q1 > GRAD_DENSE_ELEMENTS:
            return None
        if pairs and self._diag2:
            return self._grad_blocks_pairs(theta, t, a, d2)
        if pairs and self._templates_invertible(theta):
            return self._grad_blocks_pairs_templates(theta, t, a, d2)

        def term1(S: np.ndarray) -> np.ndarray:
            """Term 1's block from ``S_c = W_cᵀ Σ22 W_c`` (``(l1, p1, p1)``)."""
            if p1 == 1:
                return np.array([[float(np.sum(t * a / d2 - t * S[:, 0, 0] / (d2 * d2)))]])
            MT = M11inv @ T1.T  # M11_c⁻¹ T1ᵀ
            mid = M11inv + MT @ S @ np.transpose(MT, (0, 2, 1))
            return np.sum(mid @ TA - MT @ S, axis=0)

        dense = None
        if not pairs and not self._diag2 and not sp.issparse(self.A21):
            # the crossed vector-valued layout factored through DenseGram: no Σ22, H or G formed
            dense = self._dense_gram.grad_blocks(theta, self._L22)
        if dense is not None:
            S, later = dense
            return [term1(S)] + later
        Sig = self._invert_l22(theta, full=True)
        if self._diag2:
            lam2 = theta[self._lam2_lind]
            St = lam2[:, None] * Sig * lam2[None, :]
            Lam2 = None
        else:
            Lam2 = self._Lambda2(theta)
            St = np.asarray(Lam2 @ np.asarray(Lam2 @ Sig).T).T  # Λ2 Σ22 Λ2ᵀ (Σ22 symmetric)
        # S_c = A21_cᵀ Σ̃ A21_c, and G = A21 Λ1 M11⁻¹ Λ1ᵀ A12 (upper pairs or dense)
        q2 = self.q2
        if pairs:
            Pi, Pj, K, inv, ui, uj = self._pairs
            self._pair_gram(np.ones(l1))  # makes sure the pair matrix holds the current A21
            P = self._pair_matrix
            mult = np.where(ui == uj, 1.0, 2.0)
            s = P.T @ (mult * St[ui, uj])
            S = s[:, None, None]
            gvals = self._pair_gram((t * t) / d2)
            H = self.A22.toarray() if sp.issparse(self.A22) else np.array(self.A22, dtype=float)
            H[ui, uj] -= gvals
            off = ui != uj
            H[uj[off], ui[off]] -= gvals[off]
        else:
            A21 = self.A21
            if sp.issparse(A21):
                Kd = np.asarray((A21.T @ St).T)  # Σ̃ A21 (Σ̃ symmetric)
            else:
                Kd = St @ A21
            if p1 == 1:
                prod = A21.multiply(Kd).sum(axis=0) if sp.issparse(A21) else np.sum(A21 * Kd, axis=0)
                S = np.asarray(prod).ravel()[:, None, None]
            else:
                A21d = A21.toarray() if sp.issparse(A21) else np.asarray(A21)
                S = np.einsum("ila,ilb->lab", A21d.reshape(q2, l1, p1), Kd.reshape(q2, l1, p1))
            V = self._times_D1(A21, self._D1blocks)  # A21 Λ1 L11⁻ᵀ
            G = V @ V.T
            G = G.toarray() if sp.issparse(G) else np.asarray(G)
            H = (self.A22.toarray() if sp.issparse(self.A22) else np.array(self.A22, dtype=float)) - G
        out = [term1(S)]
        # later terms: level blocks of Σ22 Λ2ᵀ H
        Y = lam2[:, None] * H if Lam2 is None else np.asarray(Lam2.T @ H)
        offs = re.col_offsets[1:] - self.q1
        for k, term in enumerate(re.terms[1:]):
            p, nl, o = term.p, term.nlevels, int(offs[k])
            blk = np.empty((p, p))
            base = o + np.arange(nl) * p
            for i in range(p):
                for j in range(p):
                    blk[i, j] = float(np.sum(Sig[base + i, :] * Y[:, base + j].T))
            out.append(blk)
        return out

    def _templates_invertible(self, theta: np.ndarray) -> bool:
        """Whether every later term's template has its diagonal at least :data:`IDENTITY_MIN_THETA`
        (then Σ22 Λ2ᵀ H = (I − Σ22) Λ2⁻¹ loses no more than ~ε/θ² relative)."""
        re = self.re
        for k, term in enumerate(re.terms[1:], start=1):
            T = term.cov.template(theta[re.theta_slice(k)])
            if np.any(np.diag(T) < IDENTITY_MIN_THETA):
                return False
        return True

    def _lambda2_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Λ2 by rows, padded: ``(cols, lind)``, each ``q2 × m`` (m the most entries in a row; padding
        has column 0 and θ index ``n_theta``, a θ entry appended as 0)."""
        got = self.__dict__.get("_lam2_by_row")
        if got is None:
            idx, ptr, lind = self._lam2
            cols = np.repeat(np.arange(self.q2), np.diff(ptr))
            order = np.lexsort((cols, idx))
            rows, cols, lind = idx[order], cols[order], lind[order]
            count = np.bincount(rows, minlength=self.q2)
            m = int(count.max(initial=1))
            slot = np.arange(rows.size) - np.repeat(np.cumsum(count) - count, count)
            C = np.zeros((self.q2, m), dtype=np.int64)
            T = np.full((self.q2, m), self.re.n_theta, dtype=np.int64)
            C[rows, slot], T[rows, slot] = cols, lind
            got = self._lam2_by_row = (C, T)
        return got

    def _grad_blocks_pairs_templates(self, theta: np.ndarray, t: float, a: np.ndarray, d2: np.ndarray
                                     ) -> list[np.ndarray]:
        """:meth:`logdet_grad_blocks` for a scalar first term with A21's column pairs kept and vector-valued
        later terms whose templates are invertible (:meth:`_templates_invertible`).

        Only Σ22's lower triangle is formed (in L22's buffer) and read at the pairs and at its
        diagonal level blocks: ``s_c = A21_cᵀ (Λ2 Σ22 Λ2ᵀ) A21_c`` with ``(Λ2 Σ22 Λ2ᵀ)_ij`` summed
        over the (at most p × p) entries of Λ2's rows i and j, and, as Λ2ᵀHΛ2 = M22 − I,
        a later term's ``Σ_l (Σ22 Λ2ᵀ H)_ll = Σ_l (I − Σ22_ll) T⁻¹``.
        """
        q2 = self.q2
        Sig2 = self._invert_l22(theta, full=False)
        fortran = bool(Sig2.flags.f_contiguous)
        Sig = Sig2.T.ravel() if fortran else Sig2.ravel()

        def lower(i: np.ndarray, j: np.ndarray) -> np.ndarray:  # i ≥ j
            return j * q2 + i if fortran else i * q2 + j
        ui, uj = self._pairs[4], self._pairs[5]
        C, T = self._lambda2_rows()
        th = np.append(theta, 0.0)
        pos = self.__dict__.get("_pair_lam_pos")
        if pos is None:
            pos = []
            for al in range(C.shape[1]):
                for be in range(C.shape[1]):
                    ca, cb = C[ui, al], C[uj, be]
                    pos.append((al, be, lower(np.maximum(ca, cb), np.minimum(ca, cb))))
            self._pair_lam_pos = pos
            self._pair_mult = np.where(ui == uj, 1.0, 2.0).astype(np.float32)  # exact; products are float64
        st = np.zeros(ui.size)
        for al, be, where in pos:
            st += th[T[ui, al]] * th[T[uj, be]] * Sig[where]
        s = self._pair_matrix.T @ (self._pair_mult * st)
        out = [np.array([[float(np.sum(t * a / d2 - t * s / (d2 * d2)))]])]
        re = self.re
        offs = re.col_offsets[1:] - self.q1
        for k, term in enumerate(re.terms[1:], start=1):
            p, nl, o = term.p, term.nlevels, int(offs[k - 1])
            base = o + np.arange(nl) * p
            D = np.empty((p, p))
            for i in range(p):
                for j in range(i + 1):
                    D[i, j] = D[j, i] = float(np.sum(Sig[lower(base + i, base + j)]))
            Tk = term.cov.template(theta[re.theta_slice(k)])
            out.append((nl * np.eye(p) - D) @ np.linalg.inv(Tk))
        return out

    def _grad_blocks_pairs(self, theta: np.ndarray, t: float, a: np.ndarray, d2: np.ndarray) -> list[np.ndarray]:
        """:meth:`logdet_grad_blocks` for a scalar first term, every later term scalar and A21's
        column pairs kept: only Σ22's lower triangle at the pairs and at A22's nonzeros is read.

        With Λ2 = diag(λ), term 1's sum is ``Σ_c θa_c/d_c² − θ s_c/d_c⁴`` (d_c² = θ²a_c + 1,
        ``s_c = Σ_ij λ_iλ_j A21_ic A21_jc Σ22_ij``, one transposed mat-vec of the pair
        matrix), and a later term's ``Σ_{l in term} Σ_r Σ22_lr λ_r H_rl`` over the nonzeros of
        H = A22 − A21 diag(θ²/d²) A21ᵀ.
        """
        q2 = self.q2
        Sig2 = self._invert_l22(theta, full=False)
        fortran = bool(Sig2.flags.f_contiguous)  # entry (i, j) at j·q2 + i: read the transpose, no copy
        Sig = Sig2.T.ravel() if fortran else Sig2.ravel()

        def lower(i: np.ndarray, j: np.ndarray) -> np.ndarray:
            return j * q2 + i if fortran else i * q2 + j
        lam2 = theta[self._lam2_lind]
        Pi, Pj, K, inv, ui, uj = self._pairs
        if not hasattr(self, "_pair_lower"):
            self._pair_lower = lower(uj, ui)  # (uj, ui), uj ≥ ui: Σ22's lower triangle
            self._pair_mult = np.where(ui == uj, 1.0, 2.0).astype(np.float32)  # exact; products are float64
            owner = np.concatenate([np.full(tm.q, k) for k, tm in enumerate(self.re.terms[1:])])
            self._q2_owner = owner
        sig_p = Sig[self._pair_lower]
        lam_i, lam_j = lam2[ui], lam2[uj]
        s = self._pair_matrix.T @ (self._pair_mult * lam_i * lam_j * sig_p)
        Q1 = float(np.sum(t * a / d2 - t * s / (d2 * d2)))
        owner = self._q2_owner
        n_terms = len(self.re.terms) - 1
        theta2 = np.array([theta[self.re.theta_slice(k)][0] for k in range(1, n_terms + 1)])
        if np.all(theta2 >= IDENTITY_MIN_THETA):
            # Σ_r Σ22_lr λ_r H_rl = (1 − Σ22_ll) / λ_l, as Λ2ᵀHΛ2 = M22 − I and Σ22 M22 = I
            diag = Sig[lower(np.arange(q2), np.arange(q2))]
            acc = np.bincount(owner, 1.0 - diag, minlength=n_terms) / theta2
            return [np.array([[Q1]])] + [np.array([[x]]) for x in acc]
        # H's nonzeros: A22 (upper entries r ≤ c) minus the pair Gram G (upper pairs)
        pos, r, c, src = self._a22_upper()
        values = self.A22.data if sp.issparse(self.A22) else self.A22.ravel()
        v = values[src]
        sig_a = Sig[lower(c, r)]
        acc = np.bincount(owner[c], sig_a * lam2[r] * v, minlength=n_terms)
        off = r != c
        acc += np.bincount(owner[r[off]], (sig_a * lam2[c] * v)[off], minlength=n_terms)
        g = self._pair_gram((t * t) / d2)
        acc -= np.bincount(owner[uj], sig_p * lam_i * g, minlength=n_terms)
        offp = ui != uj
        acc -= np.bincount(owner[ui[offp]], (sig_p * lam_j * g)[offp], minlength=n_terms)
        return [np.array([[Q1]])] + [np.array([[x]]) for x in acc]
