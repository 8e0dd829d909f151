"""Generalized linear mixed models as a statsmodels ``LikelihoodModel`` (lme4's ``glmer``).

Same pipeline and random-effects structure as :class:`~interlace.models.lmm.CrossedLME`;
the response side is a GLM family.  Estimation follows lme4:

1. θ optimized with (β, u) from joint PIRLS (this is the whole fit for ``nAGQ=0``);
2. (θ, β) optimized jointly with u from PIRLS given (θ, β), the objective being the
   Laplace approximation (``nAGQ=1``) or adaptive Gauss-Hermite quadrature
   (``nAGQ>1``, one scalar random-effects term only).

Standard errors of β come from the finite-difference Hessian of the objective in
(θ, β), as lme4's default ``vcov``; where that Hessian is not positive definite
they fall back to the PIRLS factor (lme4's ``RX``), with a warning.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..design import build_fixed, build_frame, build_random_effects
from ..design.dataframe import model_input
from ..design.fixed import build_matrix
from ..design.response import binary_column, binomial_response, split_cbind
from ..design.terms import RandomEffects
from ..errors import ConvergenceWarning, DataError, DataWarning, FormulaError, InterlaceError, warn_user
from ..families import GLMFamily, resolve_family
from ..formula import model_terms
from ..formula.parse import split_offsets
from ..objective.glmm import JointPIRLSDeviance, LaplaceDeviance
from ..objective.pirls import PIRLS, PIRLSState
from ..optimize import OptSummary, check_convergence, minimize, minimize_checked
from ..optimize.checks import record_verdicts
from ..optimize.gradient import GRADIENT_OPTIMIZER, gradient_derivatives, newton_steps, preconditioned_search
from ..optimize.optimizers import is_auto
from ..response.glm import GLMResponse
from .base import MixedModel

if TYPE_CHECKING:
    import statsmodels.genmod.families as smf_fam


__all__ = ["GLMM", "StagesFit", "check_glm_response", "fit_stages", "glmm_vcov", "warn_fit_problems"]


class GLMM(MixedModel):
    """Generalized linear mixed model.

    Usually built with :meth:`from_formula` or :func:`interlace.glmer`.

    Parameters
    ----------
    endog : array-like (n,)
        Response (a proportion for binomial data with ``weights`` = trials).
    exog : array-like (n, p)
    random_effects : RandomEffects
    family : GLMFamily or str or statsmodels family
    weights, offset : array-like, optional
    nAGQ : int
        0 (PIRLS only), 1 (Laplace, default) or the number of adaptive
        Gauss-Hermite nodes (one scalar random-effects term only).
    engine : {"auto", "blocked", "cholmod"}
    """

    def __init__(self, endog: Any, exog: Any, random_effects: RandomEffects, family: Any, weights: Any = None,
                 offset: Any = None, nAGQ: int = 1, engine: str = "auto", **kwargs: Any) -> None:
        super().__init__(endog, exog, random_effects, engine=engine, **kwargs)
        self.family: GLMFamily = resolve_family(family)
        n = self.endog.shape[0]
        self.weights = np.ones(n) if weights is None else np.asarray(weights, float)
        self.offset = None if offset is None else np.asarray(offset, float)
        self.nAGQ = int(nAGQ)
        re = random_effects
        if self.nAGQ < 0:
            raise InterlaceError(f"nAGQ must be 0, 1 or more, got {nAGQ}")
        if self.nAGQ > 1 and not (len(re.terms) == 1 and re.terms[0].p == 1):
            raise InterlaceError("nAGQ > 1 is only available for a single scalar random-effects term "
                                 "such as (1 | g); use nAGQ=1 (Laplace)")
        self.df_model = self.k_fe - 1
        self.df_resid = self.nobs - self.k_fe
        if self.nobs <= self.k_fe:
            raise DataError(f"the fixed effects have {self.k_fe} coefficients for {int(self.nobs)} observations: "
                            "they would fit the data exactly; use fewer fixed effects")
        self._check_response()
        self._deviance: LaplaceDeviance | None = None

    def _init_kwargs(self) -> dict:
        return {**super()._init_kwargs(), "family": self.family, "weights": self.weights, "offset": self.offset,
                "nAGQ": self.nAGQ}

    def _check_response(self) -> None:
        check_glm_response(np.asarray(self.endog, float), self.family, self.endog_names)

    # ---------------------------------------------------------------- building
    @classmethod
    def from_formula(cls, formula: str, data: pd.DataFrame, family: str | GLMFamily | smf_fam.Family | None = None,
                     link: str | None = None, groups: str | Sequence[str] | None = None,
                     random: str | Sequence[str] | None = None, weights: str | npt.ArrayLike | None = None,
                     offset: str | npt.ArrayLike | None = None, nAGQ: int = 1, engine: str = "auto",
                     subset: npt.ArrayLike | None = None, *args: Any, **kwargs: Any) -> GLMM:
        """Build the model from an lme4-style formula.

        The response may be written ``cbind(successes, failures)`` for binomial data;
        a 0/1, logical or two-level column; or a proportion with ``weights`` = trials.
        Other parameters as :func:`interlace.glmer` (``family`` should be given: without it
        binomial is assumed, with a ``FutureWarning``).
        """
        fam = resolve_family(default_family(family), link)
        inp = model_input(data, subset, weights, offset)
        data, weights, offset = inp.data, inp.weights, inp.offset
        fixed, specs = model_terms(formula, groups, random)
        fixed, offset_terms = split_offsets(fixed)
        design_formula, s_expr, f_expr = split_cbind(fixed)
        if fam.name == "binomial" and s_expr is None:
            data = binary_column(data, fixed.split("~")[0].strip())
        frame_formula = design_formula
        if f_expr is not None:
            frame_formula = f"I({s_expr}) + I({f_expr}) ~ {design_formula.split('~', 1)[1]}"
        frame = build_frame(data, frame_formula, specs, weights=weights, offset=offset, offset_terms=offset_terms)
        fx = build_fixed(design_formula, frame.data)
        re = build_random_effects(specs, frame.data, check_nobs=False)
        y, w = fx.y, frame.weights
        if fam.name == "binomial":
            failures = None
            if f_expr is not None:
                failures = np.asarray(build_matrix(f"I({f_expr}) - 1", frame.data, "the failures"), float).ravel()
            y, w = binomial_response(y, failures, w, fixed.split("~")[0].strip())
        elif f_expr is not None:
            raise FormulaError(f"cbind() on the left of {fixed!r} is only for the binomial family")
        endog = pd.Series(y, index=frame.data.index, name=fx.response)
        exog = pd.DataFrame(fx.X, index=frame.data.index, columns=fx.names, copy=False)  # shares the design's X
        mod = cls(endog, exog, re, fam, weights=w, offset=frame.offset, nAGQ=nAGQ, engine=engine,
                  frame=frame, fixed_design=fx, formula=formula)
        mod.data.frame = data
        mod.specs = specs
        mod.offset_arg = offset if isinstance(offset, str) and not offset_terms else None
        return mod

    # ---------------------------------------------------------------- objective
    def response(self) -> GLMResponse:
        """The response: y, prior weights, offset and family."""
        n = self.endog.shape[0]
        off = np.zeros(n) if self.offset is None else self.offset
        return GLMResponse(np.asarray(self.endog, float), self.weights, off, self.family)

    def pirls(self) -> PIRLS:
        """A new PIRLS on this model's engines and response."""
        return PIRLS(self.row_engines(), self.response())

    def deviance_function(self) -> LaplaceDeviance:
        """−2 log L of (θ, β) that :meth:`loglike` evaluates (made once)."""
        if self._deviance is None:
            self._deviance = LaplaceDeviance(self.pirls(), self.nAGQ)
        return self._deviance

    def deviance_at(self, theta: np.ndarray, beta: np.ndarray, n_agq: int | None = None) -> float:
        """−2 log L (Laplace or AGQ) at (θ, β), with u from PIRLS."""
        return self.deviance_function().at(theta, beta, n_agq)

    def loglike(self, params: np.ndarray) -> float:
        """Log-likelihood at ``params`` = (θ, β) (Laplace or AGQ as set by ``nAGQ``)."""
        return -0.5 * self.deviance_function()(np.asarray(params, float))

    # ---------------------------------------------------------------- fitting
    def fit(self, start_params: Any = None, method: str = "auto", maxiter: int | None = None,
            check_conv: bool = True, blas_threads: int | None = None, **kwargs: Any) -> Any:
        """Estimate θ and β by lme4's two stages (see :class:`MixedModel.fit` and :func:`fit_stages`).

        ``method="auto"`` (default) runs stage 2 on the exact gradient of the Laplace deviance
        where it is available (``nAGQ=1``, rows in memory; :attr:`LaplaceDeviance.has_gradient`),
        else BOBYQA; ``"bobyqa"`` is lme4's path throughout.
        """
        return super().fit(start_params=start_params, method=method, maxiter=maxiter, check_conv=check_conv,
                           blas_threads=blas_threads, **kwargs)

    def _fit(self, start_params, method, maxiter, check_conv):
        from ..results.glmm import GLMMResult, GLMMResultWrapper

        pirls = self.pirls()
        f = fit_stages(pirls, self.family, self.nAGQ, start_params, method, maxiter, check_conv)
        return GLMMResultWrapper(GLMMResult(self, f.theta, f.beta, f.state, f.objective, f.vcov, f.opt, pirls))


