"""Results of a linear mixed model fit: :class:`CrossedLMEResult` and its statsmodels wrapper."""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.stats as st
from statsmodels.base import wrapper as wrap

from ..design.fixed import new_matrix
from ..errors import InterlaceError, UnseenLevelWarning
from ..inference.ddf import FixedEffectsTests
from ..objective.lmm import LMMDeviance, LMMSolution
from ..optimize import OptSummary
from .base import MixedResultsBase, MixedResultsWrapper
from .summary import residual_quartiles

if TYPE_CHECKING:
    from statsmodels.iolib.summary2 import Summary
    from statsmodels.regression._prediction import PredictionResults

    from ..inference.lrt import LRTest
    from ..inference.parametric_bootstrap import BootstrapResult
    from ..linalg.pls import PLSSystem

__all__ = ["CrossedLMEResult", "CrossedLMEResultWrapper", "LMMFit"]


class LMMFit:
    """The LMM quantities that need no rows (σ̂, the criterion, prediction of new data), shared by
    :class:`CrossedLMEResult` and the chunked :class:`~interlace.scale.results.ChunkedLMEResult`.

    Subclasses set ``self._objective`` (the fit's :class:`~interlace.objective.lmm.LMMDeviance`)
    and say how to rebuild it (:meth:`_rebuild_objective`) when the result was unpickled.
    """

    _rebuilt_on_demand = ("_objective",)

    @property
    def _re_scale(self) -> float:
        return self.scale

    def _rebuild_objective(self) -> LMMDeviance:
        raise NotImplementedError

    def fit_objective(self) -> LMMDeviance:
        """The fit's own criterion and engine (rebuilt from the model after unpickling)."""
        dev = self.__dict__.get("_objective")
        if dev is None:
            dev = self._objective = self._rebuild_objective()
        return dev

    def factored_engine(self) -> PLSSystem:
        """The fit's own PLS engine factored at θ̂ (conditional variances, hat values, derivatives)."""
        return self.fit_objective().factored(self.sol)

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
    def deviance(self) -> float:
        """``-2 * llf``."""
        return self.sol.objective

    @property
    def df_modelwc(self) -> int:
        """Number of estimated parameters: β, θ, the residual-structure parameters and σ."""
        n_psi = 0 if self.sol.psi is None else self.sol.psi.size
        return len(self._names) + self.theta.size + n_psi + 1

    def predict(self, newdata: pd.DataFrame | None = None, include_re: bool = True,
                offset: npt.ArrayLike | None = None, interval: str | None = None, level: float = 0.95,
                exog: Any = None, transform: bool = True) -> pd.Series | pd.DataFrame:
        """Predictions on new data; unseen group levels contribute 0 (the population mean), with an
        :class:`~interlace.errors.UnseenLevelWarning`.

        Parameters
        ----------
        newdata : DataFrame, optional
            Must hold the fixed-effects covariates and, with ``include_re``, the
            grouping columns. Default: the fitted rows.
        include_re : bool
            Add the BLUPs of seen levels (lme4's default); False gives Xβ̂ only.
        offset : array-like, optional
            Offset for new data; by default the offset column used in fitting,
            if the offset was given by name.
        interval : {None, "confidence", "prediction"}
            None returns a Series of predictions. Otherwise a DataFrame with
            ``predicted``, ``se``, ``lower``, ``upper`` (normal quantiles) where the
            variance is, given the estimated variance parameters:

            * ``"confidence"`` (of the conditional mean): xᵀ Var(β̂) x, plus, with
              ``include_re``, zᵀ Var(b | y) z for seen levels (lme4's conditional
              variances); an unseen level adds nothing (its prediction is the
              population mean);
            * ``"prediction"`` (of a new observation): the above plus σ², plus zᵀΣz for
              each term whose level is unseen (or for every term when ``include_re`` is
              False) — the new observation's own random effects.

            The covariance between β̂ and the BLUPs is not included (as merTools'
            ``predictInterval`` with fixed-effect and random-effect parts).
        level : float
        exog, transform
            statsmodels' names: ``exog`` is new data as ``newdata`` (``transform=True``), or
            with ``transform=False`` the fixed-effects model matrix, predicted as Xβ̂
            (+ ``offset``) without random effects or intervals.
        """
        newdata, Xnew, xindex = self._new_rows(newdata, exog, transform)
        if Xnew is not None:
            if interval is not None:
                raise InterlaceError("intervals need the data (exog with transform=True, or newdata)")
            eta = self._linear_predictor(Xnew, None, None if offset is None else np.asarray(offset, float))
            return pd.Series(eta, index=xindex, name="predicted")
        if newdata is None:
            eta = self._eta_fit(include_re)
            index = self.model.data.row_labels
            X = np.asarray(self.model.exog, float)
            designs = [(t.X, t.codes) for t in self.model.random_effects_structure.terms]
        else:
            eta = self._eta_new(newdata, include_re, offset)
            index = newdata.index
            if interval is not None:
                fx = self.model.fixed_design
                X = new_matrix(fx.design_info, newdata, "the fixed effects")[:, fx.keep]
                designs = [t.new_design(newdata) for t in self.model.random_effects_structure.terms]
        if interval is None:
            return pd.Series(eta, index=index, name="predicted" if newdata is not None or not include_re
                             else "fitted")
        if interval not in ("confidence", "prediction"):
            raise ValueError(f"interval must be None, 'confidence' or 'prediction', got {interval!r}")
        var = np.einsum("ij,jk,ik->i", X, np.asarray(self.cov_params()), X)
        re = self.model.random_effects_structure
        condvar = self._condvar_terms() if include_re else None
        for k, (Zk, codes) in enumerate(designs):
            seen = (codes >= 0) & include_re
            if include_re:
                Vk = condvar[k][np.where(seen, codes, 0)]
                var += np.where(seen, np.einsum("ij,ijk,ik->i", Zk, Vk, Zk), 0.0)
            if interval == "prediction":
                t = re.terms[k]
                Sigma = t.cov.covariance(self.theta[re.theta_slice(k)], self.scale)
                var += np.where(~seen, np.einsum("ij,jk,ik->i", Zk, Sigma, Zk), 0.0)
        if interval == "prediction":
            var = var + self.scale
        se = np.sqrt(var)
        z = st.norm.isf((1 - level) / 2)
        out = pd.DataFrame({"predicted": eta, "se": se, "lower": eta - z * se, "upper": eta + z * se}, index=index)
        out.attrs["variance_includes"] = (
            "Var(fixed effects)" + (" + conditional Var(BLUPs) of seen levels" if include_re else "")
            + (" + residual variance + Var(random effects) of unseen levels" if interval == "prediction" else ""))
        return out

    def get_prediction(self, exog: Any = None, transform: bool = True, include_re: bool = True,
                       offset: npt.ArrayLike | None = None, row_labels: Sequence[Any] | None = None
                       ) -> PredictionResults:
        """Predictions with standard errors and intervals, as statsmodels' ``get_prediction``.

        The mean is :meth:`predict`'s (with the BLUPs of seen levels when ``include_re``);
        its variance is that of ``predict(interval="confidence")``, and an observation's adds
        the residual variance and the random effects of unseen levels (``interval="prediction"``).

        Parameters
        ----------
        exog : DataFrame, optional
            New data (default: the fitted rows); ``transform=False`` is not available (the
            random-effects design needs the grouping columns).
        include_re : bool
        offset : array-like, optional
        row_labels : sequence, optional
            Row labels of the frames (default: the data's index).

        Returns
        -------
        statsmodels.regression._prediction.PredictionResults
            ``predicted_mean``, ``se_mean``, ``se_obs``, ``conf_int(obs=False, alpha=0.05)``,
            ``summary_frame(alpha=0.05)`` (mean, mean_se, mean_ci_*, obs_ci_*; normal quantiles,
            as :meth:`predict`'s intervals).
        """
        from statsmodels.regression._prediction import PredictionResults

        if not transform:
            raise InterlaceError("get_prediction needs the data (transform=True): the random-effects design "
                                 "is built from the grouping columns")
        conf = self.predict(exog, include_re=include_re, offset=offset, interval="confidence")
        with warnings.catch_warnings():  # the first call gave any notice about unseen levels
            warnings.simplefilter("ignore", UnseenLevelWarning)
            obs = self.predict(exog, include_re=include_re, offset=offset, interval="prediction")
        var_mean = conf["se"].to_numpy() ** 2
        labels = list(conf.index) if row_labels is None else list(row_labels)
        return PredictionResults(conf["predicted"].to_numpy(), var_mean, obs["se"].to_numpy() ** 2 - var_mean,
                                 dist="norm", row_labels=labels)


