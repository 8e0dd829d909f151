"""Random-effects terms and the shared structure built from them (Z, Λθ pattern, θ layout).

One :class:`RandomEffectsTerm` owns a grouping factor (levels and codes), its
model-matrix block and its covariance structure.  :class:`RandomEffects`
orders the terms (most levels first, as lme4 and MixedModels.jl do, so the
first block of ΛᵀZᵀWZΛ + I is block-diagonal) and provides Z, the θ layout and
Λθ.  Every model family (LMM, GLMM, CLMM, Cox frailty) uses this structure.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd
import patsy
import scipy.sparse as sp

from ..errors import DataError
from ..formula import RandomTermSpec
from .codes import distinct
from .covariance import CovarianceStructure, Unstructured
from .fixed import build_matrix, check_magnitude, moderate, new_matrix
from .frame import ModelFrame

__all__ = ["RandomEffects", "RandomEffectsTerm", "build_random_effects", "group_labels", "term_from_arrays"]


def _column(data: pd.DataFrame | ModelFrame, name: str) -> pd.Series:
    if isinstance(data, ModelFrame):
        values = data.columns[name]
        return pd.Series(values, index=data.index, name=name, dtype=values.dtype, copy=False)
    return data[name]


def group_labels(data: pd.DataFrame | ModelFrame, group: tuple[str, ...]) -> pd.Series:
    """The grouping factor's value per row: the column itself, or ``"a:b"`` strings for interactions."""
    if len(group) == 1:
        return _column(data, group[0])
    out = _column(data, group[0]).astype(str)
    for g in group[1:]:
        out = out + ":" + _column(data, g).astype(str)
    return out


#: Widest range of an integer grouping column factorized by a table lookup (else by pandas' hashing),
#: relative to its number of rows
_LOOKUP_SPAN = 4


def factorize_groups(data: pd.DataFrame | ModelFrame, group: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, levels)`` of a grouping factor, levels sorted: ``pandas.factorize(..., sort=True)``.

    An integer column of the model frame whose values span at most a few times its rows
    (subject or item numbers) is factorized by one table lookup, without pandas.
    """
    values = data.columns[group[0]] if isinstance(data, ModelFrame) and len(group) == 1 else None
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu" and values.size:
        lo, hi = int(values.min()), int(values.max())
        if hi - lo < _LOOKUP_SPAN * values.size + 1024 and hi < 2 ** 63:
            offsets, codes = distinct(values.astype(np.int64) - np.int64(lo), hi - lo + 1)
            return codes.astype(np.int64), (offsets + lo).astype(values.dtype)
    codes, levels = pd.factorize(group_labels(data, group), sort=True)
    return codes, levels


@dataclass
class RandomEffectsTerm:
    """One term ``(lhs | group)``.

    Attributes
    ----------
    spec : RandomTermSpec
    levels : pandas.Index
        Sorted levels of the grouping factor.
    codes : ndarray of int (n,)
        Level index of each row.
    X : ndarray (n, p)
        The term's model matrix.
    coef_names : list of str
    design_info : patsy.DesignInfo or None
        None for a term built from arrays (:func:`term_from_arrays`), which
        cannot encode new data.
    cov : CovarianceStructure
        Covariance structure of the term (:mod:`interlace.design.covariance`).
    """

    spec: RandomTermSpec
    levels: pd.Index
    codes: np.ndarray
    X: np.ndarray
    coef_names: list[str]
    design_info: patsy.DesignInfo | None
    cov: CovarianceStructure

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def q(self) -> int:
        return self.nlevels * self.p

    def Z(self) -> sp.csc_matrix:
        """Sparse ``n × q`` block; column ``level * p + j`` holds coefficient ``j`` of ``level``."""
        n, p = self.X.shape
        rows = np.repeat(np.arange(n), p)
        cols = (self.codes[:, None] * p + np.arange(p)).ravel()
        return sp.csc_matrix((self.X.ravel(), (rows, cols)), shape=(n, self.q))

    def new_design(self, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Model matrix and level codes of new data; unseen levels get code -1."""
        if self.design_info is None:
            raise DataError(f"random-effects term {self.spec.source!r} was built from arrays "
                            "and cannot encode new data")
        X = new_matrix(self.design_info, data, f"random-effects term {self.spec.source!r}")
        for g in self.spec.group:
            if g not in data.columns:
                raise DataError(f"grouping column {g!r} of term {self.spec.source!r} is not in newdata")
        lab = group_labels(data, self.spec.group)
        codes = self.levels.get_indexer(lab)
        miss = codes < 0
        if miss.any():  # match on labels, so 308 and "308" name the same level
            by_str = {str(v): i for i, v in enumerate(self.levels)}
            codes[miss] = [by_str.get(str(v), -1) for v in np.asarray(lab)[miss]]
        return X, codes


