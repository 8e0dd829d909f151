"""Weighted cross-products of ``[Z X y]``: the one object every PLS engine is built from.

For Z = [Z1 Z2] (Z1 the first term in fitting order, the one with most levels),
``XY = [X y]`` and diagonal weights W, the engines need

    A11 = Z1ᵀWZ1 (block diagonal: one p1 × p1 block per level),  A21 = Z2ᵀWZ1,  A22 = Z2ᵀWZ2,
    A31 = (Z1ᵀW XY)ᵀ,  A32 = (Z2ᵀW XY)ᵀ,  A33 = XYᵀW XY,

or, for CHOLMOD, the whole ``S = ZᵀWZ`` and ``C = ZᵀW XY`` with A33.
:class:`CrossProducts` holds either form and derives the other on demand; it is
made from rows (:class:`RowProducts`, which finds the sparsity pattern once so that
new weights or a new response cost one ``np.bincount`` per block: PIRLS,
bootstrap refits), from blocks summed over chunks of rows (:mod:`interlace.scale`),
or from whitened rows (residual correlation structures).

Z has at most a few nonzeros per row (one block of ``p_k`` per term), so every
product is a sum over rows of small outer products.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..design.codes import DISTINCT_TABLE, distinct

__all__ = ["CrossProducts", "RowProducts", "TermPairGram", "WeightedGram", "a21_pair_count", "level_gram",
           "row_pattern", "row_structure", "term_columns", "term_cross", "weighted_cross", "DENSE_A21_ELEMENTS",
           "SPARSE_A22_ELEMENTS", "dense_a21", "sparse_a22"]

#: A21 (terms 2..k × term 1) is stored dense when it has at most this many elements
#: (or is more than a quarter full): small dense products beat sparse bookkeeping.
DENSE_A21_ELEMENTS = 200_000
#: A22 (terms 2..k) with more elements than this is stored sparse when Λ2 is diagonal (every
#: later term scalar, so only its nonzeros are ever read) and it is at most 10 % full
#: (InstEval's 1,142² A22 has 0.3 % nonzeros: 10 MB dense, 0.1 MB sparse).
SPARSE_A22_ELEMENTS = 1_000_000


def dense_a21(nnz: int, q1: int, q2: int) -> bool:
    """The storage rule of A21: dense when small or more than a quarter full."""
    return nnz > 0.25 * q1 * q2 or q1 * q2 <= DENSE_A21_ELEMENTS


def sparse_a22(re: Any, nnz: int) -> bool:
    """The storage rule of A22: sparse when Λ2 is diagonal, A22 is large and at most 10 % full."""
    q2 = re.q - re.terms[0].q
    return (all(t.p == 1 for t in re.terms[1:]) and q2 * q2 > SPARSE_A22_ELEMENTS
            and nnz <= 0.1 * q2 * q2)


def row_structure(re: Any, first: int = 0, last: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the nonzeros of each row of Z for terms ``first:last``.

    Returns ``(cols, vals)``, both ``(n, m)`` with ``m = Σ p_k``; columns are
    relative to the first selected term.
    """
    terms = re.terms[first:last]
    base = re.col_offsets[first]
    cols = [re.col_offsets[first + k] - base + t.codes[:, None] * t.p + np.arange(t.p) for k, t in enumerate(terms)]
    vals = [t.X for t in terms]
    return np.hstack(cols).astype(np.int64, copy=False), np.hstack(vals).astype(float, copy=False)


def row_pattern(cols: np.ndarray, q: int) -> sp.csr_matrix:
    """The ``n × q`` CSR matrix with each row's nonzeros at :func:`row_structure`'s ``cols`` (values 1,
    to be overwritten in place, e.g. by ZΛ's per-row values; columns in the structure's order, so
    not in canonical format)."""
    n, m = cols.shape
    A = sp.csr_matrix((np.ones(n * m), cols.ravel(), np.arange(0, n * m + 1, m)), shape=(n, q))
    A.has_canonical_format = False
    return A