class CrossedLMEResult(FixedEffectsTests, LMMFit, MixedResultsBase):
    """A fitted linear mixed model, with lme4's quantities under statsmodels' names.

    ``params``, ``bse``, ``tvalues``, ``pvalues``, ``conf_int()`` and ``cov_params()``
    refer to the fixed effects, as in statsmodels (``pvalues`` and ``conf_int()`` use
    the normal approximation, Wald z).  ``fe_params``, ``fe_bse``, ``fe_tvalues`` are
    the same values as labelled pandas objects; ``fe_df``, ``fe_pvalues`` and
    ``fe_conf_int()`` are t tests with the denominator degrees of freedom of
    ``df_method`` (Satterthwaite by default, as lmerTest), see
    :class:`~interlace.inference.ddf.FixedEffectsTests` (also ``anova``, ``contest``).

    Attributes
    ----------
    theta : ndarray
        Relative covariance parameters at the optimum (in fitting order, terms with
        most levels first, as lme4's ``getME(m, "theta")``).
    opt_summary : OptSummary
        Optimizer, evaluations, messages.
    """

    def __init__(self, model: Any, sol: LMMSolution, opt: OptSummary, objective: LMMDeviance) -> None:
        p = sol.beta.size
        if p:
            RXinv = np.linalg.inv(sol.RX)
            ncov = RXinv.T @ RXinv
        else:
            ncov = np.zeros((0, 0))
        super().__init__(model, sol.beta, normalized_cov_params=ncov, scale=sol.sigma2)
        self.sol = sol
        self.opt_summary = opt
        self.reml = model.reml
        self.df_method = getattr(model, "df_method", "satterthwaite")
        self._objective = objective  # the fit's own criterion and engine
        #: the PLS engine that computed the fit ("blocked" or "cholmod")
        self.engine = objective.pls.engine
        self._init_shared(model)

    def _rebuild_objective(self) -> LMMDeviance:
        self._need_rows("the fit's PLS engine")
        return self.model.objective()

    # ------------------------------------------------------------ statsmodels' tests follow df_method
    @property
    def use_t(self) -> bool:
        """t tests (True) or Wald z (False) in statsmodels' machinery: False exactly when
        ``df_method="normal"`` (setting False selects it; True selects Satterthwaite if it was "normal")."""
        return self.df_method != "normal"

    @use_t.setter
    def use_t(self, value: bool) -> None:
        if not value:
            self.df_method = "normal"
        elif self.df_method == "normal":
            self.df_method = "satterthwaite"

    @property
    def pvalues(self) -> np.ndarray:
        """p-values of the fixed effects' tests with ``df_method``'s df: :attr:`fe_pvalues` (Wald z for "normal")."""
        return self.fe_pvalues.to_numpy()

    def conf_int(self, alpha: float = 0.05, cols: Sequence[int] | None = None) -> np.ndarray:
        """Intervals of the fixed effects with ``df_method``'s t quantiles: :meth:`fe_conf_int` as an array
        (normal quantiles for "normal"); the wrapper labels it and also gives lme4's ``confint`` (``method=``)."""
        ci = self.fe_conf_int(alpha).to_numpy()
        return ci if cols is None else ci[np.asarray(cols)]

    def _keep_before_removal(self) -> None:
        super()._keep_before_removal()
        self._fe_tests()  # the summary's t tests and the df engine of this fit's df_method (contrasts)
        self._kept("scaled_residual_quantiles", lambda: residual_quartiles(self.resid_pearson))
        self.residual_conf_int()  # the summary's table of a residual structure

    def _draw_response(self, mu, rng):
        w = self.model.weights if self.model.weights is not None else 1.0
        z = rng.standard_normal(mu.size)
        if self.model.residual is not None:
            z = self.model.residual.color(z, self.sol.psi)
        return mu + self.sigma * z / np.sqrt(w)

    # ------------------------------------------------------------ residual structure
    def _no_residual_structure(self, what: str) -> None:
        if self.model.residual is not None:
            raise InterlaceError(f"{what} is not available for models with a residual correlation or variance "
                                 "structure; see residual_conf_int() and fe_conf_int()")

    @property
    def residual_params(self) -> pd.Series:
        """Residual-structure parameters on their natural scale (nlme's ``coef(corStruct/varStruct)``).

        AR(1)/CAR(1): ``Phi``; compound symmetry: ``Rho``; VarIdent: the SD ratio of
        each non-reference stratum.  Empty without a structure.
        """
        res = self.model.residual
        if res is None:
            return pd.Series([], dtype=float, name="residual_params")
        return pd.Series(np.concatenate(res.natural(self.sol.psi)), index=res.names(), name="residual_params")

    def residual_conf_int(self, level: float = 0.95) -> pd.DataFrame:
        """Wald intervals for the residual-structure parameters, as nlme's ``intervals``.

        Normal intervals on nlme's unconstrained scale (AR(1): log((1+φ)/(1−φ)); CAR(1):
        log(φ/(1−φ)); compound symmetry: log((ρ + 1/(m−1))/(1−ρ)); VarIdent: log ratio),
        mapped back; the variance is the ψ block of the inverse Hessian of the
        (RE)ML criterion in all parameters (σ profiled out, which leaves that block unchanged).

        Returns
        -------
        DataFrame
            ``lower``, ``est.``, ``upper`` per parameter.
        """
        res = self.model.residual
        if res is None:
            return pd.DataFrame(columns=["lower", "est.", "upper"], dtype=float)
        from ..inference.residual_structure import residual_wald_intervals

        return self._kept(f"residual_conf_int_{level}", lambda: residual_wald_intervals(self, level)).copy()

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

    # ------------------------------------------------------------ comparison
    def compare_lr_test(self, restricted: Any, refit: bool = True) -> LRTest:
        """Likelihood-ratio test against a nested model, as statsmodels' ``compare_lr_test``.

        REML fits are refitted by ML first (as lme4's ``anova``), with a warning.

        Returns
        -------
        LRTest
            Unpacks as ``(lr_stat, p_value, df_diff)``.
        """
        return super().compare_lr_test(restricted, refit=refit)

    # ------------------------------------------------------------ reporting
    def summary(self, alpha: float = 0.05) -> Summary:
        """statsmodels ``Summary`` with lme4's information (random effects, groups, scaled residuals)."""
        from .summary import lmm_summary

        return lmm_summary(self, alpha)

    def bootstrap_se(self, statistic: str | Callable[[pd.DataFrame], float] = "median", n_bootstrap: int = 1000,
                     seed: int | None = None, column: str | None = None, progress: bool = False) -> float:
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

        self._need_rows("bootstrap_se()")
        if self.model.specs:
            group = self.model.specs[0].group
        elif self.model.residual is not None and self.model.residual.correlation is not None \
                and self.model.residual.correlation.spec.group is not None:
            group = (self.model.residual.correlation.spec.group,)
        else:
            raise InterlaceError("bootstrap_se resamples whole groups: this model has no grouping column")
        frame = self.model.model_frame.data
        return cluster_bootstrap_se(frame, group, column or self.model.endog_names, statistic,
                                    n_bootstrap, seed, progress)

    # ------------------------------------------------------------ intervals for every parameter
    def profile(self, parm: str | int | Sequence[str | int] | None = None, alphamax: float = 0.01,
                maxpts: int = 100, delta_cutoff: float = 0.125, old_names: bool = True,
                progress: bool = False) -> pd.DataFrame:
        """Likelihood profile of every parameter (lme4's ``profile(m)``).

        Each parameter (random-effect SDs and correlations, σ, fixed effects) is fixed on
        a grid and the ML deviance minimized over the others; ``zeta`` is the signed
        square root of the deviance increase.  REML fits are profiled on their ML refit,
        as lme4 does.  See :mod:`interlace.inference.profile`.

        Parameters
        ----------
        parm : str, int or list, optional
            Parameters to profile: names (``".sig01"``, ``".sigma"``, ``"Days"``), 0-based
            positions, ``"theta_"`` (all variance parameters and σ) or ``"beta_"``.
        alphamax, maxpts, delta_cutoff
            lme4's grid controls: the profile extends to ``|ζ| = √χ²_k(1 − alphamax)``
            in steps of about ``delta_cutoff`` times that, at most ``maxpts`` points per side.
        old_names : bool
            ``.sig01 … .sigma`` (True) or ``sd_Intercept|Subject``-style names (False).
        progress : bool
            tqdm bar over the parameters.

        Returns
        -------
        DataFrame
            Columns ``parameter``, ``value``, ``zeta``, then every parameter's value at
            the point; ``attrs`` holds the bounds and the ML estimates.
        """
        from ..inference.profile import profile_lmm

        self._no_residual_structure("profile()")
        self._need_rows("profile()")
        return profile_lmm(self, parm=parm, alphamax=alphamax, maxpts=maxpts, delta_cutoff=delta_cutoff,
                           old_names=old_names, progress=progress)

    def conf_int_all(self, method: str = "profile", level: float = 0.95,
                     parm: str | int | Sequence[str | int] | None = None, n_boot: int = 500,
                     seed: int | None = 42, old_names: bool = True, boot_method: str = "percentile",
                     n_jobs: int = 1, progress: bool = False) -> pd.DataFrame:
        """Confidence intervals for every parameter (lme4's ``confint(m)``).

        ``conf_int()`` keeps statsmodels' meaning (Wald intervals of the fixed effects).

        Parameters
        ----------
        method : {"profile", "wald", "boot"}
            ``"profile"`` (lme4's default): where the signed root deviance profile crosses
            ``±Φ⁻¹(1 − α/2)`` (spline interpolation; a standard deviation whose profile
            reaches 0 first gets lower limit 0).  ``"wald"``: β̂ ± z·SE for the fixed
            effects, NaN for the variance parameters (as lme4).  ``"boot"``: percentile
            intervals of a parametric bootstrap (:meth:`bootstrap`) with ``n_boot`` replicates.
        level : float
        parm : str, int or list, optional
            Rows to compute (as in :meth:`profile`).
        n_boot, seed, n_jobs, boot_method
            Bootstrap settings (``boot_method``: "percentile", "basic" or "normal").
        old_names : bool
            Row names ``.sig01 … .sigma`` (True, lme4's default) or ``sd_…|group``, ``sigma``.
        progress : bool

        Returns
        -------
        DataFrame
            Rows ``.sig01``, …, ``.sigma``, fixed effects; columns ``"2.5 %"``, ``"97.5 %"``.
        """
        from ..inference.profile import lmm_conf_int

        if str(method).lower() != "wald":
            self._no_residual_structure(f"conf_int_all(method={method!r})")
            self._need_rows(f"conf_int_all(method={method!r})")
        return lmm_conf_int(self, method=method, level=level, parm=parm, n_boot=n_boot, seed=seed,
                            old_names=old_names, boot_method=boot_method, n_jobs=n_jobs, progress=progress)

    def bootstrap(self, n: int = 1000, seed: int | None = 42,
                  statistic: Callable[[Any], float | pd.Series | dict | np.ndarray] | None = None,
                  kind: str = "parametric", n_jobs: int = 1, progress: bool = True, use_u: bool = False
                  ) -> BootstrapResult:
        """Parametric bootstrap of the fit (lme4's ``bootMer``).

        Simulates ``n`` responses from the fitted model (new random effects and
        residuals, :meth:`simulate`), refits the model to each (warm start at θ̂, on the
        fitted model's PLS system) and collects ``statistic``.  Unlike
        :meth:`bootstrap_se` (resampling clusters of the data to get the SE of a
        statistic of the response), this re-estimates the model.

        Parameters
        ----------
        n : int
        seed : int, optional
            Replicate i uses the stream ``SeedSequence(seed).spawn(n)[i]``: the same
            replicates whatever ``n_jobs``.
        statistic : callable, optional
            Function of a refitted result returning a float, Series, dict or array;
            default every parameter (SDs, correlations, σ, fixed effects).
        kind : {"parametric"}
        n_jobs : int
            Worker processes (fork).
        progress : bool
            tqdm progress bar.
        use_u : bool
            Keep the fitted random effects (lme4's ``use.u = TRUE``).

        Returns
        -------
        BootstrapResult
            ``.replicates`` (DataFrame), ``.estimate``, ``.se``, ``.conf_int(level, method)``.
        """
        from ..inference.parametric_bootstrap import parametric_bootstrap

        self._no_residual_structure("bootstrap()")
        self._need_rows("bootstrap()")
        return parametric_bootstrap(self, n=n, seed=seed, statistic=statistic, kind=kind, n_jobs=n_jobs,
                                    progress=progress, use_u=use_u)


