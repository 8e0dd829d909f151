"""Finite-difference derivatives from one vectorized pass over a stencil of points.

lme4's ``deriv12`` takes the gradient and Hessian of the criterion from the center, the
axis points ``x ± δeᵢ`` and (for the off-diagonal entries) ``x ± δ(eᵢ + eⱼ)``:
``1 + 2n + n(n − 1)`` points, 13 for three parameters.  Where the criterion can be
evaluated at many points in one pass (``criteria(points) -> values``, e.g.
:meth:`~interlace.objective.lmm.LMMDeviance.criteria` on a lone 2 × 2 term), the stencil
is one call, and the derivatives are a fixed linear map of its values.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .optimizers import NEWTON_OPTIMIZER, OptSummary

__all__ = ["Criteria", "GroupedCriteria", "NewtonOutcome", "stencil", "stencil_derivatives", "axis_gradient",
           "newton_search", "NEWTON_MAXITER", "NEWTON_HANDOVER"]

#: ``points (K, n) -> values (K,)``: the criterion at each row, in one pass
Criteria = Callable[[np.ndarray], np.ndarray]


@lru_cache(maxsize=16)
def stencil(n: int, delta: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """The offsets of the finite-difference points around a center and the linear map from the
    criterion at them to the gradient and the Hessian.

    Returns
    -------
    (pts, D)
        ``pts`` (K, n): 0, δeᵢ, −δeᵢ, δ(eᵢ + eⱼ) and −δ(eᵢ + eⱼ) for i < j; ``D`` (n + n², K):
        ``D @ f(x + pts)`` is the gradient followed by the row-major Hessian (lme4's
        ``deriv12`` formulas; the off-diagonal entries reuse the axis points, as
        :func:`~interlace.optimize.checks.finite_diff_derivs`).  Read-only (cached).
    """
    d = delta
    E = np.eye(n) * d
    iu, ju = np.triu_indices(n, 1)
    m = iu.size
    pts = np.vstack([np.zeros(n), E, -E, E[iu] + E[ju], -(E[iu] + E[ju])])
    D = np.zeros((n + n * n, pts.shape[0]))
    for i in range(n):
        D[i, 1 + i], D[i, 1 + n + i] = 1 / (2 * d), -1 / (2 * d)
        h = n + i * n + i
        D[h, 0], D[h, 1 + i], D[h, 1 + n + i] = -2 / d**2, 1 / d**2, 1 / d**2
    for k, (a, b) in enumerate(zip(iu.tolist(), ju.tolist())):
        row = np.zeros(pts.shape[0])
        row[1 + 2 * n + k], row[1 + 2 * n + m + k] = 1, 1
        row[0] = 2
        row[[1 + a, 1 + b, 1 + n + a, 1 + n + b]] -= 1
        D[n + a * n + b] = D[n + b * n + a] = row / (2 * d**2)
    pts.setflags(write=False)
    D.setflags(write=False)
    return pts, D


def _embed(x: np.ndarray, idx: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Points ``x`` with ``x[idx]`` moved by each row of ``offsets``."""
    P = np.repeat(np.asarray(x, float)[None], offsets.shape[0], axis=0)
    P[:, idx] += offsets
    return P


def stencil_derivatives(criteria: Criteria, x: np.ndarray, idx: np.ndarray, delta: float = 1e-4
                        ) -> tuple[float, np.ndarray, np.ndarray]:
    """``(f(x), gradient, Hessian)`` over the parameters ``idx`` from one pass of :func:`stencil`'s points
    (the others held at ``x``); entries are not finite where the criterion is not."""
    n = idx.size
    pts, D = stencil(n, delta)
    v = np.asarray(criteria(_embed(x, idx, pts)), float)
    with np.errstate(invalid="ignore", over="ignore"):  # inf − inf: reported by the checks
        gh = D @ v
    return float(v[0]), gh[:n], gh[n:].reshape(n, n)


def axis_gradient(criteria: Criteria, x: np.ndarray, idx: np.ndarray, delta: float = 1e-4) -> np.ndarray:
    """The central-difference gradient over ``idx`` from one pass over ``x ± δeᵢ``."""
    E = np.eye(idx.size) * delta
    v = np.asarray(criteria(_embed(x, idx, np.vstack([E, -E]))), float)
    n = idx.size
    with np.errstate(invalid="ignore", over="ignore"):
        return (v[:n] - v[n:]) / (2 * delta)


class GroupedCriteria:
    """A scalar criterion made a :data:`Criteria`, remembering its values and evaluating each batch of
    points grouped by their leading element.

    The points that share the first point's leading element come first, then the others by it:
    an engine that keeps work per leading parameter (the weight-class engine's Schur block of
    the first term, :meth:`~interlace.linalg.blocked.BlockedPLS.factor`) forms it for 2 of a
    2-θ stencil's 7 points instead of 7.  A point seen before is read from memory
    (:meth:`value` too), so the checks' refinement after the search costs no repeats.
    """

    def __init__(self, fun: Callable[[np.ndarray], float]) -> None:
        self.fun = fun
        self.n_evals = 0
        self._memo: dict[bytes, float] = {}

    def value(self, z: np.ndarray) -> float:
        """The criterion at one point (remembered)."""
        z = np.ascontiguousarray(z, dtype=float)
        key = z.tobytes()
        v = self._memo.get(key)
        if v is None:
            self.n_evals += 1
            v = self._memo[key] = float(self.fun(z))
        return v

    def __call__(self, points: np.ndarray) -> np.ndarray:
        P = np.atleast_2d(np.asarray(points, float))
        lead = P[:, 0]
        order = sorted(range(P.shape[0]), key=lambda k: (lead[k] != lead[0], lead[k], k))
        out = np.empty(P.shape[0])
        for k in order:
            out[k] = self.value(P[k])
        return out


