"""nlme's "containment" denominator degrees of freedom for fixed-effect tests.

nlme (Pinheiro & Bates 2000, §2.4.2) splits the N observations into strata: the
levels of the nested grouping factors, outermost first, then the residual
stratum.  Stratum k starts with ``m_k − m_{k−1}`` degrees of freedom (``m_k`` the
number of groups at level k, ``m_0 = 0``; the residual stratum ``N − m_Q``).  A
fixed-effect column belongs to the innermost stratum within whose groups it
varies (a column varying within the groups of level k belongs to stratum k + 1;
the residual stratum for columns varying within the innermost groups); each
stratum loses one df per column it holds, the outermost one more for the
intercept, which gets the largest df of all.  Without random effects (``gls``)
every column has ``N − p``.

Covariances and t statistics are the usual plug-in ones; only the reference t
distribution changes.  An F test of several contrasts uses the df of the
innermost stratum among the columns the contrasts involve.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.stats as st

from ..errors import InterlaceError
from .satterthwaite import FTest, TTest, t_test
from .wald import NormalTests

if TYPE_CHECKING:
    from ..design.terms import RandomEffects

__all__ = ["ContainmentTests", "containment_df", "nested_levels"]


def nested_levels(re: RandomEffects) -> list[np.ndarray] | None:
    """Level codes of the distinct grouping factors, outermost first, or None when they are not nested."""
    groups: list[np.ndarray] = []
    for t in sorted(re.terms, key=lambda t: t.nlevels):
        if any(len(g) == len(t.codes) and pd.Series(t.codes).groupby(g).nunique().max() <= 1
               and pd.Series(g).groupby(t.codes).nunique().max() <= 1 for g in groups):
            continue  # the same grouping as an earlier term
        groups.append(t.codes)
    for outer, inner in zip(groups[:-1], groups[1:]):
        if pd.Series(outer).groupby(inner).nunique().max() > 1:
            return None
    return groups


def _varies_within(x: np.ndarray, codes: np.ndarray, tol: float = np.sqrt(np.finfo(float).eps)) -> bool:
    """nlme's test: some group in which ``x`` is not (relatively) constant."""
    first = pd.Series(x).groupby(codes).transform("first").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.where(first == 0, np.abs(x), np.abs(x / first - 1.0))
    return bool(np.any(dev >= tol))


def containment_df(X: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Per column of X, nlme's containment df (see module docstring)."""
    X = np.asarray(X, float)
    n, p = X.shape
    m = [len(np.unique(g)) for g in groups]
    df = np.array([float(v) for v in np.diff([0] + m + [n])])  # strata: levels..., residual
    const = np.array([_varies_within(X[:, j], np.zeros(n, np.int64)) is False for j in range(p)])
    stratum = np.zeros(p, dtype=np.int64)
    for j in np.flatnonzero(~const):
        k = 0
        for i, g in enumerate(groups):
            if _varies_within(X[:, j], g):
                k = i + 1
        stratum[j] = k if groups else 0
    for j in np.flatnonzero(~const):
        df[stratum[j]] -= 1
    if const.any():
        df[0] -= 1
    else:
        df[1:] += 1
    out = df[stratum]
    out[const] = df.max()
    return out


class ContainmentTests(NormalTests):
    """t and F tests with containment df (the Wald statistics of :class:`NormalTests`)."""

    def __init__(self, result: Any) -> None:
        super().__init__(result)
        re = result.model.random_effects_structure
        groups = nested_levels(re)
        if groups is None:
            raise InterlaceError("the containment df need nested random-effects groupings; these are crossed: "
                                 "use df_method='normal'")
        self.df = containment_df(np.asarray(result.model.exog, float), groups)

    def _ddf(self, L: np.ndarray) -> float:
        used = np.any(np.abs(np.atleast_2d(L)) > 0, axis=0)
        return float(self.df[used].min()) if used.any() else float(self.df.max())

    def contest1d(self, L: npt.ArrayLike, rhs: float = 0.0) -> TTest:
        return t_test(L, self.beta, self.vcov_beta, self._ddf, rhs)

    def contest_md(self, L: npt.ArrayLike, rhs: float | npt.ArrayLike = 0.0) -> FTest:
        chi = super().contest_md(L, rhs)
        if chi.ndf == 0:
            return chi
        ddf = self._ddf(np.atleast_2d(np.asarray(L, float)))
        return FTest(chi.F, chi.ndf, ddf, float(st.f.sf(chi.F, chi.ndf, ddf)), chi.mean_sq)
