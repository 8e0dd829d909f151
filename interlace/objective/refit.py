"""Refits of one linear mixed model to many responses on the same rows (bootstrap, simulation).

A refit of the same rows changes only the response: the random-effects structure, the
engine's analysis and the products of Z and X with themselves stay.  :class:`LMMRefitter`
keeps one engine for the model's rows and, per response, forms only the products with the
new response (:class:`~interlace.linalg.crossprod.RowProducts` reuses the rest), runs the
optimizer from the fitted θ̂ and reads β̂ and σ̂² off the factor at the optimum: no model,
objective or result object per refit.

The optimizer is BOBYQA with a trust region and a stopping rule scaled to the sampling
spread of θ̂ (its standard errors from the fit's Hessian, ``2 H⁻¹``): the refits of a
parametric bootstrap lie within a few standard errors of θ̂, so the first trust region is
half a standard error and BOBYQA stops when its steps fall below 10⁻⁵ of one (or 10⁻⁷
relative, as a fresh fit).  That is ~45 evaluations per sleepstudy refit instead of ~72
for the fresh fit's defaults, and the criterion at the estimate is within ~10⁻¹⁰ of the
minimum found by a tight optimizer from another start (measured on 50 sleepstudy
replicates; ``interlace/tests/test_refit.py`` checks 10⁻⁶).  Without a usable Hessian
(a singular fit) the fresh fit's defaults are used.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..linalg.engines import RowEngines
from ..optimize import minimize
from ..optimize.optimizers import HAVE_NLOPT
from ..optimize.stencil import stencil
from .lmm import LMMDeviance, check_exact_fit, sum_log_weights

__all__ = ["LMMRefitter", "RefitEstimate", "REFIT_STEP", "REFIT_XTOL"]

#: BOBYQA's first trust-region radius in a refit, in standard errors of θ̂
REFIT_STEP = 0.5
#: BOBYQA's absolute stopping tolerance in a refit, in standard errors of θ̂
REFIT_XTOL = 1e-5
#: Finite-difference step of the Newton refits (lme4's ``deriv12`` step)
FD_STEP = 1e-4
#: Newton refits stop when the step is below this many standard errors of θ̂
NEWTON_STEP_TOL = 1e-4
#: Newton iterations before falling back to BOBYQA
NEWTON_MAXITER = 25


@dataclass
class RefitEstimate:
    """The estimates of one refit.

    Attributes
    ----------
    theta, beta : ndarray
    sigma2 : float
        Residual variance (``r²/(n − p)`` for REML, ``r²/n`` for ML).
    objective : float
        The criterion at θ (REML criterion or deviance, −2 × the log-likelihood).
    n_evals : int
        Evaluations of the criterion.
    converged : bool
        The optimizer's own success flag.
    """

    theta: np.ndarray
    beta: np.ndarray
    sigma2: float
    objective: float
    n_evals: int
    converged: bool


def theta_scale(theta: np.ndarray, derivs: dict | None) -> np.ndarray | None:
    """Standard errors of θ̂ from the fit's finite-difference Hessian of the criterion (``2 H⁻¹``),
    or None when a parameter is on the boundary or the Hessian is not positive definite."""
    if not derivs or "hessian" not in derivs or len(derivs["free"]) != len(theta):
        return None
    H = np.asarray(derivs["hessian"], float)
    try:
        c = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return None
    ci = np.linalg.inv(c)
    se = np.sqrt(2.0 * np.sum(ci * ci, axis=0))  # diag(2 H⁻¹) = 2 diag(c⁻ᵀ c⁻¹)
    if not np.all(np.isfinite(se) & (se > 0)):
        return None
    return se


class LMMRefitter:
    """Refits of an LMM's rows to new responses (see the module docstring).

    Parameters
    ----------
    engines : RowEngines
        The model's engines (shared: the refitter spawns its own engine from them).
    weights, offset : ndarray or None
        The model's prior weights and offset.
    reml : bool
    start : ndarray
        θ̂ of the fit (every refit starts there).
    scale : ndarray, optional
        Standard errors of θ̂ (:func:`theta_scale`); None: the fresh fit's optimizer settings.
    optimizer : str
        ``"bobyqa"`` (the scaled stopping rule applies to it only) or another of
        :func:`~interlace.optimize.minimize`'s optimizers (its defaults).
    """

    def __init__(self, engines: RowEngines, weights: np.ndarray | None, offset: np.ndarray | None, reml: bool,
                 start: np.ndarray, scale: np.ndarray | None = None, optimizer: str = "bobyqa") -> None:
        self.pls, self.rows = engines.get()
        self.weights = weights
        self.offset = offset
        self.reml = bool(reml)
        self.start = np.array(start, float)
        self.scale = scale
        self.optimizer = optimizer
        self._log_w = sum_log_weights(weights)

    def _options(self) -> dict:
        name = str(self.optimizer).lower()
        if self.scale is None or name not in ("bobyqa", "nlopt_bobyqa", "pybobyqa"):
            return {}
        opts: dict = {"rhobeg": REFIT_STEP * self.scale}
        if name != "pybobyqa" and HAVE_NLOPT:  # Py-BOBYQA stops at its final radius instead
            opts["options"] = {"xtol_abs": list(REFIT_XTOL * self.scale)}
        return opts

    def criterion(self, y: np.ndarray) -> LMMDeviance:
        """The criterion of θ for response ``y`` (before any offset is subtracted), on this refitter's engine."""
        y = np.asarray(y, float)
        if self.offset is not None:
            y = y - self.offset
        self.pls.load(self.rows(y, self.weights))
        return LMMDeviance(self.pls, self.reml, *self._log_w)

    def _step(self, g: np.ndarray, H: np.ndarray) -> tuple[np.ndarray, bool] | None:
        """The Newton step ``−H⁻¹g``; where H is not positive definite (far from the minimum), the
        step of ``H + μ diag(1/se²)`` for the smallest μ in 10⁻³, 10⁻², … that makes it so.
        Returns ``(step, whether it is the Newton step)`` or None."""
        try:
            np.linalg.cholesky(H)
            return -np.linalg.solve(H, g), True
        except np.linalg.LinAlgError:
            pass
        assert self.scale is not None
        P = np.diag(1.0 / self.scale**2)
        for mu in 10.0 ** np.arange(-3, 5):
            try:
                np.linalg.cholesky(H + mu * P)
            except np.linalg.LinAlgError:
                continue
            return -np.linalg.solve(H + mu * P, g), False
        return None

    def _newton(self, dev: LMMDeviance, x: np.ndarray) -> np.ndarray | None:
        """Damped Newton iterations from ``x`` with finite-difference derivatives, each stencil of
        points evaluated in one vectorized pass (:meth:`LMMDeviance.criteria`); None when they do
        not apply or fail (an indefinite Hessian, a step out of the bounds or that does not
        descend, no convergence): the caller then runs BOBYQA."""
        assert self.scale is not None
        n = x.size
        lower, upper = dev.lower, dev.upper
        pts, D = stencil(n, FD_STEP)
        v = dev.criteria(x + pts)
        for _ in range(NEWTON_MAXITER):
            if not np.isfinite(v).all():
                return None
            gh = D @ v
            g, H = gh[:n], gh[n:].reshape(n, n)
            found = self._step(g, H)
            if found is None:
                return None
            step, newton = found
            if newton and np.max(np.abs(step) / self.scale) < NEWTON_STEP_TOL:
                xn = x + step  # quadratic convergence: within ~|step|² of the minimum
                return xn if (xn >= lower).all() and (xn <= upper).all() else None
            f0, slope = v[0], float(g @ step)
            t = 1.0
            for _ in range(8):  # the step's center is the next stencil's: backtrack only if it does not descend
                xn = x + t * step
                if (xn >= lower).all() and (xn <= upper).all():
                    vn = dev.criteria(xn + pts)
                    if vn[0] <= f0 + 1e-4 * t * slope:
                        break
                t *= 0.5
            else:
                return None
            x, v = x + t * step, vn
        return None

    def __call__(self, y: np.ndarray, start: np.ndarray | None = None) -> RefitEstimate:
        """Refit to the response ``y``; returns the estimates (raises as a fit would on a degenerate response)."""
        dev = self.criterion(y)
        check_exact_fit(dev)
        lower, upper = dev.lower, dev.upper
        x0 = self.start if start is None else np.asarray(start, float)
        x0 = np.minimum(np.maximum(x0, lower), upper)
        found = None
        if self.scale is not None and self.pls.factor_many(x0[None]) is not None:
            found = self._newton(dev, x0)
        if found is not None:
            theta, converged = found, True
        else:
            opt = minimize(dev, x0, lower, optimizer=self.optimizer, upper=upper, **self._options())
            theta, converged = np.asarray(opt.x, float), bool(opt.converged)
        n_evals = dev.n_evals
        obj = dev(theta)  # leaves the engine factored at θ: β and r² from its last block
        beta, pwrss = self.pls.beta(), self.pls.pwrss()
        return RefitEstimate(theta, beta, pwrss / dev.dof, obj, n_evals, converged)