class WeightedGram:
    """``Z_aᵀ W Z_b`` for any diagonal W, on a pattern found once.

    Parameters
    ----------
    cols_a, vals_a, cols_b, vals_b : ndarray (n, m_a), (n, m_b)
        Row structures (see :func:`row_structure`).
    shape : tuple
        ``(q_a, q_b)``.
    dense : bool
        Return a dense array instead of a CSR matrix.
    """

    def __init__(self, cols_a: np.ndarray, vals_a: np.ndarray, cols_b: np.ndarray, vals_b: np.ndarray,
                 shape: tuple[int, int], dense: bool) -> None:
        n, ma = cols_a.shape
        mb = cols_b.shape[1]
        self.shape = shape
        self.dense = dense
        #: None when every product is 1 (indicator columns: random intercepts), the weights themselves
        self._v = None
        if not (np.all(vals_a == 1.0) and np.all(vals_b == 1.0)):
            v = (vals_a[:, :, None] * vals_b[:, None, :]).reshape(n, ma * mb)
            self._v = None if np.all(v == 1.0) else v
        self._m = ma * mb
        key = (cols_a[:, :, None] * shape[1] + cols_b[:, None, :]).ravel()
        if dense:
            self._target = key
            self._size = shape[0] * shape[1]
        else:
            uniq, inv = distinct(key, shape[0] * shape[1])
            del key
            rows, indices = np.divmod(uniq, shape[1])
            indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))])
            self._size = uniq.size
            # int32 when they fit (half the memory kept for refits; bincount widens per call)
            itype = np.int32 if max(self._size, shape[1]) < 2**31 else np.int64
            self._indices, self._indptr = indices.astype(itype), indptr.astype(itype)
            self._target = inv.astype(itype, copy=False)

    @property
    def nnz(self) -> int:
        """Structural nonzeros (all entries for a dense product)."""
        return self._size

    def support(self) -> np.ndarray:
        """Flat positions ``i · q_b + j`` of the structural nonzeros, ascending."""
        if self.dense:
            return np.unique(self._target)
        r = np.repeat(np.arange(self.shape[0]), np.diff(self._indptr))
        return r * self.shape[1] + self._indices

    def __call__(self, w: np.ndarray) -> np.ndarray | sp.csr_matrix:
        if self._v is None:
            wv = w if self._m == 1 else np.repeat(w, self._m)
        else:
            wv = (self._v * w[:, None]).ravel()
        data = np.bincount(self._target, weights=wv, minlength=self._size)
        if self.dense:
            return data.reshape(self.shape)
        return sp.csr_matrix((data, self._indices, self._indptr), shape=self.shape)