#: Relative θ tolerance of stage 1 (BOBYQA over θ, joint PIRLS) before the gradient search of stage 2
#: (``optimizer="auto"``); BOBYQA's stage 2 starts from lme4's tight stage 1.
STAGE1_XTOL = 1e-1
#: PIRLS's stopping tolerances (relative change of the penalized deviance, largest step) in that stage 1
STAGE1_PIRLS_TOL = (1e-8, 1e-4)


@dataclass
class StagesFit:
    """What :func:`fit_stages` finds: θ̂, β̂, the PIRLS state at them, −2 log L, vcov(β̂), the fit log."""

    theta: np.ndarray
    beta: np.ndarray
    state: PIRLSState
    objective: float
    vcov: np.ndarray
    opt: OptSummary


def fit_stages(pirls: PIRLS, family: GLMFamily, nAGQ: int, start_params: Any = None, method: str = "bobyqa",
               maxiter: int | None = None, check_conv: bool = True) -> StagesFit:
    """lme4's two stages on a PIRLS, wherever its rows are (in memory, or chunks: :mod:`interlace.scale`).

    1. θ by BOBYQA with (β, u) from joint PIRLS (the whole fit for ``nAGQ=0``: coarse
       BOBYQA, the checks and a Newton step, as for LMMs); before the gradient search of stage 2,
       EM steps on the joint modes where they apply (:meth:`JointPIRLSDeviance.em_start`);
    2. (θ, β) by BOBYQA on the Laplace (or quadrature) deviance, u from PIRLS given (θ, β),
       then lme4's checks, whose Hessian gives vcov(β̂) (:func:`glmm_vcov`).
    """
    obj = LaplaceDeviance(pirls, nAGQ)
    gradient = nAGQ == 1 and is_auto(method) and obj.has_gradient
    stage1 = JointPIRLSDeviance(pirls, rescale=gradient)
    theta0 = stage1.x0 if start_params is None else np.asarray(start_params, float)
    stage1.warm_start(theta0)
    if nAGQ == 0:  # the fit is stage 1: coarse BOBYQA, the checks, a Newton step (as LMMs)
        opt1 = minimize_checked(stage1, theta0, stage1.lower, optimizer=method, maxfun=maxiter,
                                check_conv=check_conv, warn=check_conv, delta=1e-3)
    else:  # stage 1 starts stage 2; with the gradient search, whose Newton steps end at the optimum
        # wherever it starts, a coarse stage 1 is enough
        tols = pirls.tol, pirls.utol
        if gradient:  # and PIRLS to a coarser stop: 3 iterations per evaluation instead of 4
            pirls.tol, pirls.utol = STAGE1_PIRLS_TOL
        try:
            if gradient and stage1.em_applies and start_params is None:
                # scalar terms, fixed dispersion: EM steps on the joint modes instead of BOBYQA
                t1 = time.perf_counter()
                th1, n1 = stage1.em_start(theta0)
                opt1 = OptSummary("EM steps", theta0, stage1.lower, th1, np.nan, n1, True, "EM steps",
                                  time.perf_counter() - t1)
            elif gradient:
                opt1 = minimize(stage1, theta0, stage1.lower, optimizer=method, maxfun=maxiter,
                                xtol_rel=STAGE1_XTOL, rhoend=STAGE1_XTOL)
            else:
                opt1 = minimize(stage1, theta0, stage1.lower, optimizer=method, maxfun=maxiter)
        finally:
            pirls.tol, pirls.utol = tols
    st1 = stage1.solution(opt1.x, remembered=gradient and nAGQ != 0)  # the gradient search's start
    derivs: dict = {}
    if nAGQ == 0:
        opt, xopt = opt1, opt1.x
        theta, beta = opt1.x, st1.beta
    else:
        x0 = np.concatenate([opt1.x, st1.beta])
        # initial steps: 0.05 for θ, the stage-1 standard errors for β (scale-aware)
        try:
            se1 = np.sqrt(np.diag(pirls.rx_vcov(opt1.x, st1)))
        except InterlaceError:  # a singular information (separation): unit steps
            se1 = np.ones(pirls.p)
        steps = np.concatenate([np.full(obj.n_theta, 0.05), np.clip(se1, 1e-4, 1.0)])
        if gradient:
            # steps on the exact gradient, the checks' Hessian by differences of it, Newton steps;
            # where they fail (PIRLS failing, a Hessian that is not positive definite), lme4's path
            opt = gradient_stage2(obj, x0, pirls, opt1.x, st1, maxiter, check_conv)
            if opt is None:
                spent = opt1.n_evals + obj.n_evals
                fallback = fit_stages(pirls, family, nAGQ, start_params, "bobyqa", maxiter, check_conv)
                fallback.opt.n_evals += spent
                fallback.opt.messages = [*fallback.opt.messages, "the gradient search failed: lme4's BOBYQA stages"]
                return fallback
            derivs.update(opt.derivs)
        else:
            opt = minimize(obj, x0, obj.lower, optimizer=method, maxfun=maxiter, rhobeg=steps)
            opt.messages = check_convergence(obj, opt.x, obj.lower, opt.converged, opt.message,
                                             warn=check_conv, derivs_out=derivs, delta=1e-3)
        opt.n_evals += opt1.n_evals
        xopt = opt.x
        theta, beta = obj.split(xopt)
    known = obj.remembered(xopt) if nAGQ != 0 else None  # the gradient search's last points
    if known is not None:
        objective, st = known
    else:
        st = pirls.run(theta, beta, joint=nAGQ == 0)
    warn_fit_problems(family, st, opt)
    if known is None:
        objective = stage1(xopt) if nAGQ == 0 else pirls.laplace(st) if nAGQ == 1 else obj(xopt)
    vcov = glmm_vcov(nAGQ, theta, st, derivs, pirls)
    return StagesFit(np.asarray(theta, float), np.asarray(beta, float), st, objective, vcov, opt)


