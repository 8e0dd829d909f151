"""Per-chunk sums of the weighted cross-products of ``[Z X y]``, and their total.

For the LMM, everything :meth:`~interlace.linalg.pls.PLSSystem.factor` needs is
a set of cross-products of the rows of ``[Z X y]`` (``ZᵀWZ``, ``ZᵀW[X y]``,
``[X y]ᵀW[X y]``): sums over rows, so sums over chunks of rows.  A
:class:`CrossBlocks` holds them for one chunk (:func:`chunk_blocks`) or for
several (``a + b``), in the layout of the blocked engine
(:meth:`interlace.linalg.blocked.BlockedPLS.from_blocks`), with ``X`` the
*full* patsy matrix (the columns dropped for rank deficiency are removed at
the end, from the Gram matrix, as the in-memory path removes them from ``X``).

Memory: one :class:`CrossBlocks` has ``l1·p1²`` (term 1's per-level blocks),
``q2·q1`` (dense, or the nonzeros when sparse), ``q2²``, ``(p + 1)(q + p + 1)``
numbers, whatever the number of rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..linalg.crossprod import CrossProducts, RowProducts
from .design import ChunkedDesign
from .encode import encode_chunk

__all__ = ["CrossBlocks", "blocks_of", "chunk_blocks", "empty_blocks"]


@dataclass
class CrossBlocks:
    """Weighted cross-products of ``[Z X y]`` summed over some rows.

    Attributes
    ----------
    n : int
        Rows summed.
    A11 : ndarray (l1, p1, p1)
    A21 : ndarray or scipy.sparse.csr_matrix (q2, q1)
    A22 : ndarray or scipy.sparse.csr_matrix (q2, q2)
    A31 : ndarray (P + 1, q1)
    A32 : ndarray (P + 1, q2)
    A33 : ndarray (P + 1, P + 1)
        With ``[X y]`` the full patsy fixed-effects matrix (``P`` columns) and the
        response minus any offset; ``W`` the prior weights.
    XtX : ndarray (P, P) or None
        Unweighted ``XᵀX`` (for the rank check of weighted fits; ``None`` without weights).
    sum_log_w : float
        ``Σ log w`` (0 without weights).
    min_w : float
        Smallest prior weight (1 without weights).
    """

    n: int
    A11: np.ndarray
    A21: object
    A22: object
    A31: np.ndarray
    A32: np.ndarray
    A33: np.ndarray
    XtX: np.ndarray | None = None
    sum_log_w: float = 0.0
    min_w: float = 1.0

    def __add__(self, other: CrossBlocks) -> CrossBlocks:
        if other is None or other.n == 0:
            return self
        if self.n == 0:
            return other
        return CrossBlocks(
            self.n + other.n, self.A11 + other.A11, _add(self.A21, other.A21), _add(self.A22, other.A22),
            self.A31 + other.A31, self.A32 + other.A32, self.A33 + other.A33,
            None if self.XtX is None else self.XtX + other.XtX,
            self.sum_log_w + other.sum_log_w, min(self.min_w, other.min_w))

    __radd__ = __add__

    @property
    def nbytes(self) -> int:
        """Memory held by the blocks."""
        def size(a):
            if a is None:
                return 0
            if sp.issparse(a):
                return a.data.nbytes + a.indices.nbytes + a.indptr.nbytes
            return np.asarray(a).nbytes
        return sum(size(a) for a in (self.A11, self.A21, self.A22, self.A31, self.A32, self.A33, self.XtX))


def _add(a, b):
    out = a + b
    if sp.issparse(out):
        out = out.tocsr()
    return out


def empty_blocks(design: ChunkedDesign) -> CrossBlocks:
    """Zero blocks (the sum over no rows)."""
    re = design.re
    t1 = re.terms[0]
    q1, q2 = t1.q, re.q - t1.q
    k = design.n_x + 1
    A21 = np.zeros((q2, q1)) if design.a21_dense else sp.csr_matrix((q2, q1))
    A22 = np.zeros((q2, q2)) if design.a22_dense else sp.csr_matrix((q2, q2))
    return CrossBlocks(0, np.zeros((t1.nlevels, t1.p, t1.p)), A21, A22, np.zeros((k, q1)), np.zeros((k, q2)),
                       np.zeros((k, k)), np.zeros((k - 1, k - 1)) if design.plan.weights else None)


def chunk_blocks(df: pd.DataFrame, design: ChunkedDesign) -> CrossBlocks:
    """The cross-product blocks of one chunk's complete rows.

    Parameters
    ----------
    df : DataFrame
        A chunk of the data (any rows; incomplete ones are dropped as in the first pass).
    design : ChunkedDesign
        From :func:`~interlace.scale.design.build_design`.
    """
    plan = design.plan
    enc = encode_chunk(df, design)
    n = enc.n
    if n == 0:
        return empty_blocks(design)
    y, X = enc.y, enc.X
    if enc.offset is not None:
        y = y - enc.offset
    w = enc.weights if enc.weights is not None else np.ones(n)
    re = design.re
    rows = RowProducts(enc.terms(re.col_offsets, re.q), X, "blocked", dense21=design.a21_dense,
                       sparse22=not design.a22_dense)
    cp = rows(y, w)
    XtX = X.T @ X if plan.weights is not None else None
    slw = float(np.sum(np.log(w[w > 0]))) if plan.weights is not None else 0.0
    return blocks_of(cp, re.terms[0].q, design.a21_dense, design.a22_dense, XtX, slw, float(w.min()))


def blocks_of(cp: CrossProducts, q1: int, a21_dense: bool, a22_dense: bool, XtX: np.ndarray | None = None,
              sum_log_w: float = 0.0, min_w: float = 1.0) -> CrossBlocks:
    """The :class:`CrossBlocks` of one chunk's products (made by :class:`~interlace.linalg.crossprod.RowProducts`
    in the blocked layout); a structure with one term gets empty blocks of the chosen storage."""
    blocks, A33 = cp.blocks(), cp.A33
    A11, A31 = blocks["A11"], blocks["A31"]
    if cp.re.q > q1:
        A21, A22, A32 = blocks["A21"], blocks["A22"], blocks["A32"]
    else:
        A22 = np.zeros((0, 0)) if a22_dense else sp.csr_matrix((0, 0))
        A21 = np.zeros((0, q1)) if a21_dense else sp.csr_matrix((0, q1))
        A32 = np.zeros((A33.shape[0], 0))
    return CrossBlocks(cp.n, A11, A21, A22, A31, A32, A33, XtX, sum_log_w, min_w)
