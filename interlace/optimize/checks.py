"""lme4-style post-fit checks (singularity, the scaled-gradient convergence test) and the
LMM fitting loop built on them (:func:`minimize_checked`: coarse BOBYQA, then Newton and
chord steps from the checks' derivatives).

* Singular: a θ element with lower bound 0 below ``tol = 1e-4`` (lme4's ``isSingular``).
* Convergence: finite-difference gradient g and Hessian H = UᵀU of the criterion
  at the optimum over the parameters not on the boundary; the fit is flagged when
  ``max(min(|U⁻¹g|, |g|)) > 2e-3`` (lme4's ``check.conv.grad``, which computes
  ``solve(chol(H), g)``), or when H is not positive definite.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..errors import ConvergenceWarning, SingularFitWarning, warn_user
from .gradient import at_upper, free_indices, gradient_derivatives, minimize_with_gradient, newton_steps
from .stencil import Criteria, GroupedCriteria, NewtonOutcome, axis_gradient, newton_search, stencil_derivatives

if TYPE_CHECKING:
    from .optimizers import OptSummary

__all__ = ["is_singular", "finite_diff_derivs", "central_gradient", "free_derivatives", "convergence_messages",
           "warn_messages", "check_convergence", "newton_polish", "minimize_checked", "record_verdicts", "COARSE_XTOL",
           "SINGULAR_MSG",
           "at_upper"]

SINGULAR_MSG = "boundary (singular) fit: see CrossedLMEResult.is_singular"


def is_singular(theta: np.ndarray, lower: np.ndarray, tol: float = 1e-4) -> bool:
    """True if any bounded-below θ is within ``tol`` of its bound (lme4's ``isSingular``)."""
    theta, lower = np.asarray(theta), np.asarray(lower)
    bounded = lower == 0
    return bool(np.any(theta[bounded] < tol))


def finite_diff_derivs(fun: Callable[[np.ndarray], float], x: np.ndarray, delta: float = 1e-4
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient and Hessian of ``fun`` at ``x``.

    The gradient and diagonal are lme4's ``deriv12``; an off-diagonal entry reuses the
    axis points, ``(f(x+δᵢ+δⱼ) − f(x+δᵢ) − f(x+δⱼ) + 2f(x) − f(x−δᵢ) − f(x−δⱼ) + f(x−δᵢ−δⱼ)) / 2δ²``
    (also second-order accurate), so a Hessian costs ``1 + 2n + n(n−1)`` evaluations
    instead of ``1 + 2n + 2n(n−1)``: 13 instead of 19 for three parameters.
    """
    x = np.asarray(x, float)
    n = x.size
    f0 = fun(x)
    g, fp, fm = central_gradient(fun, x, delta)
    H = np.empty((n, n))
    eye = np.eye(n) * delta
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite values are reported by the checks
        for i in range(n):
            H[i, i] = (fp[i] - 2 * f0 + fm[i]) / delta**2
        for i in range(n):
            for j in range(i):
                both = eye[i] + eye[j]
                H[i, j] = H[j, i] = (fun(x + both) - fp[i] - fp[j] + 2 * f0 - fm[i] - fm[j] + fun(x - both)) / (
                    2 * delta**2
                )
    return g, H


def central_gradient(fun: Callable[[np.ndarray], float], x: np.ndarray, delta: float = 1e-4
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central-difference gradient, with the values ``f(x + δeᵢ)`` and ``f(x − δeᵢ)`` it used."""
    x = np.asarray(x, float)
    eye = np.eye(x.size) * delta
    fp = np.array([fun(x + e) for e in eye])
    fm = np.array([fun(x - e) for e in eye])
    with np.errstate(invalid="ignore", over="ignore"):  # inf − inf where the criterion is not finite:
        return (fp - fm) / (2 * delta), fp, fm  # the checks report "unable to evaluate scaled gradient"


def check_convergence(fun: Callable[[np.ndarray], float], x: np.ndarray, lower: np.ndarray, optimizer_ok: bool,
                      optimizer_msg: str,
                      tol_grad: float = 2e-3, tol_singular: float = 1e-4, warn: bool = True,
                      derivs_out: dict | None = None, delta: float = 1e-4) -> list[str]:
    """Run the checks, issue warnings, and return their messages.

    Parameters
    ----------
    fun : callable
        The criterion that was minimized.
    x, lower : ndarray
        Optimum and lower bounds.
    optimizer_ok : bool
        The optimizer's success flag; its message becomes a warning when False.
    derivs_out : dict, optional
        Filled with ``free`` (indices of the parameters off the boundary), ``gradient``
        and ``hessian`` (over those), for callers that need the Hessian (GLMM SEs).
    delta : float
        Finite-difference step (lme4's 1e-4; GLMMs use 1e-3, where the PIRLS
        inner loop leaves ~1e-10 of noise that a smaller step would amplify).
    """
    derivs = free_derivatives(fun, x, lower, tol_singular, delta)
    if derivs_out is not None:
        derivs_out.update(derivs)
    msgs = convergence_messages(x, lower, optimizer_ok, optimizer_msg, derivs, tol_grad, tol_singular)
    if warn:
        warn_messages(msgs)
    return [m for m, _ in msgs]


def free_derivatives(fun: Callable[[np.ndarray], float], x: np.ndarray, lower: np.ndarray, tol_singular: float = 1e-4,
                     delta: float = 1e-4, upper: np.ndarray | None = None, criteria: Criteria | None = None) -> dict:
    """Finite-difference gradient and Hessian over the parameters off the boundary.

    A parameter is on the boundary within ``tol_singular`` of a lower bound of 0, or
    at its (finite) upper bound.  With ``criteria`` (the criterion at many points in one
    pass) the points are evaluated in one call (:func:`~interlace.optimize.stencil.stencil_derivatives`).

    Returns
    -------
    dict
        ``free`` (their indices) and, when there are any, ``gradient`` and ``hessian``.
    """
    x = np.asarray(x, float)
    idx = free_indices(x, lower, upper, tol_singular)
    if not idx.size:
        return {"free": idx}
    if criteria is not None:
        _, g, H = stencil_derivatives(criteria, x, idx, delta)
    else:
        g, H = finite_diff_derivs(_restricted(fun, x, idx), x[idx], delta)
    return {"free": idx, "gradient": g, "hessian": H}


def _restricted(fun, x: np.ndarray, idx: np.ndarray):
    """``fun`` as a function of ``x[idx]`` only, the other entries held at ``x``."""
    x = np.array(x, float)

    def sub(z):
        full = x.copy()
        full[idx] = z
        return fun(full)

    return sub


def convergence_messages(x: np.ndarray, lower: np.ndarray, optimizer_ok: bool, optimizer_msg: str,
                         derivs: dict, tol_grad: float = 2e-3, tol_singular: float = 1e-4) -> list[tuple]:
    """lme4's verdicts from the optimizer's flag, the bounds and :func:`free_derivatives`.

    Returns
    -------
    list of (str, Warning subclass)
    """
    msgs: list[tuple[str, type]] = []
    if not optimizer_ok:
        msgs.append((f"optimizer did not report convergence: {optimizer_msg}", ConvergenceWarning))
    singular = is_singular(x, lower, tol_singular)
    if singular:
        msgs.append((SINGULAR_MSG, SingularFitWarning))
    if "hessian" not in derivs:
        return msgs
    idx, g, H = derivs["free"], derivs["gradient"], derivs["hessian"]
    if not np.all(np.isfinite(H)):
        msgs.append(("unable to evaluate scaled gradient", ConvergenceWarning))
        return msgs
    try:
        c = np.linalg.cholesky(H)  # H = c cᵀ; lme4 scales g by the upper factor: (cᵀ)⁻¹ g
        scgrad = np.linalg.solve(c.T, g)
        mingrad = np.minimum(np.abs(scgrad), np.abs(g))
        k = int(np.argmax(mingrad))
        if mingrad[k] > tol_grad:
            msgs.append((f"Model failed to converge with max|grad| = {mingrad[k]:.6g} "
                         f"(tol = {tol_grad:g}, component {idx[k] + 1})", ConvergenceWarning))
    except np.linalg.LinAlgError:
        if not singular:
            msgs.append(("Model failed to converge: degenerate Hessian with "
                         f"{int(np.sum(np.linalg.eigvalsh(H) <= 0))} negative eigenvalues",
                         ConvergenceWarning))
    return msgs


def warn_messages(msgs: list[tuple]) -> None:
    """Issue :func:`convergence_messages`' verdicts as warnings."""
    for m, cls in msgs:
        warn_user(m, cls)


def newton_polish(fun: Callable[[np.ndarray], float], opt: OptSummary, lower: np.ndarray, derivs: dict,
                  upper: np.ndarray | None = None) -> bool:
    """One Newton step from the optimizer's answer, with the derivatives the checks computed.

    BOBYQA stops when θ moves by less than its tolerance (1e-7 relative), where the
    criterion is flat to ~1e-13: runs that differ only in rounding (rows in another
    order, blocks summed by chunks) then stop up to ~1e-6 apart.  A Newton step on the
    parameters off the boundary, ``x − H⁻¹g`` with the finite-difference g and H of
    :func:`check_convergence`, lands within the difference error (~1e-9) of the
    minimum.  It is taken only when H is positive definite, the step is small (a
    refinement: below 1e-3 (1 + |x|)) and stays within the bounds, and the criterion
    does not grow beyond its rounding; ``opt`` (an OptSummary) is updated in place.

    Returns
    -------
    bool
        Whether the step was taken.
    """
    if not derivs or "hessian" not in derivs:
        return False
    idx, g, H = derivs["free"], derivs["gradient"], derivs["hessian"]
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
        return False
    try:
        c = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return False
    step = np.linalg.solve(c.T, np.linalg.solve(c, g))
    x = np.array(opt.x, float)
    if np.any(np.abs(step) > 1e-3 * (1.0 + np.abs(x[idx]))):  # only a refinement, never a move
        return False
    x[idx] -= step
    if np.any(x < lower) or (upper is not None and np.any(x > upper)):
        return False
    f = float(fun(x))
    # near the minimum the criterion is flat to its rounding (~1e-13 relative): the step is
    # judged by the derivatives, the value only guards against a worse point
    if not np.isfinite(f) or f > opt.fmin + 1e-11 * max(1.0, abs(opt.fmin)):
        return False
    opt.x, opt.fmin, opt.n_evals = x, min(f, opt.fmin), opt.n_evals + 1
    opt.polished = True
    return True


#: BOBYQA's relative θ tolerance before the Newton step of :func:`minimize_checked`
COARSE_XTOL = 1e-4


def minimize_checked(fun: Callable[[np.ndarray], float], x0: npt.ArrayLike, lower: npt.ArrayLike,
                     optimizer: str = "bobyqa", maxfun: int | None = None, options: dict | None = None,
                     check_conv: bool = True, warn: bool = True, delta: float = 1e-4,
                     upper: npt.ArrayLike | None = None,
                     value_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray | None]] | None = None,
                     mirror: Callable[[np.ndarray, int], np.ndarray | None] | None = None,
                     gradient_search: bool = True, gradient_checks: bool = True,
                     criteria: Criteria | None = None, newton: bool = False,
                     scale: Callable[[np.ndarray], np.ndarray] | None = None) -> OptSummary:
    """Minimize, run lme4's checks, and refine by a Newton step: the fitting loop of LMMs.

    With BOBYQA (the default) and no user tolerances, the optimizer stops at a relative
    θ tolerance of :data:`COARSE_XTOL` (1e-4) instead of 1e-7: its last ~25 % of
    evaluations only creep along a flat valley.  The checks' finite-difference gradient
    and Hessian then give a Newton step (:func:`newton_polish`) that lands within ~1e-9
    of the minimum.  When the step is refused (Hessian not positive definite, a step
    that is not small, a worse value), BOBYQA restarts from its answer with the tight
    tolerance and the checks run again, so the answer is never worse than a tight run's.

    Parameters
    ----------
    fun : callable
        The criterion.
    x0, lower : array-like
        Start and lower bounds.
    optimizer, maxfun, options
        As :func:`~interlace.optimize.minimize`.
    check_conv : bool
        Run the checks (without them: one tight optimizer run, as ``minimize``).
    warn : bool
        Issue the checks' verdicts as warnings.
    delta : float
        Finite-difference step of the derivatives (see :func:`check_convergence`).
    upper : array-like, optional
        Upper bounds (parameters at them are left out of the derivatives, as those at 0).
    value_and_grad : callable, optional
        ``x -> (f, g)``, the criterion and its analytic gradient from one evaluation (``g``
        None where there is none).  With ``optimizer="auto"`` the fit then runs
        :func:`~interlace.optimize.gradient.minimize_with_gradient` (L-BFGS-B); with any
        optimizer the checks use the exact gradient and a Hessian by forward differences of
        it (:func:`~interlace.optimize.gradient.gradient_derivatives`, ``n`` gradient
        evaluations) instead of finite differences of the criterion.  ``"auto"`` without a
        gradient is BOBYQA.
    mirror : callable, optional
        ``(x, k) -> x'`` with the same criterion, for the gradient path's probes of a
        parameter on its bound (:func:`~interlace.optimize.gradient.minimize_with_gradient`).

    gradient_search : bool
        Under ``optimizer="auto"``, search with the gradient (L-BFGS-B) when there is one;
        False: BOBYQA searches and the checks use the gradient (the criterion's owner decides,
        e.g. :attr:`~interlace.objective.lmm.LMMDeviance.gradient_pays`).  The recorded name
        ``"L-BFGS-B+analytic"`` always searches with the gradient.
    gradient_checks : bool
        Whether the checks after a BOBYQA search take their derivatives from ``value_and_grad``;
        False: finite differences of the criterion (cheaper where a gradient costs several
        evaluations and the parameters are few; the criterion's owner decides, e.g.
        :attr:`~interlace.objective.lmm.LMMDeviance.gradient_checks_pay`).
    criteria : callable, optional
        ``points (K, n) -> values (K,)``, the criterion at many points in one pass: the
        finite-difference checks then evaluate each stencil in one call, and ``"auto"``
        (without a gradient search, a budget or options) first searches by Newton steps on
        such stencils (:func:`~interlace.optimize.stencil.newton_search`, recorded as
        ``"Newton+finite-differences"``).
    newton : bool
        Under ``"auto"`` without ``criteria`` or a gradient search, search by Newton steps on the
        checks' finite differences all the same, the points of each stencil grouped by their
        leading element (:class:`~interlace.optimize.stencil.GroupedCriteria`): for few
        parameters and dear evaluations (the criterion's owner decides, e.g.
        :attr:`~interlace.objective.lmm.LMMDeviance.newton_pays`).  Either search ends as
        BOBYQA does (the checks' Newton and chord steps); BOBYQA takes over from the best point
        seen where Newton does not apply.
    scale : callable, optional
        ``x0 -> s``, the gradient search's scales of the parameters (see
        :func:`~interlace.optimize.gradient.minimize_with_gradient`).

    Returns
    -------
    OptSummary
        With ``messages`` (the verdicts) and ``n_evals`` counting every evaluation of
        the optimizer runs (the checks' own are not counted, as in lme4).
    """
    from .optimizers import GRADIENT_OPTIMIZER, is_auto, minimize

    lower = np.asarray(lower, float)
    upper = None if upper is None else np.asarray(upper, float)
    vg = value_and_grad
    spent_newton = 0

    def derivatives(x: np.ndarray, searched_with_gradient: bool = False) -> tuple[dict, bool]:
        """The checks' derivatives at x: from the gradient when there is one (and it pays), else differences."""
        if vg is not None and (gradient_checks or searched_with_gradient):
            d = gradient_derivatives(vg, x, lower, upper)
            if d is not None:
                return d, True
        return free_derivatives(fun, x, lower, delta=delta, upper=upper, criteria=criteria), False

    if is_auto(optimizer):
        search = gradient_search or str(optimizer).lower() == GRADIENT_OPTIMIZER.lower()
        optimizer = "bobyqa"
        if (criteria is not None or newton) and check_conv and maxfun is None and not options \
                and not (vg is not None and search):
            found = _newton(fun, criteria, x0, lower, upper, delta)
            if found.opt is not None and found.derivs is not None:
                return record_verdicts(found.opt, lower, found.derivs, warn)
            x0, spent_newton = found.x, found.n_evals  # BOBYQA from Newton's best point, its evaluations counted
        if vg is not None and not options and search:
            gopt, gderivs = minimize_with_gradient(fun, vg, x0, lower, upper, maxfun, check_conv, mirror,
                                                   scale)
            if gopt is not None and (gderivs is not None or not check_conv):
                spent = maxfun is not None and gopt.n_evals >= maxfun
                if gopt.converged or spent:
                    return gopt if gderivs is None else record_verdicts(gopt, lower, gderivs, warn)
                # L-BFGS-B stopped short or the Newton step was refused: BOBYQA from its answer
                tight = minimize(fun, gopt.x, lower, optimizer="bobyqa", rhobeg=0.02, upper=upper,
                                 maxfun=None if maxfun is None else max(maxfun - gopt.n_evals, 1))
                tight.x0, tight.n_evals = gopt.x0, gopt.n_evals + tight.n_evals
                tight.seconds += gopt.seconds
                if gopt.fmin < tight.fmin:
                    tight.x, tight.fmin = gopt.x, gopt.fmin
                if not check_conv:
                    return tight
                d, analytic = derivatives(tight.x, True)
                if analytic:
                    newton_steps(vg, tight, lower, upper, d)
                else:
                    _refine(fun, tight, lower, d, delta, upper, criteria)
                return record_verdicts(tight, lower, d, warn)
    coarse = (check_conv and str(optimizer).lower() in ("bobyqa", "nlopt_bobyqa", "pybobyqa")
              and not (options and {"xtol_rel", "xtol_abs", "ftol_rel", "ftol_abs", "rhoend"} & set(options)))
    opt = minimize(fun, x0, lower, optimizer=optimizer, maxfun=maxfun, options=options, upper=upper,
                   **({"xtol_rel": COARSE_XTOL, "rhoend": 1e-5} if coarse else {}))
    if spent_newton:
        opt.n_evals += spent_newton
    if not check_conv:
        return opt
    derivs, analytic = derivatives(opt.x)
    refined = newton_steps(vg, opt, lower, upper, derivs) if analytic and vg is not None else \
        _refine(fun, opt, lower, derivs, delta, upper, criteria)
    budget_left = maxfun is None or maxfun > opt.n_evals
    if not refined and coarse and "hessian" in derivs and opt.converged and budget_left:
        tight = minimize(fun, opt.x, lower, optimizer=optimizer, options=options, rhobeg=0.02,
                         maxfun=None if maxfun is None else maxfun - opt.n_evals, upper=upper)
        tight.x0, tight.n_evals = opt.x0, opt.n_evals + tight.n_evals
        tight.seconds += opt.seconds
        opt = tight
        derivs, analytic = derivatives(opt.x)
        if analytic and vg is not None:
            newton_steps(vg, opt, lower, upper, derivs)
        else:
            _refine(fun, opt, lower, derivs, delta, upper, criteria)
    return record_verdicts(opt, lower, derivs, warn)


