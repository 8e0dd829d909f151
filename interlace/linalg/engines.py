"""The one place that parses ``engine=`` and builds the engines.

Vocabulary (every model family uses it; each says which names it accepts):

* ``"auto"`` — the engine the structure calls for (:func:`choose_engine`);
* ``"blocked"`` — numpy/scipy block elimination: the first term's block-diagonal
  block is eliminated and the rest factored dense (:mod:`interlace.linalg.blocked`;
  for the Cox frailty Hessian, the arrowhead elimination of :mod:`interlace.linalg.arrowhead`);
* ``"cholmod"`` — CHOLMOD's sparse supernodal Cholesky (scikit-sparse);
* ``"dense"`` — LAPACK on the whole random-effects block (Cox models only).

Engines are built from the structure once (:func:`make_engine`) and loaded with
:class:`~interlace.linalg.crossprod.CrossProducts`: from rows through :class:`RowEngines`
(which shares one analysis among the refits of the same rows), or from products summed
elsewhere through :func:`engine_for_products`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import EngineUnavailableError, InterlaceError
from .crossprod import CrossProducts, RowProducts
from .fixed_only import FixedOnlyPLS
from .pls import HAVE_CHOLMOD, PLSSystem

__all__ = ["BLOCKED_DENSE_LIMIT", "ENGINES", "PLS_ENGINES", "RowEngines", "choose_engine", "engine_for_products",
           "lower_block_fill", "make_engine", "parse_engine"]

#: Every engine name (see the module docstring).
ENGINES = ("auto", "blocked", "cholmod", "dense")
#: The names the PLS engines (LMM, GLMM, CLMM) accept.
PLS_ENGINES = ("auto", "blocked", "cholmod")

#: Above this many columns outside the first term, ``engine="auto"`` prefers CHOLMOD even
#: when they fill in densely (a dense block of 8,000² is 512 MB).
BLOCKED_DENSE_LIMIT = 8000
#: ``engine="auto"`` also prefers CHOLMOD when the block the blocked engine keeps dense
#: has more than this many columns and is sparser than :data:`SPARSE_FILL_LIMIT` (nested designs).
SPARSE_MIN_COLUMNS = 300
SPARSE_FILL_LIMIT = 0.05
#: :func:`lower_block_fill` forms the pattern exactly up to this many column pairs.
FILL_EXACT_PAIRS = 20_000_000

_INSTALL = ("engine='cholmod' needs scikit-sparse (apt-get install libsuitesparse-dev, then "
            "pip install 'scikit-sparse>=0.4.12,<0.5'); engine='blocked' needs nothing extra and gives the "
            "same numbers")


def parse_engine(engine: str, allowed: tuple[str, ...] = PLS_ENGINES) -> str:
    """Check an ``engine=`` value: one of ``allowed``, and CHOLMOD installed if asked for.

    Raises
    ------
    InterlaceError
        An unknown name.
    EngineUnavailableError
        ``"cholmod"`` without scikit-sparse.
    """
    if engine not in allowed:
        names = ", ".join(repr(a) for a in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise InterlaceError(f"unknown engine {engine!r}: use {names}")
    if engine == "cholmod" and not HAVE_CHOLMOD:
        raise EngineUnavailableError(_INSTALL)
    return engine


def _pattern_fill(A21: sp.csr_matrix, A22: sp.spmatrix, q2: int, at_least: float | None = None) -> float:
    """Filled fraction of the pattern of A22 + A21 A21ᵀ (CSR matrices of ones).

    With ``at_least``, a fill known to reach it may be returned as a lower bound: the
    pattern of the few columns with most nonzeros (crossed designs: InstEval's 35 busiest
    students already fill 6 % of the block; InstEval's ``lower_block_fill`` 11 ms instead of 25 ms).
    """
    m = np.bincount(A21.indices, minlength=A21.shape[1]).astype(float)
    if np.sum(m * m) / 2 > max(FILL_EXACT_PAIRS, q2 * q2):
        return 1.0  # more column pairs than entries (users × items): dense; not worth the product
    if at_least is not None:
        order = np.argsort(-m, kind="stable")
        n_top = int(np.searchsorted(np.cumsum(m[order] ** 2), 4.0 * at_least * q2 * q2)) + 1
        if n_top < m.size:
            B = A21[:, np.sort(order[:n_top])]
            bound = (A22 + B @ B.T).nnz / float(q2 * q2)  # a subset of the columns: a lower bound
            if bound >= at_least:
                return bound
    pattern = A22 + A21 @ A21.T
    return pattern.nnz / float(q2 * q2)


def lower_block_fill(re: Any, at_least: float | None = None) -> float:
    """Fraction of nonzeros in the (dense-stored) block of the terms after the first, after elimination.

    The pattern of ΛᵀZ₂ᵀZ₂Λ − L₂₁L₂₁ᵀ is that of Z₂ᵀZ₂ + (Z₂ᵀZ₁)(Z₂ᵀZ₁)ᵀ: dense for
    crossed factors, block-diagonal (sparse) for nested ones.  With ``at_least``, a lower
    bound may be returned once it reaches that fraction.
    """
    q2 = re.q - re.terms[0].q
    if q2 == 0:
        return 0.0
    later = range(1, len(re.terms))
    A21 = sp.bmat([[_level_pair_pattern(re, k, 0)] for k in later], format="csr")
    A22 = sp.bmat([[_level_pair_pattern(re, k, j) for j in later] for k in later], format="csr")
    return _pattern_fill(A21, A22, q2, at_least)


def _level_pair_pattern(re: Any, k: int, j: int) -> sp.csr_matrix:
    """The pattern (ones) of ``Z_kᵀZ_j`` for terms k and j, from the level pairs that share a row:
    each pair is a ``p_k × p_j`` block of ones.  One key per row, where the product of the
    sparse Z would take ``p_k p_j`` (3,000,000 rows of two 2-coefficient terms: 0.1 s instead of 2.5 s)."""
    tk, tj = re.terms[k], re.terms[j]
    offs = re.col_offsets
    lk, lj = int(offs[k + 1] - offs[k]) // tk.p, int(offs[j + 1] - offs[j]) // tj.p
    key = np.asarray(tk.codes, dtype=np.int64) * lj
    key += tj.codes
    if lk * lj <= max(1 << 24, 4 * key.size):
        seen = np.zeros(lk * lj, dtype=bool)
        seen[key] = True
        del key
        uniq = np.flatnonzero(seen)
        del seen
    else:
        uniq = np.unique(key)
        del key
    # the ascending flat positions are the pattern in CSR order: its row starts by counting
    itype = np.int32 if max(uniq.size, lj) < 2**31 else np.int64
    indptr = np.zeros(lk + 1, dtype=itype)
    np.cumsum(np.bincount(uniq // lj, minlength=lk), out=indptr[1:])
    P = sp.csr_matrix((np.ones(uniq.size), (uniq % lj).astype(itype), indptr), shape=(lk, lj))
    if tk.p == 1 and tj.p == 1:
        return P
    return sp.kron(P, np.ones((tk.p, tj.p)), format="csr")


def _products_fill(cp: CrossProducts, at_least: float | None = None) -> float:
    """:func:`lower_block_fill` from cross-products (the pattern of their nonzero values)."""
    if cp.q2 == 0:
        return 0.0
    b = cp.blocks()
    ones = []
    for A in (b["A21"], b["A22"]):
        P = sp.csr_matrix(A, dtype=float, copy=True)
        P.eliminate_zeros()
        P.data[:] = 1.0
        ones.append(P)
    return _pattern_fill(ones[0], ones[1], cp.q2, at_least)


def choose_engine(re: Any, fill: Any = None) -> str:
    """``engine="auto"``'s choice for a random-effects pattern: ``"cholmod"`` when CHOLMOD is
    installed and the columns after the first term are many (> :data:`BLOCKED_DENSE_LIMIT`)
    or sparse after eliminating it (nested designs), else ``"blocked"``.

    ``fill`` computes that sparsity (default :func:`lower_block_fill` of ``re``)."""
    if not re.terms:
        return "dense"
    q2 = re.q - re.terms[0].q
    fill = (lambda: lower_block_fill(re, SPARSE_FILL_LIMIT)) if fill is None else fill
    if HAVE_CHOLMOD and (q2 > BLOCKED_DENSE_LIMIT or (q2 > SPARSE_MIN_COLUMNS and fill() < SPARSE_FILL_LIMIT)):
        return "cholmod"
    return "blocked"


def make_engine(re: Any, p: int, engine: str) -> PLSSystem:
    """An engine (no data yet) for the structure ``re`` and ``p`` fixed-effects columns.

    ``engine`` is a concrete name (``"blocked"`` or ``"cholmod"``; a structure without
    terms always gets :class:`~interlace.linalg.fixed_only.FixedOnlyPLS`).
    """
    if not re.terms:
        return FixedOnlyPLS(re, p)
    parse_engine(engine, ("blocked", "cholmod"))
    if engine == "cholmod":
        from .cholmod import CholmodPLS

        return CholmodPLS(re, p)
    from .blocked import BlockedPLS

    return BlockedPLS(re, p)


def engine_for_products(cp: CrossProducts, engine: str = "auto") -> PLSSystem:
    """An engine loaded with the cross-products ``cp`` (from chunks of rows: no rows needed).

    ``engine="auto"`` chooses as for rows, the filled pattern computed from the products.
    """
    parse_engine(engine)
    name = choose_engine(cp.re, lambda: _products_fill(cp, SPARSE_FILL_LIMIT)) if engine == "auto" else engine
    eng = make_engine(cp.re, cp.p, name)
    eng.load(cp)
    return eng


class RowEngines:
    """Engines and their row products for one set of rows ``(re, X)``, built once and shared.

    The first :meth:`get` for a column set returns a new engine (its symbolic analysis and
    patterns are made when it is first loaded); later calls return engines spawned from it
    (:meth:`~interlace.linalg.pls.PLSSystem.spawn`), which share that analysis — refits of
    the same rows (bootstrap replicates, the ML refit of a REML fit, PIRLS of a GLMM with a
    new family parameter) do no structural work.

    Parameters
    ----------
    re : RandomEffects
    X : ndarray (n, p)
    engine : {"auto", "blocked", "cholmod"}
    """

    def __init__(self, re: Any, X: np.ndarray, engine: str = "auto") -> None:
        parse_engine(engine)
        self.re = re
        self.X = np.asarray(X, dtype=float)
        self.name = choose_engine(re) if engine == "auto" else engine
        self._made: dict[bool, tuple[PLSSystem, RowProducts]] = {}

    def get(self, fixed: bool = True) -> tuple[PLSSystem, RowProducts]:
        """An engine (not loaded) and the row products for ``[Z X y]`` (``fixed``) or ``[Z y]``."""
        if fixed in self._made:
            proto, rows = self._made[fixed]
            return proto.spawn(), rows
        X = self.X if fixed else self.X[:, :0]
        layout = "full" if self.name == "cholmod" else "blocked"
        proto, rows = make_engine(self.re, X.shape[1], self.name), RowProducts(self.re, X, layout)
        self._made[fixed] = (proto, rows)
        return proto, rows
