"""Minimization with an exact gradient: L-BFGS-B for objectives that return (value, gradient).

Objectives whose gradient is exact (the CLMM's Laplace approximation) converge in a
few dozen evaluations where a derivative-free method needs hundreds.  Points where the
objective is not finite (thresholds out of order) are reported to L-BFGS-B as a very
large value, so its line search backs off.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import scipy.optimize

from .optimizers import OptSummary

__all__ = ["gradient_derivatives", "minimize_gradient"]

_BIG = 1e100


def minimize_gradient(fun_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: npt.ArrayLike,
                      lower: npt.ArrayLike, upper: npt.ArrayLike | None = None, maxfun: int | None = None,
                      ftol: float = 1e-14, gtol: float = 1e-8) -> OptSummary:
    """Minimize by L-BFGS-B on an exact gradient, within ``lower <= x <= upper``.

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
        converged when the projected gradient is small (the convergence checks then judge
        the answer by finite differences, as for every optimizer).

    Returns
    -------
    OptSummary
    """
    t0 = time.perf_counter()
    x0 = np.asarray(x0, float)
    lower = np.asarray(lower, float)
    upper = np.full(x0.shape, np.inf) if upper is None else np.asarray(upper, float)
    last: dict = {}

    def f(x: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = fun_grad(x)
        if not (np.isfinite(v) and np.all(np.isfinite(g))):
            return _BIG, np.zeros_like(x)
        if not last or v < last["f"]:
            last.update(f=float(v), x=np.array(x, float), g=np.asarray(g, float))
        return float(v), np.asarray(g, float)

    bounds = [(lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None) for lo, hi in zip(lower, upper)]
    res = scipy.optimize.minimize(f, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                  options={"maxfun": 1000 if maxfun is None else int(maxfun), "ftol": ftol,
                                           "gtol": gtol, "maxcor": 20})
    x = np.asarray(res.x, float)
    fmin = float(res.fun)
    if last and last["f"] < fmin:  # the best point seen (a failed line search may end elsewhere)
        x, fmin = last["x"], last["f"]
    ok = bool(res.success)
    if not ok and last:
        g = last["g"]
        pg = np.where((x <= lower) & (g > 0) | (x >= upper) & (g < 0), 0.0, g)
        ok = bool(np.max(np.abs(pg), initial=0.0) <= 1e-3) and "ABNORMAL" in str(res.message).upper()
    x = np.minimum(np.maximum(x, lower), upper)
    return OptSummary("L-BFGS-B (exact gradient)", x0, lower, x, fmin, int(res.nfev), ok, str(res.message),
                      time.perf_counter() - t0)


def gradient_derivatives(fun_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x: npt.ArrayLike,
                         lower: npt.ArrayLike, delta: float = 1e-4, tol_singular: float = 1e-4) -> dict:
    """The gradient at ``x`` and the Hessian by central differences of the exact gradient, over the
    parameters off the boundary (as :func:`~interlace.optimize.checks.free_derivatives`, whose
    ``free`` / ``gradient`` / ``hessian`` it returns, at 1 + 2k gradient evaluations for k free
    parameters instead of 1 + 2k + k(k − 1) values).
    """
    x = np.asarray(x, float)
    lower = np.asarray(lower, float)
    idx = np.flatnonzero(~((lower == 0) & (x < tol_singular)))
    if not idx.size:
        return {"free": idx}
    g0 = np.asarray(fun_grad(x)[1], float)[idx]
    k = idx.size
    H = np.empty((k, k))
    for j, i in enumerate(idx):
        h = delta
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        gp = np.asarray(fun_grad(xp)[1], float)[idx]
        gm = np.asarray(fun_grad(xm)[1], float)[idx]
        H[:, j] = (gp - gm) / (2 * h)
    return {"free": idx, "gradient": g0, "hessian": 0.5 * (H + H.T)}