def _make_term(spec: RandomTermSpec, data: pd.DataFrame | ModelFrame, cov: CovarianceStructure | None = None,
               check_nobs: bool = True) -> RandomEffectsTerm:
    """Build one term from its spec on the complete-case data.

    Parameters
    ----------
    spec : RandomTermSpec
    data : DataFrame or ModelFrame
    cov : CovarianceStructure, optional
        The term's covariance structure; default :class:`Unstructured` of the
        term's width (lme4's).  Its ``p`` must equal the number of columns.
    """
    codes, levels = factorize_groups(data, spec.group)
    levels = pd.Index(levels, name=spec.name)
    n = len(data)
    if len(levels) < 2:
        raise DataError(
            f"grouping factor {spec.name!r} of term {spec.source!r} has {len(levels)} level; "
            "a random effect needs at least 2 sampled levels"
        )
    if check_nobs and len(levels) >= n:
        raise DataError(
            f"grouping factor {spec.name!r} has {len(levels)} levels for {n} observations; "
            "the number of levels must be less than the number of observations"
        )
    mm = build_matrix(spec.lhs, data, f"random-effects term {spec.source!r}")
    names = ["Intercept" if c == "Intercept" else c for c in mm.design_info.column_names]
    X = np.asarray(mm, dtype=float)
    if not moderate(X):  # say which columns are not finite or too large
        bad = [names[j] for j in range(X.shape[1]) if not np.all(np.isfinite(X[:, j]))]
        if bad:
            raise DataError(f"column(s) {', '.join(map(repr, bad))} of term {spec.source!r} have non-finite values")
        check_magnitude(X, names, f"column of term {spec.source!r}")
    if X.shape[1] == 1 and np.all(X == 1.0):  # a random intercept: its column of ones as a view (no memory)
        X = np.broadcast_to(np.float64(1.0), X.shape)
    if check_nobs and X.shape[1] * len(levels) >= n:
        raise DataError(
            f"number of observations (={n}) <= number of random effects (={X.shape[1] * len(levels)}) for term "
            f"{spec.source!r}; the random-effects parameters and the residual variance are probably "
            "unidentifiable (as lme4 says): use fewer random coefficients or more observations"
        )
    return RandomEffectsTerm(spec, levels, codes.astype(np.int64), X, names, mm.design_info,
                             _check_cov(cov, X.shape[1], spec.source))


def _check_cov(cov: CovarianceStructure | None, p: int, source: str) -> CovarianceStructure:
    if cov is None:
        return Unstructured(p)
    if cov.p != p:
        raise DataError(f"covariance structure of term {source!r} is {cov.p} x {cov.p} "
                        f"but the term has {p} columns")
    return cov


