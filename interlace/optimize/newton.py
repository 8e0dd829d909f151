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

from .gradient import free_indices
from .optimizers import _NEWTON_OPTIMIZER, OptSummary

__all__ = ["NEWTON_OPTIMIZER", "NEWTON_MAX_PARAMETERS", "GroupedStencil", "newton_search"]

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


class GroupedStencil:
    """The criterion with its values remembered, evaluating finite-difference stencils grouped by θ's
    leading element.

    The derivatives of :func:`~interlace.optimize.checks.free_derivatives` then read every stencil
    point from memory (the same points, the same values, in another order).  The points that
    share the centre's leading element come first, then the others by it: an engine that keeps
    work per leading parameter (the weight-class engine's Gram of the first term,
    :meth:`~interlace.linalg.blocked.BlockedPLS.factor`) forms it for 2 of a 2-θ Hessian's 7
    points instead of 7.
    """

    def __init__(self, fun: Callable[[np.ndarray], float], delta: float) -> None:
        self.fun, self.delta = fun, delta
        self.n_evals = 0
        self._memo: dict[bytes, float] = {}

    def __call__(self, z: np.ndarray) -> float:
        key = np.asarray(z, float).tobytes()
        v = self._memo.get(key)
        if v is None:
            self.n_evals += 1
            v = self._memo[key] = float(self.fun(z))
        return v

    def prefetch(self, x: np.ndarray, idx: np.ndarray, hessian: bool = True) -> None:
        """Evaluate the stencil of the central gradient (and the Hessian) over ``x[idx]`` at ``x``, grouped."""
        x = np.asarray(x, float)
        d = self.delta
        pts = [x]
        for a, i in enumerate(idx):
            for sign in (1.0, -1.0):
                p = x.copy()
                p[i] = x[i] + sign * d
                pts.append(p)
            if hessian:
                for j in idx[:a]:
                    for sign in (1.0, -1.0):
                        p = x.copy()
                        p[i], p[j] = x[i] + sign * d, x[j] + sign * d
                        pts.append(p)
        pts.sort(key=lambda p: (p[0] != x[0], p[0], tuple(p[1:])))
        for p in pts:
            self(p)


def newton_search(fun: GroupedStencil, x0: np.ndarray, lower: np.ndarray,
                  derivatives: Callable[[Callable[[np.ndarray], float], np.ndarray], dict],
                  upper: np.ndarray | None = None) -> tuple[OptSummary | None, dict | None, np.ndarray]:
    """Newton steps on the checks' finite-difference derivatives until the next step is a refinement.

    Parameters
    ----------
    fun : GroupedStencil
        The criterion (its evaluations are counted in ``fun.n_evals``).
    x0, lower, upper : ndarray
        Start and bounds.
    derivatives : callable
        ``(fun, x) -> {"free", "gradient", "hessian"}`` of ``fun`` at ``x`` over the parameters off
        their bounds (:func:`~interlace.optimize.checks.free_derivatives`).

    Returns
    -------
    (OptSummary or None, dict or None, ndarray)
        The search's answer and the derivatives at it, whose Newton step is below
        ``1e-3 (1 + |x|)`` (then the caller's refinement takes it); or ``(None, None, x)``
        when Newton does not apply (a parameter on its bound, a Hessian that is not positive
        definite, no decrease along the step, no convergence in :data:`MAX_ITERATIONS`): the
        caller then searches with BOBYQA from ``x``, the best point seen.
    """
    t0 = time.perf_counter()
    lower = np.asarray(lower, float)
    up = np.full(lower.size, np.inf) if upper is None else np.asarray(upper, float)
    x = np.minimum(np.maximum(np.asarray(x0, float), lower), up)
    fx = fun(x)
    if not np.isfinite(fx):
        return None, None, x
    for _ in range(MAX_ITERATIONS):
        idx = free_indices(x, lower, upper, 1e-4)
        if idx.size != x.size:
            break
        fun.prefetch(x, idx)
        d = derivatives(fun, x)
        g, H = d.get("gradient"), d.get("hessian")
        if g is None or H is None or not (np.all(np.isfinite(g)) and np.all(np.isfinite(H))):
            break
        try:
            c = np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            break
        step = np.linalg.solve(c.T, np.linalg.solve(c, g))
        if np.all(np.abs(step) <= 1e-3 * (1.0 + np.abs(x))):
            opt = OptSummary(NEWTON_OPTIMIZER, np.asarray(x0, float), lower, x, fx, fun.n_evals, True,
                             "Newton step below 1e-3 (1 + |x|)", time.perf_counter() - t0)
            return opt, d, x
        # the step in log θ for the parameters bounded at 0 (from a start far off, the criterion is
        # nearer a quadratic there: no overshoot to be halved back), directly for the others
        logp = lower == 0
        if np.any(logp & (x - step <= 0)):  # heading for the boundary (a singular fit): BOBYQA's business
            break
        sc = np.where(logp, x, 1.0)
        Hp = sc[:, None] * H * sc[None, :] + np.diag(np.where(logp, g * x, 0.0))
        try:
            cp = np.linalg.cholesky(Hp)
            dphi = np.linalg.solve(cp.T, np.linalg.solve(cp, g * sc))
        except np.linalg.LinAlgError:  # not convex in log θ here: the step in θ
            logp, dphi = np.zeros(x.size, bool), step
        t, moved = 1.0, False
        for _ in range(MAX_HALVINGS + 1):
            xn = np.where(logp, x * np.exp(-t * dphi), x - t * dphi)
            if np.all(xn >= lower) and np.all(xn <= up):
                fn = fun(xn)
                if np.isfinite(fn) and fn < fx:
                    x, fx, moved = xn, fn, True
                    break
            t *= 0.5
        if not moved:
            break
    return None, None, x
