"""The linear mixed model as a statsmodels ``LikelihoodModel``.

Pipeline (lme4's): formula → model frame and design (``interlace.design``) →
PLS engine and deviance of θ (``interlace.linalg``, ``interlace.objective``) →
optimizer and checks (``interlace.optimize``) → :class:`CrossedLMEResult`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..design import build_fixed, build_frame, build_random_effects
from ..design.dataframe import model_input
from ..design.terms import RandomEffects
from ..errors import InterlaceError
from ..formula import model_terms
from ..formula.parse import split_offsets
from ..inference.containment import nested_levels
from ..inference.ddf import parse_df_method
from ..linalg.threads import blas_limits
from ..objective import CorrelatedLMMDeviance, LMMDeviance
from ..objective.lmm import fit_criterion
from ..objective.refit import LMMRefitter, RefitEstimate
from .base import MixedModel

if TYPE_CHECKING:
    from ..correlation import CorrelationStructure, VarIdent
    from ..results.lmm import CrossedLMEResultWrapper

__all__ = ["CrossedLME", "parse_method"]


def parse_method(method: str) -> bool:
    """``"REML"``/``"ML"`` (any case) → ``reml`` flag, with a clear error otherwise."""
    m = str(method).upper()
    if m not in ("REML", "ML"):
        raise InterlaceError(f"method must be 'REML' or 'ML', got {method!r}")
    return m == "REML"


class CrossedLME(MixedModel):
    """Linear mixed model with crossed, nested and random-slope terms (lme4's ``lmer``).

    Usually built with :meth:`from_formula` or :func:`interlace.fit`.

    Parameters
    ----------
    endog : array-like (n,)
        Response.
    exog : array-like (n, p)
        Fixed-effects model matrix.
    random_effects : RandomEffects
        The random-effects structure (see :mod:`interlace.design.terms`).
    weights, offset : array-like, optional
        Prior weights and an offset added to the linear predictor.
    reml : bool
        REML (default) or maximum likelihood.
    engine : {"auto", "blocked", "cholmod"}
        Sparse Cholesky engine.
    df_method : {"satterthwaite", "kenward-roger", "containment", "normal"}, optional
        Denominator degrees of freedom of the fixed-effect t and F tests of the results
        (default Satterthwaite; nlme's containment rule with a residual structure).

    Other Parameters
    ----------------
    residual : ResidualModel, optional
        Bound residual correlation/variance structure (see :mod:`interlace.correlation`).
    correlation, variance : optional
        The user's structures behind ``residual`` (kept for refits and the summary).
    """

    def __init__(self, endog: Any, exog: Any, random_effects: RandomEffects, weights: Any = None, offset: Any = None,
                 reml: bool = True, engine: str = "auto", df_method: str | None = None, **kwargs: Any) -> None:
        #: residual correlation/variance structure (:class:`~interlace.correlation.ResidualModel`) or None
        self.residual = kwargs.pop("residual", None)
        self.correlation = kwargs.pop("correlation", None)
        self.variance = kwargs.pop("variance", None)
        if df_method is None:
            df_method = "satterthwaite"
            if self.residual is not None:
                df_method = "containment" if nested_levels(random_effects) is not None else "normal"
        self.df_method = parse_df_method(df_method)
        if self.residual is not None and self.df_method in ("satterthwaite", "kenward-roger"):
            raise InterlaceError(f"df_method={df_method!r} is not available with a residual correlation or "
                                 "variance structure: use 'containment' (nlme's default) or 'normal'")
        if self.df_method == "kenward-roger" and not reml:
            raise InterlaceError("Kenward-Roger's method is only available for REML fits (as in lmerTest): "
                                 "use method='REML' or df_method='satterthwaite'")
        super().__init__(endog, exog, random_effects, engine=engine, **kwargs)
        self.weights = None if weights is None else np.asarray(weights, float)
        self.offset = None if offset is None else np.asarray(offset, float)
        self.reml = bool(reml)
        self.df_model = self.k_fe - 1
        self.df_resid = self.nobs - self.k_fe
        self._deviance: LMMDeviance | None = None

    # ---------------------------------------------------------------- building
    @classmethod
    def from_formula(cls, formula: str, data: pd.DataFrame, groups: str | Sequence[str] | None = None,
                     random: str | Sequence[str] | None = None, reml: bool = True,
                     weights: str | npt.ArrayLike | VarIdent | None = None, offset: str | npt.ArrayLike | None = None,
                     engine: str = "auto", subset: npt.ArrayLike | None = None, drop_cols: Any = None,
                     *args: Any, df_method: str | None = None, correlation: CorrelationStructure | None = None,
                     **kwargs: Any) -> CrossedLME:
        """Build the model from an lme4-style formula.

        Parameters
        ----------
        formula : str
            ``"y ~ x"`` or ``"y ~ x + (1 + x | g)"``.
        data : DataFrame
        groups : str or list of str, optional
            Random intercept per column (crossed).
        random : str or list of str, optional
            lme4 random-effects terms.
        reml : bool
        weights, offset : str or array-like, optional
            Column names or vectors aligned with ``data``; ``weights`` may also be an
            :class:`interlace.VarIdent` variance structure (nlme's ``weights = varIdent(...)``).
        engine : {"auto", "blocked", "cholmod"}
        subset : array-like of bool, optional
            Rows of ``data`` to use.
        df_method : {"satterthwaite", "kenward-roger", "containment", "normal"}, optional
            Degrees of freedom for the fixed-effect tests (see :func:`interlace.fit`).
        correlation : AR1, CAR1 or CompoundSymmetry, optional
            Residual correlation within groups (see :mod:`interlace.correlation`).
        """
        from ..correlation import VarIdent, bind_residual, structure_columns

        variance = None
        if isinstance(weights, VarIdent):
            variance, weights = weights, None
        extra = structure_columns(correlation, variance)
        inp = model_input(data, subset, weights, offset)
        data = inp.data
        fixed, specs = model_terms(formula, groups, random)
        fixed, offset_terms = split_offsets(fixed)
        frame = build_frame(data, fixed, specs, weights=inp.weights, offset=inp.offset, extra=extra,
                            offset_terms=offset_terms)
        fx = build_fixed(fixed, frame)
        re = build_random_effects(specs, frame, allow_empty=bool(extra) or variance is not None
                                  or correlation is not None)
        residual = (bind_residual(correlation, variance, frame.data, re)
                    if correlation is not None or variance is not None else None)
        mod = cls(fx.y, fx.X, re, weights=frame.weights, offset=frame.offset, reml=reml, engine=engine,
                  frame=frame, fixed_design=fx, formula=formula, df_method=df_method,
                  residual=residual, correlation=correlation, variance=variance,
                  labels=(frame.index, fx.response, fx.names))
        mod.data.frame = data
        mod.specs = specs
        mod.groups_arg = groups
        mod.offset_arg = offset if isinstance(offset, str) and not offset_terms else None
        return mod

    def _init_kwargs(self) -> dict:
        return {**super()._init_kwargs(), "weights": self.weights, "offset": self.offset, "reml": self.reml,
                "df_method": self.df_method, "residual": self.residual, "correlation": self.correlation,
                "variance": self.variance}

    def clone(self, rows: Any = None, **changes: Any) -> CrossedLME:
        """See :meth:`MixedModel.clone`; an ML model made from a Kenward-Roger one uses Satterthwaite
        (KR needs REML)."""
        if changes.get("reml") is False and "df_method" not in changes and self.df_method == "kenward-roger":
            changes["df_method"] = "satterthwaite"
        return super().clone(rows=rows, **changes)

    # ---------------------------------------------------------------- objective
    def objective(self) -> LMMDeviance:
        """A new criterion of θ on this model's data (profiled deviance for ML, REML criterion for REML)."""
        self._need_rows("the model's criterion")
        y = np.asarray(self.endog, float)
        if self.offset is not None:
            y = y - self.offset
        if self.residual is not None:
            return CorrelatedLMMDeviance(self.random_effects_structure, np.asarray(self.exog, float), y,
                                         self.weights, self.reml, self.residual, self.engine)
        return LMMDeviance.from_rows(self.row_engines(), y, self.weights, self.reml)

    def refitter(self, start: npt.ArrayLike, scale: npt.ArrayLike | None = None,
                 optimizer: str = "bobyqa") -> LMMRefitter:
        """Refits of this model's rows to new responses that build nothing per refit but the
        response's cross-products (see :mod:`interlace.objective.refit`).

        Parameters
        ----------
        start : array-like
            θ every refit starts from (the fitted θ̂).
        scale : array-like, optional
            Standard errors of θ̂ (:func:`~interlace.objective.refit.theta_scale`): the refits'
            trust region and stopping rule; None: a fresh fit's optimizer settings.
        optimizer : str

        Returns
        -------
        LMMRefitter
            Called with a response (rows as this model's), returns a
            :class:`~interlace.objective.refit.RefitEstimate`.
        """
        self._need_rows("refitting")
        if self.residual is not None:
            raise InterlaceError("refitter() is not available with a residual correlation or variance structure: "
                                 "use refit()")
        return LMMRefitter(self.row_engines(), self.weights, self.offset, self.reml, np.asarray(start, float),
                           None if scale is None else np.asarray(scale, float), optimizer)

    def fitted_at(self, estimate: RefitEstimate) -> CrossedLMEResultWrapper:
        """The results of this model at estimates a :meth:`refitter` found for this model's response
        (no optimization: the solution at ``estimate.theta``; lme4's checks are not run).

        Parameters
        ----------
        estimate : RefitEstimate

        Returns
        -------
        CrossedLMEResultWrapper
        """
        from ..optimize import OptSummary
        from ..results.lmm import CrossedLMEResult, CrossedLMEResultWrapper

        dev = self.objective()
        theta = np.asarray(estimate.theta, float)
        sol = dev.solution(theta)
        opt = OptSummary("refit", theta, dev.lower, theta, sol.objective, int(estimate.n_evals),
                         bool(estimate.converged), "refit (LMMRefitter)", 0.0)
        return CrossedLMEResultWrapper(CrossedLMEResult(self, sol, opt, dev))

    def deviance_function(self) -> LMMDeviance:
        """The criterion of θ that :meth:`loglike` and :meth:`score` evaluate (made once)."""
        if self._deviance is None:
            self._deviance = self.objective()
        return self._deviance

    def loglike(self, params: npt.ArrayLike) -> float:
        """Profiled log-likelihood (ML) or REML log-likelihood at θ = ``params``."""
        return -0.5 * self.deviance_function()(np.asarray(params, float))

    def score(self, params: npt.ArrayLike) -> np.ndarray:
        """Numerical gradient of :meth:`loglike` in θ."""
        from statsmodels.tools.numdiff import approx_fprime

        return approx_fprime(np.asarray(params, float), self.loglike, centered=True)

    # ---------------------------------------------------------------- fitting
    def fit(self, start_params: npt.ArrayLike | None = None, method: str = "auto", maxiter: int | None = None,
            check_conv: bool = True, reml: bool | None = None, optimizer_options: dict | None = None,
            blas_threads: int | None = None, **kwargs: Any) -> CrossedLMEResultWrapper:
        """Estimate θ by minimizing the criterion; β, σ² and the BLUPs follow at the optimum.

        Parameters
        ----------
        start_params : array-like, optional
            Starting θ (default: moment estimates, :func:`~interlace.objective.start.moment_start`).
        method : str
            Optimizer: ``"auto"`` (default: L-BFGS-B with the criterion's analytic gradient and
            Newton steps where the engine gives the gradient, else BOBYQA), ``"bobyqa"``
            (lme4's), ``"L-BFGS-B"`` (finite differences), ``"Nelder-Mead"``, ``"Powell"``.
        maxiter : int, optional
            Evaluation budget.
        check_conv : bool
            Run lme4's gradient/singularity checks and warn.
        reml : bool, optional
            Override the model's REML/ML setting.
        blas_threads : int, optional
            BLAS threads during the fit. Default: 1 unless the dense part of the
            factor has more than :data:`~interlace.linalg.THREADED_DENSE_COLUMNS` columns
            (threaded BLAS slows small factorizations, badly so on a busy machine).

        Returns
        -------
        CrossedLMEResultWrapper
        """
        if reml is not None and bool(reml) != self.reml:
            return self.clone(reml=bool(reml)).fit(start_params, method, maxiter, check_conv,
                                                      optimizer_options=optimizer_options,
                                                      blas_threads=blas_threads)
        re = self.random_effects_structure
        with blas_limits(re, blas_threads):
            return self._fit(start_params, method, maxiter, check_conv, optimizer_options)

    def _fit(self, start_params, method, maxiter, check_conv, optimizer_options):
        from ..results.lmm import CrossedLMEResult, CrossedLMEResultWrapper

        dev = self.objective()
        x0 = dev.x0 if start_params is None else np.asarray(start_params, float)
        opt, sol = fit_criterion(dev, x0, optimizer=method, maxfun=maxiter, options=optimizer_options,
                                 check_conv=check_conv, response=f"response {self.endog_names!r}")
        return CrossedLMEResultWrapper(CrossedLMEResult(self, sol, opt, dev))
