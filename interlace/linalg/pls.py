"""Penalized least squares (PLS) systems: the sparse core shared by every model family.

For a fixed structure (Z, X) and data (y, prior or working weights w), a PLS
system solves, for any θ,

    min_{u, β}  ‖W^{1/2}(y − Xβ − ZΛθu)‖² + ‖u‖²

through the blocked Cholesky factor of the augmented matrix

    [ΛᵀZᵀWZΛ + I   ΛᵀZᵀWX   ΛᵀZᵀWy]
    [     ·          XᵀWX      XᵀWy  ]  =  L Lᵀ
    [     ·           ·        yᵀWy  ]

(lme4's formulation, MixedModels.jl's blocked evaluation).  An engine is made for a
structure once (:func:`interlace.linalg.engines.make_engine`: symbolic analysis,
patterns), is given the data as a :class:`~interlace.linalg.crossprod.CrossProducts`
(:meth:`PLSSystem.load`), and then :meth:`PLSSystem.factor` costs nothing per row.
It yields ``log|L_Z|²``, ``log|L_X|²`` and the penalized weighted residual sum of
squares; :meth:`PLSSystem.solve` gives β and u at the current θ.

Engines (same numbers):

* :class:`~interlace.linalg.blocked.BlockedPLS` — numpy/scipy only.  The first
  (largest) term's block is block-diagonal, the remaining Z columns are dense.
* :class:`~interlace.linalg.cholmod.CholmodPLS` — CHOLMOD (scikit-sparse):
  symbolic analysis once, numeric refactorization per θ; best for large
  nested structures.
* :class:`~interlace.linalg.fixed_only.FixedOnlyPLS` — no random effects (q = 0).
"""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular
from scipy.linalg.lapack import dpotrf

from ..errors import InterlaceError
from .crossprod import CrossProducts

__all__ = ["Factorization", "HAVE_CHOLMOD", "PLSSystem"]

try:  # pragma: no cover - depends on the machine
    if os.environ.get("INTERLACE_DISABLE_CHOLMOD"):
        raise ImportError("CHOLMOD disabled by INTERLACE_DISABLE_CHOLMOD")
    import sksparse.cholmod  # noqa: F401

    HAVE_CHOLMOD = True
except ImportError:  # pragma: no cover
    HAVE_CHOLMOD = False


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
    """Common interface of the PLS engines (see the module docstring).

    Parameters
    ----------
    re : RandomEffects
        The structure (levels, templates, θ layout); its rows are not read.
    p : int
        Number of fixed-effects columns.
    """

    engine = "abstract"
    #: attributes that hold numbers of one data set (cleared by :meth:`spawn`)
    _numeric: tuple[str, ...] = ("cp", "A33", "_L33")

    def __init__(self, re: Any, p: int) -> None:
        self.re = re
        self.p = int(p)
        self.n = 0
        self.cp: CrossProducts | None = None

    # -- to implement ----------------------------------------------------
    def load(self, cp: CrossProducts) -> None:
        """Take the data: the weighted cross-products of ``[Z X y]``."""
        if cp.p != self.p:
            raise ValueError(f"cross-products have {cp.p} fixed-effects columns, the engine {self.p}")
        self.cp = cp
        self.n = cp.n
        self.A33 = cp.A33

    def factor(self, theta: np.ndarray) -> Factorization:
        """Factor the augmented system at θ."""
        raise NotImplementedError

    def factor_many(self, thetas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(ldL2, ldRX2, pwrss)`` at each row of ``thetas`` in one vectorized pass, where the engine
        has one for its structure (else None); the engine's own factor is left as it was."""
        return None

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        """β and the spherical random effects u at the last factored θ."""
        raise NotImplementedError

    def solve_M(self, B: np.ndarray) -> np.ndarray:
        """Solve (ΛᵀZᵀWZΛ + I) X = B at the last factored θ."""
        raise NotImplementedError

    def spawn(self) -> PLSSystem:
        """An engine with this one's analysis (patterns, symbolic factorization) and no data."""
        new = copy.copy(self)
        for name in self._numeric:
            new.__dict__.pop(name, None)
        new.cp = None
        new.n = 0
        return new

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

    def _last_L33(self) -> np.ndarray:
        L33 = self.__dict__.get("_L33")
        if L33 is None:  # never a stale factor from an earlier θ
            raise InterlaceError("the penalized least-squares system could not be factored at this θ (its "
                                 "cross-products are not finite or not positive definite): check the data for "
                                 "values of extreme magnitude, and the model for more parameters than the "
                                 "data can identify")
        return L33

    def RX(self) -> np.ndarray:
        """Lower Cholesky factor ``L_X`` of the fixed-effects Schur complement at the last θ."""
        return self._last_L33()[: self.p, : self.p]

    # -- shared helpers -------------------------------------------------------
    def _finish(self, M33: np.ndarray, ldL2: float) -> Factorization:
        """Factor the (p+1)×(p+1) trailing block and assemble the criterion pieces.

        LAPACK's ``dpotrf`` directly: the block is tiny and numpy's wrapper costs more than
        the factorization.
        """
        self.__dict__.pop("_L33", None)
        if not math.isfinite(ldL2):
            return Factorization(np.inf, np.inf, np.inf, ok=False)
        L33, info = dpotrf(M33, lower=1, clean=1)
        if info != 0 or not np.isfinite(L33).all():
            fallback = _zero_residual_cholesky(M33, self.p) if np.isfinite(M33).all() else None
            if fallback is None:
                return Factorization(np.inf, np.inf, np.inf, ok=False)
            L33 = fallback
        self._L33 = L33
        p = self.p
        d = L33.diagonal()
        ldRX2 = 2.0 * float(np.log(d[:p]).sum()) if p else 0.0
        return Factorization(ldL2, ldRX2, float(d[p] ** 2))

    def beta(self) -> np.ndarray:
        """β at the last factored θ (from the fixed-effects block alone: no random effects solved for)."""
        return self._beta()

    def pwrss(self) -> float:
        """The penalized weighted residual sum of squares at the last factored θ."""
        return float(self._last_L33()[self.p, self.p] ** 2)

    def _beta(self) -> np.ndarray:
        p = self.p
        if p == 0:
            return np.zeros(0)
        L = self._last_L33()
        return solve_triangular(L[:p, :p].T, L[p, :p], lower=False)


def _zero_residual_cholesky(M33: np.ndarray, p: int) -> np.ndarray | None:
    """The Cholesky factor of ``M33`` when only its last pivot, the penalized residual sum of squares,
    is (numerically) 0: a response the fixed and random effects reproduce exactly, as a GLMM's
    working response at a perfect fit (a constant count).  None when the fixed-effects block
    itself is not positive definite or the residual is clearly negative."""
    try:
        Lp = np.linalg.cholesky(M33[:p, :p]) if p else np.zeros((0, 0))
    except np.linalg.LinAlgError:
        return None
    ell = solve_triangular(Lp, M33[:p, p], lower=True) if p else np.zeros(0)
    r2 = float(M33[p, p] - ell @ ell)
    if r2 < -1e-10 * max(abs(float(M33[p, p])), np.finfo(float).tiny):
        return None
    L33 = np.zeros_like(M33)
    L33[:p, :p] = Lp
    L33[p, :p] = ell
    L33[p, p] = np.sqrt(max(r2, 0.0))
    return L33

