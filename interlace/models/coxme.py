"""Cox proportional-hazards models with Gaussian random effects (R's ``coxme``).

Same pipeline as the other families: formula → model frame (missing values dropped and
reported) → fixed-effects matrix (no intercept: the baseline hazard takes its place) and
the shared :class:`~interlace.design.terms.RandomEffects` (Z, Λθ, θ layout, lower bounds)
→ objective (:mod:`interlace.objective.coxme`) → optimizer and checks → results.

Two estimators of θ:

* ``method="coxme"`` (default): coxme 2.2's own search (log-variance scale, starting
  grid, fixed inner Newton iterations, R's BFGS with ``reltol = 1e-5``), which is what
  R reports — including a small positive variance where the likelihood is maximal at
  0, and estimates a little short of the maximum where the likelihood is flat;
* ``method="bobyqa"`` (or another optimizer of :func:`interlace.optimize.minimize`):
  the exact maximizer of the integrated (Laplace) likelihood over θ ≥ lower bounds,
  with lme4's convergence and singularity checks.

Either way the final coefficients, frailties, standard errors (inverse of the Hessian
of the penalized partial likelihood, with coxme's sparse approximation) and degrees of
freedom are computed at the estimated θ as coxme computes them.
"""
from __future__ import annotations

import re as _re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..design import build_fixed, build_frame, build_random_effects
from ..design.dataframe import model_input
from ..design.frame import EVAL_NAMESPACE
from ..design.terms import RandomEffects
from ..errors import ConvergenceWarning, DataError, FormulaError, InterlaceError, SingularFitWarning, warn_user
from ..families.cox import TIES, parse_surv, survival_response
from ..formula import model_terms
from ..formula.parse import split_offsets
from ..linalg.arrowhead import NotPositiveDefinite
from ..linalg.engines import ENGINES
from ..linalg.threads import blas_limits
from ..objective.coxme import CoxLaplace, CoxmeScale, coxme_theta_search
from ..objective.coxph import coxph_fit
from ..optimize import check_convergence, is_singular, minimize
from ..response.survival import CoxData
from .base import MixedModel

if TYPE_CHECKING:
    from ..results.coxme import CoxMEResultWrapper

__all__ = ["CoxME"]

_IDENT = _re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_TIME = "__interlace_time__"
_STATUS = "__interlace_status__"


def _evaluate(expr: str, data: pd.DataFrame, what: str) -> pd.Series:
    """A column or an expression of columns (``status == 2``) on ``data``."""
    if expr in data.columns:
        return data[expr]
    env = dict(EVAL_NAMESPACE)
    env.update({c: data[c] for c in data.columns if isinstance(c, str)})
    try:
        val = eval(compile(expr, f"<{what}>", "eval"), {"__builtins__": {}}, env)
    except Exception as exc:  # noqa: BLE001
        raise FormulaError(f"cannot evaluate {what} {expr!r}: {exc}") from None
    return pd.Series(np.broadcast_to(np.asarray(val), (len(data),)), index=data.index, name=expr)