def gradient_stage2(obj: LaplaceDeviance, x0: np.ndarray, pirls: PIRLS, theta1: np.ndarray, st1: PIRLSState,
                    maxiter: int | None, warn: bool) -> OptSummary | None:
    """Stage 2 on the exact gradient (``optimizer="auto"``): :func:`~interlace.optimize.gradient.preconditioned_search`
    in the coordinates of :meth:`LaplaceDeviance.preconditioner` (stage 1's PIRLS information) from stage 1's
    answer, the checks' Hessian by forward differences of the gradient, Newton steps to the optimum,
    and lme4's verdicts (in ``opt.messages``; the derivatives in ``opt.derivs``).

    A θ near its bound of 0 goes on through :func:`~interlace.optimize.minimize_checked`'s gradient
    path (probes of the boundary).  Returns None when the search or the Newton step fails (PIRLS
    failing, the Hessian not positive definite): the caller then runs lme4's BOBYQA stages.
    """
    n0 = obj.n_evals
    t0 = time.perf_counter()
    try:
        C = obj.preconditioner(x0, pirls.rx_vcov(theta1, st1))
    except InterlaceError:
        C = None
    pre = None if C is None else preconditioned_search(obj.value_and_gradient, x0, C, obj.lower, obj.n_theta, maxiter)
    if pre is None or not (pre.converged and np.isfinite(pre.fmin)):
        return None
    nth = obj.n_theta
    if np.any((obj.lower[:nth] == 0) & (pre.x[:nth] < 1e-4)):
        opt = minimize_checked(obj, pre.x, obj.lower, optimizer=GRADIENT_OPTIMIZER, maxfun=maxiter,
                               check_conv=True, warn=warn, delta=1e-3, value_and_grad=obj.value_and_gradient)
        if not opt.derivs or not np.isfinite(opt.fmin):
            return None
    else:
        opt = OptSummary(GRADIENT_OPTIMIZER, x0, obj.lower, pre.x, pre.fmin, 0, True, pre.message, 0.0)
        d = gradient_derivatives(obj.value_and_gradient, opt.x, obj.lower)
        if d is None or not newton_steps(obj.value_and_gradient, opt, obj.lower, None, d):
            return None
        record_verdicts(opt, obj.lower, d, warn)
    opt.x0, opt.n_evals = x0, obj.n_evals - n0
    opt.seconds = time.perf_counter() - t0
    return opt


