"""Results of a linear mixed model fit: :class:`CrossedLMEResult` and its statsmodels wrapper."""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats as st
from statsmodels.base import wrapper as wrap
from statsmodels.base.model import LikelihoodModelResults, LikelihoodResultsWrapper

from ..design.fixed import new_matrix
from ..errors import DataError
from ..objective.lmm import LMMSolution
from ..optimize import OptSummary, is_singular
from .varcorr import GroupBlock, group_blocks, varcorr_frame

__all__ = ["CrossedLMEResult", "CrossedLMEResultWrapper"]


class CrossedLMEResult(LikelihoodModelResults):
    """A fitted linear mixed model, with lme4's quantities under statsmodels' names.

    ``params``, ``bse``, ``tvalues``, ``pvalues``, ``conf_int()`` and ``cov_params()``
    refer to the fixed effects, as in statsmodels; the ``fe_*`` names are the same
    values as labelled pandas objects.  p-values use the normal approximation
    (Wald z).

    Attributes
    ----------
    theta : ndarray
        Relative covariance parameters at the optimum (in fitting order, terms with
        most levels first, as lme4's ``getME(m, "theta")``).
    opt_summary : OptSummary
        Optimizer, evaluations, messages.
    """

    def __init__(self, model, sol: LMMSolution, opt: OptSummary) -> None:
        p = sol.beta.size
        if p:
            RXinv = np.linalg.inv(sol.RX)
            ncov = RXinv.T @ RXinv
        else:
            ncov = np.zeros((0, 0))
        super().__init__(model, sol.beta, normalized_cov_params=ncov, scale=sol.sigma2)
        self.use_t = False
        self.sol = sol
        self.opt_summary = opt
        self.theta = sol.theta
        self.reml = model.reml
        #: the PLS engine that computed the fit ("blocked" or "cholmod")
        self.engine = model.deviance_function().pls.engine
        self._names = list(model.exog_names)
        self._blocks: list[GroupBlock] = group_blocks(model.random_effects_structure)

    # ------------------------------------------------------------ fixed effects
    def _series(self, values, name=None) -> pd.Series:
        return pd.Series(np.asarray(values, float), index=self._names, name=name)

    @property
    def fe_params(self) -> pd.Series:
        """Fixed-effect estimates β̂."""
        return self._series(self.params, "fe_params")

    @property
    def fe_bse(self) -> pd.Series:
        """Standard errors of β̂ (from σ² (RX RXᵀ)⁻¹, lme4's ``vcov``)."""
        return self._series(self.bse, "fe_bse")

    @property
    def fe_tvalues(self) -> pd.Series:
        """Wald statistics β̂ / SE."""
        return self._series(self.tvalues, "fe_tvalues")

    @property
    def fe_pvalues(self) -> pd.Series:
        """Two-sided p-values from the normal approximation."""
        return self._series(2 * st.norm.sf(np.abs(self.tvalues)), "fe_pvalues")

    def fe_conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald confidence intervals for β (normal quantiles)."""
        z = st.norm.isf(alpha / 2)
        b, se = np.asarray(self.params), np.asarray(self.bse)
        return pd.DataFrame({"lower": b - z * se, "upper": b + z * se}, index=self._names)

    @property
    def cov_fe(self) -> pd.DataFrame:
        """Covariance matrix of β̂."""
        return pd.DataFrame(self.cov_params(), index=self._names, columns=self._names)

    # ------------------------------------------------------------ variance parameters
    @property
    def sigma(self) -> float:
        """Residual standard deviation σ̂."""
        return float(np.sqrt(self.scale))

    def _cov_of(self, blk: GroupBlock) -> pd.DataFrame:
        re = self.model.random_effects_structure
        k = sum(len(re.terms[i].coef_names) for i in blk.term_index)
        C = np.zeros((k, k))
        pos = 0
        for i in blk.term_index:
            t = re.terms[i]
            C[pos:pos + t.p, pos:pos + t.p] = t.cov.covariance(self.theta[re.theta_slice(i)], self.scale)
            pos += t.p
        return pd.DataFrame(C, index=blk.coef_names, columns=blk.coef_names)

    @property
    def random_effects_cov(self) -> dict[str, pd.DataFrame]:
        """Covariance matrix of the random effects per grouping factor (lme4's ``VarCorr``)."""
        return {b.name: self._cov_of(b) for b in self._blocks}

    @property
    def variance_components(self) -> dict:
        """Variance per grouping factor: a float for a random intercept, else the covariance matrix."""
        out = {}
        for b in self._blocks:
            C = self._cov_of(b)
            out[b.name] = float(C.iloc[0, 0]) if C.shape == (1, 1) else C
        return out

    @property
    def random_effects_sd(self) -> dict[str, pd.Series]:
        """Standard deviations of the random effects per grouping factor."""
        return {k: pd.Series(np.sqrt(np.diag(C)), index=C.index) for k, C in self.random_effects_cov.items()}

    @property
    def random_effects_corr(self) -> dict[str, pd.DataFrame]:
        """Correlation matrices of the random effects per grouping factor."""
        out = {}
        for k, C in self.random_effects_cov.items():
            sd = np.sqrt(np.diag(C.values))
            with np.errstate(invalid="ignore", divide="ignore"):
                R = C.values / np.outer(sd, sd)
            np.fill_diagonal(R, 1.0)
            out[k] = pd.DataFrame(R, index=C.index, columns=C.columns)
        return out

    @property
    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(m))``: grp, var1, var2, vcov, sdcor (residual last)."""
        return varcorr_frame(self.random_effects_cov, self.scale, self._blocks)

    # ------------------------------------------------------------ likelihood
    @property
    def objective(self) -> float:
        """Minimized criterion: REML criterion (REML fits) or deviance (ML fits)."""
        return self.sol.objective

    @property
    def reml_criterion(self) -> float | None:
        """REML criterion at convergence (None for an ML fit)."""
        return self.sol.objective if self.reml else None

    @property
    def llf(self) -> float:
        """Log-likelihood (the REML log-likelihood for REML fits, as lme4's ``logLik``)."""
        return -0.5 * self.sol.objective

    @property
    def deviance(self) -> float:
        """``-2 * llf``."""
        return self.sol.objective

    @property
    def df_modelwc(self) -> int:
        """Number of estimated parameters: β, θ and σ."""
        return len(self._names) + self.theta.size + 1

    @property
    def aic(self) -> float:
        """Akaike criterion ``-2 llf + 2 k`` (from the REML criterion for REML fits, as lme4)."""
        return -2 * self.llf + 2 * self.df_modelwc

    @property
    def bic(self) -> float:
        """Bayesian criterion ``-2 llf + log(n) k``."""
        return -2 * self.llf + np.log(self.nobs) * self.df_modelwc

    @property
    def nobs(self) -> int:
        return int(self.model.nobs)

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels per grouping factor."""
        return {b.name: len(b.levels) for b in self._blocks}

    @property
    def n_dropped(self) -> int:
        """Rows dropped for missing values before fitting."""
        fr = self.model._frame
        return fr.n_dropped if fr is not None else 0

    @property
    def converged(self) -> bool:
        """True when the optimizer succeeded and no convergence warning was raised."""
        return self.opt_summary.converged and not any(
            m.startswith("Model failed") or m.startswith("optimizer") for m in self.opt_summary.messages)

    @property
    def is_singular(self) -> bool:
        """A variance or correlation on the boundary (any bounded θ < 1e-4, lme4's ``isSingular``)."""
        return is_singular(self.theta, self.model.random_effects_structure.lower)

    # ------------------------------------------------------------ random effects
    @property
    def random_effects(self) -> dict:
        """BLUPs per grouping factor: a Series for a random intercept, else a DataFrame by coefficient."""
        re = self.model.random_effects_structure
        parts = re.split_b(self.sol.b)
        out = {}
        for blk in self._blocks:
            cols = np.column_stack([parts[i] for i in blk.term_index])
            df = pd.DataFrame(cols, index=blk.levels, columns=blk.coef_names)
            out[blk.name] = df.iloc[:, 0].rename(blk.name) if df.shape[1] == 1 and blk.coef_names == ["Intercept"] else df
        return out

    # ------------------------------------------------------------ fitted values
    def _linear_predictor(self, X: np.ndarray, term_designs, offset) -> np.ndarray:
        eta = X @ np.asarray(self.params) if X.shape[1] else np.zeros(X.shape[0])
        if offset is not None:
            eta = eta + offset
        re = self.model.random_effects_structure
        if term_designs is not None:
            parts = re.split_b(self.sol.b)
            for k, (Xk, codes) in enumerate(term_designs):
                seen = codes >= 0
                B = parts[k][np.where(seen, codes, 0)]
                eta = eta + np.where(seen, np.sum(Xk * B, axis=1), 0.0)
        return eta

    @property
    def fittedvalues(self) -> pd.Series:
        """Conditional fitted values Xβ̂ + Zb̂ (+ offset)."""
        re = self.model.random_effects_structure
        eta = self._linear_predictor(np.asarray(self.model.exog, float), [(t.X, t.codes) for t in re.terms],
                                     self.model.offset)
        return pd.Series(eta, index=self.model.data.row_labels, name="fitted")

    @property
    def resid(self) -> pd.Series:
        """Response residuals y − fitted."""
        return pd.Series(np.asarray(self.model.endog, float) - self.fittedvalues.to_numpy(),
                         index=self.model.data.row_labels, name="resid")

    @property
    def resid_pearson(self) -> pd.Series:
        """Scaled (Pearson) residuals √w (y − fitted) / σ̂, as in lme4's summary."""
        w = self.model.weights if self.model.weights is not None else 1.0
        return self.resid * np.sqrt(w) / self.sigma

    def predict(self, newdata: pd.DataFrame | None = None, include_re: bool = True,
                offset=None) -> pd.Series:
        """Predictions on new data; unseen group levels contribute 0 (the population mean).

        Parameters
        ----------
        newdata : DataFrame, optional
            Must hold the fixed-effects covariates and, with ``include_re``, the
            grouping columns. Default: the fitted values.
        include_re : bool
            Add the BLUPs of seen levels (lme4's default); False gives Xβ̂ only.
        offset : array-like, optional
            Offset for new data; by default the offset column used in fitting,
            if the offset was given by name.
        """
        if newdata is None:
            if include_re:
                return self.fittedvalues
            eta = self._linear_predictor(np.asarray(self.model.exog, float), None, self.model.offset)
            return pd.Series(eta, index=self.model.data.row_labels, name="predicted")
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
        fx = self.model._fixed
        X = new_matrix(fx.design_info, newdata, "the fixed effects")[:, fx.keep]
        off = None
        off_arg = getattr(self.model, "offset_arg", None)
        if offset is not None:
            off = np.asarray(offset, float)
        elif self.model.offset is not None:
            if isinstance(off_arg, str) and off_arg in newdata.columns:
                off = newdata[off_arg].to_numpy(float)
            else:
                raise DataError("the model has an offset: pass offset= for newdata "
                                "(or give the offset as a column name when fitting)")
        designs = None
        if include_re:
            designs = [t.new_design(newdata) for t in self.model.random_effects_structure.terms]
        eta = self._linear_predictor(X, designs, off)
        return pd.Series(eta, index=newdata.index, name="predicted")

    # ------------------------------------------------------------ comparison
    def compare_lr_test(self, restricted, refit: bool = True):
        """Likelihood-ratio test against a nested model, as statsmodels' ``compare_lr_test``.

        REML fits are refitted by ML first (as lme4's ``anova``), with a warning.

        Returns
        -------
        LRTest
            Unpacks as ``(lr_stat, p_value, df_diff)``.
        """
        from ..inference.lrt import lr_test

        return lr_test(self, restricted, refit=refit)

    # ------------------------------------------------------------ reporting
    def summary(self, alpha: float = 0.05):
        """statsmodels ``Summary`` with lme4's information (random effects, groups, scaled residuals)."""
        from .summary import lmm_summary

        return lmm_summary(self, alpha)

    def __str__(self) -> str:
        return str(self.summary())

    def bootstrap_se(self, statistic="median", n_bootstrap: int = 1000, seed: int | None = None,
                     column: str | None = None, progress: bool = False) -> float:
        """Cluster-bootstrap standard error of a statistic of the response.

        Whole levels of the primary grouping factor (the first entry of ``groups``,
        else the first random-effects term) are resampled with replacement, as many
        as there are levels; every row of a drawn level enters the resample (a level
        drawn twice enters twice). The statistic is computed on each resample and
        the SE is the standard deviation (ddof=1) of the ``n_bootstrap`` replicates.

        Parameters
        ----------
        statistic : {"median", "mean"} or callable
            A callable receives the resampled model frame (DataFrame) and returns a float.
        n_bootstrap : int
        seed : int, optional
        column : str, optional
            Column summarised by "median"/"mean" (default: the response).
        progress : bool
            Show a tqdm progress bar.
        """
        from ..inference.bootstrap import cluster_bootstrap_se

        spec = self.model.specs[0]
        frame = self.model._frame.data
        return cluster_bootstrap_se(frame, spec.group, column or self.model.endog_names, statistic,
                                    n_bootstrap, seed, progress)


class CrossedLMEResultWrapper(LikelihoodResultsWrapper):
    """Labels statsmodels' outputs (params, bse, …) with the fixed-effect names."""

    _attrs = {"params": "columns", "bse": "columns", "pvalues": "columns", "tvalues": "columns",
              "normalized_cov_params": "cov"}
    _wrap_attrs = wrap.union_dicts(_attrs)

    def __str__(self) -> str:
        return str(self._results)

    def __repr__(self) -> str:
        r = self._results
        return (f"<CrossedLMEResult: {r.model.formula!r}, {'REML' if r.reml else 'ML'}, "
                f"n={r.nobs}, llf={r.llf:.4f}>")


wrap.populate_wrapper(CrossedLMEResultWrapper, CrossedLMEResult)
