"""statsmodels' hypothesis tests on a linear mixed model, with the model's denominator df.

statsmodels' ``t_test``, ``f_test``, ``wald_test`` and ``t_test_pairwise`` test with
``df_resid`` (n − p) or the normal distribution.  :class:`StatsmodelsTests` (mixed into
:class:`~interlace.inference.ddf.FixedEffectsTests`) gives them the same arguments and
return types (statsmodels' ``ContrastResults`` and ``MultiCompResult``) but tests as
lmerTest's ``contest1D`` / ``contestMD`` do, with the result's ``df_method``:

* ``t_test``: one t test per row of the constraints, each with its own df
  (Satterthwaite, or Kenward-Roger with the adjusted standard error);
* ``f_test`` / ``wald_test(use_f=True)``: one F test of all rows (lmerTest's ``contestMD``);
  ``wald_test(use_f=False)`` gives the Wald χ² of the same hypothesis;
* ``t_test_pairwise``: the t tests of every pair of levels of a factor, with statsmodels'
  multiple-testing correction.

With ``df_method="normal"`` the tests are Wald z / χ², as statsmodels' for MixedLM.  The
constraints are written as statsmodels takes them: a string (``"Days = 0"``,
``"a = b, c = 0"``), a matrix, or ``(matrix, values)``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import patsy
import scipy.stats as st
from statsmodels.stats.contrast import ContrastResults, MultiCompResult, t_test_multi

from ..errors import InterlaceError

__all__ = ["StatsmodelsTests", "linear_constraints", "pairwise_contrasts"]


def linear_constraints(r_matrix: Any, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(L, q)`` of statsmodels' constraint argument (string, matrix, ``(matrix, q)``, dict or Series)."""
    if isinstance(r_matrix, (dict, pd.Series)):
        s = pd.Series(r_matrix, dtype=float)
        unknown = [k for k in s.index if k not in names]
        if unknown:
            raise InterlaceError(f"unknown coefficient(s) {unknown}; coefficients are {names}")
        return s.reindex(names).fillna(0.0).to_numpy()[None, :], np.zeros(1)
    if isinstance(r_matrix, pd.DataFrame):
        unknown = [k for k in r_matrix.columns if k not in names]
        if unknown:
            raise InterlaceError(f"unknown coefficient(s) {unknown}; coefficients are {names}")
        L = r_matrix.reindex(columns=names).fillna(0.0).to_numpy(float)
        return L, np.zeros(L.shape[0])
    try:
        lc = patsy.DesignInfo(names).linear_constraint(r_matrix)
    except (patsy.PatsyError, ValueError) as exc:
        raise InterlaceError(f"cannot read the constraints {r_matrix!r} ({exc}); coefficients are {names}") from None
    return np.asarray(lc.coefs, float), np.asarray(lc.constants, float).ravel()


