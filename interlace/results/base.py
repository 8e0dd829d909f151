"""What every in-memory mixed-model result shares beyond :class:`~interlace.results.components.RandomEffectsFit`:
the rows (fitted values, simulation), diagnostics and plots, and statsmodels' results machinery.

:class:`MixedResultsBase` serves the LMM, GLMM, CLMM and Cox results: they differ only in
the response side (scale, likelihood, fitted values).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from statsmodels.base import wrapper as wrap
from statsmodels.base.model import LikelihoodModelResults, LikelihoodResultsWrapper

from .components import RandomEffectsFit

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from statsmodels.iolib.summary2 import Summary

    from ..diagnostics.checks import CheckReport
    from ..diagnostics.influence import InfluenceResult
    from ..inference.lrt import LRTest

__all__ = ["MixedResultsBase", "MixedResultsWrapper"]


_REMOVED = ("{what} needs the rows, which remove_data() removed from this result; keep a copy of the "
            "result without remove_data() (or refit the model) for it")


class MixedResultsBase(RandomEffectsFit, LikelihoodModelResults):
    """Shared part of the in-memory mixed-model results (see subclasses and :class:`RandomEffectsFit`).

    Results pickle (``pickle``, ``save``/``load``, ``copy.deepcopy``, joblib): the fit's engines
    and objectives are left out and rebuilt from the model when needed, patsy's designs are
    stored as what defines them (:mod:`interlace.design.stored`).  :meth:`remove_data` drops
    the rows first.
    """

    #: True once :meth:`remove_data` has dropped the rows
    _rows_removed = False

    # ------------------------------------------------------------ keeping a fit without its rows
    def _need_rows(self, what: str) -> None:
        """Raise a clear error when ``what`` needs rows that :meth:`remove_data` removed."""
        if self._rows_removed:
            from ..errors import InterlaceError

            raise InterlaceError(_REMOVED.format(what=what))

    def _kept(self, key: str, compute: Any) -> Any:
        """``compute()``, memoized so that it survives :meth:`remove_data` (summary quantities)."""
        kept = self.__dict__.setdefault("_kept_values", {})
        if key not in kept:
            self._need_rows(key.replace("_", " "))
            kept[key] = compute()
        return kept[key]

    def _keep_before_removal(self) -> None:
        """Compute what the summary and predictions on new data need from the rows (subclasses add)."""
        try:
            self._condvar_terms()
        except NotImplementedError:  # pragma: no cover - every family has conditional variances
            pass

    def _drop_rows(self) -> None:
        """Drop the row-level arrays of the result's own state (subclasses add theirs)."""

    def remove_data(self) -> None:
        """Drop the rows from the result and its model (statsmodels' ``remove_data``), for a small pickle.

        What the summary and predictions on new data need is computed first and kept: the
        result still prints its summary, gives every estimate, test and variance component,
        and predicts new data (with intervals).  What needs the rows (fitted values,
        residuals, ``predict()`` without ``newdata``, simulation, refits, profiles,
        bootstraps, influence, a new ``df_method``) then raises an
        :class:`~interlace.errors.InterlaceError`.
        """
        if self._rows_removed:
            return
        self._keep_before_removal()
        super().remove_data()
        model = self.model
        model.drop_rows()
        for key in self._rebuilt_on_demand:
            self.__dict__.pop(key, None)
        self._drop_rows()
        self._rows_removed = True

    def compare_lr_test(self, restricted: Any, refit: bool = False) -> LRTest:
        """Likelihood-ratio test against a nested model fitted to the same data, as statsmodels'
        ``compare_lr_test``; unpacks as ``(lr_stat, p_value, df_diff)``."""
        from ..inference.lrt import lr_test

        return lr_test(self, restricted, refit=refit)

    def __str__(self) -> str:
        return str(self.summary())

    def summary(self, alpha: float = 0.05) -> Summary:  # pragma: no cover - every family has its own
        raise NotImplementedError

    def summary2(self, alpha: float = 0.05, title: str | None = None) -> Summary:
        """statsmodels' ``summary2``: :meth:`summary` (already a statsmodels ``summary2.Summary``),
        with another ``title`` if given."""
        s = self.summary(alpha)
        if title is not None:
            s.add_title(title)
        return s

    @property
    def n_dropped(self) -> int:
        """Rows dropped for missing values before fitting."""
        fr = self.model.model_frame
        return fr.n_dropped if fr is not None else 0


    # ------------------------------------------------------------ simulation
    def _draw_response(self, mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _linear_predictor_link(self, eta: np.ndarray) -> np.ndarray:
        return eta

    def simulate(self, nsim: int = 1, seed: int | None = None, use_u: bool = False) -> pd.DataFrame:
        """Simulate responses from the fitted model (lme4's ``simulate``).

        Parameters
        ----------
        nsim : int
            Number of simulated responses.
        seed : int, optional
        use_u : bool
            False (lme4's default, ``re.form = NA``): draw new random effects for
            every simulation; True: condition on the estimated random effects.

        Returns
        -------
        DataFrame
            One column per simulation (``sim_1`` …), rows as the fitted data.
        """
        rng = np.random.default_rng(seed)
        out = self._draw_responses(self._eta_fit(include_re=False), nsim, rng, use_u)
        return pd.DataFrame(out, index=self.model.data.row_labels, columns=[f"sim_{i + 1}" for i in range(nsim)])

    def _draw_responses(self, eta0: np.ndarray, nsim: int, rng: np.random.Generator, use_u: bool) -> np.ndarray:
        """``nsim`` responses (columns) around the fixed-effects predictor ``eta0``."""
        draw = self.response_sampler(use_u, eta0)
        out = np.empty((eta0.size, nsim))
        for i in range(nsim):
            out[:, i] = draw(rng)
        return out

    def response_sampler(self, use_u: bool = False, eta0: np.ndarray | None = None
                         ) -> Callable[[np.random.Generator], np.ndarray]:
        """A function drawing one response from the fitted model with a given random generator,
        as :meth:`simulate` does (the designs are formed once: for refit loops).

        Parameters
        ----------
        use_u : bool
            Condition on the estimated random effects instead of drawing new ones.
        eta0 : ndarray, optional
            Fixed-effects predictor (default the fitted one, offset included).
        """
        if eta0 is None:
            eta0 = self._eta_fit(include_re=False)
        re = self.model.random_effects_structure
        Z = re.Z()
        if use_u:
            eta_u = eta0 + Z @ self.sol.b

            def draw(rng: np.random.Generator) -> np.ndarray:
                return self._draw_response(self._linear_predictor_link(eta_u), rng)
        else:
            ZL = (Z @ re.Lambda(self.theta)) * np.sqrt(self._re_scale)

            def draw(rng: np.random.Generator) -> np.ndarray:
                return self._draw_response(self._linear_predictor_link(eta0 + ZL @ rng.standard_normal(re.q)), rng)
        return draw

    def _eta_fit(self, include_re: bool = True) -> np.ndarray:
        """Linear predictor on the fitted rows."""
        self._need_rows("the linear predictor of the fitted rows (fitted values, residuals, predict() "
                        "without newdata, simulate)")
        re = self.model.random_effects_structure
        designs = [(t.X, t.codes) for t in re.terms] if include_re else None
        return self._linear_predictor(np.asarray(self.model.exog, float), designs, self.model.offset)

    # ------------------------------------------------------------ plots
    def plot(self, kind: str = "resid_fitted", **kwargs: Any) -> Figure:
        """Diagnostic plot (needs matplotlib): ``kind`` is ``"resid_fitted"``, ``"qq"``,
        ``"scale_location"``, ``"caterpillar"``, ``"profile"`` or ``"group_fits"``, drawn by
        the ``plot_<kind>`` function of :mod:`interlace.diagnostics.plots` with ``kwargs``.
        Returns the matplotlib Figure."""
        from ..diagnostics.plots import plot

        return plot(self, kind, **kwargs)

    # ------------------------------------------------------------ residuals, influence and model checks
    def residuals(self, type: str | None = None, level: str | int = "conditional", scaled: bool = False
                  ) -> pd.Series:
        """Residuals by type and level, lme4's ``residuals(m, type, scaled)`` and nlme's ``level``.

        See :mod:`interlace.diagnostics.residuals` for the definitions.

        Parameters
        ----------
        type : {"response", "pearson", "deviance", "working", "standardized", "normalized"}, optional
            Default ``"response"`` (LMMs) or ``"deviance"`` (GLMMs), as lme4.
        level : {"conditional", "marginal"}
            With the random effects (default) or the fixed effects only (nlme's level 0).
        scaled : bool
            Divide by σ̂ (lme4's ``scaled = TRUE``).

        Returns
        -------
        Series
        """
        from ..diagnostics.residuals import residuals

        self._need_rows("residuals()")
        return residuals(self, type=type, level=level, scaled=scaled)

    def hat_values(self) -> pd.Series:
        """Leverages, lme4's ``hatvalues(m)`` (LMMs and GLMMs); see
        :func:`interlace.diagnostics.influence.hat_values`."""
        from ..diagnostics.influence import hat_values

        self._need_rows("hat_values()")
        return hat_values(self)

    def influence(self, groups: str | Sequence[str] | None = None, obs: bool = False, approx: bool = False,
                  progress: bool = True) -> InfluenceResult:
        """Deletion diagnostics, lme4's ``influence(m, groups = )``: delete each level of ``groups``
        (or, with ``obs=True``, each observation) and refit; ``approx=True`` (LMMs) holds θ fixed
        instead.  Returns an :class:`~interlace.diagnostics.influence.InfluenceResult` with
        ``.cooks_distance``, ``.dfbeta``, ``.dfbetas``; see :func:`interlace.diagnostics.influence.influence`."""
        from ..diagnostics.influence import influence

        self._need_rows("influence()")
        return influence(self, groups=groups, obs=obs, approx=approx, progress=progress)

    def check(self, alpha: float = 0.05, vif_threshold: float = 5.0) -> CheckReport:
        """Verdicts on the fit (singular fit, convergence, overdispersion, collinearity); see
        :func:`interlace.diagnostics.checks.check_model`."""
        from ..diagnostics.checks import check_model

        self._need_rows("check()")
        return check_model(self, alpha=alpha, vif_threshold=vif_threshold)

    def plot_influence(self, kind: str = "cooks", **kwargs: Any) -> Figure:
        """Influence plot (needs matplotlib): ``kind="cooks"`` (Cook's distance per deleted unit) or
        ``"leverage"`` (standardized residuals against leverage, LMMs), drawn by
        :mod:`interlace.diagnostics.influence_plots` with ``kwargs``.  Returns the Figure."""
        from ..diagnostics.influence_plots import plot_influence

        return plot_influence(self, kind, **kwargs)

    # ------------------------------------------------------------ tidy tables (broom.mixed)
    def tidy(self, effects: str | Sequence[str] = ("fixed", "ran_pars"), conf_int: bool = False,
             conf_level: float = 0.95) -> pd.DataFrame:
        """broom.mixed's ``tidy(m)``: one row per parameter; see :func:`interlace.inference.tidy.tidy`."""
        from ..inference.tidy import tidy

        return tidy(self, effects=effects, conf_int=conf_int, conf_level=conf_level)

    def glance(self) -> pd.DataFrame:
        """broom.mixed's ``glance(m)``: one row of fit statistics; see :func:`interlace.inference.tidy.glance`."""
        from ..inference.tidy import glance

        return glance(self)

    def augment(self) -> pd.DataFrame:
        """broom.mixed's ``augment(m)``: the model frame with ``.fitted``, ``.resid``, ``.hat``, ``.cooksd``, …;
        see :func:`interlace.inference.tidy.augment`."""
        from ..inference.tidy import augment

        return augment(self)

    # ------------------------------------------------------------ R² and ICC (performance)
    def r2_nakagawa(self, tolerance: float = 1e-5) -> dict[str, float]:
        """Nakagawa's marginal and conditional R² (``performance::r2_nakagawa``); see
        :mod:`interlace.inference.r2`.  Returns ``{"conditional": …, "marginal": …}``."""
        from ..inference.r2 import r2_nakagawa

        return r2_nakagawa(self, tolerance)

    def icc(self, tolerance: float = 1e-5) -> dict[str, float]:
        """Adjusted and unadjusted intraclass correlation (``performance::icc``); see
        :mod:`interlace.inference.r2`.  Returns ``{"adjusted": …, "unadjusted": …}``."""
        from ..inference.r2 import icc

        return icc(self, tolerance)

    # ------------------------------------------------------------ drop1 and update
    def drop1(self, test: str | None = None, ddf: str | None = None, scope: list[str] | None = None
              ) -> pd.DataFrame:
        """Test dropping each marginal fixed-effect term: lmerTest's F tests (LMMs, default) or lme4's
        likelihood-ratio tests (``test="Chisq"``); see :func:`interlace.inference.drop1.drop1`."""
        from ..inference.drop1 import drop1

        return drop1(self, test=test, ddf=ddf, scope=scope)

    def update(self, formula: str | None = None, data: pd.DataFrame | None = None, **changes: Any) -> Any:
        """The model fitted again with a new formula (``". ~ . - x"``), data, weights, offset or
        ``reml`` (R's ``update``); see :func:`interlace.inference.update.update`."""
        from ..inference.update import update

        return update(self, formula, data, **changes)

    def all_fit(self, optimizers: list[str] | None = None, progress: bool = False) -> Any:
        """Refit with every available optimizer and tabulate estimates, log-likelihoods, convergence
        and timings (lme4's ``allFit``); see :func:`interlace.inference.allfit.all_fit`."""
        from ..inference.allfit import all_fit

        return all_fit(self, optimizers=optimizers, progress=progress)

    # ------------------------------------------------------------ marginal means (emmeans)
    def emmeans(self, specs: str | list[str], by: str | list[str] | None = None, at: dict | None = None,
                df_method: str | None = None, type: str = "link", mode: str = "latent") -> Any:
        """Estimated marginal means over a reference grid (R's ``emmeans``), with ``.pairs()``,
        ``.contrast()``, ``.summary()``, ``.confint()``, ``.test()``; see
        :func:`interlace.inference.emmeans.emmeans`."""
        from ..inference.emmeans import emmeans

        return emmeans(self, specs, by=by, at=at, df_method=df_method, type=type, mode=mode)

    # ------------------------------------------------------------ parametric bootstrap LR test (pbkrtest)
    def pb_modcomp(self, other: Any, nsim: int = 1000, seed: int | None = 42, n_jobs: int = 1,
                   progress: bool = True) -> Any:
        """Parametric bootstrap likelihood-ratio test against a nested model fitted to the same data
        (pbkrtest's ``PBmodcomp``); see :func:`interlace.inference.pbmodcomp.pb_modcomp`."""
        from ..inference.pbmodcomp import pb_modcomp

        return pb_modcomp(self, other, nsim=nsim, seed=seed, n_jobs=n_jobs, progress=progress)

    # ------------------------------------------------------------ power by simulation (simr)
    def simulate_fixef(self, fe_params: Any, nsim: int = 1, seed: Any = None) -> np.ndarray:
        """Responses simulated from the fitted model with the fixed effects replaced by ``fe_params``
        (simr's ``fixef(m)["x"] <- value``): new random effects and residuals, the fitted variance
        parameters.  Returns an array (rows × ``nsim``)."""
        beta = np.asarray(fe_params, float)
        if beta.shape != (len(self._names),):
            from ..errors import InterlaceError

            raise InterlaceError(f"fe_params has {beta.size} values; the model has {len(self._names)} fixed effects")
        X = np.asarray(self.model.exog, float)
        off = 0.0 if self.model.offset is None else np.asarray(self.model.offset, float)
        return self._draw_responses(X @ beta + off, nsim, np.random.default_rng(seed), False)

    def power_sim(self, test: str, nsim: int = 1000, alpha: float = 0.05, fixef: dict | None = None,
                  method: str | None = None, seed: int | None = 42, n_jobs: int = 1, progress: bool = True) -> Any:
        """Power to detect the fixed-effect term ``test`` by simulation (simr's ``powerSim``); see
        :func:`interlace.inference.power.power_sim`."""
        from ..inference.power import power_sim

        return power_sim(self, test, nsim=nsim, alpha=alpha, fixef=fixef, method=method, seed=seed,
                         n_jobs=n_jobs, progress=progress)

    def power_curve(self, test: str, along: str, breaks: Sequence[int] | None = None, nsim: int = 1000,
                    alpha: float = 0.05, fixef: dict | None = None, method: str | None = None,
                    seed: int | None = 42, n_jobs: int = 1, progress: bool = True) -> Any:
        """Power over sample sizes (the first k levels of ``along``; simr's ``powerCurve``); see
        :func:`interlace.inference.power.power_curve`."""
        from ..inference.power import power_curve

        return power_curve(self, test, along, breaks=breaks, nsim=nsim, alpha=alpha, fixef=fixef, method=method,
                           seed=seed, n_jobs=n_jobs, progress=progress)


class MixedResultsWrapper(LikelihoodResultsWrapper):
    """statsmodels' results wrapper for the mixed-model results: labels ``params``,
    ``bse``, … with the parameter names; ``print`` shows the summary. Subclasses add
    a ``__repr__``."""

    _attrs = {"params": "columns", "bse": "columns", "pvalues": "columns", "tvalues": "columns",
              "normalized_cov_params": "cov"}
    _wrap_attrs = wrap.union_dicts(_attrs)

    def __str__(self) -> str:
        return str(self._results)