class CrossedLMEResultWrapper(MixedResultsWrapper):
    """Labels statsmodels' outputs (params, bse, …) with the fixed-effect names."""

    # conf_int is this class's own method below (it may return lme4's intervals of every parameter)
    _wrap_methods = {k: v for k, v in MixedResultsWrapper._wrap_methods.items() if k != "conf_int"}

    def __setattr__(self, name, value) -> None:
        if name in ("df_method", "use_t"):  # settings of the results, not of the wrapper
            setattr(self._results, name, value)
        else:
            super().__setattr__(name, value)

    def conf_int(self, alpha: float = 0.05, method: str | None = None, **kwargs: Any) -> pd.DataFrame | np.ndarray:
        """Wald intervals of the fixed effects (statsmodels' ``conf_int``), or, with ``method``,
        lme4's ``confint(m)`` for every parameter: ``method="profile" | "wald" | "boot"``
        (see :meth:`CrossedLMEResult.conf_int_all`; ``alpha`` sets the level)."""
        res = self._results
        if method is None:
            return res.model.data.wrap_output(res.conf_int(alpha=alpha, **kwargs), "columns")
        return res.conf_int_all(method=method, level=1 - alpha, **kwargs)

    def __repr__(self) -> str:
        r = self._results
        return (f"<CrossedLMEResult: {r.model.formula!r}, {'REML' if r.reml else 'ML'}, "
                f"n={r.nobs}, llf={r.llf:.4f}>")


wrap.populate_wrapper(CrossedLMEResultWrapper, CrossedLMEResult)
