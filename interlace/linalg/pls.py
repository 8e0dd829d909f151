"""Penalized least squares (PLS) systems: the sparse core shared by every model family.

For a fixed structure (Z, X) and data (y, prior or working weights w), a PLS
system solves, for any θ,

    min_{u, β}  ‖W^{1/2}(y − Xβ − ZΛθu)‖² + ‖u‖²

through the blocked Cholesky factor of the augmented matrix

    [ΛᵀZᵀWZΛ + I   ΛᵀZᵀWX   ΛᵀZᵀWy]
    [     ·          XᵀWX      XᵀWy  ]  =  L Lᵀ
    [     ·           ·        yᵀWy  ]

(lme4's formulation, MixedModels.jl's blocked evaluation).  The cross-products
are formed once per :meth:`PLSSystem.set_data`; :meth:`PLSSystem.factor` then
costs nothing per row.  It yields ``log|L_Z|²``, ``log|L_X|²`` and the penalized
weighted residual sum of squares; :meth:`PLSSystem.solve` gives β and u at the
current θ.

Two engines implement it and give the same numbers:

* :class:`~interlace.linalg.blocked.BlockedPLS` — numpy/scipy only.  The first
  (largest) term's block is block-diagonal, the remaining Z columns are dense.
* :class:`~interlace.linalg.cholmod.CholmodPLS` — CHOLMOD (scikit-sparse):
  symbolic analysis once, numeric refactorization per θ; best for large
  nested structures.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..design.terms import RandomEffects
from ..errors import InterlaceError

__all__ = ["PLSSystem", "Factorization", "HAVE_CHOLMOD", "choose_engine", "make_pls", "make_pls_from_blocks", "BLOCKED_DENSE_LIMIT",
           "THREADED_DENSE_COLUMNS"]

try:  # pragma: no cover - depends on the machine
    if os.environ.get("INTERLACE_DISABLE_CHOLMOD"):
        raise ImportError("CHOLMOD disabled by INTERLACE_DISABLE_CHOLMOD")
    import sksparse.cholmod  # noqa: F401

    HAVE_CHOLMOD = True
except ImportError:  # pragma: no cover
    HAVE_CHOLMOD = False

ENGINES = ("auto", "blocked", "cholmod")

#: Above this many columns outside the first term, ``engine="auto"`` prefers CHOLMOD even
#: when they fill in densely (a dense block of 8,000² is 512 MB).
BLOCKED_DENSE_LIMIT = 8000
#: ``engine="auto"`` also prefers CHOLMOD when the block the blocked engine keeps dense
#: has more than this many columns and is sparser than :data:`SPARSE_FILL_LIMIT` (nested designs).
SPARSE_MIN_COLUMNS = 300
SPARSE_FILL_LIMIT = 0.05
#: Fits whose dense block has more columns than this keep the BLAS library's threads
#: (smaller ones run BLAS on one thread: threading slows small factorizations).
THREADED_DENSE_COLUMNS = 2500
#: :func:`lower_block_fill` forms the pattern exactly up to this many column pairs.
FILL_EXACT_PAIRS = 20_000_000


def lower_block_fill(re: RandomEffects) -> float:
    """Fraction of nonzeros in the (dense-stored) block of the terms after the first, after elimination.

    The pattern of ΛᵀZ₂ᵀZ₂Λ − L₂₁L₂₁ᵀ is that of Z₂ᵀZ₂ + (Z₂ᵀZ₁)(Z₂ᵀZ₁)ᵀ: dense for
    crossed factors, block-diagonal (sparse) for nested ones.
    """
    Z1, Z2 = re.terms[0].Z(), re.Z(1)
    q2 = Z2.shape[1]
    if q2 == 0:
        return 0.0
    Z1.data[:] = 1.0
    Z2.data[:] = 1.0
    A21 = (Z2.T @ Z1).tocsr()
    m = np.bincount(A21.indices, minlength=A21.shape[1]).astype(float)
    if np.sum(m * m) / 2 > max(FILL_EXACT_PAIRS, q2 * q2):
        return 1.0  # more column pairs than entries (users × items): dense; not worth the product
    pattern = (Z2.T @ Z2) + A21 @ A21.T
    return pattern.nnz / float(q2 * q2)


@dataclass
class Factorization:
    """What one factorization at θ gives.

    Attributes
    ----------
    ldL2 : float
        ``log|ΛᵀZᵀWZΛ + I|``.
    ldRX2 : float
        ``log|XᵀWX − …|`` (the fixed-effects Schur complement).
    pwrss : float
        Penalized weighted residual sum of squares at the conditional optimum.
    ok : bool
        False when a block was not numerically positive definite.
    """

    ldL2: float
    ldRX2: float
    pwrss: float
    ok: bool = True


class PLSSystem:
    """Common interface of the PLS engines (see module docstring)."""

    engine = "abstract"

    def __init__(self, re: RandomEffects, X: np.ndarray) -> None:
        self.re = re
        self.X = np.asarray(X, dtype=float)
        self.n, self.p = self.X.shape

    # -- to implement ----------------------------------------------------
    def set_data(self, y: np.ndarray, w: np.ndarray | None = None) -> None:
        """Form the weighted cross-products of [Z X y] (the only O(n) step)."""
        raise NotImplementedError

    def factor(self, theta: np.ndarray) -> Factorization:
        """Factor the augmented system at θ."""
        raise NotImplementedError

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        """β and the spherical random effects u at the last factored θ."""
        raise NotImplementedError

    def solve_M(self, B: np.ndarray) -> np.ndarray:
        """Solve (ΛᵀZᵀWZΛ + I) X = B at the last factored θ."""
        raise NotImplementedError

    def gram_block(self, rows: slice, cols: slice):
        """``(ZᵀWZ)[rows, cols]`` (sparse or dense) for column slices that each lie within one term."""
        raise NotImplementedError

    def cross_block(self, rows: slice) -> np.ndarray:
        """``(ZᵀW[X y])[rows]``: an ``m × (p + 1)`` array."""
        raise NotImplementedError

    def cond_cov_blocks(self, chunk: int = 512) -> list[np.ndarray]:
        """Per term, the ``(nlevels, p, p)`` diagonal blocks of (ΛᵀZᵀWZΛ + I)⁻¹ at the last θ.

        Multiplied by Λ on both sides and by σ² they are the conditional covariances
        of the random effects (lme4's ``ranef(condVar = TRUE)``).
        """
        re = self.re
        q = re.q
        # within-level blocks: column j pairs with the other columns of its level
        blocks = [np.empty((t.nlevels, t.p, t.p)) for t in re.terms]
        owner = np.concatenate([np.full(t.q, k) for k, t in enumerate(re.terms)])
        for a in range(0, q, chunk):
            b = min(q, a + chunk)
            E = np.zeros((q, b - a))
            E[np.arange(a, b), np.arange(b - a)] = 1.0
            X = self.solve_M(E)
            for j in range(a, b):
                k = owner[j]
                t = re.terms[k]
                off = j - re.col_offsets[k]
                lev, c = divmod(off, t.p)
                start = re.col_offsets[k] + lev * t.p
                blocks[k][lev, :, c] = X[start:start + t.p, j - a]
        return blocks

    def RX(self) -> np.ndarray:
        """Lower Cholesky factor ``L_X`` of the fixed-effects Schur complement at the last θ."""
        return self._L33[: self.p, : self.p]

    # -- shared helpers -------------------------------------------------------
    def _xy(self, y: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        XY = np.column_stack([self.X, np.asarray(y, float)])
        w = np.ones(self.n) if w is None else np.asarray(w, float)
        return XY, w

    def _finish(self, M33: np.ndarray, ldL2: float) -> Factorization:
        """Factor the (p+1)×(p+1) trailing block and assemble the criterion pieces."""
        if not (np.all(np.isfinite(M33)) and np.isfinite(ldL2)):
            return Factorization(np.inf, np.inf, np.inf, ok=False)
        try:
            L33 = np.linalg.cholesky(M33)
        except np.linalg.LinAlgError:
            return Factorization(np.inf, np.inf, np.inf, ok=False)
        self._L33 = L33
        p = self.p
        d = np.diag(L33)
        ldRX2 = 2.0 * float(np.sum(np.log(d[:p]))) if p else 0.0
        return Factorization(ldL2, ldRX2, float(d[p] ** 2))

    def _beta(self) -> np.ndarray:
        p = self.p
        if p == 0:
            return np.zeros(0)
        L = self._L33
        from scipy.linalg import solve_triangular

        return solve_triangular(L[:p, :p].T, L[p, :p], lower=False)


def choose_engine(re: RandomEffects, fill=None) -> str:
    """``engine="auto"``'s choice for a random-effects pattern: ``"cholmod"`` when CHOLMOD is
    installed and the columns after the first term are many (> :data:`BLOCKED_DENSE_LIMIT`)
    or sparse after eliminating it (nested designs), else ``"blocked"``.

    ``fill`` computes that sparsity (default :func:`lower_block_fill` of ``re``)."""
    q2 = re.q - re.terms[0].q
    fill = (lambda: lower_block_fill(re)) if fill is None else fill
    if HAVE_CHOLMOD and (q2 > BLOCKED_DENSE_LIMIT or (q2 > SPARSE_MIN_COLUMNS and fill() < SPARSE_FILL_LIMIT)):
        return "cholmod"
    return "blocked"


def make_pls(re: RandomEffects, X: np.ndarray, engine: str = "auto") -> PLSSystem:
    """Choose and build a PLS engine.

    Parameters
    ----------
    re : RandomEffects
    X : ndarray (n, p)
    engine : {"auto", "blocked", "cholmod"}
        ``"auto"`` uses the blocked engine unless CHOLMOD is installed and either
        the columns outside the largest term exceed :data:`BLOCKED_DENSE_LIMIT`
        or they exceed :data:`SPARSE_MIN_COLUMNS` with a sparse filled pattern
        (:func:`lower_block_fill`), as in large nested designs.
    """
    from .blocked import BlockedPLS

    if engine == "auto":
        engine = choose_engine(re)
    if engine == "blocked":
        return BlockedPLS(re, X)
    if engine == "cholmod":
        if not HAVE_CHOLMOD:
            raise ImportError(
                "engine='cholmod' needs scikit-sparse (pip install 'scikit-sparse<0.5' after "
                "apt-get install libsuitesparse-dev); engine='blocked' needs nothing extra"
            )
        from .cholmod import CholmodPLS

        return CholmodPLS(re, X)
    raise InterlaceError(f"unknown engine {engine!r}: use 'auto', 'blocked' or 'cholmod'")


def lower_block_fill_from_blocks(A21, A22) -> float:
    """:func:`lower_block_fill` from the cross-product blocks ``Z2ᵀWZ1`` and ``Z2ᵀWZ2`` (no rows).

    The pattern is that of the nonzero values (the row path uses the structural
    pattern of Z; they differ only where weights are zero).
    """
    import scipy.sparse as sp

    q2 = A22.shape[0]
    if q2 == 0:
        return 0.0
    P21 = sp.csr_matrix(A21, dtype=float, copy=True)
    P21.eliminate_zeros()
    P21.data[:] = 1.0
    P22 = sp.csr_matrix(A22, dtype=float, copy=True)
    P22.eliminate_zeros()
    P22.data[:] = 1.0
    pattern = P22 + P21 @ P21.T
    return pattern.nnz / float(q2 * q2)


def make_pls_from_blocks(re: RandomEffects, n: int, blocks: dict, engine: str = "auto") -> PLSSystem:
    """Choose and build a PLS engine on precomputed cross-products of ``[Z X y]`` (no rows).

    Parameters
    ----------
    re : RandomEffects
        The structure; its terms may hold no rows.
    n : int
        Number of rows the cross-products were summed over.
    blocks : dict
        ``A11, A21, A22, A31, A32, A33`` as described in
        :meth:`interlace.linalg.blocked.BlockedPLS.from_blocks`.
    engine : {"auto", "blocked", "cholmod"}
        ``"auto"`` chooses as :func:`make_pls` does (with the filled pattern computed
        from the blocks).
    """
    from .blocked import BlockedPLS

    keys = ("A11", "A21", "A22", "A31", "A32", "A33")
    args = {k: blocks[k] for k in keys}
    if engine == "auto":
        engine = choose_engine(re, lambda: lower_block_fill_from_blocks(args["A21"], args["A22"]))
    if engine == "blocked":
        return BlockedPLS.from_blocks(re, n, **args)
    if engine == "cholmod":
        if not HAVE_CHOLMOD:
            raise ImportError(
                "engine='cholmod' needs scikit-sparse (pip install 'scikit-sparse<0.5' after "
                "apt-get install libsuitesparse-dev); engine='blocked' needs nothing extra"
            )
        from .cholmod import CholmodPLS

        return CholmodPLS.from_blocks(re, n, **args)
    raise InterlaceError(f"unknown engine {engine!r}: use 'auto', 'blocked' or 'cholmod'")