#: Newton iterations of :func:`newton_search` before it gives up (the caller then runs BOBYQA)
NEWTON_MAXITER = 20
#: :func:`newton_search` hands over once its next step moves every parameter by less than this,
#: relative to ``1 + |x|``: the bound of the checks' own Newton step (:func:`~interlace.optimize.checks.newton_polish`)
NEWTON_HANDOVER = 1e-3


@dataclass
class NewtonOutcome:
    """What :func:`newton_search` found.

    Attributes
    ----------
    opt : OptSummary or None
        The search's answer (its next Newton step a refinement), or None when Newton did not apply.
    derivs : dict or None
        The checks' derivatives at ``opt.x`` (``free``, ``gradient``, ``hessian``, as
        :func:`~interlace.optimize.checks.free_derivatives`).
    x : ndarray
        The best point seen (BOBYQA's start when ``opt`` is None).
    n_evals : int
        Criterion values computed.
    """

    opt: OptSummary | None
    derivs: dict | None
    x: np.ndarray
    n_evals: int


def newton_search(criteria: Criteria, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray | None = None,
                  delta: float = 1e-4, tol_singular: float = 1e-4) -> NewtonOutcome:
    """Newton steps on finite-difference derivatives, each from one pass of :func:`stencil`'s points,
    until the next step is a refinement.

    From a good start (MIVQUE0) a few Newton iterations cost less than BOBYQA's evaluations
    and lme4's checks after them: on a lone 2 × 2 term a 13-point stencil is one vectorized
    pass (about three evaluations' time; sleepstudy: 4 passes against 59 evaluations), and
    where one evaluation is dear and θ short (users × items, :class:`GroupedCriteria`) three
    stencils of 7 points against BOBYQA's 31 evaluations.  A step that does not lower the
    criterion is halved.  Once the next step is below :data:`NEWTON_HANDOVER` ``(1 + |x|)``
    the caller ends as after BOBYQA: the checks' Newton step from these derivatives, the
    gradient at its point, the chord step and the verdicts.

    Returns
    -------
    NewtonOutcome
        ``opt`` None when Newton does not apply (a parameter within ``tol_singular`` of a lower
        bound of 0 or a step heading there, a Hessian not positive definite, a step out of the
        bounds or that does not descend, no hand-over in :data:`NEWTON_MAXITER` iterations): the caller then runs BOBYQA
        from ``x``, the best point seen.
    """
    t0 = time.perf_counter()
    x0 = np.asarray(x0, float)
    lower = np.asarray(lower, float)
    up = np.full(x0.shape, np.inf) if upper is None else np.asarray(upper, float)
    n = x0.size
    pts, D = stencil(n, delta)
    evals = 0  # points asked for (a remembering criterion counts its own, fewer)

    def derivatives(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nonlocal evals
        v = np.asarray(criteria(x + pts), float)
        evals += pts.shape[0]
        with np.errstate(invalid="ignore", over="ignore"):
            gh = D @ v
        return v, gh[:n], gh[n:].reshape(n, n)

    probe = getattr(criteria, "value", None)
    x = np.minimum(np.maximum(x0, lower), up)
    v, g, H = derivatives(x)
    for _ in range(NEWTON_MAXITER):
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(H))) or np.any((lower == 0) & (x < tol_singular)):
            break
        try:
            c = np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            break
        step = -np.linalg.solve(c.T, np.linalg.solve(c, g))
        if np.any((lower == 0) & (x + step < tol_singular)):  # heading for the boundary: BOBYQA's business
            break
        if np.all(np.abs(step) <= NEWTON_HANDOVER * (1.0 + np.abs(x))):
            spent = getattr(criteria, "n_evals", evals)
            opt = OptSummary(NEWTON_OPTIMIZER, x0, lower, x, float(v[0]), spent, True,
                             "Newton step below 1e-3 (1 + |x|)", time.perf_counter() - t0)
            return NewtonOutcome(opt, {"free": np.arange(n), "gradient": g, "hessian": H}, x, spent)
        f0, slope = v[0], float(g @ step)
        t, moved = 1.0, False
        for _ in range(8):  # the step's centre is the next stencil's
            xn = x + t * step
            if np.all(xn >= lower) and np.all(xn <= up):
                if probe is not None and not probe(xn) <= f0 + 1e-4 * t * slope:
                    t *= 0.5  # a remembering criterion tries the centre alone first
                    continue
                vn, gn, Hn = derivatives(xn)
                if np.isfinite(vn[0]) and vn[0] <= f0 + 1e-4 * t * slope:
                    x, v, g, H, moved = xn, vn, gn, Hn, True
                    break
            t *= 0.5
        if not moved:
            break
    return NewtonOutcome(None, None, x, getattr(criteria, "n_evals", evals))