class TermPairGram:
    """Dense ``Z_aᵀ W Z_b`` for two runs of terms, from their level codes: one key per row and pair of terms.

    The same sums as a dense :class:`WeightedGram` (the same products, added in the same row
    order), but the pattern is held as one level-pair key per row (int32 when it fits) instead of
    ``m_a · m_b`` int64 keys and float products per row: 3,000,000 rows of two 2-coefficient
    terms hold 12 MB instead of 192 MB per product.  A pair of a term with itself keys by level.

    Parameters
    ----------
    re : RandomEffects
    a, b : range
        Term indices of the rows and the columns (``range(1, k)``, ``range(0, 1)``).
    """

    dense = True

    def __init__(self, re: Any, a: range, b: range) -> None:
        offs = re.col_offsets
        self.shape = (int(offs[a.stop] - offs[a.start]), int(offs[b.stop] - offs[b.start]))
        self._parts = []
        for ka in a:
            for kb in b:
                ta, tb = re.terms[ka], re.terms[kb]
                pa, pb = ta.p, tb.p
                la, lb = int(offs[ka + 1] - offs[ka]) // pa, int(offs[kb + 1] - offs[kb]) // pb
                same = ta is tb
                if same:
                    key = np.asarray(ta.codes)
                else:
                    key = np.asarray(ta.codes, dtype=np.int64) * lb + np.asarray(tb.codes)
                key = key.astype(np.int32 if (la if same else la * lb) < 2**31 else np.int64)
                ones_a = [bool(np.all(ta.X[:, i] == 1.0)) for i in range(pa)]
                ones_b = [bool(np.all(tb.X[:, j] == 1.0)) for j in range(pb)]
                self._parts.append((key, same, ta.X, tb.X, ones_a, ones_b, int(offs[ka] - offs[a.start]), la, pa,
                                    int(offs[kb] - offs[b.start]), lb, pb))

    @property
    def nnz(self) -> int:
        """Structural nonzeros (all entries: the product is dense)."""
        return self.shape[0] * self.shape[1]

    def _blocks(self, w: np.ndarray | None):
        """Per pair of terms and coefficients (i, j): the rows and columns of ``out`` and the sums."""
        for key, same, Xa, Xb, ones_a, ones_b, oa, la, pa, ob, lb, pb in self._parts:
            size = la if same else la * lb
            for i in range(pa):
                for j in range(pb):
                    if w is None:
                        c = np.bincount(key, minlength=size)
                    elif ones_a[i] and ones_b[j]:
                        c = np.bincount(key, weights=w, minlength=size)
                    else:
                        v = Xb[:, j] if ones_a[i] else (Xa[:, i] if ones_b[j] else Xa[:, i] * Xb[:, j])
                        c = np.bincount(key, weights=v * w, minlength=size)
                    if same:
                        lv = np.arange(la)
                        yield (oa + lv * pa + i, ob + lv * pb + j), c
                    else:
                        yield (slice(oa + i, oa + la * pa, pa), slice(ob + j, ob + lb * pb, pb)), c.reshape(la, lb)

    def support(self) -> np.ndarray:
        """Flat positions ``i · q_b + j`` of the structural nonzeros, ascending."""
        mask = np.zeros(self.shape, dtype=bool)
        for where, c in self._blocks(None):
            mask[where] |= c > 0
        return np.flatnonzero(mask)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        out = np.zeros(self.shape)
        for where, c in self._blocks(w):
            out[where] += c
        return out


def a21_pair_count(re: Any) -> int | None:
    """Structural nonzeros of ``Z2ᵀZ1`` (terms 2..k × term 1) from the level pairs present, without
    the per-coefficient keys: ``Σ_k (distinct level pairs of term k and term 1) · p_k · p1``;
    None when a lookup table of the level pairs would be too large (:data:`DISTINCT_TABLE`)."""
    offs = re.col_offsets
    t1 = re.terms[0]
    l1 = int(offs[1] - offs[0]) // t1.p
    total = 0
    for k, t in enumerate(re.terms[1:], start=1):
        lk = int(offs[k + 1] - offs[k]) // t.p
        if lk * l1 > max(DISTINCT_TABLE, 4 * t1.codes.size):
            return None
        seen = np.zeros(lk * l1, dtype=bool)
        seen[np.asarray(t.codes, dtype=np.int64) * l1 + t1.codes] = True
        total += int(np.count_nonzero(seen)) * t.p * t1.p
    return total


def weighted_cross(cols: np.ndarray, vals: np.ndarray, XYw: np.ndarray, q: int, ones: bool | None = None
                   ) -> np.ndarray:
    """``(ZᵀW[X y])ᵀ``: a dense ``(k, q)`` array, given ``XYw = W[X y]`` (n × k; column-major is
    fastest). ``ones``: whether every value of ``vals`` is 1 (intercept-only terms; default: look)."""
    flat = cols.ravel()
    m = vals.shape[1]
    if ones is None:
        ones = bool(np.all(vals == 1.0))
    out = np.empty((XYw.shape[1], q))
    for c in range(XYw.shape[1]):
        col = XYw[:, c]
        weights = (col if m == 1 else np.repeat(col, m)) if ones else (col[:, None] * vals).ravel()
        out[c] = np.bincount(flat, weights=weights, minlength=q)
    return out


def term_columns(re: Any, first: int = 0, last: int | None = None) -> list[tuple]:
    """The rows of Z for terms ``first:last`` as references to the terms' own arrays (no copies).

    Returns per term ``(codes, X, offset, p, levels, ones)``: ``offset`` its first column relative to
    the first selected term, ``ones`` whether each model-matrix column is all ones.
    """
    base = re.col_offsets[first]
    return [(t.codes, t.X, int(re.col_offsets[first + k] - base), t.p, t.nlevels,
             tuple(bool(np.all(t.X[:, a] == 1.0)) for a in range(t.p)))
            for k, t in enumerate(re.terms[first:last])]


