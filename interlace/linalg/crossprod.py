"""Weighted cross-products of random-effects model matrices with a fixed pattern.

Z has at most a few nonzeros per row (one block of ``p_k`` per term), so every
product ZₐᵀWZ_b or ZᵀW[X y] is a sum over rows of small outer products.  The
pattern and the per-row target positions are found once; after that a new set
of weights (a PIRLS iteration, a new response) costs one ``np.bincount`` per
block, with no sparse-matrix construction.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..design.terms import RandomEffects

__all__ = ["row_structure", "WeightedGram", "weighted_cross"]


def row_structure(re: RandomEffects, first: int = 0, last: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the nonzeros of each row of Z for terms ``first:last``.

    Returns ``(cols, vals)``, both ``(n, m)`` with ``m = Σ p_k``; columns are
    relative to the first selected term.
    """
    terms = re.terms[first:last]
    base = re.col_offsets[first]
    cols = [re.col_offsets[first + k] - base + t.codes[:, None] * t.p + np.arange(t.p) for k, t in enumerate(terms)]
    vals = [t.X for t in terms]
    return np.hstack(cols).astype(np.int64), np.hstack(vals).astype(float)


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

    def __init__(self, cols_a, vals_a, cols_b, vals_b, shape: tuple[int, int], dense: bool) -> None:
        n, ma = cols_a.shape
        mb = cols_b.shape[1]
        self.shape = shape
        self.dense = dense
        self._v = (vals_a[:, :, None] * vals_b[:, None, :]).reshape(n, ma * mb)
        key = (cols_a[:, :, None] * shape[1] + cols_b[:, None, :]).ravel()
        if dense:
            self._target = key
            self._size = shape[0] * shape[1]
        else:
            uniq, inv = np.unique(key, return_inverse=True)
            rows, self._indices = np.divmod(uniq, shape[1])
            self._indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))])
            self._target = inv.ravel()
            self._size = uniq.size

    @property
    def nnz(self) -> int:
        return self._size

    def __call__(self, w: np.ndarray):
        data = np.bincount(self._target, weights=(self._v * w[:, None]).ravel(), minlength=self._size)
        if self.dense:
            return data.reshape(self.shape)
        return sp.csr_matrix((data, self._indices, self._indptr), shape=self.shape)


def weighted_cross(cols: np.ndarray, vals: np.ndarray, XYw: np.ndarray, q: int) -> np.ndarray:
    """``(ZᵀW[X y])ᵀ``: a dense ``(k, q)`` array, given ``XYw = W[X y]`` (n × k)."""
    flat = cols.ravel()
    out = np.empty((XYw.shape[1], q))
    for c in range(XYw.shape[1]):
        out[c] = np.bincount(flat, weights=(XYw[:, c:c + 1] * vals).ravel(), minlength=q)
    return out