def warn_fit_problems(family: GLMFamily, st: PIRLSState, opt: OptSummary) -> None:
    """glm's separation warnings and a non-converged PIRLS, as messages and warnings."""
    msgs = []
    eps = 10 * np.finfo(float).eps
    if not st.converged:
        msgs.append(f"PIRLS did not converge at the optimum ({st.iterations} iterations)")
    low, high = st.point.extremes(eps)
    if family.name == "binomial" and low + high:
        msgs.append("fitted probabilities numerically 0 or 1 occurred (complete or quasi-complete "
                    "separation): estimates and SEs of the affected fixed effects are unreliable")
    elif family.name in ("poisson", "negative_binomial") and low:
        msgs.append("fitted rates numerically 0 occurred")
    for m in msgs:
        warn_user(m, ConvergenceWarning)
    opt.messages = list(opt.messages) + msgs


def glmm_vcov(nAGQ: int, theta: np.ndarray, st: PIRLSState, derivs: dict, pirls: PIRLS) -> np.ndarray:
    """Hessian-based vcov of β (lme4's default), falling back to the PIRLS factor (NaN when it is singular)."""
    p, nth = pirls.p, pirls.re.n_theta
    if nAGQ > 0 and derivs:
        free, H = derivs["free"], derivs["hessian"]
        beta_pos = np.searchsorted(free, np.arange(nth, nth + p))  # β are never on a bound
        try:
            V = np.linalg.inv(0.5 * H)
            Vb = V[np.ix_(beta_pos, beta_pos)]
            if np.all(np.linalg.eigvalsh(0.5 * (Vb + Vb.T)) > 0):
                return 0.5 * (Vb + Vb.T)
        except np.linalg.LinAlgError:
            pass
        warn_user("variance-covariance matrix computed from finite-difference Hessian is not "
                  "positive definite: falling back to var-cov estimated from RX", ConvergenceWarning)
    try:
        return pirls.rx_vcov(theta, st)
    except InterlaceError:
        warn_user("the information matrix of the fixed effects is singular at the estimate (complete "
                  "separation, or a covariate with no information left): their standard errors are not "
                  "available (NaN)", ConvergenceWarning)
        return np.full((p, p), np.nan)


