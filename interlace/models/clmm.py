"""Cumulative link mixed models for ordinal outcomes (R's ``ordinal::clmm``).

Same random-effects structure, PLS engines and PIRLS as the GLMM; the response is an
:class:`~interlace.families.ordinal.OrdinalResponse`.  The threshold parameters, the
coefficients β and θ are optimized together on the Laplace approximation (or adaptive
Gauss-Hermite quadrature for one scalar term), with the conditional modes from Newton
iterations at each step; the start is the fit without random effects (``clm``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..design import build_fixed, build_frame, build_random_effects
from ..design.dataframe import model_input
from ..design.terms import RandomEffects
from ..errors import DataError, DataWarning, InterlaceError, warn_user
from ..families.ordinal import CumulativeLink, threshold_jacobian
from ..formula import model_terms
from ..objective.clmm import CLMMDeviance
from ..objective.pirls import PIRLS
from ..optimize import check_convergence, minimize
from ..optimize.checks import convergence_messages, warn_messages
from ..optimize.gradient import gradient_derivatives, minimize_gradient
from ..response.ordinal import OrdinalResponse
from .base import MixedModel

__all__ = ["CLMM", "ordinal_codes"]

_Y = "__interlace_ordinal_y__"
#: A numeric response with non-integer values and more distinct values than this is refused
#: as continuous (unless ``levels=`` is given).
MAX_CONTINUOUS_LEVELS = 20
#: More categories than this get a warning (K − 1 thresholds to estimate).
MANY_LEVELS = 30


def ordinal_codes(col: pd.Series, levels: Sequence[Any] | None = None) -> tuple[np.ndarray, list]:
    """Category index (0 … K−1, NaN for missing) and the ordered levels of a response column."""
    name = col.name
    if levels is not None:
        levels = list(levels)
        lab = col.astype(object)
        index = {v: i for i, v in enumerate(levels)}
        index.update({str(v): i for i, v in enumerate(levels)})
        codes = np.array([np.nan if pd.isna(v) else index.get(v, index.get(str(v), -1)) for v in lab], float)
        bad = col[codes == -1]
        if len(bad):
            raise DataError(f"response {name!r} has value {bad.iloc[0]!r} not among levels={levels}")
    elif isinstance(col.dtype, pd.CategoricalDtype):
        if not col.cat.ordered:
            raise DataError(f"response {name!r} is an unordered categorical: make it ordered or pass levels=")
        levels = list(col.cat.categories)
        codes = col.cat.codes.to_numpy().astype(float)
        codes[codes < 0] = np.nan
    elif pd.api.types.is_complex_dtype(col):
        raise DataError(f"response {name!r} holds complex numbers: an ordinal response needs ordered values")
    elif pd.api.types.is_numeric_dtype(col):
        vals = col.dropna().unique()
        levels = sorted(vals.tolist())
        v = np.asarray(vals, float)
        if not np.all(np.isfinite(v)):
            raise DataError(f"response {name!r} has infinite values: an ordinal response needs ordered categories")
        frac = np.mod(v, 1.0, where=np.isfinite(v), out=np.zeros_like(v))
        fractional = not pd.api.types.is_bool_dtype(col) and bool(np.any(frac != 0))
        if fractional and len(levels) > MAX_CONTINUOUS_LEVELS:
            raise DataError(f"response {name!r} holds {len(levels)} distinct non-integer numbers: it looks "
                            f"continuous, and an ordinal model would estimate {len(levels) - 1} thresholds (R's "
                            "ordinal takes minutes and warns); fit it with interlace.fit, or bin it (pandas.cut), "
                            "or pass levels= to treat the values as ordered categories anyway")
        index = {v: i for i, v in enumerate(levels)}
        codes = np.array([np.nan if pd.isna(v) else index[v] for v in col], float)
    else:
        raise DataError(f"response {name!r} holds strings: give their order with levels=[...] "
                        "or make it an ordered pandas Categorical")
    K = len(levels)
    if K < 3:
        raise DataError(f"response {name!r} has {K} categories; an ordinal model needs at least 3 "
                        "(for two, use interlace.glmer with family='binomial')")
    if K > MANY_LEVELS:
        warn_user(f"response {name!r} has {K} categories: {K - 1} thresholds are estimated with the other "
                  "parameters, which is slow (the optimizer's work grows with the square of their number) and "
                  "needs many observations per category; consider merging categories", DataWarning)
    seen = np.bincount(codes[~np.isnan(codes)].astype(int), minlength=K)
    if np.any(seen == 0):
        empty = [levels[i] for i in np.flatnonzero(seen == 0)]
        raise DataError(f"response {name!r} has empty categories {empty}: drop them from levels=")
    return codes, levels


class CLMM(MixedModel):
    """Cumulative link mixed model. Usually built with :meth:`from_formula` or :func:`interlace.clmm`.

    Parameters
    ----------
    endog : array-like of int (n,)
        Category index 0 … K−1.
    exog : array-like (n, p)
        Fixed effects without an intercept (the thresholds take its place).
    random_effects : RandomEffects
    levels : list
        Ordered category labels.
    link : {"logit", "probit", "cloglog", "loglog", "cauchit"}
    threshold : {"flexible", "symmetric", "equidistant"}
    nAGQ : int
        1: Laplace; >1: adaptive Gauss-Hermite quadrature (one scalar term).
    """

    _per_row = ("endog", "exog", "weights")

    def __init__(self, endog: Any, exog: Any, random_effects: RandomEffects, levels: Any, link: str = "logit",
                 threshold: str = "flexible", nAGQ: int = 1, weights: Any = None, engine: str = "auto",
                 **kwargs: Any) -> None:
        super().__init__(endog, exog, random_effects, engine=engine, **kwargs)
        self.levels = list(levels)
        self.link = CumulativeLink(link)
        self.threshold = threshold
        self.J, tnames = threshold_jacobian(threshold, len(self.levels) - 1)
        self.threshold_names = [f"{a}|{b}" for a, b in zip(self.levels[:-1], self.levels[1:])]
        self.threshold_param_names = tnames or self.threshold_names
        # statsmodels' labels of params / bse / cov_params: the threshold parameters, then β
        self.data.param_names = list(self.threshold_param_names) + list(self.exog_names)
        self.nAGQ = int(nAGQ)
        re = random_effects
        if any(t.p != 1 for t in re.terms):
            raise InterlaceError("clmm supports random intercepts (scalar terms) such as (1 | g), as ordinal's "
                                 "clmm does; random slopes are not available")
        if self.nAGQ > 1 and len(re.terms) != 1:
            raise InterlaceError("nAGQ > 1 is only available for a single random-effects term; use nAGQ=1")
        n = self.endog.shape[0]
        self.weights = np.ones(n) if weights is None else np.asarray(weights, float)
        self.offset = None
        self.df_model = self.k_fe
        self.df_resid = self.nobs - self.k_fe - self.J.shape[1]
        self._deviance: CLMMDeviance | None = None

    def _init_kwargs(self) -> dict:
        return {**super()._init_kwargs(), "levels": self.levels, "link": self.link.name,
                "threshold": self.threshold, "nAGQ": self.nAGQ, "weights": self.weights}

    @classmethod
    def from_formula(cls, formula: str, data: pd.DataFrame, groups: str | Sequence[str] | None = None,
                     random: str | Sequence[str] | None = None, link: str = "logit", threshold: str = "flexible",
                     nAGQ: int = 1, levels: Sequence[Any] | None = None, weights: str | npt.ArrayLike | None = None,
                     engine: str = "auto", subset: npt.ArrayLike | None = None, *args: Any, **kwargs: Any) -> CLMM:
        """Build the model from ``"rating ~ temp + contact"`` plus random terms (see :func:`interlace.clmm`)."""
        inp = model_input(data, subset, weights)
        data, weights = inp.data, inp.weights
        fixed, specs = model_terms(formula, groups, random)
        lhs, rhs = (part.strip() for part in fixed.split("~", 1))
        if lhs not in data.columns:
            raise DataError(f"response column {lhs!r} is not in the data")
        codes, lev = ordinal_codes(data[lhs], levels)
        data = data.assign(**{_Y: codes})
        frame = build_frame(data, f"{_Y} ~ {rhs}", specs, weights=weights)
        fx = build_fixed(f"{_Y} ~ {rhs}", frame.data)
        keep = [i for i, nme in enumerate(fx.names) if nme != "Intercept"]
        fx.X, fx.names, fx.keep = fx.X[:, keep], [fx.names[i] for i in keep], fx.keep[keep]
        re = build_random_effects(specs, frame.data, check_nobs=False)
        endog = pd.Series(fx.y.astype(int), index=frame.data.index, name=lhs)
        exog = pd.DataFrame(fx.X, index=frame.data.index, columns=fx.names)
        mod = cls(endog, exog, re, lev, link=link, threshold=threshold, nAGQ=nAGQ, weights=frame.weights,
                  engine=engine, frame=frame, fixed_design=fx, formula=formula)
        mod.data.frame = data
        mod.specs = specs
        mod.response_name = lhs
        mod.offset_arg = None
        return mod

    # ---------------------------------------------------------------- objective
    def objective(self) -> CLMMDeviance:
        """A new objective of (threshold parameters, β, θ) on this model's engines."""
        self._need_rows("the model's objective")
        n = self.endog.shape[0]
        resp = OrdinalResponse(np.asarray(self.endog, int), len(self.levels), self.link,
                               np.zeros(len(self.levels) - 1), np.zeros(n), self.weights)
        return CLMMDeviance(PIRLS(self.row_engines(), resp), self.J, self.nAGQ)

    def deviance_function(self) -> CLMMDeviance:
        """The objective :meth:`loglike` evaluates (made once)."""
        if self._deviance is None:
            self._deviance = self.objective()
        return self._deviance

    @property
    def n_alpha(self) -> int:
        return self.J.shape[1]

    def split(self, par: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds α, β, θ) from the parameter vector (threshold parameters, β, θ)."""
        return self.deviance_function().split(par)

    def deviance_at(self, par: np.ndarray) -> float:
        """−2 log L (Laplace or AGQ) at (threshold parameters, β, θ)."""
        return self.deviance_function()(par)

    def loglike(self, params: np.ndarray) -> float:
        return -0.5 * self.deviance_at(params)

    def fit(self, start_params: Any = None, method: str = "auto", maxiter: int | None = None,
            check_conv: bool = True, blas_threads: int | None = None, **kwargs: Any) -> Any:
        """Estimate thresholds, coefficients and θ (see :class:`MixedModel.fit`).

        ``method="auto"`` (default) minimizes the Laplace approximation by L-BFGS-B on its
        exact gradient where that is available (``nAGQ=1``, a log-concave link: logit,
        probit, cloglog, loglog; at most
        :data:`~interlace.objective.clmm.GRADIENT_MAX_Q` random effects, or
        :data:`~interlace.objective.clmm.GRADIENT_MAX_Q_SPARSE` with CHOLMOD), else by BOBYQA;
        any optimizer name of :func:`interlace.optimize.minimize` (``"bobyqa"``, ...) runs
        that optimizer on the objective's values alone.
        """
        return super().fit(start_params, method, maxiter, check_conv, blas_threads, **kwargs)

    def _start(self, dev: CLMMDeviance, gradient: bool = False) -> np.ndarray:
        """Thresholds from the cumulative proportions, β = 0, then the fit without random effects (``clm``)."""
        x0 = dev.x0
        na_p = dev.n_alpha + dev.p
        zero = np.zeros(x0.size - na_p)
        if gradient:
            def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
                v, g = dev.value_and_gradient(np.concatenate([x, zero]))
                return v, g[:na_p]

            xs = minimize_gradient(fg, x0[:na_p], np.full(na_p, -np.inf)).x
        else:
            f = lambda x: dev(np.concatenate([x, zero]))  # noqa: E731
            xs = minimize(f, x0[:na_p], np.full(na_p, -np.inf), rhobeg=0.1).x
        return np.concatenate([xs, self.random_effects_structure.theta0])

    def _fit(self, start_params: Any, method: str, maxiter: int | None, check_conv: bool) -> Any:
        from ..results.clmm import CLMMResult, CLMMResultWrapper

        re = self.random_effects_structure
        dev = self.objective()
        gradient = str(method).lower() == "auto" and dev.has_gradient
        if str(method).lower() == "auto" and not gradient:
            method = "bobyqa"
        x0 = self._start(dev, gradient) if start_params is None else np.asarray(start_params, float)
        na, p = dev.n_alpha, dev.p
        if gradient:
            opt = minimize_gradient(dev.value_and_gradient, x0, dev.lower, maxfun=maxiter)
            if not opt.converged and (maxiter is None or opt.n_evals < maxiter):
                # the gradient search gave up (a line search far from the optimum): BOBYQA from there
                steps = np.concatenate([np.full(na + p, 0.1), np.full(re.n_theta, 0.2)])
                bob = minimize(dev, opt.x, dev.lower, rhobeg=steps,
                               maxfun=None if maxiter is None else maxiter - opt.n_evals)
                bob.n_evals += opt.n_evals
                bob.optimizer = f"{opt.optimizer}, then {bob.optimizer}"
                opt = bob
        else:
            steps = np.concatenate([np.full(na + p, 0.1), np.full(re.n_theta, 0.2)])
            opt = minimize(dev, x0, dev.lower, optimizer=method, maxfun=maxiter, rhobeg=steps)
        derivs: dict = {}
        if gradient:
            derivs = gradient_derivatives(dev.value_and_gradient, opt.x, dev.lower, delta=1e-4, central=True)
            msgs = convergence_messages(opt.x, dev.lower, opt.converged, opt.message, derivs)
            if check_conv:
                warn_messages(msgs)
            opt.messages = [m for m, _ in msgs]
        else:
            opt.messages = check_convergence(dev, opt.x, dev.lower, opt.converged, opt.message,
                                             warn=check_conv, derivs_out=derivs, delta=1e-3)
        objective = dev(opt.x)
        st = dev.solution(opt.x)
        return CLMMResultWrapper(CLMMResult(self, opt.x, st, objective, derivs, opt, dev))