def term_from_arrays(group: npt.ArrayLike, X: npt.ArrayLike, coef_names: list[str],
                     cov: CovarianceStructure | None = None, name: str = "group",
                     source: str | None = None) -> RandomEffectsTerm:
    """A term from a grouping vector and a model matrix (no formula, no level checks).

    Used by interfaces that build their own designs (statsmodels' MixedLM
    ``groups``/``exog_re``/``exog_vc``).  Unlike the formula path, a single level
    is allowed (MixedLM's one-group idiom for crossed designs).

    Parameters
    ----------
    group : array-like (n,)
        Group label of each row; levels are sorted.
    X : array-like (n, p)
        The term's model matrix.
    coef_names : list of str
        One name per column of ``X``.
    cov : CovarianceStructure, optional
        Default :class:`Unstructured` ``(p)``.
    name : str
        Name of the grouping factor.
    source : str, optional
        Description for messages.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    group = np.asarray(group)
    if group.shape[0] != X.shape[0]:
        raise DataError(f"grouping vector has {group.shape[0]} rows but the design has {X.shape[0]}")
    if len(coef_names) != X.shape[1]:
        raise DataError(f"{len(coef_names)} coefficient names for {X.shape[1]} columns")
    codes, levels = pd.factorize(group, sort=True)
    if (codes < 0).any():
        raise DataError(f"grouping vector of {name!r} has missing values")
    source = source or f"({' + '.join(map(str, coef_names))} | {name})"
    spec = RandomTermSpec(lhs="<array>", group=(name,), source=source)
    return RandomEffectsTerm(spec, pd.Index(levels, name=name), codes.astype(np.int64), X, list(coef_names),
                             None, _check_cov(cov, X.shape[1], source))


class RandomEffects:
    """All random-effects terms of a model, in fitting order (most levels first).

    Parameters
    ----------
    terms : list of RandomEffectsTerm
        In the order the user wrote them; stored reordered by decreasing ``nlevels``
        (stable), as lme4 does.
    n : int, optional
        Number of rows; needed only when ``terms`` is empty.
    """

    def __init__(self, terms: list[RandomEffectsTerm], n: int | None = None) -> None:
        #: number of rows (given explicitly for a model without terms)
        self.n = terms[0].X.shape[0] if terms else int(n or 0)
        self.user_order = list(terms)
        self.terms = sorted(terms, key=lambda t: -t.nlevels)
        qs = [t.q for t in self.terms]
        self.col_offsets = np.concatenate([[0], np.cumsum(qs)]).astype(np.int64)
        nth = [t.cov.n_theta for t in self.terms]
        self.theta_offsets = np.concatenate([[0], np.cumsum(nth)]).astype(np.int64)
        self._build_lambda_pattern()

    @property
    def q(self) -> int:
        return int(self.col_offsets[-1])

    @property
    def n_theta(self) -> int:
        return int(self.theta_offsets[-1])

    def theta_slice(self, k: int) -> slice:
        return slice(self.theta_offsets[k], self.theta_offsets[k + 1])

    @property
    def theta0(self) -> np.ndarray:
        return np.concatenate([np.zeros(0)] + [t.cov.theta0 for t in self.terms])

    @property
    def lower(self) -> np.ndarray:
        return np.concatenate([np.zeros(0)] + [t.cov.lower for t in self.terms])

    def templates(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per-term lower-triangular templates ``T_k``."""
        return [t.cov.template(theta[self.theta_slice(k)]) for k, t in enumerate(self.terms)]

    def Z(self, first: int = 0, last: int | None = None) -> sp.csc_matrix:
        """Horizontal stack of the terms' Z blocks ``first:last``."""
        blocks = [t.Z() for t in self.terms[first:last]]
        if not blocks:
            return sp.csc_matrix((self.n, 0))
        return sp.hstack(blocks, format="csc")

    def _build_lambda_pattern(self) -> None:
        rows, cols, lind = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for k, t in enumerate(self.terms):
            L = np.arange(t.nlevels)[:, None] * t.p
            rows.append((self.col_offsets[k] + L + t.cov.rows).ravel())
            cols.append((self.col_offsets[k] + L + t.cov.cols).ravel())
            # template entry -> its θ position (several entries may share one θ)
            lind.append(np.broadcast_to(self.theta_offsets[k] + t.cov.theta_index,
                                        (t.nlevels, t.cov.rows.size)).ravel())
        rows, cols, lind = (np.concatenate(a) for a in (rows, cols, lind))
        order = np.lexsort((rows, cols))  # CSC order
        self._lam_rows, self._lam_cols, self.lind = rows[order], cols[order], lind[order]
        q = self.q
        indptr = np.concatenate([[0], np.cumsum(np.bincount(self._lam_cols, minlength=q))])
        self._lam_indptr = indptr

    def Lambda(self, theta: np.ndarray, first: int = 0, last: int | None = None) -> sp.csc_matrix:
        """Λθ (``q × q``, lower block-diagonal), or the sub-block of terms ``first:last``."""
        L = sp.csc_matrix((np.asarray(theta, float)[self.lind], self._lam_rows, self._lam_indptr),
                          shape=(self.q, self.q))
        if first == 0 and last is None:
            return L
        a = self.col_offsets[first]
        b = self.col_offsets[len(self.terms) if last is None else last]
        return L[a:b, a:b].tocsc()

    def times_lambda(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """``Λθ u`` term by term from the templates' entries, without forming Λθ: each entry adds its
        products in Λθ's column order, as the sparse product does, so the numbers are the same."""
        theta = np.asarray(theta, float)
        u = np.asarray(u, float).ravel()
        b = np.zeros(u.size)
        for k, t in enumerate(self.terms):
            a, e = int(self.col_offsets[k]), int(self.col_offsets[k + 1])
            U = u[a:e].reshape(t.nlevels, t.p)
            B = np.zeros((t.nlevels, t.p))
            cov = t.cov
            vals = theta[self.theta_offsets[k] + cov.theta_index]
            for j in np.lexsort((cov.rows, cov.cols)):
                B[:, cov.rows[j]] += vals[j] * U[:, cov.cols[j]]
            b[a:e] = B.ravel()
        return b

    def subset(self, rows: np.ndarray) -> RandomEffects:
        """The structure on the rows ``rows`` (positions or a mask), every level and θ's layout kept.

        A level left without rows has a zero column in Z: its random effect is 0 and it
        changes neither the log-determinant nor the penalized residual sum of squares.
        """
        terms = [replace(t, codes=t.codes[rows], X=t.X[rows]) for t in self.user_order]
        sub = RandomEffects(terms, n=len(np.arange(self.n)[rows]))
        if [t.name for t in sub.terms] != [t.name for t in self.terms]:  # pragma: no cover - same nlevels
            raise DataError("deleting rows changed the order of the random-effects terms")
        return sub

    def without_rows(self) -> RandomEffects:
        """The structure with every level, design and θ's layout but no rows (a result's ``remove_data()``)."""
        terms = [replace(t, codes=np.zeros(0, np.int64), X=np.zeros((0, t.p))) for t in self.user_order]
        return RandomEffects(terms, n=0)

    def split_b(self, b: np.ndarray) -> list[np.ndarray]:
        """Per-term ``(nlevels, p)`` arrays of a stacked random-effects vector."""
        return [b[self.col_offsets[k]:self.col_offsets[k + 1]].reshape(t.nlevels, t.p)
                for k, t in enumerate(self.terms)]


def build_random_effects(specs: list[RandomTermSpec], data: pd.DataFrame | ModelFrame, check_nobs: bool = True,
                         allow_empty: bool = False) -> RandomEffects:
    """Build every term of ``specs`` on the complete-case ``data``.

    ``check_nobs`` refuses terms with as many levels (or random effects) as rows,
    as lmer does; GLMMs skip it (observation-level random effects), as glmer does.
    ``allow_empty`` accepts no terms (a residual-structure-only model, nlme's ``gls``).
    """
    if not specs and not allow_empty:
        raise DataError("a mixed model needs at least one random-effects term (use groups= or random=)")
    return RandomEffects([_make_term(s, data, check_nobs=check_nobs) for s in specs], n=len(data))
