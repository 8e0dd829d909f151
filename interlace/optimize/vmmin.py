"""R's ``optim(method = "BFGS")``: Nash's variable-metric minimizer, for fits that must follow R's path.

coxme estimates its variance parameters with ``optim(method = "BFGS",
control = list(reltol = 1e-5))`` and stops well before the optimum when the
likelihood is flat (a variance heading for 0, a slow direction); reproducing
its estimates means reproducing that path.  This is the variable-metric method
of J. C. Nash, *Compact Numerical Methods for Computers* (2nd ed., 1990,
Algorithm 21), as R uses it:

* start from B = I (inverse-Hessian approximation) and restart from I whenever
  the search direction is not downhill or the update would lose positive
  definiteness, and every 2n gradient evaluations without a restart;
* backtracking line search from step 1, shrinking by 0.2 until the Armijo
  condition f ≤ f₀ + 10⁻⁴ · step · gᵀd holds or the step no longer changes the
  parameters (tested as ``10 + x == 10 + x_new``);
* stop when an accepted step lowers f by no more than ``reltol · (|f| + reltol)``,
  or after ``maxit`` gradient evaluations;
* without an analytic gradient, central differences with step ``ndeps`` (R's
  default 1e-3) on every coordinate.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from .optimizers import OptSummary

__all__ = ["numeric_gradient", "vmmin"]

_STEPREDN = 0.2
_ACCTOL = 1e-4
_RELTEST = 10.0


def numeric_gradient(fun: Callable[[np.ndarray], float], x: np.ndarray, ndeps: float | np.ndarray = 1e-3
                     ) -> np.ndarray:
    """Central-difference gradient as R's ``optim`` computes it (``ndeps`` per coordinate)."""
    x = np.asarray(x, float)
    eps = np.broadcast_to(np.asarray(ndeps, float), x.shape)
    g = np.empty(x.size)
    for i in range(x.size):
        xp = x.copy()
        xp[i] = x[i] + eps[i]
        f1 = fun(xp)
        xp[i] = x[i] - eps[i]
        f2 = fun(xp)
        g[i] = (f1 - f2) / (2.0 * eps[i])
        if not np.isfinite(g[i]):
            raise FloatingPointError(f"non-finite finite-difference value [{i + 1}]")
    return g


def vmmin(fun: Callable[[np.ndarray], float], x0: npt.ArrayLike,
          grad: Callable[[np.ndarray], np.ndarray] | None = None,
          reltol: float = float(np.sqrt(np.finfo(float).eps)), abstol: float = -np.inf,
          maxit: int = 100, ndeps: float | np.ndarray = 1e-3) -> OptSummary:
    """Minimize ``fun`` by R's BFGS (see the module docstring).

    Parameters
    ----------
    fun : callable
        Objective of a 1-d array.
    x0 : array-like
    grad : callable, optional
        Gradient; default central differences with step ``ndeps``.
    reltol, abstol, maxit, ndeps : as R's ``optim`` control list.

    Returns
    -------
    OptSummary
        ``x`` is the last point the method stood on (R's ``par``), ``converged`` is
        False when ``maxit`` was reached (R's ``convergence = 1``); ``counts`` holds R's
        ``counts`` (evaluations of ``fun`` outside the gradient, gradient evaluations) and
        ``n_evals`` every evaluation of ``fun``.
    """
    t0 = time.perf_counter()
    b = np.array(x0, dtype=float)
    n = b.size
    counts = {"f": 0}

    def f_(x):
        counts["f"] += 1
        return float(fun(x))

    if grad is None:
        def g_(x):
            return numeric_gradient(f_, x, ndeps)
    else:
        def g_(x):
            return np.asarray(grad(x), float)

    f = f_(b)
    if not np.isfinite(f):
        raise FloatingPointError("initial value in 'vmmin' is not finite")
    fmin = f
    funcount = gradcount = 1
    g = g_(b)
    it = 1
    ilast = gradcount
    B = np.eye(n)
    count = 0
    while True:
        if ilast == gradcount:
            B = np.eye(n)
        X = b.copy()
        c = g.copy()
        t = -(B @ g)
        gradproj = float(t @ g)
        if gradproj < 0.0:                       # downhill
            steplength = 1.0
            accpoint = False
            while True:
                b = X + steplength * t
                count = int(np.sum(_RELTEST + X == _RELTEST + b))
                if count < n:
                    f = f_(b)
                    funcount += 1
                    accpoint = bool(np.isfinite(f) and f <= fmin + gradproj * steplength * _ACCTOL)
                    if not accpoint:
                        steplength *= _STEPREDN
                if count == n or accpoint:
                    break
            enough = (f > abstol) and abs(f - fmin) > reltol * (abs(fmin) + reltol)
            if not enough:
                count = n
                fmin = f
            if count < n:                        # progress: BFGS update of B
                fmin = f
                g = g_(b)
                gradcount += 1
                it += 1
                t = steplength * t
                c = g - c
                D1 = float(t @ c)
                if D1 > 0:
                    Xv = B @ c
                    D2 = 1.0 + float(Xv @ c) / D1
                    B = B + (D2 * np.outer(t, t) - np.outer(Xv, t) - np.outer(t, Xv)) / D1
                else:
                    ilast = gradcount
            else:                                # no progress: restart unless just restarted
                if ilast < gradcount:
                    count = 0
                    ilast = gradcount
        else:                                    # uphill: restart
            count = 0
            if ilast == gradcount:
                count = n
            else:
                ilast = gradcount
        if it >= maxit:
            break
        if gradcount - ilast > 2 * n:
            ilast = gradcount
        if count == n and ilast == gradcount:
            break
    ok = it < maxit
    msg = "converged" if ok else f"stopped after {it} iterations"
    out = OptSummary("r_bfgs", np.asarray(x0, float), np.full(n, -np.inf), b, float(fmin), counts["f"], ok, msg,
                     time.perf_counter() - t0)
    out.counts = (funcount, gradcount)
    return out
