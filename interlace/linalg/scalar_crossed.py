"""The blocked engine's factorization when every term is scalar and A21 is dense: one LAPACK call.

With scalar terms only (crossed random intercepts), Λ1 = θ1 I and Λ2 = diag(λ) (λ the later
terms' θ, one per column).  Eliminating the diagonal first block leaves, for the rows of
``[Z2 X y]``,

    M = S H S + [I 0; 0 0],   H = A − F diag(δ²) Fᵀ,   F = [A21; A31],   A = [[A22, A23], [A32, A33]],

with ``δ_c = θ1 / d_c``, ``d_c = √(θ1² A11_c + 1)`` (L11's diagonal) and ``S = diag(λ, 1, …, 1)``.
One Cholesky factor of M holds L22, L32 and L33, so the criterion's pieces are its diagonal
(``log|L22|²``, ``log|R_X|²`` and the penalized residual sum of squares) and the first block's
``Σ log d_c²``.  H depends on θ1 alone: it is formed by one BLAS rank-k update of a copy of A and
kept for the last few θ1 (the points of a finite-difference stencil share three values of θ1; an
evaluation at a kept θ1 is two scalings and the Cholesky).  Everything else is preallocated: per
evaluation a handful of numpy calls on the buffers and ``dsyrk``/``dpotrf`` directly, no sparse
matrices, templates or temporaries of the dense block's size (crossed 200 × 100: 0.3 → 0.1 ms).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg.blas import dsyrk
from scipy.linalg.lapack import dpotrf

__all__ = ["ScalarCrossedFactor", "MAX_ELEMENTS", "MAX_KEPT_BYTES"]

#: Largest ``n (n + q1)`` (n = q2 + p + 1) for which the blocked engine factors this way: its buffers
#: (A, H, M and F D1) hold about three times that many numbers.
MAX_ELEMENTS = 2_000_000
#: Bytes of the H blocks kept for earlier θ1 (at most four of them, at least one).
MAX_KEPT_BYTES = 16_000_000


class ScalarCrossedFactor:
    """The pieces of the criterion for scalar terms with a dense A21 (see the module docstring).

    Parameters
    ----------
    a11 : ndarray (q1,)
        A11's diagonal (the first term's level sums of the weights).
    A21 : ndarray (q2, q1)
    A22 : ndarray or sparse matrix (q2, q2)
    A31 : ndarray (k, q1)
    A32 : ndarray (k, q2)
    A33 : ndarray (k, k)
        The blocks of :class:`~interlace.linalg.crossprod.CrossProducts` (k = p + 1).
    p : int
        Number of fixed-effects columns.
    """

    def __init__(self, a11: np.ndarray, A21: np.ndarray, A22: Any, A31: np.ndarray, A32: np.ndarray,
                 A33: np.ndarray, p: int) -> None:
        q2, q1 = A21.shape
        k = A31.shape[0]
        n = q2 + k
        self.q2, self.p, self.n = q2, int(p), n
        self.a11 = np.array(a11, dtype=float)
        self.A21, self.A31 = A21, A31
        A = np.zeros((n, n), order="F")
        A[:q2, :q2] = A22.toarray() if sp.issparse(A22) else A22
        A[q2:, :q2] = A32
        A[:q2, q2:] = A32.T
        A[q2:, q2:] = A33
        self.A = A
        self._B = np.empty((n, q1))
        self._C = np.empty((n, n), order="F")
        self._views()
        self._s = np.ones(n)
        self._keep = max(1, min(4, MAX_KEPT_BYTES // (8 * n * n)))
        #: kept θ1: ``[θ1, H, d, δ, Σ log d²]``, most recently used last
        self._kept: list[list] = []

    def _views(self) -> None:
        """M's diagonal and the diagonal of its first block, as views of its buffer."""
        n = self.n
        flat = self._C.reshape(-1, order="F")  # a view: the buffer is Fortran-contiguous
        self._diag = flat[:: n + 1]
        self._diag22 = flat[: self.q2 * (n + 1): n + 1]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_diag"], state["_diag22"]  # views: a copy or pickle would detach them from the buffer
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._views()

    def _first(self, t1: float) -> list:
        """``[θ1, H, d, δ, Σ log d²]`` at θ1, formed or taken from those kept."""
        kept = self._kept
        for i, entry in enumerate(kept):
            if entry[0] == t1:
                if i != len(kept) - 1:
                    kept.append(kept.pop(i))
                return entry
        # L11's diagonal and D1 exactly as BlockedPLS._D1 forms them
        d = np.sqrt(t1 * t1 * self.a11 + 1.0)
        delta = t1 / d
        ld1 = 2.0 * float(np.sum(np.log(d)))
        H = kept.pop(0)[1] if len(kept) >= self._keep else np.empty((self.n, self.n), order="F")
        B, q2 = self._B, self.q2
        np.multiply(self.A21, delta, out=B[:q2])  # F D1, F = [A21; A31]
        np.multiply(self.A31, delta, out=B[q2:])
        np.copyto(H, self.A)
        H = dsyrk(-1.0, B.T, beta=1.0, c=H, trans=1, lower=1, overwrite_c=1)  # lower triangle of A − B Bᵀ
        entry = [t1, H, d, delta, ld1]
        kept.append(entry)
        return entry

    def factor(self, t1: float, lam: Any) -> tuple[float, float, float, list, np.ndarray] | None:
        """``(ldL2, ldRX2, pwrss, first, L)`` at θ1 ``t1`` and the later terms' λ ``lam`` (a float when
        they share one θ, else per column); ``first`` is :meth:`_first`'s entry and ``L`` the lower
        Cholesky factor of M (valid until the next call).  None when M is not positive definite or a
        piece is not finite (the caller then takes the general path, which says why)."""
        first = self._first(t1)
        H, C, q2 = first[1], self._C, self.q2
        if isinstance(lam, float):  # one later term: S H S is H times λ², λ or 1 by block (lower triangle)
            np.multiply(H, lam * lam, out=C)
            np.multiply(H[q2:, :q2], lam, out=C[q2:, :q2])
            C[q2:, q2:] = H[q2:, q2:]
        else:
            s = self._s
            s[:q2] = lam
            np.multiply(H, s[:, None], out=C)
            C *= s
        self._diag22 += 1.0
        L, info = dpotrf(C, lower=1, clean=1, overwrite_a=1)
        if info != 0 or L is not C:
            return None
        lg = np.log(self._diag)
        p = self.p
        ldL2 = first[4] + 2.0 * float(lg[:q2].sum())
        ldRX2 = 2.0 * float(lg[q2:q2 + p].sum())
        r = float(self._diag[q2 + p])
        pwrss = r * r
        if not (math.isfinite(ldL2) and math.isfinite(ldRX2) and math.isfinite(pwrss)):
            return None
        return ldL2, ldRX2, pwrss, first, L
