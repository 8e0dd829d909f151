"""Integer keys to the codes of their distinct values, by a lookup table where one fits.

Grouping columns of subject or item numbers (:func:`~interlace.design.terms.factorize_groups`)
and the cross-products' level-pair keys (:mod:`~interlace.linalg.crossprod`) both need
``np.unique(key, return_inverse=True)`` for keys in a known range; a table of that range
gives it in one pass over the keys, without sorting them.
"""
from __future__ import annotations

import numpy as np

__all__ = ["DISTINCT_TABLE", "distinct"]

#: Largest lookup table (entries) :func:`distinct` uses instead of sorting, beyond four per key.
DISTINCT_TABLE = 1 << 21


def distinct(key: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(key, return_inverse=True)`` for integer keys in ``[0, size)``.

    Through a lookup table (O(keys), no sort) when ``size`` is at most :data:`DISTINCT_TABLE`
    or four per key; by sorting otherwise.

    Returns
    -------
    (uniq, inverse)
        The sorted distinct keys and each key's position among them.
    """
    if size > max(DISTINCT_TABLE, 4 * key.size):
        uniq, inv = np.unique(key, return_inverse=True)
        return uniq, inv.ravel()
    table = np.zeros(size, dtype=np.int32)
    table[key] = 1
    uniq = np.flatnonzero(table)
    table[uniq] = np.arange(uniq.size, dtype=np.int32)
    return uniq, table[key]