def pairwise_contrasts(levels: list, coding: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Rows ``level_j − level_i`` (i < j) in the coefficients of a factor coded by ``coding``
    (levels × columns, patsy's contrast matrix), and their labels ``"j-i"`` (statsmodels')."""
    k = len(levels)
    rows, labels = [], []
    for i in range(k):
        for j in range(i + 1, k):
            rows.append(coding[j] - coding[i])
            labels.append(f"{levels[j]}-{levels[i]}")
    return np.asarray(rows, float).reshape(len(rows), coding.shape[1]), labels


class StatsmodelsTests:
    """statsmodels' ``t_test`` / ``f_test`` / ``wald_test`` / ``t_test_pairwise`` with the model's df.

    Needs ``_names``, ``df_method`` and ``_ddf_engine(method)`` (see
    :class:`~interlace.inference.ddf.FixedEffectsTests`).
    """

    def _constraints(self, r_matrix: Any) -> tuple[np.ndarray, np.ndarray]:
        L, q = linear_constraints(r_matrix, list(self._names))
        if L.shape[1] != len(self._names):
            raise InterlaceError(f"the constraints have {L.shape[1]} columns but the model has "
                                 f"{len(self._names)} fixed effects ({list(self._names)})")
        return L, q

    def t_test(self, r_matrix: Any, cov_p: npt.ArrayLike | None = None, use_t: bool | None = None
               ) -> ContrastResults:
        """t tests of linear combinations of the fixed effects, one per row, each with the model's df.

        As statsmodels' ``t_test``, but each row is lmerTest's ``contest1D`` with
        ``df_method``'s degrees of freedom (Kenward-Roger: and its adjusted standard error).

        Parameters
        ----------
        r_matrix : str, array-like or (array-like, array-like)
            ``"Days = 0"``, ``"Days = 10, Intercept = 250"``, a matrix with one row per
            test, or ``(matrix, values)``.
        cov_p : array-like, optional
            Another covariance of β̂: Wald z tests with it (no df belongs to it).
        use_t : bool, optional
            False: Wald z tests with the model's covariance.  Default: t tests (z for
            ``df_method="normal"``).

        Returns
        -------
        statsmodels.stats.contrast.ContrastResults
        """
        L, q = self._constraints(r_matrix)
        if cov_p is not None:
            V = np.asarray(cov_p, float)
            effect = L @ np.asarray(self.params, float)[self._fe]
            sd = np.sqrt(np.einsum("ij,jk,ik->i", L, V, L))
            return ContrastResults(effect=effect, statistic=(effect - q) / sd, sd=sd, df_denom=np.inf,
                                   distribution="norm")
        method = "normal" if use_t is False else self.df_method
        eng = self._ddf_engine(method)
        rows = [eng.contest1d(L[i], float(q[i])) for i in range(L.shape[0])]
        effect = np.array([r.estimate for r in rows])
        sd = np.array([r.se for r in rows])
        t = np.array([r.t for r in rows])
        df = np.array([r.df for r in rows])
        if np.all(np.isinf(df)):
            return ContrastResults(effect=effect, statistic=t, sd=sd, df_denom=np.inf, distribution="norm")
        return ContrastResults(effect=effect, t=t, sd=sd, df_denom=df if df.size > 1 else float(df[0]))

    def f_test(self, r_matrix: Any, cov_p: npt.ArrayLike | None = None, invcov: npt.ArrayLike | None = None
               ) -> ContrastResults:
        """F test of linear restrictions on the fixed effects with the model's df (lmerTest's ``contestMD``);
        see :meth:`wald_test`."""
        return self.wald_test(r_matrix, cov_p=cov_p, invcov=invcov, use_f=True, scalar=True)

    def wald_test(self, r_matrix: Any, cov_p: npt.ArrayLike | None = None, invcov: npt.ArrayLike | None = None,
                  use_f: bool | None = None, df_constraints: int | None = None, scalar: bool = True
                  ) -> ContrastResults:
        """Joint test of linear restrictions on the fixed effects.

        ``use_f=True`` (the default unless ``df_method="normal"``): F test with
        ``df_method``'s denominator df, lmerTest's ``contestMD`` (Satterthwaite, or
        Kenward-Roger's F with its scaling and df); ``use_f=False``: the Wald χ²
        (``F × rank``).  ``cov_p``/``invcov`` give another covariance of β̂: Wald χ²
        (or F with infinite denominator df) with it.

        Returns
        -------
        statsmodels.stats.contrast.ContrastResults
        """
        L, q = self._constraints(r_matrix)
        if use_f is None:
            use_f = self.df_method != "normal"
        if cov_p is not None or invcov is not None:
            d = L @ np.asarray(self.params, float)[self._fe] - q
            inv = np.asarray(invcov, float) if invcov is not None else np.linalg.pinv(L @ np.asarray(cov_p) @ L.T)
            ndf = int(np.linalg.matrix_rank(inv))
            F, ddf = float(d @ inv @ d) / ndf, np.inf
        else:
            r = self._ddf_engine().contest_md(L, q)
            F, ndf, ddf = r.F, int(r.ndf), r.ddf
        if df_constraints is not None:
            F, ndf = F * ndf / df_constraints, int(df_constraints)
        if not use_f:
            chi2 = F * ndf
            return ContrastResults(chi2=chi2, df_denom=ndf, statistic=chi2, distribution="chi2", distargs=(ndf,))
        out = ContrastResults(F=F, df_denom=ddf, df_num=ndf)
        if np.isinf(ddf):  # scipy's F has no infinite denominator df: its limit is χ²/ndf
            out.pvalue = float(st.chi2.sf(F * ndf, ndf))
        return out

    def t_test_pairwise(self, term_name: str, method: str | list[str] = "hs", alpha: float = 0.05,
                        factor_labels: list | None = None) -> MultiCompResult:
        """t tests of every pair of levels of a categorical term, with the model's df and
        statsmodels' multiple-testing correction (its ``t_test_pairwise``).

        Parameters
        ----------
        term_name : str
            A categorical main effect as patsy names it (``"arm"``, ``"C(arm, Sum)"``); with
            an interaction involving it, the comparisons are at the other factors'
            reference levels (as statsmodels').
        method : str or list of str
            ``statsmodels.stats.multitest.multipletests`` methods (default ``"hs"``, Holm-Šidák).
        alpha : float
        factor_labels : list, optional
            Labels of the levels (default: the levels).

        Returns
        -------
        statsmodels.stats.contrast.MultiCompResult
            ``result_frame`` (coef, std err, t, P>|t|, intervals, then the corrected
            p-values ``pvalue-<method>`` and ``reject-<method>``) and ``contrasts``.
        """
        from .anova import fixed_terms

        terms = {t.name: t for t in fixed_terms(self.model)[1]}
        if term_name not in terms:
            raise InterlaceError(f"no term {term_name!r} among the fixed effects' terms {list(terms)}")
        ft = terms[term_name]
        if len(ft.factors) > 1:
            raise InterlaceError(f"term {term_name!r} is an interaction: compare the levels of a main effect")
        di = self.model.fixed_design.design_info
        factor = ft.factors[0]
        info = di.factor_infos[factor]
        if info.type != "categorical":
            raise InterlaceError(f"term {term_name!r} is numeric: pairwise comparisons need a categorical term")
        (sub,) = di.term_codings[ft.term]
        cm = sub.contrast_matrices[factor]
        sl = di.term_slices[ft.term]
        if ft.columns.size != sl.stop - sl.start:
            raise InterlaceError(f"columns of term {term_name!r} were dropped for rank deficiency")
        levels = list(info.categories)
        if factor_labels is not None:
            if len(factor_labels) != len(levels):
                raise InterlaceError(f"factor_labels has {len(factor_labels)} labels for {len(levels)} levels")
            levels = list(factor_labels)
        sub_rows, labels = pairwise_contrasts(levels, np.asarray(cm.matrix, float))
        contrasts = np.zeros((sub_rows.shape[0], len(self._names)))
        contrasts[:, ft.columns] = sub_rows
        frame = t_test_multi(self, contrasts, method=method, alpha=alpha, contrast_names=labels)
        return MultiCompResult(result_frame=frame, contrasts=contrasts, term=ft.term, contrast_labels=labels,
                               term_encoding_matrix=np.asarray(cm.matrix))
