"""Cox proportional-hazards models with Gaussian random effects (R's ``coxme``).

Same pipeline as the other families: formula → model frame (missing values dropped and
reported) → fixed-effects matrix (no intercept: the baseline hazard takes its place) and
the shared :class:`~interlace.design.terms.RandomEffects` (Z, Λθ, θ layout, lower bounds)
→ objective (:mod:`interlace.objective.coxme`) → optimizer and checks → results.

Two estimators of θ:

* ``optimizer="coxme"`` (:func:`interlace.coxme`'s default; ``method=`` of :meth:`CoxME.fit`, as
  statsmodels names the optimizer): coxme 2.2's own search (log-variance scale, starting
  grid, fixed inner Newton iterations, R's BFGS with ``reltol = 1e-5``), which is what
  R reports — including a small positive variance where the likelihood is maximal at
  0, and estimates a little short of the maximum where the likelihood is flat;
* ``optimizer="bobyqa"`` (or another optimizer of :func:`interlace.optimize.minimize`):
  the exact maximizer of the integrated (Laplace) likelihood over θ ≥ lower bounds,
  with lme4's convergence and singularity checks.

Either way the final coefficients, frailties, standard errors (inverse of the Hessian
of the penalized partial likelihood, with coxme's sparse approximation) and degrees of
freedom are computed at the estimated θ as coxme computes them.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..design.terms import RandomEffects
from ..errors import ConvergenceWarning, DataError, FormulaError, InterlaceError, SingularFitWarning, warn_user
from ..linalg.arrowhead import NotPositiveDefinite
from ..linalg.engines import ENGINES
from ..linalg.threads import blas_limits
from ..objective.coxme import CoxLaplace, CoxmeScale, coxme_theta_search
from ..objective.coxph import coxph_fit
from ..optimize import check_convergence, is_singular, minimize
from .survival import CoxModel, cox_formula

if TYPE_CHECKING:
    from ..results.coxme import CoxMEResultWrapper

__all__ = ["CoxME"]


class CoxME(CoxModel):
    """Mixed-effects Cox model. Usually built with :meth:`from_formula` or :func:`interlace.coxme`.

    Parameters
    ----------
    endog : array-like (n,)
        Follow-up (stop) times.
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

    Other Parameters
    ----------------
    start : array-like (n,), optional
        Entry times of counting-process ``(start, stop]`` data.
    strata : array-like of int (n,), optional
        Stratum codes (each stratum has its own baseline hazard).
    strata_labels : list of str, optional
    """

    _engine_names = ENGINES

    def __init__(self, endog: Any, exog: Any, random_effects: RandomEffects, status: Any, ties: str = "efron",
                 weights: Any = None, offset: Any = None, sparse: Any = (50, 0.02), engine: str = "auto",
                 **kwargs: Any) -> None:
        super().__init__(endog, exog, random_effects, status, ties=ties, weights=weights, offset=offset,
                         engine=engine, **kwargs)
        if sparse is not None and (len(sparse) != 2 or sparse[0] < 1 or not 0 <= sparse[1] <= 1):
            raise InterlaceError(f"sparse must be (minimum levels, maximum share) like (50, 0.02), got {sparse!r}")
        self.sparse = sparse
        self._lap: CoxLaplace | None = None

    _row_attributes = ("weights", "status", "cox_data")

    def _init_kwargs(self) -> dict:
        return {**super()._init_kwargs(), "sparse": self.sparse}

    # ---------------------------------------------------------------- building
    @classmethod
    def from_formula(cls, formula: str, data: pd.DataFrame, groups: str | Sequence[str] | None = None,
                     random: str | Sequence[str] | None = None, ties: str = "efron",
                     duration_col: str | None = None, event_col: str | None = None,
                     weights: str | npt.ArrayLike | None = None, offset: str | npt.ArrayLike | None = None,
                     sparse: tuple[int, float] | None = (50, 0.02), engine: str = "auto",
                     subset: npt.ArrayLike | None = None, *args: Any, entry_col: str | None = None,
                     **kwargs: Any) -> CoxME:
        """Build the model from ``"Surv(time, status) ~ x + (1 | g)"`` (``Surv(start, stop, status)``,
        ``strata(s)`` as in survival) or ``"~ x"`` with ``duration_col``/``event_col``
        (other parameters as :func:`interlace.coxme`)."""
        parts = cox_formula(formula, data, groups, random, duration_col, event_col, entry_col, weights, offset,
                            subset)
        if not parts.specs:
            raise FormulaError("a mixed-effects Cox model needs at least one random-effects term, "
                               "e.g. '+ (1 | group)' or groups='group' (interlace.coxph fits a model without)")
        if parts.cluster_var is not None:
            raise FormulaError("cluster() is for the robust variance of a model without random effects "
                               "(interlace.coxph); in coxme, write the cluster as a random effect (1 | id)")
        re = cls._random_effects(parts, allow_empty=False)
        mod = cls._from_parts(parts, re, ties, sparse=sparse, engine=engine)
        mod.data.frame = data
        mod.offset_arg = offset if isinstance(offset, str) and not parts.offset_terms else None
        return mod

    # ---------------------------------------------------------------- objective
    def objective(self) -> CoxLaplace:
        """A new penalized fit and Laplace objective of θ (:class:`~interlace.objective.coxme.CoxLaplace`)."""
        self._need_rows("the model's objective")
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
