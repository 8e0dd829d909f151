"""lme4-style post-fit checks: singularity and the scaled-gradient convergence test.

* Singular: a θ element with lower bound 0 below ``tol = 1e-4`` (lme4's ``isSingular``).
* Convergence: finite-difference gradient g and Hessian H = UᵀU of the criterion
  at the optimum over the parameters not on the boundary; the fit is flagged when
  ``max(min(|U⁻¹g|, |g|)) > 2e-3`` (lme4's ``check.conv.grad``, which computes
  ``solve(chol(H), g)``), or when H is not positive definite.
"""
from __future__ import annotations


import numpy as np

from ..errors import ConvergenceWarning, SingularFitWarning, warn_user

__all__ = ["is_singular", "finite_diff_derivs", "check_convergence", "newton_polish", "SINGULAR_MSG"]

SINGULAR_MSG = "boundary (singular) fit: see CrossedLMEResult.is_singular"


def is_singular(theta: np.ndarray, lower: np.ndarray, tol: float = 1e-4) -> bool:
    """True if any bounded-below θ is within ``tol`` of its bound (lme4's ``isSingular``)."""
    theta, lower = np.asarray(theta), np.asarray(lower)
    bounded = lower == 0
    return bool(np.any(theta[bounded] < tol))


def finite_diff_derivs(fun, x: np.ndarray, delta: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient and Hessian of ``fun`` at ``x`` (as lme4's ``deriv12``)."""
    x = np.asarray(x, float)
    n = x.size
    f0 = fun(x)
    g = np.empty(n)
    H = np.empty((n, n))
    fp = np.empty(n)
    fm = np.empty(n)
    for i in range(n):
        e = np.zeros(n)
        e[i] = delta
        fp[i], fm[i] = fun(x + e), fun(x - e)
        g[i] = (fp[i] - fm[i]) / (2 * delta)
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / delta**2
    for i in range(n):
        for j in range(i):
            ei = np.zeros(n)
            ej = np.zeros(n)
            ei[i] = delta
            ej[j] = delta
            H[i, j] = H[j, i] = (fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej) + fun(x - ei - ej)) / (
                4 * delta**2
            )
    return g, H


def check_convergence(fun, x: np.ndarray, lower: np.ndarray, optimizer_ok: bool, optimizer_msg: str,
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
    msgs: list[tuple[str, type]] = []
    if not optimizer_ok:
        msgs.append((f"optimizer did not report convergence: {optimizer_msg}", ConvergenceWarning))
    singular = is_singular(x, lower, tol_singular)
    if singular:
        msgs.append((SINGULAR_MSG, SingularFitWarning))
    free = ~((lower == 0) & (x < tol_singular))
    if np.any(free):
        idx = np.flatnonzero(free)

        def sub(z):
            full = x.copy()
            full[idx] = z
            return fun(full)

        g, H = finite_diff_derivs(sub, x[idx], delta)
        if derivs_out is not None:
            derivs_out.update(free=idx, gradient=g, hessian=H)
        if not np.all(np.isfinite(H)):
            msgs.append(("unable to evaluate scaled gradient", ConvergenceWarning))
        else:
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
    if warn:
        for m, cls in msgs:
            warn_user(m, cls)
    return [m for m, _ in msgs]


def newton_polish(fun, opt, lower: np.ndarray, derivs: dict) -> bool:
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
    if np.any(x < lower):
        return False
    f = float(fun(x))
    # near the minimum the criterion is flat to its rounding (~1e-13 relative): the step is
    # judged by the derivatives, the value only guards against a worse point
    if not np.isfinite(f) or f > opt.fmin + 1e-11 * max(1.0, abs(opt.fmin)):
        return False
    opt.x, opt.fmin, opt.n_evals = x, min(f, opt.fmin), opt.n_evals + 1
    opt.polished = True
    return True
