"""Newton's method on finite-difference derivatives: the search of ``optimizer="auto"`` where one
evaluation is dear, there are few parameters and there is no analytic gradient.

BOBYQA builds its quadratic model from ``2n + 1`` points and spends most of its evaluations
shrinking its trust region: on users × items (2 θ, ~0.9 s per evaluation) it takes 28 to reach
a relative θ tolerance of 1e-4 from the moment start, and lme4's checks then compute the
gradient and Hessian at its answer anyway (``1 + 2n + n(n − 1)`` evaluations).  Taking Newton
steps with those same derivatives from the start converges quadratically: two or three
iterations of 7 evaluations (the centre is the previous iterate's accepted value) reach the
point where the checks' own Newton step (:func:`~interlace.optimize.checks.newton_polish`) is
a refinement, and the fitting loop continues exactly as after BOBYQA.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .optimizers import _NEWTON_OPTIMIZER, OptSummary

__all__ = ["NEWTON_OPTIMIZER", "NEWTON_MAX_PARAMETERS", "newton_search"]

#: The name :class:`~interlace.optimize.OptSummary` records for this search; refits given it take
#: ``"auto"``'s path (:func:`~interlace.optimize.optimizers.is_auto`).
NEWTON_OPTIMIZER = _NEWTON_OPTIMIZER
#: Most parameters for which the search is offered: its Hessian costs ``1 + 2n + n(n − 1)``
#: evaluations per iteration, against BOBYQA's ``2n + 1``-point model.
NEWTON_MAX_PARAMETERS = 3
#: Newton iterations before handing over to BOBYQA.
MAX_ITERATIONS = 8
#: Step halvings tried when a full Newton step does not lower the criterion.
MAX_HALVINGS = 4


def newton_search(fun: Callable[[np.ndarray], float], x0: np.ndarray, lower: np.ndarray,
                  derivatives: Callable[[Callable[[np.ndarray], float], np.ndarray], dict],
                  upper: np.ndarray | None = None) -> tuple[OptSummary | None, dict | None, np.ndarray, int]:
    """Newton steps on the checks' finite-difference derivatives until the next step is a refinement.

    Parameters
    ----------
    fun : callable
        The criterion (the last value is remembered: the derivatives' centre is never evaluated twice).
    x0, lower, upper : ndarray
        Start and bounds.
    derivatives : callable
        ``(fun, x) -> {"free", "gradient", "hessian"}`` of ``fun`` at ``x`` over the parameters off
        their bounds (:func:`~interlace.optimize.checks.free_derivatives`).

    Returns
    -------
    (OptSummary or None, dict or None, ndarray, int)
        The search's answer and the derivatives at it, whose Newton step is below
        ``1e-3 (1 + |x|)`` (then the caller's refinement takes it); or ``(None, None, x, k)``
        when Newton does not apply (a parameter on its bound, a Hessian that is not positive
        definite, no decrease along the step, no convergence in :data:`MAX_ITERATIONS`): the
        caller then searches with BOBYQA from ``x``, the best point seen, after ``k`` evaluations.
    """
    t0 = time.perf_counter()
    lower = np.asarray(lower, float)
    up = np.full(lower.size, np.inf) if upper is None else np.asarray(upper, float)
    x = np.minimum(np.maximum(np.asarray(x0, float), lower), up)
    count, memo = [0], {}

    def f(z: np.ndarray) -> float:
        key = np.asarray(z, float).tobytes()
        if key not in memo:
            count[0] += 1
            memo.clear()  # one entry: the last point, the centre of the next stencil once accepted
            memo[key] = float(fun(z))
        return memo[key]

    fx = f(x)
    if not np.isfinite(fx):
        return None, None, x, count[0]
    for _ in range(MAX_ITERATIONS):
        memo.clear()
        memo[x.tobytes()] = fx  # the stencil's centre is the accepted point: not evaluated again
        d = derivatives(f, x)
        idx = d.get("free", np.arange(0))
        g, H = d.get("gradient"), d.get("hessian")
        if idx.size != x.size or g is None or not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
            break
        try:
            c = np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            break
        step = np.linalg.solve(c.T, np.linalg.solve(c, g))
        if np.all(np.abs(step) <= 1e-3 * (1.0 + np.abs(x))):
            opt = OptSummary(NEWTON_OPTIMIZER, np.asarray(x0, float), lower, x, fx, count[0], True,
                             "Newton step below 1e-3 (1 + |x|)", time.perf_counter() - t0)
            return opt, d, x, count[0]
        t, moved = 1.0, False
        for _ in range(MAX_HALVINGS + 1):
            xn = x - t * step
            if np.all(xn >= lower) and np.all(xn <= up):
                fn = f(xn)
                if np.isfinite(fn) and fn < fx:
                    x, fx, moved = xn, fn, True
                    break
            t *= 0.5
        if not moved:
            break
    return None, None, x, count[0]
