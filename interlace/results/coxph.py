"""Results of a Cox model without random effects (:class:`CoxPHResults`): R's ``coxph`` and its
``summary`` under statsmodels' names.

``params``, ``bse``, ``cov_params()``, ``tvalues`` (z), ``pvalues``, ``conf_int()`` are
statsmodels' (from the variance coxph reports: the robust sandwich when the fit is robust,
the inverse information otherwise; :attr:`naive_cov` and :attr:`naive_bse` keep the
latter).  The global tests are ``summary.coxph``'s: :attr:`logtest` (likelihood ratio),
:attr:`waldtest`, :attr:`sctest` (score, log-rank) and, for a robust fit, :attr:`robscore`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.stats as st
from statsmodels.base import wrapper as wrap
from statsmodels.base.model import LikelihoodModelResults, LikelihoodResultsWrapper
from statsmodels.iolib.summary2 import Summary

from ..errors import InterlaceError
from ..inference.concordance import Concordance, concordance
from .survival import SurvivalResultsMixin

if TYPE_CHECKING:
    from ..inference.lrt import LRTest
    from ..objective.coxph import CoxPHFit

__all__ = ["CoxPHResults", "CoxPHResultsWrapper"]

RESIDUAL_TYPES = ("martingale", "deviance", "score", "dfbeta", "dfbetas")


def _chi2(stat: float, df: int) -> pd.Series:
    return pd.Series({"statistic": stat, "df": df, "pvalue": float(st.chi2.sf(stat, df)) if df else np.nan})


class CoxPHResults(SurvivalResultsMixin, LikelihoodModelResults):
    """A fitted Cox model without random effects (see the module docstring).

    Attributes
    ----------
    fit_info : CoxPHFit
        The Newton-Raphson fit (coefficients, inverse information, log-likelihoods, iterations).
    robust : bool
        Whether the reported variance is the robust sandwich (``cluster()``, or non-integer
        case weights, as coxph decides).
    ties : str
    """

    def __init__(self, model: Any, fit: CoxPHFit, robust: bool, robust_cov: np.ndarray | None,
                 robust_score: float | None) -> None:
        cov = robust_cov if robust else fit.vcov
        super().__init__(model, np.asarray(fit.coef, float), normalized_cov_params=cov, scale=1.0)
        self.use_t = False
        self.fit_info = fit
        self.robust = robust
        self.ties = model.ties
        self._robust_score = robust_score
        self._centres = self._centring()  # kept: predictions on new data after remove_data()

    def _centring(self) -> tuple[np.ndarray, np.ndarray | None, float | None]:
        """survival's ``means``, the weighted covariate means per stratum (None without strata),
        and the weighted mean offset (None without one): what ``predict`` centres by."""
        mod = self.model
        X = np.asarray(mod.exog, float)
        w = np.ones(X.shape[0]) if mod.weights is None else mod.weights
        by_stratum = None
        if mod.strata is not None:
            S = mod.cox_data.n_strata
            sw = np.bincount(mod.strata, weights=w, minlength=S)
            by_stratum = np.column_stack([np.bincount(mod.strata, weights=w * X[:, j], minlength=S)
                                          for j in range(X.shape[1])]) / sw[:, None] if X.shape[1] \
                else np.zeros((S, 0))
        off = None if mod.offset is None else float(np.average(mod.offset, weights=mod.weights))
        return mod.x_means(), by_stratum, off

    # ------------------------------------------------------------------ likelihoods
    @property
    def llf(self) -> float:
        """log partial likelihood at β̂ (coxph's ``loglik[2]``)."""
        return float(self.fit_info.loglik[1])

    @property
    def llnull(self) -> float:
        """log partial likelihood at the initial values, β = 0 (``loglik[1]``)."""
        return float(self.fit_info.loglik[0])

    #: fitted by (partial) maximum likelihood: likelihood-ratio tests and ``interlace.anova`` apply
    reml = False

    @property
    def df_model(self) -> int:
        return int(len(self.params))

    @property
    def df_modelwc(self) -> int:
        """Number of estimated parameters (for ``interlace.anova``)."""
        return self.df_model

    @property
    def nobs(self) -> int:
        return int(self.model.nobs)

    @property
    def n_events(self) -> int:
        return int(self.model.n_events)

    @property
    def aic(self) -> float:
        """−2 llf + 2 p (R's ``AIC``)."""
        return -2.0 * self.llf + 2.0 * self.df_model

    @property
    def bic(self) -> float:
        """−2 llf + log(events) p (R's ``BIC`` of a coxph fit counts events)."""
        return -2.0 * self.llf + np.log(self.n_events) * self.df_model

    @property
    def iterations(self) -> int:
        return int(self.fit_info.iterations)

    @property
    def converged(self) -> bool:
        return bool(self.fit_info.converged)

    # ------------------------------------------------------------------ variances
    @property
    def naive_cov(self) -> pd.DataFrame:
        """Model-based variance: the inverse information (coxph's ``naive.var`` when robust)."""
        names = self.model.exog_names
        return pd.DataFrame(self.fit_info.vcov, index=names, columns=names)

    @property
    def naive_bse(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.fit_info.vcov)), index=self.model.exog_names)

    def _beta_vcov(self) -> np.ndarray:
        return np.asarray(self.normalized_cov_params, float)

    def _fitted_eta(self) -> np.ndarray:
        X = np.asarray(self.model.exog, float)
        beta = np.asarray(self.params, float)
        # column by column: BLAS matrix-vector products may round equal rows differently, and the
        # concordance counts exact ties of the predictor
        eta = np.zeros(X.shape[0])
        for j in range(X.shape[1]):
            eta += X[:, j] * beta[j]
        return eta if self.model.offset is None else eta + self.model.offset

    def _state(self):
        cache = self.__dict__.setdefault("_survival_cache", {})
        if "state" not in cache:
            cache["state"] = self.model.cox_data.state(self._fitted_eta())
        return cache["state"]

    # ------------------------------------------------------------------ global tests
    @property
    def logtest(self) -> pd.Series:
        """Likelihood-ratio test of all coefficients: 2 (llf − llnull) on p df."""
        return _chi2(2.0 * (self.llf - self.llnull), self.df_model)

    @property
    def waldtest(self) -> pd.Series:
        """Wald test of all coefficients, β̂ᵀV⁻¹β̂ with the reported (robust if robust) variance."""
        b = np.asarray(self.params, float)
        stat = float(b @ np.linalg.solve(self._beta_vcov(), b)) if b.size else 0.0
        return _chi2(stat, self.df_model)

    @property
    def sctest(self) -> pd.Series:
        """Score (log-rank) test at β = 0."""
        return _chi2(float(self.fit_info.score), self.df_model)

    @property
    def robscore(self) -> pd.Series | None:
        """Robust score test (robust fits only): the score at β = 0 with its sandwich variance."""
        if self._robust_score is None:
            return None
        return _chi2(float(self._robust_score), self.df_model)

    @property
    def concordance(self) -> Concordance:
        """Harrell's C of the linear predictor with its standard error (coxph's ``concordance``)."""
        cache = self.__dict__.setdefault("_survival_cache", {})
        if "concordance" not in cache:
            cluster = self.model.cluster if self.robust else None
            # on coxph's linear predictor (centred at the means), whose exact ties R counts
            beta = np.asarray(self.params, float)
            lp = self._fitted_eta() - float(np.sum(beta * self.model.x_means()))
            cache["concordance"] = concordance(self.model.cox_data, lp, cluster)
        return cache["concordance"]

    # ------------------------------------------------------------------ residuals and prediction
    def residuals(self, type: str = "martingale") -> pd.Series | pd.DataFrame:  # noqa: A002 - R's name
        """Residuals (R's ``residuals.coxph``).

        Parameters
        ----------
        type : {"martingale", "deviance", "score", "dfbeta", "dfbetas"}
            ``score`` residuals are unweighted, ``dfbeta`` (score residuals times the
            model-based variance) weighted by the case weights, as survival's defaults.
        """
        if type not in RESIDUAL_TYPES:
            raise ValueError(f"type must be one of {RESIDUAL_TYPES}, got {type!r}")
        stt = self._state()
        cd = self.model.cox_data
        idx = self.model.data.row_labels
        mart = cd.status - stt.expected
        if type == "martingale":
            return pd.Series(mart, index=idx, name="martingale")
        if type == "deviance":
            with np.errstate(divide="ignore", invalid="ignore"):
                inner = mart + np.where(cd.status > 0, cd.status * np.log(cd.status - mart), 0.0)
            return pd.Series(np.sign(mart) * np.sqrt(-2.0 * inner), index=idx, name="deviance")
        U = stt.score_residuals(np.asarray(self.model.exog, float))
        names = self.model.exog_names
        if type == "score":
            return pd.DataFrame(U / cd.w[:, None], index=idx, columns=names)
        D = U @ self.fit_info.vcov
        if type == "dfbetas":
            D = D / np.sqrt(np.diag(self.fit_info.vcov))
        return pd.DataFrame(D, index=idx, columns=names)

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "lp",  # noqa: A002 - R's name
                reference: str = "strata", offset: npt.ArrayLike | None = None) -> pd.Series:
        """Predictions (R's ``predict.coxph``).

        Parameters
        ----------
        newdata : DataFrame, optional
            Default: the fitted rows.  ``type="expected"``/``"survival"`` read the times from
            the model's ``Surv(...)`` columns in ``newdata``.
        type : {"lp", "risk", "expected", "survival"}
            Linear predictor, exp of it, expected number of events over the row's follow-up
            (its cumulative hazard), or exp(−expected).
        reference : {"strata", "sample", "zero"}
            Centring of ``lp``/``risk``: the weighted covariate means of the row's stratum
            (R's default), survival's overall ``means``, or none.
        offset : array-like, optional
            Offset of the new rows.
        """
        self._check_type(type)
        if reference not in ("strata", "sample", "zero"):
            raise ValueError(f"reference must be 'strata', 'sample' or 'zero', got {reference!r}")
        mod = self.model
        beta = np.asarray(self.params, float)
        if newdata is None:
            X = np.asarray(mod.exog, float)
            index = mod.data.row_labels
            if type in ("expected", "survival"):
                out = self._state().expected
                return pd.Series(out if type == "expected" else np.exp(-out), index=index, name=type)
            x, strata = X, mod.strata
            off = None if mod.offset is None else mod.offset
        else:
            index = newdata.index
            x, eta_new = self._new_fixed(newdata, offset)
            if type in ("expected", "survival"):
                out = self._expected_new(newdata, eta_new)
                return pd.Series(out if type == "expected" else np.exp(-out), index=index, name=type)
            strata = mod.new_strata(newdata) if reference == "strata" else None
            off = None if mod.offset is None else eta_new - (x @ beta if beta.size else 0.0)
        x_means, stratum_means, offset_mean = self._centres
        if reference == "zero":
            xc = x
        elif reference == "strata" and stratum_means is not None:
            xc = x - stratum_means[strata]
        else:
            xc = x - x_means
        eta = xc @ beta if beta.size else np.zeros(x.shape[0])
        if off is not None:
            eta = eta + off - (offset_mean if reference != "zero" else 0.0)
        return pd.Series(eta if type == "lp" else np.exp(eta), index=index, name=type)

    @property
    def linear_predictor(self) -> pd.Series:
        """Xβ̂ centred at survival's means, plus the offset (coxph's ``linear.predictors``)."""
        return self.predict(reference="sample")

    @property
    def fittedvalues(self) -> pd.Series:
        return self.linear_predictor

    # ------------------------------------------------------------------ display
    def hazard_ratios(self, alpha: float = 0.05) -> pd.DataFrame:
        """exp(coef), exp(−coef) and the Wald interval of exp(coef) (summary.coxph's second table)."""
        b = self.params
        ci = self.conf_int(alpha)
        lo, hi = (ci.iloc[:, 0], ci.iloc[:, 1]) if isinstance(ci, pd.DataFrame) else (ci[:, 0], ci[:, 1])
        pct = f"{1 - alpha:.2f}".lstrip("0")
        return pd.DataFrame({"exp(coef)": np.exp(b), "exp(-coef)": np.exp(-np.asarray(b)),
                             f"lower {pct}": np.exp(lo), f"upper {pct}": np.exp(hi)}, index=self.model.exog_names)

    @property
    def coef_table(self) -> pd.DataFrame:
        """summary.coxph's coefficient table: coef, exp(coef), se(coef)[, robust se], z, Pr(>|z|)."""
        b = np.asarray(self.params, float)
        se = np.sqrt(np.diag(self._beta_vcov()))
        tab = {"coef": b, "exp(coef)": np.exp(b), "se(coef)": np.sqrt(np.diag(self.fit_info.vcov))}
        if self.robust:
            tab["robust se"] = se
        tab["z"] = b / se
        tab["Pr(>|z|)"] = 2 * st.norm.sf(np.abs(b / se))
        return pd.DataFrame(tab, index=self.model.exog_names)

    def compare_lr_test(self, restricted: Any) -> LRTest:
        """Likelihood-ratio test against a nested coxph fit to the same data."""
        from ..inference.lrt import lr_test

        other = getattr(restricted, "_results", restricted)
        if not isinstance(other, CoxPHResults):
            raise InterlaceError("compare_lr_test needs another coxph fit")
        if not (np.array_equal(self.model.cox_data.status, other.model.cox_data.status)
                and np.array_equal(self.model.cox_data.time, other.model.cox_data.time)):
            raise InterlaceError("models were not fitted to the same data (different rows, times or statuses)")
        return lr_test(self, other, refit=False)

    def summary(self, alpha: float = 0.05) -> Summary:
        """statsmodels summary with summary.coxph's information."""
        s = Summary()
        s.add_title("Cox proportional-hazards model (interlace coxph)")
        mod = self.model
        info = {"Formula:": str(mod.formula), "Ties:": self.ties, "n, events:": f"{self.nobs}, {self.n_events}",
                "Log-lik:": f"{self.llf:.4f}", "Log-lik (null):": f"{self.llnull:.4f}",
                "Iterations:": str(self.iterations)}
        if mod.strata is not None:
            info["Strata:"] = f"{mod.n_strata} ({', '.join(getattr(mod, 'strata_vars', []) or ['given'])})"
        if self.robust:
            cl = getattr(mod, "cluster_var", None)
            info["Robust SE:"] = f"cluster({cl})" if mod.cluster is not None and cl else "by row"
        s.add_dict(info, ncols=2)
        if len(self.params):
            s.add_df(self.coef_table, float_format="%.4g")
            s.add_df(self.hazard_ratios(alpha), float_format="%.4g")
        c = self.concordance
        lines = [f"Concordance = {c.concordance:.3f} (se = {c.std:.3f})"]
        for name, t in (("Likelihood ratio test", self.logtest), ("Wald test", self.waldtest),
                        ("Score (logrank) test", self.sctest)):
            lines.append(f"{name} = {t['statistic']:.2f} on {int(t['df'])} df, p = {t['pvalue']:.3g}")
        if self.robscore is not None:
            r = self.robscore
            lines.append(f"Robust score test = {r['statistic']:.2f} on {int(r['df'])} df, p = {r['pvalue']:.3g}")
            lines.append("(The likelihood-ratio and score tests assume independent rows within a cluster; "
                         "the Wald and robust score tests do not.)")
        if not self.converged:
            lines.append(f"Newton-Raphson did not converge in {self.iterations} iterations.")
        for line in lines:
            s.add_text(line)
        return s

    def __str__(self) -> str:
        return str(self.summary())


class CoxPHResultsWrapper(LikelihoodResultsWrapper):
    """Labels statsmodels' outputs with the coefficient names."""

    def __repr__(self) -> str:
        r = self._results
        return (f"<CoxPHResults: {r.model.formula!r}, ties={r.ties}, events={r.n_events}, n={r.nobs}, "
                f"llf={r.llf:.4f}>")

    def __str__(self) -> str:
        return str(self._results.summary())


wrap.populate_wrapper(CoxPHResultsWrapper, CoxPHResults)
