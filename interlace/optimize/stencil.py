"""Finite-difference derivatives from one vectorized pass over a stencil of points.

lme4's ``deriv12`` takes the gradient and Hessian of the criterion from the center, the
axis points ``x ± δeᵢ`` and (for the off-diagonal entries) ``x ± δ(eᵢ + eⱼ)``:
``1 + 2n + n(n − 1)`` points, 13 for three parameters.  Where the criterion can be
evaluated at many points in one pass (``criteria(points) -> values``, e.g.
:meth:`~interlace.objective.lmm.LMMDeviance.criteria` on a lone 2 × 2 term), the stencil
is one call, and the derivatives are a fixed linear map of its values.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

__all__ = ["Criteria", "stencil", "stencil_derivatives", "axis_gradient"]

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