def default_family(family: Any) -> Any:
    """``family``, or binomial with lme4's-default ``FutureWarning`` when it is None."""
    if family is None:
        warn_user("no family given: binomial is assumed (lme4's glmer assumes gaussian, which is "
                  "interlace.fit); pass family='binomial' — a future version will require family=", FutureWarning)
        return "binomial"
    return family


def check_glm_response(y: np.ndarray, family: GLMFamily, name: str = "the response") -> None:
    """Refuse responses outside the family's support (negative counts, non-positive Gamma values, ...);
    warn on non-integer counts, as R does."""
    fam = family.name
    if fam in ("poisson", "negative_binomial") and np.any(y < 0):
        raise DataError(f"{fam} response must be non-negative counts (found {y[y < 0][0]:g})")
    if fam in ("poisson", "negative_binomial"):
        frac = np.abs(y - np.round(y)) > 1e-7 * np.maximum(1.0, np.abs(y))  # R's dpois/dnbinom check
        if np.any(frac):
            warn_user(f"non-integer counts in the {fam} response {name!r} (e.g. {y[frac][0]:g}): its "
                      "likelihood is for whole numbers (R warns 'non-integer x')", DataWarning)
    if fam in ("gamma", "inverse_gaussian") and np.any(y <= 0):
        raise DataError(f"{fam} response must be positive (found {y[y <= 0][0]:g})")
    if fam == "binomial" and np.any((y < 0) | (y > 1)):
        raise DataError("binomial response must be 0/1 or a proportion in [0, 1]")
