"""Minimization with an exact gradient: L-BFGS-B, lme4's checks from the exact gradient and a
Hessian by differences of it, Newton steps.

:func:`minimize_gradient` is plain L-BFGS-B on ``x -> (f, ∇f)`` (the CLMM's Laplace
approximation, :mod:`interlace.objective.clmm`); :func:`gradient_derivatives` gives the
checks' gradient and Hessian from the exact gradient for both families.

:func:`minimize_with_gradient` is :func:`~interlace.optimize.checks.minimize_checked`'s path when
the criterion offers ``value_and_grad(x) -> (f, g)`` (the LMM profiled deviance and REML
criterion, :mod:`interlace.objective.lmm_gradient`):

1. scipy's L-BFGS-B from the start (MIVQUE0 for LMMs) within the bounds, one factorization
   per evaluation giving the criterion and its gradient;
2. the checks' derivatives (:func:`gradient_derivatives`): the exact gradient over the
   parameters off the boundary and a Hessian by forward differences of it, ``n`` gradient
   evaluations (lme4's finite differences of the criterion take ``1 + 2n + 2n(n − 1)``);
3. Newton steps ``x − H⁻¹g`` while they are refinements and the criterion does not grow,
   the gradient of the verdict being the exact one at the final point.

When L-BFGS-B does not report success or the Newton step is refused, BOBYQA runs from its
answer with lme4's tolerance (as :func:`minimize_checked` does after a coarse run), so the
answer is never worse than BOBYQA's.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import scipy.optimize

from .optimizers import GRADIENT_OPTIMIZER, OptSummary

__all__ = ["GRADIENT_OPTIMIZER", "HANDOVER_STEP", "HESSIAN_STEP", "NEGLIGIBLE_STEP", "UNEVALUATED_STEP", "ValueAndGrad",
           "at_upper", "free_indices", "preconditioned_search",
           "gradient_derivatives", "minimize_gradient", "minimize_with_gradient", "newton_steps"]


def at_upper(x: npt.ArrayLike, upper: npt.ArrayLike | None, rtol: float = 1e-6) -> np.ndarray:
    """Which parameters sit at their finite upper bound (within ``rtol`` of it)."""
    x = np.asarray(x, float)
    if upper is None:
        return np.zeros(x.shape, bool)
    upper = np.asarray(upper, float)
    finite = np.isfinite(upper)
    bound = np.where(finite, upper, 0.0)
    return finite & (x >= bound - rtol * np.maximum(np.abs(bound), 1.0))

def free_indices(x: np.ndarray, lower: np.ndarray, upper: npt.ArrayLike | None, tol_singular: float) -> np.ndarray:
    """The parameters off the boundary: not within ``tol_singular`` of a lower bound of 0, nor at
    their finite upper bound (the checks' derivatives are taken over these)."""
    on_bound = (np.asarray(lower) == 0) & (x < tol_singular)
    if upper is not None:
        on_bound |= at_upper(x, upper)
    return np.flatnonzero(~on_bound)


#: Relative step of the forward differences of the gradient (the Hessian of the checks).
HESSIAN_STEP = 1e-5

ValueAndGrad = Callable[[np.ndarray], "tuple[float, np.ndarray | None]"]


def gradient_derivatives(value_and_grad: ValueAndGrad, x: np.ndarray, lower: np.ndarray,
                         upper: np.ndarray | None = None, tol_singular: float = 1e-4,
                         g0: np.ndarray | None = None, delta: float = HESSIAN_STEP,
                         central: bool = False, pair: tuple[np.ndarray, np.ndarray] | None = None) -> dict | None:
    """The exact gradient and a Hessian by forward differences of it, over the parameters off the boundary.

    The boundary is that of :func:`~interlace.optimize.checks.free_derivatives`.  Column j
    of the Hessian is ``(g(x + h e_j) − g(x)) / h`` with ``h = delta · max(1, |x_j|)``
    (backwards at an upper bound), symmetrized: ``n`` gradient evaluations; with ``central``,
    ``(g(x + h e_j) − g(x − h e_j)) / 2h`` at ``2n`` (the CLMM's standard errors come from
    this Hessian, so they take the more accurate differences).

    ``pair`` = ``(s, y)``, a search's last step from x and the change of the exact gradient over it
    (``y ≈ H s``, to ``½ T[s, s]``): one column fewer is differenced, the one along which s moves
    most (relative to ``1 + |x|``), and it is solved from ``H s = y`` and the other columns
    (:func:`minimize_with_gradient` passes a step below :data:`SECANT_STEP`, where the column is
    exact to ~|s|/|x|, enough for the Newton steps and the checks' verdicts).  Ignored with
    ``central``, or when s moves a parameter on the boundary.

    Returns
    -------
    dict or None
        As :func:`~interlace.optimize.checks.free_derivatives` (``free``, ``gradient``,
        ``hessian``); None when the criterion gave no gradient.
    """
    x = np.asarray(x, float)
    idx = free_indices(x, lower, upper, tol_singular)
    if not idx.size:
        return {"free": idx}
    if g0 is None:
        g0 = value_and_grad(x)[1]
        if g0 is None:
            return None
    n = idx.size
    H = np.empty((n, n))
    solved = -1
    if pair is not None and not central and n > 1:
        ps, py = np.asarray(pair[0], float), np.asarray(pair[1], float)
        off = np.ones(x.size, bool)
        off[idx] = False
        rel = np.abs(ps[idx]) / (1.0 + np.abs(x[idx]))
        if not np.any(ps[off]) and np.all(np.isfinite(py)) and rel.max(initial=0.0) > 0:
            solved = int(np.argmax(rel))
    for a, i in enumerate(idx):
        if a == solved:
            continue
        h = delta * max(1.0, abs(x[i]))
        if upper is not None and x[i] + h > upper[i]:
            h = -h
        xp = x.copy()
        xp[i] += h
        gp = value_and_grad(xp)[1]
        if gp is None:
            return None
        if central:
            xm = x.copy()
            xm[i] -= h
            gm = value_and_grad(xm)[1]
            if gm is None:
                return None
            H[:, a] = (gp[idx] - gm[idx]) / (2 * h)
        else:
            H[:, a] = (gp[idx] - g0[idx]) / h
    if solved >= 0 and pair is not None:
        ps, py = np.asarray(pair[0], float)[idx], np.asarray(pair[1], float)[idx]
        rest = np.arange(n) != solved
        H[:, solved] = (py - H[:, rest] @ ps[rest]) / ps[solved]
    with np.errstate(invalid="ignore"):
        H = 0.5 * (H + H.T)
    return {"free": idx, "gradient": np.asarray(g0, float)[idx], "hessian": H}


class _BudgetSpent(Exception):
    """Raised by :class:`_Counted` when the evaluation budget is spent (L-BFGS-B's own
    ``maxfun`` is checked only between iterations)."""


class _HandedOver(Exception):
    """Raised by :func:`minimize_with_gradient`'s callback when the Newton steps will finish from the iterate."""


class _Counted:
    """``value_and_grad`` with a count and the best point seen (its value and gradient)."""

    def __init__(self, value_and_grad: ValueAndGrad, maxfun: int) -> None:
        self.vg = value_and_grad
        self.maxfun = maxfun
        self.n = 0
        self.best: tuple[float, np.ndarray, np.ndarray | None] = (np.inf, np.zeros(0), None)
        self.last: tuple | None = None
        self.previous: tuple | None = None  # the evaluation before ``last``

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        x = np.array(x, float)
        if self.last is not None and np.array_equal(x, self.last[0]):  # L-BFGS-B's first call repeats the probe
            f, g = self.last[1], self.last[2]
        else:
            if self.n >= self.maxfun:
                raise _BudgetSpent
            self.n += 1
            f, g = self.vg(x)
            self.previous, self.last = self.last, (x, f, g)
        if not np.isfinite(f) or g is None or not np.all(np.isfinite(g)):
            return 1e100, np.zeros_like(x)
        if f < self.best[0]:
            self.best = (float(f), x, np.asarray(g, float))
        return float(f), np.asarray(g, float)


def minimize_gradient(fun_grad: ValueAndGrad, x0: npt.ArrayLike, lower: npt.ArrayLike,
                      upper: npt.ArrayLike | None = None, maxfun: int | None = None,
                      ftol: float = 1e-14, gtol: float = 1e-8) -> OptSummary:
    """Minimize by L-BFGS-B on an exact gradient, within ``lower <= x <= upper``.

    Points where the objective is not finite (thresholds out of order) are reported to
    L-BFGS-B as a very large value, so its line search backs off.

    Parameters
    ----------
    fun_grad : callable
        ``x -> (f, ∇f)``.
    x0, lower, upper : array-like
        Start and bounds (``-inf`` / ``inf`` for none).
    maxfun : int, optional
        Evaluation budget (default 1000).
    ftol, gtol : float
        L-BFGS-B's relative reduction and projected-gradient tolerances.  At the default
        (tight) values the run usually ends when the line search can no longer lower the
        criterion, i.e. at the optimum to the objective's rounding; that end counts as
        converged when the projected gradient is below 1e-3.

    Returns
    -------
    OptSummary
        At the best point seen (a failed line search may end elsewhere).
    """
    t0 = time.perf_counter()
    x0 = np.asarray(x0, float)
    lower = np.asarray(lower, float)
    up: np.ndarray = np.full(x0.shape, np.inf) if upper is None else np.asarray(upper, float)
    maxfun = 1000 if maxfun is None else int(maxfun)
    vg = _Counted(fun_grad, maxfun)
    bounds = [(lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None) for lo, hi in zip(lower, up)]
    try:
        res = scipy.optimize.minimize(vg, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                      options={"maxfun": maxfun, "ftol": ftol, "gtol": gtol, "maxcor": 20})
        ok, message = bool(res.success), str(res.message)
        x, fmin = np.asarray(res.x, float), float(res.fun)
    except _BudgetSpent:
        ok, message = False, "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT"
        x, fmin = x0, np.inf
    fbest, xbest, gbest = vg.best
    if gbest is not None and fbest <= fmin:
        x, fmin = xbest, fbest
        if not ok:
            pg = np.where(((x <= lower) & (gbest > 0)) | ((x >= up) & (gbest < 0)), 0.0, gbest)
            ok = bool(np.max(np.abs(pg), initial=0.0) <= 1e-3) and "ABNORMAL" in message.upper()
    x = np.minimum(np.maximum(x, lower), up)
    return OptSummary("L-BFGS-B (exact gradient)", x0, lower, x, fmin, vg.n, ok, message,
                      time.perf_counter() - t0)


#: A Newton step below this (relative to 1 + |x|) is not worth another one (:func:`newton_steps`).
NEGLIGIBLE_STEP = 1e-8
#: After a Newton step, the next one below this (relative) is taken without an evaluation: from an exact
#: gradient and a Hessian exact to ~1e-5 it lands within ~1e-11 of the optimum (:func:`newton_steps`)
UNEVALUATED_STEP = 1e-6


def newton_steps(value_and_grad: ValueAndGrad, opt: OptSummary, lower: np.ndarray, upper: np.ndarray | None,
                 derivs: dict, max_steps: int = 3) -> bool:
    """Newton steps on the free parameters with the checks' Hessian and the exact gradient.

    A step is taken when H is positive definite, the step is a refinement (below
    1e-3 (1 + |x|)), stays within the bounds and the criterion does not grow beyond its
    rounding; after it ``derivs["gradient"]`` is the exact gradient at the new point.
    Steps repeat while the previous one moved x by more than :data:`NEGLIGIBLE_STEP`
    relative and the next one, predicted from that gradient, would too; a next step below
    :data:`UNEVALUATED_STEP` is taken on the quadratic model (its value and gradient
    predicted, as :func:`~interlace.optimize.checks.newton_polish`'s chord step); ``opt`` is
    updated in place (``n_evals`` counts the evaluated steps).

    Returns
    -------
    bool
        Whether a step was taken.
    """
    if "hessian" not in derivs:
        return False
    idx, H = derivs["free"], derivs["hessian"]
    if not np.all(np.isfinite(H)):
        return False
    try:
        c = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return False
    taken = False
    for _ in range(max_steps):
        g = derivs["gradient"]
        step = np.linalg.solve(c.T, np.linalg.solve(c, g))
        x = np.array(opt.x, float)
        if np.any(np.abs(step) > 1e-3 * (1.0 + np.abs(x[idx]))):
            break
        if taken and np.all(np.abs(step) <= NEGLIGIBLE_STEP * (1.0 + np.abs(x[idx]))):
            break  # the exact gradient after a step predicts no move worth an evaluation
        x[idx] -= step
        if np.any(x < lower) or (upper is not None and np.any(x > upper)):
            break
        if taken and np.all(np.abs(step) <= UNEVALUATED_STEP * (1.0 + np.abs(x[idx]))):
            # from an exact gradient after a Newton step, the next is below the criterion's resolution:
            # taken on the quadratic model (value and gradient predicted), as the chord step after BOBYQA
            opt.x, opt.fmin = x, opt.fmin - 0.5 * float(g @ step)
            derivs["gradient"] = g - H @ step
            break
        f, gfull = value_and_grad(x)
        opt.n_evals += 1
        if gfull is None or not np.isfinite(f) or f > opt.fmin + 1e-11 * max(1.0, abs(opt.fmin)):
            break
        opt.x, opt.fmin = x, min(float(f), opt.fmin)
        derivs["gradient"] = np.asarray(gfull, float)[idx]
        taken = True
        # with a Hessian exact to ~1e-5 the next step would be ~1e-5 of this one: below 1e-13
        if np.all(np.abs(step) <= NEGLIGIBLE_STEP * (1.0 + np.abs(x[idx]))):
            break
    opt.polished = opt.polished or taken
    return taken


#: L-BFGS-B's tolerance on the projected gradient in :func:`minimize_with_gradient`, unscaled and
#: in scaled variables (where ``½ |g|²`` estimates the decrease left to the Newton steps).
GTOL = 1e-4
SCALED_GTOL = 1e-3

#: :func:`minimize_with_gradient` (with scales) hands over to the checks' Hessian and Newton steps once the
#: scaled-gradient step ``s²|∇f|`` is below this, relative to ``1 + |x|``: a tenth of the Newton steps' bound
#: (:data:`~interlace.optimize.stencil.NEWTON_HANDOVER`), as that step underestimates the Newton step up to ~5×
HANDOVER_STEP = 1e-4

#: :func:`minimize_with_gradient` (with scales): the inverse of the fraction of the scaled-gradient step
#: that L-BFGS-B's first step takes (measured: InstEval 3θ 6 → 5 evaluations, 4θ 12 → 11, crossed slopes
#: 200k 11 → 10 with the hand-over; the whole step, 1: 8, 10 and 9)
FIRST_STEP_FRACTION_INV = 4.0

#: Steps of the probes off a lower bound of 0 (:func:`_boundary_probe`), and how many restarts they may cause.
BOUNDARY_STEP = 1e-3
BOUNDARY_PROBE = 0.05
MAX_BOUNDARY_RESTARTS = 3


def _boundary_probe(vg: _Counted, lower: np.ndarray, upper: np.ndarray,
                    mirror: Callable[[np.ndarray, int], np.ndarray | None] | None = None) -> np.ndarray | None:
    """A point off the boundary from which the criterion decreases, or None.

    The profiled criterion is even in a scalar term's θ, so its derivative at θ = 0 is 0:
    a gradient method that lands on (or starts at) the bound cannot see whether moving
    off it helps.  Each parameter at (within 1e-4 of) a lower bound of 0 is probed twice:
    at :data:`BOUNDARY_STEP`, where the sign of its exact derivative gives the curvature
    at 0 (negative: 0 is a maximum along it), and at :data:`BOUNDARY_PROBE`, where a lower
    value finds a minimum beyond a bump (lme4's BOBYQA samples its first trust region
    likewise).  A diagonal entry of a template with entries below it in its column is also
    probed from ``mirror(x, k)`` (that column negated: the same criterion, the slope in θ_k
    of the other sign).  At most two (four) evaluations per parameter on the boundary.
    """
    f0, x0, _ = vg.best
    at0 = np.flatnonzero((lower == 0) & (x0 < 1e-4))  # on the bound, or where its gradient is ~0 too
    for k in at0:
        starts = [x0]
        m = mirror(x0, int(k)) if mirror is not None else None
        if m is not None:
            starts.append(m)
        for base, h in [(b, h) for b in starts for h in (BOUNDARY_STEP, BOUNDARY_PROBE)]:
            x = base.copy()
            x[k] = min(h, upper[k])
            try:
                f, g = vg(x)
            except _BudgetSpent:
                return None
            if f < f0 - 1e-10 * max(1.0, abs(f0)) or (h == BOUNDARY_STEP and f <= f0 + 1e-12 * max(1.0, abs(f0))
                                                      and g[k] < -1e-9 * max(1.0, abs(f0))):
                return x
    return None


#: :func:`minimize_with_gradient` after a hand-over: the search's previous step, when below this relative
#: to ``1 + |x|``, gives one column of the checks' Hessian (:func:`gradient_derivatives`' ``pair``)
SECANT_STEP = 1e-3


def _secant_pair(vg: _Counted, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The step from x to the evaluation before it and the change of the gradient over it, when below
    :data:`SECANT_STEP` (else None)."""
    if vg.last is None or vg.previous is None or not np.array_equal(vg.last[0], x):
        return None
    xp, fp, gp = vg.previous
    if gp is None or not np.isfinite(fp):
        return None
    s = np.asarray(xp, float) - x
    if not np.any(s) or np.any(np.abs(s) > SECANT_STEP * (1.0 + np.abs(x))):
        return None
    return s, np.asarray(gp, float) - g


def minimize_with_gradient(fun: Callable[[np.ndarray], float], value_and_grad: ValueAndGrad, x0: npt.ArrayLike,
                           lower: npt.ArrayLike, upper: npt.ArrayLike | None = None, maxfun: int | None = None,
                           check_conv: bool = True,
                           mirror: Callable[[np.ndarray, int], np.ndarray | None] | None = None,
                           scale: Callable[[np.ndarray], np.ndarray] | None = None
                           ) -> tuple[OptSummary | None, dict | None]:
    """L-BFGS-B with the analytic gradient, then the checks' derivatives and Newton steps.

    Parameters
    ----------
    fun : callable
        The criterion (used only by the BOBYQA fallback).
    value_and_grad : callable
        ``x -> (f, g)`` from one factorization; ``g`` may be None (no gradient at this
        size), in which case nothing is run and ``(None, None)`` is returned.
    x0, lower, upper
        Start and bounds.
    maxfun : int, optional
        Evaluation budget of L-BFGS-B (default ``max(1000, 100 n²)``).
    check_conv : bool
        Compute the checks' derivatives and take the Newton steps.
    mirror : callable, optional
        ``(x, k) -> x'`` with the same criterion (see :func:`_boundary_probe`).
    scale : callable, optional
        ``x0 -> s``: L-BFGS-B searches over ``x / s`` (s > 0, best powers of two so that the
        change of variables is exact), with ``s_k`` about the inverse square root of the
        criterion's curvature in ``x_k``; its first, gradient step is then about a Newton step
        instead of one of length ``|∇f|``.  The stopping tolerance on the projected gradient
        is taken in the scaled variables.

    Returns
    -------
    (OptSummary, dict or None)
        The summary (``n_evals``: the optimizer's evaluations of criterion and gradient,
        the Newton steps included; the checks' own are not counted, as in lme4) and the
        checks' derivatives (None without ``check_conv``).  The summary's ``converged``
        is False when L-BFGS-B did not report success or a Newton step was refused: the
        caller then runs BOBYQA from ``x``.
    """
    lower = np.asarray(lower, float)
    n = np.size(x0)
    up: np.ndarray = np.full(n, np.inf) if upper is None else np.asarray(upper, float)
    start: np.ndarray = np.minimum(np.maximum(np.asarray(x0, float), lower), up)
    t0 = time.perf_counter()
    maxfun = maxfun or max(1000, 100 * n * n)
    vg = _Counted(value_and_grad, maxfun)
    vg(start)
    if vg.last is None or vg.last[2] is None:  # no gradient from this criterion (at this size)
        return None, None
    s = np.ones(n) if scale is None else np.asarray(scale(start), float)
    gtol = GTOL if scale is None else SCALED_GTOL
    c = 1.0
    if scale is not None:
        # L-BFGS-B's first step has unit length; a uniform factor c (a power of two) makes it about a quarter
        # of the step −s²∇f (a Newton step where the scales fit the curvature; it overshoots where they
        # underestimate it), which its line search extrapolates from
        gz = float(np.linalg.norm(np.asarray(vg.last[2], float) * s))
        if np.isfinite(gz) and gz > FIRST_STEP_FRACTION_INV:
            c = 2.0 ** round(np.log2(gz / FIRST_STEP_FRACTION_INV))
    sc = s * c

    def scaled(y: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = vg(y * sc)
        return f, g * sc

    def handover(y: np.ndarray) -> None:
        """Stop the search once the scaled-gradient step from this iterate is below :data:`HANDOVER_STEP`."""
        x = np.asarray(y, float) * sc
        if vg.last is None or not np.array_equal(vg.last[0], x):
            return
        g = np.asarray(vg.last[2], float)
        pg = np.where(((x <= lower) & (g > 0)) | ((x >= up) & (g < 0)), 0.0, g)
        if np.max(s * s * np.abs(pg) / (1.0 + np.abs(x)), initial=0.0) <= HANDOVER_STEP:
            raise _HandedOver

    bounds = [(lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None)
              for lo, hi in zip(lower / sc, up / sc)]

    def search(x: np.ndarray, early: bool) -> tuple[int, bool, str, bool]:
        """L-BFGS-B from x (with the probes off the boundary): (status, success, message, handed over)."""
        status, success, message, handed = 0, False, "", False
        for _ in range(1 + MAX_BOUNDARY_RESTARTS):
            # stop when the criterion changes by < 1e-12 relative or the projected gradient is < gtol
            # (or, with ``early``, the Newton steps will finish from here): L-BFGS-B's last iterations only creep
            try:
                res = scipy.optimize.minimize(scaled, x / sc, jac=True, method="L-BFGS-B", bounds=bounds,
                                              callback=handover if early else None,
                                              options={"maxfun": maxfun - vg.n, "ftol": 1e-12, "gtol": gtol * c})
                status, success, message, handed = int(res.status), bool(res.success), str(res.message), False
            except _BudgetSpent:
                return 1, False, "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT", False
            except _HandedOver:
                status, success, handed = 0, True, True
                message = f"scaled-gradient step below {HANDOVER_STEP:g} (1 + |x|): Newton steps finish"
            if status == 1:
                break
            probe = _boundary_probe(vg, lower, up, mirror)
            if probe is None:
                break
            x = probe
        return status, success, message, handed

    early = scale is not None and check_conv
    status, success, message, handed = search(start, early)
    fbest, xbest, gbest = vg.best
    if gbest is None:  # never a finite value with a gradient
        fbest, xbest = vg.last[1], vg.last[0]
    opt = OptSummary(GRADIENT_OPTIMIZER, start, lower, np.minimum(np.maximum(xbest, lower), up), fbest, vg.n,
                     success, message, 0.0)
    derivs = None
    if check_conv and gbest is not None:
        derivs = gradient_derivatives(value_and_grad, opt.x, lower, None if upper is None else up, g0=gbest,
                                      pair=_secant_pair(vg, opt.x, gbest) if handed else None)
        if status == 1:  # the evaluation budget is spent: no steps, the verdict says so
            pass
        elif derivs is not None and "hessian" in derivs:
            steps_ok = newton_steps(value_and_grad, opt, lower, None if upper is None else up, derivs)
            if not steps_ok and handed:  # handed over too early: the search goes on to its own stop
                status, success, message, handed = search(opt.x, False)
                fbest, xbest, gbest = vg.best
                opt = OptSummary(GRADIENT_OPTIMIZER, start, lower, np.minimum(np.maximum(xbest, lower), up), fbest,
                                 vg.n, success, message, 0.0)
                derivs = gradient_derivatives(value_and_grad, opt.x, lower, None if upper is None else up, g0=gbest)
                steps_ok = status != 1 and derivs is not None and "hessian" in derivs and newton_steps(
                    value_and_grad, opt, lower, None if upper is None else up, derivs)
            if not steps_ok:
                opt.converged = False
                opt.message = f"{opt.message}; Newton step refused"
    opt.seconds = time.perf_counter() - t0
    return opt, derivs


#: Chord steps of :func:`preconditioned_search` before L-BFGS-B, and the relative decrease of the
#: criterion below which they have settled
MAX_CHORD_STEPS = 6
CHORD_SETTLED = 1e-9


def preconditioned_search(value_and_grad: ValueAndGrad, x0: np.ndarray, C: np.ndarray, lower: np.ndarray,
                          n_bounded: int, maxfun: int | None = None) -> OptSummary | None:
    """Minimize in the coordinates ``x = x0 + C z`` where ``CᵀHC`` is near the identity: chord steps
    ``z − ∇_z f`` (Newton steps with the approximate Hessian ``(CCᵀ)⁻¹``) while they lower the criterion,
    then L-BFGS-B if they have not settled.

    In the original coordinates a search creeps along the valleys of correlated parameters (a
    GLMM's fixed effects: VerbAgg 45 evaluations); in these it takes a few.  The first
    ``n_bounded`` parameters are bounded below by ``lower`` (``C`` diagonal there), the others free.

    Returns
    -------
    OptSummary or None
        In the original coordinates; None when the criterion is not finite at the answer.
    """
    x0 = np.asarray(x0, float)
    S = np.diag(C)[:n_bounded]
    lower_z = np.concatenate([(lower[:n_bounded] - x0[:n_bounded]) / S, np.full(x0.size - n_bounded, -np.inf)])

    def vg(z: np.ndarray) -> tuple[float, np.ndarray | None]:
        f, g = value_and_grad(x0 + C @ z)
        return f, None if g is None else C.T @ g

    # L-BFGS-B's first step would be of unit length, far from the Newton step's
    z = np.zeros(x0.size)
    f, g = vg(z)
    n_steps = 0
    for _ in range(MAX_CHORD_STEPS):
        if g is None or not np.isfinite(f):
            break
        z_new = np.maximum(z - g, lower_z)
        f_new, g_new = vg(z_new)
        if not (np.isfinite(f_new) and f_new < f and g_new is not None):
            break
        n_steps += 1
        # settled: this step, or the next one predicted from its gradient (½|∇_z f|² with the Hessian ≈ I),
        # lowers the criterion by less than CHORD_SETTLED relative
        settled = min(f - f_new, 0.5 * float(g_new @ g_new)) < CHORD_SETTLED * max(1.0, abs(f))
        z, f, g = z_new, f_new, g_new
        if settled:  # Newton steps with the exact Hessian finish from here
            return OptSummary("chord steps", x0, lower, np.maximum(x0 + C @ z, lower), float(f), n_steps,
                              True, "chord steps settled", 0.0)
    res = minimize_gradient(vg, z, lower_z, maxfun=maxfun or 200, ftol=1e-12, gtol=1e-6)
    if not np.isfinite(res.fmin):
        return None
    res.x = np.maximum(x0 + C @ res.x, lower)
    res.x0 = x0
    return res