class CoxME(MixedModel):
    """Mixed-effects Cox model. Usually built with :meth:`from_formula` or :func:`interlace.coxme`.

    Parameters
    ----------
    endog : array-like (n,)
        Follow-up times.
    exog : array-like (n, p)
        Fixed effects, without an intercept.
    random_effects : RandomEffects
    status : array-like (n,)
        1 = event, 0 = censored.
    ties : {"efron", "breslow"}
    weights : array-like, optional
        Positive case weights.
    offset : array-like, optional
    sparse : (int, float) or None
        coxme's ``sparse = c(50, .02)`` approximation (see :mod:`interlace.objective.coxme`);
        None for the exact Hessian.
    engine : {"auto", "dense", "blocked", "cholmod"}
    """

    _engine_names = ENGINES
    _per_row = ("endog", "exog", "status", "weights", "offset")

    def __init__(self, endog: Any, exog: Any, random_effects: RandomEffects, status: Any, ties: str = "efron",
                 weights: Any = None, offset: Any = None, sparse: Any = (50, 0.02), engine: str = "auto",
                 **kwargs: Any) -> None:
        super().__init__(endog, exog, random_effects, engine=engine, **kwargs)
        if ties not in TIES:
            raise InterlaceError(f"ties must be 'efron' or 'breslow', got {ties!r}")
        if sparse is not None and (len(sparse) != 2 or sparse[0] < 1 or not 0 <= sparse[1] <= 1):
            raise InterlaceError(f"sparse must be (minimum levels, maximum share) like (50, 0.02), got {sparse!r}")
        n = self.endog.shape[0]
        time, st = survival_response(np.asarray(self.endog, float), np.asarray(status))
        self.status = st
        self.ties = ties
        self.sparse = sparse
        self.weights = None if weights is None else np.asarray(weights, float)
        if self.weights is not None and (self.weights.shape != (n,) or np.any(~(self.weights > 0))):
            raise DataError("weights must be positive (coxme does not allow zero or negative case weights)")
        self.offset = None if offset is None else np.asarray(offset, float)
        self.cox_data = CoxData(time, st, self.weights, ties)
        self.n_events = self.cox_data.n_events
        self.df_model = self.k_fe
        self.df_resid = self.nobs - self.k_fe
        self._lap: CoxLaplace | None = None

    def _init_kwargs(self) -> dict:
        return {**super()._init_kwargs(), "status": self.status, "ties": self.ties, "weights": self.weights,
                "offset": self.offset, "sparse": self.sparse}

    # ---------------------------------------------------------------- building
    @classmethod
    def from_formula(cls, formula: str, data: pd.DataFrame, groups: str | Sequence[str] | None = None,
                     random: str | Sequence[str] | None = None, ties: str = "efron",
                     duration_col: str | None = None, event_col: str | None = None,
                     weights: str | npt.ArrayLike | None = None, offset: str | npt.ArrayLike | None = None,
                     sparse: tuple[int, float] | None = (50, 0.02), engine: str = "auto",
                     subset: npt.ArrayLike | None = None, *args: Any, **kwargs: Any) -> CoxME:
        """Build the model from ``"Surv(time, status) ~ x + (1 | g)"`` or ``"~ x"`` with
        ``duration_col``/``event_col`` (other parameters as :func:`interlace.coxme`)."""
        if not isinstance(formula, str):
            raise FormulaError(f"formula must be a string, got {type(formula).__name__}")
        inp = model_input(data, subset, weights, offset)
        data, weights, offset = inp.data, inp.weights, inp.offset
        one_sided = formula.strip().startswith("~")
        if duration_col is not None or event_col is not None:
            if duration_col is None or event_col is None:
                raise FormulaError("give both duration_col= and event_col= (or Surv(time, status) in the formula)")
            if not one_sided:
                raise FormulaError(f"formula {formula!r} has a left side and duration_col/event_col were given: "
                                   "use one of the two (e.g. '~ age + sex' with the columns)")
            for c, what in ((duration_col, "duration_col"), (event_col, "event_col")):
                if c not in data.columns:
                    raise DataError(f"{what} {c!r} is not in the data")
            texpr, sexpr = duration_col, event_col
            if not (_IDENT.match(str(duration_col)) and _IDENT.match(str(event_col))):
                data = data.assign(**{_TIME: data[duration_col], _STATUS: data[event_col]})
                texpr, sexpr = _TIME, _STATUS
            formula = f"Surv({texpr}, {sexpr}) {formula.strip()}"
        elif one_sided:
            raise FormulaError(f"formula {formula!r} has no response: write 'Surv(time, status) ~ ...' or give "
                               "duration_col= and event_col=")
        fixed, specs = model_terms(formula, groups, random)
        fixed, offset_terms = split_offsets(fixed)
        lhs, rhs = (part.strip() for part in fixed.split("~", 1))
        surv = parse_surv(lhs)
        if surv is None:
            raise FormulaError(f"the response {lhs!r} must be Surv(time, status) (1 = event, 0 = censored), "
                               "or give duration_col= and event_col= with a one-sided formula")
        if not specs:
            raise FormulaError("a mixed-effects Cox model needs at least one random-effects term, "
                               "e.g. '+ (1 | group)' or groups='group'")
        texpr, sexpr = surv
        frame = build_frame(data, f"I({texpr}) + I({sexpr}) ~ {rhs}", specs, weights=weights, offset=offset,
                            offset_terms=offset_terms)
        time = _evaluate(texpr, frame.data, "survival time")
        status = _evaluate(sexpr, frame.data, "status")
        survival_response(time, status, texpr, sexpr)  # clear errors before any design work
        fx = build_fixed(f"I({texpr}) ~ {rhs}", frame.data)
        keep = [i for i, nme in enumerate(fx.names) if nme != "Intercept"]
        fx.X, fx.names, fx.keep = fx.X[:, keep], [fx.names[i] for i in keep], fx.keep[keep]
        re = build_random_effects(specs, frame.data, check_nobs=False)
        endog = pd.Series(time.to_numpy(float), index=frame.data.index, name=texpr)
        exog = pd.DataFrame(fx.X, index=frame.data.index, columns=fx.names)
        mod = cls(endog, exog, re, status.to_numpy(), ties=ties, weights=frame.weights, offset=frame.offset,
                  sparse=sparse, engine=engine, frame=frame, fixed_design=fx, formula=formula)
        mod.data.frame = data
        mod.specs = specs
        mod.offset_arg = offset if isinstance(offset, str) and not offset_terms else None
        mod.time_name, mod.status_name = texpr, sexpr
        return mod

    # ---------------------------------------------------------------- objective
    def objective(self) -> CoxLaplace:
        """A new penalized fit and Laplace objective of θ (:class:`~interlace.objective.coxme.CoxLaplace`)."""
        return CoxLaplace(self.random_effects_structure, np.asarray(self.exog, float), self.cox_data, self.offset,
                          sparse=self.sparse, engine=self.engine)

    def laplace_objective(self) -> CoxLaplace:
        """The objective :meth:`loglike` evaluates (made once)."""
        if self._lap is None:
            self._lap = self.objective()
        return self._lap

    def loglike(self, params: np.ndarray) -> float:
        """Integrated (Laplace) log partial likelihood at θ = ``params`` (β and b maximized)."""
        return -0.5 * self.laplace_objective().laplace(np.asarray(params, float))

    # ---------------------------------------------------------------- fitting
    def fit(self, start_params: npt.ArrayLike | None = None, method: str = "coxme", maxiter: int | None = None,
            check_conv: bool = True, blas_threads: int | None = 1, **kwargs: Any) -> CoxMEResultWrapper:
        """Estimate θ, then β and the frailties at θ̂ (see the module docstring).

        Parameters
        ----------
        start_params : array-like, optional
            Starting θ (shared layout); default coxme's grid (``method="coxme"``) or
            the identity templates.
        method : str
            ``"coxme"`` or an optimizer of :func:`interlace.optimize.minimize`
            (``"bobyqa"``, ``"nlopt_bobyqa"``, ``"L-BFGS-B"``, …).
        maxiter : int, optional
            Iteration budget of the optimizer.
        check_conv : bool
            Warn on convergence problems and boundary fits.
        blas_threads : int or None
            BLAS threads during the fit (1: small dense products are fastest single-threaded).

        Returns
        -------
        CoxMEResultWrapper
        """
        with blas_limits(self.random_effects_structure, blas_threads), np.errstate(over="ignore", under="ignore"):
            try:
                return self._fit(start_params, method, maxiter, check_conv)
            except (np.linalg.LinAlgError, FloatingPointError, NotPositiveDefinite) as exc:
                raise InterlaceError(
                    f"the Cox model cannot be fitted to these data ({type(exc).__name__}: {exc}): a covariate or "
                    "factor level without events, more coefficients than the events identify, or a term "
                    "collinear with another are the usual causes; check the covariates") from None

    def _fit(self, start_params, method, maxiter, check_conv):
        from ..results.coxme import CoxMEResult, CoxMEResultWrapper

        re = self.random_effects_structure
        lap = self.objective()
        X = np.asarray(self.exog, float)
        with np.errstate(all="ignore"):  # far along a monotone likelihood exp() overflows: checked next
            fit0 = coxph_fit(X, self.cox_data, self.offset)
        self._check_separation(fit0, X)
        messages: list[str] = []
        if method == "coxme":
            scale = CoxmeScale(re)
            start = None
            if start_params is not None:
                start = scale.phi(np.asarray(start_params, float))
            search = coxme_theta_search(lap, scale, fit0=fit0, maxit=maxiter or 100, start=start)
            theta = search.theta
            opt = search.opt
            opt.lower = re.lower
            opt.x0 = np.asarray(scale.theta(search.start), float)
            opt.x = np.asarray(theta, float)
            opt.optimizer = "coxme (R BFGS on log variances)"
            # coxme's final fit: Newton from (b = 0, β = β̂_coxph), at most 20 iterations
            st = lap.fit(theta, beta0=fit0.coef, u0=np.zeros(re.q), maxit=20, coxme_steps=True, eps=1e-8)
            if not opt.converged:
                messages.append(f"optimizer (BFGS) did not converge: {opt.message}")
            inner = search.inner_iter
        else:
            theta0 = re.theta0 if start_params is None else np.asarray(start_params, float)
            lap.fit(theta0, beta0=fit0.coef, u0=np.zeros(re.q))
            opt = minimize(lap, theta0, lap.lower, optimizer=method, maxfun=maxiter)
            opt.messages = check_convergence(lap, opt.x, lap.lower, opt.converged, opt.message, warn=False)
            messages.extend(opt.messages)
            theta = opt.x
            st = lap.solution(theta)
            inner = None
        if not st.converged:
            messages.append(f"Newton-Raphson for the coefficients did not converge ({st.iterations} iterations)")
        boundary = self._boundary_terms(theta, st, lap)
        for name, var in boundary:
            msg = (f"boundary fit: the variance of {name} is estimated at {var:.3g}; the integrated likelihood "
                   "is as high with it at 0 (coxme's log-scale search cannot reach 0)")
            if msg not in messages:
                messages.append(msg)
        if check_conv:
            for m in messages:
                cat = SingularFitWarning if m.startswith("boundary") else ConvergenceWarning
                warn_user(m, cat)
        opt.messages = messages
        res = CoxMEResult(self, np.asarray(theta, float), st, fit0, opt, method, inner, boundary, lap)
        return CoxMEResultWrapper(res)

    def _check_separation(self, fit0: Any, X: np.ndarray) -> None:
        """Refuse covariates whose coefficient is infinite in the fit without random effects.

        When a covariate orders the events perfectly the partial likelihood grows without
        bound along its coefficient (R's coxph: "Loglik converged before variable ...;
        coefficient may be infinite", or "Ran out of iterations"), and coxme's search
        has no finite start.  Flagged: coxph's Newton iterations did not converge and a
        coefficient moved more than 10 standard deviations of its covariate per unit
        of the linear predictor's scale (``|β| sd(x) > 10``: a hazard ratio of e¹⁰ per SD).
        """
        if fit0.converged or X.shape[1] == 0:
            return
        sd = X.std(axis=0)
        big = [self.exog_names[j] for j in range(X.shape[1]) if abs(fit0.coef[j]) * sd[j] > 10]
        if big:
            raise DataError(f"the Cox partial likelihood increases without bound in the coefficient of "
                            f"{', '.join(map(repr, big))}: it orders the events (almost) perfectly (monotone "
                            "likelihood, as separation in a logistic model), so the estimate is infinite; "
                            "R's coxph warns 'coefficient may be infinite'. Remove or coarsen the covariate")

    def _boundary_terms(self, theta, st, lap: CoxLaplace) -> list[tuple[str, float]]:
        """Scalar terms whose variance could be 0 without lowering the integrated likelihood."""
        re = self.random_effects_structure
        out = []
        singular = is_singular(theta, re.lower)
        for k, t in enumerate(re.terms):
            if t.p != 1:
                continue
            th = float(theta[re.theta_slice(k)][0])
            if th == 0.0:
                out.append((t.name, 0.0))
                continue
            if th > 0.05 and not singular:
                continue
            zero = np.array(theta, float)
            zero[re.theta_slice(k)] = 0.0
            try:
                at0 = lap.fit(zero, beta0=st.beta, u0=st.u).laplace
                here = lap.fit(theta, beta0=st.beta, u0=st.u).laplace
            except np.linalg.LinAlgError:
                continue
            if at0 >= here - 1e-8:
                out.append((t.name, th * th))
        lap.u, lap.beta = st.u, st.beta
        return out
