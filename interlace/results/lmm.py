"""Results of a linear mixed model fit: :class:`CrossedLMEResult` and its statsmodels wrapper."""
from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.base import wrapper as wrap
from statsmodels.base.model import LikelihoodResultsWrapper

from ..objective.lmm import LMMSolution
from ..optimize import OptSummary
from .base import MixedResultsBase

__all__ = ["CrossedLMEResult", "CrossedLMEResultWrapper"]


class CrossedLMEResult(MixedResultsBase):
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
        self.reml = model.reml
        #: the PLS engine that computed the fit ("blocked" or "cholmod")
        self.engine = model.deviance_function().pls.engine
        self._init_shared(model)

    @property
    def _re_scale(self) -> float:
        return self.scale

    def _draw_response(self, mu, rng):
        w = self.model.weights if self.model.weights is not None else 1.0
        return mu + self.sigma * rng.standard_normal(mu.size) / np.sqrt(w)

    def _factored_pls(self):
        dev = self.model.deviance_function()
        dev.pls.factor(self.theta)
        return dev.pls

    @property
    def _residual_variance(self) -> float:
        return self.scale

    @property
    def sigma(self) -> float:
        """Residual standard deviation σ̂."""
        return float(np.sqrt(self.scale))

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
    def fittedvalues(self) -> pd.Series:
        """Conditional fitted values Xβ̂ + Zb̂ (+ offset)."""
        return pd.Series(self._eta_fit(), index=self.model.data.row_labels, name="fitted")

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
            return pd.Series(self._eta_fit(False), index=self.model.data.row_labels, name="predicted")
        eta = self._eta_new(newdata, include_re, offset)
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