def term_cross(columns: list[tuple], XYw: np.ndarray, q: int) -> np.ndarray:
    """:func:`weighted_cross` from :func:`term_columns`: one ``np.bincount`` per term and coefficient,
    the same sums (each column's rows added in row order) without an ``(n, m)`` row structure."""
    out = np.empty((XYw.shape[1], q))
    for c in range(XYw.shape[1]):
        col = XYw[:, c]
        for codes, X, off, p, nlev, ones in columns:
            for a in range(p):
                w = col if ones[a] else col * X[:, a]
                out[c, off + a:off + nlev * p:p] = np.bincount(codes, weights=w, minlength=nlev)
    return out


def level_gram(codes: np.ndarray, X: np.ndarray, w: np.ndarray, nlevels: int, ones: bool = False) -> np.ndarray:
    """``Σ_{rows of level l} w x xᵀ`` per level: the ``(nlevels, p, p)`` diagonal blocks of Z1ᵀWZ1
    (``ones``: X is a column of ones, an intercept-only term)."""
    p = X.shape[1]
    if ones and p == 1:
        return np.bincount(codes, w, minlength=nlevels).reshape(nlevels, 1, 1)
    A = np.empty((nlevels, p, p))
    for a in range(p):
        for b in range(a, p):
            A[:, a, b] = np.bincount(codes, w * X[:, a] * X[:, b], minlength=nlevels)
            A[:, b, a] = A[:, a, b]
    return A


def _as_csr(A: Any) -> sp.csr_matrix:
    A = sp.csr_matrix(A, dtype=float)
    A.sum_duplicates()
    A.sort_indices()
    return A