def _newton(fun: Callable[[np.ndarray], float], criteria: Criteria | None, x0: npt.ArrayLike, lower: np.ndarray,
            upper: np.ndarray | None, delta: float) -> NewtonOutcome:
    """:func:`~interlace.optimize.stencil.newton_search` on ``criteria`` (else on ``fun``'s values grouped by
    :class:`~interlace.optimize.stencil.GroupedCriteria`), then the checks' refinement at its answer.

    ``opt`` is None (BOBYQA's business, from ``x``) when the search or the refinement does not apply.
    """
    crit = criteria if criteria is not None else GroupedCriteria(fun)
    scalar = crit.value if isinstance(crit, GroupedCriteria) else fun
    found = newton_search(crit, np.asarray(x0, float), lower, upper, delta)
    if found.opt is None or found.derivs is None:
        return found
    if not _refine(scalar, found.opt, lower, found.derivs, delta, upper, crit):
        return NewtonOutcome(None, None, found.x, found.opt.n_evals)
    if isinstance(crit, GroupedCriteria):
        found.opt.n_evals = crit.n_evals  # every evaluation: the search's stencils are the checks' derivatives
    return found


def record_verdicts(opt: OptSummary, lower: np.ndarray, derivs: dict, warn: bool) -> OptSummary:
    """Record (and issue) lme4's verdicts on ``opt`` from the checks' derivatives (``opt.messages``,
    ``opt.derivs``)."""
    msgs = convergence_messages(opt.x, lower, opt.converged, opt.message, derivs)
    if warn:
        warn_messages(msgs)
    opt.messages = [m for m, _ in msgs]
    opt.derivs = derivs
    return opt


def _refine(fun, opt, lower: np.ndarray, derivs: dict, delta: float = 1e-4, upper: np.ndarray | None = None,
            criteria: Criteria | None = None) -> bool:
    """A Newton step, then the gradient at the new point and, from it, one chord step.

    The checks' verdict then rests on a gradient computed at the final point (for the
    chord step: its quadratic-model prediction, ``g − H·step``).  ``derivs`` is updated.
    """
    if not newton_polish(fun, opt, lower, derivs, upper):
        return False
    idx, H = derivs["free"], derivs["hessian"]
    x = np.array(opt.x, float)
    derivs["gradient"] = (axis_gradient(criteria, x, idx, delta) if criteria is not None
                          else central_gradient(_restricted(fun, x, idx), x[idx], delta)[0])
    if newton_polish(fun, opt, lower, derivs, upper):
        derivs["gradient"] = derivs["gradient"] - H @ (x[idx] - opt.x[idx])
    return True
