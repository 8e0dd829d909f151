"""Transforms a formula may call besides numpy's: R's ``poly()``.

``poly(x, degree)`` gives R's orthogonal polynomials: the columns are the powers
``x, x², …`` of the centred ``x``, each made orthogonal to the lower ones and scaled
to unit length (R's ``stats::poly``, ``raw = FALSE``); ``poly(x, degree, raw=True)``
gives the raw powers.  It is a patsy stateful transform: the centring and the
three-term recurrence's coefficients (R's ``coefs``: ``alpha``, ``norm2``) are found on
the fitting data and reused for new data, as R's ``predict`` does.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import patsy

__all__ = ["OrthogonalPolynomial", "poly"]


class OrthogonalPolynomial:
    """R's ``poly(x, degree, raw = FALSE)`` as a patsy stateful transform (use it as ``poly``)."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self.alpha: np.ndarray | None = None
        self.norm2: np.ndarray | None = None
        self.degree: int | None = None

    @staticmethod
    def _values(x: Any) -> np.ndarray:
        v = np.asarray(x, dtype=float)
        if v.ndim != 1:
            raise patsy.PatsyError("poly() takes one numeric column")
        return v

    @staticmethod
    def _degree(degree: Any) -> int:
        if isinstance(degree, bool) or int(degree) != degree or int(degree) < 1:
            raise patsy.PatsyError(f"poly(): degree must be a whole number of at least 1, got {degree!r}")
        return int(degree)

    def memorize_chunk(self, x: Any, degree: int = 1, raw: bool = False) -> None:
        self._chunks.append(self._values(x))
        self._memorized = (self._degree(degree), bool(raw))

    def memorize_finish(self) -> None:
        x = np.concatenate(self._chunks) if self._chunks else np.zeros(0)
        self._chunks = []
        degree, raw = getattr(self, "_memorized", (1, False))
        if not raw:
            self._coefs(x, degree)

    def _coefs(self, x: np.ndarray, degree: int) -> None:
        """R's ``alpha`` and ``norm2`` from the fitting data (QR of the centred powers)."""
        if not np.all(np.isfinite(x)):
            raise patsy.PatsyError("poly(): the column has non-finite values")
        if degree >= np.unique(x).size:
            raise patsy.PatsyError(f"poly(): degree {degree} must be less than the number of distinct values "
                             f"({np.unique(x).size})")
        xbar = float(np.mean(x))
        xc = x - xbar
        X = np.vander(xc, degree + 1, increasing=True)
        Q, R = np.linalg.qr(X)
        Z = Q * np.diag(R)
        norm2 = np.sum(Z * Z, axis=0)
        if np.any(norm2[1:] <= 1e-12 * np.max(norm2)):
            raise patsy.PatsyError(f"poly(): degree {degree} is too high for the distinct values of the column")
        self.alpha = (np.sum(xc[:, None] * Z * Z, axis=0) / norm2 + xbar)[:degree]
        self.norm2 = np.concatenate([[1.0], norm2])
        self.degree = degree

    def transform(self, x: Any, degree: int = 1, raw: bool = False) -> pd.DataFrame | np.ndarray:
        degree = self._degree(degree)
        v = self._values(x)
        if raw:
            out = np.vander(v, degree + 1, increasing=True)[:, 1:]
        else:
            if self.degree != degree or self.alpha is None or self.norm2 is None:
                raise patsy.PatsyError("poly(): the transform was not fitted with this degree")
            alpha, norm2 = self.alpha, self.norm2
            Z = np.ones((v.size, degree + 1))
            Z[:, 1] = v - alpha[0]
            for i in range(1, degree):
                Z[:, i + 1] = (v - alpha[i]) * Z[:, i] - (norm2[i + 1] / norm2[i]) * Z[:, i - 1]
            out = (Z / np.sqrt(norm2[1:]))[:, 1:]
        columns = [str(k) for k in range(1, degree + 1)]
        index = x.index if isinstance(x, pd.Series) else None
        return pd.DataFrame(out, index=index, columns=columns)


#: R's ``poly()`` for formulas (``y ~ poly(x, 2)``)
poly = patsy.stateful_transform(OrthogonalPolynomial)