class CrossProducts:
    """The weighted cross-products of ``[Z X y]`` (see the module docstring).

    Build with :meth:`from_blocks` (blocks summed over chunks), :meth:`from_full`, or
    :class:`RowProducts` (rows).

    Attributes
    ----------
    re : RandomEffects
        The structure the products belong to (its terms may hold no rows).
    n : int
        Number of rows summed.
    A33 : ndarray (p + 1, p + 1)
    """

    def __init__(self, re: Any, n: int, A33: np.ndarray, blocks: dict | None = None,
                 full: tuple[sp.csc_matrix, np.ndarray] | None = None, pattern: Any = None) -> None:
        self.re = re
        self.n = int(n)
        self.A33 = np.asarray(A33, dtype=float)
        self.q1 = re.terms[0].q if re.terms else 0
        self.q2 = re.q - self.q1
        self._blocks = blocks
        self._full = full
        self._support22 = pattern  # the rows' pattern of A22 (a RowProducts), when known

    @property
    def p(self) -> int:
        """Number of fixed-effects columns."""
        return self.A33.shape[0] - 1

    def a22_support(self) -> np.ndarray:
        """Flat positions ``i · q2 + j`` of A22's possible nonzeros: the rows' pattern when the
        products were made from rows, else the nonzero values."""
        if self._support22 is not None:
            return self._support22.support22()
        A22 = self.blocks()["A22"]
        if sp.issparse(A22):
            r = np.repeat(np.arange(A22.shape[0]), np.diff(A22.indptr))
            return r * A22.shape[1] + A22.indices
        return np.flatnonzero(A22)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_blocks(cls, re: Any, n: int, A11: np.ndarray, A21: Any, A22: Any, A31: np.ndarray,
                    A32: np.ndarray, A33: np.ndarray) -> CrossProducts:
        """Products from their blocks, stored by the one storage rule (:func:`dense_a21`, :func:`sparse_a22`).

        Parameters
        ----------
        re : RandomEffects
        n : int
        A11 : ndarray (l1, p1, p1)
            Per level of term 1, ``Σ w x xᵀ`` of its model-matrix rows.
        A21, A22 : ndarray or sparse
            ``Z2ᵀWZ1`` (q2 × q1) and ``Z2ᵀWZ2`` (q2 × q2).
        A31, A32 : ndarray
            ``(Z1ᵀW XY)ᵀ`` (p + 1 × q1) and ``(Z2ᵀW XY)ᵀ`` (p + 1 × q2).
        A33 : ndarray (p + 1, p + 1)
        """
        self = cls(re, n, A33)
        t1 = re.terms[0]
        blocks = {"A11": np.asarray(A11, dtype=float).reshape(t1.nlevels, t1.p, t1.p),
                  "A31": np.asarray(A31, dtype=float), "A21": None, "A22": None, "A32": None}
        if self.q2:
            nnz21 = A21.nnz if sp.issparse(A21) else int(np.count_nonzero(A21))
            if dense_a21(nnz21, self.q1, self.q2):
                blocks["A21"] = A21.toarray() if sp.issparse(A21) else np.asarray(A21, dtype=float)
            else:
                blocks["A21"] = _as_csr(A21)
            nnz22 = A22.nnz if sp.issparse(A22) else int(np.count_nonzero(A22))
            if sparse_a22(re, nnz22):
                blocks["A22"] = _as_csr(A22)
            else:
                blocks["A22"] = A22.toarray() if sp.issparse(A22) else np.asarray(A22, dtype=float)
            blocks["A32"] = np.asarray(A32, dtype=float)
        self._blocks = blocks
        return self

    @classmethod
    def from_full(cls, re: Any, n: int, S: sp.spmatrix, C: np.ndarray, A33: np.ndarray) -> CrossProducts:
        """Products from the whole ``S = ZᵀWZ`` (q × q) and ``C = ZᵀW XY`` (q × p + 1)."""
        self = cls(re, n, A33)
        S = sp.csc_matrix(S, dtype=float)
        S.sum_duplicates()
        S.sort_indices()
        self._full = (S, np.ascontiguousarray(C, dtype=float))
        return self

    # ---------------------------------------------------------------- the two forms
    def blocks(self) -> dict:
        """``A11, A21, A22, A31, A32`` (derived from the whole products if built from them)."""
        if self._blocks is None:
            S, C = self.full()
            q1 = self.q1
            t1 = self.re.terms[0]
            l1, p1 = t1.nlevels, t1.p
            S11 = S[:q1, :q1].tocsr()
            base = np.arange(l1) * p1
            A11 = np.empty((l1, p1, p1))
            for a in range(p1):
                for b in range(p1):
                    A11[:, a, b] = np.asarray(S11[base + a, base + b]).ravel()
            other = CrossProducts.from_blocks(self.re, self.n, A11, S[q1:, :q1], S[q1:, q1:], C[:q1].T, C[q1:].T,
                                              self.A33)
            self._blocks = other._blocks
        assert self._blocks is not None
        return self._blocks

    def full(self) -> tuple[sp.csc_matrix, np.ndarray]:
        """``(S, C)``: ZᵀWZ as a sparse q × q matrix and ZᵀW XY (q × p + 1)."""
        if self._full is None:
            b = self.blocks()
            t1 = self.re.terms[0]
            l1, p1 = t1.nlevels, t1.p
            r, c = np.meshgrid(np.arange(p1), np.arange(p1), indexing="ij")
            base = np.arange(l1)[:, None, None] * p1
            A11 = sp.csc_matrix((b["A11"].ravel(), ((base + r).ravel(), (base + c).ravel())), shape=(self.q1, self.q1))
            if self.q2:
                A21 = sp.csr_matrix(b["A21"])
                S = sp.bmat([[A11, A21.T], [A21, sp.csr_matrix(b["A22"])]], format="csc")
                C = np.vstack([b["A31"].T, b["A32"].T])
            else:
                S, C = A11, b["A31"].T
            self._full = CrossProducts.from_full(self.re, self.n, S, C, self.A33)._full
        assert self._full is not None
        return self._full

    # ---------------------------------------------------------------- reading
    def gram_block(self, rows: slice, cols: slice) -> Any:
        """``(ZᵀWZ)[rows, cols]`` (sparse or dense) for column slices that each lie within one term."""
        if self._blocks is None:
            S = self.full()[0]
            return S[:, cols][rows, :]
        q1 = self.q1
        b = self._blocks

        def shift(s: slice) -> slice:
            return slice(s.start - q1, s.stop - q1, s.step)

        in1 = (rows.start < q1, cols.start < q1)
        if all(in1):  # block diagonal: entry (level·p1 + a, level·p1 + b) is A11[level, a, b]
            p1 = self.re.terms[0].p
            return sp.diags(b["A11"][:, rows.start % p1, cols.start % p1]).tocsr()
        if not any(in1):
            return b["A22"][shift(rows), shift(cols)]
        if in1[1]:
            return b["A21"][shift(rows), cols]
        return b["A21"][shift(cols), rows].T

    def first_term_diagonal(self, a: int, b: int) -> np.ndarray | None:
        """``A11[:, a, b]``: the diagonal of ``(ZᵀWZ)`` between coefficients ``a`` and ``b`` of the first
        term (one value per level), when the products are held as blocks; None otherwise."""
        if self._blocks is None:
            return None
        return self._blocks["A11"][:, a, b]

    def cross_block(self, rows: slice) -> np.ndarray:
        """``(ZᵀW XY)[rows]``: an ``m × (p + 1)`` array."""
        if self._blocks is None:
            return self.full()[1][rows]
        if rows.start < self.q1:
            return self._blocks["A31"][:, rows].T
        return self._blocks["A32"][:, rows.start - self.q1:rows.stop - self.q1:rows.step].T

    def select_columns(self, idx: np.ndarray) -> CrossProducts:
        """The products of ``[X[:, idx] y]`` (``idx`` indexes the columns of ``[X y]``, y last)."""
        idx = np.asarray(idx, dtype=np.intp)
        A33 = self.A33[np.ix_(idx, idx)]
        if self._blocks is not None:
            b = dict(self._blocks)
            b["A31"] = b["A31"][idx]
            if b["A32"] is not None:
                b["A32"] = b["A32"][idx]
            return CrossProducts(self.re, self.n, A33, blocks=b, pattern=self._support22)
        S, C = self.full()
        return CrossProducts(self.re, self.n, A33, full=(S, np.ascontiguousarray(C[:, idx])), pattern=self._support22)

    @property
    def nbytes(self) -> int:
        """Memory held by the products."""
        def size(a: Any) -> int:
            if a is None:
                return 0
            if sp.issparse(a):
                return a.data.nbytes + a.indices.nbytes + a.indptr.nbytes
            return np.asarray(a).nbytes

        parts = list((self._blocks or {}).values()) + list(self._full or ()) + [self.A33]
        return sum(size(a) for a in parts)


