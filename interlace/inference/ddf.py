"""t and F tests for the fixed effects of a linear mixed model, with denominator degrees of freedom.

:class:`FixedEffectsTests` is mixed into :class:`~interlace.results.lmm.CrossedLMEResult`:
it gives ``fe_df``, t-based ``fe_pvalues`` / ``fe_conf_int``, ``cov_fe_kr``, ``anova``
and ``contest``, as lmerTest's ``summary``, ``anova`` and ``contest`` do.  The method
comes from ``df_method`` (set by ``interlace.fit(df_method=...)``):

* ``"satterthwaite"`` (default): :mod:`interlace.inference.satterthwaite`;
* ``"kenward-roger"``: :mod:`interlace.inference.kenward_roger` (REML fits only); the
  t tests then use the Kenward-Roger adjusted standard errors, as lmerTest does;
* ``"containment"``: nlme's containment df (:mod:`interlace.inference.containment`), the
  default for models with a residual correlation or variance structure;
* ``"normal"``: Wald z tests (infinite df), interlace's behaviour before df methods.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.stats as st

from ..errors import InterlaceError, renamed_option
from .containment import ContainmentTests
from .hypotheses import StatsmodelsTests
from .satterthwaite import FTest
from .wald import NormalTests

__all__ = ["DF_METHODS", "FixedEffectsTests", "parse_df_method"]

DF_METHODS = ("satterthwaite", "kenward-roger", "containment", "normal")
_ALIASES = {"satterthwaite": "satterthwaite", "satt": "satterthwaite",
            "kenward-roger": "kenward-roger", "kenwardroger": "kenward-roger", "kr": "kenward-roger",
            "containment": "containment", "nlme": "containment", "inner-outer": "containment",
            "normal": "normal", "wald": "normal", "z": "normal"}
_LABEL = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger",
          "containment": "containment (nlme)", "normal": "normal (Wald z)"}


def parse_df_method(method: str) -> str:
    """``"satterthwaite"`` / ``"kenward-roger"`` / ``"containment"`` / ``"normal"``
    (any case; ``_`` or space for ``-``)."""
    key = str(method).strip().lower().replace("_", "-").replace(" ", "-")
    if key not in _ALIASES:
        raise InterlaceError("df_method must be 'satterthwaite', 'kenward-roger', 'containment' or 'normal', "
                             f"got {method!r}")
    return _ALIASES[key]


class FixedEffectsTests(StatsmodelsTests):
    """Degrees of freedom, t tests, F tests and ANOVA tables for the fixed effects (see module docstring);
    statsmodels' ``t_test``, ``f_test``, ``wald_test`` and ``t_test_pairwise`` with the same df
    (:class:`~interlace.inference.hypotheses.StatsmodelsTests`)."""

    _df_method = "satterthwaite"

    @property
    def df_method(self) -> str:
        """Method behind ``fe_df``, ``fe_pvalues``, ``fe_conf_int`` and the summary's t tests."""
        return self._df_method

    @df_method.setter
    def df_method(self, value: str) -> None:
        method = parse_df_method(value)
        if method == "kenward-roger" and not getattr(self, "reml", True):
            raise InterlaceError("Kenward-Roger's method is only available for REML fits (as in lmerTest)")
        if method not in self.__dict__.get("_ddf_engines", {}):
            self._check_rows_for(method)
        self._df_method = method

    def _check_rows_for(self, method: str) -> None:
        """A new df engine needs the rows: refuse clearly after ``remove_data()``."""
        if getattr(self, "_rows_removed", False) and method != "normal":
            raise InterlaceError(f"df_method={method!r} needs the rows, which remove_data() removed; the "
                                 f"tests kept are those of df_method={self._df_method!r}")

    # ------------------------------------------------------------ engines
    def _ddf_engine(self, method: str | None = None):
        method = self.df_method if method is None else parse_df_method(method)
        cache = self.__dict__.setdefault("_ddf_engines", {})
        if method not in cache:
            self._check_rows_for(method)
            if method == "normal":
                cache[method] = NormalTests(self)
            elif method == "containment":
                cache[method] = ContainmentTests(self)
            elif method == "kenward-roger":
                from .kenward_roger import KenwardRoger

                if not self.reml:
                    raise InterlaceError("Kenward-Roger's method is only available for REML fits "
                                         "(as in lmerTest): refit with method='REML'")
                cache[method] = KenwardRoger(self, marginal=self._marginal_derivatives())
            else:
                from .satterthwaite import ANALYTIC_MAX_Q, Satterthwaite

                md = cache.get("_marginal")
                if md is None and self.model.random_effects_structure.q <= ANALYTIC_MAX_Q:
                    md = self._marginal_derivatives()
                cache[method] = Satterthwaite(self, marginal=md)
        return cache[method]

    def _marginal_derivatives(self):
        cache = self.__dict__.setdefault("_ddf_engines", {})
        if "_marginal" not in cache:
            from .marginal import MarginalDerivatives

            cache["_marginal"] = MarginalDerivatives(self)
        return cache["_marginal"]

    def _fe_tests(self, method: str | None = None) -> pd.DataFrame:
        """lmerTest's coefficient table: Estimate, Std. Error, df, t value, Pr(>|t|)."""
        method = self.df_method if method is None else parse_df_method(method)
        cache = self.__dict__.setdefault("_fe_tests_cache", {})
        if method not in cache:
            eng = self._ddf_engine(method)
            p = len(self._names)
            rows = [eng.contest1d(np.eye(p)[i]) for i in range(p)]
            cache[method] = pd.DataFrame({"Estimate": [r.estimate for r in rows],
                                          "Std. Error": [r.se for r in rows], "df": [r.df for r in rows],
                                          "t value": [r.t for r in rows], "Pr(>|t|)": [r.p for r in rows]},
                                         index=list(self._names))
        return cache[method].copy()

    # ------------------------------------------------------------ per coefficient
    @property
    def fe_bse(self) -> pd.Series:
        """Standard errors of β̂ in the tests: lme4's (``√diag(vcov)``), or under Kenward-Roger the
        adjusted ones (``√diag(cov_fe_kr)``, lmerTest's ``summary(m, ddf = "Kenward-Roger")``)."""
        if self.df_method == "kenward-roger":
            return self._fe_tests()["Std. Error"].rename("fe_bse")
        return super().fe_bse

    @property
    def fe_tvalues(self) -> pd.Series:
        """β̂ / :attr:`fe_bse` (lmerTest's ``t value``; Kenward-Roger: with the adjusted SEs)."""
        if self.df_method == "kenward-roger":
            return self._fe_tests()["t value"].rename("fe_tvalues")
        return super().fe_tvalues

    @property
    def fe_df(self) -> pd.Series:
        """Denominator degrees of freedom of each coefficient's t test (``df_method``; inf for "normal")."""
        return self._fe_tests()["df"].rename("fe_df")

    @property
    def fe_pvalues(self) -> pd.Series:
        """Two-sided p-values of the t tests β = 0 with ``fe_df`` degrees of freedom.

        Satterthwaite (default): lmerTest's ``summary``; Kenward-Roger: with the
        adjusted standard errors (``cov_fe_kr``), lmerTest's ``summary(m, ddf = "Kenward-Roger")``;
        "normal": Wald z.  statsmodels' ``pvalues`` stays Wald z.
        """
        return self._fe_tests()["Pr(>|t|)"].rename("fe_pvalues")

    def fe_conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Confidence intervals for β: estimate ± t quantile (``fe_df``) × SE (KR: adjusted SE).

        With ``df_method="normal"`` these are Wald (normal-quantile) intervals, as
        statsmodels' ``conf_int()``, which always is.
        """
        tab = self._fe_tests()
        q = st.t.isf(alpha / 2, tab["df"].to_numpy())
        b, se = tab["Estimate"].to_numpy(), tab["Std. Error"].to_numpy()
        return pd.DataFrame({"lower": b - q * se, "upper": b + q * se}, index=tab.index)

    @property
    def cov_fe_kr(self) -> pd.DataFrame:
        """Kenward-Roger adjusted covariance matrix of β̂ (pbkrtest's ``vcovAdj``; REML fits only)."""
        V = self._ddf_engine("kenward-roger").vcov_adjusted
        return pd.DataFrame(V, index=self._names, columns=self._names)

    # ------------------------------------------------------------ contrasts
    def _contrast_matrix(self, L) -> np.ndarray:
        names = list(self._names)
        if isinstance(L, pd.DataFrame):
            L = L.reindex(columns=names).fillna(0.0).to_numpy(float)
        elif isinstance(L, (pd.Series, dict)):
            s = pd.Series(L, dtype=float)
            unknown = [k for k in s.index if k not in names]
            if unknown:
                raise InterlaceError(f"unknown coefficient(s) in the contrast: {unknown}; coefficients are {names}")
            L = s.reindex(names).fillna(0.0).to_numpy()[None, :]
        L = np.atleast_2d(np.asarray(L, float))
        if L.shape[1] != len(names):
            raise InterlaceError(f"the contrast has {L.shape[1]} columns but the model has {len(names)} "
                                 f"fixed effects ({names})")
        return L

    def contest(self, L: npt.ArrayLike | pd.Series | pd.DataFrame | dict[str, float],
                rhs: float | npt.ArrayLike = 0.0, df_method: str | None = None, joint: bool = True,
                level: float = 0.95, *, ddf: str | None = None) -> pd.DataFrame:
        """Test linear contrasts of the fixed effects (lmerTest's ``contest``).

        Parameters
        ----------
        L : array-like, Series, dict or DataFrame
            One contrast (a vector of length p, or a Series/dict by coefficient name)
            or several (a matrix with one row per contrast, or a DataFrame whose
            columns are coefficient names; missing ones count as 0).
        rhs : float or array-like
            Hypothesised value(s) of ``L β``.
        df_method : {"satterthwaite", "kenward-roger", "containment", "normal"}, optional
            Default: the result's ``df_method`` (lmerTest's ``ddf``; ``ddf=`` still works, with
            a ``FutureWarning``).
        joint : bool
            Several rows: one F test of all of them (True, lmerTest's ``contestMD``) or
            a t test per row (False).
        level : float
            Confidence level of the t tests' intervals.

        Returns
        -------
        DataFrame
            A t test (one contrast, or ``joint=False``): ``Estimate``, ``Std. Error``,
            ``df``, ``t value``, ``lower``, ``upper``, ``Pr(>|t|)``, one row per contrast.
            An F test: one row with ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``,
            ``F value``, ``Pr(>F)``.
        """
        ddf = renamed_option(df_method, ddf, "df_method", "ddf")
        index = None
        if isinstance(L, pd.DataFrame):
            index = list(L.index)
        Lm = self._contrast_matrix(L)
        eng = self._ddf_engine(ddf)
        rhs_v = np.broadcast_to(np.asarray(rhs, float), (Lm.shape[0],))
        if Lm.shape[0] > 1 and joint:
            from .anova import ftest_frame

            r = eng.contest_md(Lm, rhs_v)
            out = ftest_frame({"contrast": r}, "F test of the contrast")
            return out
        rows = [eng.contest1d(Lm[i], float(rhs_v[i])) for i in range(Lm.shape[0])]
        q = np.array([st.t.isf((1 - level) / 2, r.df) for r in rows])
        est = np.array([r.estimate for r in rows])
        se = np.array([r.se for r in rows])
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "df": [r.df for r in rows],
                             "t value": [r.t for r in rows], "lower": est - q * se, "upper": est + q * se,
                             "Pr(>|t|)": [r.p for r in rows]},
                            index=index if index is not None else range(len(rows)))

    def anova(self, type: int | str = 3, df_method: str | None = None, *, ddf: str | None = None) -> pd.DataFrame:
        """F test of each fixed-effect formula term (lmerTest's ``anova(m, type, ddf)``).

        Parameters
        ----------
        type : {3, 1, "III", "I"}
            3: marginal tests with lmerTest's type III contrasts; 1: sequential
            (each term adjusted for the terms before it in the formula).
        df_method : {"satterthwaite", "kenward-roger", "containment", "normal"}, optional
            Default: the result's ``df_method`` (lmerTest's ``ddf``; ``ddf=`` still works, with
            a ``FutureWarning``).

        Returns
        -------
        DataFrame
            One row per term (a factor is one row): ``Sum Sq``, ``Mean Sq``, ``NumDF``,
            ``DenDF``, ``F value``, ``Pr(>F)``; ``attrs["heading"]`` names the type and method.
        """
        ddf = renamed_option(df_method, ddf, "df_method", "ddf")
        from .anova import contrasts_type1, contrasts_type3, ftest_frame

        t = str(type).upper()
        if t in ("3", "III"):
            Ls, tname = contrasts_type3(self.model), "III"
        elif t in ("1", "I"):
            Ls, tname = contrasts_type1(self.model), "I"
        else:
            raise InterlaceError(f"type must be 3 or 1 ('III' or 'I'), got {type!r}")
        method = self.df_method if ddf is None else parse_df_method(ddf)
        eng = self._ddf_engine(method)
        rows = {}
        for name, L in Ls.items():
            rows[name] = eng.contest_md(L) if L.shape[0] else FTest(np.nan, 0, np.nan, np.nan, np.nan)
        how = {"satterthwaite": "Satterthwaite's method", "kenward-roger": "Kenward-Roger's method",
               "containment": "containment (nlme) df",
               "normal": "Wald chi-square / NumDF (DenDF = inf)"}[method]
        return ftest_frame(rows, f"Type {tname} Analysis of Variance Table with {how}")