class RowProducts:
    """Cross-products of ``[Z X y]`` from rows, on a pattern found once.

    Parameters
    ----------
    re : RandomEffects
        Its terms' codes and model matrices are the rows of Z.
    X : ndarray (n, p)
    layout : {"blocked", "full"}
        The blocks of the blocked engine, or the whole products for CHOLMOD.
    dense21, sparse22 : bool, optional
        Override the storage rule (summing chunks keeps one storage for every chunk).

    Calling the object with a response and weights returns the :class:`CrossProducts`;
    the Z-only products are reused while the weights are the same array object (or None
    both times), so a new response costs only the products with ``[X y]``; weights must
    not be modified in place between calls.
    """

    def __init__(self, re: Any, X: np.ndarray, layout: str = "blocked", dense21: bool | None = None,
                 sparse22: bool | None = None) -> None:
        self.re = re
        self.X = np.asarray(X, dtype=float)
        self.n = self.X.shape[0]
        self.layout = layout
        self._w_last: Any = self  # the weights the cached products were made with (self: none yet)
        self._z_last: dict | None = None
        if not re.terms:
            return
        t1 = re.terms[0]
        self.q1 = t1.q
        self.q2 = re.q - self.q1
        self._ones1 = bool(np.all(t1.X == 1.0))
        if layout == "full":
            self._rows = row_structure(re)
            self._ones = bool(np.all(self._rows[1] == 1.0))
            self._gram = WeightedGram(*self._rows, *self._rows, (re.q, re.q), dense=False)
            return
        # the rows of Z are read from the terms' own codes and model matrices (term_cross): the
        # (n, m) row structures are made only for the Grams' patterns, and not kept
        self._cols1 = term_columns(re, 0, 1)
        if self.q2:
            self._cols2 = term_columns(re, 1)
            rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}

            def gram(b: int, shape: tuple[int, int]) -> WeightedGram:
                """Sparse ``Z2ᵀWZ_b``: against term 1 (``b = 1``) or terms 2..k (``b = 2``)."""
                for k, (first, last) in ((2, (1, None)), (b, (0, 1) if b == 1 else (1, None))):
                    if k not in rows:
                        rows[k] = row_structure(re, first, last)
                return WeightedGram(*rows[2], *rows[b], shape, dense=False)

            shape21 = (self.q2, self.q1)
            gram21: Any = None
            if dense21 is None:
                nnz = a21_pair_count(re)  # from the level pairs: no per-coefficient probe
                if nnz is None:
                    gram21 = gram(1, shape21)
                    nnz = gram21.nnz
                dense21 = dense_a21(nnz, self.q1, self.q2)
            if dense21:
                gram21 = TermPairGram(re, range(1, len(re.terms)), range(0, 1))
            elif gram21 is None:
                gram21 = gram(1, shape21)
            self._gram21 = gram21
            rows.pop(1, None)
            shape22 = (self.q2, self.q2)
            gram22 = None
            if sparse22 is None and all(t.p == 1 for t in re.terms[1:]) and self.q2 * self.q2 > SPARSE_A22_ELEMENTS:
                probe = gram(2, shape22)
                gram22 = probe if sparse_a22(re, probe.nnz) else None
            elif sparse22:
                gram22 = gram(2, shape22)
            rows.clear()
            rest = range(1, len(re.terms))
            self._gram22 = gram22 if gram22 is not None else TermPairGram(re, rest, rest)
            self._support22: np.ndarray | None = None

    def _z_products(self, weights: np.ndarray | None, w: np.ndarray) -> dict:
        """The products of Z alone with weights ``w`` (reused for the same ``weights`` object)."""
        if self._z_last is not None and weights is self._w_last:
            return self._z_last
        re = self.re
        if self.layout == "full":
            z = {"S": sp.csc_matrix(self._gram(w))}
        else:
            t1 = re.terms[0]
            z = {"A11": level_gram(t1.codes, t1.X, w, t1.nlevels, self._ones1)}
            if self.q2:
                z["A21"], z["A22"] = self._gram21(w), self._gram22(w)
        self._w_last, self._z_last = weights, z
        return z

    def __call__(self, y: np.ndarray, w: np.ndarray | None = None) -> CrossProducts:
        """The products for response ``y`` (offset already subtracted) and weights ``w`` (default 1)."""
        weights = w
        w = np.ones(self.n) if w is None else np.asarray(w, dtype=float)
        XY = np.column_stack([self.X, np.asarray(y, dtype=float)])
        XYw = XY * w[:, None]
        A33 = XY.T @ XYw
        re = self.re
        if not re.terms:
            return CrossProducts(re, self.n, A33)
        z = self._z_products(weights, w)
        if self.layout == "full":
            return CrossProducts(re, self.n, A33, full=(z["S"], weighted_cross(*self._rows, XYw, re.q, self._ones).T))
        blocks = {"A11": z["A11"], "A31": term_cross(self._cols1, XYw, self.q1), "A21": None,
                  "A22": None, "A32": None}
        if self.q2:
            blocks["A21"], blocks["A22"] = z["A21"], z["A22"]
            blocks["A32"] = term_cross(self._cols2, XYw, self.q2)
        return CrossProducts(re, self.n, A33, blocks=blocks, pattern=self if self.q2 else None)

    def support22(self) -> np.ndarray:
        """Flat positions of the structural nonzeros of A22 (found once)."""
        if self._support22 is None:
            self._support22 = self._gram22.support()
        return self._support22
